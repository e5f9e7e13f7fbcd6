//! Datasets for wolf: reading sources into the store, the synthetic world, and the
//! core of the recaption loop.
//!
//! - [`files`] says which files are videos and images, which are hidden, and how a
//!   file under a folder is keyed: the one list that [`sources`] and [`recaption`]
//!   share, and the error of a source that cannot be opened.
//! - [`sources`] reads what `wolf dataset add` is pointed at (a folder of videos, a
//!   JSONL, CSV or Parquet manifest with its column mapping, WebDataset shards through
//!   [`shards`], Wolf's annotation JSON joined with a folder) into entries.
//! - [`shards`] reads WebDataset shards as a dataset: videos in place in uncompressed
//!   shards, gzipped ones extracted once into a content-addressed cache, an index that
//!   spares unchanged shards.
//! - [`overview`] is what `wolf dataset show` prints of a stored dataset.
//! - [`intake`] hashes and probes the entries' files and stores them, each failure
//!   with its reason.
//! - [`import`] validates captions made elsewhere (`wolf import`, a leaderboard
//!   upload) whole and stores them as an entry in one transaction, or writes nothing.
//! - [`recaption`] is the core of the VILA² recaption loop: streamed readers of
//!   WebDataset shards, manifests and folders, the prompts, the merge templates, VILA's
//!   caption files, the round's log and its statistics.
//! - [`hf`] writes a run as a Hugging Face dataset folder with its dataset card.
//! - [`tables`] writes rows as JSON Lines or CSV (`wolf report --per-video`).
//! - `tar` streams tar archives member by member (WebDataset shards).
//! - [`synth`] renders the synthetic world: clips of coloured shapes with exact
//!   reference captions, tags and per-frame boxes, from a seed.
//!
//! Threads: hashing, probing and rendering are blocking; [`intake`] runs them on
//! tokio's blocking threads, at most one per core; [`synth`] uses its own scoped
//! threads; [`recaption`]'s readers and writers block and start no threads.

pub mod files;
pub mod hf;
pub mod import;
pub mod intake;
pub mod overview;
pub mod recaption;
pub mod shards;
pub mod sources;
pub mod synth;
pub mod tables;
mod tar;
