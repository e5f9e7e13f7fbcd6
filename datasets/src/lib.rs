//! Datasets for wolf: reading sources into the store, the synthetic world, and the
//! core of the recaption loop.
//!
//! - [`sources`] reads what `wolf dataset add` is pointed at (a folder of videos, a
//!   JSONL or CSV manifest, Wolf's annotation JSON joined with a folder) into entries.
//! - [`intake`] hashes and probes the entries' files and stores them, each failure
//!   with its reason.
//! - [`import`] validates captions made elsewhere (`wolf import`, a leaderboard
//!   upload) whole and stores them as an entry in one transaction, or writes nothing.
//! - [`recaption`] is the core of the VILA² recaption loop: streamed readers of
//!   WebDataset shards, manifests and folders, the prompts, the merge templates, VILA's
//!   caption files, the round's log and its statistics.
//! - [`synth`] renders the synthetic world: clips of coloured shapes with exact
//!   reference captions, tags and per-frame boxes, from a seed.
//!
//! Threads: hashing, probing and rendering are blocking; [`intake`] runs them on
//! tokio's blocking threads, at most one per core; [`synth`] uses its own scoped
//! threads; [`recaption`]'s readers and writers block and start no threads.

pub mod import;
pub mod intake;
pub mod recaption;
pub mod sources;
pub mod synth;
