//! `wolf synth --out DIR --count N --seed S`: render the synthetic world.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use wolf_datasets::synth::{self, SynthSettings, SynthSummary};
use wolf_pipeline::{process::cores, progress::Progress};

use super::{Context, Outcome, progress};

#[derive(Debug, Args)]
pub(crate) struct SynthArgs {
    /// Folder for the clips, `annotations.json` and `boxes.json`.
    #[arg(long)]
    out: PathBuf,
    /// Number of clips.
    #[arg(long, default_value_t = 40)]
    count: usize,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Clips rendered at once (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
}

pub(crate) async fn run(args: SynthArgs, context: &Context) -> anyhow::Result<Outcome> {
    let summary = render(&args.out, args.count, args.seed, args.threads, context).await?;
    outln!(
        "Rendered {} clips ({} frames) with their captions into {}.",
        summary.clips,
        summary.frames,
        args.out.display()
    );
    Ok(Outcome::Done)
}

/// Renders the world on blocking threads with a progress bar; used by the demo too.
pub(crate) async fn render(
    out: &Path,
    count: usize,
    seed: u64,
    threads: Option<usize>,
    context: &Context,
) -> anyhow::Result<SynthSummary> {
    let counts = Arc::new(Progress::new());
    let bar = progress::draw(counts.clone(), "synth", context.show_progress);
    let settings = SynthSettings {
        count,
        seed,
        threads: threads.unwrap_or_else(cores),
    };
    let out = out.to_owned();
    let summary =
        tokio::task::spawn_blocking(move || synth::generate(&out, &settings, &counts)).await?;
    drop(bar);
    Ok(summary?)
}
