//! Scoring captions against references for wolf: CapScore (the LLM judge, listwise and
//! pointwise), classic metrics (BLEU, METEOR, ROUGE-L, CIDEr-D), embedding similarity
//! and token-efficiency curves.
//!
//! So far: [`similarity`], the embedding similarity of captions to references (what the
//! demo prints), and [`capscore`]'s prompts, strict reply parsers, listwise shuffling
//! and bootstrap intervals. The judge runner, the classic metrics and the commands land
//! with the scoring issue.
//! [`classic`]: BLEU-1…4, METEOR, ROUGE-L and CIDEr-D as pycocoevalcap computes them.

pub mod capscore;
pub mod classic;
pub mod efficiency;
pub mod judge;
pub mod similarity;
