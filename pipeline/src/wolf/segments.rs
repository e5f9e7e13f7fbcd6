//! How a long video is cut into segments that each run the Wolf stages (issue 16): shots
//! first; a shot shorter than `min_seconds` joins a neighbour; a stretch longer than
//! `max_seconds` is cut into equal windows. A video no longer than `max_seconds`, or with
//! `max_seconds = 0`, is one segment.
//!
//! Shots leave the frames of a transition out (a dissolve belongs to neither side);
//! segments cover the whole video: each shot's span runs to the next shot's start, the
//! first from 0, the last to the end.
//!
//! `[segments]` ([`SegmentsConfig`]) sets the rule, the shot detector and the story's
//! groups; the runner cuts a video longer than `max_seconds` and runs each segment's
//! stages as a unit (`runner`, `stages::long`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::media::Shot;

/// `[segments]`: how long videos are cut, and how their story is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentsConfig {
    /// Videos longer than this many seconds are cut into segments (default 60); 0
    /// turns segmentation off.
    pub max_seconds: f64,
    /// Shots shorter than this join a neighbour (default 2).
    pub min_seconds: f64,
    /// Cut at the shots TransNetV2 finds (default); `false` cuts equal windows of at
    /// most `max_seconds` without looking at the pictures.
    pub shots: bool,
    /// TransNetV2's boundary threshold (default 0.5, the reference's).
    pub threshold: f32,
    /// The shot detector's ONNX file (default: the one `make setup` converts).
    pub shot_model: Option<PathBuf>,
    /// The most timed captions the story's LLM reads at once (default 12); more
    /// segments are told in groups, then over the groups' stories.
    pub group: usize,
    /// The video's caption: the story LLM's (`llm`, default), or the segments' captions
    /// in order (`joined`: ActivityNet's paragraph, for an LLM that cannot tell one).
    pub story: StoryMode,
}

/// `[segments] story`: how a long video's `wolf` caption is told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoryMode {
    /// The story LLM tells it from the segments' timed captions, behind the guard.
    #[default]
    Llm,
    /// The segments' captions in order, without a request.
    Joined,
}

impl Default for SegmentsConfig {
    fn default() -> Self {
        Self {
            max_seconds: 60.0,
            min_seconds: 2.0,
            shots: true,
            threshold: crate::media::DEFAULT_THRESHOLD,
            shot_model: None,
            group: 12,
            story: StoryMode::default(),
        }
    }
}

impl SegmentsConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if !(self.max_seconds >= 0.0 && self.max_seconds.is_finite()) {
            return invalid(
                "segments.max_seconds",
                format!("is {}, not 0 or more seconds", self.max_seconds),
            );
        }
        if self.max_seconds > 0.0
            && !(self.min_seconds >= 0.0 && self.min_seconds * 2.0 <= self.max_seconds)
        {
            return invalid(
                "segments.min_seconds",
                format!(
                    "is {}, not between 0 and half of `max_seconds` ({})",
                    self.min_seconds, self.max_seconds
                ),
            );
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return invalid(
                "segments.threshold",
                format!("is {}, not between 0 and 1", self.threshold),
            );
        }
        if self.group < 2 {
            return invalid(
                "segments.group",
                format!("is {}, not 2 or more", self.group),
            );
        }
        Ok(())
    }

    /// The rule's settings.
    pub fn settings(&self) -> SegmentSettings {
        SegmentSettings {
            max_seconds: self.max_seconds,
            min_seconds: self.min_seconds,
        }
    }

    /// Whether a video of `duration_s` seconds is cut into segments.
    pub fn cuts(&self, duration_s: Option<f64>) -> bool {
        self.max_seconds > 0.0 && duration_s.is_some_and(|d| d > self.max_seconds)
    }

    /// The shot detector's file: `shot_model`, else the one `make setup` converts.
    pub fn shot_model_file(&self) -> Option<PathBuf> {
        self.shot_model.clone().or_else(|| {
            crate::home::Home::locate()
                .map(|home| home.models_dir().join(SHOT_MODEL_DIR).join("model.onnx"))
        })
    }
}

/// The shot detector's folder inside the models folder.
pub const SHOT_MODEL_DIR: &str = "transnetv2";

/// The segment rule's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentSettings {
    /// The longest segment, in seconds; 0 turns segmentation off.
    pub max_seconds: f64,
    /// The shortest shot that stays a segment of its own.
    pub min_seconds: f64,
}

impl Default for SegmentSettings {
    fn default() -> Self {
        Self {
            max_seconds: 60.0,
            min_seconds: 2.0,
        }
    }
}

/// A segment's time span, in seconds from the video's start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub start_s: f64,
    pub end_s: f64,
}

impl Span {
    fn seconds(&self) -> f64 {
        self.end_s - self.start_s
    }
}

/// The segments of a video of `duration_s` seconds with these shots (in order).
///
/// Short shots are joined first, each to its shorter neighbour (the earlier on a tie),
/// until none is left or one span covers everything; then every span longer than
/// `max_seconds` is cut into the fewest equal windows that fit. With `min_seconds` at
/// most half of `max_seconds`, no window is shorter than `min_seconds`.
pub fn segments(shots: &[Shot], duration_s: f64, settings: SegmentSettings) -> Vec<Span> {
    let whole = Span {
        start_s: 0.0,
        end_s: duration_s,
    };
    if settings.max_seconds <= 0.0 || duration_s <= settings.max_seconds || shots.is_empty() {
        return vec![whole];
    }
    // Contiguous spans from the shots' starts.
    let mut spans: Vec<Span> = shots
        .iter()
        .enumerate()
        .map(|(i, shot)| Span {
            start_s: if i == 0 { 0.0 } else { shot.start_s },
            end_s: shots.get(i + 1).map_or(duration_s, |next| next.start_s),
        })
        .filter(|s| s.seconds() > 0.0)
        .collect();
    while spans.len() > 1 {
        let Some(short) = (0..spans.len())
            .filter(|&i| spans[i].seconds() < settings.min_seconds)
            .min_by(|&a, &b| spans[a].seconds().total_cmp(&spans[b].seconds()))
        else {
            break;
        };
        let neighbour = match (short.checked_sub(1), spans.get(short + 1)) {
            (Some(before), Some(after)) if after.seconds() < spans[before].seconds() => short + 1,
            (Some(before), _) => before,
            (None, _) => short + 1,
        };
        let (first, second) = (short.min(neighbour), short.max(neighbour));
        spans[first].end_s = spans[second].end_s;
        spans.remove(second);
    }
    let mut out = Vec::new();
    for span in spans {
        let pieces = (span.seconds() / settings.max_seconds).ceil().max(1.0) as usize;
        let step = span.seconds() / pieces as f64;
        for k in 0..pieces {
            out.push(Span {
                start_s: span.start_s + step * k as f64,
                end_s: if k + 1 == pieces {
                    span.end_s
                } else {
                    span.start_s + step * (k + 1) as f64
                },
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shots starting at these seconds (frames are not used by the rule).
    fn shots(starts: &[f64]) -> Vec<Shot> {
        starts
            .iter()
            .map(|&s| Shot {
                first: 0,
                last: 0,
                start_s: s,
                end_s: s,
            })
            .collect()
    }

    fn spans(out: &[Span]) -> Vec<(f64, f64)> {
        out.iter().map(|s| (s.start_s, s.end_s)).collect()
    }

    const SETTINGS: SegmentSettings = SegmentSettings {
        max_seconds: 60.0,
        min_seconds: 2.0,
    };

    #[test]
    fn a_short_video_or_segmentation_off_is_one_segment() {
        assert_eq!(
            spans(&segments(&shots(&[0.0, 10.0]), 50.0, SETTINGS)),
            [(0.0, 50.0)]
        );
        let off = SegmentSettings {
            max_seconds: 0.0,
            ..SETTINGS
        };
        assert_eq!(
            spans(&segments(&shots(&[0.0, 10.0]), 500.0, off)),
            [(0.0, 500.0)]
        );
        assert_eq!(spans(&segments(&[], 500.0, SETTINGS)), [(0.0, 500.0)]);
    }

    #[test]
    fn shots_become_segments_that_cover_the_video() {
        // A dissolve's frames (between a shot's end and the next start) join the earlier.
        let out = segments(&shots(&[0.5, 30.0, 70.0]), 100.0, SETTINGS);
        assert_eq!(spans(&out), [(0.0, 30.0), (30.0, 70.0), (70.0, 100.0)]);
    }

    #[test]
    fn a_long_shot_is_cut_into_equal_windows() {
        // 150 s: three windows of 50 s (two of 75 would exceed 60).
        let out = segments(&shots(&[0.0, 150.0]), 170.0, SETTINGS);
        assert_eq!(
            spans(&out),
            [(0.0, 50.0), (50.0, 100.0), (100.0, 150.0), (150.0, 170.0)]
        );
    }

    #[test]
    fn short_shots_join_their_shorter_neighbour() {
        // 1 s at 40 s: neighbours of 40 s and 20 s; it joins the later, shorter one.
        let out = segments(&shots(&[0.0, 40.0, 41.0, 61.0]), 100.0, SETTINGS);
        assert_eq!(spans(&out), [(0.0, 40.0), (40.0, 61.0), (61.0, 100.0)]);
        // A short first shot joins the next; a short last one the one before.
        let out = segments(&shots(&[0.0, 1.0, 50.0, 99.5]), 100.0, SETTINGS);
        assert_eq!(spans(&out), [(0.0, 50.0), (50.0, 100.0)]);
        // Flickering: a run of 1 s shots becomes spans of at least 2 s that still cover
        // the video without gaps.
        let starts: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let out = segments(&shots(&starts), 100.0, SETTINGS);
        assert!(
            out.iter()
                .all(|s| s.seconds() >= 2.0 && s.seconds() <= 60.0),
            "{out:?}"
        );
        assert_eq!(out.first().unwrap().start_s, 0.0);
        assert_eq!(out.last().unwrap().end_s, 100.0);
        assert!(
            out.windows(2).all(|w| w[0].end_s == w[1].start_s),
            "{out:?}"
        );
    }
}
