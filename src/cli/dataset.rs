//! `wolf dataset add|list|show`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Subcommand, ValueEnum};
use wolf_datasets::intake::{self, IntakeSettings};
use wolf_datasets::sources;
use wolf_pipeline::store::{Store, VideoStatus};
use wolf_pipeline::{process::cores, progress::Progress};

use super::{Context, Outcome, progress};

#[derive(Debug, Subcommand)]
pub(crate) enum DatasetCommand {
    /// Register (or refresh) a dataset: every video is hashed and probed.
    Add {
        /// The dataset's name.
        name: String,
        /// A folder of videos (searched recursively by extension), a `.jsonl` or
        /// `.csv` manifest (`path`, optional `key`, `caption`, `tags`), or a Wolf
        /// annotation `.json` whose videos sit beside it.
        source: PathBuf,
        /// Wolf's annotation JSON (`{"clip.mp4": caption}` or
        /// `{"clip.mp4": {"output": caption, "tags": [...]}}`) for a folder source.
        #[arg(long)]
        annotations: Option<PathBuf>,
        /// Files measured at once (default: the number of cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// List the datasets with their counts.
    List {
        /// `table` for people, `json` for programs.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show a dataset's counts, and each failed file and source problem with its reason.
    Show {
        /// The dataset's name (`wolf dataset list` lists them).
        name: String,
        /// `table` for people, `json` for programs.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Also list every video with its measurements.
        #[arg(long)]
        videos: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
}

pub(crate) async fn run(command: DatasetCommand, context: &Context) -> anyhow::Result<Outcome> {
    let store = context.store().await?;
    match command {
        DatasetCommand::Add {
            name,
            source,
            annotations,
            threads,
        } => {
            add(
                &store,
                context,
                &name,
                &source,
                annotations.as_deref(),
                threads,
            )
            .await
        }
        DatasetCommand::List { format } => list(&store, format).await,
        DatasetCommand::Show {
            name,
            format,
            videos,
        } => show(&store, &name, format, videos).await,
    }
}

/// Reads and ingests a source; used by `dataset add` and the demo.
pub(crate) async fn add(
    store: &Store,
    context: &Context,
    name: &str,
    source: &std::path::Path,
    annotations: Option<&std::path::Path>,
    threads: Option<usize>,
) -> anyhow::Result<Outcome> {
    let read = sources::read_source(source, annotations)?;
    let no_videos = read
        .problems
        .iter()
        .find(|p| p.kind == sources::NO_VIDEOS)
        .map(|p| p.message.clone());
    let label = match annotations {
        Some(a) => format!("{} + {}", source.display(), a.display()),
        None => source.display().to_string(),
    };
    let counts = Arc::new(Progress::new());
    let bar = progress::draw(counts.clone(), "intake", context.show_progress);
    let settings = IntakeSettings {
        threads: threads.unwrap_or_else(cores),
    };
    let report = intake::ingest(store, name, &label, read, settings, counts).await;
    drop(bar);
    let report = report?;
    outln!(
        "Dataset `{name}`: {} videos ok ({} unchanged since the last intake), {} failed, {} source problems.",
        report.ok,
        report.unchanged,
        report.failed,
        report.problems
    );
    if let Some(message) = no_videos {
        eprintln!("warning: {message}");
    }
    if report.failed > 0 || report.problems > 0 {
        outln!("`wolf dataset show {name}` lists each with its reason.");
        return Ok(Outcome::SomeFailed);
    }
    Ok(Outcome::Done)
}

async fn list(store: &Store, format: Format) -> anyhow::Result<Outcome> {
    let datasets = store.datasets().await?;
    if format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&datasets)?);
        return Ok(Outcome::Done);
    }
    if datasets.is_empty() {
        outln!("No datasets yet: `wolf dataset add NAME SOURCE` registers one.");
        return Ok(Outcome::Done);
    }
    outln!(
        "{:<24} {:>8} {:>8} {:>9} {:>10}  source",
        "name",
        "videos",
        "failed",
        "problems",
        "hours"
    );
    for d in &datasets {
        outln!(
            "{:<24} {:>8} {:>8} {:>9} {:>10.2}  {}",
            d.name,
            d.videos - d.failed,
            d.failed,
            d.problems,
            d.total_duration_s / 3600.0,
            d.source
        );
    }
    Ok(Outcome::Done)
}

async fn show(
    store: &Store,
    name: &str,
    format: Format,
    list_videos: bool,
) -> anyhow::Result<Outcome> {
    let summary = store.dataset(name).await?;
    let videos = store.videos(summary.id).await?;
    let problems = store.intake_problems(summary.id).await?;
    let failed: Vec<_> = videos
        .iter()
        .filter(|v| v.status == VideoStatus::Failed)
        .collect();
    if format == Format::Json {
        let mut value = serde_json::json!({
            "dataset": summary,
            "failed": failed.iter().map(|v| serde_json::json!({
                "key": v.key, "path": v.path, "kind": v.error_kind, "message": v.error_message,
            })).collect::<Vec<_>>(),
            "problems": problems,
        });
        if list_videos {
            value["videos"] = serde_json::to_value(&videos)?;
        }
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(Outcome::Done);
    }
    let ok: Vec<_> = videos
        .iter()
        .filter(|v| v.status == VideoStatus::Ok)
        .collect();
    outln!(
        "Dataset `{}` ({} source `{}`)",
        summary.name,
        summary.source_kind,
        summary.source
    );
    outln!(
        "  {} videos ok, {} failed, {} source problems; {} with a reference caption",
        ok.len(),
        failed.len(),
        problems.len(),
        summary.with_reference
    );
    if !ok.is_empty() {
        let mean = |f: &dyn Fn(&&wolf_pipeline::store::VideoRow) -> f64| {
            ok.iter().map(f).sum::<f64>() / ok.len() as f64
        };
        outln!(
            "  duration {:.1} s in all, {:.2} s on average; {:.1} fps and {:.0} frames on average",
            summary.total_duration_s,
            mean(&|v| v.duration_s.unwrap_or(0.0)),
            mean(&|v| v.fps.unwrap_or(0.0)),
            mean(&|v| v.frame_count.unwrap_or(0) as f64),
        );
    }
    if !failed.is_empty() {
        outln!("Failed files:");
        for v in &failed {
            outln!(
                "  {}  [{}] {}",
                v.key,
                v.error_kind.as_deref().unwrap_or("?"),
                v.error_message.as_deref().unwrap_or("")
            );
        }
    }
    if !problems.is_empty() {
        outln!("Source problems:");
        for p in &problems {
            outln!("  {}  [{}] {}", p.location, p.kind, p.message);
        }
    }
    if list_videos {
        outln!("Videos:");
        for v in &videos {
            outln!(
                "  {}  {}  {:.2} s  {}x{}  {:.2} fps  {}",
                v.key,
                v.codec.as_deref().unwrap_or("-"),
                v.duration_s.unwrap_or(0.0),
                v.width.unwrap_or(0),
                v.height.unwrap_or(0),
                v.fps.unwrap_or(0.0),
                v.sha256.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(Outcome::Done)
}
