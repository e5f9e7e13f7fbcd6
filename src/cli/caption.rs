//! `wolf caption` (run the Wolf method over a dataset) and `wolf export` (a run's
//! captions as JSONL, Wolf JSON, dense captions, CSV or Parquet).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use wolf_datasets::hf::export_hf;
use wolf_datasets::recaption::output::write_atomic;
use wolf_datasets::tables::{TableFormat, write_table};
use wolf_pipeline::config::{Choices, Config};
use wolf_pipeline::wolf::export::{CAPTION_COLUMNS, Export, caption_rows, export};
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
    let (config, text) = Config::read(&args.config)?;
    let plan = config.plan_with(&Choices {
        wolf: true,
        ..Choices::default()
    })?;
    let store = context.store().await?;
    let dataset = store.dataset(&args.dataset).await?;
    let name = args
        .run
        .clone()
        .unwrap_or_else(|| wolf_pipeline::wolf::default_run_name(&args.dataset, &args.config));
    if args.enqueue_only {
        let (run, _) = prepare(
            &store,
            &plan,
            &dataset,
            &name,
            &text,
            Arc::default(),
            Arc::default(),
        )
        .await?;
        let queued = store.enqueue(run.id, dataset.id).await?;
        outln!(
            "run `{name}`: {queued} videos queued; start workers with `wolf worker`, follow them with `wolf run status {name}`"
        );
        return Ok(Outcome::Done);
    }
    let (stop, watcher) = super::stop_on_signal(
        "Stopping: no new video starts; in-flight ones stop at their next stage.",
    );
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
    for line in report.next_steps(&name) {
        outln!("{line}");
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
    for line in report.lines(name) {
        outln!("{line}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// One JSON object per line: video, path, source, caption, model, prompt_version.
    Jsonl,
    /// Wolf's `{video: caption}` for one source.
    WolfJson,
    /// ActivityNet's dense captions (timestamps, sentences) for one source.
    Dense,
    /// One segment a line: video, start, end, caption, source.
    DenseJsonl,
    /// The `jsonl` rows as CSV, a column per field.
    Csv,
    /// The `jsonl` rows as Parquet (to a file, or a pipe).
    Parquet,
    /// A Hugging Face dataset folder (`--out DIR`): Parquet data and a dataset card.
    Hf,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The run (`wolf caption --run`).
    #[arg(long)]
    run: String,
    /// `jsonl` (every source, one caption a line), `wolf-json` or `dense` (one source),
    /// `dense-jsonl` (one segment a line), `csv` or `parquet` (the `jsonl` rows).
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    format: ExportFormat,
    /// Only this source (`wolf`, `motion`, `MODEL`, `MODEL:middle`, `MODEL:summary`);
    /// `wolf-json` and `dense` default to `wolf`.
    #[arg(long)]
    source: Option<String>,
    /// `wolf-json` as `{video: {"output": caption}}`.
    #[arg(long)]
    nested: bool,
    /// List the failed stages with their reasons instead (JSONL).
    #[arg(long)]
    failed: bool,
    /// Write videos' paths as stored, not relative to their dataset's folder.
    #[arg(long)]
    absolute_paths: bool,
    /// Write here instead of stdout (written whole, then renamed into place).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(crate) async fn export_run(args: ExportArgs, context: &Context) -> anyhow::Result<Outcome> {
    let store = context.store().await?;
    let what = if args.failed {
        Export::Failed
    } else {
        let source = args.source;
        match args.format {
            ExportFormat::Jsonl => Export::Jsonl {
                source,
                absolute: args.absolute_paths,
            },
            ExportFormat::WolfJson => Export::WolfJson {
                source,
                nested: args.nested,
            },
            ExportFormat::Hf => {
                let out = args
                    .out
                    .context("`--format hf` writes a folder: name it with --out")?;
                let written = export_hf(&store, &args.run, &out, args.absolute_paths).await?;
                outln!(
                    "Wrote {} captions and a dataset card to `{}`.",
                    written.rows,
                    out.display()
                );
                return Ok(Outcome::Done);
            }
            ExportFormat::Dense => Export::Dense { source },
            ExportFormat::DenseJsonl => Export::DenseJsonl { source },
            ExportFormat::Csv | ExportFormat::Parquet => {
                let format = match args.format {
                    ExportFormat::Csv => TableFormat::Csv,
                    _ => TableFormat::Parquet,
                };
                let run_id = store.run(&args.run).await?.id;
                let rows =
                    caption_rows(&store, run_id, source.as_deref(), args.absolute_paths).await?;
                let mut bytes = Vec::new();
                write_table(&rows, &CAPTION_COLUMNS, format, &mut bytes)?;
                return write_out(args.out.as_deref(), &bytes);
            }
        }
    };
    let text = export(&store, &args.run, &what).await?;
    write_out(args.out.as_deref(), text.as_bytes())
}

/// Writes `bytes` to `out` whole (then renamed), or to stdout, unless binary to a terminal.
pub(crate) fn write_out(out: Option<&std::path::Path>, bytes: &[u8]) -> anyhow::Result<Outcome> {
    match out {
        Some(path) => write_atomic(path, |w| w.write_all(bytes))
            .with_context(|| format!("cannot write `{}`", path.display()))?,
        None if std::str::from_utf8(bytes).is_ok() => out!("{}", String::from_utf8_lossy(bytes)),
        None if std::io::IsTerminal::is_terminal(&std::io::stdout()) => {
            anyhow::bail!("this format is binary: redirect it to a file (`> FILE`)")
        }
        None => std::io::stdout().lock().write_all(bytes)?,
    }
    Ok(Outcome::Done)
}
