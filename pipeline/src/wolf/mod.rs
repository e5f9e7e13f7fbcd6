//! The Wolf method (METHOD.md section 1): frame sampling, the image-level cascade, the
//! temporal summary, the motion caption, video-level captions and fusion, run per video
//! by [`runner::Runner`] for the videos that [`worker`]s claim from the queue
//! ([`worker::caption`] in process for `wolf caption`, [`worker::work`] for `wolf
//! worker`); every intermediate caption is a source of its own.
//!
//! Sources of one video (the names exported and scored):
//! - `IMAGE:middle`: the middle frame's caption by image model `IMAGE`, alone (the
//!   paper's single-image baseline);
//! - `IMAGE:summary`: the LLM's temporal summary of `IMAGE`'s frame captions;
//! - `motion`: the motion caption (tracks of the grounded boxes, verbalised);
//! - `VIDEO`: video model `VIDEO`'s caption of the clip;
//! - `wolf`: the LLM's fusion of all of the above.
//!
//! Files: [`runner`] (a video's stages in order, their outcomes), `keys` (content keys:
//! what is recomputed), `stages/` (one file per stage, and the guard's path),
//! [`guard`] (the checks), [`motion`] (the tracker), [`prompts`], [`worker`] (claim,
//! lease, commit), [`failures`] (why stages failed), [`export`] (a run's captions as
//! text), [`segments`] (how a long video is cut; not used by the runner yet).
//!
//! Threads: see [`runner`]: one task per video in flight, decoding on blocking threads
//! bounded by the cores, each model's concurrency bounded by its backend.

pub mod export;
pub mod failures;
pub mod guard;
mod keys;
pub mod motion;
pub mod prompts;
pub mod runner;
pub mod segments;
mod stages;
pub mod summary;
pub mod worker;

pub use keys::{KeyInput, model_identity};
pub use stages::video::video_request;

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::config::ConfigError;
use crate::models::{Generation, ModelConfig, ModelUse, Role, Sampling};

/// The stages an LLM writes (`story`: a long video's, from its segments' captions).
pub const LLM_STAGES: [&str; 4] = ["summary", "motion", "fusion", "story"];

/// The source name of the fused caption.
pub const WOLF_SOURCE: &str = "wolf";
/// The source name of the motion caption.
pub const MOTION_SOURCE: &str = "motion";

/// The source that stage `stage` writes (`None` for a cascade, which writes none).
pub fn stage_source(stage: &str) -> Option<String> {
    match stage.split_once(':') {
        Some(("middle", m)) => Some(format!("{m}:middle")),
        Some(("summary", m)) => Some(format!("{m}:summary")),
        Some(("video", v)) => Some(v.to_owned()),
        None if stage == "motion" => Some(MOTION_SOURCE.to_owned()),
        None if stage == "fusion" => Some(WOLF_SOURCE.to_owned()),
        _ => None,
    }
}

/// `[wolf]`: which models play which part. Absent: the embedded default (the fixture
/// captioners and the pack's LLM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WolfConfig {
    /// Image models (entries of `[models]`): each captions every sampled frame.
    pub image_models: Vec<String>,
    /// Video models: each captions the whole clip (image-only models see a storyboard).
    pub video_models: Vec<String>,
    /// The LLM of the temporal summaries, the motion caption and the fusion.
    pub llm: String,
    /// The LLM of the temporal summaries, when not `llm`.
    pub summary_llm: Option<String>,
    /// The LLM of the fusion, when not `llm`.
    pub fusion_llm: Option<String>,
    /// The LLM of a long video's story (issue 16), when not the fusion's.
    pub story_llm: Option<String>,
    /// What a summary or fusion that fails the guard's check leads to.
    pub guard: guard::GuardMode,
    /// Generation settings per LLM stage (`summary`, `motion`, `fusion`, `story`), over the
    /// stage's LLM entry's own; `max_tokens` here replaces `llm_max_tokens`.
    pub generation: BTreeMap<String, Generation>,
    /// Caption each frame given the previous frame's caption (the paper's cascade);
    /// `false` captions frames independently.
    pub cascade: bool,
    /// Where the motion caption's boxes come from: `captions` (grounded boxes in the
    /// image models' frame captions), `dataset` (the `boxes_file`), or `off`.
    pub motion: MotionSource,
    /// Motion boxes per video key (the synthetic world's `boxes.json`), for
    /// `motion = "dataset"`.
    pub boxes_file: Option<std::path::PathBuf>,
    /// Verbalise the motion with the LLM; `false`: a deterministic sentence.
    pub motion_llm: bool,
    /// A track seen in fewer than this share of a clip's sampled frames is dropped.
    pub motion_min_track_fraction: f64,
    /// Add the dataset's annotated caption to the fusion as one more source.
    pub fuse_annotation: bool,
    /// The most tokens an LLM stage writes.
    pub llm_max_tokens: u32,
    /// The most tokens a captioner writes.
    pub caption_max_tokens: u32,
    /// Videos processed at once (0: enough to keep every model full).
    pub videos_in_flight: usize,
}

impl Default for WolfConfig {
    fn default() -> Self {
        Self {
            image_models: vec!["frame-captioner".into()],
            video_models: vec!["storyboard-captioner".into()],
            llm: "smollm2".into(),
            summary_llm: None,
            fusion_llm: None,
            story_llm: None,
            guard: guard::GuardMode::default(),
            generation: BTreeMap::new(),
            cascade: true,
            motion: MotionSource::Captions,
            boxes_file: None,
            motion_llm: true,
            motion_min_track_fraction: motion::MIN_TRACK_FRACTION,
            fuse_annotation: false,
            llm_max_tokens: 160,
            caption_max_tokens: 128,
            videos_in_flight: 0,
        }
    }
}

/// Where motion boxes come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MotionSource {
    #[default]
    Captions,
    Dataset,
    Off,
}

impl WolfConfig {
    /// Checks the models against their roles and the options against each other.
    pub fn validate(&self, plan_models: &crate::config::Plan) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            key,
            message: message.to_owned(),
        };
        if self.image_models.is_empty() && self.video_models.is_empty() {
            return Err(invalid(
                "wolf.image_models",
                "and `wolf.video_models` are both empty: nothing would caption",
            ));
        }
        for name in &self.image_models {
            plan_models.model_for(name, Role::ImageCaptioner)?;
        }
        for name in &self.video_models {
            plan_models.model_for(name, Role::VideoCaptioner)?;
        }
        let mut names: Vec<&String> = self.image_models.iter().chain(&self.video_models).collect();
        names.sort();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid(
                "wolf.image_models",
                "and `wolf.video_models` name a model twice: source names must differ",
            ));
        }
        if names
            .iter()
            .any(|n| *n == WOLF_SOURCE || *n == MOTION_SOURCE)
        {
            return Err(invalid(
                "wolf.image_models",
                "may not use the names `wolf` or `motion` (they name sources)",
            ));
        }
        for llm in [
            &self.llm,
            self.summary_llm(),
            self.fusion_llm(),
            self.story_llm(),
        ] {
            plan_models.model_for(llm, Role::Chat)?;
        }
        if self.guard == guard::GuardMode::Consensus {
            let embedder = &plan_models.score.embedder;
            plan_models
                .model_for(embedder, Role::Embedder)
                .map_err(|e| {
                    invalid(
                        "wolf.guard",
                        &format!(
                            "= \"consensus\" embeds the candidates with `[score] embedder` \
                             `{embedder}`, and {e}; add that entry (`backend = \"onnx\"` \
                             without a path is the pack's MiniLM) or set `guard = \"retry\"`"
                        ),
                    )
                })?;
        }
        if self.motion == MotionSource::Dataset && self.boxes_file.is_none() {
            return Err(invalid(
                "wolf.boxes_file",
                "is required with `motion = \"dataset\"`",
            ));
        }
        for (stage, generation) in &self.generation {
            if !LLM_STAGES.contains(&stage.as_str()) {
                return Err(invalid(
                    "wolf.generation",
                    &format!(
                        "has `{stage}`, which is no LLM stage: use {}",
                        LLM_STAGES.join(", ")
                    ),
                ));
            }
            generation.validate(&format!("wolf.generation.{stage}"))?;
        }
        if !(0.0..=1.0).contains(&self.motion_min_track_fraction) {
            return Err(invalid(
                "wolf.motion_min_track_fraction",
                "must be between 0 and 1",
            ));
        }
        if self.llm_max_tokens == 0 || self.caption_max_tokens == 0 {
            return Err(invalid(
                "wolf.llm_max_tokens",
                "and `caption_max_tokens` must be at least 1",
            ));
        }
        Ok(())
    }

    /// The models a run of this config uses, each with the `[wolf]` key that names it:
    /// what the preflight checks before `wolf caption` and `wolf worker` start.
    pub fn model_uses(&self, plan: &crate::config::Plan) -> Vec<ModelUse> {
        let mut uses = Vec::new();
        for name in &self.image_models {
            let by = "[wolf] image_models";
            uses.push(ModelUse::listed(
                by,
                &self.image_models,
                name,
                Role::ImageCaptioner,
            ));
        }
        for name in &self.video_models {
            let by = "[wolf] video_models";
            uses.push(ModelUse::listed(
                by,
                &self.video_models,
                name,
                Role::VideoCaptioner,
            ));
        }
        let motion_llm = self.motion_llm && self.motion != MotionSource::Off;
        if motion_llm || self.summary_llm.is_none() || self.fusion_llm.is_none() {
            uses.push(ModelUse::named("[wolf] llm", &self.llm, Role::Chat));
        }
        if let Some(name) = &self.summary_llm {
            uses.push(ModelUse::named("[wolf] summary_llm", name, Role::Chat));
        }
        if let Some(name) = &self.fusion_llm {
            uses.push(ModelUse::named("[wolf] fusion_llm", name, Role::Chat));
        }
        if let Some(name) = &self.story_llm
            && plan.segments.max_seconds > 0.0
        {
            uses.push(ModelUse::named("[wolf] story_llm", name, Role::Chat));
        }
        if self.guard == guard::GuardMode::Consensus {
            let name = &plan.score.embedder;
            uses.push(ModelUse::named("[score] embedder", name, Role::Embedder));
        }
        uses
    }

    /// The LLM entry of an LLM stage of [`LLM_STAGES`].
    pub fn stage_llm(&self, stage: &str) -> &String {
        match stage {
            "summary" => self.summary_llm(),
            "fusion" => self.fusion_llm(),
            "story" => self.story_llm(),
            _ => &self.llm,
        }
    }

    /// How LLM stage `stage` generates: greedy up to `llm_max_tokens`, then its LLM
    /// entry's `generation`, then the stage's own, key by key. Part of the stage's key.
    pub fn stage_sampling(&self, models: &BTreeMap<String, ModelConfig>, stage: &str) -> Sampling {
        let mut sampling = Sampling {
            max_tokens: self.llm_max_tokens,
            ..Sampling::default()
        };
        if let Some(entry) = models.get(self.stage_llm(stage)) {
            sampling = entry.generation().apply(sampling);
        }
        match self.generation.get(stage) {
            Some(generation) => generation.apply(sampling),
            None => sampling,
        }
    }

    /// The model entry stage `stage` (`cascade:M`, `middle:M`, `summary:M`, `motion`,
    /// `video:V`, `fusion`) asks; None for one without a model (the frames, the motion
    /// as a fixed sentence) or a name that is no stage.
    pub fn stage_model(&self, stage: &str) -> Option<&str> {
        fn named<'a>(models: &'a [String], name: &str) -> Option<&'a str> {
            models.iter().find(|m| *m == name).map(String::as_str)
        }
        match stage.split_once(':') {
            Some(("cascade" | "middle", model)) => named(&self.image_models, model),
            Some(("video", model)) => named(&self.video_models, model),
            Some(("summary", _)) => Some(self.summary_llm()),
            None if stage == "fusion" => Some(self.fusion_llm()),
            None if stage == "motion" && self.motion_llm && self.motion != MotionSource::Off => {
                Some(&self.llm)
            }
            _ => None,
        }
    }

    /// The LLM of the temporal summaries.
    pub fn summary_llm(&self) -> &String {
        self.summary_llm.as_ref().unwrap_or(&self.llm)
    }

    /// The LLM of the fusion.
    pub fn fusion_llm(&self) -> &String {
        self.fusion_llm.as_ref().unwrap_or(&self.llm)
    }

    /// The LLM of a long video's story: `story_llm`, else the fusion's.
    pub fn story_llm(&self) -> &String {
        self.story_llm.as_ref().unwrap_or_else(|| self.fusion_llm())
    }

    /// The sources a video gets, in a fixed order.
    pub fn sources(&self) -> Vec<String> {
        let mut sources = Vec::new();
        for m in &self.image_models {
            sources.push(format!("{m}:middle"));
            sources.push(format!("{m}:summary"));
        }
        if self.motion != MotionSource::Off {
            sources.push(MOTION_SOURCE.to_owned());
        }
        sources.extend(self.video_models.iter().cloned());
        sources.push(WOLF_SOURCE.to_owned());
        sources
    }
}

/// Default run name: the dataset and the config file's stem.
pub fn default_run_name(dataset: &str, config: &std::path::Path) -> String {
    let stem = config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    format!("{dataset}-{stem}")
}
