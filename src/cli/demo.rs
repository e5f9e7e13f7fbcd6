//! `wolf demo`: the embedded default end to end. It renders the synthetic world,
//! registers it as a dataset and samples every clip's frames with `examples/demo.toml`,
//! then prints a summary of each step and where its outputs are.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use tokio::sync::Semaphore;
use wolf_pipeline::config::{Config, Plan};
use wolf_pipeline::store::VideoStatus;

use super::{Context, Outcome, cores, dataset, frames, synth};

/// The demo's config, compiled in so that the demo runs from any folder.
const DEMO_CONFIG: &str = include_str!("../../examples/demo.toml");

/// The dataset name the demo registers.
const DATASET: &str = "synthetic-world";

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Folder for the world and the frames. Default: `.wolf/demo` in the checkout.
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
    let plan = match &args.config {
        Some(path) => Config::load(path)?.plan()?,
        None => Config::parse(DEMO_CONFIG)
            .map_err(anyhow::Error::msg)
            .context("the embedded demo config")?
            .plan()?,
    };
    let out = args.out.clone().unwrap_or_else(default_out);
    let world = out.join("world");
    let started = Instant::now();

    let step = Instant::now();
    let rendered = synth::render(&world, args.count, args.seed, None, context).await?;
    println!(
        "1/3 Synthetic world: {} clips, {} frames, in {:.1} s -> {}",
        rendered.clips,
        rendered.frames,
        step.elapsed().as_secs_f64(),
        world.display()
    );

    let step = Instant::now();
    let store = context.store().await?;
    let annotations = world.join("annotations.json");
    let intake = dataset::add(&store, context, DATASET, &world, Some(&annotations), None).await?;
    println!(
        "2/3 Intake into `{}` in {:.1} s",
        context.db_target(),
        step.elapsed().as_secs_f64()
    );

    let step = Instant::now();
    let summary = store.dataset(DATASET).await?;
    let videos: Vec<_> = store
        .videos(summary.id)
        .await?
        .into_iter()
        .filter(|v| v.status == VideoStatus::Ok)
        .collect();
    let frames_dir = out.join("frames");
    let sampled = sample_all(&videos, &frames_dir, plan).await?;
    println!(
        "3/3 Frames: {} frames from {} clips ({:.1} per clip) in {:.1} s -> {}",
        sampled,
        videos.len(),
        sampled as f64 / videos.len().max(1) as f64,
        step.elapsed().as_secs_f64(),
        frames_dir.display()
    );
    println!(
        "Done in {:.1} s. The world's reference captions are in {}; `wolf dataset show {DATASET}` describes the dataset.",
        started.elapsed().as_secs_f64(),
        annotations.display()
    );
    Ok(intake)
}

fn default_out() -> PathBuf {
    wolf_pipeline::home::Home::locate()
        .map(|home| home.root().join("demo"))
        .unwrap_or_else(|| PathBuf::from("wolf-demo"))
}

/// Samples every video's frames into `dir/<key without extension>/`, one video per core
/// at a time; returns the number of frames written.
async fn sample_all(
    videos: &[wolf_pipeline::store::VideoRow],
    dir: &Path,
    plan: Plan,
) -> anyhow::Result<usize> {
    let permits = Arc::new(Semaphore::new(cores()));
    let plan = Arc::new(plan);
    let mut tasks = tokio::task::JoinSet::new();
    for video in videos {
        let permit = permits.clone().acquire_owned().await?;
        let (path, plan) = (PathBuf::from(&video.path), plan.clone());
        let out = dir.join(Path::new(&video.key).with_extension(""));
        tasks.spawn_blocking(move || {
            let _permit = permit;
            // One clip per core at a time, so one decoding thread each.
            frames::write_frames(&path, &out, &plan, 1).map(|index| index.frames.len())
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done??;
    }
    Ok(total)
}
