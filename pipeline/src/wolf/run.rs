//! The job runner of `wolf caption`: one task per video in flight, each running the
//! stages of METHOD.md section 1 as far as their inputs allow.
//!
//! Keys: every stage's output is addressed by a content key (a hash of the video's
//! sha256, the stage, the model entry's identity, the prompt version, the sampling
//! settings and the keys of its inputs), known before anything runs. A key found in the
//! results cache is never computed again; a video whose every stage is recorded done
//! with today's keys is skipped without decoding. So a second run makes no model call,
//! a crashed run redoes only what is missing, and a changed model or prompt redoes only
//! what depends on it.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::guard::{self, GuardMode, GuardRecord, Rejected};
use super::motion;
use super::prompts::{self, Prompt};
use super::{MotionSource, WolfConfig, model_identity};
use crate::config::Plan;
use crate::hash::sha256_bytes;
use crate::media::{self, RgbImage};
use crate::models::{
    ChatRequest, ImageRequest, Message, ModelError, ModelSet, Reply, Sampling, VideoRequest,
};
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
}

/// Counters the binary draws: videos, and items per stage kind.
#[derive(Debug, Default)]
pub struct RunProgress {
    pub videos: Arc<Progress>,
    pub frames: Arc<Progress>,
    pub frame_captions: Arc<Progress>,
    pub llm_calls: Arc<Progress>,
    pub video_captions: Arc<Progress>,
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
    /// Videos left when a stop was requested.
    pub interrupted: bool,
    /// Model requests made (not cache hits).
    pub model_calls: u64,
    /// Wall time summed per stage kind.
    pub stage_time: BTreeMap<String, Duration>,
    /// The run's fused captions per guard path (`fused`, `fused_retry`,
    /// `consensus:SOURCE`; `unchecked` with the guard off).
    pub guard_paths: BTreeMap<String, usize>,
    pub wall: Duration,
}

/// A run that could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Setup(String),
}

/// A failed stage: a stable kind and a message.
#[derive(Debug, Clone)]
struct StageError {
    kind: String,
    message: String,
}

impl From<ModelError> for StageError {
    fn from(e: ModelError) -> Self {
        Self {
            kind: e.kind.as_str().to_owned(),
            message: e.to_string(),
        }
    }
}

impl From<StoreError> for StageError {
    fn from(e: StoreError) -> Self {
        Self {
            kind: e.kind().to_owned(),
            message: e.to_string(),
        }
    }
}

impl StageError {
    fn new(kind: &str, message: impl Into<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            message: message.into(),
        }
    }

    fn dependency(stage: &str) -> Self {
        Self::new("dependency", format!("needs `{stage}`, which failed"))
    }

    fn stopped() -> Self {
        Self::new("cancelled", "the run was stopped")
    }
}

/// The keys of one video's stages, known before anything runs.
#[derive(Debug, Clone)]
struct Keys {
    /// The decoded frames (not cached; part of the other keys).
    base: String,
    cascade: BTreeMap<String, String>,
    middle: BTreeMap<String, String>,
    summary: BTreeMap<String, String>,
    motion: Option<String>,
    video: BTreeMap<String, String>,
    fusion: String,
}

impl Keys {
    /// Stage name → expected key, for every stage of the plan.
    fn stages(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (m, k) in &self.cascade {
            out.push((format!("cascade:{m}"), k.clone()));
        }
        for (m, k) in &self.middle {
            out.push((format!("middle:{m}"), k.clone()));
        }
        for (m, k) in &self.summary {
            out.push((format!("summary:{m}"), k.clone()));
        }
        if let Some(k) = &self.motion {
            out.push(("motion".into(), k.clone()));
        }
        for (v, k) in &self.video {
            out.push((format!("video:{v}"), k.clone()));
        }
        out.push(("fusion".into(), self.fusion.clone()));
        out
    }
}

fn key(parts: &[&str]) -> String {
    sha256_bytes(
        serde_json::to_string(parts)
            .expect("strings serialise")
            .as_bytes(),
    )
}

/// Everything a video task needs, shared.
struct Shared {
    store: Store,
    plan: Plan,
    wolf: WolfConfig,
    models: ModelSet,
    run_id: i64,
    decode: Semaphore,
    progress: Arc<RunProgress>,
    stop: Arc<AtomicBool>,
    calls: AtomicU64,
    /// Wall time per stage kind, in microseconds.
    times: std::sync::Mutex<BTreeMap<String, u64>>,
    boxes: HashMap<String, serde_json::Value>,
    identities: HashMap<String, String>,
    sampling_key: String,
}

impl Shared {
    fn identity(&self, model: &str) -> &str {
        self.identities.get(model).map_or("", String::as_str)
    }

    fn count_time(&self, stage: &str, since: Instant) {
        let mut times = self.times.lock().unwrap_or_else(|e| e.into_inner());
        *times.entry(stage.to_owned()).or_default() += since.elapsed().as_micros() as u64;
    }

    fn keys(&self, video: &VideoRow) -> Keys {
        let sha = video.sha256.as_deref().unwrap_or_default();
        let base = key(&["frames", sha, &self.sampling_key]);
        let w = &self.wolf;
        let llm = self.identity(&w.llm);
        let summary_llm = self.identity(w.summary_llm());
        let fusion_llm = self.identity(w.fusion_llm());
        let guard = w.guard.as_str();
        let generation = |stage: &str| {
            serde_json::to_string(&w.stage_sampling(&self.plan.models, stage))
                .expect("sampling serialises")
        };
        let (summary_gen, motion_gen, fusion_gen) = (
            generation("summary"),
            generation("motion"),
            generation("fusion"),
        );
        let caption_tokens = w.caption_max_tokens.to_string();
        let mut cascade = BTreeMap::new();
        let mut middle = BTreeMap::new();
        let mut summary = BTreeMap::new();
        for m in &w.image_models {
            let id = self.identity(m);
            let c = key(&[
                "cascade",
                &base,
                id,
                prompts::FRAME.version,
                if w.cascade {
                    prompts::CASCADE.version
                } else {
                    "independent"
                },
                &caption_tokens,
            ]);
            middle.insert(
                m.clone(),
                key(&["middle", &base, id, prompts::FRAME.version, &caption_tokens]),
            );
            summary.insert(
                m.clone(),
                key(&[
                    "summary",
                    &c,
                    summary_llm,
                    prompts::SUMMARY.version,
                    &summary_gen,
                    guard,
                ]),
            );
            cascade.insert(m.clone(), c);
        }
        let motion = match w.motion {
            MotionSource::Off => None,
            source => {
                let boxes = match source {
                    MotionSource::Dataset => {
                        let clip = self.boxes.get(&video.key).map(|v| v.to_string());
                        sha256_bytes(clip.unwrap_or_default().as_bytes())
                    }
                    _ => cascade.values().cloned().collect::<Vec<_>>().join(","),
                };
                let verbal = if w.motion_llm {
                    format!("{llm}:{}:{motion_gen}", prompts::MOTION.version)
                } else {
                    "sentence-v1".to_owned()
                };
                let tracker = format!("tracker-v2:{}", w.motion_min_track_fraction);
                Some(key(&["motion", &boxes, &tracker, &verbal]))
            }
        };
        let video_keys: BTreeMap<String, String> = w
            .video_models
            .iter()
            .map(|v| {
                let k = key(&[
                    "video",
                    &base,
                    self.identity(v),
                    prompts::VIDEO.version,
                    &caption_tokens,
                ]);
                (v.clone(), k)
            })
            .collect();
        let annotation = if w.fuse_annotation {
            video.reference.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let mut inputs: Vec<&str> = vec![
            "fusion",
            fusion_llm,
            prompts::FUSION.version,
            &fusion_gen,
            guard,
        ];
        inputs.extend(summary.values().map(String::as_str));
        inputs.extend(motion.as_deref());
        inputs.extend(video_keys.values().map(String::as_str));
        inputs.push(&annotation);
        let fusion = key(&inputs);
        Keys {
            base,
            cascade,
            middle,
            summary,
            motion,
            video: video_keys,
            fusion,
        }
    }
}

/// Opens (or reopens) run `name` with the config's text and drops what a previous config
/// of the run had and this one has not: what `wolf caption` does before it queues the
/// videos.
#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    store: &Store,
    plan: &Plan,
    wolf: &WolfConfig,
    dataset: &DatasetSummary,
    name: &str,
    config_text: &str,
    stop: Arc<AtomicBool>,
    progress: Arc<RunProgress>,
) -> Result<(RunRow, Runner), RunError> {
    wolf.validate(plan)
        .map_err(|e| RunError::Setup(e.to_string()))?;
    let config_hash = sha256_bytes(config_text.as_bytes());
    let run = store
        .open_run(name, dataset.id, config_text, &config_hash)
        .await?;
    let runner = Runner::new(store, plan, wolf, run.id, stop, progress)?;
    let stage_names: Vec<String> = runner
        .shared
        .keys(&placeholder_video())
        .stages()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    store
        .prune_run(run.id, &wolf.sources(), &stage_names)
        .await?;
    Ok((run, runner))
}

/// (any stage failed, any stage still to do) for a video's recorded stages, by stage:
/// (status, key). A stage counts as done or failed only for today's key.
fn stage_states(keys: &Keys, recorded: Option<&HashMap<String, (String, String)>>) -> (bool, bool) {
    let (mut failed, mut todo) = (false, false);
    for (stage, expected) in keys.stages() {
        match recorded.and_then(|m| m.get(&stage)) {
            Some((status, key)) if *key == expected && status == "done" => {}
            Some((status, key)) if *key == expected && status == "failed" => failed = true,
            _ => todo = true,
        }
    }
    (failed, todo)
}

/// Which videos a [`Runner`] works on again.
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
        wolf: &WolfConfig,
        run_id: i64,
        stop: Arc<AtomicBool>,
        progress: Arc<RunProgress>,
    ) -> Result<Self, RunError> {
        wolf.validate(plan)
            .map_err(|e| RunError::Setup(e.to_string()))?;
        let boxes = match (&wolf.motion, &wolf.boxes_file) {
            (MotionSource::Dataset, Some(path)) => read_boxes(path).map_err(RunError::Setup)?,
            _ => HashMap::new(),
        };
        let identities = plan
            .models
            .iter()
            .map(|(name, entry)| (name.clone(), model_identity(entry)))
            .collect();
        let shared = Arc::new(Shared {
            store: store.clone(),
            plan: plan.clone(),
            wolf: wolf.clone(),
            models: ModelSet::new(plan.models.clone()),
            run_id,
            decode: Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get())),
            progress,
            stop,
            calls: AtomicU64::new(0),
            times: Default::default(),
            boxes,
            identities,
            sampling_key: format!("{:?}", plan.sampling),
        });
        Ok(Self {
            shared,
            revisit: Revisit::default(),
        })
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
        let (failed, todo) = stage_states(&keys, Some(&recorded));
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
        let outcome = process(shared, video, &keys, Some(&writes)).await;
        Ok(VideoJob {
            skipped: false,
            writes: writes.into_inner().unwrap_or_else(|e| e.into_inner()),
            failed_stages: outcome.failed,
            first_error: outcome.first_error,
            stopped: outcome.stopped,
        })
    }

    /// Model requests made so far (not cache hits).
    pub fn model_calls(&self) -> u64 {
        self.shared.calls.load(Ordering::Relaxed)
    }
}

fn placeholder_video() -> VideoRow {
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
    }
}

/// Enough videos at once to keep the busiest model full: twice the largest model
/// concurrency, and at least twice the cores.
pub(crate) fn auto_in_flight(plan: &Plan, wolf: &WolfConfig) -> usize {
    use crate::models::ModelConfig;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let widest = wolf
        .image_models
        .iter()
        .chain(&wolf.video_models)
        .chain(std::iter::once(&wolf.llm))
        .filter_map(|name| plan.models.get(name))
        .map(|entry| match entry {
            ModelConfig::Openai(c) => c.max_concurrency,
            ModelConfig::Onnx(c) => c.batch,
            ModelConfig::Gguf(_) => 1,
        })
        .max()
        .unwrap_or(1);
    (2 * widest).max(2 * cores)
}

/// `boxes.json` of the synthetic world: video key → that clip's entry.
fn read_boxes(path: &std::path::Path) -> Result<HashMap<String, serde_json::Value>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `wolf.boxes_file` `{}`: {e}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("`{}` is not valid JSON: {e}", path.display()))?;
    match value {
        serde_json::Value::Object(map) => Ok(map.into_iter().collect()),
        _ => Err(format!(
            "`{}` is not an object of clips by video key",
            path.display()
        )),
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

/// A stage's result: its text (None when it has nothing to say, e.g. no boxes).
type StageResult = Result<Option<String>, StageError>;

/// Runs the stages of one video; each stage's outcome is written at once, or pushed to
/// `buffer` (a worker commits them with its queue item).
async fn process(
    shared: &Arc<Shared>,
    video: &VideoRow,
    keys: &Keys,
    buffer: Option<&std::sync::Mutex<Vec<StageWrite>>>,
) -> VideoOutcome {
    let span = tracing::info_span!("video", video = %video.key);
    let _enter = span.enter();
    drop(_enter);
    let mut outcome = VideoOutcome::default();
    let w = &shared.wolf;

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
        decode(shared, video).await.map(Some)
    } else {
        Ok(None)
    };

    // Image models (cascade, middle, summary) and video models, all at once.
    let image_tasks = w.image_models.iter().map(|m| {
        let frames = frames.clone();
        async move {
            let run_cascade = async {
                match &frames {
                    Ok(f) => cascade(shared, video, m, keys, f.as_deref()).await,
                    Err(e) => Err(e.clone()),
                }
            };
            // With the cascade on, the middle frame alone needs no history: it is asked
            // beside the cascade, not after it.
            let (cascade, early_middle) = if w.cascade {
                let alone = async {
                    match &frames {
                        Ok(f) => middle(shared, m, keys, f.as_deref(), None).await,
                        Err(e) => Err(e.clone()),
                    }
                };
                let (c, alone) = tokio::join!(run_cascade, alone);
                (c, Some(alone))
            } else {
                (run_cascade.await, None)
            };
            let cascade_key = &keys.cascade[m];
            record(
                shared,
                buffer,
                video,
                &format!("cascade:{m}"),
                cascade_key,
                None,
                &cascade.as_ref().map(|_| None).map_err(Clone::clone),
            )
            .await;
            let middle = match (early_middle, &frames) {
                (Some(alone), _) => alone,
                (None, Ok(f)) => middle(shared, m, keys, f.as_deref(), cascade.as_ref().ok()).await,
                (None, Err(e)) => Err(e.clone()),
            };
            record(
                shared,
                buffer,
                video,
                &format!("middle:{m}"),
                &keys.middle[m],
                Some(&format!("{m}:middle")),
                &middle,
            )
            .await;
            let summary = match &cascade {
                Ok(c) => summary(shared, m, keys, c).await,
                Err(_) => Err(StageError::dependency(&format!("cascade:{m}"))),
            };
            record(
                shared,
                buffer,
                video,
                &format!("summary:{m}"),
                &keys.summary[m],
                Some(&format!("{m}:summary")),
                &summary,
            )
            .await;
            (m.clone(), cascade, middle, summary)
        }
    });
    let video_tasks = w.video_models.iter().map(|v| {
        let frames = frames.clone();
        async move {
            let result = match &frames {
                Ok(f) => video_caption(shared, video, v, keys, f.as_deref()).await,
                Err(e) => Err(e.clone()),
            };
            record(
                shared,
                buffer,
                video,
                &format!("video:{v}"),
                &keys.video[v],
                Some(v),
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

    // Motion, from the image models' grounded frame captions or the dataset's boxes.
    let motion_result = match (&keys.motion, w.motion) {
        (None, _) => None,
        (Some(k), source) => {
            let detections: Result<Vec<motion::FrameDetections>, StageError> = match source {
                MotionSource::Dataset => {
                    let fps = video.fps.unwrap_or(1.0).max(1e-3);
                    match shared.boxes.get(&video.key) {
                        Some(clip) => motion::from_boxes_json(clip, fps)
                            .map_err(|e| StageError::new("bad_boxes", e)),
                        None => Err(StageError::new(
                            "no_boxes",
                            format!("`{}` is not in `wolf.boxes_file`", video.key),
                        )),
                    }
                }
                _ => grounded(&image_results),
            };
            let result = match detections {
                Ok(d) => motion_caption(shared, k, &d).await,
                Err(e) => Err(e),
            };
            record(
                shared,
                buffer,
                video,
                "motion",
                k,
                Some(super::MOTION_SOURCE),
                &result,
            )
            .await;
            Some(result)
        }
    };

    // Fusion, when every input is there.
    let mut missing = None;
    let mut summaries = Vec::new();
    for (m, _, _, summary) in &image_results {
        match summary {
            Ok(Some(text)) => summaries.push(text.clone()),
            _ => missing = missing.or(Some(format!("summary:{m}"))),
        }
    }
    let motion_text = match &motion_result {
        Some(Ok(text)) => text.clone(),
        Some(Err(_)) => {
            missing = missing.or(Some("motion".to_owned()));
            None
        }
        None => None,
    };
    let mut videos = Vec::new();
    for (v, result) in &video_results {
        match result {
            Ok(Some(text)) => videos.push(text.clone()),
            _ => missing = missing.or(Some(format!("video:{v}"))),
        }
    }
    let fusion = match missing {
        Some(stage) => Err(StageError::dependency(&stage)),
        None => {
            let annotation = if w.fuse_annotation {
                video.reference.as_deref()
            } else {
                None
            };
            let prompt = prompts::fusion(&summaries, motion_text.as_deref(), &videos, annotation);
            let mut candidates = Vec::new();
            for ((m, _, _, _), text) in image_results.iter().zip(&summaries) {
                candidates.push((format!("{m}:summary"), prompts::plain(text)));
            }
            if let Some(text) = &motion_text {
                candidates.push((super::MOTION_SOURCE.to_owned(), prompts::plain(text)));
            }
            for ((v, _), text) in video_results.iter().zip(&videos) {
                candidates.push((v.clone(), prompts::plain(text)));
            }
            let stage = Guarded {
                stage: "fusion",
                key: &keys.fusion,
                prompt: prompts::FUSION,
                model: shared.wolf.fusion_llm(),
                text: prompt,
                candidates,
            };
            guarded_stage(shared, stage).await
        }
    };
    record(
        shared,
        buffer,
        video,
        "fusion",
        &keys.fusion,
        Some(super::WOLF_SOURCE),
        &fusion,
    )
    .await;

    // Tally.
    let mut results: Vec<&Result<Option<String>, StageError>> = Vec::new();
    for (_, c, m, s) in &image_results {
        results.push(m);
        results.push(s);
        if let Err(e) = c {
            outcome.count(e);
        }
    }
    for (_, r) in &video_results {
        results.push(r);
    }
    if let Some(r) = &motion_result {
        results.push(r);
    }
    results.push(&fusion);
    for r in results {
        if let Err(e) = r {
            outcome.count(e);
        }
    }
    debug!(video = %video.key, failed = outcome.failed, "Processed a video.");
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

/// Stores a stage's outcome (or pushes it to `buffer`): its caption (with the item
/// done), the item done without a caption, or the item failed with its reason.
async fn record(
    shared: &Shared,
    buffer: Option<&std::sync::Mutex<Vec<StageWrite>>>,
    video: &VideoRow,
    stage: &str,
    key: &str,
    source: Option<&str>,
    result: &StageResult,
) {
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
    if let Some(buffer) = buffer {
        buffer.lock().unwrap_or_else(|e| e.into_inner()).push(write);
        return;
    }
    if let Err(e) = shared
        .store
        .put_stage(shared.run_id, video.id, &write)
        .await
    {
        warn!(video = %video.key, stage, error = %e, "Cannot record a stage.");
    }
}

async fn decode(shared: &Shared, video: &VideoRow) -> Result<Arc<media::Sampled>, StageError> {
    let _permit = shared
        .decode
        .acquire()
        .await
        .expect("the semaphore is never closed; this is a bug");
    if shared.stop.load(Ordering::Relaxed) {
        return Err(StageError::stopped());
    }
    let started = Instant::now();
    let path = std::path::PathBuf::from(&video.path);
    let settings = shared.plan.sampling;
    let sampled = tokio::task::spawn_blocking(move || media::sample_frames(&path, &settings, 1))
        .await
        .map_err(|e| StageError::new("panic", format!("frame sampling panicked: {e}")))?;
    shared.count_time("frames", started);
    let ok = sampled.is_ok();
    shared.progress.frames.finish_one(ok);
    match sampled {
        Ok(s) if s.frames.is_empty() => {
            Err(StageError::new("no_frames", "no frame could be sampled"))
        }
        Ok(s) => Ok(Arc::new(s)),
        Err(e) => Err(StageError::new(e.kind(), e.to_string())),
    }
}

/// One image model's frame captions, in order.
#[derive(Debug, Clone)]
struct Cascade {
    captions: Vec<String>,
    /// Seconds from the clip's start, one per caption.
    times: Vec<f64>,
}

/// A result from the cache, or computed by `compute` and cached.
async fn cached<F, Fut>(
    shared: &Shared,
    key: &str,
    stage: &str,
    compute: F,
) -> Result<serde_json::Value, StageError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(serde_json::Value, StoredResult), StageError>>,
{
    if let Some(stored) = shared.store.result(key).await? {
        return serde_json::from_str(&stored.value).map_err(|e| {
            StageError::new("bad_cache", format!("cached `{stage}` is not JSON: {e}"))
        });
    }
    if shared.stop.load(Ordering::Relaxed) {
        return Err(StageError::stopped());
    }
    let (value, mut stored) = compute().await?;
    stored.value = value.to_string();
    shared.store.put_result(key, stage, &stored).await?;
    Ok(value)
}

/// The record of an output computed here, not by a model request (no tokens, no
/// latency): a cascade, a middle frame taken from the cascade, a fixed sentence.
fn computed(model: Option<&str>, prompt_version: &str) -> StoredResult {
    StoredResult {
        model: model.map(str::to_owned),
        prompt_version: Some(prompt_version.to_owned()),
        ..StoredResult::bare("")
    }
}

fn stored_from(reply: &Reply, model: &str, prompt: Prompt) -> StoredResult {
    StoredResult {
        value: String::new(),
        model: Some(model.to_owned()),
        prompt_version: Some(prompt.version.to_owned()),
        prompt_tokens: reply.usage.map(|u| u.prompt_tokens as i64),
        completion_tokens: reply.usage.map(|u| u.completion_tokens as i64),
        latency_ms: Some(reply.latency.as_millis() as i64),
    }
}

fn caption_of(value: &serde_json::Value) -> Option<String> {
    value["caption"].as_str().map(str::to_owned)
}

/// Captions one frame with image model `m`, with the previous caption when given.
async fn caption_frame(
    shared: &Shared,
    m: &str,
    image: &RgbImage,
    previous: Option<&str>,
) -> Result<(serde_json::Value, StoredResult), StageError> {
    let captioner = shared.models.image_captioner(m)?;
    let prompt = match previous {
        Some(p) => format!(
            "{}\n{}",
            prompts::CASCADE.text.replace("{previous}", p),
            prompts::FRAME.text
        ),
        None => prompts::FRAME.text.to_owned(),
    };
    let request = ImageRequest {
        images: vec![image.clone()],
        prompt,
        system: None,
        sampling: Sampling {
            max_tokens: shared.wolf.caption_max_tokens,
            ..Sampling::default()
        },
    };
    let reply = model_request(
        shared,
        "frame captions",
        &shared.progress.frame_captions,
        captioner.caption_images(&request),
    )
    .await?;
    let stored = stored_from(&reply, m, prompts::FRAME);
    Ok((json!({ "caption": reply.text }), stored))
}

/// One model request: counted, timed under `stage` and in `progress`.
async fn model_request(
    shared: &Shared,
    stage: &str,
    progress: &Progress,
    request: impl std::future::Future<Output = Result<Reply, ModelError>>,
) -> Result<Reply, ModelError> {
    let started = Instant::now();
    shared.calls.fetch_add(1, Ordering::Relaxed);
    let reply = request.await;
    shared.count_time(stage, started);
    progress.finish_one(reply.is_ok());
    reply
}

fn frames_of(frames: Option<&media::Sampled>) -> Result<&media::Sampled, StageError> {
    frames.ok_or_else(|| StageError::new("bug", "frames were not decoded; this is a bug"))
}

async fn cascade(
    shared: &Shared,
    video: &VideoRow,
    m: &str,
    keys: &Keys,
    frames: Option<&media::Sampled>,
) -> Result<Cascade, StageError> {
    let cascade_key = &keys.cascade[m];
    let value = cached(shared, cascade_key, "cascade", || async {
        let frames = frames_of(frames)?;
        let id = shared.identity(m);
        let tokens = shared.wolf.caption_max_tokens.to_string();
        let mut captions = Vec::with_capacity(frames.frames.len());
        let mut previous_key = String::new();
        for (i, frame) in frames.frames.iter().enumerate() {
            let index = i.to_string();
            let frame_key = if shared.wolf.cascade {
                key(&[
                    "frame",
                    &keys.base,
                    id,
                    prompts::FRAME.version,
                    prompts::CASCADE.version,
                    &tokens,
                    &index,
                    &previous_key,
                ])
            } else {
                independent_frame_key(keys, id, &tokens, i)
            };
            let previous: Option<String> = captions.last().cloned();
            let cascading = shared.wolf.cascade && previous.is_some();
            let value = cached(shared, &frame_key, "frame", || {
                caption_frame(
                    shared,
                    m,
                    &frame.image,
                    if cascading { previous.as_deref() } else { None },
                )
            })
            .await?;
            let caption = caption_of(&value)
                .ok_or_else(|| StageError::new("bad_cache", "a frame result has no caption"))?;
            captions.push(caption);
            previous_key = frame_key;
        }
        let times: Vec<f64> = frames.frames.iter().map(|f| f.time_s).collect();
        let stored = computed(Some(m), prompts::FRAME.version);
        Ok((json!({ "captions": captions, "times": times }), stored))
    })
    .await?;
    let captions: Vec<String> = value["captions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let times: Vec<f64> = value["times"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_f64()).collect())
        .unwrap_or_default();
    if captions.is_empty() || times.len() != captions.len() {
        return Err(StageError::new(
            "bad_cache",
            format!("the cascade of `{}` is empty or malformed", video.key),
        ));
    }
    Ok(Cascade { captions, times })
}

fn independent_frame_key(keys: &Keys, id: &str, tokens: &str, i: usize) -> String {
    key(&[
        "frame",
        &keys.base,
        id,
        prompts::FRAME.version,
        tokens,
        &i.to_string(),
    ])
}

/// The middle frame alone (the single-image baseline). Without the cascade it is the
/// cascade's own middle caption; with it, one more request without history.
async fn middle(
    shared: &Shared,
    m: &str,
    keys: &Keys,
    frames: Option<&media::Sampled>,
    cascade: Option<&Cascade>,
) -> StageResult {
    let value = cached(shared, &keys.middle[m], "middle", || async {
        if !shared.wolf.cascade
            && let Some(c) = cascade
        {
            let text = c.captions[c.captions.len() / 2].clone();
            let stored = computed(Some(m), prompts::FRAME.version);
            return Ok((json!({ "caption": text }), stored));
        }
        let frames = frames_of(frames)?;
        let i = frames.frames.len() / 2;
        let id = shared.identity(m);
        let tokens = shared.wolf.caption_max_tokens.to_string();
        let frame_key = independent_frame_key(keys, id, &tokens, i);
        let value = cached(shared, &frame_key, "frame", || {
            caption_frame(shared, m, &frames.frames[i].image, None)
        })
        .await?;
        let stored = computed(Some(m), prompts::FRAME.version);
        Ok((value, stored))
    })
    .await?;
    Ok(caption_of(&value))
}

/// One LLM request with the system message, cached under `key`.
async fn llm_stage(
    shared: &Shared,
    stage: &str,
    key: &str,
    prompt: Prompt,
    text: String,
) -> StageResult {
    let value = cached(shared, key, stage, || async {
        let model = &shared.wolf.llm;
        let sampling = llm_sampling(shared, stage);
        let reply = ask_llm(shared, stage, model, &text, sampling).await?;
        let stored = stored_from(&reply, model, prompt);
        Ok((json!({ "caption": reply.text.trim() }), stored))
    })
    .await?;
    Ok(caption_of(&value))
}

/// How LLM stage `stage` generates ([`WolfConfig::stage_sampling`]).
fn llm_sampling(shared: &Shared, stage: &str) -> Sampling {
    shared.wolf.stage_sampling(&shared.plan.models, stage)
}

/// One chat request with the system message to LLM entry `model`.
async fn ask_llm(
    shared: &Shared,
    stage: &str,
    model: &str,
    text: &str,
    sampling: Sampling,
) -> Result<Reply, StageError> {
    let llm = shared.models.chat(model)?;
    let request = ChatRequest {
        messages: vec![Message::system(prompts::SYSTEM), Message::user(text)],
        sampling,
        grammar: None,
    };
    Ok(model_request(
        shared,
        stage,
        &shared.progress.llm_calls,
        llm.chat(&request),
    )
    .await?)
}

/// A summary or fusion request and what the guard checks it against.
struct Guarded<'a> {
    stage: &'a str,
    key: &'a str,
    prompt: Prompt,
    model: &'a str,
    text: String,
    /// The stage's inputs as plain text, each with its name: what the output must be
    /// grounded in, and the consensus pick's candidates.
    candidates: Vec<(String, String)>,
}

/// An LLM stage behind the fusion guard ([`guard`]): the output is checked, retried
/// once with seeded sampling, then replaced by the consensus pick (or failed, with
/// `guard = "retry"`). The value stores the path taken and the rejected attempts.
async fn guarded_stage(shared: &Shared, g: Guarded<'_>) -> StageResult {
    let value = cached(shared, g.key, g.stage, || async {
        let mode = shared.wolf.guard;
        let greedy = llm_sampling(shared, g.stage);
        let first = ask_llm(shared, g.stage, g.model, &g.text, greedy.clone()).await?;
        let mut stored = stored_from(&first, g.model, g.prompt);
        if mode == GuardMode::Off {
            return Ok((json!({ "caption": first.text.trim() }), stored));
        }
        let inputs: Vec<String> = g.candidates.iter().map(|(_, t)| t.clone()).collect();
        let at_cap = |reply: &Reply| {
            reply
                .usage
                .is_some_and(|u| u.completion_tokens >= greedy.max_tokens)
        };
        let mut rejected = Vec::new();
        let text = first.text.trim().to_owned();
        match guard::check(&text, &inputs, at_cap(&first)) {
            Ok(()) => return Ok((guarded_value(&text, "fused", rejected), stored)),
            Err(failure) => rejected.push(Rejected { text, failure }),
        }
        let retry = Sampling {
            temperature: RETRY_TEMPERATURE,
            top_p: Some(RETRY_TOP_P),
            seed: Some(crate::hash::fnv1a(g.key.as_bytes())),
            repeat_penalty: Some(greedy.repeat_penalty.unwrap_or(1.0).max(RETRY_PENALTY)),
            ..greedy.clone()
        };
        let second = ask_llm(shared, g.stage, g.model, &g.text, retry).await?;
        add_usage(&mut stored, &second);
        let text = second.text.trim().to_owned();
        match guard::check(&text, &inputs, at_cap(&second)) {
            Ok(()) => return Ok((guarded_value(&text, "fused_retry", rejected), stored)),
            Err(failure) => rejected.push(Rejected { text, failure }),
        }
        if mode == GuardMode::Retry {
            let reasons: Vec<String> = rejected.iter().map(|r| r.failure.to_string()).collect();
            return Err(StageError::new(
                "guard",
                format!("both attempts failed the check: {}", reasons.join("; ")),
            ));
        }
        let (name, text) = consensus_pick(shared, &rejected, &g.candidates).await?;
        let path = format!("consensus:{name}");
        Ok((guarded_value(&text, &path, rejected), stored))
    })
    .await?;
    Ok(caption_of(&value))
}

/// The retry's sampling: enough temperature to leave a greedy loop.
const RETRY_TEMPERATURE: f32 = 0.7;
const RETRY_TOP_P: f32 = 0.9;
/// The retry's repetition penalty at least.
const RETRY_PENALTY: f32 = 1.3;

fn guarded_value(caption: &str, path: &str, rejected: Vec<Rejected>) -> serde_json::Value {
    let record = GuardRecord {
        path: path.to_owned(),
        rejected,
    };
    json!({ "caption": caption, "guard": record })
}

/// Adds a second request's tokens and time to a stage's record.
fn add_usage(stored: &mut StoredResult, reply: &Reply) {
    if let Some(u) = reply.usage {
        *stored.prompt_tokens.get_or_insert(0) += u.prompt_tokens as i64;
        *stored.completion_tokens.get_or_insert(0) += u.completion_tokens as i64;
    }
    *stored.latency_ms.get_or_insert(0) += reply.latency.as_millis() as i64;
}

/// The consensus pick among the inputs (the rejected attempts vote but are not picked):
/// the input whose embedding is closest on average to every other candidate's.
async fn consensus_pick(
    shared: &Shared,
    rejected: &[Rejected],
    candidates: &[(String, String)],
) -> Result<(String, String), StageError> {
    let pickable: Vec<&(String, String)> =
        candidates.iter().filter(|(_, t)| !t.is_empty()).collect();
    let Some(first) = pickable.first() else {
        return Err(StageError::new("guard", "no input to pick from"));
    };
    if pickable.len() == 1 {
        return Ok((*first).clone());
    }
    let mut texts: Vec<String> = pickable.iter().map(|(_, t)| t.clone()).collect();
    texts.extend(rejected.iter().map(|r| r.text.clone()));
    let embedder = shared.models.embedder(&shared.plan.score.embedder)?;
    let started = Instant::now();
    let vectors = embedder.embed(&texts).await?;
    shared.count_time("guard", started);
    let pick = guard::consensus_among(&vectors, pickable.len())
        .ok_or_else(|| StageError::new("guard", "the embedder returned no vectors"))?;
    Ok(pickable[pick].clone())
}

async fn summary(shared: &Shared, m: &str, keys: &Keys, cascade: &Cascade) -> StageResult {
    let text = prompts::SUMMARY.text.replace(
        "{captions}",
        &prompts::timed_lines(&cascade.captions, &cascade.times),
    );
    let candidates = cascade
        .captions
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("frame:{}", i + 1), prompts::plain(c)))
        .collect();
    let stage = Guarded {
        stage: "summary",
        key: &keys.summary[m],
        prompt: prompts::SUMMARY,
        model: shared.wolf.summary_llm(),
        text,
        candidates,
    };
    guarded_stage(shared, stage).await
}

async fn video_caption(
    shared: &Shared,
    video: &VideoRow,
    v: &str,
    keys: &Keys,
    frames: Option<&media::Sampled>,
) -> StageResult {
    let value = cached(shared, &keys.video[v], "video", || async {
        let frames = frames_of(frames)?;
        let captioner = shared.models.video_captioner(v)?;
        let request = VideoRequest {
            frames: frames.frames.iter().map(|f| f.image.clone()).collect(),
            times: frames.frames.iter().map(|f| f.time_s).collect(),
            video_path: Some(std::path::PathBuf::from(&video.path)),
            prompt: prompts::VIDEO.text.to_owned(),
            system: None,
            sampling: Sampling {
                max_tokens: shared.wolf.caption_max_tokens,
                ..Sampling::default()
            },
        };
        let reply = model_request(
            shared,
            "video captions",
            &shared.progress.video_captions,
            captioner.caption_video(&request),
        )
        .await?;
        let stored = stored_from(&reply, v, prompts::VIDEO);
        Ok((json!({ "caption": reply.text }), stored))
    })
    .await?;
    Ok(caption_of(&value))
}

/// Detections per frame from every image model's grounded frame captions.
fn grounded(
    image_results: &[(
        String,
        Result<Cascade, StageError>,
        StageResult,
        StageResult,
    )],
) -> Result<Vec<motion::FrameDetections>, StageError> {
    let mut frames: Vec<motion::FrameDetections> = Vec::new();
    for (m, cascade, _, _) in image_results {
        let cascade = cascade
            .as_ref()
            .map_err(|_| StageError::dependency(&format!("cascade:{m}")))?;
        for (i, caption) in cascade.captions.iter().enumerate() {
            let detections = motion::parse_grounded(caption);
            match frames.get_mut(i) {
                Some(f) => f.detections.extend(detections),
                None => frames.push(motion::FrameDetections {
                    time: cascade.times[i],
                    detections,
                }),
            }
        }
    }
    Ok(frames)
}

/// The motion caption: tracks, verbalised by the LLM or by a fixed sentence. No tracks:
/// nothing to say (not an error).
async fn motion_caption(
    shared: &Shared,
    key: &str,
    frames: &[motion::FrameDetections],
) -> StageResult {
    let tracks = motion::associate(frames, shared.wolf.motion_min_track_fraction);
    let motions: Vec<motion::TrackMotion> = tracks.iter().map(motion::describe).collect();
    if motions.is_empty() {
        return Ok(None);
    }
    if shared.wolf.motion_llm {
        let text = prompts::MOTION
            .text
            .replace("{facts}", &motion::llm_facts(&motions));
        llm_stage(shared, "motion", key, prompts::MOTION, text).await
    } else {
        let value = cached(shared, key, "motion", || async {
            let sentence = motion::sentence(&motions).unwrap_or_default();
            let stored = computed(None, "sentence-v1");
            Ok((json!({ "caption": sentence }), stored))
        })
        .await?;
        Ok(caption_of(&value).filter(|c| !c.trim().is_empty()))
    }
}
