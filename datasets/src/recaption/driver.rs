//! The recaption loop's driver (METHOD.md section 3): a round with a config's models,
//! the loop of rounds with `train_cmd` between them, the held-out evaluation through the
//! store (an imported entry scored with `embed_sim`), and the loop's state file.
//!
//! A loop's folder holds `round-N/` per round and `loop.json` (each round's captioner,
//! statistics, held-out score and gain, and why the loop stopped), rewritten atomically
//! after each round; a loop run again continues after its last finished round.
//!
//! Threads: rounds run on the caller's async runtime ([`super::round`]); frame sampling
//! for the held-out check runs on a blocking thread; `train_cmd` is a child process,
//! killed if the loop is dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};
use wolf_pipeline::config::{Choices, Config, ConfigError, Plan, RecaptionConfig};
use wolf_pipeline::media::{self, MediaError, Rate, SampleSettings};
use wolf_pipeline::models::{ImageRequest, ModelError, ModelSet, ModelUse, PreflightError, Role};
use wolf_pipeline::progress::Progress;
use wolf_pipeline::store::{RoundRow, Store, StoreError, VideoStatus};
use wolf_scorer::report::report_lines;
use wolf_scorer::run::{Metric, ScoreError, ScoreSettings, score_items_with};

use super::input::MediaKind;
use super::merge::{MergeConfig, Template};
use super::output::{OutputError, write_json_atomic};
use super::prompts::{Specialist, recaption_prompt};
use super::round::{RoundError, RoundPlan, RoundReport, run_round, stats_path};
use super::stats::RoundStats;
use crate::import::{Import, ImportError, import};

/// A recaption command that could not go on.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("`recaption.{key}`: {message}")]
    Setting { key: &'static str, message: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("round {round} of `{input}`: {source}")]
    Round {
        round: u32,
        input: PathBuf,
        #[source]
        source: RoundError,
    },
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("cannot read `{path}`: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot create `{path}`: {source}")]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`train_cmd` `{command}`: {message}")]
    TrainCmd { command: String, message: String },
    #[error("the model entry `train_cmd` named: {0}")]
    TrainedEntry(#[source] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Score(#[from] ScoreError),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("the held-out check: {0}")]
    Heldout(String),
    #[error("`{0}` holds no finished round")]
    NoRounds(PathBuf),
}

impl DriverError {
    /// A stable label of the error's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config(_) | Self::Setting { .. } | Self::TrainedEntry(_) => "config",
            Self::Model(e) => e.kind.as_str(),
            Self::Round { source, .. } => source.kind(),
            Self::Output(e) => e.kind(),
            Self::Read { .. } => "read",
            Self::Folder { .. } => "output_write_failed",
            Self::TrainCmd { .. } => "train_cmd",
            Self::Store(e) => e.kind(),
            Self::Import(e) => e.kind(),
            Self::Score(e) => e.kind(),
            Self::Media(e) => e.kind(),
            Self::Heldout(_) => "heldout",
            Self::NoRounds(_) => "no_rounds",
        }
    }
}

/// Where a recaption command reads and writes, and its config file.
#[derive(Debug, Clone)]
pub struct LoopPaths {
    /// WebDataset shards, a JSONL manifest or a folder of images and videos.
    pub input: PathBuf,
    /// The loop's folder: `round-N/` per round.
    pub out: PathBuf,
    /// The config with `[recaption]` and the models (None: the embedded defaults).
    pub config: Option<PathBuf>,
}

/// The validated config of a recaption command.
pub struct Setup {
    pub plan: Plan,
    pub config: RecaptionConfig,
    merge: MergeConfig,
    models: ModelSet,
    /// Where the captioner was named: `--captioner` or `[recaption] captioner`.
    captioner_by: &'static str,
    /// Items recorded by the round running now, for the binary's bar.
    pub progress: Arc<Progress>,
    /// The names of the config's own entries (and the defaults'), which a trainer's
    /// `model.toml` may not replace.
    config_entries: std::collections::BTreeSet<String>,
}

impl Setup {
    /// Reads `paths.config`, puts `captioner` (a command-line choice) in place of its
    /// `[recaption] captioner`, then checks it.
    pub fn load(paths: &LoopPaths, captioner: Option<&str>) -> Result<Self, DriverError> {
        let config = match &paths.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let plan = config.plan_with(&Choices {
            captioner: captioner.map(str::to_owned),
            recaption: true,
            ..Choices::default()
        })?;
        let recaption = plan.recaption.clone();
        let template: Template = serde_json::from_value(serde_json::Value::String(
            recaption.template.clone(),
        ))
        .map_err(|_| DriverError::Setting {
            key: "template",
            message: format!(
                "`{}` is not one of short_long, recaption_only, original_only",
                recaption.template
            ),
        })?;
        let specialists = recaption
            .specialists
            .iter()
            .map(|s| {
                serde_json::from_value::<Specialist>(serde_json::Value::String(s.clone())).map_err(
                    |_| DriverError::Setting {
                        key: "specialists",
                        message: format!("`{s}` is not one of spatial, grounding, ocr"),
                    },
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            models: ModelSet::new(plan.models.clone()),
            config_entries: plan.models.keys().cloned().collect(),
            captioner_by: if captioner.is_some() {
                "--captioner"
            } else {
                "[recaption] captioner"
            },
            plan,
            progress: Arc::default(),
            config: recaption,
            merge: MergeConfig {
                template,
                specialists,
            },
        })
    }

    /// Checks the captioner and, when `heldout` (the loop with `[recaption] heldout`),
    /// the embedder of the held-out check, loading in-process models into the set the
    /// rounds use.
    pub async fn preflight(&self, heldout: bool) -> Result<(), PreflightError> {
        let mut uses = vec![ModelUse::named(
            self.captioner_by,
            &self.config.captioner,
            Role::ImageCaptioner,
        )];
        if let Some(specialist) = self.specialist_captioner() {
            uses.push(ModelUse::named(
                "[recaption] specialist_captioner",
                specialist,
                Role::ImageCaptioner,
            ));
        }
        if heldout && self.config.heldout.is_some() {
            let embedder = &self.plan.score.embedder;
            uses.push(ModelUse::named(
                "[score] embedder",
                embedder,
                Role::Embedder,
            ));
        }
        self.models.preflight(&uses).await
    }

    /// The entry named to answer the specialists, when there are specialists (None:
    /// the round's captioner answers them).
    fn specialist_captioner(&self) -> Option<&str> {
        self.config
            .specialist_captioner
            .as_deref()
            .filter(|_| !self.merge.specialists.is_empty())
    }

    /// Adds the model entries of a trainer's `model.toml` ([`TRAINED_ENTRIES`]) in
    /// `folder`, their relative paths taken from that folder; the models already loaded
    /// are loaded again when next used. Returns the names added.
    fn add_trained(&mut self, folder: &Path) -> Result<Vec<String>, DriverError> {
        let file = folder.join(TRAINED_ENTRIES);
        if !file.is_file() {
            return Ok(Vec::new());
        }
        let entries = Config::load(&file)
            .map_err(DriverError::TrainedEntry)?
            .models
            .entries;
        let mut added = Vec::new();
        for (name, entry) in entries {
            // A trained entry never replaces one of the config (the held-out embedder,
            // say); one of an earlier round's may be written again.
            if self.config_entries.contains(&name) {
                return Err(DriverError::TrainedEntry(ConfigError::Value {
                    key: format!("models.{name}"),
                    message: "names an entry of the config; a trainer must choose a new name",
                }));
            }
            let entry = entry.based_at(folder);
            entry.validate(&name).map_err(DriverError::TrainedEntry)?;
            self.plan.models.insert(name.clone(), entry);
            added.push(name);
        }
        self.models = ModelSet::new(self.plan.models.clone());
        Ok(added)
    }

    /// Runs (or resumes) round `n` with `captioner`; setting `stop` stops it between
    /// items.
    pub async fn round(
        &self,
        paths: &LoopPaths,
        n: u32,
        captioner: &str,
        stop: Arc<AtomicBool>,
    ) -> Result<RoundReport, DriverError> {
        self.plan.model_for(captioner, Role::ImageCaptioner)?;
        let plan = RoundPlan {
            input: paths.input.clone(),
            dir: round_dir(&paths.out, n),
            captioner: self.models.image_captioner(captioner)?,
            specialist: match self.specialist_captioner() {
                Some(name) => Some(self.models.image_captioner(name)?),
                None => None,
            },
            merge: self.merge.clone(),
            seed: self.config.seed,
            concurrency: self.config.concurrency,
            sampling: Default::default(),
            progress: self.progress.clone(),
        };
        let report = run_round(&plan, stop)
            .await
            .map_err(|source| DriverError::Round {
                round: n,
                input: paths.input.clone(),
                source,
            })?;
        tracing::info!(
            round = n,
            resumed = report.resumed,
            recorded = report.recorded,
            failed = report.stats.failed,
            "Finished a recaption round."
        );
        Ok(report)
    }
}

/// The file in a round's folder where `train_cmd` may write the model entries it made
/// (`[models.NAME]` tables, paths relative to the folder); the name it prints may be
/// one of them.
pub const TRAINED_ENTRIES: &str = "model.toml";

/// Round `n`'s folder.
pub fn round_dir(out: &Path, n: u32) -> PathBuf {
    out.join(format!("round-{n}"))
}

/// The rounds of a folder whose statistics were written (finished rounds).
pub fn finished_rounds(out: &Path) -> Result<Vec<(u32, RoundStats)>, DriverError> {
    let mut rounds = Vec::new();
    for n in 1.. {
        let path = stats_path(&round_dir(out, n));
        if !path.exists() {
            break;
        }
        let stats: RoundStats = read_json(&path)?;
        rounds.push((n, stats));
    }
    Ok(rounds)
}

/// A JSON file of this module's, read whole.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, DriverError> {
    let read = |message: String| DriverError::Read {
        path: path.to_owned(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| read(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| read(e.to_string()))
}

/// What `wolf recaption stats` prints of the loop folder `out`: its finished rounds side
/// by side, then each round's line and why the loop stopped, when `loop.json` says.
pub fn stats_report(out: &Path) -> Result<String, DriverError> {
    let rounds = finished_rounds(out)?;
    if rounds.is_empty() {
        return Err(DriverError::NoRounds(out.to_owned()));
    }
    let mut text = super::stats::rounds_table(&rounds);
    if let Ok(state) = LoopState::read(out) {
        for round in &state.rounds {
            text.push_str(&format!("{round}\n"));
        }
        if let Some(reason) = &state.stopped {
            text.push_str(&format!("stopped: {reason}\n"));
        }
    }
    Ok(text)
}

/// One finished round of a loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoopRound {
    pub round: u32,
    pub captioner: String,
    /// The held-out score: `truth_f1` where the held-out set has truth, else
    /// `embed_sim` ([`Self::heldout_metric`] says which).
    pub heldout_score: Option<f64>,
    #[serde(default)]
    pub heldout_metric: Option<String>,
    /// The held-out `embed_sim`, beside a `truth_f1` score.
    #[serde(default)]
    pub heldout_embed_sim: Option<f64>,
    pub gain: Option<f64>,
    pub stats: RoundStats,
}

/// The round's line of `wolf recaption loop` and `stats`.
impl std::fmt::Display for LoopRound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stats = &self.stats;
        write!(
            f,
            "round {}: captioner `{}`, {} captions ({} failed), mean {:.1} words, held-out score {}",
            self.round,
            self.captioner,
            stats.captions,
            stats.failed,
            stats.words.as_ref().map_or(0.0, |w| w.mean),
            self.heldout_score.map_or("-".into(), |s| format!("{s:.4}")),
        )?;
        if let (Some(metric), Some(embed_sim)) = (&self.heldout_metric, self.heldout_embed_sim)
            && metric != "embed_sim"
        {
            write!(f, " ({metric}; embed_sim {embed_sim:.4})")?;
        }
        match self.gain {
            Some(gain) => write!(f, " (gain {gain:+.4})"),
            None => Ok(()),
        }
    }
}

/// `loop.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoopState {
    pub rounds: Vec<LoopRound>,
    pub stopped: Option<String>,
}

impl LoopState {
    fn path(out: &Path) -> PathBuf {
        out.join("loop.json")
    }

    /// The state of the loop in folder `out`.
    pub fn read(out: &Path) -> Result<Self, DriverError> {
        read_json(&Self::path(out))
    }

    fn write(&self, out: &Path) -> Result<(), DriverError> {
        Ok(write_json_atomic(&Self::path(out), self)?)
    }
}

/// How a loop went.
#[derive(Debug, Clone, Default)]
pub struct LoopOutcome {
    /// The loop had stopped before this call (why), and nothing ran.
    pub already_stopped: Option<String>,
    /// Some round had failed items.
    pub some_failed: bool,
    /// A stop request interrupted a round.
    pub interrupted: bool,
    /// Why the loop stopped, when it did.
    pub stopped: Option<String>,
}

/// Runs (or continues) the loop in `paths.out` for at most `rounds` rounds (default:
/// `[recaption] rounds`); `on_round` hears of each finished round. The held-out check
/// needs `store` when the config names a held-out dataset.
pub async fn run_loop(
    setup: &mut Setup,
    paths: &LoopPaths,
    rounds: Option<u32>,
    store: Option<&Store>,
    stop: Arc<AtomicBool>,
    mut on_round: impl FnMut(&LoopRound, &RoundReport),
) -> Result<LoopOutcome, DriverError> {
    let rounds = rounds.unwrap_or(setup.config.rounds).max(1);
    let out = &paths.out;
    std::fs::create_dir_all(out).map_err(|source| DriverError::Folder {
        path: out.clone(),
        source,
    })?;
    let mut state = if LoopState::path(out).exists() {
        LoopState::read(out)?
    } else {
        LoopState::default()
    };
    let mut outcome = LoopOutcome::default();
    if let Some(reason) = &state.stopped {
        outcome.already_stopped = Some(reason.clone());
        return Ok(outcome);
    }
    let store = match (&setup.config.heldout, store) {
        (Some(_), None) => {
            return Err(DriverError::Heldout(
                "a held-out dataset needs the store".into(),
            ));
        }
        (_, store) => store,
    };
    let name = loop_name(out);
    let mut captioner = state
        .rounds
        .last()
        .map_or_else(|| setup.config.captioner.clone(), |r| r.captioner.clone());
    let first = state.rounds.len() as u32 + 1;
    // A loop that goes on after rounds whose trainer wrote entries knows them again.
    for n in 1..first {
        setup.add_trained(&round_dir(out, n))?;
    }
    for n in first..=rounds {
        if n > 1 && !state.rounds.is_empty() {
            captioner = next_captioner(setup, &round_dir(out, n - 1), &captioner).await?;
        }
        let report = setup.round(paths, n, &captioner, stop.clone()).await?;
        if report.interrupted {
            outcome.interrupted = true;
            return Ok(outcome);
        }
        outcome.some_failed |= report.stats.failed > 0;
        let held_out = match (&setup.config.heldout, store) {
            (Some(dataset), Some(store)) => Some(
                heldout(
                    setup,
                    store,
                    dataset,
                    &captioner,
                    &format!("{name}-round-{n}"),
                )
                .await?,
            ),
            _ => None,
        };
        let heldout_score = held_out.as_ref().map(|h| h.score);
        // A gain compares one metric (a round recorded before the metric was kept
        // scored embed_sim).
        let metric = held_out.as_ref().map(|h| h.metric);
        let previous = state.rounds.last().and_then(|r| {
            let before = r.heldout_metric.as_deref().unwrap_or("embed_sim");
            r.heldout_score.filter(|_| Some(before) == metric)
        });
        let gain = match (heldout_score, previous) {
            (Some(now), Some(before)) => Some(now - before),
            _ => None,
        };
        let round = LoopRound {
            round: n,
            captioner: captioner.clone(),
            heldout_score,
            heldout_metric: held_out.as_ref().map(|h| h.metric.to_owned()),
            heldout_embed_sim: held_out.as_ref().map(|h| h.embed_sim),
            gain,
            stats: report.stats.clone(),
        };
        on_round(&round, &report);
        state.rounds.push(round);
        if let Some(g) = gain.filter(|g| *g < setup.config.min_gain) {
            state.stopped = Some(format!(
                "saturated: gain {g:.4} < min_gain {:.4} after round {n}",
                setup.config.min_gain
            ));
        } else if n == rounds {
            state.stopped = Some(format!("rounds: {rounds} rounds ran"));
        }
        state.write(out)?;
        if let Some(store) = store {
            let stats = serde_json::to_string(&report.stats)
                .expect("round statistics serialise; this is a bug");
            store
                .put_round(&RoundRow {
                    loop_name: name.clone(),
                    round: i64::from(n),
                    captioner: captioner.clone(),
                    captions: report.stats.captions as i64,
                    mean_words: report.stats.words.as_ref().map(|w| w.mean),
                    heldout_dataset: setup.config.heldout.clone(),
                    heldout_score,
                    heldout_metric: held_out.as_ref().map(|h| h.metric.to_owned()),
                    stats,
                })
                .await?;
        }
        if state.stopped.is_some() {
            break;
        }
    }
    outcome.stopped = state.stopped.clone();
    Ok(outcome)
}

/// The loop's name (its folder's), for held-out entries and the leaderboard.
fn loop_name(out: &Path) -> String {
    std::fs::canonicalize(out)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "recaption".into())
}

/// The captioner of the next round: `train_cmd`'s answer (an entry of the config, or
/// one it wrote into the round's [`TRAINED_ENTRIES`]), or the same one.
async fn next_captioner(
    setup: &mut Setup,
    round: &Path,
    current: &str,
) -> Result<String, DriverError> {
    let Some(command) = setup.config.train_cmd.clone() else {
        return Ok(current.to_owned());
    };
    let train_error = |message| DriverError::TrainCmd {
        command: command.clone(),
        message,
    };
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .arg("train")
        .arg(round)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| train_error(format!("cannot run it: {e}")))?;
    if !output.status.success() {
        return Err(train_error(format!("failed ({})", output.status)));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(name) = stdout.lines().rev().map(str::trim).find(|l| !l.is_empty()) else {
        return Err(train_error("printed no model entry".into()));
    };
    setup.add_trained(round)?;
    setup
        .plan
        .model_for(name, Role::ImageCaptioner)
        .map_err(DriverError::TrainedEntry)?;
    Ok(name.to_owned())
}

/// A captioner's held-out score.
struct Heldout {
    /// `truth_f1` where the held-out set has truth (`boxes.json`), else `embed_sim`.
    metric: &'static str,
    score: f64,
    embed_sim: f64,
}

/// The captioner's held-out score: each video's middle frame captioned (with the
/// first recaption prompt), stored as the entry `entry` and scored with `embed_sim`,
/// and `truth_f1` where the held-out set has truth.
async fn heldout(
    setup: &Setup,
    store: &Store,
    dataset: &str,
    captioner: &str,
    entry: &str,
) -> Result<Heldout, DriverError> {
    let summary = store.dataset(dataset).await?;
    let videos: Vec<_> = store
        .videos(summary.id)
        .await?
        .into_iter()
        .filter(|v| v.reference.as_deref().is_some_and(|r| !r.trim().is_empty()))
        .filter(|v| v.status == VideoStatus::Ok)
        .collect();
    if videos.is_empty() {
        return Err(DriverError::Heldout(format!(
            "the held-out dataset `{dataset}` has no readable video with a reference"
        )));
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
        .await
        .map_err(|e| DriverError::Heldout(format!("frame sampling panicked: {e}")))??;
        let Some(first) = frame.frames.into_iter().next() else {
            return Err(DriverError::Heldout(format!(
                "no frame sampled from `{}`",
                video.key
            )));
        };
        let image = first.image;
        let reply = model
            .caption_images(&ImageRequest {
                images: vec![image],
                prompt: prompt.text.to_owned(),
                ..ImageRequest::default()
            })
            .await?;
        captions.insert(video.key.clone(), serde_json::Value::String(reply.text));
    }
    let bytes = serde_json::to_vec(&captions).expect("a JSON map serialises; this is a bug");
    let origin = format!("recaption held-out evaluation of `{captioner}`");
    let imported = import(
        store,
        &Import {
            dataset,
            name: entry,
            source: None,
            origin: &origin,
            replace: true,
            // The loop's own captions: the captioner's length is what it is.
            max_caption_bytes: usize::MAX,
            meta: &[],
            columns: &crate::sources::Columns::default(),
        },
        &bytes,
    )
    .await?;
    let items = store.scoring_items(imported.run_id).await?;
    let settings = ScoreSettings {
        metrics: vec![Metric::EmbedSim],
        ..ScoreSettings::from_config(&setup.plan.score)
    }
    .with_truth_of(&summary.source);
    score_items_with(store, &setup.plan, &setup.models, &items, &settings).await?;
    let lines = report_lines(&store.scores(Some(dataset)).await?);
    let mean = |metric: &str| {
        lines
            .iter()
            .find(|l| l.run == entry && l.metric == metric)
            .and_then(|l| l.mean)
    };
    let embed_sim = mean("embed_sim").ok_or_else(|| {
        DriverError::Heldout("the held-out captions got no embed_sim score".into())
    })?;
    Ok(match mean("truth_f1") {
        Some(score) => Heldout {
            metric: "truth_f1",
            score,
            embed_sim,
        },
        None => Heldout {
            metric: "embed_sim",
            score: embed_sim,
            embed_sim,
        },
    })
}
