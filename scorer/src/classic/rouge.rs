//! ROUGE-L as pycocoevalcap's `rouge.py` computes it (Lin 2004, with beta 1.2).
//!
//! For each reference the longest common subsequence (LCS) of tokens gives a precision
//! (LCS / candidate length) and a recall (LCS / reference length); the maxima over the
//! references, taken separately, make the F-measure
//! `(1 + b²) P R / (R + b² P)`. Tokens are the caption split on single spaces, as in the
//! Python code, so an empty caption is one empty token. The corpus score is the mean of
//! the item scores.

use super::TokenizedPair;

/// Recall's weight over precision.
const BETA: f64 = 1.2;

/// Length of the longest common subsequence of two token lists.
fn lcs(a: &[&str], b: &[&str]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// ROUGE-L of one candidate against its references.
pub fn rouge_l(candidate: &str, references: &[String]) -> f64 {
    let c: Vec<&str> = candidate.split(' ').collect();
    let (mut p_max, mut r_max) = (0.0f64, 0.0f64);
    for r in references {
        let r: Vec<&str> = r.split(' ').collect();
        let l = lcs(&r, &c) as f64;
        p_max = p_max.max(l / c.len() as f64);
        r_max = r_max.max(l / r.len() as f64);
    }
    if p_max != 0.0 && r_max != 0.0 {
        let b2 = BETA.powi(2);
        ((1.0 + b2) * p_max * r_max) / (r_max + b2 * p_max)
    } else {
        0.0
    }
}

/// ROUGE-L of tokenized pairs: (corpus mean, per item).
pub fn rouge(pairs: &[TokenizedPair]) -> (f64, Vec<f64>) {
    let items: Vec<f64> = pairs
        .iter()
        .map(|p| rouge_l(&p.candidate, &p.references))
        .collect();
    (super::mean(&items), items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_is_one_and_disjoint_is_zero() {
        assert!((rouge_l("a red circle", &["a red circle".into()]) - 1.0).abs() < 1e-12);
        assert_eq!(rouge_l("blue square", &["a red circle".into()]), 0.0);
        assert_eq!(rouge_l("", &["a red circle".into()]), 0.0);
    }

    #[test]
    fn maxima_of_precision_and_recall_are_taken_separately() {
        // Reference 1 gives P = 1, R = 0.5; reference 2 gives P = 0.5, R = 1.
        let s = rouge_l("a b", &["a b c d".into(), "a".into()]);
        let want = (1.0 + 1.44) * 1.0 * 1.0 / (1.0 + 1.44 * 1.0);
        assert!((s - want).abs() < 1e-12, "{s}");
    }

    #[test]
    fn lcs_is_a_subsequence_not_a_substring() {
        assert_eq!(lcs(&["a", "x", "b", "y", "c"], &["a", "b", "c"]), 3);
    }
}
