//! The classic metrics against pycocoevalcap on the committed caption pairs.
//!
//! `tests/data/classic_pairs.json` holds 260 (candidate, references) pairs and
//! `tests/data/classic_reference.json` pycocoevalcap 1.2's scores of them, the Java PTB
//! tokenizer's output, METEOR's normalised lines and the Snowball stems (both written by
//! `tools/classic_reference.py`). The metrics are checked twice: on the Java tokenizer's
//! output (the metric code alone) and end to end from the raw captions (with the Rust
//! tokenizer). Tolerances are in `docs/METRICS.md`.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;
use wolf_scorer::classic::{self, MetricScores, TokenizedPair, meteor, stem, tokenize};

/// BLEU, ROUGE-L and CIDEr-D: relative difference allowed on corpus scores, and absolute
/// difference allowed on item scores (float summation order is all that differs).
const EXACT_REL: f64 = 1e-9;
const EXACT_ABS: f64 = 1e-9;
/// METEOR against the jar run with `-m "exact stem"`: the same algorithm.
const METEOR_PORT_ABS: f64 = 1e-9;
/// METEOR (exact + stem) against pycocoevalcap's METEOR (exact, stem, synonym, paraphrase),
/// measured on these pairs: corpus 0.452620 vs 0.462879 (-0.0103); items: max |diff| 0.491,
/// mean |diff| 0.0136, 192 of 260 identical (see docs/METRICS.md for why).
const METEOR_CORPUS_ABS: f64 = 0.015;
const METEOR_ITEM_ABS: f64 = 0.5;
const METEOR_ITEM_MEAN_ABS: f64 = 0.02;
const METEOR_ITEMS_IDENTICAL: f64 = 0.7;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(name: &str) -> Value {
    let path = root().join("tests/data").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("the test data"))
        .expect("valid JSON")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

fn raw_pairs(pairs: &Value) -> Vec<(String, Vec<String>)> {
    pairs["pairs"]
        .as_array()
        .expect("`pairs`")
        .iter()
        .map(|p| {
            (
                p["candidate"].as_str().unwrap().to_string(),
                strings(&p["references"]),
            )
        })
        .collect()
}

fn java_tokenized(reference: &Value) -> Vec<TokenizedPair> {
    reference["tokenized"]
        .as_array()
        .expect("`tokenized`")
        .iter()
        .map(|t| TokenizedPair {
            candidate: t["candidate"].as_str().unwrap().to_string(),
            references: strings(&t["references"]),
        })
        .collect()
}

/// pycocoevalcap's (corpus, items) for one metric.
fn expected(reference: &Value, metric: &str) -> (f64, Vec<f64>) {
    let m = &reference["scores"][metric];
    let items = m["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    (m["corpus"].as_f64().expect("corpus"), items)
}

fn column(items: &[MetricScores], metric: &str) -> Vec<f64> {
    items
        .iter()
        .map(|s| s.get(metric).expect("a metric name"))
        .collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Checks BLEU, ROUGE-L and CIDEr-D of `got` against pycocoevalcap.
fn assert_exact_metrics(got: &classic::ClassicScores, reference: &Value, what: &str) {
    for metric in ["bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider_d"] {
        let (corpus, items) = expected(reference, metric);
        let c = got.corpus.get(metric).unwrap();
        let rel = (c - corpus).abs() / corpus.abs().max(1e-12);
        let item_diff = max_abs_diff(&column(&got.items, metric), &items);
        eprintln!(
            "{what} {metric}: corpus {c:.12} vs {corpus:.12} (rel {rel:.1e}), items max |diff| {item_diff:.1e}"
        );
        assert!(
            rel <= EXACT_REL,
            "{what} {metric} corpus: {c} vs pycocoevalcap {corpus}"
        );
        assert!(
            item_diff <= EXACT_ABS,
            "{what} {metric} items differ by up to {item_diff}"
        );
    }
}

#[test]
fn the_pairs_are_enough_and_realistic() {
    let pairs = raw_pairs(&load("classic_pairs.json"));
    assert!(pairs.len() >= 200, "{} pairs", pairs.len());
    assert!(pairs.iter().all(|(_, refs)| (1..=5).contains(&refs.len())));
}

#[test]
fn tokenizer_agrees_with_the_java_ptb_tokenizer_on_every_caption() {
    let pairs = raw_pairs(&load("classic_pairs.json"));
    let java = java_tokenized(&load("classic_reference.json"));
    let mut total = 0;
    let mut wrong = Vec::new();
    for ((candidate, refs), t) in pairs.iter().zip(&java) {
        for (raw, want) in
            std::iter::once((candidate, &t.candidate)).chain(refs.iter().zip(&t.references))
        {
            total += 1;
            let got = tokenize::tokenize(raw);
            if &got != want {
                wrong.push(format!("{raw:?}\n  rust: {got}\n  java: {want}"));
            }
        }
    }
    eprintln!(
        "tokenizer: {}/{total} captions as the Java tokenizer",
        total - wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "{} of {total} captions differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn tokenizer_agrees_on_the_hard_probes() {
    let reference = load("classic_reference.json");
    let probes = reference["tokenizer_probes"]
        .as_array()
        .expect("`tokenizer_probes`");
    let mut wrong = Vec::new();
    for p in probes {
        let text = p["text"].as_str().unwrap();
        let got = tokenize::ptb_tokens(text).join(" ");
        let want = p["ptb"].as_str().unwrap();
        if got != want {
            wrong.push(format!("{text:?}\n  rust: {got}\n  java: {want}"));
        }
    }
    eprintln!(
        "tokenizer probes: {}/{} as the Java tokenizer",
        probes.len() - wrong.len(),
        probes.len()
    );
    assert!(
        wrong.is_empty(),
        "{} probes differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn bleu_rouge_cider_match_pycocoevalcap_on_the_java_tokens() {
    let reference = load("classic_reference.json");
    let tokenized = java_tokenized(&reference);
    let start = Instant::now();
    let got = classic::score_tokenized(&tokenized);
    eprintln!(
        "score_tokenized on {} pairs: {:.1} ms",
        tokenized.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    assert_exact_metrics(&got, &reference, "java tokens");
}

#[test]
fn all_metrics_match_pycocoevalcap_end_to_end() {
    let reference = load("classic_reference.json");
    let pairs = raw_pairs(&load("classic_pairs.json"));
    let start = Instant::now();
    let got = classic::score_all(&pairs);
    eprintln!(
        "score_all on {} pairs: {:.1} ms",
        pairs.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    assert_exact_metrics(&got, &reference, "end to end");
    let (corpus, items) = expected(&reference, "meteor_exact_stem");
    assert!((got.corpus.meteor - corpus).abs() <= METEOR_PORT_ABS);
    assert!(max_abs_diff(&column(&got.items, "meteor"), &items) <= METEOR_PORT_ABS);
}

#[test]
fn meteor_matches_the_jar_restricted_to_exact_and_stem() {
    let reference = load("classic_reference.json");
    let (got_corpus, got_items) = meteor::meteor(&java_tokenized(&reference));
    let (corpus, items) = expected(&reference, "meteor_exact_stem");
    let diff = max_abs_diff(&got_items, &items);
    eprintln!(
        "meteor vs jar exact+stem: corpus {got_corpus:.12} vs {corpus:.12}, items max |diff| {diff:.1e}"
    );
    assert!(
        (got_corpus - corpus).abs() <= METEOR_PORT_ABS,
        "{got_corpus} vs {corpus}"
    );
    assert!(diff <= METEOR_PORT_ABS, "items differ by up to {diff}");
}

#[test]
fn meteor_stays_within_the_measured_distance_of_pycocoevalcap() {
    let reference = load("classic_reference.json");
    let (got_corpus, got_items) = meteor::meteor(&java_tokenized(&reference));
    let (corpus, items) = expected(&reference, "meteor");
    let max = max_abs_diff(&got_items, &items);
    let mean = got_items
        .iter()
        .zip(&items)
        .map(|(a, b)| (a - b).abs())
        .sum::<f64>()
        / items.len() as f64;
    let higher = got_items
        .iter()
        .zip(&items)
        .filter(|(a, b)| **a > **b + 1e-12)
        .count();
    eprintln!(
        "meteor vs pycocoevalcap: corpus {got_corpus:.6} vs {corpus:.6} (diff {:.4}), items max |diff| {max:.4}, \
         mean |diff| {mean:.4}, {higher} items higher",
        got_corpus - corpus
    );
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        (got_items[b] - items[b])
            .abs()
            .total_cmp(&(got_items[a] - items[a]).abs())
    });
    let tokenized = java_tokenized(&reference);
    for &i in order.iter().take(5) {
        eprintln!(
            "  item {i}: {:.4} vs {:.4}: {:?} / {:?}",
            got_items[i], items[i], tokenized[i].candidate, tokenized[i].references
        );
    }
    let within = |t: f64| {
        got_items
            .iter()
            .zip(&items)
            .filter(|(a, b)| (**a - **b).abs() <= t)
            .count()
    };
    eprintln!(
        "  items within 1e-9: {}, within 0.01: {}, within 0.05: {}, of {}",
        within(1e-9),
        within(0.01),
        within(0.05),
        items.len()
    );
    assert!(
        (got_corpus - corpus).abs() <= METEOR_CORPUS_ABS,
        "{got_corpus} vs {corpus}"
    );
    assert!(max <= METEOR_ITEM_ABS, "an item differs by {max}");
    let identical = within(1e-9) as f64 / items.len() as f64;
    assert!(
        identical >= METEOR_ITEMS_IDENTICAL,
        "only {identical:.2} of the items are identical"
    );
    assert!(
        mean <= METEOR_ITEM_MEAN_ABS,
        "items differ by {mean} on average"
    );
}

#[test]
fn meteor_normalizer_matches_the_jar() {
    let reference = load("classic_reference.json");
    let lines = reference["meteor_normalized"]
        .as_object()
        .expect("`meteor_normalized`");
    let wrong: Vec<String> = lines
        .iter()
        .filter(|(line, want)| meteor::normalize(line).to_lowercase() != want.as_str().unwrap())
        .map(|(line, want)| {
            format!(
                "{line:?}\n  rust: {}\n  java: {want}",
                meteor::normalize(line)
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} lines differ:\n{}",
        wrong.len(),
        lines.len(),
        wrong.join("\n")
    );
}

#[test]
fn snowball_stemmer_matches_the_jar() {
    let reference = load("classic_reference.json");
    let stems = reference["stems"].as_object().expect("`stems`");
    let wrong: Vec<String> = stems
        .iter()
        .filter(|(word, want)| stem::stem(word) != want.as_str().unwrap())
        .map(|(word, want)| format!("{word}: rust {} java {want}", stem::stem(word)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} stems differ:\n{}",
        wrong.len(),
        stems.len(),
        wrong.join("\n")
    );
}
