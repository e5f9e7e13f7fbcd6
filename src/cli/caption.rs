//! `wolf caption` (run the Wolf method over a dataset) and `wolf export` (a run's
//! captions as JSONL or Wolf JSON).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use wolf_pipeline::config::Config;
use wolf_pipeline::store::Store;
use wolf_pipeline::wolf::failures::Failures;
use wolf_pipeline::wolf::runner::{RunOptions, RunPhase, RunProgress, RunReport, prepare};
use wolf_pipeline::wolf::worker::caption as caption_run;

use super::{Context, Outcome, PreflightArgs, progress};

#[derive(Debug, Args)]
pub(crate) struct CaptionArgs {
    /// The dataset (`wolf dataset add`).
    #[arg(long)]
    dataset: String,
    /// The config: `[sampling]`, `[models]`, `[wolf]`.
    #[arg(long)]
    config: PathBuf,
    /// The run's name (default: DATASET-CONFIG, from the config file's name). Running
    /// the same run again computes only what is missing.
    #[arg(long)]
    run: Option<String>,
    /// Rerun only the videos with failed stages.
    #[arg(long)]
    retry_failed: bool,
    /// Only record the run and queue its videos in the database, for `wolf worker`s to
    /// caption (on this machine or others that reach the database).
    #[arg(long, conflicts_with = "retry_failed")]
    enqueue_only: bool,
    #[command(flatten)]
    preflight: PreflightArgs,
}

pub(crate) async fn caption(args: CaptionArgs, context: &Context) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read config `{}`", args.config.display()))?;
    let config = Config::load(&args.config)?;
    let plan = config.plan()?;
    plan.wolf.validate(&plan)?;
    let store = context.store().await?;
    let dataset = store.dataset(&args.dataset).await?;
    let name = args
        .run
        .clone()
        .unwrap_or_else(|| wolf_pipeline::wolf::default_run_name(&args.dataset, &args.config));
    let stop = Arc::new(AtomicBool::new(false));
    if args.enqueue_only {
        let (run, _) = prepare(
            &store,
            &plan,
            &plan.wolf,
            &dataset,
            &name,
            &text,
            stop,
            Arc::default(),
        )
        .await?;
        let queued = store.enqueue(run.id, dataset.id).await?;
        outln!(
            "run `{name}`: {queued} videos queued; start workers with `wolf worker`, follow them with `wolf run status {name}`"
        );
        return Ok(Outcome::Done);
    }
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                progress::eprintln(format_args!(
                    "Stopping: no new video starts; in-flight ones stop at their next stage."
                ));
                stop.store(true, Ordering::Relaxed);
            }
        })
    };
    let counters = Arc::new(RunProgress::default());
    let report = {
        let _bars = draw(&counters, context.show_progress);
        caption_run(
            &store,
            &plan,
            &dataset,
            RunOptions {
                name: name.clone(),
                config_text: text,
                retry_failed: args.retry_failed,
                stop,
                preflight: args.preflight.enabled(),
            },
            counters.clone(),
        )
        .await?
    };
    watcher.abort();
    print_report(&name, &report);
    if !report.complete() {
        return Ok(Outcome::SomeFailed);
    }
    outln!("Next:");
    for (command, what) in [
        (
            format!("wolf score --run {name}"),
            "score the captions against the references",
        ),
        (
            format!("wolf export --run {name}"),
            "the captions, as JSONL",
        ),
        (
            "wolf leaderboard build --out site".to_owned(),
            "the leaderboard page, site/index.html",
        ),
    ] {
        outln!("  {command:<36} # {what}");
    }
    Ok(Outcome::Done)
}

/// The bars of a run: a status line while the models load, then videos, frame
/// captions and LLM requests.
pub(crate) fn draw(counters: &Arc<RunProgress>, show: bool) -> progress::Bars {
    let phase = counters.clone();
    progress::Board::default()
        .status(move || match phase.phase() {
            RunPhase::CheckingModels => Some("checking and loading models"),
            RunPhase::Starting | RunPhase::Working => None,
        })
        .counter("videos", counters.videos.clone())
        .counter("frames", counters.frame_captions.clone())
        .counter("llm", counters.llm_calls.clone())
        .draw(show)
}

pub(crate) fn print_report(name: &str, report: &RunReport) {
    outln!(
        "run `{name}`: {} videos, {} done now, {} skipped (already done{}), {} failed stages, {} model requests, {:.1} s",
        report.videos,
        report.completed,
        report.skipped,
        if report.failed_stages_left > 0 {
            " or failed before"
        } else {
            ""
        },
        report.failed_stages,
        report.model_calls,
        report.wall.as_secs_f64()
    );
    for (stage, time) in &report.stage_time {
        outln!(
            "  {stage:<16} {:>8.1} s (summed over videos in flight)",
            time.as_secs_f64()
        );
    }
    if !report.guard_paths.is_empty() {
        let paths: Vec<String> = report
            .guard_paths
            .iter()
            .map(|(path, n)| format!("{path} {n}"))
            .collect();
        outln!("fused captions by guard path: {}", paths.join(", "));
    }
    if report.interrupted {
        outln!("interrupted: run the same command again to finish");
    }
    if report.failed_stages_left > 0 {
        print_failures(&report.failures);
        outln!(
            "{} failed stages remain, stored with their reasons (`wolf export --run {name} --failed`); \
             the same `wolf caption` with `--retry-failed` redoes them",
            report.failed_stages_left
        );
    }
}

/// The reasons shown at the end of a run or a worker; the rest are counted.
const REASONS_SHOWN: usize = 5;

/// Why stages failed, commonest first, each with its count and a hint.
pub(crate) fn print_failures(failures: &Failures) {
    let reasons = failures.reasons();
    if reasons.is_empty() {
        return;
    }
    outln!("Why stages failed ({} in all):", failures.total());
    for reason in reasons.iter().take(REASONS_SHOWN) {
        let hint = reason
            .hint
            .as_deref()
            .map_or_else(String::new, |hint| format!(" \u{2014} {hint}"));
        outln!(
            "  {}: {} \u{d7}{}{hint}",
            reason.kind,
            reason.message,
            reason.count
        );
    }
    if reasons.len() > REASONS_SHOWN {
        let rest: u64 = reasons[REASONS_SHOWN..].iter().map(|r| r.count).sum();
        outln!(
            "  and {} more reasons ({rest} stages)",
            reasons.len() - REASONS_SHOWN
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// One JSON object per line: video, path, source, caption, model, prompt_version.
    Jsonl,
    /// Wolf's `{video: caption}` for one source.
    WolfJson,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The run (`wolf caption --run`).
    #[arg(long)]
    run: String,
    /// `jsonl` (every source, one caption a line) or `wolf-json` (one source).
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    format: ExportFormat,
    /// Only this source (`wolf`, `motion`, `MODEL`, `MODEL:middle`, `MODEL:summary`);
    /// `wolf-json` defaults to `wolf`.
    #[arg(long)]
    source: Option<String>,
    /// `wolf-json` as `{video: {"output": caption}}`.
    #[arg(long)]
    nested: bool,
    /// List the failed stages with their reasons instead (JSONL).
    #[arg(long)]
    failed: bool,
    /// Write here instead of stdout (written whole, then renamed into place).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(crate) async fn export(args: ExportArgs, context: &Context) -> anyhow::Result<Outcome> {
    let store = context.store().await?;
    let text = export_text(&store, &args).await?;
    match &args.out {
        Some(path) => {
            let tmp = path.with_extension("partial");
            std::fs::write(&tmp, &text)
                .with_context(|| format!("cannot write `{}`", tmp.display()))?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
        }
        None => out!("{text}"),
    }
    Ok(Outcome::Done)
}

async fn export_text(store: &Store, args: &ExportArgs) -> anyhow::Result<String> {
    let run = store.run(&args.run).await?;
    if args.failed {
        let mut out = String::new();
        for item in store.work_items(run.id).await? {
            if item.status == "failed" {
                out.push_str(&serde_json::to_string(&item)?);
                out.push('\n');
            }
        }
        return Ok(out);
    }
    match args.format {
        ExportFormat::Jsonl => {
            let mut out = String::new();
            for c in store.captions(run.id, args.source.as_deref()).await? {
                let mut line = serde_json::json!({
                    "video": c.video,
                    "path": c.path,
                    "source": c.source,
                    "caption": c.caption,
                    "model": c.model,
                    "prompt_version": c.prompt_version,
                });
                if let Some(path) = c.guard {
                    line["guard"] = path.into();
                }
                out.push_str(&line.to_string());
                out.push('\n');
            }
            Ok(out)
        }
        ExportFormat::WolfJson => {
            let source = args
                .source
                .as_deref()
                .unwrap_or(wolf_pipeline::wolf::WOLF_SOURCE);
            let captions = store.captions(run.id, Some(source)).await?;
            if captions.is_empty() {
                bail!("run `{}` has no captions of source `{source}`", args.run);
            }
            let mut map = serde_json::Map::new();
            for c in captions {
                let value = if args.nested {
                    serde_json::json!({ "output": c.caption })
                } else {
                    serde_json::Value::String(c.caption)
                };
                map.insert(c.video, value);
            }
            Ok(serde_json::to_string_pretty(&serde_json::Value::Object(map))? + "\n")
        }
    }
}
