//! `wolf config check FILE`: validate a config without running anything, and print the
//! plan it makes ([`wolf_pipeline::wolf::summary`]) as text or JSON.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use wolf_pipeline::config::Config;
use wolf_pipeline::media::{ImageFormat, Rate, Resize, SampleSettings};
use wolf_pipeline::wolf::summary::{PlanSummary, summarize};

use super::Outcome;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Parse and validate a config file (its `[wolf]` section against its models, when
    /// it has one); print the plan it makes: sampling, models and where each comes
    /// from, sources, stages and what each stage's content key is made of.
    Check {
        /// The TOML file.
        file: PathBuf,
        /// `text` for people, `json` for programs.
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CheckFormat {
    Text,
    Json,
}

pub(crate) fn run(command: ConfigCommand) -> anyhow::Result<Outcome> {
    let ConfigCommand::Check { file, format } = command;
    let config = Config::load(&file)?;
    // `[wolf]` names models by role, checked when the file has it; a file without it
    // is a model catalogue.
    let plan = config.plan()?;
    let summary = summarize(&config, &plan);
    match format {
        CheckFormat::Json => outln!("{}", serde_json::to_string_pretty(&summary)?),
        CheckFormat::Text => {
            outln!("{} is valid.", file.display());
            print_text(&summary);
        }
    }
    Ok(Outcome::Done)
}

fn print_text(summary: &PlanSummary) {
    outln!();
    outln!(
        "Sampling: {}",
        sampling(&summary.sampling, summary.frame_format)
    );
    outln!();
    outln!("Models (where each entry comes from):");
    for model in &summary.models {
        outln!("  {:<24} {:<6} {}", model.name, model.backend, model.origin);
        for key in &model.uses {
            outln!("  {:<24} used by {key}", "");
        }
    }
    let Some(wolf) = &summary.wolf else {
        outln!();
        outln!("No `[wolf]` section: a catalogue of models.");
        return;
    };
    outln!();
    outln!(
        "Sources (each video's captions): {}",
        wolf.sources.join(", ")
    );
    outln!();
    outln!(
        "Stages, with what each one's content key is made of (a changed input redoes the \
         stage and those that read it):"
    );
    for stage in &wolf.stages {
        match &stage.model {
            Some(model) => outln!("  {} (model `{model}`)", stage.stage),
            None => outln!("  {}", stage.stage),
        }
        for input in stage.inputs.iter().filter(|i| i.name != "stage") {
            let value = if input.value.is_empty() {
                "(none)"
            } else {
                &input.value
            };
            outln!("      {:<12} {value}", input.name);
        }
    }
    let score = &summary.score;
    outln!();
    outln!(
        "Scoring: embedder `{}`, {}",
        score.embedder,
        match &score.judge {
            Some(judge) => format!(
                "CapScore judge `{judge}` ({}, {} samples)",
                score.mode, score.samples
            ),
            None => "no CapScore judge".to_owned(),
        }
    );
}

/// The sampling settings in words.
fn sampling(s: &SampleSettings, format: ImageFormat) -> String {
    let rate = match s.rate {
        Rate::Count(n) => format!("{n} frames a clip"),
        Rate::PerSecond(fps) => format!(
            "{fps} frames a second, at least {} and at most {} a clip",
            s.min_frames, s.max_frames
        ),
    };
    let size = match s.resize {
        Resize::Native => "the clip's own size".to_owned(),
        Resize::Pad { width, height } => format!("{width}x{height}, padded"),
        Resize::Stretch { width, height } => format!("{width}x{height}, stretched"),
        Resize::Fit(side) => format!("the longer side {side}"),
    };
    let format = match format {
        ImageFormat::Jpeg(quality) => format!("JPEG quality {quality}"),
        ImageFormat::Png => "PNG".to_owned(),
    };
    format!("{rate}; {size}; {format}")
}
