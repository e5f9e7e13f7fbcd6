//! Content keys: every stage's output is addressed by a hash of what decides it (the
//! video's sha256, the stage, the model entry's identity, the prompt version, the
//! generation settings and the keys of its inputs), known before anything runs. A key
//! found in the results cache is never computed again; a video whose every stage is
//! recorded done with today's keys is skipped without decoding. So a second run makes
//! no model call, a crashed run redoes only what is missing, and a changed model or
//! prompt redoes only what depends on it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::prompts;
use super::{LLM_STAGES, MotionSource, WolfConfig};
use crate::config::Plan;
use crate::hash::sha256_bytes;
use crate::models::ModelConfig;
use crate::store::VideoRow;

/// The keys of one video's stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    /// The decoded frames (not cached; part of the other keys).
    pub base: String,
    pub cascade: BTreeMap<String, String>,
    pub middle: BTreeMap<String, String>,
    pub summary: BTreeMap<String, String>,
    pub motion: Option<String>,
    pub video: BTreeMap<String, String>,
    pub fusion: String,
    /// A long video's shots and segments (`segments`): only for a video that is cut.
    pub segments: Option<String>,
}

impl Keys {
    /// Stage name → expected key, for every stage of the plan.
    pub fn stages(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (m, k) in &self.cascade {
            out.push((format!("cascade:{m}"), k.clone()));
        }
        for (m, k) in &self.middle {
            out.push((format!("middle:{m}"), k.clone()));
        }
        for (m, k) in &self.summary {
            out.push((format!("summary:{m}"), k.clone()));
        }
        if let Some(k) = &self.motion {
            out.push(("motion".into(), k.clone()));
        }
        for (v, k) in &self.video {
            out.push((format!("video:{v}"), k.clone()));
        }
        out.push(("fusion".into(), self.fusion.clone()));
        if let Some(k) = &self.segments {
            out.push((SEGMENTS.into(), k.clone()));
        }
        out
    }

    /// (any stage failed, any stage still to do) for a video's recorded stages, by
    /// stage: (status, key). A stage counts as done or failed only for today's key.
    pub fn states(&self, recorded: &HashMap<String, (String, String)>) -> (bool, bool) {
        let (mut failed, mut todo) = (false, false);
        for (stage, expected) in self.stages() {
            match recorded.get(&stage) {
                Some((status, key)) if *key == expected && status == "done" => {}
                Some((status, key)) if *key == expected && status == "failed" => failed = true,
                _ => todo = true,
            }
        }
        (failed, todo)
    }
}

/// The name of the decoded frames' key in [`KeyMaker::inputs`].
const FRAMES: &str = "frames";
/// The stage of a long video's shots and segments.
pub(crate) const SEGMENTS: &str = "segments";

/// One input of a stage's key: what it is, and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInput {
    pub name: &'static str,
    pub value: String,
}

/// A stage's key inputs, in the order they are hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageInputs {
    pub stage: String,
    pub inputs: Vec<KeyInput>,
}

impl StageInputs {
    /// The key: the hash of the inputs' values.
    fn key(&self) -> String {
        let values: Vec<&str> = self.inputs.iter().map(|i| i.value.as_str()).collect();
        key(&values)
    }
}

/// A key: the hash of its parts.
pub(crate) fn key(parts: &[&str]) -> String {
    sha256_bytes(
        serde_json::to_string(parts)
            .expect("strings serialise")
            .as_bytes(),
    )
}

/// What a run's keys are made of: the sampling, the models' identities and the
/// settings of `[wolf]`, fixed for the run.
#[derive(Debug, Clone)]
pub(crate) struct KeyMaker {
    wolf: WolfConfig,
    identities: HashMap<String, String>,
    /// The frame sampling settings.
    sampling: String,
    /// LLM stage → its merged generation settings, as JSON.
    generation: BTreeMap<&'static str, String>,
    /// `[segments]`, and what decides a long video's cut and story.
    segments: crate::wolf::segments::SegmentsConfig,
    cut: String,
}

impl KeyMaker {
    pub fn new(plan: &Plan) -> Self {
        let wolf = &plan.wolf;
        let identities = plan
            .models
            .iter()
            .map(|(name, entry)| (name.clone(), model_identity(entry)))
            .collect();
        let generation = LLM_STAGES
            .iter()
            .map(|stage| {
                let sampling = wolf.stage_sampling(&plan.models, stage);
                let json = serde_json::to_string(&sampling).expect("sampling serialises");
                (*stage, json)
            })
            .collect();
        Self {
            wolf: wolf.clone(),
            identities,
            sampling: format!("{:?}", plan.sampling),
            generation,
            segments: plan.segments.clone(),
            cut: cut_identity(plan),
        }
    }

    /// Model entry `model`'s identity ("" for a name the plan lacks).
    pub fn identity(&self, model: &str) -> &str {
        self.identities.get(model).map_or("", String::as_str)
    }

    /// The keys of `video`; `boxes` is its entry of `wolf.boxes_file` (with
    /// `motion = "dataset"`).
    pub fn keys(&self, video: &VideoRow, boxes: Option<&serde_json::Value>) -> Keys {
        let by_stage: HashMap<String, String> = self
            .inputs(Some((video, boxes)))
            .into_iter()
            .map(|stage| {
                let k = stage.key();
                (stage.stage, k)
            })
            .collect();
        let w = &self.wolf;
        let per_model = |prefix: &str, models: &[String]| -> BTreeMap<String, String> {
            models
                .iter()
                .map(|m| (m.clone(), by_stage[&format!("{prefix}:{m}")].clone()))
                .collect()
        };
        Keys {
            base: by_stage[FRAMES].clone(),
            cascade: per_model("cascade", &w.image_models),
            middle: per_model("middle", &w.image_models),
            summary: per_model("summary", &w.image_models),
            motion: by_stage.get("motion").cloned(),
            video: per_model("video", &w.video_models),
            fusion: by_stage["fusion"].clone(),
            segments: by_stage.get(SEGMENTS).cloned(),
        }
    }

    /// What each stage's key is made of, named, in the order it is hashed: `frames`
    /// (the decoded frames, part of the captioners' keys) first, then the stages of
    /// [`Keys::stages`]. With `video` (and its `boxes`) the values are the video's;
    /// without, the video's own inputs and the keys of other stages are described
    /// instead (`wolf config check`).
    pub fn inputs(
        &self,
        video: Option<(&VideoRow, Option<&serde_json::Value>)>,
    ) -> Vec<StageInputs> {
        let mut out: Vec<StageInputs> = Vec::new();
        // The key of a stage already in `out`, or its description without a video.
        let dep = |out: &[StageInputs], stage: &str| -> String {
            match video {
                Some(_) => out
                    .iter()
                    .find(|s| s.stage == stage)
                    .expect("a stage's inputs come before the stages that read it")
                    .key(),
                None => format!("<key of {stage}>"),
            }
        };
        let per_video = |value: &dyn Fn(&VideoRow, Option<&serde_json::Value>) -> String,
                         described: &str| match video {
            Some((v, boxes)) => value(v, boxes),
            None => format!("<{described}>"),
        };
        let w = &self.wolf;
        let stage = |name: String, inputs: Vec<(&'static str, String)>| StageInputs {
            stage: name,
            inputs: inputs
                .into_iter()
                .map(|(name, value)| KeyInput { name, value })
                .collect(),
        };
        let sha = || {
            per_video(
                &|v, _| v.sha256.clone().unwrap_or_default(),
                "the video's sha256",
            )
        };
        // A long video's stages are told from its segments': its cut is part of each key
        // (described for a video that is not cut).
        let cut = video.is_some_and(|(v, _)| self.segments.cuts(v.duration_s));
        let mut frames = vec![
            ("stage", FRAMES.into()),
            ("video", sha()),
            ("sampling", self.sampling.clone()),
        ];
        if cut {
            out.push(stage(
                SEGMENTS.into(),
                vec![
                    ("stage", SEGMENTS.into()),
                    ("video", sha()),
                    ("cut", self.cut.clone()),
                ],
            ));
            frames.push(("segments", dep(&out, SEGMENTS)));
        }
        out.push(stage(FRAMES.into(), frames));
        let caption_tokens = w.caption_max_tokens.to_string();
        // The guard's mode and its version: a change of its retry recomputes what it made.
        let guard = format!("{} v{}", w.guard.as_str(), super::guard::VERSION);
        // Keys that several stages read are hashed in the order of their model names.
        let image_models: BTreeSet<&String> = w.image_models.iter().collect();
        let video_models: BTreeSet<&String> = w.video_models.iter().collect();
        for m in &w.image_models {
            let id = self.identity(m).to_owned();
            let cascade = format!("cascade:{m}");
            out.push(stage(
                cascade.clone(),
                vec![
                    ("stage", "cascade".into()),
                    ("frames", dep(&out, FRAMES)),
                    ("model", id.clone()),
                    ("prompt", prompts::FRAME.version.into()),
                    (
                        "cascade",
                        if w.cascade {
                            prompts::CASCADE.version
                        } else {
                            "independent"
                        }
                        .into(),
                    ),
                    ("max_tokens", caption_tokens.clone()),
                ],
            ));
            out.push(stage(
                format!("middle:{m}"),
                vec![
                    ("stage", "middle".into()),
                    ("frames", dep(&out, FRAMES)),
                    ("model", id),
                    ("prompt", prompts::FRAME.version.into()),
                    ("max_tokens", caption_tokens.clone()),
                ],
            ));
            out.push(stage(
                format!("summary:{m}"),
                vec![
                    ("stage", "summary".into()),
                    ("cascade", dep(&out, &cascade)),
                    ("llm", self.identity(w.summary_llm()).into()),
                    ("prompt", prompts::SUMMARY.version.into()),
                    ("generation", self.generation["summary"].clone()),
                    ("guard", guard.clone()),
                ],
            ));
        }
        if w.motion != MotionSource::Off {
            let boxes = match w.motion {
                MotionSource::Dataset => per_video(
                    &|_, boxes| {
                        let clip = boxes.map(|v| v.to_string());
                        sha256_bytes(clip.unwrap_or_default().as_bytes())
                    },
                    "sha256 of the video's boxes in `wolf.boxes_file`",
                ),
                _ => image_models
                    .iter()
                    .map(|m| dep(&out, &format!("cascade:{m}")))
                    .collect::<Vec<_>>()
                    .join(","),
            };
            let verbal = if w.motion_llm {
                format!(
                    "{}:{}:{}",
                    self.identity(&w.llm),
                    prompts::MOTION.version,
                    self.generation["motion"]
                )
            } else {
                "sentence-v1".to_owned()
            };
            out.push(stage(
                "motion".into(),
                vec![
                    ("stage", "motion".into()),
                    ("boxes", boxes),
                    (
                        "tracker",
                        format!("tracker-v2:{}", w.motion_min_track_fraction),
                    ),
                    ("verbaliser", verbal),
                ],
            ));
        }
        for v in &w.video_models {
            out.push(stage(
                format!("video:{v}"),
                vec![
                    ("stage", "video".into()),
                    ("frames", dep(&out, FRAMES)),
                    ("model", self.identity(v).into()),
                    ("prompt", prompts::VIDEO.version.into()),
                    ("max_tokens", caption_tokens.clone()),
                ],
            ));
        }
        let mut fusion = vec![
            ("stage", "fusion".to_owned()),
            ("llm", self.identity(w.fusion_llm()).to_owned()),
            ("prompt", prompts::FUSION.version.to_owned()),
            ("generation", self.generation["fusion"].clone()),
            ("guard", guard),
        ];
        for m in &image_models {
            fusion.push(("summary", dep(&out, &format!("summary:{m}"))));
        }
        if w.motion != MotionSource::Off {
            fusion.push(("motion", dep(&out, "motion")));
        }
        for v in &video_models {
            fusion.push(("video", dep(&out, &format!("video:{v}"))));
        }
        let annotation = match (w.fuse_annotation, video) {
            (false, _) => String::new(),
            (true, Some((v, _))) => v.reference.clone().unwrap_or_default(),
            (true, None) => "<the video's reference caption>".to_owned(),
        };
        fusion.push(("annotation", annotation));
        out.push(stage("fusion".into(), fusion));
        out
    }

    /// The key of frame `index`'s caption by image model `model` in the cascade, after
    /// the frame of key `previous` ("" for the first).
    pub fn cascade_frame(&self, keys: &Keys, model: &str, index: usize, previous: &str) -> String {
        key(&[
            "frame",
            &keys.base,
            self.identity(model),
            prompts::FRAME.version,
            prompts::CASCADE.version,
            &self.wolf.caption_max_tokens.to_string(),
            &index.to_string(),
            previous,
        ])
    }

    /// The key of frame `index`'s caption by image model `model` alone.
    pub fn lone_frame(&self, keys: &Keys, model: &str, index: usize) -> String {
        key(&[
            "frame",
            &keys.base,
            self.identity(model),
            prompts::FRAME.version,
            &self.wolf.caption_max_tokens.to_string(),
            &index.to_string(),
        ])
    }
}

/// What decides a long video's cut and its story: the shot detector's file and
/// threshold, the segment rule, the story's prompt, group, rule (a story must tell every
/// part and not stutter) and LLM.
fn cut_identity(plan: &Plan) -> String {
    let s = &plan.segments;
    let model = s
        .shot_model_file()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!(
        "transnetv2:{model}:{}:{}:{}:{}:{}:{:?}:told-all-no-stutter-no-pick-story-check:{}:{}",
        s.threshold,
        s.max_seconds,
        s.min_seconds,
        s.group,
        prompts::STORY.version,
        s.story,
        plan.models
            .get(plan.wolf.story_llm())
            .map(model_identity)
            .unwrap_or_default(),
        serde_json::to_string(&plan.wolf.stage_sampling(&plan.models, "story"))
            .expect("sampling serialises"),
    )
}

/// A model entry's identity in result keys: what decides its output, not how it is
/// reached (concurrency, timeouts and retries are left out).
pub fn model_identity(entry: &ModelConfig) -> String {
    match entry {
        ModelConfig::Openai(c) => format!(
            "openai:{}@{}:{}px:q{}:{:?}",
            c.model, c.base_url, c.image_size, c.jpeg_quality, c.video
        ),
        ModelConfig::Gguf(c) => format!(
            "gguf:{}",
            c.resolved_path()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
        ModelConfig::Onnx(c) => format!(
            "onnx:{}:{:?}:{:?}:{:?}",
            c.resolved_path()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            c.decoder,
            c.num_beams,
            c.max_length
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::wolf::runner::placeholder_video;

    const MODELS: &str = r#"
[models.cap]
backend = "onnx"
path = "fixtures/models/frame-captioner"

[models.board]
backend = "onnx"
path = "fixtures/models/storyboard-captioner"

[models.llm]
backend = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "a"

[models.other-llm]
backend = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "b"

[models.minilm]
backend = "onnx"
"#;

    /// The keys of a video of content `sha` under `[wolf]` settings `wolf` (TOML lines).
    fn keys_with(wolf: &str, sha: &str) -> Keys {
        let text = format!(
            "{MODELS}\n[wolf]\nimage_models = [\"cap\"]\nvideo_models = [\"board\"]\n\
             llm = \"llm\"\n{wolf}\n"
        );
        let plan = Config::parse(&text).unwrap().plan().unwrap();
        plan.wolf.validate(&plan).unwrap();
        KeyMaker::new(&plan).keys(&video(sha), None)
    }

    fn video(sha: &str) -> VideoRow {
        VideoRow {
            key: "a.mp4".into(),
            sha256: Some(sha.into()),
            reference: Some("a red circle".into()),
            ..placeholder_video()
        }
    }

    /// The stages whose keys differ between `a` and `b`.
    fn changed(a: &Keys, b: &Keys) -> Vec<String> {
        a.stages()
            .into_iter()
            .zip(b.stages())
            .filter(|((_, x), (_, y))| x != y)
            .map(|((stage, _), _)| stage)
            .collect()
    }

    /// A video longer than `[segments] max_seconds` has a `segments` stage, and every
    /// other key of it differs from the same content left whole (and with the settings
    /// of the cut); a segment (the video's sha256 with its span) has keys of its own.
    #[test]
    fn a_cut_video_has_a_segments_stage_and_keys_of_its_own() {
        let text = format!(
            "{MODELS}\n[wolf]\nimage_models = [\"cap\"]\nvideo_models = [\"board\"]\nllm = \"llm\"\n"
        );
        let plan = Config::parse(&text).unwrap().plan().unwrap();
        let maker = KeyMaker::new(&plan);
        let long = |seconds: f64| VideoRow {
            duration_s: Some(seconds),
            ..video("aaa")
        };
        let whole = maker.keys(&long(60.0), None);
        let cut = maker.keys(&long(61.0), None);
        assert_eq!(whole.segments, None);
        assert!(cut.segments.is_some());
        assert_eq!(changed(&whole, &cut).len(), whole.stages().len());
        let mut shorter = plan.clone();
        shorter.segments.min_seconds = 1.0;
        let other = KeyMaker::new(&shorter).keys(&long(61.0), None);
        assert_eq!(changed(&cut, &other).len(), cut.stages().len());
        // The story's mode and LLM decide a cut video's caption: in its keys, and not in
        // an uncut video's.
        let mut joined = plan.clone();
        joined.segments.story = crate::wolf::segments::StoryMode::Joined;
        let mut teller = plan.clone();
        teller.wolf.story_llm = Some("other-llm".into());
        for story in [joined, teller] {
            let maker = KeyMaker::new(&story);
            let told = maker.keys(&long(61.0), None);
            assert_eq!(changed(&cut, &told).len(), cut.stages().len());
            assert_eq!(maker.keys(&long(60.0), None), whole);
        }
        let segment = |span: &str| VideoRow {
            sha256: Some(format!("aaa@{span}")),
            ..long(30.0)
        };
        let (first, second) = (
            maker.keys(&segment("0-30"), None),
            maker.keys(&segment("30-61"), None),
        );
        assert_eq!(changed(&first, &second).len(), first.stages().len());
    }

    #[test]
    fn the_same_video_and_settings_give_the_same_keys_and_every_stage_has_one() {
        let a = keys_with("", "aaa");
        assert_eq!(a, keys_with("", "aaa"));
        let stages: Vec<String> = a.stages().into_iter().map(|(s, _)| s).collect();
        assert_eq!(
            stages,
            [
                "cascade:cap",
                "middle:cap",
                "summary:cap",
                "motion",
                "video:board",
                "fusion"
            ]
        );
        let mut all: Vec<String> = a.stages().into_iter().map(|(_, k)| k).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 6, "two stages share a key");
    }

    #[test]
    fn another_video_changes_every_key() {
        let (a, b) = (keys_with("", "aaa"), keys_with("", "bbb"));
        assert_eq!(changed(&a, &b).len(), a.stages().len());
    }

    #[test]
    fn a_setting_changes_only_the_stages_that_depend_on_it() {
        let base = keys_with("", "aaa");
        let cases: [(&str, &[&str]); 8] = [
            // The summary LLM: the summary and what reads it.
            ("summary_llm = \"other-llm\"", &["summary:cap", "fusion"]),
            ("fusion_llm = \"other-llm\"", &["fusion"]),
            ("guard = \"retry\"", &["summary:cap", "fusion"]),
            (
                "[wolf.generation.fusion]\nrepeat_penalty = 1.2",
                &["fusion"],
            ),
            // The motion LLM verbalises the tracks (`motion_llm`, on by default).
            (
                "[wolf.generation.motion]\ntemperature = 0.5",
                &["motion", "fusion"],
            ),
            ("motion_min_track_fraction = 0.5", &["motion", "fusion"]),
            ("fuse_annotation = true", &["fusion"]),
            (
                "cascade = false",
                &["cascade:cap", "summary:cap", "motion", "fusion"],
            ),
        ];
        for (setting, expected) in cases {
            let keys = keys_with(setting, "aaa");
            assert_eq!(changed(&base, &keys), expected.to_vec(), "{setting}");
        }
        // Every frame-level input: the caption length changes every captioner's keys.
        let longer = keys_with("caption_max_tokens = 32", "aaa");
        assert_eq!(changed(&base, &longer).len(), base.stages().len());
        // The LLM's token cap changes the LLM stages only.
        let llm = keys_with("llm_max_tokens = 32", "aaa");
        assert_eq!(changed(&base, &llm), ["summary:cap", "motion", "fusion"]);
        // A fixed sentence for the motion: its LLM's settings no longer reach it.
        let sentence = keys_with("motion_llm = false", "aaa");
        let tempered = keys_with(
            "motion_llm = false\n[wolf.generation.motion]\ntemperature = 0.5",
            "aaa",
        );
        assert_eq!(changed(&sentence, &tempered), Vec::<String>::new());
    }

    #[test]
    fn with_motion_off_there_is_no_motion_stage_and_the_fusion_changes() {
        let base = keys_with("", "aaa");
        let off = keys_with("motion = \"off\"", "aaa");
        assert!(off.motion.is_none());
        assert!(!off.stages().iter().any(|(s, _)| s == "motion"));
        assert_ne!(base.fusion, off.fusion);
        assert_eq!(base.summary, off.summary);
    }

    #[test]
    fn frame_keys_chain_in_the_cascade_and_stand_alone_without_it() {
        let text = format!(
            "{MODELS}\n[wolf]\nimage_models = [\"cap\"]\nvideo_models = []\nllm = \"llm\"\n"
        );
        let plan = Config::parse(&text).unwrap().plan().unwrap();
        let maker = KeyMaker::new(&plan);
        let keys = maker.keys(&video("aaa"), None);
        let first = maker.cascade_frame(&keys, "cap", 0, "");
        let second = maker.cascade_frame(&keys, "cap", 1, &first);
        assert_ne!(
            second,
            maker.cascade_frame(&keys, "cap", 1, "another first frame")
        );
        assert_ne!(first, maker.lone_frame(&keys, "cap", 0));
        assert_ne!(
            maker.lone_frame(&keys, "cap", 0),
            maker.lone_frame(&keys, "cap", 1)
        );
    }

    #[test]
    fn states_count_a_stage_done_or_failed_only_under_today_s_key() {
        let keys = keys_with("", "aaa");
        let done = |status: &str| -> HashMap<String, (String, String)> {
            keys.stages()
                .into_iter()
                .map(|(stage, key)| (stage, (status.to_owned(), key)))
                .collect()
        };
        assert_eq!(keys.states(&done("done")), (false, false));
        assert_eq!(keys.states(&HashMap::new()), (false, true));
        let mut one_failed = done("done");
        one_failed.get_mut("fusion").unwrap().0 = "failed".into();
        assert_eq!(keys.states(&one_failed), (true, false));
        // A failure under yesterday's key is work to do, not a failure.
        let mut old_failure = done("done");
        *old_failure.get_mut("fusion").unwrap() = ("failed".into(), "old".into());
        assert_eq!(keys.states(&old_failure), (false, true));
        let mut pending = done("done");
        pending.get_mut("motion").unwrap().0 = "pending".into();
        assert_eq!(keys.states(&pending), (false, true));
    }

    /// The keys of a fixed video and config, as computed before `KeyMaker::inputs`
    /// named them: a change here recomputes every cached stage of every run. The guarded
    /// stages' keys changed on purpose with the guard's version 2 (its retry never
    /// completes a loop).
    const PINNED: [&str; 10] = [
        "frames 215dc33cb6f94830",
        "cascade:aimg 69afbf3372e2bab8",
        "cascade:img 889f342eb679c842",
        "middle:aimg e424563cf228c6d9",
        "middle:img f263f75f17e2663e",
        "summary:aimg 8f855e6185f01cff",
        "summary:img f81f09b04e49b15a",
        "motion 185f443a502402ae",
        "video:vid 85d70005112d5766",
        "fusion 5315985016a2e860",
    ];

    #[test]
    fn keys_stay_what_they_were() {
        let text = "[models.img]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"i\"\n\
             [models.aimg]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"a\"\n\
             [models.vid]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"v\"\n\
             [models.llm]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"l\"\n\
             [wolf]\nimage_models = [\"img\", \"aimg\"]\nvideo_models = [\"vid\"]\nllm = \"llm\"\nfuse_annotation = true\n";
        let plan = Config::parse(text).unwrap().plan().unwrap();
        let keys = KeyMaker::new(&plan).keys(&video("aaa"), None);
        let mut all = vec![("frames".to_owned(), keys.base.clone())];
        all.extend(keys.stages());
        let got: Vec<String> = all
            .iter()
            .map(|(s, k)| format!("{s} {}", &k[..16]))
            .collect();
        assert_eq!(got, PINNED);
    }

    #[test]
    fn without_a_video_the_inputs_describe_it_and_name_the_stages_they_read() {
        let text = format!(
            "{MODELS}\n[wolf]\nimage_models = [\"cap\"]\nvideo_models = [\"board\"]\nllm = \"llm\"\n"
        );
        let plan = Config::parse(&text).unwrap().plan().unwrap();
        let maker = KeyMaker::new(&plan);
        let described = maker.inputs(None);
        let stages: Vec<&str> = described.iter().map(|s| s.stage.as_str()).collect();
        let mut expected = vec!["frames"];
        let keys = maker.keys(&video("aaa"), None);
        let names: Vec<String> = keys.stages().into_iter().map(|(s, _)| s).collect();
        expected.extend(names.iter().map(String::as_str));
        assert_eq!(stages, expected);
        let summary = described.iter().find(|s| s.stage == "summary:cap").unwrap();
        let cascade = summary.inputs.iter().find(|i| i.name == "cascade").unwrap();
        assert_eq!(cascade.value, "<key of cascade:cap>");
        let frames = &described[0].inputs[1];
        assert_eq!(frames.value, "<the video's sha256>");
    }
}
