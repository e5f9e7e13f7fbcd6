//! Statistics of a round over its merged captions: how many, how long (mean, standard
//! deviation and percentiles of words), how varied (vocabulary size, duplicate rate),
//! and what was left out, by kind. The method tracks the mean length from round to
//! round (11.9 → 101 → 117 → 127 → 126 words) and stops when a round stops helping.
//!
//! Words are the caption's whitespace-separated tokens. The vocabulary counts distinct
//! words lower-cased with their leading and trailing punctuation removed (so `Dog,`
//! and `dog` are one word and the template's `###` is none). Percentiles interpolate
//! linearly between ranks, the deviation is the population's, and a duplicate is a
//! caption identical to an earlier one. [`StatsBuilder`] keeps one word count and one
//! 64-bit hash per caption (about 12 bytes) and the vocabulary; nothing else grows.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::output::{OutputError, Record, read_round};

/// Caption lengths in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordStats {
    pub mean: f64,
    pub std_dev: f64,
    pub min: u64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    pub max: u64,
}

/// The statistics of one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundStats {
    /// Merged captions counted.
    pub captions: u64,
    /// `None` when there are no captions.
    pub words: Option<WordStats>,
    /// Distinct words over all captions.
    pub vocabulary: u64,
    /// Captions identical to an earlier one.
    pub duplicates: u64,
    /// `duplicates / captions` (0 when there are none).
    pub duplicate_rate: f64,
    /// Things left out (failed records).
    pub failed: u64,
    /// Things left out, by problem kind.
    pub failures: BTreeMap<String, u64>,
    /// Problems that did not stop their items, by kind.
    pub notes: BTreeMap<String, u64>,
}

/// Gathers a round's statistics caption by caption.
#[derive(Debug, Default)]
pub struct StatsBuilder {
    words: Vec<u32>,
    vocabulary: HashSet<String>,
    seen: HashSet<u64>,
    duplicates: u64,
    failures: BTreeMap<String, u64>,
    notes: BTreeMap<String, u64>,
}

impl StatsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_caption(&mut self, caption: &str) {
        let mut count = 0u32;
        for token in caption.split_whitespace() {
            count += 1;
            let word = token.trim_matches(|c: char| !c.is_alphanumeric());
            if !word.is_empty() && !self.vocabulary.contains(word) {
                let lower = word.to_lowercase();
                if !self.vocabulary.contains(&lower) {
                    self.vocabulary.insert(lower);
                }
            }
        }
        self.words.push(count);
        let mut hasher = std::hash::DefaultHasher::new();
        caption.hash(&mut hasher);
        if !self.seen.insert(hasher.finish()) {
            self.duplicates += 1;
        }
    }

    pub fn add_failure(&mut self, kind: &str) {
        *self.failures.entry(kind.to_owned()).or_default() += 1;
    }

    pub fn add_note(&mut self, kind: &str) {
        *self.notes.entry(kind.to_owned()).or_default() += 1;
    }

    /// Counts a record of the round's log.
    pub fn add_record(&mut self, record: &Record) {
        match record {
            Record::Done(done) => {
                self.add_caption(&done.caption);
                for note in &done.notes {
                    self.add_note(&note.kind);
                }
            }
            Record::Failed(failed) => self.add_failure(&failed.problem),
        }
    }

    pub fn build(&self) -> RoundStats {
        let captions = self.words.len() as u64;
        RoundStats {
            captions,
            words: word_stats(&self.words),
            vocabulary: self.vocabulary.len() as u64,
            duplicates: self.duplicates,
            duplicate_rate: if captions == 0 {
                0.0
            } else {
                self.duplicates as f64 / captions as f64
            },
            failed: self.failures.values().sum(),
            failures: self.failures.clone(),
            notes: self.notes.clone(),
        }
    }
}

fn word_stats(words: &[u32]) -> Option<WordStats> {
    if words.is_empty() {
        return None;
    }
    let mut sorted = words.to_vec();
    sorted.sort_unstable();
    let n = sorted.len() as f64;
    let mean = sorted.iter().map(|&w| f64::from(w)).sum::<f64>() / n;
    let variance = sorted
        .iter()
        .map(|&w| (f64::from(w) - mean).powi(2))
        .sum::<f64>()
        / n;
    let percentile = |p: f64| {
        let rank = p * (n - 1.0);
        let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
        let (a, b) = (f64::from(sorted[lo]), f64::from(sorted[hi]));
        a + (b - a) * (rank - lo as f64)
    };
    Some(WordStats {
        mean,
        std_dev: variance.sqrt(),
        min: u64::from(sorted[0]),
        p10: percentile(0.10),
        p50: percentile(0.50),
        p90: percentile(0.90),
        max: u64::from(sorted[sorted.len() - 1]),
    })
}

/// The statistics of a round's log. A line that is not a record counts as a
/// `bad_record` failure.
pub fn round_stats(log: &Path) -> Result<RoundStats, OutputError> {
    let mut builder = StatsBuilder::new();
    for record in read_round(log)? {
        match record {
            Ok(record) => builder.add_record(&record),
            Err(e) => builder.add_failure(e.kind()),
        }
    }
    Ok(builder.build())
}

impl RoundStats {
    /// The statistics as a two-column table, one measure a line.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = vec![("captions".into(), self.captions.to_string())];
        match &self.words {
            Some(w) => {
                rows.push(("words mean".into(), format!("{:.1}", w.mean)));
                rows.push(("words std dev".into(), format!("{:.1}", w.std_dev)));
                rows.push((
                    "words p10 / p50 / p90".into(),
                    format!("{:.1} / {:.1} / {:.1}", w.p10, w.p50, w.p90),
                ));
                rows.push(("words min / max".into(), format!("{} / {}", w.min, w.max)));
            }
            None => rows.push(("words".into(), "-".into())),
        }
        rows.push(("vocabulary".into(), self.vocabulary.to_string()));
        rows.push((
            "duplicates".into(),
            format!("{} ({:.1}%)", self.duplicates, 100.0 * self.duplicate_rate),
        ));
        rows.push(("failed".into(), self.failed.to_string()));
        rows.extend(
            self.failures
                .iter()
                .map(|(k, n)| (format!("  {k}"), n.to_string())),
        );
        let noted: u64 = self.notes.values().sum();
        rows.push(("notes".into(), noted.to_string()));
        rows.extend(
            self.notes
                .iter()
                .map(|(k, n)| (format!("  {k}"), n.to_string())),
        );
        let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(label, value)| format!("{label:<width$}  {value}\n"))
            .collect()
    }
}

/// Rounds side by side, one row a round: what `wolf recaption stats` prints.
pub fn rounds_table(rounds: &[(u32, RoundStats)]) -> String {
    let header = [
        "round",
        "captions",
        "failed",
        "words",
        "std dev",
        "p10",
        "p50",
        "p90",
        "vocabulary",
        "duplicates",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for (round, stats) in rounds {
        let words = match &stats.words {
            Some(w) => [w.mean, w.std_dev, w.p10, w.p50, w.p90].map(|v| format!("{v:.1}")),
            None => std::array::from_fn(|_| "-".to_owned()),
        };
        let mut row = vec![
            round.to_string(),
            stats.captions.to_string(),
            stats.failed.to_string(),
        ];
        row.extend(words);
        row.push(stats.vocabulary.to_string());
        row.push(format!("{:.1}%", 100.0 * stats.duplicate_rate));
        rows.push(row);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, &width)| format!("{cell:>width$}"))
                .collect();
            format!("{}\n", cells.join("  "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recaption::output::{Done, Failed, Note, RoundLog};

    fn stats_of(captions: &[&str]) -> RoundStats {
        let mut builder = StatsBuilder::new();
        for caption in captions {
            builder.add_caption(caption);
        }
        builder.build()
    }

    #[test]
    fn lengths_vocabulary_and_duplicates_are_measured() {
        let stats = stats_of(&[
            "A dog runs.",
            "A DOG, running fast!",
            "one two three four five six seven eight nine ten",
            "A dog runs.",
        ]);
        assert_eq!(stats.captions, 4);
        let words = stats.words.as_ref().unwrap();
        // Lengths 3, 4, 10, 3: sorted 3, 3, 4, 10.
        assert_eq!(words.mean, 5.0);
        assert!((words.std_dev - (34.0f64 / 4.0).sqrt()).abs() < 1e-12);
        assert_eq!((words.min, words.max), (3, 10));
        assert!((words.p10 - 3.0).abs() < 1e-12);
        assert!((words.p50 - 3.5).abs() < 1e-12);
        assert!((words.p90 - 8.2).abs() < 1e-12);
        // a, dog, runs, running, fast, one..ten.
        assert_eq!(stats.vocabulary, 5 + 10);
        assert_eq!(stats.duplicates, 1);
        assert_eq!(stats.duplicate_rate, 0.25);
    }

    #[test]
    fn an_empty_round_has_no_word_statistics() {
        let stats = stats_of(&[]);
        assert_eq!(stats.words, None);
        assert_eq!(stats.duplicate_rate, 0.0);
        assert!(
            stats.table().contains("\nwords       -\n"),
            "{}",
            stats.table()
        );
    }

    #[test]
    fn a_round_log_is_counted_with_failures_and_notes_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("round.jsonl");
        let mut log = RoundLog::open(&path).unwrap();
        let done = |key: &str, caption: &str, notes: Vec<Note>| {
            Record::Done(Done {
                notes,
                ..Done::image(key, caption)
            })
        };
        let failed = |problem: &str| {
            Record::Failed(Failed {
                shard: "s".into(),
                key: None,
                media: None,
                problem: problem.into(),
                message: String::new(),
            })
        };
        let note = Note {
            kind: "unknown_member".into(),
            message: String::new(),
        };
        log.append(&done("1", "### Short description:\nA cat.", vec![note]))
            .unwrap();
        log.append(&done("2", "A cat sleeps.", Vec::new())).unwrap();
        log.append(&failed("corrupt_member")).unwrap();
        log.append(&failed("truncated_shard")).unwrap();
        log.append(&failed("corrupt_member")).unwrap();
        drop(log);
        std::fs::write(&path, std::fs::read_to_string(&path).unwrap() + "garbage\n").unwrap();
        let stats = round_stats(&path).unwrap();
        assert_eq!(stats.captions, 2);
        assert_eq!(stats.vocabulary, 5, "short, description, a, cat, sleeps");
        assert_eq!(stats.failed, 4);
        assert_eq!(
            stats.failures,
            BTreeMap::from([
                ("bad_record".to_owned(), 1),
                ("corrupt_member".to_owned(), 2),
                ("truncated_shard".to_owned(), 1),
            ])
        );
        assert_eq!(
            stats.notes,
            BTreeMap::from([("unknown_member".to_owned(), 1)])
        );
        let json = serde_json::to_string(&stats).unwrap();
        let back: RoundStats = serde_json::from_str(&json).unwrap();
        assert_eq!(back, stats);
    }

    #[test]
    fn the_tables_render_plain_text() {
        let mut builder = StatsBuilder::new();
        builder.add_caption("A dog runs.");
        builder.add_caption("A cat sits down.");
        builder.add_failure("missing_caption");
        builder.add_note("unknown_member");
        let stats = builder.build();
        assert_eq!(
            stats.table(),
            "\
captions               2
words mean             3.5
words std dev          0.5
words p10 / p50 / p90  3.1 / 3.5 / 3.9
words min / max        3 / 4
vocabulary             6
duplicates             0 (0.0%)
failed                 1
  missing_caption      1
notes                  1
  unknown_member       1
"
        );
        let table = rounds_table(&[(1, stats.clone()), (2, stats_of(&[]))]);
        assert_eq!(
            table,
            "\
round  captions  failed  words  std dev  p10  p50  p90  vocabulary  duplicates
    1         2       1    3.5      0.5  3.1  3.5  3.9           6        0.0%
    2         0       0      -        -    -    -    -           0        0.0%
"
        );
    }
}
