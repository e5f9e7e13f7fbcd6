//! Classic reference metrics of the COCO caption evaluation: BLEU-1…4, METEOR, ROUGE-L
//! and CIDEr-D, computed the way pycocoevalcap computes them.
//!
//! Captions are first tokenized as pycocoevalcap's `PTBTokenizer` does ([`tokenize`]),
//! then every metric works on the space-joined tokens. BLEU, ROUGE-L and CIDEr-D reproduce
//! pycocoevalcap's numbers to rounding; METEOR is METEOR 1.5 with its exact and stem
//! modules only (no WordNet synonyms or paraphrase table), so it is lower than
//! pycocoevalcap's METEOR by an amount measured in `docs/METRICS.md`. Corpus-level values
//! are what COCO reports: pooled counts for BLEU and METEOR, means for ROUGE-L and
//! CIDEr-D (whose IDF comes from the scored set's own references, so a score depends on
//! the set it was computed with). Everything runs on the caller's thread.

pub mod bleu;
pub mod cider;
pub mod meteor;
pub mod rouge;
pub mod stem;
pub mod tokenize;

/// One candidate and its references, tokenized (tokens joined by single spaces).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenizedPair {
    pub candidate: String,
    pub references: Vec<String>,
}

impl TokenizedPair {
    /// Tokenizes a raw candidate and its references with [`tokenize::tokenize`].
    pub fn from_raw(candidate: &str, references: &[String]) -> Self {
        Self {
            candidate: tokenize::tokenize(candidate),
            references: references.iter().map(|r| tokenize::tokenize(r)).collect(),
        }
    }
}

/// The classic metrics' values for one item or for a corpus.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MetricScores {
    pub bleu1: f64,
    pub bleu2: f64,
    pub bleu3: f64,
    pub bleu4: f64,
    pub meteor: f64,
    pub rouge_l: f64,
    pub cider_d: f64,
}

impl MetricScores {
    /// The metric names used in reports, in report order.
    pub const NAMES: [&'static str; 7] = [
        "bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider_d",
    ];

    /// The values with their report names, in report order.
    pub fn named(&self) -> [(&'static str, f64); 7] {
        let v = [
            self.bleu1,
            self.bleu2,
            self.bleu3,
            self.bleu4,
            self.meteor,
            self.rouge_l,
            self.cider_d,
        ];
        std::array::from_fn(|i| (Self::NAMES[i], v[i]))
    }

    /// One value by its report name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.named()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }
}

/// Corpus-level and per-item scores of a set of pairs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClassicScores {
    pub corpus: MetricScores,
    pub items: Vec<MetricScores>,
}

/// Scores raw captions: `(candidate, references)` pairs, tokenized here.
pub fn score_all(pairs: &[(String, Vec<String>)]) -> ClassicScores {
    let tokenized: Vec<TokenizedPair> = pairs
        .iter()
        .map(|(c, r)| TokenizedPair::from_raw(c, r))
        .collect();
    score_tokenized(&tokenized)
}

/// Scores pairs that are already tokenized (for example by the Java tokenizer).
///
/// Every pair should have at least one reference (pycocoevalcap refuses input without
/// one); a pair without any scores zero on every metric and still counts in the corpus.
pub fn score_tokenized(pairs: &[TokenizedPair]) -> ClassicScores {
    if pairs.is_empty() {
        return ClassicScores::default();
    }
    let b = bleu::bleu(pairs);
    let (meteor_corpus, meteor_items) = meteor::meteor(pairs);
    let (rouge_corpus, rouge_items) = rouge::rouge(pairs);
    let (cider_corpus, cider_items) = cider::cider_d(pairs);
    let items = (0..pairs.len())
        .map(|i| {
            if pairs[i].references.is_empty() {
                return MetricScores::default();
            }
            let [bleu1, bleu2, bleu3, bleu4] = b.items[i];
            MetricScores {
                bleu1,
                bleu2,
                bleu3,
                bleu4,
                meteor: meteor_items[i],
                rouge_l: rouge_items[i],
                cider_d: cider_items[i],
            }
        })
        .collect();
    let [bleu1, bleu2, bleu3, bleu4] = b.corpus;
    ClassicScores {
        corpus: MetricScores {
            bleu1,
            bleu2,
            bleu3,
            bleu4,
            meteor: meteor_corpus,
            rouge_l: rouge_corpus,
            cider_d: cider_corpus,
        },
        items,
    }
}

/// The arithmetic mean (0 for no values).
fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A pair of texts already tokenized, for the metrics' tests.
    pub(crate) fn pair(candidate: &str, references: &[&str]) -> TokenizedPair {
        TokenizedPair {
            candidate: candidate.to_owned(),
            references: references.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn identical_captions_score_full_marks() {
        let pairs = vec![
            (
                "A red circle moves to the right.".to_string(),
                vec!["A red circle moves to the right.".to_string()],
            ),
            (
                "A blue square falls down.".to_string(),
                vec!["A blue square falls down.".to_string()],
            ),
        ];
        let s = score_all(&pairs);
        for (name, v) in s.corpus.named() {
            let want = if name == "cider_d" { 10.0 } else { 1.0 };
            assert!((v - want).abs() < 1e-6, "{name} = {v}");
        }
    }

    #[test]
    fn empty_input_and_names() {
        assert_eq!(score_all(&[]), ClassicScores::default());
        assert_eq!(MetricScores::default().get("rouge_l"), Some(0.0));
        assert_eq!(MetricScores::default().get("spice"), None);
    }
}
