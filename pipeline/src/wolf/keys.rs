//! Content keys: every stage's output is addressed by a hash of what decides it (the
//! video's sha256, the stage, the model entry's identity, the prompt version, the
//! generation settings and the keys of its inputs), known before anything runs. A key
//! found in the results cache is never computed again; a video whose every stage is
//! recorded done with today's keys is skipped without decoding. So a second run makes
//! no model call, a crashed run redoes only what is missing, and a changed model or
//! prompt redoes only what depends on it.

use std::collections::{BTreeMap, HashMap};

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

/// A key: the hash of its parts.
fn key(parts: &[&str]) -> String {
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
}

impl KeyMaker {
    pub fn new(plan: &Plan, wolf: &WolfConfig) -> Self {
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
        }
    }

    /// Model entry `model`'s identity ("" for a name the plan lacks).
    pub fn identity(&self, model: &str) -> &str {
        self.identities.get(model).map_or("", String::as_str)
    }

    /// The keys of `video`; `boxes` is its entry of `wolf.boxes_file` (with
    /// `motion = "dataset"`).
    pub fn keys(&self, video: &VideoRow, boxes: Option<&serde_json::Value>) -> Keys {
        let sha256 = video.sha256.as_deref().unwrap_or_default();
        let base = key(&["frames", sha256, &self.sampling]);
        let w = &self.wolf;
        let llm = self.identity(&w.llm);
        let summary_llm = self.identity(w.summary_llm());
        let fusion_llm = self.identity(w.fusion_llm());
        let guard = w.guard.as_str();
        let (summary_gen, motion_gen, fusion_gen) = (
            &self.generation["summary"],
            &self.generation["motion"],
            &self.generation["fusion"],
        );
        let caption_tokens = w.caption_max_tokens.to_string();
        let mut cascade = BTreeMap::new();
        let mut middle = BTreeMap::new();
        let mut summary = BTreeMap::new();
        for m in &w.image_models {
            let id = self.identity(m);
            let c = key(&[
                "cascade",
                &base,
                id,
                prompts::FRAME.version,
                if w.cascade {
                    prompts::CASCADE.version
                } else {
                    "independent"
                },
                &caption_tokens,
            ]);
            middle.insert(
                m.clone(),
                key(&["middle", &base, id, prompts::FRAME.version, &caption_tokens]),
            );
            summary.insert(
                m.clone(),
                key(&[
                    "summary",
                    &c,
                    summary_llm,
                    prompts::SUMMARY.version,
                    summary_gen,
                    guard,
                ]),
            );
            cascade.insert(m.clone(), c);
        }
        let motion = match w.motion {
            MotionSource::Off => None,
            source => {
                let boxes = match source {
                    MotionSource::Dataset => {
                        let clip = boxes.map(|v| v.to_string());
                        sha256_bytes(clip.unwrap_or_default().as_bytes())
                    }
                    _ => cascade.values().cloned().collect::<Vec<_>>().join(","),
                };
                let verbal = if w.motion_llm {
                    format!("{llm}:{}:{motion_gen}", prompts::MOTION.version)
                } else {
                    "sentence-v1".to_owned()
                };
                let tracker = format!("tracker-v2:{}", w.motion_min_track_fraction);
                Some(key(&["motion", &boxes, &tracker, &verbal]))
            }
        };
        let videos: BTreeMap<String, String> = w
            .video_models
            .iter()
            .map(|v| {
                let k = key(&[
                    "video",
                    &base,
                    self.identity(v),
                    prompts::VIDEO.version,
                    &caption_tokens,
                ]);
                (v.clone(), k)
            })
            .collect();
        let annotation = match (w.fuse_annotation, &video.reference) {
            (true, Some(reference)) => reference.as_str(),
            _ => "",
        };
        let mut inputs = vec![
            "fusion",
            fusion_llm,
            prompts::FUSION.version,
            fusion_gen,
            guard,
        ];
        inputs.extend(summary.values().map(String::as_str));
        inputs.extend(motion.as_deref());
        inputs.extend(videos.values().map(String::as_str));
        inputs.push(annotation);
        let fusion = key(&inputs);
        Keys {
            base,
            cascade,
            middle,
            summary,
            motion,
            video: videos,
            fusion,
        }
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
        KeyMaker::new(&plan, &plan.wolf).keys(&video(sha), None)
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
        let maker = KeyMaker::new(&plan, &plan.wolf);
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
}
