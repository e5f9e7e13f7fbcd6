//! `wolf score` (judge and measure a run's captions against the references) and
//! `wolf report` (means, intervals, counts and parse failures per dataset, source and
//! metric).

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use wolf_datasets::tables::{TableFormat, write_table};
use wolf_pipeline::config::{Choices, Config};
use wolf_pipeline::store::VIDEO_SCORE_COLUMNS;
use wolf_scorer::judge::Mode;
use wolf_scorer::report::{efficiency_table, report_lines, table, truth_correlation_lines};
use wolf_scorer::run::{JudgeOptions, Metric, ScoreSettings, score_items};

use super::{Context, Outcome, PreflightArgs, progress};

#[derive(Debug, Args)]
pub(crate) struct ScoreArgs {
    /// The run whose captions are scored.
    #[arg(long)]
    run: String,
    /// The config with the judge's and the embedder's entries and its `[score]`
    /// section (default: the embedded defaults, which name no judge).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The CapScore judge: a chat LLM entry (default: `[score] judge`). Without a
    /// judge, CapScore is not run.
    #[arg(long)]
    judge: Option<String>,
    /// The embedder entry of `embed_sim` and `efficiency` (default: `[score] embedder`,
    /// `minilm`).
    #[arg(long)]
    embedder: Option<String>,
    /// How the judge scores: `pointwise` (each caption alone against the reference)
    /// or `listwise` (all sources of a video at once, in shuffled order).
    #[arg(long, value_enum, default_value_t = ModeArg::Pointwise)]
    mode: ModeArg,
    /// Judge samples per caption (k).
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Judge temperature (0: greedy, the paper's; use more than 0 with several samples).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Further attempts after an unparsable reply.
    #[arg(long, default_value_t = 2)]
    parse_retries: usize,
    /// Judge calls in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Metrics: `capscore`, `embed_sim`, `classic` (BLEU-1..4, METEOR, ROUGE-L,
    /// CIDEr-D), `efficiency`, `truth`, `dense` (comma-separated; `efficiency` scores
    /// every sentence prefix of every caption with the embedder; `truth` scores the facts
    /// a caption states against the `boxes.json` in the dataset's folder, `dense` the
    /// timed captions against its `dense.json`). Default:
    /// `embed_sim,classic`, and `capscore` when a judge is named.
    #[arg(long, value_delimiter = ',')]
    metrics: Option<Vec<String>>,
    #[command(flatten)]
    preflight: PreflightArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Pointwise,
    Listwise,
}

pub(crate) async fn score(args: ScoreArgs, context: &Context) -> anyhow::Result<Outcome> {
    let config = Config::load_or_default(args.config.as_deref())?;
    let choices = Choices {
        judge: args.judge.clone(),
        embedder: args.embedder.clone(),
        ..Choices::default()
    };
    let plan = config.plan_with(&choices)?;
    let asked = match &args.metrics {
        Some(names) => Some(
            names
                .iter()
                .map(|m| m.parse::<Metric>())
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let judge_options = JudgeOptions {
        mode: match args.mode {
            ModeArg::Pointwise => Mode::Pointwise,
            ModeArg::Listwise => Mode::Listwise,
        },
        samples: args.samples,
        temperature: args.temperature,
        parse_retries: args.parse_retries,
        concurrency: args.concurrency,
    };
    let (mut settings, no_judge) = ScoreSettings::chosen(&plan, &choices, asked, judge_options)?;
    let store = context.store().await?;
    let run = store.run(&args.run).await?;
    let items = store.scoring_items(run.id).await?;
    if items.is_empty() {
        bail!(
            "run `{}` has no captions of videos with a reference",
            args.run
        );
    }
    settings.preflight = args.preflight.enabled();
    settings.run_id = Some(run.id);
    settings.truth_folder = store
        .datasets()
        .await?
        .into_iter()
        .find(|d| d.id == run.dataset_id)
        .map(|d| wolf_scorer::truth::folder_of(&d.source));
    let summary = {
        let _bars = progress::Board::default()
            .counter("judge", settings.judge_progress.clone())
            .draw(context.show_progress);
        score_items(&store, &plan, &items, &settings).await?
    };
    for line in summary.lines(&settings) {
        outln!("{line}");
    }
    if no_judge {
        outln!(
            "capscore: not run: {}",
            wolf_scorer::run::ScoreError::NoJudge
        );
    }
    let failed = summary.capscore.as_ref().is_some_and(|(_, r)| r.failed > 0);
    Ok(Outcome::failed_if(failed))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    Table,
    Json,
    /// One JSON object a line (`--per-video` only).
    Jsonl,
    /// A header, then a line a row (`--per-video` only).
    Csv,
    /// Parquet, to a file or a pipe (`--per-video` only).
    Parquet,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Only this dataset.
    #[arg(long)]
    dataset: Option<String>,
    /// `table` for people, `json` for programs; `jsonl`, `csv`, `parquet` with `--per-video`.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    format: ReportFormat,
    /// A row per video, source, metric and judge, with the caption, the reference and the
    /// score (samples averaged), as `jsonl`, `csv`, `parquet` or `json`.
    #[arg(long)]
    per_video: bool,
    /// Print the token-efficiency curves (`wolf score --metrics efficiency`) instead.
    #[arg(long)]
    efficiency: bool,
}

pub(crate) async fn report(args: ReportArgs, context: &Context) -> anyhow::Result<Outcome> {
    let store = context.store().await?;
    if args.efficiency {
        let rows = store.efficiency(None).await?;
        match args.format {
            ReportFormat::Table => out!("{}", efficiency_table(&rows)),
            ReportFormat::Json => return json_out(&rows),
            _ => bail!("jsonl, csv and parquet are the formats of --per-video"),
        }
        return Ok(Outcome::Done);
    }
    if let Some(name) = &args.dataset {
        store.dataset(name).await.context("the report's dataset")?;
    }
    if args.per_video {
        let rows = store.video_scores(args.dataset.as_deref()).await?;
        let format = match args.format {
            ReportFormat::Json => return json_out(&rows),
            ReportFormat::Jsonl => TableFormat::Jsonl,
            ReportFormat::Csv => TableFormat::Csv,
            ReportFormat::Parquet => TableFormat::Parquet,
            ReportFormat::Table => bail!("--per-video prints jsonl, csv, parquet or json"),
        };
        let mut bytes = Vec::new();
        write_table(&rows, &VIDEO_SCORE_COLUMNS, format, &mut bytes)?;
        return super::caption::write_out(None, &bytes);
    }
    let scores = store.scores(args.dataset.as_deref()).await?;
    let lines = report_lines(&scores);
    match args.format {
        ReportFormat::Jsonl | ReportFormat::Csv | ReportFormat::Parquet => {
            bail!("jsonl, csv and parquet are the formats of --per-video")
        }
        ReportFormat::Json => outln!("{}", serde_json::to_string_pretty(&lines)?),
        ReportFormat::Table => {
            out!("{}", table(&lines));
            // CapScore checked against the truth, where both were scored.
            for line in truth_correlation_lines(&scores) {
                outln!("{line}");
            }
        }
    }
    Ok(Outcome::Done)
}

fn json_out(rows: &impl serde::Serialize) -> anyhow::Result<Outcome> {
    outln!("{}", serde_json::to_string_pretty(rows)?);
    Ok(Outcome::Done)
}
