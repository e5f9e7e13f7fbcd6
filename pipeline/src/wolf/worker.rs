//! The queue worker: claims a run's videos under leases, runs each video's stages with
//! the run's [`Runner`], and commits the video's captions and stage states with its
//! item in one transaction while it holds the lease. DESIGN.md "Several machines"; the
//! queue itself is [`crate::store::queue`].
//!
//! `wolf worker` runs [`work`] on any machine that reaches the database; `wolf caption`
//! enqueues its run's videos and runs the same workers in process. A heartbeat extends
//! the leases of the videos in flight; every worker also reaps expired ones. Database
//! errors are retried: a worker that loses its connection waits and goes on, and a
//! commit that comes after the lease was lost writes nothing.
//!
//! Threads: the claim loop, one task per video in flight (at most `concurrency`) and the
//! heartbeat run on the caller's tokio runtime; the runner bounds decoding and models.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{info, warn};

use super::failures::{self, Failures};
use super::runner::{
    Revisit, RunError, RunOptions, RunPhase, RunProgress, RunReport, Runner, auto_in_flight,
    prepare,
};
use crate::config::{Choices, Config, ConfigError, Plan};
use crate::metrics::{ItemState, Metrics};
use crate::models::{ModelConfig, ModelSet, PreflightError};
use crate::store::{
    Claim, DatasetSummary, JobCommit, QueueSettings, StageWrite, Store, StoreError,
};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The lease owner's name (see [`default_owner`]).
    pub owner: String,
    /// Videos in flight.
    pub concurrency: usize,
    /// The runs it works on.
    pub serve: Serve,
    pub queue: QueueSettings,
    /// Return once the runs it serves have nothing pending or running.
    pub exit_when_idle: bool,
    /// The wait between looks at an empty queue.
    pub poll: Duration,
    /// Wake at once when a run is enqueued (PostgreSQL's LISTEN/NOTIFY), beside polling.
    pub listen: bool,
    /// Check the models of each run before serving it ([`Runner::preflight`]): a run
    /// queued when the worker starts fails [`work`] at once; one that comes later is
    /// left to other workers.
    pub preflight: bool,
}

/// The runs a worker works on.
#[derive(Clone)]
pub enum Serve {
    /// Every run with queued videos (or only those named), each with its stored config,
    /// its `[models]` replaced by this machine's entries when given (`wolf worker`).
    Queued {
        runs: Vec<String>,
        models: Option<BTreeMap<String, ModelConfig>>,
    },
    /// One run, with a runner built by the caller (`wolf caption`).
    Run { id: i64, runner: Arc<Runner> },
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Queued { runs, .. } => f.debug_struct("Queued").field("runs", runs).finish(),
            Self::Run { id, .. } => f.debug_struct("Run").field("id", id).finish(),
        }
    }
}

/// Why a worker does not serve a run (it is left to other workers).
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error("stored config")]
    Stored(#[source] ConfigError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Preflight(#[from] PreflightError),
}

/// What one worker did.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Videos committed done (those found done already included).
    pub done: u64,
    /// Videos found done already: nothing ran.
    pub skipped: u64,
    /// Attempts that failed (the video goes back to the queue, or to quarantine).
    pub failed_attempts: u64,
    /// Videos quarantined after their last attempt.
    pub quarantined: u64,
    /// Videos given back unfinished (a stop request, the database away).
    pub released: u64,
    /// Videos whose lease was lost before their commit.
    pub lost: u64,
    /// Stages failed in the failed attempts.
    pub failed_stages: u64,
    /// Model requests made (not cache hits).
    pub model_calls: u64,
    /// The reasons of the stages failed in the failed attempts.
    pub failures: Failures,
}

/// How one claimed video ended.
enum Ended {
    Committed {
        commit: JobCommit,
        skipped: bool,
        /// Stages that failed in this attempt.
        failed_stages: usize,
        /// The failure was the last attempt allowed.
        quarantined: bool,
        /// Why its stages failed.
        failures: Failures,
    },
    Released,
    Lost,
}

impl Ended {
    fn count_in(&self, metrics: &Metrics) {
        match self {
            Self::Committed {
                commit: JobCommit::Done,
                ..
            } => metrics.item(ItemState::Done),
            Self::Committed { quarantined, .. } => {
                metrics.item(ItemState::Failed);
                if *quarantined {
                    metrics.item(ItemState::Quarantined);
                }
            }
            Self::Released => metrics.item(ItemState::Released),
            Self::Lost => metrics.item(ItemState::Lost),
        }
    }
}

/// A run this worker can serve, or why not.
type Served = Result<Arc<Runner>, ServeError>;

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

/// `wolf caption`: opens (or reopens) the run, queues its dataset's readable videos and
/// works on them with in-process workers on the same store until the queue is drained.
/// Other `wolf caption` or `wolf worker` processes on the same run share the work: each
/// video is claimed under a lease by one of them, and committed once.
///
/// A video whose stages are all recorded with today's keys is skipped without decoding;
/// a failed stage is recorded with its reason and not retried in this run (`retry_failed`
/// reruns only the videos with failed stages).
pub async fn caption(
    store: &Store,
    plan: &Plan,
    dataset: &DatasetSummary,
    options: RunOptions,
    progress: Arc<RunProgress>,
) -> Result<RunReport, RunError> {
    let started = std::time::Instant::now();
    // Before the run is opened: a model that is not ready leaves the store untouched.
    let models = ModelSet::new(plan.models.clone());
    if options.preflight {
        progress.set_phase(RunPhase::CheckingModels);
        models.preflight(&plan.wolf.model_uses(plan)).await?;
    }
    progress.set_phase(RunPhase::Working);
    let (run, runner) = prepare(
        store,
        plan,
        dataset,
        &options.name,
        &options.config_text,
        options.stop.clone(),
        progress.clone(),
    )
    .await?;
    let revisit = if options.retry_failed {
        Revisit::FailedOnly
    } else {
        Revisit::Missing
    };
    let runner = Arc::new(runner.with_models(models).with_revisit(revisit));
    let videos = store.ok_video_count(dataset.id).await?;
    progress.videos.set_total(videos as u64);
    store.enqueue(run.id, dataset.id).await?;
    let worker = WorkerOptions {
        owner: default_owner(),
        concurrency: match plan.wolf.videos_in_flight {
            0 => auto_in_flight(plan, &plan.wolf),
            n => n,
        },
        serve: Serve::Run {
            id: run.id,
            runner: runner.clone(),
        },
        // One attempt: a failed stage is recorded, and the run goes on.
        queue: QueueSettings {
            lease_ms: 60_000,
            max_attempts: 1,
            backoff_ms: 0,
            max_backoff_ms: 0,
        },
        exit_when_idle: true,
        poll: Duration::from_millis(100),
        listen: true,
        // Checked above, before the run was opened.
        preflight: false,
    };
    let tally = work(store, &worker, options.stop.clone(), progress).await?;
    // Without a stop request the workers return only when the queue is drained.
    let interrupted = options.stop.load(Ordering::Relaxed);
    let report = RunReport {
        videos,
        skipped: tally.skipped as usize,
        completed: (tally.done - tally.skipped) as usize,
        failed_stages: tally.failed_stages as usize,
        failed_stages_left: store.failed_stage_count(run.id).await? as usize,
        interrupted,
        model_calls: runner.model_calls(),
        stage_time: runner.stage_times(),
        guard_paths: guard_paths(store, run.id, super::WOLF_SOURCE).await?,
        failures: failures::of_run(store, run.id, &plan.wolf).await?,
        wall: started.elapsed(),
        run: Some(run.clone()),
    };
    let status = if report.complete() { "done" } else { "failed" };
    store.finish_run(run.id, status).await?;
    Ok(report)
}

/// A run's captions of `source` counted per guard path (`unchecked`: not guarded).
pub async fn guard_paths(
    store: &Store,
    run_id: i64,
    source: &str,
) -> Result<BTreeMap<String, usize>, StoreError> {
    let mut paths = BTreeMap::new();
    for caption in store.captions(run_id, Some(source)).await? {
        let path = caption.guard.unwrap_or_else(|| "unchecked".to_owned());
        *paths.entry(path).or_default() += 1;
    }
    Ok(paths)
}

/// Works on the queue until `stop` is set (or, with `exit_when_idle`, until the runs it
/// serves are drained); in-flight videos stop at their next stage, what finished
/// commits and the rest is released.
///
/// With [`WorkerOptions::preflight`], the runs queued when it starts are checked first,
/// and a model of theirs that is not ready is an error before anything is claimed.
pub async fn work(
    store: &Store,
    options: &WorkerOptions,
    stop: Arc<AtomicBool>,
    progress: Arc<RunProgress>,
) -> Result<Tally, PreflightError> {
    let mut runners: HashMap<i64, Served> = HashMap::new();
    if let Serve::Run { id, runner } = &options.serve {
        runners.insert(*id, Ok(runner.clone()));
    }
    if options.preflight {
        match refresh(store, &mut runners, options, &stop, &progress).await {
            Ok(_) => {}
            Err(e) => warn!(error = %e, "Cannot read the queue; retrying."),
        }
        for served in runners.values() {
            if let Err(ServeError::Preflight(e)) = served {
                return Err(e.clone());
            }
        }
    }
    let settings = options.queue;
    let owner = options.owner.clone();
    // The items in flight: the heartbeat extends only these leases.
    let held: Held = Arc::default();
    // Enqueueing wakes an idle worker at once on PostgreSQL; the poll is the fallback.
    let wakeups = if options.listen {
        store.queue_wakeups().await
    } else {
        None
    };
    let wake = wakeups.as_ref().map(|(wake, _)| Arc::clone(wake));
    let beat = tokio::spawn(heartbeat(
        store.clone(),
        owner.clone(),
        settings,
        held.clone(),
    ));
    info!(owner = %owner, concurrency = options.concurrency, "Worker started.");
    release_dead_local_owners(store).await;
    let concurrency = options.concurrency.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    let mut tally = Tally::default();
    let mut db_down = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let serving = match refresh(store, &mut runners, options, &stop, &progress).await {
            Ok(serving) => serving,
            Err(e) => {
                db_down += 1;
                warn!(error = %e, "Cannot read the queue; retrying.");
                wait_or_join(&mut tasks, &mut tally, retry_delay(db_down), None).await;
                continue;
            }
        };
        let free = concurrency.saturating_sub(tasks.len());
        let claims = match store.claim(&owner, &serving, free, &settings).await {
            Ok(claims) => {
                db_down = 0;
                claims
            }
            Err(e) => {
                db_down += 1;
                warn!(error = %e, "Cannot claim; retrying.");
                wait_or_join(&mut tasks, &mut tally, retry_delay(db_down), None).await;
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
            let progress = progress.clone();
            progress.metrics.item(ItemState::Claimed);
            let flying = progress.metrics.in_flight();
            tasks.spawn(async move {
                let _holding = (holding, flying);
                let ended = job.run(claim).await;
                if let Ended::Committed { commit, .. } = &ended {
                    progress
                        .videos
                        .finish_one(matches!(commit, JobCommit::Done));
                }
                ended.count_in(&progress.metrics);
                ended
            });
        }
        if claimed > 0 && tasks.len() < concurrency {
            continue;
        }
        if claimed == 0 && tasks.is_empty() && options.exit_when_idle {
            match store.queue_open(&serving).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => warn!(error = %e, "Cannot read the queue; retrying."),
            }
        }
        wait_or_join(&mut tasks, &mut tally, options.poll, wake.as_deref()).await;
    }
    // Stopping: the runners share `stop`, so in-flight videos stop at their next stage;
    // what finished commits, the rest is released.
    while let Some(done) = tasks.join_next().await {
        count(&mut tally, done);
    }
    beat.abort();
    if let Some((_, listener)) = wakeups {
        listener.abort();
    }
    tally.model_calls = runners
        .values()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.model_calls())
        .sum();
    Ok(tally)
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
        let mut failures = Failures::default();
        for write in &job.writes {
            if let StageWrite::Item {
                stage,
                error: Some((kind, message)),
                ..
            } = write
            {
                failures.add(kind, message, self.runner.stage_model(stage), 1);
            }
        }
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
                    failed_stages: job.failed_stages,
                    quarantined,
                    failures,
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
        Fut: std::future::Future<Output = Result<bool, StoreError>>,
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
    options: &WorkerOptions,
    stop: &Arc<AtomicBool>,
    progress: &Arc<RunProgress>,
) -> Result<Vec<i64>, StoreError> {
    let Serve::Queued { runs, models } = &options.serve else {
        return Ok(runners.keys().copied().collect());
    };
    for (id, name, config) in store.queued_runs().await? {
        if runners.contains_key(&id) || (!runs.is_empty() && !runs.contains(&name)) {
            continue;
        }
        let mut served = plan_for(&config, models.as_ref())
            .and_then(|plan| {
                Ok(Runner::new(
                    store,
                    &plan,
                    id,
                    stop.clone(),
                    progress.clone(),
                )?)
            })
            .map(Arc::new);
        if options.preflight
            && let Ok(runner) = &served
            && let Err(e) = runner.preflight().await
        {
            served = Err(e.into());
        }
        match &served {
            Ok(_) => info!(run = %name, "Serving a run."),
            Err(e) => {
                warn!(run = %name, reason = %crate::models::error_chain(e), "Leaving a run to other workers.")
            }
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
) -> Result<Plan, ServeError> {
    let config = Config::parse(config_text).map_err(ServeError::Stored)?;
    Ok(config.plan_with(&Choices {
        models: models.cloned(),
        wolf: true,
        ..Choices::default()
    })?)
}

/// Waits for a video to finish, for `delay`, or for `wake` (a run enqueued), whichever
/// comes first.
async fn wait_or_join(
    tasks: &mut tokio::task::JoinSet<Ended>,
    tally: &mut Tally,
    delay: Duration,
    wake: Option<&tokio::sync::Notify>,
) {
    let woken = async {
        match wake {
            Some(wake) => wake.notified().await,
            None => std::future::pending().await,
        }
    };
    if tasks.is_empty() {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = woken => {}
        }
        return;
    }
    tokio::select! {
        Some(done) = tasks.join_next() => count(tally, done),
        () = tokio::time::sleep(delay) => {}
        () = woken => {}
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
        Ok(Ended::Committed {
            quarantined,
            failed_stages,
            failures,
            ..
        }) => {
            tally.failed_attempts += 1;
            tally.failed_stages += failed_stages as u64;
            tally.quarantined += u64::from(quarantined);
            tally.failures.merge(failures);
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

/// 0.5 s, doubling up to 8 s.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(500 << failures.clamp(1, 5).saturating_sub(1))
}

/// Gives back at once the items held by processes of this machine that are gone (a
/// `wolf caption` or `wolf worker` killed with SIGKILL), instead of letting their leases
/// run out: a rerun after a crash starts on every video at once.
async fn release_dead_local_owners(store: &Store) {
    let owners = match store.lease_owners().await {
        Ok(owners) => owners,
        Err(e) => {
            warn!(error = %e, "Cannot read the lease owners.");
            return;
        }
    };
    let host = hostname();
    for owner in owners {
        let Some((owner_host, pid)) = owner.rsplit_once(':') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let gone = owner_host == host
            && pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !gone {
            continue;
        }
        match store.release_owner(&owner).await {
            Ok(0) => {}
            Ok(n) => {
                info!(owner = %owner, items = n, "Gave back the items of a process that is gone.")
            }
            Err(e) => warn!(owner = %owner, error = %e, "Cannot give back a gone process's items."),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// This process's lease owner name: HOSTNAME:PID.
pub fn default_owner() -> String {
    format!("{}:{}", hostname(), std::process::id())
}
