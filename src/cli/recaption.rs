//! `wolf recaption round|loop|stats`: VILA²'s recaption loop (METHOD.md section 3) on
//! `wolf_datasets::recaption`, with the held-out evaluation through the store and
//! `wolf score`'s embedding similarity.
//!
//! A loop's folder holds `round-N/` per round and `loop.json` (each round's captioner,
//! statistics, held-out score and gain, and why the loop stopped), rewritten atomically
//! after each round; a loop run again continues after its last finished round.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use wolf_datasets::recaption::input::MediaKind;
use wolf_datasets::recaption::merge::{MergeConfig, Template};
use wolf_datasets::recaption::output::write_json_atomic;
use wolf_datasets::recaption::prompts::{Specialist, recaption_prompt};
use wolf_datasets::recaption::round::{RoundPlan, RoundReport, run_round, stats_path};
use wolf_datasets::recaption::stats::{RoundStats, rounds_table};
use wolf_pipeline::config::{Config, Plan, RecaptionConfig};
use wolf_pipeline::media::{self, Rate, SampleSettings};
use wolf_pipeline::models::{ImageRequest, ModelSet, Role};
use wolf_pipeline::store::{RoundRow, Store};
use wolf_scorer::report::report_lines;

use super::import::{Import, import};
use super::{Context, Outcome, score};

#[derive(Debug, Subcommand)]
pub(crate) enum RecaptionCommand {
    /// Recaption every item of an input once (resumable) into DIR/round-N.
    Round(RoundArgs),
    /// Rounds until the held-out score stops improving or `--rounds` ran.
    Loop(LoopArgs),
    /// Print the statistics of a folder's rounds.
    Stats(StatsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct InputArgs {
    /// WebDataset shards (a `.tar` or a folder of them), a JSONL manifest or a folder of
    /// images and videos.
    #[arg(long)]
    input: PathBuf,
    /// The loop's folder: `round-N/` per round.
    #[arg(long)]
    out: PathBuf,
    /// The config with `[recaption]` and the models (default: the embedded defaults).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct RoundArgs {
    #[command(flatten)]
    input: InputArgs,
    /// The captioner entry (default: `[recaption] captioner`).
    #[arg(long)]
    captioner: Option<String>,
    /// The round's number: its folder is `OUT/round-N`.
    #[arg(long, default_value_t = 1)]
    round: u32,
}

#[derive(Debug, Args)]
pub(crate) struct LoopArgs {
    #[command(flatten)]
    input: InputArgs,
    /// The most rounds (default: `[recaption] rounds`).
    #[arg(long)]
    rounds: Option<u32>,
}

#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// The loop's folder.
    #[arg(long)]
    out: PathBuf,
}

pub(crate) async fn run(command: RecaptionCommand, context: &Context) -> anyhow::Result<Outcome> {
    match command {
        RecaptionCommand::Round(args) => {
            let setup = Setup::load(&args.input)?;
            let captioner = args
                .captioner
                .clone()
                .unwrap_or_else(|| setup.config.captioner.clone());
            let report = setup.round(&args.input, args.round, &captioner).await?;
            println!("{}", report.stats.table());
            Ok(round_outcome(&report))
        }
        RecaptionCommand::Loop(args) => run_loop(args, context).await,
        RecaptionCommand::Stats(args) => {
            let rounds = finished_rounds(&args.out)?;
            if rounds.is_empty() {
                bail!("`{}` holds no finished round", args.out.display());
            }
            print!("{}", rounds_table(&rounds));
            if let Ok(state) = LoopState::read(&args.out) {
                for r in &state.rounds {
                    println!(
                        "round {}: captioner `{}`, held-out score {}",
                        r.round,
                        r.captioner,
                        r.heldout_score.map_or("-".into(), |s| format!("{s:.4}"))
                    );
                }
                if let Some(reason) = &state.stopped {
                    println!("stopped: {reason}");
                }
            }
            Ok(Outcome::Done)
        }
    }
}

fn round_outcome(report: &RoundReport) -> Outcome {
    if report.interrupted || report.stats.failed > 0 {
        Outcome::SomeFailed
    } else {
        Outcome::Done
    }
}

/// The validated config of a recaption command.
struct Setup {
    plan: Plan,
    config: RecaptionConfig,
    merge: MergeConfig,
    models: ModelSet,
}

impl Setup {
    fn load(args: &InputArgs) -> anyhow::Result<Self> {
        let config = match &args.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let plan = config.plan()?;
        let recaption = plan.recaption.clone();
        let template: Template =
            serde_json::from_value(serde_json::Value::String(recaption.template.clone()))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "`recaption.template`: `{}` is not one of short_long, recaption_only, original_only",
                        recaption.template
                    )
                })?;
        let specialists = recaption
            .specialists
            .iter()
            .map(|s| {
                serde_json::from_value::<Specialist>(serde_json::Value::String(s.clone())).map_err(
                    |_| {
                        anyhow::anyhow!(
                            "`recaption.specialists`: `{s}` is not one of spatial, grounding, ocr"
                        )
                    },
                )
            })
            .collect::<anyhow::Result<_>>()?;
        plan.model_for(&recaption.captioner, Role::ImageCaptioner)?;
        Ok(Self {
            models: ModelSet::new(plan.models.clone()),
            plan,
            config: recaption,
            merge: MergeConfig {
                template,
                specialists,
            },
        })
    }

    /// Runs (or resumes) round `n` with `captioner`; Ctrl-C stops it between items.
    async fn round(
        &self,
        args: &InputArgs,
        n: u32,
        captioner: &str,
    ) -> anyhow::Result<RoundReport> {
        self.plan.model_for(captioner, Role::ImageCaptioner)?;
        let stop = Arc::new(AtomicBool::new(false));
        let on_signal = stop.clone();
        let watcher = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_signal.store(true, Ordering::Relaxed);
            }
        });
        let plan = RoundPlan {
            input: args.input.clone(),
            dir: round_dir(&args.out, n),
            captioner: self.models.image_captioner(captioner)?,
            merge: self.merge.clone(),
            seed: self.config.seed,
            concurrency: self.config.concurrency,
            sampling: Default::default(),
        };
        let report = run_round(&plan, stop).await;
        watcher.abort();
        let report = report.with_context(|| format!("round {n} of `{}`", args.input.display()))?;
        tracing::info!(
            round = n,
            resumed = report.resumed,
            recorded = report.recorded,
            failed = report.stats.failed,
            "Finished a recaption round."
        );
        if report.interrupted {
            eprintln!("Stopped: run the same command again to finish the round.");
        }
        Ok(report)
    }
}

fn round_dir(out: &Path, n: u32) -> PathBuf {
    out.join(format!("round-{n}"))
}

/// The rounds of a folder whose statistics were written (finished rounds).
fn finished_rounds(out: &Path) -> anyhow::Result<Vec<(u32, RoundStats)>> {
    let mut rounds = Vec::new();
    for n in 1.. {
        let path = stats_path(&round_dir(out, n));
        if !path.exists() {
            break;
        }
        let stats: RoundStats = serde_json::from_slice(&std::fs::read(&path)?)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        rounds.push((n, stats));
    }
    Ok(rounds)
}

/// One finished round of a loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoopRound {
    round: u32,
    captioner: String,
    heldout_score: Option<f64>,
    gain: Option<f64>,
    stats: RoundStats,
}

/// `loop.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LoopState {
    rounds: Vec<LoopRound>,
    stopped: Option<String>,
}

impl LoopState {
    fn path(out: &Path) -> PathBuf {
        out.join("loop.json")
    }

    fn read(out: &Path) -> anyhow::Result<Self> {
        let path = Self::path(out);
        serde_json::from_slice(&std::fs::read(&path)?)
            .with_context(|| format!("cannot read `{}`", path.display()))
    }

    fn write(&self, out: &Path) -> anyhow::Result<()> {
        Ok(write_json_atomic(&Self::path(out), self)?)
    }
}

async fn run_loop(args: LoopArgs, context: &Context) -> anyhow::Result<Outcome> {
    let setup = Setup::load(&args.input)?;
    let rounds = args.rounds.unwrap_or(setup.config.rounds).max(1);
    let out = &args.input.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create `{}`", out.display()))?;
    let mut state = if LoopState::path(out).exists() {
        LoopState::read(out)?
    } else {
        LoopState::default()
    };
    if let Some(reason) = &state.stopped {
        println!(
            "The loop in `{}` has stopped already: {reason}",
            out.display()
        );
        return Ok(Outcome::Done);
    }
    let store = match &setup.config.heldout {
        Some(_) => Some(context.store().await?),
        None => None,
    };
    let name = loop_name(out);
    let mut captioner = state
        .rounds
        .last()
        .map_or_else(|| setup.config.captioner.clone(), |r| r.captioner.clone());
    let mut outcome = Outcome::Done;
    let first = state.rounds.len() as u32 + 1;
    for n in first..=rounds {
        if n > 1 && !state.rounds.is_empty() {
            captioner = next_captioner(&setup, &round_dir(out, n - 1), &captioner).await?;
        }
        let report = setup.round(&args.input, n, &captioner).await?;
        if report.interrupted {
            return Ok(Outcome::SomeFailed);
        }
        if round_outcome(&report) == Outcome::SomeFailed {
            outcome = Outcome::SomeFailed;
        }
        let heldout_score = match (&setup.config.heldout, &store) {
            (Some(dataset), Some(store)) => Some(
                heldout(
                    &setup,
                    store,
                    dataset,
                    &captioner,
                    &format!("{name}-round-{n}"),
                )
                .await?,
            ),
            _ => None,
        };
        let previous = state.rounds.last().and_then(|r| r.heldout_score);
        let gain = match (heldout_score, previous) {
            (Some(now), Some(before)) => Some(now - before),
            _ => None,
        };
        println!(
            "round {n}: captioner `{captioner}`, {} captions ({} failed), mean {:.1} words, held-out embed_sim {}{}",
            report.stats.captions,
            report.stats.failed,
            report.stats.words.as_ref().map_or(0.0, |w| w.mean),
            heldout_score.map_or("-".into(), |s| format!("{s:.4}")),
            gain.map_or(String::new(), |g| format!(" (gain {g:+.4})")),
        );
        state.rounds.push(LoopRound {
            round: n,
            captioner: captioner.clone(),
            heldout_score,
            gain,
            stats: report.stats.clone(),
        });
        if let Some(g) = gain.filter(|g| *g < setup.config.min_gain) {
            state.stopped = Some(format!(
                "saturated: gain {g:.4} < min_gain {:.4} after round {n}",
                setup.config.min_gain
            ));
        } else if n == rounds {
            state.stopped = Some(format!("rounds: {rounds} rounds ran"));
        }
        state.write(out)?;
        if let Some(store) = &store {
            store
                .put_round(&RoundRow {
                    loop_name: name.clone(),
                    round: i64::from(n),
                    captioner: captioner.clone(),
                    captions: report.stats.captions as i64,
                    mean_words: report.stats.words.as_ref().map(|w| w.mean),
                    heldout_dataset: setup.config.heldout.clone(),
                    heldout_score,
                    stats: serde_json::to_string(&report.stats)?,
                })
                .await?;
        }
        if state.stopped.is_some() {
            break;
        }
    }
    if let Some(reason) = &state.stopped {
        println!("Stopped: {reason}");
    }
    Ok(outcome)
}

/// The loop's name (its folder's), for held-out entries and the leaderboard.
fn loop_name(out: &Path) -> String {
    std::fs::canonicalize(out)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "recaption".into())
}

/// The captioner of the next round: `train_cmd`'s answer, or the same one.
async fn next_captioner(setup: &Setup, round: &Path, current: &str) -> anyhow::Result<String> {
    let Some(command) = &setup.config.train_cmd else {
        return Ok(current.to_owned());
    };
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .arg("train")
        .arg(round)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("cannot run `train_cmd` `{command}`"))?;
    if !output.status.success() {
        bail!("`train_cmd` `{command}` failed ({})", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(name) = stdout.lines().rev().map(str::trim).find(|l| !l.is_empty()) else {
        bail!("`train_cmd` `{command}` printed no model entry");
    };
    setup
        .plan
        .model_for(name, Role::ImageCaptioner)
        .with_context(|| format!("the model entry `train_cmd` named: `{name}`"))?;
    Ok(name.to_owned())
}

/// The captioner's mean `embed_sim` on the held-out dataset: each video's middle frame
/// captioned (with the first recaption prompt), stored as the entry `entry` and scored.
async fn heldout(
    setup: &Setup,
    store: &Store,
    dataset: &str,
    captioner: &str,
    entry: &str,
) -> anyhow::Result<f64> {
    let videos: Vec<_> = store
        .videos(store.dataset(dataset).await?.id)
        .await?
        .into_iter()
        .filter(|v| v.reference.as_deref().is_some_and(|r| !r.trim().is_empty()))
        .filter(|v| v.status == wolf_pipeline::store::VideoStatus::Ok)
        .collect();
    if videos.is_empty() {
        bail!("the held-out dataset `{dataset}` has no readable video with a reference");
    }
    let model = setup.models.image_captioner(captioner)?;
    let prompt = recaption_prompt(setup.config.seed, dataset, "heldout", MediaKind::Image);
    let mut captions = serde_json::Map::new();
    for video in &videos {
        let path = PathBuf::from(&video.path);
        let frame = tokio::task::spawn_blocking(move || {
            media::init();
            let settings = SampleSettings {
                rate: Rate::Count(1),
                ..SampleSettings::default()
            };
            media::sample_frames(&path, &settings, 1)
        })
        .await??;
        let image = frame
            .frames
            .into_iter()
            .next()
            .context("no frame sampled")?
            .image;
        let reply = model
            .caption_images(&ImageRequest {
                images: vec![image],
                prompt: prompt.text.to_owned(),
                ..ImageRequest::default()
            })
            .await?;
        captions.insert(video.key.clone(), serde_json::Value::String(reply.text));
    }
    let bytes = serde_json::to_vec(&captions)?;
    let origin = format!("recaption held-out evaluation of `{captioner}`");
    let imported = import(
        store,
        &Import {
            dataset,
            name: entry,
            source: None,
            origin: &origin,
            replace: true,
        },
        &bytes,
    )
    .await?;
    let items = store.scoring_items(imported.run_id).await?;
    let embedder = setup.plan.score.embedder.as_str();
    setup.plan.model_for(embedder, Role::Embedder)?;
    score::embed_sim(store, &setup.models, embedder, &items).await?;
    report_lines(&store.scores(Some(dataset)).await?)
        .into_iter()
        .find(|l| l.run == entry && l.metric == "embed_sim")
        .and_then(|l| l.mean)
        .context("the held-out captions got no embed_sim score")
}
