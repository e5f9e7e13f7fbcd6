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
use wolf_pipeline::config::{Choices, Config};
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
    /// Put the clips into the site (`media/`: hard links, else copies) so that video
    /// pages play them.
    #[arg(long)]
    with_videos: bool,
    #[command(flatten)]
    ranking: RankingArgs,
}

/// How entries are ranked: the config's `[leaderboard]`, and the flag over it.
#[derive(Debug, Args)]
pub(crate) struct RankingArgs {
    /// The config whose `[leaderboard]` section (primary metric, least coverage) ranks
    /// entries; `serve` also scores submissions with its `[score]` (default: the
    /// embedded defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The least share of a dataset's videos an entry must caption to be ranked
    /// (default 1: every readable video); entries below are listed apart.
    #[arg(long)]
    min_coverage: Option<f64>,
}

impl RankingArgs {
    fn plan(&self) -> anyhow::Result<wolf_pipeline::config::Plan> {
        Ok(
            Config::load_or_default(self.config.as_deref())?.plan_with(&Choices {
                min_coverage: self.min_coverage,
                ..Choices::default()
            })?,
        )
    }
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0: any free port; the URL is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    #[command(flatten)]
    ranking: RankingArgs,
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
    /// Seconds a client may take to send a request's headers before it is disconnected.
    #[arg(long, default_value_t = 10.0)]
    header_timeout_s: f64,
    /// Connections served at once (more wait until one ends).
    #[arg(long, default_value_t = 512)]
    max_connections: usize,
}

pub(crate) async fn run(command: LeaderboardCommand, context: &Context) -> anyhow::Result<Outcome> {
    match command {
        LeaderboardCommand::Build(args) => {
            let plan = args.ranking.plan()?;
            let options = BuildOptions {
                out: args.out,
                thumbnails: !args.no_thumbnails,
                threads: 0,
                board: plan.leaderboard.clone(),
                videos: args.with_videos,
            };
            let index = build_site(&context.store().await?, &options).await?;
            outln!("Leaderboard: {}", index.display());
            Ok(Outcome::Done)
        }
        LeaderboardCommand::Serve(args) => serve(args, context).await,
    }
}

/// Builds the static site; returns its index page.
pub(crate) async fn build_site(store: &Store, options: &BuildOptions) -> anyhow::Result<PathBuf> {
    let report = build(store, options).await.with_context(|| {
        format!(
            "cannot build the leaderboard into `{}`",
            options.out.display()
        )
    })?;
    Ok(report.index)
}

async fn serve(args: ServeArgs, context: &Context) -> anyhow::Result<Outcome> {
    // A named judge is checked with the plan.
    let plan = args.ranking.plan()?;
    let board = plan.leaderboard.clone();
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
        board,
        header_timeout: Duration::from_secs_f64(args.header_timeout_s.max(0.1)),
        max_connections: args.max_connections.max(1),
    };
    wolf_leaderboard::server::serve(listener, store, submissions, options, async {
        wolf_pipeline::process::interrupted().await;
        tracing::info!("Stopping the leaderboard server.");
    })
    .await?;
    Ok(Outcome::Done)
}
