//! CIDEr-D (Vedantam et al. 2015) as the authors' `ciderD_scorer.py` computes it with
//! `df_mode="corpus"`, which is also what pycocoevalcap's `cider_scorer.py` computes.
//!
//! Each caption becomes TF-IDF vectors of its 1- to 4-grams; the document frequency of an
//! n-gram is the number of items whose references contain it, and the IDF is
//! `log(items) - log(max(1, df))`, so it is relative to the corpus being scored. For each
//! reference and each n, the candidate's vector is clipped to the reference's
//! (`min(tf_c, tf_r) * tf_r` summed, over the norms), multiplied by a Gaussian penalty
//! `e^(-(Δ²)/(2·6²))` on the length difference, averaged over n = 1…4 and over the
//! references, and multiplied by 10. The length in the code is the number of bigrams
//! (`if n == 1: length += term_freq`), kept as is; it is the word count minus one for any
//! caption of at least one word.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::TokenizedPair;

const N: usize = 4;
const SIGMA: f64 = 6.0;

// Ordered maps: sums over n-grams run in one order, so a score is the same to the last
// bit in every process (a hash map's order changes from run to run).
type Counts<'a> = BTreeMap<&'a [&'a str], usize>;

fn counts<'a>(words: &'a [&'a str]) -> Counts<'a> {
    let mut c = Counts::new();
    for k in 1..=N {
        for gram in words.windows(k) {
            *c.entry(gram).or_insert(0) += 1;
        }
    }
    c
}

/// TF-IDF vectors (one map per n), their norms, and the bigram count.
struct Vector<'a> {
    vec: [BTreeMap<&'a [&'a str], f64>; N],
    norm: [f64; N],
    length: usize,
}

fn to_vector<'a>(c: &Counts<'a>, df: &HashMap<&[&str], f64>, log_items: f64) -> Vector<'a> {
    let mut vec: [BTreeMap<&[&str], f64>; N] = Default::default();
    let mut norm = [0.0; N];
    let mut length = 0;
    for (&gram, &tf) in c {
        let d = df.get(gram).copied().unwrap_or(0.0).max(1.0).ln();
        let n = gram.len() - 1;
        let v = tf as f64 * (log_items - d);
        vec[n].insert(gram, v);
        norm[n] += v * v;
        if n == 1 {
            length += tf;
        }
    }
    Vector {
        vec,
        norm: norm.map(f64::sqrt),
        length,
    }
}

fn sim(h: &Vector, r: &Vector) -> [f64; N] {
    let delta = h.length as f64 - r.length as f64;
    let penalty = std::f64::consts::E.powf(-(delta * delta) / (2.0 * SIGMA * SIGMA));
    let mut val = [0.0; N];
    for (n, v) in val.iter_mut().enumerate() {
        for (gram, &vh) in &h.vec[n] {
            let vr = r.vec[n].get(gram).copied().unwrap_or(0.0);
            *v += vh.min(vr) * vr;
        }
        if h.norm[n] != 0.0 && r.norm[n] != 0.0 {
            *v /= h.norm[n] * r.norm[n];
        }
        *v *= penalty;
    }
    val
}

/// CIDEr-D of tokenized pairs: (corpus mean, per item). The IDF comes from these pairs'
/// references, so scores depend on the whole set scored together.
pub fn cider_d(pairs: &[TokenizedPair]) -> (f64, Vec<f64>) {
    let words: Vec<(Vec<&str>, Vec<Vec<&str>>)> = pairs
        .iter()
        .map(|p| {
            let refs = p
                .references
                .iter()
                .map(|r| r.split_whitespace().collect())
                .collect();
            (p.candidate.split_whitespace().collect(), refs)
        })
        .collect();
    let cooked: Vec<(Counts, Vec<Counts>)> = words
        .iter()
        .map(|(c, refs)| (counts(c), refs.iter().map(|r| counts(r)).collect()))
        .collect();
    let mut df: HashMap<&[&str], f64> = HashMap::new();
    for (_, refs) in &cooked {
        let grams: HashSet<&[&str]> = refs.iter().flat_map(|r| r.keys().copied()).collect();
        for g in grams {
            *df.entry(g).or_insert(0.0) += 1.0;
        }
    }
    let log_items = (cooked.len() as f64).ln();
    let items: Vec<f64> = cooked
        .iter()
        .map(|(test, refs)| {
            if refs.is_empty() {
                return 0.0;
            }
            let h = to_vector(test, &df, log_items);
            let mut score = [0.0; N];
            for r in refs {
                let r = to_vector(r, &df, log_items);
                for (s, v) in score.iter_mut().zip(sim(&h, &r)) {
                    *s += v;
                }
            }
            let mean = score.iter().sum::<f64>() / N as f64;
            mean / refs.len() as f64 * 10.0
        })
        .collect();
    (super::mean(&items), items)
}

#[cfg(test)]
mod tests {
    use super::super::tests::pair;
    use super::*;

    #[test]
    fn a_copy_of_a_rare_reference_scores_ten() {
        // With two items, n-grams found in only one item's references have IDF log 2;
        // a candidate equal to its single reference then has cosine 1 for every n.
        let pairs = [
            pair("a red circle moves", &["a red circle moves"]),
            pair("blue squares fall", &["blue squares fall"]),
        ];
        let (_, items) = cider_d(&pairs);
        assert!((items[0] - 10.0).abs() < 1e-9, "{}", items[0]);
    }

    #[test]
    fn ngrams_in_every_item_carry_no_weight() {
        // "the" is in both items' references: IDF 0, so matching only it scores 0.
        let pairs = [
            pair("the", &["the red circle"]),
            pair("the blue square", &["the blue square"]),
        ];
        let (_, items) = cider_d(&pairs);
        assert_eq!(items[0], 0.0);
    }

    #[test]
    fn empty_candidate_scores_zero() {
        let (_, items) = cider_d(&[pair("", &["a red circle"]), pair("x", &["y"])]);
        assert_eq!(items[0], 0.0);
    }
}
