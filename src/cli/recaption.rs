//! `wolf recaption round|loop|stats`: VILA²'s recaption loop (METHOD.md section 3);
//! `wolf_datasets::recaption::driver` runs it, this prints it.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use wolf_datasets::recaption::driver::{LoopPaths, Setup, round_dir, run_loop, stats_report};
use wolf_datasets::recaption::round::{RoundReport, log_path};
use wolf_datasets::recaption::shards_out::{self, write_shards, write_sidecars};

use super::{Context, Outcome, PreflightArgs, progress};

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
    #[command(flatten)]
    preflight: PreflightArgs,
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
    /// Also write the input's shards with the round's captions into DIR (each sample
    /// as it was, plus `KEY.recaption.txt` and the merged caption in its `.json`).
    #[arg(long, value_name = "DIR")]
    write_shards: Option<PathBuf>,
    /// The `.json` field of the merged caption in `--write-shards`.
    #[arg(long, default_value = "merged_caption")]
    shard_field: String,
    /// A folder input: write `KEY.recaption.txt` and `KEY.merged.txt` beside each file.
    #[arg(long)]
    write_sidecars: bool,
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

impl InputArgs {
    fn paths(&self) -> LoopPaths {
        LoopPaths {
            input: self.input.clone(),
            out: self.out.clone(),
            config: self.config.clone(),
        }
    }
}

pub(crate) async fn run(command: RecaptionCommand, context: &Context) -> anyhow::Result<Outcome> {
    match command {
        RecaptionCommand::Round(args) => {
            let paths = args.input.paths();
            let setup = Setup::load(&paths, args.captioner.as_deref())?;
            if args.input.preflight.enabled() {
                setup.preflight(false).await?;
            }
            let captioner = setup.config.captioner.clone();
            let (stop, watcher) = super::stop_on_signal("");
            let report = {
                let _bars = progress::Board::default()
                    .counter("items", setup.progress.clone())
                    .draw(context.show_progress);
                setup.round(&paths, args.round, &captioner, stop).await
            };
            watcher.abort();
            let report = report?;
            log_round(&report);
            outln!("{}", report.stats.table());
            let log = log_path(&round_dir(&paths.out, args.round));
            if args.write_sidecars && !report.interrupted {
                let written = write_sidecars(&paths.input, &log)?;
                outln!("Wrote {written} sidecar captions beside the input's files.");
            }
            if let Some(dir) = args.write_shards.filter(|_| !report.interrupted) {
                let written = write_shards(&paths.input, &log, &dir, &args.shard_field)?;
                for shard in written.iter().filter_map(|s| s.problem.as_ref()) {
                    eprintln!("warning: {shard}");
                }
                outln!("{}", shards_out::summary(&written, &dir));
            }
            Ok(round_outcome(&report))
        }
        RecaptionCommand::Loop(args) => {
            let paths = args.input.paths();
            let mut setup = Setup::load(&paths, None)?;
            if args.input.preflight.enabled() {
                setup.preflight(true).await?;
            }
            let store = match &setup.config.heldout {
                Some(_) => Some(context.store().await?),
                None => None,
            };
            let (stop, watcher) = super::stop_on_signal("");
            // Each round's line is written above the bar (`outln!` suspends it).
            let bars = progress::Board::default()
                .counter("items", setup.progress.clone())
                .draw(context.show_progress);
            let outcome = run_loop(
                &mut setup,
                &paths,
                args.rounds,
                store.as_ref(),
                stop,
                |round, report| {
                    log_round(report);
                    outln!("{round}");
                },
            )
            .await;
            drop(bars);
            watcher.abort();
            let outcome = outcome?;
            if let Some(reason) = &outcome.already_stopped {
                outln!(
                    "The loop in `{}` has stopped already: {reason}",
                    paths.out.display()
                );
                return Ok(Outcome::Done);
            }
            if outcome.interrupted {
                eprintln!("Stopped: run the same command again to finish the round.");
                return Ok(Outcome::SomeFailed);
            }
            if let Some(reason) = &outcome.stopped {
                outln!("Stopped: {reason}");
            }
            Ok(Outcome::failed_if(outcome.some_failed))
        }
        RecaptionCommand::Stats(args) => {
            out!("{}", stats_report(&args.out)?);
            Ok(Outcome::Done)
        }
    }
}

/// The driver logs each round; this says how to finish an interrupted one.
fn log_round(report: &RoundReport) {
    if report.interrupted {
        eprintln!("Stopped: run the same command again to finish the round.");
    }
}

fn round_outcome(report: &RoundReport) -> Outcome {
    Outcome::failed_if(report.interrupted || report.stats.failed > 0)
}
