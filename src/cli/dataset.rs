//! `wolf dataset add|list|show`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use wolf_datasets::intake::{self, IntakeSettings};
use wolf_datasets::overview::Overview;
use wolf_datasets::sources;
use wolf_pipeline::store::Store;
use wolf_pipeline::{process::cores, progress::Progress};

use super::{Context, Outcome, progress};

#[derive(Debug, Subcommand)]
pub(crate) enum DatasetCommand {
    /// Register (or refresh) a dataset: every video is hashed and probed.
    Add {
        /// The dataset's name.
        name: String,
        /// A folder of videos (searched recursively by extension), a `.jsonl`, `.csv`
        /// or `.parquet` manifest (`path`, `video` or `url`, optional `key`, `caption`, `tags`;
        /// other columns are kept as metadata), or a Wolf annotation `.json` whose
        /// videos sit beside it.
        source: PathBuf,
        /// Wolf's annotation JSON (`{"clip.mp4": caption}` or
        /// `{"clip.mp4": {"output": caption, "tags": [...]}}`) for a folder source.
        #[arg(long)]
        annotations: Option<PathBuf>,
        /// Files measured at once (default: the number of cores).
        #[arg(long)]
        threads: Option<usize>,
        #[command(flatten)]
        columns: ColumnArgs,
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

/// A manifest's columns or an import's JSONL fields (`wolf_datasets::sources::Columns`).
#[derive(Debug, Args)]
pub(crate) struct ColumnArgs {
    /// The column of each video's path (`dataset add` default: `path`, `video` or `url`;
    /// `import`: none, videos are named by key; a list of one path is taken too).
    #[arg(long)]
    path_column: Option<String>,
    /// The column of each video's key (`dataset add` default: `key`, else the path;
    /// `import`: `video`).
    #[arg(long)]
    key_column: Option<String>,
    /// The column of each caption (default: `caption`).
    #[arg(long)]
    caption_column: Option<String>,
    /// The manifest's column of each video's tags, a list or `a|b` (default: `tags`).
    #[arg(long)]
    tags_column: Option<String>,
}

impl ColumnArgs {
    pub(crate) fn columns(self) -> sources::Columns {
        sources::Columns {
            path: self.path_column,
            key: self.key_column,
            caption: self.caption_column,
            tags: self.tags_column,
        }
    }
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
            columns,
        } => {
            let columns = columns.columns();
            let source = (source.as_path(), annotations.as_deref(), &columns);
            add(&store, context, &name, source, threads).await
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
    (source, annotations, columns): (&Path, Option<&Path>, &sources::Columns),
    threads: Option<usize>,
) -> anyhow::Result<Outcome> {
    let cache = store.shard_cache();
    let read = sources::read_source(source, annotations, columns, &cache)?;
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
    out!("{}", wolf_datasets::overview::list_table(&datasets));
    Ok(Outcome::Done)
}

async fn show(store: &Store, name: &str, format: Format, videos: bool) -> anyhow::Result<Outcome> {
    let overview = Overview::load(store, name, videos).await?;
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&overview.to_json())?),
        Format::Table => out!("{overview}"),
    }
    Ok(Outcome::Done)
}
