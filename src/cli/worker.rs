//! `wolf worker` (work on queued runs' videos, on any machine that reaches the database)
//! and `wolf run status` (a run's progress across workers). DESIGN.md "Several
//! machines"; the queue itself is `wolf_pipeline::store::queue`.
//!
//! A worker claims videos in batches, runs each video's stages with the run's stored
//! config (its `[models]` replaced by the worker's own with `--config`), and commits the
//! video's captions and stage states with the item in one transaction, while it holds
//! the lease. A heartbeat extends its leases; every worker also reaps expired ones.
//! Database errors are retried: a worker that loses its connection waits and goes on,
//! and a commit that comes after the lease was lost writes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use tracing::{info, warn};
use wolf_pipeline::config::{Config, Plan};
use wolf_pipeline::models::ModelConfig;
use wolf_pipeline::store::{Claim, JobCommit, QueueSettings, QueueStatus, Store};
use wolf_pipeline::wolf::run::{RunProgress, Runner};

use super::{Context, Outcome};

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// This machine's model entries (`[models]`): they replace the run's stored ones,
    /// and a run that needs a model this file lacks is left to other workers.
    /// Default: the run's stored config as it is.
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
}

#[derive(Debug, Subcommand)]
pub(crate) enum RunCommand {
    /// A run's progress across workers: done, in flight by lease owner, retrying,
    /// quarantined with the last error, failed stages.
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
    #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
    format: StatusFormat,
}

/// What one worker did, printed when it stops.
#[derive(Debug, Default)]
struct Tally {
    done: u64,
    skipped: u64,
    failed_attempts: u64,
    quarantined: u64,
    released: u64,
    lost: u64,
}

/// How one claimed video ended.
enum Ended {
    Committed {
        commit: JobCommit,
        skipped: bool,
        /// The failure was the last attempt allowed.
        quarantined: bool,
    },
    Released,
    Lost,
}

/// A run this worker can serve, or why not.
type Served = Result<Arc<Runner>, String>;

/// The ids of the items this worker is working on.
type Held = Arc<std::sync::Mutex<HashSet<i64>>>;

fn lock(held: &Held) -> std::sync::MutexGuard<'_, HashSet<i64>> {
    held.lock().unwrap_or_else(|e| e.into_inner())
}

/// An item in flight, for as long as its task lives: dropped when the task ends, even
/// by a panic, so that the heartbeat lets the lease of a lost video expire.
struct Holding {
    held: Held,
    id: i64,
}

impl Holding {
    fn new(held: &Held, id: i64) -> Self {
        lock(held).insert(id);
        Self {
            held: held.clone(),
            id,
        }
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        lock(&self.held).remove(&self.id);
    }
}

pub(crate) async fn worker(args: WorkerArgs, context: &Context) -> anyhow::Result<Outcome> {
    let store = context.store().await?;
    let owner = args.name.clone().unwrap_or_else(default_owner);
    let settings = QueueSettings {
        lease_ms: (args.lease_secs * 1000.0).max(100.0) as i64,
        max_attempts: args.max_attempts.max(1),
        backoff_ms: (args.backoff_secs * 1000.0).max(0.0) as i64,
        max_backoff_ms: 300_000,
    };
    let models = match &args.config {
        Some(path) => Some(Config::load(path)?.plan()?.models),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_signals(stop.clone()));
    // The items in flight: the heartbeat extends only these leases.
    let held: Held = Arc::default();
    let beat = tokio::spawn(heartbeat(
        store.clone(),
        owner.clone(),
        settings,
        held.clone(),
    ));
    info!(owner = %owner, concurrency = args.concurrency, "Worker started.");

    let poll = Duration::from_secs_f64(args.poll_secs.max(0.01));
    let mut runners: HashMap<i64, Served> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut tally = Tally::default();
    let mut db_down = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let serving = match refresh(&store, &mut runners, &args, models.as_ref(), &stop).await {
            Ok(serving) => serving,
            Err(e) => {
                db_down += 1;
                warn!(error = %e, "Cannot read the queue; retrying.");
                wait_or_join(&mut tasks, &mut tally, retry_delay(db_down)).await;
                continue;
            }
        };
        let free = args.concurrency.max(1).saturating_sub(tasks.len());
        let claims = match store.claim(&owner, &serving, free, &settings).await {
            Ok(claims) => {
                db_down = 0;
                claims
            }
            Err(e) => {
                db_down += 1;
                warn!(error = %e, "Cannot claim; retrying.");
                wait_or_join(&mut tasks, &mut tally, retry_delay(db_down)).await;
                continue;
            }
        };
        let claimed = claims.len();
        for claim in claims {
            let Some(Ok(runner)) = runners.get(&claim.run_id) else {
                continue;
            };
            let job = Job {
                store: store.clone(),
                runner: runner.clone(),
                owner: owner.clone(),
                settings,
            };
            let holding = Holding::new(&held, claim.id);
            tasks.spawn(async move {
                let _holding = holding;
                job.run(claim).await
            });
        }
        if claimed > 0 && tasks.len() < args.concurrency.max(1) {
            continue;
        }
        if claimed == 0 && tasks.is_empty() && args.exit_when_idle {
            match store.queue_open(&serving).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => warn!(error = %e, "Cannot read the queue; retrying."),
            }
        }
        wait_or_join(&mut tasks, &mut tally, poll).await;
    }
    // Stopping: the runners share `stop`, so in-flight videos stop at their next stage;
    // what finished commits, the rest is released.
    while let Some(done) = tasks.join_next().await {
        count(&mut tally, done);
    }
    beat.abort();
    watcher.abort();
    println!(
        "worker `{owner}`: {} videos done ({} already done), {} failed attempts, {} quarantined, {} released, {} leases lost",
        tally.done,
        tally.skipped,
        tally.failed_attempts,
        tally.quarantined,
        tally.released,
        tally.lost
    );
    Ok(if tally.quarantined > 0 {
        Outcome::SomeFailed
    } else {
        Outcome::Done
    })
}

/// One claimed video: run it, then commit (or release) it.
struct Job {
    store: Store,
    runner: Arc<Runner>,
    owner: String,
    settings: QueueSettings,
}

impl Job {
    async fn run(self, claim: Claim) -> Ended {
        let video = match self.store.video_by_id(claim.video_id).await {
            Ok(video) => video,
            Err(e) => {
                warn!(item = claim.id, error = %e, "Cannot read the claimed video.");
                return self.release(&claim).await;
            }
        };
        let job = match self.runner.job(&video).await {
            Ok(job) => job,
            Err(e) => {
                warn!(video = %video.key, error = %e, "Cannot read the video's stages.");
                return self.release(&claim).await;
            }
        };
        let infrastructure = job
            .first_error
            .as_ref()
            .is_some_and(|(kind, _)| kind.starts_with("db_"));
        if job.stopped || infrastructure {
            // Not the video's fault: its attempt does not count.
            return self.release(&claim).await;
        }
        let commit = match job.first_error {
            None => JobCommit::Done,
            Some((kind, message)) => JobCommit::Failed { kind, message },
        };
        let finished = self
            .retrying(&video.key, || {
                self.store
                    .finish_claim(&claim, &self.owner, &job.writes, &commit, &self.settings)
            })
            .await;
        match finished {
            Some(true) => {
                let quarantined = matches!(commit, JobCommit::Failed { .. })
                    && claim.attempts >= self.settings.max_attempts;
                Ended::Committed {
                    commit,
                    skipped: job.skipped,
                    quarantined,
                }
            }
            Some(false) => {
                warn!(video = %video.key, "The lease was lost before the commit; nothing written.");
                Ended::Lost
            }
            None => Ended::Lost,
        }
    }

    /// Gives the item back unfinished; the attempt does not count.
    async fn release(&self, claim: &Claim) -> Ended {
        let what = format!("item {}", claim.id);
        match self
            .retrying(&what, || self.store.release_claim(claim, &self.owner))
            .await
        {
            Some(true) => Ended::Released,
            _ => Ended::Lost,
        }
    }

    /// Runs a write until the database answers, for as long as the lease could last;
    /// None when it never did (the lease then expires, and the reaper requeues it).
    async fn retrying<F, Fut>(&self, what: &str, write: F) -> Option<bool>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<bool, wolf_pipeline::store::StoreError>>,
    {
        let patience = Duration::from_millis(2 * self.settings.lease_ms.max(0) as u64)
            + Duration::from_secs(60);
        let started = std::time::Instant::now();
        let mut failures = 0;
        loop {
            match write().await {
                Ok(held) => return Some(held),
                Err(e) if started.elapsed() > patience => {
                    warn!(what, error = %e, "Giving up a write; the lease will expire.");
                    return None;
                }
                Err(e) => {
                    failures += 1;
                    warn!(what, error = %e, "Cannot write to the database; retrying.");
                    tokio::time::sleep(retry_delay(failures)).await;
                }
            }
        }
    }
}

/// Loads the runs with queued videos that this worker has not seen; returns the ids of
/// those it serves.
async fn refresh(
    store: &Store,
    runners: &mut HashMap<i64, Served>,
    args: &WorkerArgs,
    models: Option<&BTreeMap<String, ModelConfig>>,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Vec<i64>> {
    for (id, name, config) in store.queued_runs().await? {
        if runners.contains_key(&id) || (!args.runs.is_empty() && !args.runs.contains(&name)) {
            continue;
        }
        let served = plan_for(&config, models)
            .and_then(|plan| {
                Runner::new(
                    store,
                    &plan,
                    &plan.wolf,
                    id,
                    stop.clone(),
                    Arc::new(RunProgress::default()),
                )
                .map_err(anyhow::Error::from)
            })
            .map(Arc::new)
            .map_err(|e| format!("{e:#}"));
        match &served {
            Ok(_) => info!(run = %name, "Serving a run."),
            Err(e) => warn!(run = %name, reason = %e, "Leaving a run to other workers."),
        }
        runners.insert(id, served);
    }
    Ok(runners
        .iter()
        .filter(|(_, served)| served.is_ok())
        .map(|(id, _)| *id)
        .collect())
}

/// The run's stored config, with this worker's models when it has its own.
fn plan_for(
    config_text: &str,
    models: Option<&BTreeMap<String, ModelConfig>>,
) -> anyhow::Result<Plan> {
    let config = Config::parse(config_text).map_err(|e| anyhow::anyhow!("stored config: {e}"))?;
    let mut plan = config.plan()?;
    if let Some(models) = models {
        plan.models = models.clone();
    }
    plan.wolf.validate(&plan)?;
    Ok(plan)
}

/// Waits for a video to finish or for `delay`, whichever comes first.
async fn wait_or_join(tasks: &mut tokio::task::JoinSet<Ended>, tally: &mut Tally, delay: Duration) {
    if tasks.is_empty() {
        tokio::time::sleep(delay).await;
        return;
    }
    tokio::select! {
        Some(done) = tasks.join_next() => count(tally, done),
        () = tokio::time::sleep(delay) => {}
    }
    while let Some(done) = tasks.try_join_next() {
        count(tally, done);
    }
}

fn count(tally: &mut Tally, done: Result<Ended, tokio::task::JoinError>) {
    match done {
        Ok(Ended::Committed {
            commit: JobCommit::Done,
            skipped,
            ..
        }) => {
            tally.done += 1;
            tally.skipped += u64::from(skipped);
        }
        Ok(Ended::Committed { quarantined, .. }) => {
            tally.failed_attempts += 1;
            tally.quarantined += u64::from(quarantined);
        }
        Ok(Ended::Released) => tally.released += 1,
        Ok(Ended::Lost) => tally.lost += 1,
        Err(e) => {
            // The lease expires and another attempt comes.
            warn!(error = %e, "A video task panicked.");
            tally.lost += 1;
        }
    }
}

/// Extends the leases of the items in flight every third of a lease, and returns
/// expired leases (anyone's) to the queue.
async fn heartbeat(store: Store, owner: String, settings: QueueSettings, held: Held) {
    let period = Duration::from_millis((settings.lease_ms / 3).max(50) as u64);
    loop {
        tokio::time::sleep(period).await;
        let ids: Vec<i64> = lock(&held).iter().copied().collect();
        if let Err(e) = store.heartbeat(&owner, &ids, settings.lease_ms).await {
            warn!(error = %e, "Cannot extend the leases; retrying.");
            continue;
        }
        match store.reap(&settings).await {
            Ok((0, 0)) => {}
            Ok((requeued, quarantined)) => {
                info!(requeued, quarantined, "Reaped expired leases.")
            }
            Err(e) => warn!(error = %e, "Cannot reap expired leases."),
        }
    }
}

async fn watch_signals(stop: Arc<AtomicBool>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminated => {}
    }
    eprintln!(
        "Stopping: no new video is claimed; in-flight ones stop at their next stage, finished ones commit and the rest go back to the queue."
    );
    stop.store(true, Ordering::Relaxed);
}

/// 0.5 s, doubling up to 8 s.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(500 << failures.clamp(1, 5).saturating_sub(1))
}

fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

pub(crate) async fn run_command(command: RunCommand, context: &Context) -> anyhow::Result<Outcome> {
    let RunCommand::Status(args) = command;
    let store = context.store().await?;
    let status = store
        .queue_status(&args.run)
        .await
        .with_context(|| format!("the queue of run `{}`", args.run))?;
    match args.format {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        StatusFormat::Table => print_status(&status),
    }
    Ok(Outcome::Done)
}

fn print_status(status: &QueueStatus) {
    let c = &status.count;
    let total = c.pending + c.running + c.done + c.quarantined;
    println!(
        "run `{}`: {total} videos queued: {} done, {} running, {} pending ({} retrying), {} quarantined; {} failed stages",
        status.run,
        c.done,
        c.running,
        c.pending,
        status.retrying,
        c.quarantined,
        status.failed_stages
    );
    for owner in &status.owners {
        println!(
            "  in flight: {:<32} {:>6} videos, next lease expiry in {:.1} s",
            owner.owner,
            owner.items,
            owner.expires_in_ms as f64 / 1000.0
        );
    }
    for q in &status.quarantined {
        println!(
            "  quarantined: {} after {} attempts: {}: {}",
            q.video,
            q.attempts,
            q.error_kind.as_deref().unwrap_or("?"),
            q.error_message.as_deref().unwrap_or("")
        );
    }
}
