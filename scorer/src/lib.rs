//! Scoring captions against references for wolf: CapScore (the LLM judge, listwise and
//! pointwise), classic metrics (BLEU, METEOR, ROUGE-L, CIDEr-D), embedding similarity
//! and token-efficiency curves.
//!
//! So far: [`similarity`], the embedding similarity of captions to references (what the
//! demo prints). The judge and the classic metrics land with the scoring issue.

pub mod similarity;
