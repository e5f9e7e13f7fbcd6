//! The runner of one run's stages over single videos, which the queue's workers drive:
//! for each video, the stages of METHOD.md section 1 ([`super::stages`]) as far as their
//! inputs allow, each addressed by its content key (`super::keys`), so that what is
//! recorded done with today's keys is never computed again.
//!
//! Writes: each result, caption and work item is one statement or one transaction, so a
//! process killed at any moment leaves nothing half-written. A failed stage stores its
//! reason in its work item, never a caption; the stages that need it fail with
//! `dependency`; the video's other sources go on.
//!
//! Threads: at most `videos_in_flight` video tasks; frame decoding on blocking threads,
//! at most one per core; each model's concurrency is its backend's (an HTTP entry's
//! `max_concurrency`, an in-process model's queue and batch). A stop request (Ctrl-C)
//! stops starting videos and stops in-flight videos at their next stage.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;
use tracing::{Instrument, debug, info_span, warn};

use super::keys::{KeyMaker, Keys, SEGMENTS};
use super::stages::cascade::{self, ImageOutcome};
use super::stages::{self, StageError, StageResult, fusion, long, summary, video};
use super::{MotionSource, WolfConfig};
use crate::config::Plan;
use crate::hash::sha256_bytes;
use crate::media;
use crate::models::ModelSet;
use crate::progress::Progress;
use crate::store::{
    DatasetSummary, RunRow, StageWrite, Store, StoreError, StoredResult, VideoRow, VideoStatus,
};

/// How one `wolf caption` runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub name: String,
    /// The config file's text, stored with the run.
    pub config_text: String,
    /// Rerun only the videos with failed stages.
    pub retry_failed: bool,
    /// Set to stop (Ctrl-C): no new video starts, in-flight ones stop at a stage.
    pub stop: Arc<AtomicBool>,
    /// Check every model the run uses before anything else (`--no-preflight` clears
    /// it).
    pub preflight: bool,
}

/// Counters the binary draws: videos, and items per stage kind; and the run's phase.
#[derive(Debug, Default)]
pub struct RunProgress {
    pub videos: Arc<Progress>,
    pub frames: Arc<Progress>,
    pub frame_captions: Arc<Progress>,
    pub llm_calls: Arc<Progress>,
    pub video_captions: Arc<Progress>,
    /// What an operator scrapes (`wolf worker --metrics-addr`).
    pub metrics: Arc<crate::metrics::Metrics>,
    phase: AtomicU8,
}

/// What a run is doing, for a status line beside the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPhase {
    Starting = 0,
    /// The preflight: servers asked, in-process models loaded.
    CheckingModels = 1,
    /// Working on videos.
    Working = 2,
}

impl RunProgress {
    pub fn set_phase(&self, phase: RunPhase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub fn phase(&self) -> RunPhase {
        match self.phase.load(Ordering::Relaxed) {
            1 => RunPhase::CheckingModels,
            2 => RunPhase::Working,
            _ => RunPhase::Starting,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub run: Option<RunRow>,
    pub videos: usize,
    /// Videos skipped: already complete (or failed, without `--retry-failed`).
    pub skipped: usize,
    /// Videos processed to the end with every stage done.
    pub completed: usize,
    /// Stages failed in this run.
    pub failed_stages: usize,
    /// Failed stages the run holds after it: those failed now and those failed before
    /// that it did not retry (a rerun without `--retry-failed` leaves them).
    pub failed_stages_left: usize,
    /// Videos left when a stop was requested.
    pub interrupted: bool,
    /// Model requests made (not cache hits).
    pub model_calls: u64,
    /// Wall time summed per stage kind.
    pub stage_time: BTreeMap<String, Duration>,
    /// The run's fused captions per guard path (`fused`, `fused_retry`,
    /// `consensus:SOURCE`; `unchecked` with the guard off).
    pub guard_paths: BTreeMap<String, usize>,
    /// The reasons of the run's failed stages ([`RunReport::failed_stages_left`]).
    pub failures: super::failures::Failures,
    pub wall: Duration,
}

impl RunReport {
    /// Whether the run holds every stage done: it was not stopped, and no stage has
    /// failed, in this pass or an earlier one that it did not retry.
    pub fn complete(&self) -> bool {
        !self.interrupted && self.failed_stages_left == 0
    }

    /// What to do after a complete run `name`: a heading, then one command a line.
    pub fn next_steps(&self, name: &str) -> Vec<String> {
        let steps = [
            (
                format!("wolf score --run {name}"),
                "score the captions against the references",
            ),
            (
                format!("wolf export --run {name}"),
                "the captions, as JSONL",
            ),
            (
                "wolf leaderboard build --out site".to_owned(),
                "the leaderboard page, site/index.html",
            ),
        ];
        let mut lines = vec!["Next:".to_owned()];
        lines.extend(
            steps
                .iter()
                .map(|(command, what)| format!("  {command:<36} # {what}")),
        );
        lines
    }

    /// The report as the lines printed at the end of run `name`: the counts, the time
    /// per stage, the guard's paths, and why stages failed with what to do.
    pub fn lines(&self, name: &str) -> Vec<String> {
        let mut lines = vec![format!(
            "run `{name}`: {} videos, {} done now, {} skipped (already done{}), {} failed stages, {} model requests, {:.1} s",
            self.videos,
            self.completed,
            self.skipped,
            if self.failed_stages_left > 0 {
                " or failed before"
            } else {
                ""
            },
            self.failed_stages,
            self.model_calls,
            self.wall.as_secs_f64()
        )];
        for (stage, time) in &self.stage_time {
            lines.push(format!(
                "  {stage:<16} {:>8.1} s (summed over videos in flight)",
                time.as_secs_f64()
            ));
        }
        if !self.guard_paths.is_empty() {
            let paths: Vec<String> = self
                .guard_paths
                .iter()
                .map(|(path, n)| format!("{path} {n}"))
                .collect();
            lines.push(format!(
                "fused captions by guard path: {}",
                paths.join(", ")
            ));
        }
        if self.interrupted {
            lines.push("interrupted: run the same command again to finish".into());
        }
        if self.failed_stages_left > 0 {
            lines.extend(self.failures.lines());
            lines.push(format!(
                "{} failed stages remain, stored with their reasons (`wolf export --run {name} --failed`); \
                 the same `wolf caption` with `--retry-failed` redoes them",
                self.failed_stages_left
            ));
        }
        lines
    }
}

/// A run that could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Preflight(#[from] crate::models::PreflightError),
    #[error("cannot use `wolf.boxes_file` `{path}`: {message}")]
    Boxes {
        path: std::path::PathBuf,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// Everything a video task needs, shared.
pub(crate) struct Shared {
    pub store: Store,
    /// The run's plan; its `[wolf]` is the method's parts.
    pub plan: Plan,
    pub models: ModelSet,
    pub run_id: i64,
    pub decode: Semaphore,
    pub progress: Arc<RunProgress>,
    pub stop: Arc<AtomicBool>,
    pub calls: AtomicU64,
    /// Wall time per stage kind, in microseconds.
    pub times: std::sync::Mutex<BTreeMap<String, u64>>,
    /// `wolf.boxes_file`'s clips by video key.
    pub boxes: HashMap<String, serde_json::Value>,
    pub keys: KeyMaker,
    /// The shot detector of long videos, loaded on first use.
    #[cfg(feature = "onnx")]
    pub shot_model: Arc<std::sync::Mutex<Option<crate::models::onnx::ShotModel>>>,
    #[cfg(not(feature = "onnx"))]
    pub shot_model: Arc<std::sync::Mutex<Option<()>>>,
}

impl Shared {
    /// Counts the time since `since` as stage `stage`'s work with no model (decoding,
    /// the guard, shot detection).
    pub fn count_time(&self, stage: &str, since: Instant) {
        let took = self.add_time(stage, since);
        self.progress.metrics.stage(stage, None, took, None);
    }

    /// Counts one request of stage `stage` to model entry `model`, sent at `since`, with
    /// its error's kind when it failed.
    pub fn count_request(&self, stage: &str, model: &str, since: Instant, error: Option<&str>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let took = self.add_time(stage, since);
        self.progress.metrics.stage(stage, Some(model), took, error);
    }

    fn add_time(&self, stage: &str, since: Instant) -> Duration {
        let took = since.elapsed();
        let mut times = self.times.lock().unwrap_or_else(|e| e.into_inner());
        *times.entry(stage.to_owned()).or_default() += took.as_micros() as u64;
        took
    }

    fn keys(&self, video: &VideoRow) -> Keys {
        self.keys.keys(video, self.boxes.get(&video.key))
    }
}

/// Opens (or reopens) run `name` with the config's text and drops what a previous config
/// of the run had and this one has not: what `wolf caption` does before it queues the
/// videos.
#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    store: &Store,
    plan: &Plan,
    dataset: &DatasetSummary,
    name: &str,
    config_text: &str,
    stop: Arc<AtomicBool>,
    progress: Arc<RunProgress>,
) -> Result<(RunRow, Runner), RunError> {
    let config_hash = sha256_bytes(config_text.as_bytes());
    let run = store
        .open_run(name, dataset.id, config_text, &config_hash)
        .await?;
    let runner = Runner::new(store, plan, run.id, stop, progress)?;
    let mut stage_names: Vec<String> = runner
        .shared
        .keys(&placeholder_video())
        .stages()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    if plan.segments.max_seconds > 0.0 {
        stage_names.push(SEGMENTS.to_owned());
    }
    store
        .prune_run(run.id, &plan.wolf.sources(), &stage_names)
        .await?;
    Ok((run, runner))
}

/// (any stage failed, any stage still to do) for a video's recorded stages, by stage:

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Revisit {
    /// Those with stages not recorded with today's keys, or failed (a worker's retry).
    #[default]
    MissingAndFailed,
    /// Those with stages not recorded with today's keys (`wolf caption`).
    Missing,
    /// Only those with failed stages (`wolf caption --retry-failed`).
    FailedOnly,
}

/// One run's stages over single videos: what the queue's workers drive for the videos
/// they claim (`wolf caption` in process, `wolf worker` anywhere).
pub struct Runner {
    shared: Arc<Shared>,
    revisit: Revisit,
}

/// One video's job, done by [`Runner::job`] without writing its outcome.
#[derive(Debug, Default)]
pub struct VideoJob {
    /// Every stage was already done with today's keys: nothing ran.
    pub skipped: bool,
    /// The stages' outcomes, to commit with the queue item.
    pub writes: Vec<StageWrite>,
    pub failed_stages: usize,
    /// The first failed stage's (kind, message), a dependency only when nothing else.
    pub first_error: Option<(String, String)>,
    /// A stop request interrupted the video.
    pub stopped: bool,
}

impl Runner {
    /// The models and settings of run `run_id`.
    pub fn new(
        store: &Store,
        plan: &Plan,
        run_id: i64,
        stop: Arc<AtomicBool>,
        progress: Arc<RunProgress>,
    ) -> Result<Self, RunError> {
        let wolf = &plan.wolf;
        let boxes = match (&wolf.motion, &wolf.boxes_file) {
            (MotionSource::Dataset, Some(path)) => read_boxes(path)?,
            _ => HashMap::new(),
        };
        let shared = Arc::new(Shared {
            store: store.clone(),
            plan: plan.clone(),
            models: ModelSet::new(plan.models.clone()),
            run_id,
            decode: Semaphore::new(crate::process::cores()),
            progress,
            stop,
            calls: AtomicU64::new(0),
            times: Default::default(),
            boxes,
            keys: KeyMaker::new(plan),
            shot_model: Default::default(),
        });
        Ok(Self {
            shared,
            revisit: Revisit::default(),
        })
    }

    /// The runner with `models` (a set the preflight already built and checked) in
    /// place of its own, so that no model loads twice. Before the runner is shared.
    pub fn with_models(mut self, models: ModelSet) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("a runner's models are set before it is shared; this is a bug")
            .models = models;
        self
    }

    /// Checks every model the run uses ([`WolfConfig::model_uses`]), loading the
    /// in-process ones into the runner's own set.
    pub async fn preflight(&self) -> Result<(), crate::models::PreflightError> {
        let shared = &self.shared;
        let uses = shared.plan.wolf.model_uses(&shared.plan);
        shared.models.preflight(&uses).await
    }

    /// Which videos it works on again (default: [`Revisit::MissingAndFailed`]).
    pub fn with_revisit(mut self, revisit: Revisit) -> Self {
        self.revisit = revisit;
        self
    }

    /// Wall time summed per stage kind so far.
    pub fn stage_times(&self) -> BTreeMap<String, Duration> {
        self.shared
            .times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), Duration::from_micros(*v)))
            .collect()
    }

    /// Runs the stages of `video` that today's keys do not find done, and returns their
    /// outcomes instead of writing them.
    pub async fn job(&self, video: &VideoRow) -> Result<VideoJob, StoreError> {
        let shared = &self.shared;
        let keys = shared.keys(video);
        let mut recorded: HashMap<String, (String, String)> = HashMap::new();
        for (_, stage, status, key) in shared
            .store
            .work_item_states(shared.run_id, &[video.id])
            .await?
        {
            recorded.insert(stage, (status, key));
        }
        let (failed, todo) = keys.states(&recorded);
        let skip = match self.revisit {
            Revisit::MissingAndFailed => !failed && !todo,
            Revisit::Missing => !todo,
            Revisit::FailedOnly => !failed,
        };
        if skip {
            return Ok(VideoJob {
                skipped: true,
                ..VideoJob::default()
            });
        }
        let writes = std::sync::Mutex::new(Vec::new());
        let span = info_span!("video", video = %video.key);
        let outcome = if keys.segments.is_some() {
            process_long(shared, video, &keys, &writes)
                .instrument(span)
                .await
        } else {
            process(shared, video, None, &keys, &writes)
                .instrument(span)
                .await
        };
        Ok(VideoJob {
            skipped: false,
            writes: writes.into_inner().unwrap_or_else(|e| e.into_inner()),
            failed_stages: outcome.failed,
            first_error: outcome.first_error,
            stopped: outcome.stopped,
        })
    }

    /// The model entry that stage `stage` of this run asks
    /// ([`WolfConfig::stage_model`]).
    pub fn stage_model(&self, stage: &str) -> Option<&str> {
        self.shared.plan.wolf.stage_model(stage)
    }

    /// Model requests made so far (not cache hits).
    pub fn model_calls(&self) -> u64 {
        self.shared.calls.load(Ordering::Relaxed)
    }
}

/// A video with nothing known about it (the stage names of a plan's keys).
pub(crate) fn placeholder_video() -> VideoRow {
    VideoRow {
        id: 0,
        key: String::new(),
        path: String::new(),
        status: VideoStatus::Ok,
        error_kind: None,
        error_message: None,
        sha256: None,
        size_bytes: None,
        mtime_ns: None,
        duration_s: None,
        fps: None,
        width: None,
        height: None,
        rotation: None,
        codec: None,
        frame_count: None,
        keyframe_count: None,
        has_audio: None,
        reference: None,
        tags: Vec::new(),
        metadata: None,
    }
}

/// Enough videos at once to keep the busiest model full: twice the largest model
/// concurrency, and at least twice the cores.
pub(crate) fn auto_in_flight(plan: &Plan, wolf: &WolfConfig) -> usize {
    use crate::models::ModelConfig;
    let cores = crate::process::cores();
    let widest = wolf
        .image_models
        .iter()
        .chain(&wolf.video_models)
        .chain(std::iter::once(&wolf.llm))
        .filter_map(|name| plan.models.get(name))
        .map(|entry| match entry {
            ModelConfig::Openai(c) => c.max_concurrency,
            ModelConfig::Onnx(c) => c.batch,
            ModelConfig::Gguf(c) => c.parallel,
        })
        .max()
        .unwrap_or(1);
    (2 * widest).max(2 * cores)
}

/// `boxes.json` of the synthetic world: video key → that clip's entry.
fn read_boxes(path: &std::path::Path) -> Result<HashMap<String, serde_json::Value>, RunError> {
    let error =
        |message: &str, source: Option<Box<dyn std::error::Error + Send + Sync>>| RunError::Boxes {
            path: path.to_owned(),
            message: message.to_owned(),
            source,
        };
    let text =
        std::fs::read_to_string(path).map_err(|e| error("cannot read it", Some(Box::new(e))))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| error("it is not valid JSON", Some(Box::new(e))))?;
    match value {
        serde_json::Value::Object(map) => Ok(map.into_iter().collect()),
        _ => Err(error("it is not an object of clips by video key", None)),
    }
}

/// What happened to one video.
#[derive(Debug, Default)]
struct VideoOutcome {
    failed: usize,
    stopped: bool,
    /// The first failed stage's (kind, message), preferring a cause to a dependency.
    first_error: Option<(String, String)>,
}

impl VideoOutcome {
    fn count(&mut self, error: &StageError) {
        self.failed += 1;
        self.stopped |= error.kind == "cancelled";
        let cause = error.kind != "dependency";
        let have_cause = self
            .first_error
            .as_ref()
            .is_some_and(|(kind, _)| kind != "dependency");
        if self.first_error.is_none() || (cause && !have_cause) {
            self.first_error = Some((error.kind.clone(), error.message.clone()));
        }
    }
}

/// Runs the stages of one video (of its span `window` for a long video's segment); each
/// stage's outcome is pushed to `buffer`, which the worker commits with its queue item.
async fn process(
    shared: &Arc<Shared>,
    video: &VideoRow,
    window: Option<(f64, f64)>,
    keys: &Keys,
    buffer: &std::sync::Mutex<Vec<StageWrite>>,
) -> VideoOutcome {
    let mut outcome = VideoOutcome::default();
    let w = &shared.plan.wolf;

    // Frames, only when a stage that reads them is not cached.
    let mut need_frames = false;
    for k in keys
        .cascade
        .values()
        .chain(keys.middle.values())
        .chain(keys.video.values())
    {
        match shared.store.result(k).await {
            Ok(Some(_)) => {}
            _ => need_frames = true,
        }
    }
    let frames: Result<Option<Arc<media::Sampled>>, StageError> = if need_frames {
        stages::decode(shared, video, window).await.map(Some)
    } else {
        Ok(None)
    };

    // Image models (cascade, middle, summary) and video models, all at once.
    let image_tasks = w.image_models.iter().map(|m| {
        let frames = frames.clone();
        async move {
            let span = info_span!("stage", stage = "cascade", model = %m);
            let run_cascade = async {
                match &frames {
                    Ok(f) => cascade::cascade(shared, video, m, keys, f.as_deref()).await,
                    Err(e) => Err(e.clone()),
                }
            };
            // With the cascade on, the middle frame alone needs no history: it is asked
            // beside the cascade, not after it.
            let (cascade, early_middle) = if w.cascade {
                let alone = async {
                    match &frames {
                        Ok(f) => cascade::middle(shared, m, keys, f.as_deref(), None).await,
                        Err(e) => Err(e.clone()),
                    }
                };
                let (c, alone) = async { tokio::join!(run_cascade, alone) }
                    .instrument(span)
                    .await;
                (c, Some(alone))
            } else {
                (run_cascade.instrument(span).await, None)
            };
            record(
                shared,
                buffer,
                &format!("cascade:{m}"),
                &keys.cascade[m],
                &cascade.as_ref().map(|_| None).map_err(Clone::clone),
            )
            .await;
            let middle = match (early_middle, &frames) {
                (Some(alone), _) => alone,
                (None, Ok(f)) => {
                    cascade::middle(shared, m, keys, f.as_deref(), cascade.as_ref().ok())
                        .instrument(info_span!("stage", stage = "middle", model = %m))
                        .await
                }
                (None, Err(e)) => Err(e.clone()),
            };
            record(
                shared,
                buffer,
                &format!("middle:{m}"),
                &keys.middle[m],
                &middle,
            )
            .await;
            let summary = match &cascade {
                Ok(c) => {
                    summary::summary(shared, m, keys, c)
                        .instrument(info_span!("stage", stage = "summary", model = %m))
                        .await
                }
                Err(_) => Err(StageError::dependency(&format!("cascade:{m}"))),
            };
            record(
                shared,
                buffer,
                &format!("summary:{m}"),
                &keys.summary[m],
                &summary,
            )
            .await;
            ImageOutcome {
                model: m.clone(),
                cascade,
                middle,
                summary,
            }
        }
    });
    let video_tasks = w.video_models.iter().map(|v| {
        let frames = frames.clone();
        async move {
            let result = match &frames {
                Ok(f) => {
                    video::video_caption(shared, video, v, keys, f.as_deref(), window.is_some())
                        .instrument(info_span!("stage", stage = "video", model = %v))
                        .await
                }
                Err(e) => Err(e.clone()),
            };
            record(
                shared,
                buffer,
                &format!("video:{v}"),
                &keys.video[v],
                &result,
            )
            .await;
            (v.clone(), result)
        }
    });
    let (image_results, video_results) = tokio::join!(
        futures_join_all(image_tasks.collect()),
        futures_join_all(video_tasks.collect())
    );
    // Nothing after this reads a frame: free them before waiting for the LLM.
    drop(frames);

    let motion_result = match &keys.motion {
        None => None,
        Some(k) => {
            let result = stages::motion::motion(shared, video, k, &image_results)
                .instrument(info_span!("stage", stage = "motion"))
                .await;
            record(shared, buffer, "motion", k, &result).await;
            Some(result)
        }
    };

    let fusion = fusion::fusion(
        shared,
        video,
        keys,
        &image_results,
        motion_result.as_ref(),
        &video_results,
    )
    .instrument(info_span!("stage", stage = "fusion"))
    .await;
    record(shared, buffer, "fusion", &keys.fusion, &fusion).await;

    // Tally.
    for image in &image_results {
        if let Err(e) = &image.cascade {
            outcome.count(e);
        }
    }
    let results = image_results
        .iter()
        .flat_map(|image| [&image.middle, &image.summary])
        .chain(video_results.iter().map(|(_, r)| r))
        .chain(motion_result.as_ref())
        .chain(std::iter::once(&fusion));
    for r in results {
        if let Err(e) = r {
            outcome.count(e);
        }
    }
    debug!(failed = outcome.failed, "Processed a video.");
    outcome
}

/// Runs the stages of a long video: its cut (`segments`), then every segment's stages
/// over its span, a few segments at a time, each under its own keys (what a killed run
/// finished is found again), then each stage of the video from its segments': the
/// timed captions joined, and for `fusion` the story. A stage failed in a segment fails
/// the video's stage with the segment's reason.
async fn process_long(
    shared: &Arc<Shared>,
    video: &VideoRow,
    keys: &Keys,
    buffer: &std::sync::Mutex<Vec<StageWrite>>,
) -> VideoOutcome {
    let mut outcome = VideoOutcome::default();
    let cut_key = keys
        .segments
        .as_deref()
        .expect("a long video has a cut; this is a bug");
    let cut = long::cut(shared, video, cut_key)
        .instrument(info_span!("stage", stage = SEGMENTS))
        .await;
    let done = cut.as_ref().map(|_| None).map_err(Clone::clone);
    record(shared, buffer, SEGMENTS, cut_key, &done).await;
    let stages: Vec<(String, String)> = keys
        .stages()
        .into_iter()
        .filter(|(stage, _)| stage != SEGMENTS)
        .collect();
    if let Err(e) = &cut {
        outcome.count(e);
    }
    let spans = cut.as_ref().map_or(&[][..], |c| &c.spans[..]);
    // Stage → each segment's outcome, in order.
    let mut by_stage: HashMap<String, Vec<StageResult>> = HashMap::new();
    for chunk in spans.chunks(crate::process::cores()) {
        let tasks = chunk.iter().map(|span| async move {
            let mut segment = video.clone();
            segment.sha256 = Some(format!(
                "{}@{}-{}",
                video.sha256.clone().unwrap_or_default(),
                span.start_s,
                span.end_s
            ));
            segment.duration_s = Some(span.end_s - span.start_s);
            let keys = shared.keys.keys(&segment, None);
            let writes = std::sync::Mutex::new(Vec::new());
            let window = Some((span.start_s, span.end_s));
            let outcome = process(shared, &segment, window, &keys, &writes).await;
            (
                outcome,
                writes.into_inner().unwrap_or_else(|e| e.into_inner()),
            )
        });
        for (done, writes) in futures_join_all(tasks.collect()).await {
            outcome.stopped |= done.stopped;
            for write in writes {
                let (stage, result) = match write {
                    StageWrite::Caption { stage, caption, .. } => (stage, Ok(Some(caption))),
                    StageWrite::Item { stage, error, .. } => (
                        stage,
                        match error {
                            None => Ok(None),
                            Some((kind, message)) => Err(StageError::new(&kind, message)),
                        },
                    ),
                };
                by_stage.entry(stage).or_default().push(result);
            }
        }
        if outcome.stopped || shared.stop.load(Ordering::Relaxed) {
            outcome.stopped = true;
            return outcome;
        }
        // What the segments decoded is freed: give it back, or an hour's segments keep
        // it in the allocator's arenas.
        crate::process::release_freed_memory();
    }
    for (stage, key) in &stages {
        let result = match &cut {
            Ok(cut) => {
                let results = by_stage.remove(stage).unwrap_or_default();
                long::whole(shared, stage, key, &cut.spans, results)
                    .instrument(info_span!("stage", stage = %stage))
                    .await
            }
            Err(_) => Err(StageError::dependency(SEGMENTS)),
        };
        if let Err(e) = &result {
            outcome.count(e);
        }
        record(shared, buffer, stage, key, &result).await;
    }
    outcome
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

/// Pushes a stage's outcome to `buffer`: its caption (of the stage's source,
/// [`super::stage_source`]) with the item done, the item done without a caption, or the
/// item failed with its reason. A stopped stage leaves nothing: it runs again.
async fn record(
    shared: &Shared,
    buffer: &std::sync::Mutex<Vec<StageWrite>>,
    stage: &str,
    key: &str,
    result: &StageResult,
) {
    let source = super::stage_source(stage);
    let source = source.as_deref();
    if let Err(e) = result
        && e.kind != "cancelled"
    {
        // In the video's span, which names the video.
        warn!(stage, kind = %e.kind, error = %e.message, "A stage failed.");
    }
    let write = match (result, source) {
        (Ok(Some(text)), Some(source)) => {
            let stored = match shared.store.result(key).await {
                Ok(Some(stored)) => stored,
                _ => StoredResult::bare(json!({ "caption": text }).to_string()),
            };
            StageWrite::Caption {
                stage: stage.to_owned(),
                source: source.to_owned(),
                caption: text.clone(),
                result_key: key.to_owned(),
                result: stored,
            }
        }
        (Err(e), _) if e.kind == "cancelled" => return,
        (result, source) => StageWrite::Item {
            stage: stage.to_owned(),
            result_key: key.to_owned(),
            source: source.map(str::to_owned),
            error: result
                .as_ref()
                .err()
                .map(|e| (e.kind.clone(), e.message.clone())),
        },
    };
    buffer.lock().unwrap_or_else(|e| e.into_inner()).push(write);
}
