//! The core of wolf: domain types, media, the store and the validated run plan.
//!
//! - [`media`] probes videos, samples frames (FFmpeg through `ffmpeg-next`), resizes,
//!   builds storyboards, encodes JPEG/PNG and writes H.264 clips.
//! - [`store`] is the database (sqlx; SQLite by default, PostgreSQL for several machines)
//!   with its embedded migrations, and the work queue of `wolf worker`.
//! - [`models`] names model entries, defines one trait per role (image captioner,
//!   video captioner, chat LLM, embedder) and holds the backends.
//! - [`config`] turns a TOML file into a validated [`config::Plan`].
//! - [`home`] finds the project-local folder that `make setup` fills (ONNX Runtime,
//!   the model pack, the default database).
//! - [`hash`] streams files through SHA-256.
//! - [`metrics`] counts what a worker did, for Prometheus (`wolf worker --metrics-addr`).
//! - [`progress`] holds the plain counters that libraries bump and the binary draws.
//! - [`world`] is the synthetic world's closed vocabulary (colours, shapes, sign words,
//!   motions and their phrases), shared by the world's generator and the truth metric.
//!
//! Threads: decoding and encoding are blocking and run on the caller's thread; callers
//! in async code put them on `spawn_blocking` threads, bounded by the number of cores.
//! The store is async (tokio).

pub mod config;
pub mod hash;
pub mod home;
pub mod media;
pub mod metrics;
pub mod models;
pub mod process;
pub mod progress;
pub mod store;
pub mod wolf;
pub mod world;
