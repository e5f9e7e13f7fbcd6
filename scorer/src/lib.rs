//! Scoring captions against references for wolf: CapScore (the LLM judge, listwise and
//! pointwise), classic metrics (BLEU, METEOR, ROUGE-L, CIDEr-D), embedding similarity
//! and token-efficiency curves.
//!
//! Nothing is scored yet: this crate lands with the scoring issue. It exists now so that
//! the workspace has its final shape and dependency direction (DESIGN.md "Layout").
