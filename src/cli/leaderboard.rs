//! `wolf leaderboard build|serve`: the leaderboard pages (the `wolf-leaderboard` crate)
//! on the store, with the config's scoring for submissions.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use wolf_leaderboard::server::ServeOptions;
use wolf_leaderboard::site::{BuildOptions, build};
use wolf_leaderboard::submissions::Submissions;
use wolf_pipeline::config::Config;
use wolf_pipeline::store::Store;

use super::{Context, Outcome};

#[derive(Debug, Subcommand)]
pub(crate) enum LeaderboardCommand {
    /// Write the leaderboard as a static site (for a project website).
    Build(BuildArgs),
    /// Serve the leaderboard live, with a submission form (uploads are validated as
    /// `wolf import` validates a file, then scored with the config's `[score]`).
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// The site's folder (replaced whole when the build completes).
    #[arg(long)]
    out: PathBuf,
    /// Skip the frame thumbnails of the video pages (faster; the pages say so).
    #[arg(long)]
    no_thumbnails: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0: any free port; the URL is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// The config whose `[score]` section (judge, mode, samples, embedder) and models
    /// score submissions (default: the embedded defaults, without CapScore).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The largest caption file accepted, in bytes (at most `wolf import`'s 64 MiB).
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_upload: u64,
    /// The longest caption an upload may hold, in bytes; a longer one refuses the
    /// upload (as `wolf import --max-caption-bytes`).
    #[arg(long, default_value_t = wolf_datasets::import::MAX_CAPTION_BYTES)]
    max_caption_bytes: usize,
    /// Allows deleting entries from their pages with this token.
    #[arg(long, env = "WOLF_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Seconds between checks of the store for changes made by other processes.
    #[arg(long, default_value_t = 2.0)]
    refresh_s: f64,
}

pub(crate) async fn run(command: LeaderboardCommand, context: &Context) -> anyhow::Result<Outcome> {
    match command {
        LeaderboardCommand::Build(args) => {
            let store = context.store().await?;
            let path = build_site(&store, &args.out, !args.no_thumbnails).await?;
            outln!("Leaderboard: {}", path.display());
            Ok(Outcome::Done)
        }
        LeaderboardCommand::Serve(args) => serve(args, context).await,
    }
}

/// Builds the static site and prints what it wrote; returns its index page.
pub(crate) async fn build_site(
    store: &Store,
    out: &std::path::Path,
    thumbnails: bool,
) -> anyhow::Result<PathBuf> {
    let started = std::time::Instant::now();
    let report = build(
        store,
        &BuildOptions {
            out: out.to_path_buf(),
            thumbnails,
            threads: super::cores(),
            generated: store.now().await?,
        },
    )
    .await
    .with_context(|| format!("cannot build the leaderboard into `{}`", out.display()))?;
    tracing::info!(
        pages = report.pages,
        thumbnails = report.thumbnails,
        without_frames = report.without_frames,
        bytes = report.bytes,
        seconds = started.elapsed().as_secs_f64(),
        "Built the leaderboard."
    );
    Ok(std::fs::canonicalize(&report.index).unwrap_or(report.index))
}

async fn serve(args: ServeArgs, context: &Context) -> anyhow::Result<Outcome> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    // A named judge is checked with the plan.
    let plan = config.plan()?;
    let store = context.store().await?;
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("cannot listen on `{}`", args.addr))?;
    let addr = listener.local_addr()?;
    let submissions = Arc::new(Submissions::new(
        store.clone(),
        plan,
        args.max_caption_bytes,
    ));
    outln!("Serving the leaderboard on http://{addr}/");
    let options = ServeOptions {
        max_upload: args.max_upload.min(wolf_datasets::import::MAX_BYTES),
        admin_token: args.admin_token.filter(|t| !t.is_empty()),
        refresh: Duration::from_secs_f64(args.refresh_s.max(0.1)),
    };
    wolf_leaderboard::server::serve(listener, store, submissions, options, shutdown()).await?;
    Ok(Outcome::Done)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("Stopping the leaderboard server.");
}
