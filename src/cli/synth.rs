//! `wolf synth --out DIR --count N --seed S [--shots K | --minutes M]`: render the world.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use wolf_datasets::synth::{self, SynthSettings, SynthSummary};
use wolf_pipeline::progress::Progress;

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
    /// Scenes a clip, joined by cuts and dissolves (writes `shots.json` and `dense.json`).
    #[arg(long, default_value_t = 1)]
    shots: usize,
    /// Long clips of about this many minutes, scenes joined as with `--shots`.
    #[arg(long, conflicts_with = "shots")]
    minutes: Option<u32>,
}

pub(crate) async fn run(args: SynthArgs, context: &Context) -> anyhow::Result<Outcome> {
    let mut settings = SynthSettings::new(args.count, args.seed);
    settings.threads = args.threads.unwrap_or(settings.threads);
    (settings.shots, settings.minutes) = (args.shots, args.minutes);
    let summary = render(&args.out, settings, context).await?;
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
    settings: SynthSettings,
    context: &Context,
) -> anyhow::Result<SynthSummary> {
    let counts = Arc::new(Progress::new());
    let bar = progress::draw(counts.clone(), "synth", context.show_progress);
    let out = out.to_owned();
    let summary =
        tokio::task::spawn_blocking(move || synth::generate(&out, &settings, &counts)).await?;
    drop(bar);
    Ok(summary?)
}
