//! The plan of a config as `wolf config check` shows it: the sampling, each model entry
//! with where it comes from and the keys that use it, and, with a `[wolf]` section, the
//! sources, the stages with their models and what each stage's content key is made of
//! (the very inputs `keys` hashes, the video's own described).

use serde::Serialize;

use super::keys::{KeyMaker, StageInputs};
use super::{KeyInput, WolfConfig, model_identity};
use crate::config::{Config, Plan, RecaptionConfig, ScoreConfig};
use crate::media::{ImageFormat, SampleSettings};

/// A validated config, described.
#[derive(Debug, Clone, Serialize)]
pub struct PlanSummary {
    pub sampling: SampleSettings,
    pub frame_format: ImageFormat,
    pub models: Vec<ModelSummary>,
    /// Absent for a file without `[wolf]` (a catalogue of models).
    pub wolf: Option<WolfSummary>,
    pub score: ScoreConfig,
    pub recaption: RecaptionConfig,
}

/// One model entry of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub name: String,
    pub backend: &'static str,
    /// `default`, `config file` or `config file (replaces the default)`.
    pub origin: &'static str,
    /// What decides its output, as content keys hold it.
    pub identity: String,
    /// The `[wolf]` keys that name it (`[wolf] llm = "smollm2"`).
    pub uses: Vec<String>,
}

/// The method's part of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct WolfSummary {
    /// Each video's captions, by source name.
    pub sources: Vec<String>,
    /// Each stage, with its model entry and the inputs of its content key.
    pub stages: Vec<StageSummary>,
    pub config: WolfConfig,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub stage: String,
    pub model: Option<String>,
    pub inputs: Vec<KeyInput>,
}

/// Describes `plan`, made from `config` (whose `[wolf]`, when it has one, is valid).
pub fn summarize(config: &Config, plan: &Plan) -> PlanSummary {
    let origins = config.model_origins();
    let uses = match config.wolf {
        Some(_) => plan.wolf.model_uses(plan),
        None => Vec::new(),
    };
    let models = plan
        .models
        .iter()
        .map(|(name, entry)| ModelSummary {
            name: name.clone(),
            backend: entry.backend(),
            origin: origins.get(name).map_or("default", |o| o.as_str()),
            identity: model_identity(entry),
            uses: uses
                .iter()
                .filter(|u| &u.name == name)
                .map(|u| u.key.clone())
                .collect(),
        })
        .collect();
    let wolf = config.wolf.as_ref().map(|_| {
        let w = &plan.wolf;
        let stages = KeyMaker::new(plan)
            .inputs(None)
            .into_iter()
            .map(|StageInputs { stage, inputs }| StageSummary {
                model: w.stage_model(&stage).map(str::to_owned),
                stage,
                inputs,
            })
            .collect();
        WolfSummary {
            sources: w.sources(),
            stages,
            config: w.clone(),
        }
    });
    PlanSummary {
        sampling: plan.sampling,
        frame_format: plan.frame_format,
        models,
        wolf,
        score: plan.score.clone(),
        recaption: plan.recaption.clone(),
    }
}
