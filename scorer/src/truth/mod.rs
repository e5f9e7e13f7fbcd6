//! The truth metric: a caption scored against what a clip of the synthetic world really
//! holds (its `boxes.json`), in the world's closed vocabulary (`wolf_pipeline::world`).
//!
//! A clip's true facts are read from `boxes.json` ([`WorldTruth`]): each shape
//! (`red circle`), each shape's motion in the world's words (`red circle` + `moves from
//! left to right`), the background (`white`) and the sign's word (`OPEN`). A caption's
//! stated facts are extracted by [`facts`] (the rules are in docs/METRICS.md and in
//! `extract.rs`). Then, with stated facts S and true facts T:
//!
//! - `truth_precision` = |S ∩ T| / |S|: naming a shape that is not there, the wrong
//!   motion, background or sign word counts against it (hallucination);
//! - `truth_recall` = |S ∩ T| / |T|;
//! - `truth_f1`, their harmonic mean.
//!
//! A caption that states no fact scores 0 on all three: saying nothing is not being
//! right, and a vacuous precision of 1 would put an empty or evasive caption at the top
//! of the hallucination column. Facts are sets: saying one thing twice counts once.
//!
//! Everything here is plain computation on the caller's thread; only
//! [`WorldTruth::read`] touches the file system.

mod boxes;
mod extract;

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

pub use boxes::{ClipTruth, WorldTruth};
pub use extract::facts;

/// The version of the extraction rules, stored as the scores' prompt version: a change
/// of the rules that changes a score gets a new version, so old and new never mix.
pub const VERSION: &str = "truth-v1";

/// The metric names, as stored.
pub const METRICS: [&str; 3] = ["truth_precision", "truth_recall", "truth_f1"];

/// One thing a caption can say about a clip, in the world's words.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fact {
    /// A shape of a colour, `red circle`. The colour may be one the world only gives
    /// backgrounds (`white square`): such an object is never true.
    Object { object: String },
    /// What a shape does, in the world's phrase: `moves from left to right`.
    Motion { object: String, motion: String },
    /// The background's colour.
    Background { colour: String },
    /// The word a sign reads, upper case as drawn.
    Sign { word: String },
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Object { object } => write!(f, "{object}"),
            Self::Motion { object, motion } => write!(f, "{object} {motion}"),
            Self::Background { colour } => write!(f, "{colour} background"),
            Self::Sign { word } => write!(f, "sign \"{word}\""),
        }
    }
}

/// A caption scored against its clip's truth, with the facts behind the numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthScore {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Stated and true.
    pub matched: Vec<Fact>,
    /// Stated and not true: hallucinated.
    #[serde(rename = "false")]
    pub false_facts: Vec<Fact>,
    /// True and not stated.
    pub missed: Vec<Fact>,
}

impl TruthScore {
    /// How many facts the caption states.
    pub fn stated(&self) -> usize {
        self.matched.len() + self.false_facts.len()
    }

    /// The value of a metric of [`METRICS`] (`truth_f1`, ...).
    pub fn get(&self, metric: &str) -> Option<f64> {
        match metric {
            "truth_precision" => Some(self.precision),
            "truth_recall" => Some(self.recall),
            "truth_f1" => Some(self.f1),
            _ => None,
        }
    }

    /// `{"matched": [...], "false": [...], "missed": [...]}` with each fact as
    /// `{"kind": "motion", "object": "red circle", "motion": "moves from left to
    /// right"}`: what a stored score keeps beside its value.
    pub fn facts_json(&self) -> String {
        #[derive(Serialize)]
        struct Facts<'a> {
            matched: &'a [Fact],
            #[serde(rename = "false")]
            false_facts: &'a [Fact],
            missed: &'a [Fact],
        }
        serde_json::to_string(&Facts {
            matched: &self.matched,
            false_facts: &self.false_facts,
            missed: &self.missed,
        })
        .expect("facts are strings; this is a bug")
    }
}

/// Why the truth could not be read or a caption could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the truth is not valid JSON")]
    Json(#[source] serde_json::Error),
    #[error("the truth is not an object of clips by video key")]
    NotAnObject,
    #[error("clip `{clip}`: {message}")]
    InvalidClip { clip: String, message: String },
    #[error("video `{key}` has no entry in the truth")]
    UnknownVideo { key: String },
}

impl TruthError {
    /// A stable label for the error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read_failed",
            Self::Json(_) => "invalid_json",
            Self::NotAnObject => "not_an_object",
            Self::InvalidClip { .. } => "invalid_clip",
            Self::UnknownVideo { .. } => "unknown_video",
        }
    }
}

/// The folder whose `boxes.json` holds the truth of a dataset added from `source`: a
/// folder, the file a dataset was listed in, or the store's label of a dataset added
/// with annotations (`SOURCE + ANNOTATIONS`), whose source is taken.
pub fn folder_of(source: &str) -> PathBuf {
    let source = match source.split_once(" + ") {
        Some((first, _)) if !std::path::Path::new(source).exists() => first,
        _ => source,
    };
    let path = std::path::Path::new(source);
    if path.is_file() {
        path.parent().unwrap_or(path).to_owned()
    } else {
        path.to_owned()
    }
}

/// Scores one caption against one clip's truth.
pub fn score_caption(truth: &ClipTruth, caption: &str) -> TruthScore {
    compare(&truth.facts, &facts(caption))
}

/// Scores `(video key, caption)` pairs against a world's truth, in order; a key the
/// truth does not have is an [`TruthError::UnknownVideo`] for that pair alone.
pub fn score_captions<'a>(
    truth: &WorldTruth,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<Result<TruthScore, TruthError>> {
    pairs
        .into_iter()
        .map(|(key, caption)| {
            truth
                .clip(key)
                .map(|clip| score_caption(clip, caption))
                .ok_or_else(|| TruthError::UnknownVideo {
                    key: key.to_owned(),
                })
        })
        .collect()
}

/// Precision, recall and F1 of stated against true facts (see the module's doc for
/// the empty cases).
fn compare(truth: &BTreeSet<Fact>, stated: &BTreeSet<Fact>) -> TruthScore {
    let matched: Vec<Fact> = stated.intersection(truth).cloned().collect();
    let false_facts: Vec<Fact> = stated.difference(truth).cloned().collect();
    let missed: Vec<Fact> = truth.difference(stated).cloned().collect();
    let ratio = |part: usize, whole: usize| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    let precision = ratio(matched.len(), stated.len());
    let recall = ratio(matched.len(), truth.len());
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    TruthScore {
        precision,
        recall,
        f1,
        matched,
        false_facts,
        missed,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_folder_of_a_dataset_added_with_annotations_is_its_source() {
        let dir = std::env::temp_dir().join(format!("wolf-truth-folder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("annotations.json");
        std::fs::write(&file, "{}").unwrap();
        let folder = dir.display().to_string();
        let label = format!("{folder} + {}", file.display());
        assert_eq!(folder_of(&label), dir);
        assert_eq!(folder_of(&folder), dir);
        assert_eq!(folder_of(&file.display().to_string()), dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A clip of two shapes and a sign on white, in `boxes.json`'s format.
    fn world() -> WorldTruth {
        WorldTruth::from_value(&json!({
            "clip_00000.mp4": {
                "width": 320, "height": 240, "fps": 10, "frames": 2, "background": "white",
                "objects": [
                    {"label": "red circle", "motion": "left-to-right",
                     "boxes": [[10, 400, 100, 520], [800, 400, 890, 520]]},
                    {"label": "blue square", "motion": "still",
                     "boxes": [[40, 40, 160, 200], [40, 40, 160, 200]]},
                    {"label": "sign \"OPEN\"", "motion": "still",
                     "boxes": [[600, 80, 720, 200], [600, 80, 720, 200]]}
                ]
            }
        }))
        .expect("a valid world")
    }

    fn score(caption: &str) -> TruthScore {
        score_captions(&world(), [("clip_00000.mp4", caption)])
            .remove(0)
            .expect("the clip is known")
    }

    fn names(facts: &[Fact]) -> Vec<String> {
        facts.iter().map(Fact::to_string).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn the_reference_caption_scores_one_everywhere() {
        let s = score(
            "A red circle moves from left to right while a blue square stays in the top left \
             corner on a white background. A sign reads \"OPEN\".",
        );
        assert_eq!((s.precision, s.recall, s.f1), (1.0, 1.0, 1.0), "{s:?}");
        assert_eq!(s.stated(), 6);
        assert!(s.false_facts.is_empty() && s.missed.is_empty());
    }

    #[test]
    fn a_wrong_or_extra_object_is_a_false_fact() {
        // True: red circle, its motion, white background. False: the green triangle and
        // its motion. Missed: the blue square, its place and the sign.
        let s = score(
            "A red circle moves from left to right while a green triangle moves from top to \
             bottom on a white background.",
        );
        assert_eq!(
            names(&s.false_facts),
            ["green triangle", "green triangle moves from top to bottom"]
        );
        assert!(close(s.precision, 3.0 / 5.0), "{s:?}");
        assert!(close(s.recall, 3.0 / 6.0), "{s:?}");
        assert!(close(s.f1, 2.0 * 0.6 * 0.5 / 1.1), "{s:?}");
    }

    #[test]
    fn a_right_object_with_the_wrong_motion_keeps_the_object() {
        let s = score("The red circle bounces around the frame.");
        assert_eq!(names(&s.matched), ["red circle"]);
        assert_eq!(
            names(&s.false_facts),
            ["red circle bounces around the frame"]
        );
        assert!(
            close(s.precision, 0.5) && close(s.recall, 1.0 / 6.0),
            "{s:?}"
        );
    }

    #[test]
    fn a_caption_without_facts_scores_zero_not_a_vacuous_one() {
        for caption in [
            "",
            "A sequence of images and videos of a sequence of images.",
            "There is no red circle.",
        ] {
            let s = score(caption);
            assert_eq!(s.stated(), 0, "{caption}: {s:?}");
            assert_eq!((s.precision, s.recall, s.f1), (0.0, 0.0, 0.0), "{caption}");
            assert_eq!(s.missed.len(), 6);
        }
    }

    #[test]
    fn grounded_frame_captions_are_read_with_their_boxes_ignored() {
        let s = score(
            "a red circle [120, 340, 260, 480] and a sign \"OPEN\" [600, 80, 720, 200] on a \
             white background",
        );
        assert_eq!(
            names(&s.matched),
            ["red circle", "white background", "sign \"OPEN\""]
        );
        assert_eq!(s.precision, 1.0);
        assert!(close(s.recall, 0.5));
    }

    #[test]
    fn an_unknown_video_is_an_error_of_its_pair_alone() {
        let results = score_captions(
            &world(),
            [
                ("clip_00009.mp4", "a red circle"),
                ("clip_00000.mp4", "a red circle"),
            ],
        );
        let error = results[0].as_ref().expect_err("not in the truth");
        assert_eq!(error.kind(), "unknown_video");
        assert_eq!(
            error.to_string(),
            "video `clip_00009.mp4` has no entry in the truth"
        );
        assert_eq!(results[1].as_ref().expect("known").precision, 1.0);
    }

    #[test]
    fn the_facts_json_names_each_fact_with_its_kind() {
        let s = score("A red circle moves from left to right on a black background.");
        let value: serde_json::Value = serde_json::from_str(&s.facts_json()).expect("JSON");
        assert_eq!(
            value["matched"],
            json!([
                {"kind": "object", "object": "red circle"},
                {"kind": "motion", "object": "red circle", "motion": "moves from left to right"}
            ])
        );
        assert_eq!(
            value["false"],
            json!([{"kind": "background", "colour": "black"}])
        );
        assert_eq!(value["missed"].as_array().map(Vec::len), Some(4));
        assert_eq!(s.get("truth_f1"), Some(s.f1));
        assert_eq!(s.get("truth_recall"), Some(s.recall));
        assert_eq!(s.get("truth_precision"), Some(s.precision));
        assert_eq!(s.get("bleu4"), None);
    }
}
