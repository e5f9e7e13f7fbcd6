//! Dense-captioning evaluation, as ActivityNet Captions' evaluator (`densevid_eval`, the
//! 2018 version) computes it, and shot-boundary precision, recall and F1.
//!
//! Dense captions are timed segments with a sentence each. For every tIoU threshold of
//! [`TIOUS`]:
//! - **precision**: per video, the share of predicted segments whose tIoU with some
//!   reference segment is above the threshold; **recall**: the share of reference segments
//!   with some prediction above it; each averaged over the videos that have references (a
//!   video without predictions counts 0 for both);
//! - **METEOR**: per video, METEOR pooled over the pairs (prediction, reference) whose tIoU
//!   is at least the threshold, a prediction that meets no reference paired with a
//!   reference it cannot match; averaged over the videos that have both predictions and
//!   references (the evaluator leaves videos without predictions out of this mean).
//!
//! The scores are then averaged over the thresholds. METEOR is this crate's (exact and
//! stem modules: lower than the Java jar's with synonyms, `docs/METRICS.md`). Unlike the
//! evaluator, every unmatched prediction gets its pair (its code keeps at most one, by an
//! index it forgets to advance).
//!
//! Shot boundaries are spans of frames in transition (a cut between frames 9 and 10 is
//! `[9, 10]`, a dissolve its frames); a predicted boundary finds a true one when the two
//! spans come within `tolerance` frames of each other, each true boundary found once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::classic::TokenizedPair;
use crate::classic::meteor::meteor;

/// A dataset folder's timed references, in ActivityNet Captions' shape: `{video:
/// {"duration": s, "timestamps": [[start, end], ...], "sentences": [...]}}`.
pub const DENSE_FILE: &str = "dense.json";

/// A dataset folder's true shot transitions (`wolf synth --shots` writes it): `{video:
/// {"transitions": [[first, last], ...], ...}}`, inclusive frame spans.
pub const SHOTS_FILE: &str = "shots.json";

/// The tolerance of shot-boundary matching, in frames.
pub const BOUNDARY_TOLERANCE: u64 = 2;

/// A JSON file's text and value.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<(String, T), DenseError> {
    let text = std::fs::read_to_string(path).map_err(|source| DenseError::Read {
        path: path.to_owned(),
        source,
    })?;
    let value = serde_json::from_str(&text).map_err(|source| DenseError::Json {
        path: path.to_owned(),
        source,
    })?;
    Ok((text, value))
}

/// Reads [`SHOTS_FILE`]: each video's true transitions.
pub fn read_transitions(path: &Path) -> Result<BTreeMap<String, Vec<(u64, u64)>>, DenseError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        transitions: Vec<(u64, u64)>,
    }
    let (_, entries): (_, BTreeMap<String, Entry>) = read_json(path)?;
    Ok(entries
        .into_iter()
        .map(|(k, e)| (k, e.transitions))
        .collect())
}

/// The transitions between consecutive shots given as inclusive frame ranges: from the
/// last frame of one to the first of the next.
pub fn transitions(shots: &[(u64, u64)]) -> Vec<(u64, u64)> {
    shots.windows(2).map(|w| (w[0].1, w[1].0)).collect()
}

/// Seconds a reference segment may run past the stated duration (rounding of frame
/// times).
const END_SLACK_S: f64 = 0.5;

/// Timed references that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DenseError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "`{path}` is not ActivityNet Captions' JSON ({{video: {{duration, timestamps, sentences}}}}): {source}"
    )]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{path}` line {line}, video `{video}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        video: String,
        message: String,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DenseEntry {
    duration: f64,
    timestamps: Vec<[f64; 2]>,
    sentences: Vec<String>,
}

/// Reads and checks timed references ([`DENSE_FILE`]): every segment within the video
/// (`0 ≤ start < end ≤ duration`, half a second of slack at the end), one sentence a
/// segment, no span given twice. An error names the line of the video's entry.
pub fn read_references(path: &Path) -> Result<BTreeMap<String, Vec<Segment>>, DenseError> {
    let (text, entries): (_, BTreeMap<String, DenseEntry>) = read_json(path)?;
    let mut out = BTreeMap::new();
    for (video, entry) in entries {
        let invalid = |message: String| {
            let at = text.find(&format!("\"{video}\"")).unwrap_or(0);
            DenseError::Invalid {
                path: path.to_owned(),
                line: text[..at].matches('\n').count() + 1,
                video: video.clone(),
                message,
            }
        };
        let segments =
            checked_segments(entry.duration, entry.timestamps, entry.sentences).map_err(invalid)?;
        out.insert(video, segments);
    }
    Ok(out)
}

/// Timed sentences checked as [`read_references`] checks a video's entry: one sentence a
/// segment, a positive `duration`, every segment within it (`0 ≤ start < end ≤
/// duration`, half a second of slack at the end), no span given twice. The error says
/// what is wrong.
pub fn checked_segments(
    duration: f64,
    timestamps: Vec<[f64; 2]>,
    sentences: Vec<String>,
) -> Result<Vec<Segment>, String> {
    if timestamps.len() != sentences.len() {
        return Err(format!(
            "{} timestamps for {} sentences",
            timestamps.len(),
            sentences.len()
        ));
    }
    if !(duration.is_finite() && duration > 0.0) {
        return Err(format!(
            "duration {duration} is not a positive number of seconds"
        ));
    }
    let mut segments: Vec<Segment> = Vec::with_capacity(sentences.len());
    for ([start, end], sentence) in timestamps.into_iter().zip(sentences) {
        let problem = if !(start.is_finite() && end.is_finite()) {
            Some("is not a number")
        } else if start > end {
            Some("is reversed")
        } else if start == end {
            Some("is empty")
        } else if start < 0.0 || end > duration + END_SLACK_S {
            Some("falls outside the video")
        } else if segments.iter().any(|s| s.start == start && s.end == end) {
            Some("is given twice")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(format!(
                "segment [{start}, {end}] {problem} (duration {duration} s)"
            ));
        }
        segments.push(Segment {
            start,
            end,
            sentence,
        });
    }
    Ok(segments)
}

/// The tIoU thresholds of ActivityNet Captions.
pub const TIOUS: [f64; 4] = [0.3, 0.5, 0.7, 0.9];

/// A reference sentence no caption can match (the evaluator's).
const GARBAGE: &str = "abc123!@#";

/// A timed sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub sentence: String,
}

/// One video's predicted and reference segments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DenseVideo {
    pub predicted: Vec<Segment>,
    pub references: Vec<Segment>,
}

/// The scores at one threshold, or averaged over [`TIOUS`].
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct DenseScores {
    pub precision: f64,
    pub recall: f64,
    pub meteor: f64,
}

impl DenseScores {
    /// The harmonic mean of precision and recall (0 when both are 0).
    pub fn f1(&self) -> f64 {
        f1(self.precision, self.recall)
    }
}

/// The dense scores of a set of videos: one per threshold of [`TIOUS`], and their mean.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DenseReport {
    pub per_tiou: Vec<(f64, DenseScores)>,
    pub mean: DenseScores,
}

/// Temporal intersection over union of two intervals, as the evaluator computes it
/// (disjoint intervals: their lengths' sum is the union).
pub fn tiou(a: (f64, f64), b: (f64, f64)) -> f64 {
    let intersection = (a.1.min(b.1) - a.0.max(b.0)).max(0.0);
    let union = (a.1.max(b.1) - a.0.min(b.0)).min((a.1 - a.0) + (b.1 - b.0));
    intersection / (union + 1e-8)
}

/// Scores `videos` (those without references are skipped) at every threshold of
/// [`TIOUS`].
pub fn dense_scores(videos: &[DenseVideo]) -> DenseReport {
    let videos: Vec<&DenseVideo> = videos.iter().filter(|v| !v.references.is_empty()).collect();
    let per_tiou: Vec<(f64, DenseScores)> = TIOUS
        .iter()
        .map(|&t| (t, at_threshold(&videos, t)))
        .collect();
    let n = per_tiou.len() as f64;
    let mean = DenseScores {
        precision: per_tiou.iter().map(|(_, s)| s.precision).sum::<f64>() / n,
        recall: per_tiou.iter().map(|(_, s)| s.recall).sum::<f64>() / n,
        meteor: per_tiou.iter().map(|(_, s)| s.meteor).sum::<f64>() / n,
    };
    DenseReport { per_tiou, mean }
}

fn at_threshold(videos: &[&DenseVideo], threshold: f64) -> DenseScores {
    if videos.is_empty() {
        return DenseScores::default();
    }
    let (mut precision, mut recall) = (0.0, 0.0);
    let mut meteors = Vec::new();
    for video in videos {
        let span = |s: &Segment| (s.start, s.end);
        let above = |p: &Segment, r: &Segment| tiou(span(p), span(r)) > threshold;
        let found = |p: &Segment| video.references.iter().any(|r| above(p, r));
        let covered = |r: &Segment| video.predicted.iter().any(|p| above(p, r));
        if !video.predicted.is_empty() {
            let hits = video.predicted.iter().filter(|p| found(p)).count();
            precision += hits as f64 / video.predicted.len() as f64;
        }
        let covered = video.references.iter().filter(|r| covered(r)).count();
        recall += covered as f64 / video.references.len() as f64;

        let mut pairs = Vec::new();
        for p in &video.predicted {
            let matched: Vec<&Segment> = video
                .references
                .iter()
                .filter(|r| tiou(span(p), span(r)) >= threshold)
                .collect();
            if matched.is_empty() {
                pairs.push(TokenizedPair::from_raw(&p.sentence, &[GARBAGE.to_owned()]));
            }
            for r in matched {
                pairs.push(TokenizedPair::from_raw(
                    &p.sentence,
                    std::slice::from_ref(&r.sentence),
                ));
            }
        }
        if !pairs.is_empty() {
            meteors.push(meteor(&pairs).0);
        }
    }
    let n = videos.len() as f64;
    DenseScores {
        precision: precision / n,
        recall: recall / n,
        meteor: if meteors.is_empty() {
            0.0
        } else {
            meteors.iter().sum::<f64>() / meteors.len() as f64
        },
    }
}

/// Shot-boundary agreement: precision, recall, F1, and the counts behind them.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct BoundaryScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub matched: usize,
    pub predicted: usize,
    pub truth: usize,
}

/// Matches predicted boundaries to true ones (inclusive frame spans): a pair matches when
/// the gap between the spans is at most `tolerance` frames; the closest pairs are taken
/// first, and each boundary is used once.
pub fn boundary_scores(
    predicted: &[(u64, u64)],
    truth: &[(u64, u64)],
    tolerance: u64,
) -> BoundaryScores {
    let gap = |a: (u64, u64), b: (u64, u64)| {
        if a.1 < b.0 {
            b.0 - a.1
        } else {
            a.0.saturating_sub(b.1)
        }
    };
    let mut candidates: Vec<(u64, usize, usize)> = Vec::new();
    for (i, &p) in predicted.iter().enumerate() {
        for (j, &t) in truth.iter().enumerate() {
            let g = gap(p, t);
            if g <= tolerance {
                candidates.push((g, i, j));
            }
        }
    }
    candidates.sort_unstable();
    let (mut used_p, mut used_t) = (vec![false; predicted.len()], vec![false; truth.len()]);
    let mut matched = 0;
    for (_, i, j) in candidates {
        if !used_p[i] && !used_t[j] {
            used_p[i] = true;
            used_t[j] = true;
            matched += 1;
        }
    }
    BoundaryScores::from_counts(matched, predicted.len(), truth.len())
}

impl BoundaryScores {
    /// The ratios of these counts (0 where a count they divide by is 0).
    pub fn from_counts(matched: usize, predicted: usize, truth: usize) -> Self {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (precision, recall) = (ratio(matched, predicted), ratio(matched, truth));
        Self {
            precision,
            recall,
            f1: f1(precision, recall),
            matched,
            predicted,
            truth,
        }
    }

    /// Several sets' scores pooled: their counts summed, the ratios recomputed.
    pub fn pooled(parts: &[Self]) -> Self {
        let sum = |count: fn(&Self) -> usize| parts.iter().map(count).sum();
        Self::from_counts(sum(|s| s.matched), sum(|s| s.predicted), sum(|s| s.truth))
    }
}

fn f1(precision: f64, recall: f64) -> f64 {
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_out_of_the_video_reversed_or_repeated_are_refused_with_their_line() {
        let dir = std::env::temp_dir().join(format!("wolf-dense-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(DENSE_FILE);
        let entry = |stamps: &str| {
            format!(
                "{{\n  \"a\": {{\"duration\": 10, \"timestamps\": [[0, 4], [4, 10]], \"sentences\": [\"x\", \"y\"]}},\n  \"b\": {{\"duration\": 10, \"timestamps\": {stamps}, \"sentences\": [\"x\", \"y\"]}}\n}}"
            )
        };
        std::fs::write(&path, entry("[[0, 5], [5, 10.2]]")).unwrap();
        let read = read_references(&path).unwrap();
        assert_eq!(read["b"][1].end, 10.2);
        for (stamps, problem) in [
            ("[[0, 5], [5, 12]]", "falls outside"),
            ("[[5, 0], [5, 10]]", "is reversed"),
            ("[[0, 5], [0, 5]]", "is given twice"),
            ("[[0, 5]]", "1 timestamps for 2 sentences"),
        ] {
            std::fs::write(&path, entry(stamps)).unwrap();
            let error = read_references(&path).unwrap_err().to_string();
            assert!(
                error.contains("line 3, video `b`") && error.contains(problem),
                "{error}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn seg(start: f64, end: f64, sentence: &str) -> Segment {
        Segment {
            start,
            end,
            sentence: sentence.into(),
        }
    }

    #[test]
    fn tiou_is_intersection_over_union() {
        assert!((tiou((0.0, 10.0), (5.0, 15.0)) - 5.0 / 15.0).abs() < 1e-6);
        assert!((tiou((0.0, 10.0), (0.0, 10.0)) - 1.0).abs() < 1e-6);
        assert_eq!(tiou((0.0, 2.0), (3.0, 5.0)), 0.0);
        // Inside: the shorter over the longer.
        assert!((tiou((2.0, 4.0), (0.0, 8.0)) - 0.25).abs() < 1e-6);
    }

    /// Computed by hand. Video a: references [0, 10] "a red circle moves left" and
    /// [10, 20] "a blue square stays"; predictions [0, 10] with the first sentence
    /// exactly (tIoU 1 with the first reference, 0 with the second) and [12, 20] "a blue
    /// square stays" (tIoU 0.8 with the second). Video b: one reference, no predictions.
    #[test]
    fn dense_scores_match_a_hand_computed_case() {
        let a = DenseVideo {
            predicted: vec![
                seg(0.0, 10.0, "a red circle moves left"),
                seg(12.0, 20.0, "a blue square stays"),
            ],
            references: vec![
                seg(0.0, 10.0, "a red circle moves left"),
                seg(10.0, 20.0, "a blue square stays"),
            ],
        };
        let b = DenseVideo {
            predicted: vec![],
            references: vec![seg(0.0, 5.0, "a green triangle")],
        };
        let report = dense_scores(&[a, b]);
        let same = |s: &str| TokenizedPair::from_raw(s, &[s.to_owned()]);
        let exact = meteor(&[same("a red circle moves left"), same("a blue square stays")]).0;
        for (t, s) in &report.per_tiou {
            // Video a: both predictions find a reference below 0.8, one above; b is 0.
            let hits = if *t < 0.8 { 2.0 } else { 1.0 };
            assert!((s.precision - hits / 2.0 / 2.0).abs() < 1e-12, "{t}: {s:?}");
            assert!((s.recall - hits / 2.0 / 2.0).abs() < 1e-12, "{t}: {s:?}");
            // METEOR over video a alone (b has no predictions): two exact pairs below
            // 0.8; at 0.9 one exact pair and one against the garbage reference.
            if *t < 0.8 {
                assert!((s.meteor - exact).abs() < 1e-9, "{t}: {s:?}");
            } else {
                assert!(s.meteor > 0.0 && s.meteor < exact, "{t}: {s:?}");
            }
        }
        assert!((report.mean.precision - (0.5 * 3.0 + 0.25) / 4.0).abs() < 1e-12);
        assert!((report.mean.f1() - report.mean.precision).abs() < 1e-12);
    }

    #[test]
    fn a_set_without_references_scores_zero() {
        let report = dense_scores(&[DenseVideo {
            predicted: vec![seg(0.0, 1.0, "x")],
            references: vec![],
        }]);
        assert_eq!(report.mean, DenseScores::default());
    }

    /// Truth: a cut [74, 75] and a dissolve [150, 174]. Predicted: a cut 2 frames late
    /// (gap 2: found), one inside the dissolve, and a false one at [300, 301].
    #[test]
    fn boundaries_match_within_the_tolerance_once_each() {
        let truth = [(74, 75), (150, 174)];
        let predicted = [(77, 77), (160, 161), (300, 301)];
        let s = boundary_scores(&predicted, &truth, 2);
        assert_eq!((s.matched, s.predicted, s.truth), (2, 3, 2));
        assert!((s.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.recall - 1.0).abs() < 1e-12);
        assert!((s.f1 - 0.8).abs() < 1e-12);
        // Three frames late is a miss; two predictions for one cut find it once.
        assert_eq!(boundary_scores(&[(78, 78)], &truth, 2).matched, 0);
        assert_eq!(
            boundary_scores(&[(74, 75), (75, 76)], &truth[..1], 2).matched,
            1
        );
        assert_eq!(boundary_scores(&[], &truth, 2).f1, 0.0);
        // Pooled: 2 of 3 and 1 of 1 found with 3 and 1 predicted.
        let pooled = BoundaryScores::pooled(&[s, boundary_scores(&[(74, 75)], &truth[..1], 2)]);
        assert_eq!((pooled.matched, pooled.predicted, pooled.truth), (3, 4, 3));
        assert!((pooled.precision - 0.75).abs() < 1e-12 && (pooled.recall - 1.0).abs() < 1e-12);
    }
}
