//! `wolf demo`: the embedded default end to end. It renders the synthetic world,
//! registers it as a dataset, runs the Wolf method over it with `examples/demo.toml`
//! (the fixture captioners and the pack's LLM), prints each source's scores against the
//! world's reference captions, builds the leaderboard site and prints where its index
//! page is.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use wolf_pipeline::config::{Choices, Config, Plan};
use wolf_pipeline::store::Store;
use wolf_pipeline::wolf::WOLF_SOURCE;
use wolf_pipeline::wolf::runner::{RunOptions, RunProgress, RunReport};
use wolf_scorer::report::{ReportLine, beats_lines, mean_words, report_lines, source_table};
use wolf_scorer::run::score_run_with_truth;

use super::{Context, Outcome, caption, dataset, leaderboard, synth};

/// The demo's config, compiled in so that the demo runs from any folder.
const DEMO_CONFIG: &str = include_str!("../../examples/demo.toml");

/// The dataset name the demo registers.
const DATASET: &str = "synthetic-world";

/// The run name the demo uses.
const RUN: &str = "demo";

/// The multi-shot clips (`wolf synth --shots`): dataset, run, clips, scenes a clip, and
/// the longest segment, short so that clips of 16 to 32 s are cut and show a timeline.
const SHOTS: (&str, &str, usize, usize, f64) = ("synthetic-shots", "demo-shots", 3, 4, 10.0);

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Folder for the world. Default: `.wolf/demo` in the checkout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Number of clips in the world.
    #[arg(long, default_value_t = 40)]
    count: usize,
    /// Seed of the world.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Use this config instead of the embedded `examples/demo.toml`.
    #[arg(long)]
    config: Option<PathBuf>,
}

pub(crate) async fn run(args: DemoArgs, context: &Context) -> anyhow::Result<Outcome> {
    let text = match &args.config {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?,
        None => DEMO_CONFIG.to_owned(),
    };
    let plan = Config::parse(&text)
        .context("the demo config")?
        .plan_with(&Choices {
            wolf: true,
            ..Choices::default()
        })?;
    let out = args.out.clone().unwrap_or_else(default_out);
    let world = out.join("world");
    let started = Instant::now();

    let step = Instant::now();
    let settings = wolf_datasets::synth::SynthSettings::new(args.count, args.seed);
    let rendered = synth::render(&world, settings, context).await?;
    outln!(
        "1/6 Synthetic world: {} clips, {} frames, in {:.1} s -> {}",
        rendered.clips,
        rendered.frames,
        step.elapsed().as_secs_f64(),
        world.display()
    );

    let step = Instant::now();
    let store = context.store().await?;
    let annotations = world.join("annotations.json");
    let source = (
        world.as_path(),
        Some(annotations.as_path()),
        &Default::default(),
    );
    let intake = dataset::add(&store, context, DATASET, source, None).await?;
    outln!(
        "2/6 Intake into `{}` in {:.1} s",
        context.db_target(),
        step.elapsed().as_secs_f64()
    );

    let step = Instant::now();
    let report = caption_run(&store, &plan, DATASET, RUN, text.clone(), context).await?;
    outln!(
        "3/6 Wolf captions in {:.1} s (run `{RUN}`):",
        step.elapsed().as_secs_f64()
    );
    caption::print_report(RUN, &report);
    let long_report = multi_shot(&store, &plan, &text, &out, args.seed, context).await?;

    let step = Instant::now();
    let embedder = plan.score.embedder.as_str();
    let (run_id, settings, summary) = score_run_with_truth(&store, &plan, RUN, &world)
        .await
        .with_context(|| format!("scoring with the demo config's `{embedder}` embedder"))?;
    for line in summary.lines(&settings) {
        outln!("{line}");
    }
    let lines: Vec<ReportLine> = report_lines(&store.scores(Some(DATASET)).await?)
        .into_iter()
        .filter(|l| l.run == RUN)
        .collect();
    let words = mean_words(&store.captions(run_id, None).await?);
    outln!(
        "5/6 Scores against the world's truth and reference captions (`{embedder}` embedding similarity, the classic metrics{}), in {:.1} s (`wolf report` prints them all):",
        match &plan.score.judge {
            Some(judge) => format!(", CapScore judged by `{judge}`"),
            None => String::new(),
        },
        step.elapsed().as_secs_f64()
    );
    out!("{}", source_table(&lines, &words, WOLF_SOURCE));
    for line in beats_lines(&lines, WOLF_SOURCE, &["truth_f1", "embed_sim"]) {
        outln!("  {line}");
    }

    let step = Instant::now();
    let site = wolf_leaderboard::site::BuildOptions {
        out: out.join("site"),
        thumbnails: true,
        threads: 0,
        board: plan.leaderboard.clone(),
        videos: true,
    };
    let index = leaderboard::build_site(&store, &site).await?;
    outln!(
        "6/6 Leaderboard built in {:.1} s (`wolf leaderboard serve` serves it live, with submissions)",
        step.elapsed().as_secs_f64()
    );
    outln!(
        "Done in {:.1} s. `wolf export --run {RUN}` prints every caption; the references are in {}.",
        started.elapsed().as_secs_f64(),
        annotations.display()
    );
    outln!("Leaderboard page: {}", index.display());
    Ok(Outcome::failed_if(
        intake == Outcome::SomeFailed || !report.complete() || !long_report.complete(),
    ))
}

/// Step 4: a few multi-shot clips, cut at their shots into segments and captioned
/// segment by segment, with their dense and shot-boundary scores.
async fn multi_shot(
    store: &Store,
    plan: &Plan,
    text: &str,
    out: &Path,
    seed: u64,
    context: &Context,
) -> anyhow::Result<RunReport> {
    let (name, run, clips, scenes, max_seconds) = SHOTS;
    let step = Instant::now();
    let world = out.join("world-shots");
    let mut settings = wolf_datasets::synth::SynthSettings::new(clips, seed);
    settings.shots = scenes;
    synth::render(&world, settings, context).await?;
    let annotations = world.join("annotations.json");
    let source = (
        world.as_path(),
        Some(annotations.as_path()),
        &Default::default(),
    );
    dataset::add(store, context, name, source, None).await?;
    let mut plan = plan.clone();
    plan.segments.max_seconds = max_seconds;
    let text = format!("{text}\n# `wolf demo`: [segments] max_seconds = {max_seconds}\n");
    let report = caption_run(store, &plan, name, run, text, context).await?;
    let (run_id, _, _) = score_run_with_truth(store, &plan, run, &world).await?;
    let segments: usize = store
        .captions(run_id, Some(WOLF_SOURCE))
        .await?
        .iter()
        .map(|c| c.segments.as_ref().map_or(1, Vec::len))
        .sum();
    let lines = report_lines(&store.scores(Some(name)).await?);
    let mean = |metric: &str| {
        let line = lines
            .iter()
            .find(|l| l.source == WOLF_SOURCE && l.metric == metric);
        line.and_then(|l| l.mean)
            .map_or_else(|| "-".into(), |m| format!("{m:.3}"))
    };
    outln!(
        "4/6 Long videos: {clips} clips of {scenes} scenes cut into {segments} segments (run `{run}`, `[segments] max_seconds = {max_seconds}`) in {:.1} s: dense F1 {}, dense METEOR {}, shot-boundary F1 {}; `wolf export --run {run} --format dense`",
        step.elapsed().as_secs_f64(),
        mean("dense_f1"),
        mean("dense_meteor"),
        mean("boundary_f1"),
    );
    caption::print_report(run, &report);
    Ok(report)
}

/// Captions dataset `dataset` as run `run`, drawing the run's bars.
async fn caption_run(
    store: &Store,
    plan: &Plan,
    dataset: &str,
    run: &str,
    config_text: String,
    context: &Context,
) -> anyhow::Result<RunReport> {
    let summary = store.dataset(dataset).await?;
    let counters = Arc::new(RunProgress::default());
    let _bars = caption::draw(&counters, context.show_progress);
    let options = RunOptions {
        name: run.into(),
        config_text,
        retry_failed: false,
        stop: Arc::new(AtomicBool::new(false)),
        preflight: true,
    };
    let report = wolf_pipeline::wolf::worker::caption(store, plan, &summary, options, counters);
    Ok(report.await?)
}

fn default_out() -> PathBuf {
    wolf_pipeline::home::Home::locate()
        .map(|home| home.root().join("demo"))
        .unwrap_or_else(|| PathBuf::from("wolf-demo"))
}
