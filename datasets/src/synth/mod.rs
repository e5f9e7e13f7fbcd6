//! The synthetic world: short clips of coloured shapes with exact reference captions,
//! tags and per-frame boxes, all from a seed.
//!
//! [`scene`] decides a clip (sampling and the caption grammar, in `scene.rs`), `render.rs`
//! draws its frames and `font.rs` holds the letters of its sign. [`generate`] renders
//! `clip_00000.mp4`, `clip_00001.mp4`, … into a folder, then writes `annotations.json`
//! in Wolf's Pexels shape (`{"clip_00000.mp4": {"output": caption, "tags": [...]}}`)
//! and `boxes.json` (the background, and each object's label, motion tag and box in every
//! frame, on METHOD.md's 0–999 scale: the truth that `wolf_scorer::truth` scores
//! captions against).
//!
//! Threads: [`generate`] renders on `threads` scoped std threads that take clip indices
//! from one atomic counter. Every clip depends only on the seed and its index, so the
//! same seed gives the same frames whatever the thread count, and the same bytes: the
//! writer ([`wolf_pipeline::media::Mp4Writer`]) is set bit-exact and leaves out x264's
//! macroblock tree, which read memory it never wrote. Each file is written under a
//! temporary name in the folder and renamed when whole, so a crash never leaves a
//! half-written file under a final name.

mod font;
mod render;
mod scene;
mod shots;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use tracing::{debug, info};
use wolf_pipeline::media::{MediaError, Mp4Writer, RgbImage, WriterSettings};
use wolf_pipeline::progress::Progress;

pub use render::{draw_frame, render_frame};
pub use scene::{
    Background, Colour, Diagonal, FPS_CHOICES, HEIGHT, Motion, Object, Rect, SIGN_WORDS, Scene,
    Shape, Sign, WIDTH, scene,
};
pub use shots::{DENSE_FILE, DISSOLVE_FRAMES, SHOTS_FILE};

/// Name of the captions file written next to the clips.
pub const ANNOTATIONS_FILE: &str = "annotations.json";
/// Name of the per-frame boxes file written next to the clips.
pub use wolf_pipeline::world::BOXES_FILE;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSettings {
    /// Number of clips.
    pub count: usize,
    /// Seed of the whole world; clip `i` depends only on it and `i`.
    pub seed: u64,
    /// Rendering threads (0 is taken as 1); they do not change the output.
    pub threads: usize,
    /// Shots a clip: above 1, each clip joins that many scenes by cuts and dissolves
    /// ([`shots`]'s module documentation says what is written).
    pub shots: usize,
    /// Long clips instead: each joins as many scenes as the first clip needs to last
    /// this many minutes (whole scenes, so a little longer).
    pub minutes: Option<u32>,
}

impl SynthSettings {
    /// `count` clips of `seed`, one shot each, rendered on every core.
    pub fn new(count: usize, seed: u64) -> Self {
        Self {
            count,
            seed,
            threads: wolf_pipeline::process::cores(),
            shots: 1,
            minutes: None,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    pub clips: usize,
    /// Frames over all clips.
    pub frames: u64,
}

/// Why the synthetic world could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("cannot create folder `{path}`")]
    CreateFolder {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot render clip `{path}`")]
    Render {
        path: PathBuf,
        #[source]
        source: MediaError,
    },
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl SynthError {
    /// A stable label for the error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CreateFolder { .. } => "create_folder_failed",
            Self::Render { .. } => "render_failed",
            Self::Write { .. } => "write_failed",
        }
    }
}

/// The file name of clip `index`.
pub fn clip_name(index: usize) -> String {
    format!("clip_{index:05}.mp4")
}

/// Renders `settings.count` clips into `out` (created if needed), then writes
/// [`ANNOTATIONS_FILE`] and [`BOXES_FILE`]. `progress` counts clips.
///
/// The first clip that fails stops the others from starting, and the two JSON files are
/// not written, so a folder with `annotations.json` always holds every clip it names.
/// Of several failures, the one of the lowest clip index is returned.
pub fn generate(
    out: &Path,
    settings: &SynthSettings,
    progress: &Progress,
) -> Result<SynthSummary, SynthError> {
    fs::create_dir_all(out).map_err(|source| SynthError::CreateFolder {
        path: out.to_owned(),
        source,
    })?;
    let count = settings.count;
    progress.set_total(count as u64);
    if let Some(minutes) = settings.minutes {
        let shots = shots::scenes_lasting(settings.seed, f64::from(minutes) * 60.0);
        let settings = SynthSettings {
            shots,
            minutes: None,
            ..settings.clone()
        };
        return generate_multi_shot(out, &settings, progress);
    }
    if settings.shots > 1 {
        return generate_multi_shot(out, settings, progress);
    }
    let scenes: Vec<Scene> = (0..count)
        .map(|index| scene(settings.seed, index))
        .collect();
    render_all(count, settings.threads, progress, |index| {
        write_clip(out, index, |path| encode(path, &scenes[index]))
    })?;
    write_atomically(out, ANNOTATIONS_FILE, &annotations_json(&scenes))?;
    write_atomically(out, BOXES_FILE, &boxes_json(&scenes))?;
    let frames = scenes.iter().map(|s| u64::from(s.frames)).sum();
    info!(clips = count, frames, out = %out.display(), "Generated the synthetic world.");
    Ok(SynthSummary {
        clips: count,
        frames,
    })
}

/// [`generate`] with several shots a clip.
fn generate_multi_shot(
    out: &Path,
    settings: &SynthSettings,
    progress: &Progress,
) -> Result<SynthSummary, SynthError> {
    let count = settings.count;
    let clips: Vec<(String, shots::MultiShot)> = (0..count)
        .map(|index| {
            let clip = shots::MultiShot::new(settings.seed, index, settings.shots);
            (clip_name(index), clip)
        })
        .collect();
    render_all(count, settings.threads, progress, |index| {
        let clip = &clips[index].1;
        write_clip(out, index, |path| {
            let (width, height) = (clip.scenes[0].width, clip.scenes[0].height);
            let settings = WriterSettings::new(width, height, clip.fps());
            let mut writer = Mp4Writer::create(path, settings)?;
            let (mut image, mut scratch) =
                (RgbImage::new(width, height), RgbImage::new(width, height));
            for t in 0..clip.frames {
                clip.draw(&mut image, &mut scratch, t);
                writer.write(&image)?;
            }
            writer.finish()
        })
    })?;
    let captions: Vec<(String, Vec<String>)> =
        clips.iter().map(|(_, c)| (c.caption(), c.tags())).collect();
    let annotations: BTreeMap<&str, Annotation<'_>> = clips
        .iter()
        .zip(&captions)
        .map(|((name, _), (output, tags))| (name.as_str(), Annotation { output, tags }))
        .collect();
    let (shots_json, dense_json) = shots::truth_json(&clips);
    write_atomically(out, shots::SHOTS_FILE, &shots_json)?;
    write_atomically(out, shots::DENSE_FILE, &dense_json)?;
    write_atomically(out, ANNOTATIONS_FILE, &pretty_json(&annotations))?;
    let frames = clips.iter().map(|(_, c)| u64::from(c.frames)).sum();
    info!(clips = count, shots = settings.shots, frames, out = %out.display(), "Generated the synthetic world.");
    Ok(SynthSummary {
        clips: count,
        frames,
    })
}

/// Runs `write(index)` for every clip index on `threads` scoped threads that take indices
/// from one counter; the first failure stops new clips from starting, and the failure of
/// the lowest index is returned.
fn render_all(
    count: usize,
    threads: usize,
    progress: &Progress,
    write: impl Fn(usize) -> Result<(), SynthError> + Sync,
) -> Result<(), SynthError> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failures: Mutex<Vec<(usize, SynthError)>> = Mutex::new(Vec::new());
    let threads = threads.clamp(1, count.max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    let result = write(index);
                    progress.finish_one(result.is_ok());
                    if let Err(error) = result {
                        stop.store(true, Ordering::Relaxed);
                        failures
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push((index, error));
                    }
                }
            });
        }
    });
    let failures = failures
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    match failures.into_iter().min_by_key(|(index, _)| *index) {
        Some((_, error)) => Err(error),
        None => Ok(()),
    }
}

/// Renders and encodes one clip (`encode` writes the file it is given) under a temporary
/// name, then renames it into place.
fn write_clip(
    out: &Path,
    index: usize,
    encode: impl FnOnce(&Path) -> Result<(), MediaError>,
) -> Result<(), SynthError> {
    let name = clip_name(index);
    let path = out.join(&name);
    // Hidden, and still ending in `.mp4`: the writer picks its muxer from the extension.
    let temp = out.join(format!(".{}.tmp.mp4", name.trim_end_matches(".mp4")));
    let encoded = encode(&temp).map_err(|source| SynthError::Render {
        path: path.clone(),
        source,
    });
    let result = encoded.and_then(|()| {
        fs::rename(&temp, &path).map_err(|source| SynthError::Write {
            path: path.clone(),
            source,
        })
    });
    if result.is_err() {
        // Best effort: the error being returned matters more than a stray temporary.
        let _ = fs::remove_file(&temp);
    }
    if result.is_ok() {
        debug!(clip = %name, "Rendered clip.");
    }
    result
}

fn encode(path: &Path, scene: &Scene) -> Result<(), MediaError> {
    let mut writer = Mp4Writer::create(
        path,
        WriterSettings::new(scene.width, scene.height, scene.fps),
    )?;
    let mut image = RgbImage::new(scene.width, scene.height);
    for frame in 0..scene.frames as usize {
        draw_frame(&mut image, scene, frame);
        writer.write(&image)?;
    }
    writer.finish()
}

/// Writes `bytes` to `out/name` through a temporary file in `out` and a rename.
fn write_atomically(out: &Path, name: &str, bytes: &[u8]) -> Result<(), SynthError> {
    let path = out.join(name);
    let temp = out.join(format!(".{name}.tmp"));
    let result = fs::write(&temp, bytes).and_then(|()| fs::rename(&temp, &path));
    result.map_err(|source| {
        let _ = fs::remove_file(&temp);
        SynthError::Write { path, source }
    })
}

#[derive(Serialize)]
struct Annotation<'a> {
    output: &'a str,
    tags: &'a [String],
}

/// `{"clip_00000.mp4": {"output": caption, "tags": [...]}, ...}`, keys sorted,
/// pretty-printed.
fn annotations_json(scenes: &[Scene]) -> Vec<u8> {
    let map: BTreeMap<String, Annotation<'_>> = scenes
        .iter()
        .enumerate()
        .map(|(index, s)| {
            (
                clip_name(index),
                Annotation {
                    output: &s.caption,
                    tags: &s.tags,
                },
            )
        })
        .collect();
    pretty_json(&map)
}

/// Pretty JSON with a final newline.
fn pretty_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .expect("numbers, strings and lists always serialise; this is a bug");
    bytes.push(b'\n');
    bytes
}

/// One clip's entry in `boxes.json`.
#[derive(Serialize)]
struct ClipBoxes {
    width: u32,
    height: u32,
    fps: u32,
    frames: u32,
    /// The background's colour name (the truth metric's background fact).
    background: &'static str,
    /// The shapes in drawing order, then the sign (label `sign "WORD"`, motion `still`).
    objects: Vec<ObjectBoxes>,
}

#[derive(Serialize)]
struct ObjectBoxes {
    label: String,
    motion: &'static str,
    /// `[xmin, ymin, xmax, ymax]` on the 0–999 scale, one per frame.
    boxes: Vec<[u16; 4]>,
}

fn clip_boxes(scene: &Scene) -> ClipBoxes {
    let frames = scene.frames as usize;
    let unit = |rect: Rect| rect.to_unit_box(scene.width, scene.height);
    let mut objects: Vec<ObjectBoxes> = scene
        .objects
        .iter()
        .map(|o| ObjectBoxes {
            label: o.label(),
            motion: o.motion.tag(),
            boxes: (0..frames).map(|f| unit(o.rect(f))).collect(),
        })
        .collect();
    if let Some(sign) = &scene.sign {
        objects.push(ObjectBoxes {
            label: sign.label(),
            motion: Motion::Still.tag(),
            boxes: vec![unit(sign.rect); frames],
        });
    }
    ClipBoxes {
        width: scene.width,
        height: scene.height,
        fps: scene.fps,
        frames: scene.frames,
        background: scene.background.name(),
        objects,
    }
}

/// `{"clip_00000.mp4": {"width", "height", "fps", "frames", "background", "objects":
/// [{"label", "motion", "boxes"}, ...]}, ...}`,
/// keys sorted, one clip per line: pretty-printing would put every coordinate of
/// every box on a line of its own.
fn boxes_json(scenes: &[Scene]) -> Vec<u8> {
    let entries: BTreeMap<String, &Scene> = scenes
        .iter()
        .enumerate()
        .map(|(index, s)| (clip_name(index), s))
        .collect();
    let mut text = String::from("{");
    for (i, (name, scene)) in entries.into_iter().enumerate() {
        let key = serde_json::to_string(&name).expect("a string always serialises; this is a bug");
        let value = serde_json::to_string(&clip_boxes(scene))
            .expect("numbers and strings always serialise; this is a bug");
        text.push_str(if i == 0 { "\n  " } else { ",\n  " });
        text.push_str(&key);
        text.push_str(": ");
        text.push_str(&value);
    }
    text.push_str(if scenes.is_empty() { "}\n" } else { "\n}\n" });
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::Value;

    use super::*;

    fn run(out: &Path, count: usize, seed: u64, threads: usize) -> SynthSummary {
        let progress = Progress::new();
        let summary = generate(
            out,
            &SynthSettings {
                threads,
                ..SynthSettings::new(count, seed)
            },
            &progress,
        )
        .expect("the world renders");
        assert_eq!(
            (progress.total(), progress.done(), progress.failed()),
            (count as u64, count as u64, 0)
        );
        summary
    }

    /// Every file in `dir` with its bytes, sorted by name.
    fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(dir)
            .expect("the output folder is readable")
            .map(|entry| {
                let path = entry.expect("a readable entry").path();
                let name = path
                    .file_name()
                    .expect("a file name")
                    .to_string_lossy()
                    .into_owned();
                let bytes = fs::read(&path).expect("a readable file");
                (name, bytes)
            })
            .collect()
    }

    /// Every frame of a clip, decoded: (time, pixels).
    fn frames(path: &Path) -> Vec<(f64, Vec<u8>)> {
        let settings = wolf_pipeline::media::SampleSettings {
            rate: wolf_pipeline::media::Rate::Count(10_000),
            min_frames: 1,
            max_frames: 10_000,
            resize: wolf_pipeline::media::Resize::Native,
        };
        let sampled = wolf_pipeline::media::sample_frames(path, &settings, 1).expect("decodes");
        sampled
            .frames
            .into_iter()
            .map(|f| (f.time_s, f.image.into_raw()))
            .collect()
    }

    fn json(dir: &Path, name: &str) -> Value {
        serde_json::from_slice(&fs::read(dir.join(name)).expect("the file exists"))
            .expect("valid JSON")
    }

    /// The expensive part (encoding) once: three clips on one thread and on three, and
    /// two clips, then every check on those folders.
    #[test]
    fn generate_is_reproducible_and_writes_what_the_scenes_say() {
        let root = tempfile::tempdir().expect("a temp dir");
        let (one, three, fewer) = (
            root.path().join("one"),
            root.path().join("three"),
            root.path().join("fewer"),
        );
        let summary = run(&one, 3, 42, 1);
        run(&three, 3, 42, 3);
        run(&fewer, 2, 42, 2);

        // Same seed, same bytes, whatever the thread count; nothing else left behind.
        let (a, b) = (files(&one), files(&three));
        let names: Vec<&str> = a.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "annotations.json",
                "boxes.json",
                "clip_00000.mp4",
                "clip_00001.mp4",
                "clip_00002.mp4"
            ]
        );
        for (name, bytes) in &a {
            assert!(
                *bytes == b[name],
                "one and three threads wrote different {name}"
            );
        }

        // The scene of a clip does not depend on how many clips there are.
        for name in ["clip_00000.mp4", "clip_00001.mp4"] {
            assert_eq!(frames(&fewer.join(name)), frames(&one.join(name)), "{name}");
        }
        let (all, some) = (json(&one, ANNOTATIONS_FILE), json(&fewer, ANNOTATIONS_FILE));
        assert_eq!(some.as_object().map(|o| o.len()), Some(2));
        assert_eq!(some["clip_00001.mp4"], all["clip_00001.mp4"]);

        let scenes: Vec<Scene> = (0..3).map(|i| scene(42, i)).collect();
        assert_eq!(
            summary,
            SynthSummary {
                clips: 3,
                frames: scenes.iter().map(|s| u64::from(s.frames)).sum()
            }
        );

        // Annotations: the scenes' captions and tags.
        for (i, s) in scenes.iter().enumerate() {
            let entry = &all[clip_name(i).as_str()];
            assert_eq!(entry["output"], s.caption.as_str());
            assert_eq!(entry["tags"], serde_json::json!(s.tags));
        }

        // Boxes: one per frame, inside 0..=999, non-empty, labels as in the caption.
        let boxes = json(&one, BOXES_FILE);
        for (i, s) in scenes.iter().enumerate() {
            let clip = &boxes[clip_name(i).as_str()];
            assert_eq!(clip["width"], 320);
            assert_eq!(clip["height"], 240);
            assert_eq!(clip["fps"], s.fps);
            assert_eq!(clip["frames"], s.frames);
            assert_eq!(clip["background"], s.background.name());
            let objects = clip["objects"].as_array().expect("objects");
            assert_eq!(
                objects.len(),
                s.objects.len() + usize::from(s.sign.is_some())
            );
            for object in objects {
                let label = object["label"].as_str().expect("a label");
                let motion = object["motion"].as_str().expect("a motion");
                assert!(s.tags.iter().any(|t| t == motion), "{motion}");
                let in_caption = label.strip_prefix("sign ").unwrap_or(label);
                assert!(
                    s.caption.contains(in_caption),
                    "{label} not in {}",
                    s.caption
                );
                let per_frame = object["boxes"].as_array().expect("boxes");
                assert_eq!(per_frame.len(), s.frames as usize, "{label}");
                for b in per_frame {
                    let b: Vec<u64> = b
                        .as_array()
                        .expect("a box")
                        .iter()
                        .map(|v| v.as_u64().expect("a u64"))
                        .collect();
                    assert!(b.len() == 4 && b.iter().all(|&v| v <= 999), "{b:?}");
                    assert!(b[0] < b[2] && b[1] < b[3], "{b:?}");
                }
            }
        }

        // The clip is what the scene says.
        let probe =
            wolf_pipeline::media::probe(&one.join("clip_00000.mp4")).expect("the clip probes");
        assert_eq!((probe.width, probe.height), (320, 240));
        // The MP4 demuxer's average rate counts one frame duration fewer than there are
        // frames (12 fps over 85 frames reads 12.14), so compare rounded rates.
        assert_eq!(
            probe.fps.round(),
            f64::from(scenes[0].fps),
            "{} fps",
            probe.fps
        );
        assert_eq!(probe.frame_count, u64::from(scenes[0].frames));
        assert_eq!(probe.codec, "h264");
    }

    #[test]
    fn zero_clips_give_empty_files_and_zero_threads_mean_one() {
        let root = tempfile::tempdir().expect("a temp dir");
        let out = root.path().join("nested").join("world");
        assert_eq!(
            run(&out, 0, 1, 0),
            SynthSummary {
                clips: 0,
                frames: 0
            }
        );
        assert_eq!(json(&out, ANNOTATIONS_FILE), serde_json::json!({}));
        assert_eq!(json(&out, BOXES_FILE), serde_json::json!({}));
    }

    /// Two clips of three shots: the clips hold the frames `shots.json` counts, its
    /// transitions are cuts (two frames) or dissolves ([`DISSOLVE_FRAMES`]) where the
    /// shots meet, `dense.json` times each shot with its scene's caption, and the
    /// reference is the captions in order. A cut changes the picture more than the
    /// frames beside it do.
    #[test]
    fn multi_shot_clips_write_their_transitions_and_timed_sentences() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let settings = SynthSettings {
            shots: 3,
            threads: 2,
            ..SynthSettings::new(2, 11)
        };
        let summary = generate(dir.path(), &settings, &Progress::new()).expect("renders");
        let (shots, dense) = (json(dir.path(), SHOTS_FILE), json(dir.path(), DENSE_FILE));
        let annotations = json(dir.path(), ANNOTATIONS_FILE);
        assert!(!dir.path().join(BOXES_FILE).exists());
        let mut total = 0;
        for index in 0..2 {
            let name = clip_name(index);
            let clip = shots::MultiShot::new(11, index, 3);
            let frames = frames(&dir.path().join(&name));
            assert_eq!(
                frames.len() as u64,
                shots[&name]["frames"].as_u64().unwrap()
            );
            total += frames.len() as u64;
            let spans = shots[&name]["transitions"].as_array().unwrap();
            let kinds = shots[&name]["kinds"].as_array().unwrap();
            assert_eq!((spans.len(), kinds.len()), (2, 2));
            let distance = |a: usize, b: usize| -> u64 {
                let (a, b) = (&frames[a].1, &frames[b].1);
                a.iter()
                    .zip(b)
                    .map(|(x, y)| u64::from(x.abs_diff(*y)))
                    .sum()
            };
            for (span, kind) in spans.iter().zip(kinds) {
                let (first, last) = (span[0].as_u64().unwrap(), span[1].as_u64().unwrap());
                match kind.as_str().unwrap() {
                    "cut" => {
                        assert_eq!(last, first + 1);
                        let (a, b) = (first as usize, last as usize);
                        assert!(distance(a, b) > distance(a - 1, a), "{name}: cut at {b}");
                    }
                    "dissolve" => assert_eq!(last, first + u64::from(DISSOLVE_FRAMES) - 1),
                    other => panic!("kind {other}"),
                }
            }
            let sentences: Vec<&str> = dense[&name]["sentences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            let captions: Vec<&str> = clip.scenes.iter().map(|s| s.caption.as_str()).collect();
            assert_eq!(sentences, captions);
            assert_eq!(annotations[&name]["output"], captions.join(" "));
            let stamps = dense[&name]["timestamps"].as_array().unwrap();
            assert_eq!(stamps[0][0], 0.0);
            let duration = dense[&name]["duration"].as_f64().unwrap();
            assert_eq!(stamps[2][1].as_f64().unwrap(), duration);
            let fps = f64::from(clip.fps());
            assert!((duration - frames.len() as f64 / fps).abs() < 1e-9);
        }
        assert_eq!(summary.frames, total);
    }

    #[test]
    fn a_folder_that_cannot_be_created_is_an_error_with_its_path() {
        let root = tempfile::tempdir().expect("a temp dir");
        let file = root.path().join("file");
        fs::write(&file, b"x").expect("a file");
        let out = file.join("world");
        let error = generate(
            &out,
            &SynthSettings {
                threads: 1,
                ..SynthSettings::new(1, 1)
            },
            &Progress::new(),
        )
        .expect_err("a file is in the way");
        assert_eq!(error.kind(), "create_folder_failed");
        assert_eq!(
            error.to_string(),
            format!("cannot create folder `{}`", out.display())
        );
    }

    #[test]
    fn boxes_json_is_valid_with_one_clip_per_line() {
        let scenes: Vec<Scene> = (0..3).map(|i| scene(9, i)).collect();
        let text = String::from_utf8(boxes_json(&scenes)).expect("UTF-8");
        assert_eq!(text.lines().count(), 5);
        let value: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(value.as_object().map(|o| o.len()), Some(3));
        let first = &value["clip_00000.mp4"]["objects"][0];
        assert_eq!(first["label"], scenes[0].objects[0].label().as_str());
    }

    /// The truth metric reads `boxes.json` and the reference captions in the same words:
    /// every reference states exactly its clip's true facts (precision and recall 1),
    /// so a caption's truth scores measure the caption, not a gap between the grammar
    /// and the extraction.
    #[test]
    fn every_reference_caption_states_exactly_its_clip_s_truth() {
        use wolf_scorer::truth::{WorldTruth, facts, score_caption};
        for seed in [3, 11, 0xDEAD_BEEF] {
            let scenes: Vec<Scene> = (0..150).map(|i| scene(seed, i)).collect();
            let text = String::from_utf8(boxes_json(&scenes)).expect("UTF-8");
            let truth = WorldTruth::from_json(&text).expect("the world's truth reads");
            assert_eq!(truth.len(), scenes.len());
            for (i, s) in scenes.iter().enumerate() {
                let clip = truth.clip(&clip_name(i)).expect("every clip has a truth");
                assert_eq!(facts(&s.caption), clip.facts, "seed {seed}: {}", s.caption);
                let score = score_caption(clip, &s.caption);
                assert_eq!((score.precision, score.recall), (1.0, 1.0), "{}", s.caption);
                // Shapes, their motions, the background and the sign.
                let expected = 2 * s.objects.len() + 1 + usize::from(s.sign.is_some());
                assert_eq!(clip.facts.len(), expected, "{}", s.caption);
            }
        }
    }

    /// Times a 40-clip world: `cargo test -p wolf-datasets synth -- --ignored`.
    #[test]
    #[ignore = "slow: renders 40 clips"]
    fn time_forty_clips() {
        let root = tempfile::tempdir().expect("a temp dir");
        let threads = wolf_pipeline::process::cores();
        let started = Instant::now();
        let summary = run(root.path(), 40, 1, threads);
        eprintln!(
            "40 clips, {} frames, {threads} threads: {:.1?}",
            summary.frames,
            started.elapsed()
        );
    }
}
