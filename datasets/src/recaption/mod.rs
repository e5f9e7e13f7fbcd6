//! The library core of the VILA² recaption loop (METHOD.md section 3): reading the
//! pretraining data, choosing prompts, merging captions, writing VILA's caption files
//! and the round's log, and the statistics of a round.
//!
//! - [`input`] streams items (an image or a video with its original caption) out of
//!   WebDataset tar shards, a JSONL manifest or a folder, one sample in memory at a
//!   time; bad input becomes a [`input::Problem`] and the stream goes on.
//! - [`prompts`] holds the three recaption prompts and the three specialist prompts,
//!   and draws one recaption prompt per item from a seed.
//! - [`merge`] builds the training caption from the original, the recaption and the
//!   specialists' answers.
//! - [`output`] writes the caption files (one JSON per shard) and the round's JSONL,
//!   both safe against a crash.
//! - [`shards_out`] writes a round's captions back into copies of its WebDataset
//!   shards (`--write-shards`).
//! - [`stats`] summarises a round: caption lengths, vocabulary, duplicates, failures.
//! - [`round`] runs one round with an image captioner: resumable item by item.
//! - [`driver`] runs rounds with a config's models, the loop with `train_cmd` between
//!   rounds, and the held-out check through the store.
//!
//! The readers and writers block; [`round`] runs the reader on a blocking thread and
//! keeps a bounded number of items with the captioner on the async runtime.

pub mod driver;
pub mod input;
pub mod merge;
pub mod output;
pub mod prompts;
pub mod round;
pub mod shards_out;
pub mod stats;
