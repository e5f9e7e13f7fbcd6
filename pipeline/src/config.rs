//! Config files (TOML) and the validated plan made from them.
//!
//! The file says what a run does; flags say how the process runs. Every key is
//! documented here, and a key the schema does not know is an error that names it.
//! [`Config::plan`] validates everything before anything runs: a [`Plan`] that exists
//! is runnable.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::media::{ImageFormat, Rate, Resize, SampleSettings};
use crate::models::{ModelConfig, Role, default_models};

/// A config file as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How frames are sampled from each clip (METHOD.md 1.1).
    #[serde(default)]
    pub sampling: SamplingConfig,
    /// The models, by name (`[models.NAME]`); stages refer to them by name. They add
    /// to [`default_models`] (the pack's `smollm2` (GGUF LLM) and `minilm` (ONNX
    /// embedder), and the checkout's fixture captioners (ONNX)) and replace a default
    /// of the same name; `[models] defaults = false` keeps the file's alone.
    #[serde(default)]
    pub models: ModelsTable,
    /// The Wolf method's parts: which models caption frames and clips, which LLM
    /// summarises and fuses (METHOD.md section 1). Absent: the embedded default.
    #[serde(default)]
    pub wolf: Option<crate::wolf::WolfConfig>,
    /// How captions are scored where a command scores them without flags (`wolf demo`).
    #[serde(default)]
    pub score: ScoreConfig,
    /// The VILA² recaption loop (`wolf recaption`, METHOD.md section 3).
    #[serde(default)]
    pub recaption: RecaptionConfig,
    /// How the leaderboard ranks entries (`wolf leaderboard`, `wolf demo`).
    #[serde(default)]
    pub leaderboard: LeaderboardConfig,
    /// How long videos are cut into segments (issue 16).
    #[serde(default)]
    pub segments: crate::wolf::segments::SegmentsConfig,
}

/// `[models]`: the file's entries by name, and whether the defaults stay beneath them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelsTable {
    /// `defaults = false`: the file's entries are the whole list.
    pub defaults: Option<bool>,
    pub entries: BTreeMap<String, ModelConfig>,
}

/// Where a plan's model entry comes from (`wolf config check` prints it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelOrigin {
    /// The embedded defaults.
    Default,
    /// The config file.
    File,
    /// The config file, in place of the default of that name.
    FileOverDefault,
}

impl ModelOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::File => "config file",
            Self::FileOverDefault => "config file (replaces the default)",
        }
    }
}

impl Serialize for ModelsTable {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        if let Some(defaults) = self.defaults {
            map.serialize_entry("defaults", &defaults)?;
        }
        for (name, entry) in &self.entries {
            map.serialize_entry(name, entry)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ModelsTable {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ModelsTable;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`defaults = true|false` and tables of model entries")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut table = ModelsTable::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "defaults" {
                        table.defaults = Some(map.next_value()?);
                    } else {
                        let entry = map.next_value()?;
                        table.entries.insert(key, entry);
                    }
                }
                Ok(table)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// `[recaption]`: what `wolf recaption` does. The template and specialists are checked
/// by the recaption loop itself (`wolf_datasets::recaption::merge`) before it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecaptionConfig {
    /// The image captioner entry that recaptions (default: the fixture
    /// `frame-captioner`); video items are shown to it as a storyboard.
    pub captioner: String,
    /// `short_long` (the default: original and recaption), `recaption_only` or
    /// `original_only`.
    pub template: String,
    /// Specialists asked about every item: `spatial`, `grounding`, `ocr` (answered by
    /// `specialist_captioner` with the specialist's prompt; answers appended as
    /// questions and answers).
    pub specialists: Vec<String>,
    /// The image captioner entry that answers the specialists (VILA²'s specialists are
    /// models of their own); absent: the round's captioner. Checked only when there are
    /// specialists.
    pub specialist_captioner: Option<String>,
    /// Seed of the per-item prompt draw.
    pub seed: u64,
    /// Items in flight.
    pub concurrency: usize,
    /// Run after each round of `wolf recaption loop` as `sh -c "$train_cmd" train
    /// ROUND_DIR`; its last line of output names the model entry of the next round.
    /// Absent: every round uses `captioner`.
    pub train_cmd: Option<String>,
    /// The held-out dataset (in the store, with references) each round's captioner is
    /// evaluated on: mean `embed_sim` of its captions of each video's middle frame.
    pub heldout: Option<String>,
    /// The loop stops when a round's held-out score gains less than this.
    pub min_gain: f64,
    /// The most rounds of `wolf recaption loop`.
    pub rounds: u32,
}

impl Default for RecaptionConfig {
    fn default() -> Self {
        Self {
            captioner: "frame-captioner".into(),
            template: "short_long".into(),
            specialists: Vec::new(),
            specialist_captioner: None,
            seed: 0,
            concurrency: 4,
            train_cmd: None,
            heldout: None,
            min_gain: 0.01,
            rounds: 3,
        }
    }
}

/// `[score]`: the judge and the embedder of scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreConfig {
    /// The CapScore judge (a chat LLM entry); absent: no CapScore.
    pub judge: Option<String>,
    /// `pointwise` (the default) or `listwise`.
    pub mode: String,
    /// Judge samples per caption.
    pub samples: usize,
    /// The embedder of `embed_sim` (default `minilm`).
    pub embedder: String,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self {
            judge: None,
            mode: "pointwise".into(),
            samples: 1,
            embedder: "minilm".into(),
        }
    }
}

/// `[leaderboard]`: how the leaderboard ranks entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaderboardConfig {
    /// The metric that ranks each dataset that has it (`truth_f1`, `embed_sim`, ...);
    /// absent, or for a dataset without it: `truth_f1`, else `capscore_quality`, else
    /// `embed_sim`.
    pub primary: Option<String>,
    /// The least share of a dataset's readable videos an entry must caption to be
    /// ranked (0 to 1, default 1); entries below are listed apart, unranked.
    pub min_coverage: f64,
}

impl Default for LeaderboardConfig {
    fn default() -> Self {
        Self {
            primary: None,
            min_coverage: 1.0,
        }
    }
}

impl LeaderboardConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.min_coverage) {
            return Err(ConfigError::Invalid {
                key: "leaderboard.min_coverage",
                message: format!("is {}, not a share between 0 and 1", self.min_coverage),
            });
        }
        if self.primary.as_deref().is_some_and(|p| p.trim().is_empty()) {
            return Err(ConfigError::Invalid {
                key: "leaderboard.primary",
                message: "is empty; name a metric such as `truth_f1`".into(),
            });
        }
        Ok(())
    }
}

/// `[sampling]`: frame sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    /// Frames per second of video (default 2). Exclusive with `count`.
    pub fps: Option<f64>,
    /// An exact number of frames per clip instead of a rate.
    pub count: Option<usize>,
    /// Short clips get at least this many frames (default 4).
    pub min_frames: usize,
    /// Long clips get at most this many frames (default 32).
    pub max_frames: usize,
    /// Frame size in pixels: one number for a square, or `WIDTHxHEIGHT`. Absent: the
    /// clip's own size.
    pub size: Option<String>,
    /// How frames reach `size`: `pad` (keep the aspect ratio, pad with black; the
    /// default), `stretch`, or `fit` (keep the aspect ratio; the longer side becomes
    /// the size's width).
    pub resize: ResizeMode,
    /// Encoding of frames written to disk: `jpeg` (default) or `png`.
    pub format: FrameFormat,
    /// JPEG quality, 1 to 100 (default 90).
    pub jpeg_quality: u8,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            fps: None,
            count: None,
            min_frames: 4,
            max_frames: 32,
            size: None,
            resize: ResizeMode::Pad,
            format: FrameFormat::Jpeg,
            jpeg_quality: 90,
        }
    }
}

/// How frames are brought to a size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    #[default]
    Pad,
    Stretch,
    Fit,
}

/// Encoding of frames written to disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameFormat {
    #[default]
    Jpeg,
    Png,
}

/// A config that failed to load or validate.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config `{path}` is not valid")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    /// TOML text that does not parse into a config; the message names the key and
    /// where it is.
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    /// `[sampling] size` (or `--size`) that is not a size.
    #[error("`{0}` is not a size: use a number or WIDTHxHEIGHT, each 1 to 8192")]
    Size(String),
    #[error("`{key}` {message}")]
    Invalid { key: &'static str, message: String },
    #[error("{0}")]
    Model(String),
    /// A value out of its range; `key` is the whole dotted key.
    #[error("`{key}` {message}")]
    Value { key: String, message: &'static str },
}

impl ConfigError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Read { .. } => "config_unreadable",
            Self::Parse { .. } | Self::Toml(_) => "config_parse",
            Self::Invalid { .. } | Self::Model(_) | Self::Value { .. } | Self::Size(_) => {
                "config_invalid"
            }
        }
    }
}

/// The validated plan of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub sampling: SampleSettings,
    pub frame_format: ImageFormat,
    /// Every model entry, validated: the defaults and the file's ([`Config::plan`]).
    pub models: BTreeMap<String, ModelConfig>,
    /// The method's parts, checked against the models when the plan is made for a
    /// command that runs the method ([`Choices::wolf`]) or the file has them.
    pub wolf: crate::wolf::WolfConfig,
    /// How commands that score without flags score (`wolf demo`).
    pub score: ScoreConfig,
    /// What `wolf recaption` does.
    pub recaption: RecaptionConfig,
    /// How the leaderboard ranks entries.
    pub leaderboard: LeaderboardConfig,
    /// How long videos are cut into segments.
    pub segments: crate::wolf::segments::SegmentsConfig,
}

impl Plan {
    /// The entry `name` for `role`; an error names the entry, its backend and the
    /// role when the backend cannot serve it.
    pub fn model_for(&self, name: &str, role: Role) -> Result<&ModelConfig, ConfigError> {
        let entry = self.models.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.models.keys().map(String::as_str).collect();
            ConfigError::Model(format!(
                "there is no model `{name}`; the config has: {}",
                known.join(", ")
            ))
        })?;
        if !entry.roles().contains(&role) {
            return Err(ConfigError::Model(format!(
                "model `{name}` (backend `{}`) cannot serve as {}",
                entry.backend(),
                role.as_str()
            )));
        }
        Ok(entry)
    }
}

impl Config {
    /// Reads and parses a file (without validating it; see [`Config::plan`]).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Ok(Self::read(path)?.0)
    }

    /// [`Config::load`] of `path`, or the embedded defaults without one.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, ConfigError> {
        path.map_or_else(|| Ok(Self::default()), Self::load)
    }

    /// [`Config::load`], with the file's text (what a run stores).
    pub fn read(path: &Path) -> Result<(Self, String), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        Ok((config, text))
    }

    /// Parses TOML text; the error names the offending key and where it is.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// Validates the config into a plan with no command-line choices
    /// ([`Config::plan_with`] with [`Choices::default`]).
    pub fn plan(&self) -> Result<Plan, ConfigError> {
        self.plan_with(&Choices::default())
    }

    /// Applies `choices`, then validates the config into a plan, once: its model
    /// entries (the defaults, then the file's, which replace a default of the same
    /// name, or the file's alone with `[models] defaults = false`), the sampling, the
    /// `[wolf]` section against the models (when the file has one or the command runs
    /// the method), the judge (when one is named), the recaption captioner and a chosen
    /// embedder.
    pub fn plan_with(&self, choices: &Choices) -> Result<Plan, ConfigError> {
        let models = match &choices.models {
            Some(models) => models.clone(),
            None => {
                let mut models = if self.models.defaults == Some(false) {
                    BTreeMap::new()
                } else {
                    default_models()
                };
                models.extend(self.models.entries.clone());
                models
            }
        };
        for (name, entry) in &models {
            entry.validate(name)?;
        }
        let mut plan = Plan {
            sampling: self.sampling.settings()?,
            frame_format: self.sampling.frame_format()?,
            models,
            wolf: self.wolf.clone().unwrap_or_default(),
            score: self.score.clone(),
            recaption: self.recaption.clone(),
            leaderboard: self.leaderboard.clone(),
            segments: self.segments.clone(),
        };
        plan.segments.validate()?;
        if let Some(min_coverage) = choices.min_coverage {
            plan.leaderboard.min_coverage = min_coverage;
        }
        plan.leaderboard.validate()?;
        if let Some(captioner) = &choices.captioner {
            plan.recaption.captioner = captioner.clone();
        }
        if let Some(judge) = &choices.judge {
            plan.score.judge = Some(judge.clone());
        }
        if let Some(embedder) = &choices.embedder {
            plan.score.embedder = embedder.clone();
            plan.model_for(embedder, Role::Embedder)?;
        }
        if choices.wolf || self.wolf.is_some() {
            plan.wolf.validate(&plan)?;
        }
        if choices.recaption {
            plan.model_for(&plan.recaption.captioner, Role::ImageCaptioner)?;
            if let Some(specialist) = &plan.recaption.specialist_captioner
                && !plan.recaption.specialists.is_empty()
            {
                plan.model_for(specialist, Role::ImageCaptioner)?;
            }
        }
        if let Some(judge) = &plan.score.judge {
            plan.model_for(judge, Role::Chat)?;
        }
        Ok(plan)
    }
}

/// What a command line chooses in place of what a config names. [`Config::plan_with`]
/// applies it before it checks the plan, so that a flag naming an entry of the user's
/// file is what is checked, not the default it replaces.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    /// The whole list of model entries (`wolf worker --config`: a worker's own).
    pub models: Option<BTreeMap<String, ModelConfig>>,
    /// `[recaption] captioner` (`--captioner`).
    pub captioner: Option<String>,
    /// `[score] judge` (`--judge`).
    pub judge: Option<String>,
    /// `[score] embedder` (`--embedder`).
    pub embedder: Option<String>,
    /// The command runs the Wolf method: `[wolf]` is checked even when the file has
    /// none (the default section names models that must exist).
    pub wolf: bool,
    /// The command runs the recaption loop: `[recaption] captioner` is checked.
    pub recaption: bool,
    /// `[leaderboard] min_coverage` (`--min-coverage`).
    pub min_coverage: Option<f64>,
}

impl Config {
    /// Where each entry of the plan's models comes from.
    pub fn model_origins(&self) -> BTreeMap<String, ModelOrigin> {
        let mut origins = BTreeMap::new();
        if self.models.defaults != Some(false) {
            for name in default_models().into_keys() {
                origins.insert(name, ModelOrigin::Default);
            }
        }
        for name in self.models.entries.keys() {
            let origin = match origins.get(name) {
                Some(ModelOrigin::Default) => ModelOrigin::FileOverDefault,
                _ => ModelOrigin::File,
            };
            origins.insert(name.clone(), origin);
        }
        origins
    }

    /// The file's own model entries, validated (what `wolf worker --config` puts in
    /// place of a run's entries of the same names).
    pub fn file_models(&self) -> Result<BTreeMap<String, ModelConfig>, ConfigError> {
        for (name, entry) in &self.models.entries {
            entry.validate(name)?;
        }
        Ok(self.models.entries.clone())
    }
}

impl SamplingConfig {
    fn settings(&self) -> Result<SampleSettings, ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            key,
            message: message.to_owned(),
        };
        let rate = match (self.fps, self.count) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "sampling.count",
                    "cannot be given together with `sampling.fps`",
                ));
            }
            (_, Some(0)) => return Err(invalid("sampling.count", "must be at least 1")),
            (_, Some(n)) => Rate::Count(n),
            (Some(fps), None) if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) => {
                return Err(invalid(
                    "sampling.fps",
                    "must be a number above 0 and at most 1000",
                ));
            }
            (fps, None) => Rate::PerSecond(fps.unwrap_or(2.0)),
        };
        if self.min_frames == 0 {
            return Err(invalid("sampling.min_frames", "must be at least 1"));
        }
        if self.max_frames < self.min_frames {
            return Err(invalid(
                "sampling.max_frames",
                "must not be below `sampling.min_frames`",
            ));
        }
        let resize = match &self.size {
            None => Resize::Native,
            Some(size) => {
                let (width, height) = parse_size(size).map_err(|e| ConfigError::Invalid {
                    key: "sampling.size",
                    message: e.to_string(),
                })?;
                match self.resize {
                    ResizeMode::Pad => Resize::Pad { width, height },
                    ResizeMode::Stretch => Resize::Stretch { width, height },
                    ResizeMode::Fit => Resize::Fit(width.max(height)),
                }
            }
        };
        Ok(SampleSettings {
            rate,
            min_frames: self.min_frames,
            max_frames: self.max_frames,
            resize,
        })
    }

    fn frame_format(&self) -> Result<ImageFormat, ConfigError> {
        match self.format {
            FrameFormat::Png => Ok(ImageFormat::Png),
            FrameFormat::Jpeg if (1..=100).contains(&self.jpeg_quality) => {
                Ok(ImageFormat::Jpeg(self.jpeg_quality))
            }
            FrameFormat::Jpeg => Err(ConfigError::Invalid {
                key: "sampling.jpeg_quality",
                message: "must be between 1 and 100".into(),
            }),
        }
    }
}

/// Parses `384` or `640x360` into a width and a height (each 1 to 8192).
pub fn parse_size(text: &str) -> Result<(u32, u32), ConfigError> {
    let parse = |s: &str| {
        s.trim()
            .parse::<u32>()
            .ok()
            .filter(|v| (1..=8192).contains(v))
            .ok_or_else(|| ConfigError::Size(text.to_owned()))
    };
    match text.split_once(['x', 'X']) {
        Some((w, h)) => Ok((parse(w)?, parse(h)?)),
        None => parse(text).map(|side| (side, side)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JUDGE: &str = "[models.judge]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"j\"\n";

    #[test]
    fn a_file_s_entries_add_to_the_defaults_and_replace_one_of_the_same_name() {
        let config = Config::parse(JUDGE).unwrap();
        let plan = config.plan().unwrap();
        let defaults = default_models();
        for name in defaults.keys() {
            assert_eq!(plan.models.get(name), defaults.get(name), "{name}");
        }
        assert!(plan.models.contains_key("judge"));
        assert_eq!(plan.models.len(), defaults.len() + 1);
        let origins = config.model_origins();
        assert_eq!(origins["judge"], ModelOrigin::File);
        assert_eq!(origins["minilm"], ModelOrigin::Default);

        let text = format!("{JUDGE}[models.minilm]\nbackend = \"onnx\"\nthreads = 3\n");
        let config = Config::parse(&text).unwrap();
        let plan = config.plan().unwrap();
        assert_ne!(plan.models.get("minilm"), defaults.get("minilm"));
        assert_eq!(
            config.model_origins()["minilm"],
            ModelOrigin::FileOverDefault
        );
        // A worker's file replaces the run's entries by name: its own entries only.
        let own = config.file_models().unwrap();
        assert_eq!(own.keys().collect::<Vec<_>>(), ["judge", "minilm"]);
    }

    #[test]
    fn defaults_false_keeps_the_file_s_entries_alone() {
        let text = format!("[models]\ndefaults = false\n\n{JUDGE}");
        let config = Config::parse(&text).unwrap();
        let plan = config.plan().unwrap();
        assert_eq!(plan.models.keys().collect::<Vec<_>>(), ["judge"]);
        assert_eq!(config.model_origins().len(), 1);
        // The key is a boolean, and a bad entry still names its key.
        assert!(Config::parse("[models]\ndefaults = \"no\"\n").is_err());
        let err = Config::parse("[models.x]\nbackend = \"onnx\"\nthredas = 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("thredas"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = Config::parse("[sampling]\nfsp = 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("fsp"), "{err}");
        let err = Config::parse("[samplin]\n").unwrap_err().to_string();
        assert!(err.contains("samplin"), "{err}");
    }

    #[test]
    fn defaults_follow_the_method() {
        let plan = Config::parse("").unwrap().plan().unwrap();
        assert_eq!(plan.sampling.rate, Rate::PerSecond(2.0));
        assert_eq!(
            (plan.sampling.min_frames, plan.sampling.max_frames),
            (4, 32)
        );
        assert_eq!(plan.frame_format, ImageFormat::Jpeg(90));
    }

    #[test]
    fn invalid_values_name_their_key() {
        for (text, key) in [
            ("[sampling]\nfps = 0.0", "sampling.fps"),
            ("[sampling]\nfps = 2.0\ncount = 3", "sampling.count"),
            (
                "[sampling]\nmin_frames = 8\nmax_frames = 4",
                "sampling.max_frames",
            ),
            ("[sampling]\nsize = \"0x5\"", "sampling.size"),
            ("[sampling]\njpeg_quality = 0", "sampling.jpeg_quality"),
        ] {
            let err = Config::parse(text).unwrap().plan().unwrap_err();
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn model_entries_parse_by_backend_and_roles_are_checked() {
        let config = Config::parse(
            "[models.vlm]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:8000/v1\"\nmodel = \"qwen\"\n\
             [models.llm]\nbackend = \"gguf\"\npath = \"m.gguf\"\n",
        )
        .unwrap();
        let plan = config.plan().unwrap();
        assert_eq!(
            plan.model_for("vlm", Role::ImageCaptioner)
                .unwrap()
                .backend(),
            "openai"
        );
        let err = plan
            .model_for("llm", Role::ImageCaptioner)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`llm`") && err.contains("gguf") && err.contains("image captioner"),
            "{err}"
        );
        assert!(
            plan.model_for("nope", Role::Chat)
                .unwrap_err()
                .to_string()
                .contains("`nope`")
        );
    }

    #[test]
    fn model_entries_refuse_unknown_keys_and_backends() {
        let err = Config::parse("[models.x]\nbackend = \"gguf\"\nthreds = 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("threds"), "{err}");
        let err = Config::parse("[models.x]\nbackend = \"tensorrt\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tensorrt"), "{err}");
        let bad = Config::parse(
            "[models.x]\nbackend = \"openai\"\nbase_url = \"ftp://x\"\nmodel = \"m\"\n",
        )
        .unwrap();
        assert!(
            bad.plan()
                .unwrap_err()
                .to_string()
                .contains("models.x.base_url")
        );
    }

    /// Command-line choices go in before the plan is checked: a judge or a captioner
    /// named by a flag is checked (and may live only in the file), and the default it
    /// replaces is not.
    #[test]
    fn choices_are_applied_before_the_plan_is_checked() {
        let closed = Config::parse(&format!("[models]\ndefaults = false\n\n{JUDGE}")).unwrap();
        // A catalogue without `[wolf]` is a plan; a command that runs the method needs
        // the default section's models, which it lacks.
        closed.plan().unwrap();
        let method = Choices {
            wolf: true,
            ..Choices::default()
        };
        let err = closed.plan_with(&method).unwrap_err().to_string();
        assert!(err.contains("frame-captioner"), "{err}");

        let judge = |name: &str| Choices {
            judge: Some(name.to_owned()),
            ..Choices::default()
        };
        let plan = closed.plan_with(&judge("judge")).unwrap();
        assert_eq!(plan.score.judge.as_deref(), Some("judge"));
        let err = closed.plan_with(&judge("nobody")).unwrap_err().to_string();
        assert!(err.contains("no model `nobody`"), "{err}");

        let recaption = |captioner: Option<&str>| Choices {
            captioner: captioner.map(str::to_owned),
            recaption: true,
            ..Choices::default()
        };
        let err = closed.plan_with(&recaption(None)).unwrap_err().to_string();
        assert!(err.contains("frame-captioner"), "{err}");
        // An `openai` entry may caption images (a VLM server).
        let plan = closed.plan_with(&recaption(Some("judge"))).unwrap();
        assert_eq!(plan.recaption.captioner, "judge");
        let err = closed
            .plan_with(&recaption(Some("nobody")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no model `nobody`"), "{err}");
        // A worker's own entries are the whole list.
        let own = closed.file_models().unwrap();
        let plan = Config::default()
            .plan_with(&Choices {
                models: Some(own),
                ..Choices::default()
            })
            .unwrap();
        assert_eq!(plan.models.keys().collect::<Vec<_>>(), ["judge"]);
    }

    /// `[leaderboard]`: a share out of range is refused, and `--min-coverage` replaces
    /// the file's before the check.
    #[test]
    fn the_leaderboard_section_is_checked_after_the_command_line() {
        let file =
            Config::parse("[leaderboard]\nprimary = \"embed_sim\"\nmin_coverage = 0.5\n").unwrap();
        let plan = file.plan().unwrap();
        assert_eq!(plan.leaderboard.primary.as_deref(), Some("embed_sim"));
        assert_eq!(plan.leaderboard.min_coverage, 0.5);
        let chosen = |share: f64| Choices {
            min_coverage: Some(share),
            ..Choices::default()
        };
        assert_eq!(
            file.plan_with(&chosen(0.9))
                .unwrap()
                .leaderboard
                .min_coverage,
            0.9
        );
        let err = file.plan_with(&chosen(1.5)).unwrap_err().to_string();
        assert!(
            err.contains("leaderboard.min_coverage") && err.contains("1.5"),
            "{err}"
        );
        let err = Config::parse("[leaderboard]\nprimary = \" \"\n")
            .unwrap()
            .plan()
            .unwrap_err();
        assert!(err.to_string().contains("leaderboard.primary"), "{err}");
        assert_eq!(
            Config::default().plan().unwrap().leaderboard.min_coverage,
            1.0
        );
    }

    #[test]
    fn without_models_the_defaults_apply() {
        let plan = Config::parse("").unwrap().plan().unwrap();
        assert_eq!(
            plan.model_for("smollm2", Role::Chat).unwrap().backend(),
            "gguf"
        );
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("384").unwrap(), (384, 384));
        assert_eq!(parse_size("640x360").unwrap(), (640, 360));
        assert!(parse_size("640x").is_err());
        assert!(parse_size("-1").is_err());
    }
}
