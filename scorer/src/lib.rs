//! Scoring captions against references for wolf: CapScore (the LLM judge, listwise and
//! pointwise), classic metrics (BLEU, METEOR, ROUGE-L, CIDEr-D), embedding similarity,
//! token-efficiency curves, and the truth metric for worlds whose truth is known.
//!
//! - [`capscore`]: the judge's prompts, strict reply parsers, listwise shuffling and
//!   bootstrap intervals; [`judge`]: the runner, with its cache and concurrency bound;
//! - [`classic`]: BLEU-1…4, METEOR, ROUGE-L and CIDEr-D as pycocoevalcap computes them;
//! - [`similarity`]: embedding similarity; [`efficiency`]: token-efficiency curves;
//! - [`truth`]: `truth_precision`, `truth_recall` and `truth_f1` of a caption against the
//!   synthetic world's `boxes.json`; [`correlation`]: Kendall's tau-b, and each metric's
//!   rank correlation with another over the scored captions;
//! - [`dense`]: dense-captioning scores (ActivityNet Captions' tIoU precision, recall
//!   and METEOR) and shot-boundary precision, recall and F1;
//! - [`report`]: scores summarised per entry and metric (means, intervals, failures),
//!   for `wolf report`, the demo and the leaderboard;
//! - [`run`]: the scoring run (a run's captions scored with the metrics asked for and
//!   stored), which `wolf score`, the demo, the leaderboard's submissions and the
//!   recaption loop share.
//!
//! Everything here is plain computation on the caller's threads, except [`judge`],
//! which keeps a bounded number of judge requests in flight on the async runtime.

pub mod capscore;
pub mod classic;
pub mod correlation;
pub mod dense;
pub mod efficiency;
pub mod judge;
pub mod report;
pub mod run;
pub mod similarity;
pub mod truth;
