//! `wolf model list|check`: the model entries of a config, and one request to one.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Subcommand;
use wolf_pipeline::config::{Config, Plan};
use wolf_pipeline::models::check::{Probe, probe};
use wolf_pipeline::models::{ModelConfig, ModelSet, Role};

use super::Outcome;

#[derive(Debug, Subcommand)]
pub(crate) enum ModelCommand {
    /// List the model entries of a config (the defaults without `--config`).
    List {
        /// A config whose `[models]` entries add to the defaults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Load one entry, make one request and print what it said, its latency and token
    /// counts. Exits non-zero, naming the error's kind, when the request fails.
    Check {
        /// The entry's name (`[models.NAME]`).
        name: String,
        /// A config whose `[models]` entries add to the defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Ask the entry as an image captioner about this image.
        #[arg(long, conflicts_with_all = ["text", "video"])]
        image: Option<PathBuf>,
        /// Ask the entry as a video model about this clip, with the frames (sampled by
        /// the config's `[sampling]`) and the payload the pipeline's video stage sends.
        #[arg(long, conflicts_with = "text")]
        video: Option<PathBuf>,
        /// Ask the entry as an embedder for the vectors of these texts (repeat the
        /// flag for several; their cosine similarities are printed).
        #[arg(long)]
        text: Vec<String>,
        /// The prompt (default: a short greeting; with --image the pipeline's own
        /// per-frame prompt, which a captioner that reads its prompt was trained on;
        /// with --video the pipeline's video prompt).
        #[arg(long)]
        prompt: Option<String>,
        /// The most tokens to generate.
        #[arg(long, default_value_t = 64)]
        max_tokens: u32,
    },
}

pub(crate) async fn run(command: ModelCommand) -> anyhow::Result<Outcome> {
    match command {
        ModelCommand::List { config } => list(&plan(config.as_deref())?),
        ModelCommand::Check {
            name,
            config,
            image,
            video,
            text,
            prompt,
            max_tokens,
        } => {
            let plan = plan(config.as_deref())?;
            let input = match (image, video) {
                (Some(image), _) => Probe::Image(image_rgb(&image)?),
                (None, Some(video)) => Probe::Video(video),
                (None, None) => Probe::Text,
            };
            if text.is_empty() {
                check(&plan, &name, input, prompt, max_tokens).await
            } else {
                check_embedder(&plan, &name, &text).await
            }
        }
    }
}

fn plan(config: Option<&std::path::Path>) -> anyhow::Result<Plan> {
    let config = Config::load_or_default(config)?;
    Ok(config.plan()?)
}

fn list(plan: &Plan) -> anyhow::Result<Outcome> {
    outln!("{:<20} {:<8} {:<52} where", "name", "backend", "roles");
    for (name, entry) in &plan.models {
        let roles: Vec<&str> = entry.served_roles().iter().map(|r| r.as_str()).collect();
        let place = match entry {
            ModelConfig::Openai(c) => format!("{} at {}", c.model, c.base_url),
            ModelConfig::Gguf(c) => c.resolved_path().map_or_else(
                || "the default model pack (not installed)".into(),
                |p| p.display().to_string(),
            ),
            ModelConfig::Onnx(c) => c.resolved_path().map_or_else(
                || "the default model pack (not installed)".into(),
                |p| p.display().to_string(),
            ),
        };
        outln!(
            "{name:<20} {:<8} {:<52} {place}",
            entry.backend(),
            roles.join(", ")
        );
    }
    Ok(Outcome::Done)
}

async fn check(
    plan: &Plan,
    name: &str,
    input: Probe,
    prompt: Option<String>,
    max_tokens: u32,
) -> anyhow::Result<Outcome> {
    let video = match &input {
        Probe::Video(path) => Some(path.display().to_string()),
        _ => None,
    };
    let probed = probe(plan, name, input, prompt, max_tokens).await?;
    if let Some(path) = video {
        let times: Vec<String> = probed
            .frame_times
            .iter()
            .map(|t| format!("{t:.2} s"))
            .collect();
        outln!(
            "{} frames of `{path}`, at {}",
            times.len(),
            times.join(", ")
        );
    }
    let reply = probed.reply;
    outln!("{}", reply.text.trim());
    let usage = reply.usage.map_or_else(
        || "not reported".into(),
        |u| {
            format!(
                "{} prompt + {} generated",
                u.prompt_tokens, u.completion_tokens
            )
        },
    );
    outln!(
        "-- `{name}`: {:.0} ms for the request ({:.0} ms with loading), {} attempt(s), tokens: {usage}",
        reply.latency.as_secs_f64() * 1000.0,
        probed.elapsed.as_secs_f64() * 1000.0,
        reply.attempts,
    );
    Ok(Outcome::Done)
}

/// Embeds `texts` with entry `name` and prints each vector's size and norm and the
/// cosine similarity of every pair.
async fn check_embedder(plan: &Plan, name: &str, texts: &[String]) -> anyhow::Result<Outcome> {
    plan.model_for(name, Role::Embedder)?;
    let models = ModelSet::new(plan.models.clone());
    let embedder = models.embedder(name)?;
    let started = Instant::now();
    let vectors = embedder.embed(texts).await?;
    let elapsed = started.elapsed();
    for (text, v) in texts.iter().zip(&vectors) {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        outln!("{} values, norm {norm:.4}: {text}", v.len());
    }
    for i in 0..vectors.len() {
        for j in i + 1..vectors.len() {
            let cosine = wolf_scorer::similarity::cosine(&vectors[i], &vectors[j]);
            outln!("cosine {cosine:.4}: #{} and #{}", i + 1, j + 1);
        }
    }
    outln!(
        "-- `{name}`: {:.0} ms for {} text(s)",
        elapsed.as_secs_f64() * 1000.0,
        texts.len()
    );
    Ok(Outcome::Done)
}

fn image_rgb(path: &std::path::Path) -> anyhow::Result<wolf_pipeline::media::RgbImage> {
    Ok(image::open(path)
        .with_context(|| format!("cannot read image `{}`", path.display()))?
        .to_rgb8())
}
