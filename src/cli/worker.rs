//! `wolf worker` (queued runs' videos, on any machine that reaches the database:
//! `wolf_pipeline::wolf::worker`) and `wolf run status` (a run's progress).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use wolf_pipeline::config::Config;
use wolf_pipeline::metrics;
use wolf_pipeline::store::QueueSettings;
use wolf_pipeline::wolf::runner::RunProgress;
use wolf_pipeline::wolf::worker::{Serve, WorkerOptions, default_owner, work};

use super::{Context, Outcome, PreflightArgs};

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// This machine's `[models]`, replacing the run's stored ones (default: those as they
    /// are); a run that needs a model this file lacks is left to other workers.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Videos in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Work only on this run (repeatable). Default: every run with queued videos.
    #[arg(long = "run")]
    runs: Vec<String>,
    /// Seconds a claim holds without a heartbeat (the heartbeat runs every third).
    #[arg(long, default_value_t = 60.0)]
    lease_secs: f64,
    /// Attempts after which a video is quarantined with its last error.
    #[arg(long, default_value_t = 3)]
    max_attempts: i64,
    /// The first retry's delay in seconds; it doubles with each attempt (at most 300).
    #[arg(long, default_value_t = 2.0)]
    backoff_secs: f64,
    /// Exit once the runs it serves have nothing pending or running.
    #[arg(long)]
    exit_when_idle: bool,
    /// The lease owner's name (default: HOSTNAME:PID).
    #[arg(long)]
    name: Option<String>,
    /// Seconds between looks at an empty queue.
    #[arg(long, default_value_t = 1.0)]
    poll_secs: f64,
    /// Poll only: no LISTEN for enqueued runs (a transaction-mode PgBouncer drops it).
    #[arg(long)]
    no_listen: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    preflight: PreflightArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RunCommand {
    /// A run's progress across workers: done, in flight by owner, retrying, quarantined.
    Status(RunStatusArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatusFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct RunStatusArgs {
    /// The run (`wolf caption --run`).
    run: String,
    /// `table` for people, `json` for programs.
    #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
    format: StatusFormat,
    /// Redraw every SECS seconds (default 2) until the run is drained or Ctrl-C.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2")]
    watch: Option<f64>,
}

pub(crate) async fn worker(args: WorkerArgs, context: &Context) -> anyhow::Result<Outcome> {
    let store = context.store().await?;
    let config = args.config.as_deref().map(Config::load).transpose()?;
    let models = config.map(|c| c.file_models()).transpose()?;
    let options = WorkerOptions {
        owner: args.name.clone().unwrap_or_else(default_owner),
        concurrency: args.concurrency,
        serve: Serve::Queued {
            runs: args.runs.clone(),
            models,
        },
        queue: QueueSettings {
            lease_ms: (args.lease_secs * 1000.0).max(100.0) as i64,
            max_attempts: args.max_attempts.max(1),
            backoff_ms: (args.backoff_secs * 1000.0).max(0.0) as i64,
            max_backoff_ms: 300_000,
        },
        exit_when_idle: args.exit_when_idle,
        poll: Duration::from_secs_f64(args.poll_secs.max(0.01)),
        listen: !args.no_listen,
        preflight: args.preflight.enabled(),
    };
    let (stop, watcher) = super::stop_on_signal(
        "Stopping: no new video is claimed; in-flight ones stop at their next stage, finished ones commit and the rest go back to the queue.",
    );
    let counters = Arc::new(RunProgress::default());
    let mut _serving = None;
    if let Some(addr) = args.metrics_addr {
        let (bound, serving) = metrics::serve(addr, counters.metrics.clone())
            .await
            .with_context(|| format!("cannot serve metrics at {addr}"))?;
        super::progress::eprintln(format_args!("metrics: http://{bound}/metrics"));
        _serving = Some(serving);
    }
    let tally = {
        let _bars = super::caption::draw(&counters, context.show_progress);
        work(&store, &options, stop, counters.clone()).await
    };
    watcher.abort();
    let tally = tally?;
    outln!(
        "worker `{}`: {} videos done ({} already done), {} failed attempts, {} quarantined, {} released, {} leases lost",
        options.owner,
        tally.done,
        tally.skipped,
        tally.failed_attempts,
        tally.quarantined,
        tally.released,
        tally.lost
    );
    for line in tally.failures.lines() {
        outln!("{line}");
    }
    Ok(Outcome::failed_if(tally.quarantined > 0))
}

pub(crate) async fn run_command(command: RunCommand, context: &Context) -> anyhow::Result<Outcome> {
    let RunCommand::Status(args) = command;
    let store = context.store().await?;
    loop {
        let status = store
            .queue_status(&args.run)
            .await
            .with_context(|| format!("the queue of run `{}`", args.run))?;
        if args.watch.is_some() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            // A terminal: clear it and redraw from the top.
            out!("\x1b[2J\x1b[H");
        }
        match args.format {
            StatusFormat::Json => outln!("{}", serde_json::to_string_pretty(&status)?),
            StatusFormat::Table => out!("{status}"),
        }
        let Some(every) = args.watch else { break };
        if status.drained() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs_f64(every.max(0.1))) => {}
            () = wolf_pipeline::process::interrupted() => break,
        }
    }
    Ok(Outcome::Done)
}
