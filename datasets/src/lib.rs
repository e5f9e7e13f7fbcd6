//! Datasets for wolf: reading sources into the store, and the synthetic world.
//!
//! - [`sources`] reads what `wolf dataset add` is pointed at (a folder of videos, a
//!   JSONL or CSV manifest, Wolf's annotation JSON joined with a folder) into entries.
//! - [`intake`] hashes and probes the entries' files and stores them, each failure
//!   with its reason.
//! - [`synth`] renders the synthetic world: clips of coloured shapes with exact
//!   reference captions, tags and per-frame boxes, from a seed.
//!
//! Threads: hashing, probing and rendering are blocking; [`intake`] runs them on
//! tokio's blocking threads, at most one per core; [`synth`] uses its own scoped
//! threads.

pub mod intake;
pub mod sources;
pub mod synth;
