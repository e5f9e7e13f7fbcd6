//! `wolf demo`: the embedded default end to end. It renders the synthetic world,
//! registers it as a dataset, runs the Wolf method over it with `examples/demo.toml`
//! (the fixture captioners and the pack's LLM), prints each source's scores against the
//! world's reference captions, builds the leaderboard site and prints where its index
//! page is.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use wolf_pipeline::config::{Choices, Config};
use wolf_pipeline::wolf::WOLF_SOURCE;
use wolf_pipeline::wolf::runner::{RunOptions, RunProgress};
use wolf_scorer::report::{ReportLine, beats_lines, mean_words, report_lines, source_table};
use wolf_scorer::run::{ScoreSettings, score_items};

use super::{Context, Outcome, caption, dataset, leaderboard, synth};

/// The demo's config, compiled in so that the demo runs from any folder.
const DEMO_CONFIG: &str = include_str!("../../examples/demo.toml");

/// The dataset name the demo registers.
const DATASET: &str = "synthetic-world";

/// The run name the demo uses.
const RUN: &str = "demo";

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
        "1/5 Synthetic world: {} clips, {} frames, in {:.1} s -> {}",
        rendered.clips,
        rendered.frames,
        step.elapsed().as_secs_f64(),
        world.display()
    );

    let step = Instant::now();
    let store = context.store().await?;
    let annotations = world.join("annotations.json");
    let intake = dataset::add(&store, context, DATASET, &world, Some(&annotations), None).await?;
    outln!(
        "2/5 Intake into `{}` in {:.1} s",
        context.db_target(),
        step.elapsed().as_secs_f64()
    );

    let step = Instant::now();
    let summary = store.dataset(DATASET).await?;
    let counters = Arc::new(RunProgress::default());
    let report = {
        let _bars = caption::draw(&counters, context.show_progress);
        wolf_pipeline::wolf::worker::caption(
            &store,
            &plan,
            &summary,
            RunOptions {
                name: RUN.into(),
                config_text: text.clone(),
                retry_failed: false,
                stop: Arc::new(AtomicBool::new(false)),
                preflight: true,
            },
            counters.clone(),
        )
        .await?
    };
    outln!(
        "3/5 Wolf captions in {:.1} s (run `{RUN}`):",
        step.elapsed().as_secs_f64()
    );
    caption::print_report(RUN, &report);

    let step = Instant::now();
    let run = store.run(RUN).await?;
    let items = store.scoring_items(run.id).await?;
    let embedder = plan.score.embedder.as_str();
    let settings =
        ScoreSettings::from_config(&plan.score).with_truth_of(&world.display().to_string());
    let summary = score_items(&store, &plan, &items, &settings)
        .await
        .with_context(|| format!("scoring with the demo config's `{embedder}` embedder"))?;
    for line in summary.lines(&settings) {
        outln!("{line}");
    }
    let lines: Vec<ReportLine> = report_lines(&store.scores(Some(DATASET)).await?)
        .into_iter()
        .filter(|l| l.run == RUN)
        .collect();
    let words = mean_words(&store.captions(run.id, None).await?);
    outln!(
        "4/5 Scores against the world's truth and reference captions (`{embedder}` embedding similarity, the classic metrics{}), in {:.1} s (`wolf report` prints them all):",
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
        "5/5 Leaderboard built in {:.1} s (`wolf leaderboard serve` serves it live, with submissions)",
        step.elapsed().as_secs_f64()
    );
    outln!(
        "Done in {:.1} s. `wolf export --run {RUN}` prints every caption; the references are in {}.",
        started.elapsed().as_secs_f64(),
        annotations.display()
    );
    outln!("Leaderboard page: {}", index.display());
    Ok(Outcome::failed_if(
        intake == Outcome::SomeFailed || !report.complete(),
    ))
}

fn default_out() -> PathBuf {
    wolf_pipeline::home::Home::locate()
        .map(|home| home.root().join("demo"))
        .unwrap_or_else(|| PathBuf::from("wolf-demo"))
}
