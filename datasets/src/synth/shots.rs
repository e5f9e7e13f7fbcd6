//! Multi-shot clips (issue 16): several scenes of the world in one video, joined by hard
//! cuts and dissolves, with the truth of their transitions and a timed sentence a shot.
//!
//! Clip `i` of a world with `shots` shots a clip shows scenes `i * shots .. (i + 1) *
//! shots` of the seed in order, each for its own number of frames, all at the first
//! scene's frame rate. Each transition is a hard cut or, by a coin of the seed, a dissolve
//! of [`DISSOLVE_FRAMES`] frames (the later shot fading in over the earlier one's last
//! frames; a cut where a shot is too short for it). Written beside the clips:
//! - `annotations.json`: the shots' captions in order, as the clip's one reference, and
//!   the union of their tags;
//! - [`SHOTS_FILE`]: per clip its frame rate, frame count and transitions (inclusive
//!   frame spans: a cut between frames 59 and 60 is `[59, 60]`, a dissolve its frames)
//!   with their kinds;
//! - [`DENSE_FILE`]: ActivityNet Captions' shape, `{clip: {"duration", "timestamps":
//!   [[start, end], ...], "sentences": [...]}}`, a shot's span running from its first
//!   frame to the end of its last (a dissolve's frames count to both sides).
//!
//! No `boxes.json`: the truth metric scores one scene a clip.

use std::collections::BTreeMap;

use serde::Serialize;
use wolf_pipeline::media::RgbImage;

use super::pretty_json;
use super::render::draw_frame;
use super::scene::{Rng, Scene, scene};

/// Per clip: the shots' timed sentences, as ActivityNet Captions writes them.
pub use wolf_scorer::dense::DENSE_FILE;
/// Per clip: frame rate, frames and transitions.
pub use wolf_scorer::dense::SHOTS_FILE;
/// The frames of a dissolve.
pub const DISSOLVE_FRAMES: u32 = 8;

/// One clip's shots and how they are joined.
pub(super) struct MultiShot {
    pub scenes: Vec<Scene>,
    /// Per transition: a dissolve (else a cut).
    dissolves: Vec<bool>,
    /// The first output frame of each shot.
    starts: Vec<u32>,
    pub frames: u32,
}

/// How many scenes the first clip of `seed` joins to last at least `seconds` at its
/// first scene's frame rate, its dissolves (which overlap two scenes) counted as
/// [`MultiShot::new`] draws them.
pub(super) fn scenes_lasting(seed: u64, seconds: f64) -> usize {
    let fps = f64::from(scene(seed, 0).fps);
    let mut rng = Rng::for_clip(seed ^ DISSOLVE_STREAM, 0);
    let (mut frames, mut k, mut previous) = (0.0, 0, None::<Scene>);
    while frames / fps < seconds || k < 2 {
        let next = scene(seed, k);
        if let Some(before) = &previous {
            let long_enough = |s: &Scene| s.frames >= 2 * DISSOLVE_FRAMES;
            if rng.chance(1, 2) && long_enough(before) && long_enough(&next) {
                frames -= f64::from(DISSOLVE_FRAMES);
            }
        }
        frames += f64::from(next.frames);
        previous = Some(next);
        k += 1;
    }
    k
}

/// The dissolves' random stream: another than the scenes' own (mixed into the seed).
const DISSOLVE_STREAM: u64 = 0x5348_4F54_5331_3600;

impl MultiShot {
    pub fn new(seed: u64, index: usize, shots: usize) -> Self {
        let scenes: Vec<Scene> = (0..shots).map(|k| scene(seed, index * shots + k)).collect();
        let mut rng = Rng::for_clip(seed ^ DISSOLVE_STREAM, index);
        let long_enough = |s: &Scene| s.frames >= 2 * DISSOLVE_FRAMES;
        let dissolves: Vec<bool> = scenes
            .windows(2)
            .map(|w| rng.chance(1, 2) && long_enough(&w[0]) && long_enough(&w[1]))
            .collect();
        let mut starts = Vec::with_capacity(shots);
        let mut at = 0;
        for (k, s) in scenes.iter().enumerate() {
            starts.push(at);
            at += s.frames;
            if dissolves.get(k).copied().unwrap_or(false) {
                at -= DISSOLVE_FRAMES;
            }
        }
        Self {
            scenes,
            dissolves,
            starts,
            frames: at,
        }
    }

    pub fn fps(&self) -> u32 {
        self.scenes[0].fps
    }

    /// Inclusive frame spans of the transitions, with their kinds.
    fn transitions(&self) -> Vec<(u32, u32, &'static str)> {
        self.starts[1..]
            .iter()
            .zip(&self.dissolves)
            .map(|(&next, &dissolve)| match dissolve {
                true => (next, next + DISSOLVE_FRAMES - 1, "dissolve"),
                false => (next - 1, next, "cut"),
            })
            .collect()
    }

    /// Draws output frame `t`: its shot's frame, or a blend of two during a dissolve.
    pub fn draw(&self, image: &mut RgbImage, scratch: &mut RgbImage, t: u32) {
        let k = self.starts.partition_point(|&s| s <= t) - 1;
        draw_frame(image, &self.scenes[k], (t - self.starts[k]) as usize);
        if k == 0 || t >= self.starts[k] + DISSOLVE_FRAMES || !self.dissolves[k - 1] {
            return;
        }
        // Frame `j` of a dissolve shows the later shot at (j + 1) / (frames + 1).
        let earlier = &self.scenes[k - 1];
        draw_frame(scratch, earlier, (t - self.starts[k - 1]) as usize);
        let alpha = f64::from(t - self.starts[k] + 1) / f64::from(DISSOLVE_FRAMES + 1);
        for (later, before) in image.iter_mut().zip(scratch.iter()) {
            *later = (f64::from(*before) * (1.0 - alpha) + f64::from(*later) * alpha).round() as u8;
        }
    }

    /// The clip's one reference: the shots' captions in order.
    pub fn caption(&self) -> String {
        let captions: Vec<&str> = self.scenes.iter().map(|s| s.caption.as_str()).collect();
        captions.join(" ")
    }

    /// The union of the shots' tags, sorted.
    pub fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self.scenes.iter().flat_map(|s| s.tags.clone()).collect();
        tags.sort();
        tags.dedup();
        tags
    }
}

#[derive(Serialize)]
struct ShotsEntry {
    fps: u32,
    frames: u32,
    /// `[first, last]`, inclusive.
    transitions: Vec<[u32; 2]>,
    kinds: Vec<&'static str>,
}

#[derive(Serialize)]
struct DenseEntry {
    duration: f64,
    timestamps: Vec<[f64; 2]>,
    sentences: Vec<String>,
}

/// [`SHOTS_FILE`] and [`DENSE_FILE`] of the clips, keyed by their names; pretty JSON.
pub(super) fn truth_json(clips: &[(String, MultiShot)]) -> (Vec<u8>, Vec<u8>) {
    let mut shots = BTreeMap::new();
    let mut dense = BTreeMap::new();
    for (name, clip) in clips {
        let transitions = clip.transitions();
        shots.insert(
            name.clone(),
            ShotsEntry {
                fps: clip.fps(),
                frames: clip.frames,
                transitions: transitions.iter().map(|&(a, b, _)| [a, b]).collect(),
                kinds: transitions.iter().map(|&(_, _, kind)| kind).collect(),
            },
        );
        let seconds = |frame: u32| f64::from(frame) / f64::from(clip.fps());
        dense.insert(
            name.clone(),
            DenseEntry {
                duration: seconds(clip.frames),
                timestamps: clip
                    .starts
                    .iter()
                    .zip(&clip.scenes)
                    .map(|(&start, s)| [seconds(start), seconds(start + s.frames)])
                    .collect(),
                sentences: clip.scenes.iter().map(|s| s.caption.clone()).collect(),
            },
        );
    }
    (pretty_json(&shots), pretty_json(&dense))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--minutes`: the fewest scenes whose first clip reaches the length, dissolves
    /// counted.
    #[test]
    fn a_long_clip_joins_the_fewest_scenes_that_last_long_enough() {
        let k = scenes_lasting(5, 120.0);
        let seconds = |n: usize| {
            let clip = MultiShot::new(5, 0, n);
            f64::from(clip.frames) / f64::from(clip.fps())
        };
        assert!(seconds(k) >= 120.0 && seconds(k - 1) < 120.0, "{k} scenes");
    }
}
