//! Embedding similarity: the cosine of a caption's and its reference's sentence
//! embeddings, and its mean per source.

use std::collections::BTreeMap;

use wolf_pipeline::models::{Embedder, ModelError};

/// The cosine of two vectors (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot =
        |x: &[f32], y: &[f32]| -> f64 { x.iter().zip(y).map(|(p, q)| *p as f64 * *q as f64).sum() };
    let norms = (dot(a, a) * dot(b, b)).sqrt();
    if norms == 0.0 { 0.0 } else { dot(a, b) / norms }
}

/// One caption to compare with its reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub source: String,
    pub caption: String,
    pub reference: String,
}

/// The mean similarity and the number of captions, per source.
pub async fn mean_by_source(
    embedder: &dyn Embedder,
    pairs: &[Pair],
) -> Result<BTreeMap<String, (f64, usize)>, ModelError> {
    let mut texts = Vec::with_capacity(pairs.len() * 2);
    for p in pairs {
        texts.push(p.caption.clone());
        texts.push(p.reference.clone());
    }
    let vectors = embedder.embed(&texts).await?;
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for (p, v) in pairs.iter().zip(vectors.chunks(2)) {
        let entry = sums.entry(p.source.clone()).or_default();
        entry.0 += cosine(&v[0], &v[1]);
        entry.1 += 1;
    }
    Ok(sums
        .into_iter()
        .map(|(s, (sum, n))| (s, (sum / n as f64, n)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_parallel_orthogonal_and_zero_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 1.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }
}
