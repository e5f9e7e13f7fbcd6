//! BLEU-1…4 exactly as pycocoevalcap's `bleu_scorer.py` (David Chiang's scorer as
//! modified for COCO) computes them with `option='closest'`.
//!
//! Clipped n-gram precisions against the references' maximum counts; the effective
//! reference length is the reference length closest to the candidate's (the shorter on a
//! tie); the brevity penalty `exp(1 - r/c)` applies when the candidate is shorter. The
//! corpus score pools the counts of all items (it is not the mean of the item scores).
//! The constants `1e-15` (added to the matches) and `1e-9` (added to the guesses) keep an
//! empty candidate at zero instead of dividing by zero; they are kept as they are so that the
//! numbers agree to the last bits.

use std::collections::HashMap;

use super::TokenizedPair;

const N: usize = 4;
/// Added to the clipped matches (`tiny` in the Python code).
const TINY: f64 = 1e-15;
/// Added to the candidate's n-gram count (`small` in the Python code).
const SMALL: f64 = 1e-9;

/// BLEU-1…4 of a corpus and of each item.
#[derive(Clone, Debug, PartialEq)]
pub struct Bleu {
    pub corpus: [f64; N],
    pub items: Vec<[f64; N]>,
}

/// One item's sufficient statistics.
struct Cooked {
    test_len: usize,
    ref_len: usize,
    guess: [usize; N],
    correct: [usize; N],
}

fn cook(pair: &TokenizedPair) -> Cooked {
    let test: Vec<&str> = pair.candidate.split_whitespace().collect();
    let mut max_counts: HashMap<Vec<&str>, usize> = HashMap::new();
    let mut ref_lens = Vec::with_capacity(pair.references.len());
    for r in &pair.references {
        let words: Vec<&str> = r.split_whitespace().collect();
        ref_lens.push(words.len());
        for k in 1..=N {
            let mut local: HashMap<&[&str], usize> = HashMap::new();
            for gram in words.windows(k) {
                *local.entry(gram).or_insert(0) += 1;
            }
            for (gram, count) in local {
                let e = max_counts.entry(gram.to_vec()).or_insert(0);
                *e = (*e).max(count);
            }
        }
    }
    let test_len = test.len();
    // 'closest': min over (|l - c|, l), so the shorter reference wins a tie.
    let ref_len = ref_lens
        .iter()
        .copied()
        .min_by_key(|&l| (l.abs_diff(test_len), l))
        .unwrap_or(0);
    let mut guess = [0; N];
    let mut correct = [0; N];
    for k in 0..N {
        guess[k] = (test_len + 1).saturating_sub(k + 1);
        let mut local: HashMap<&[&str], usize> = HashMap::new();
        for gram in test.windows(k + 1) {
            *local.entry(gram).or_insert(0) += 1;
        }
        for (gram, count) in local {
            correct[k] += count.min(max_counts.get(gram).copied().unwrap_or(0));
        }
    }
    Cooked {
        test_len,
        ref_len,
        guess,
        correct,
    }
}

/// BLEU-1…4 from pooled or single-item counts, as `compute_score` does.
fn score(test_len: f64, ref_len: f64, guess: &[f64; N], correct: &[f64; N]) -> [f64; N] {
    let mut out = [0.0; N];
    let mut bleu = 1.0;
    for k in 0..N {
        bleu *= (correct[k] + TINY) / (guess[k] + SMALL);
        out[k] = bleu.powf(1.0 / (k as f64 + 1.0));
    }
    let ratio = (test_len + TINY) / (ref_len + SMALL);
    if ratio < 1.0 {
        for v in &mut out {
            *v *= (1.0 - 1.0 / ratio).exp();
        }
    }
    out
}

/// BLEU-1…4 of tokenized pairs (corpus-level and per item).
pub fn bleu(pairs: &[TokenizedPair]) -> Bleu {
    let cooked: Vec<Cooked> = pairs.iter().map(cook).collect();
    let mut items = Vec::with_capacity(cooked.len());
    let (mut test_total, mut ref_total) = (0usize, 0usize);
    let mut guess_total = [0usize; N];
    let mut correct_total = [0usize; N];
    for c in &cooked {
        test_total += c.test_len;
        ref_total += c.ref_len;
        for k in 0..N {
            guess_total[k] += c.guess[k];
            correct_total[k] += c.correct[k];
        }
        items.push(score(
            c.test_len as f64,
            c.ref_len as f64,
            &c.guess.map(|g| g as f64),
            &c.correct.map(|g| g as f64),
        ));
    }
    let corpus = score(
        test_total as f64,
        ref_total as f64,
        &guess_total.map(|g| g as f64),
        &correct_total.map(|g| g as f64),
    );
    Bleu { corpus, items }
}

#[cfg(test)]
mod tests {
    use super::super::tests::pair;
    use super::*;

    #[test]
    fn identical_text_scores_one() {
        let b = bleu(&[pair(
            "a red circle moves to the right",
            &["a red circle moves to the right"],
        )]);
        for v in b.corpus {
            assert!((v - 1.0).abs() < 1e-9, "{v}");
        }
    }

    #[test]
    fn empty_candidate_scores_zero() {
        let b = bleu(&[pair("", &["a red circle"])]);
        for v in b.items[0] {
            assert!(v.abs() < 1e-9, "{v}");
        }
    }

    #[test]
    fn clips_repeated_words_and_penalises_brevity() {
        // "the the the" against "the cat": one clipped unigram match out of three.
        let b = bleu(&[pair("the the the", &["the cat"])]);
        assert!((b.items[0][0] - 1.0 / 3.0).abs() < 1e-6);
        // A one-word candidate of a four-word reference: precision 1, penalty exp(1 - 4).
        let b = bleu(&[pair("cat", &["the cat sat down"])]);
        assert!((b.items[0][0] - (-3.0f64).exp()).abs() < 1e-6);
    }

    #[test]
    fn closest_reference_length_prefers_the_shorter_on_a_tie() {
        let c = cook(&pair("a b c", &["a b c d", "a b"]));
        assert_eq!(c.ref_len, 2);
    }
}
