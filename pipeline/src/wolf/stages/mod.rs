//! The stages of METHOD.md section 1, one file each ([`cascade`] with the middle frame,
//! [`summary`], [`motion`], [`video`], [`fusion`], and [`guarded`], the fusion guard's
//! path for the LLM stages), and what they share: the results cache, model requests
//! (counted and timed) and the stage error.
//!
//! A stage returns its text, or `None` when it has nothing to say (no boxes: no motion
//! caption), or a [`StageError`]; the runner records each outcome.

pub(crate) mod cascade;
pub(crate) mod fusion;
pub(crate) mod guarded;
pub(crate) mod long;
pub(crate) mod motion;
pub(crate) mod summary;
pub(crate) mod video;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::json;

use super::prompts::{self, Prompt};
use super::runner::Shared;
use crate::media;
use crate::models::{ChatRequest, Message, ModelError, Reply, Sampling};
use crate::progress::Progress;
use crate::store::{StoreError, StoredResult, VideoRow};

/// A failed stage: a stable kind and a message.
#[derive(Debug, Clone)]
pub(crate) struct StageError {
    pub kind: String,
    pub message: String,
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
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            message: message.into(),
        }
    }

    pub fn dependency(stage: &str) -> Self {
        Self::new("dependency", format!("needs `{stage}`, which failed"))
    }

    pub fn stopped() -> Self {
        Self::new("cancelled", "the run was stopped")
    }
}

/// A stage's result: its text (None when it has nothing to say, e.g. no boxes).
pub(crate) type StageResult = Result<Option<String>, StageError>;

/// The video's sampled frames, over `window` (a segment's span) when given (at most one
/// decode per core at a time).
pub(crate) async fn decode(
    shared: &Shared,
    video: &VideoRow,
    window: Option<(f64, f64)>,
) -> Result<Arc<media::Sampled>, StageError> {
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
    let sampled =
        tokio::task::spawn_blocking(move || media::sample_window(&path, &settings, 1, window))
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

/// A result from the cache, or computed by `compute` and cached.
pub(crate) async fn cached<F, Fut>(
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
pub(crate) fn computed(model: Option<&str>, prompt_version: &str) -> StoredResult {
    StoredResult {
        model: model.map(str::to_owned),
        prompt_version: Some(prompt_version.to_owned()),
        ..StoredResult::bare("")
    }
}

pub(crate) fn stored_from(reply: &Reply, model: &str, prompt: Prompt) -> StoredResult {
    StoredResult {
        value: String::new(),
        model: Some(model.to_owned()),
        prompt_version: Some(prompt.version.to_owned()),
        prompt_tokens: reply.usage.map(|u| u.prompt_tokens as i64),
        completion_tokens: reply.usage.map(|u| u.completion_tokens as i64),
        latency_ms: Some(reply.latency.as_millis() as i64),
    }
}

pub(crate) fn caption_of(value: &serde_json::Value) -> Option<String> {
    value["caption"].as_str().map(str::to_owned)
}

/// One request to model entry `model`: counted, timed under `stage` and in `progress`.
pub(crate) async fn model_request(
    shared: &Shared,
    stage: &str,
    model: &str,
    progress: &Progress,
    request: impl std::future::Future<Output = Result<Reply, ModelError>>,
) -> Result<Reply, ModelError> {
    let started = Instant::now();
    let reply = request.await;
    let error = reply.as_ref().err().map(ModelError::kind);
    shared.count_request(stage, model, started, error);
    progress.finish_one(reply.is_ok());
    reply
}

/// How a captioner generates: greedy, up to `caption_max_tokens`.
pub(crate) fn caption_sampling(shared: &Shared) -> Sampling {
    Sampling {
        max_tokens: shared.plan.wolf.caption_max_tokens,
        ..Sampling::default()
    }
}

/// A captioner's request (counted and timed as `stage`) and its reply as a caption of
/// `model` with `prompt`.
pub(crate) async fn caption_request(
    shared: &Shared,
    stage: &str,
    progress: &Progress,
    model: &str,
    prompt: Prompt,
    request: impl std::future::Future<Output = Result<Reply, ModelError>>,
) -> Result<(serde_json::Value, StoredResult), StageError> {
    let reply = model_request(shared, stage, model, progress, request).await?;
    let stored = stored_from(&reply, model, prompt);
    Ok((json!({ "caption": reply.text }), stored))
}

/// The frames a stage needs, which the runner decodes when a stage is not cached.
pub(crate) fn frames_of(frames: Option<&media::Sampled>) -> Result<&media::Sampled, StageError> {
    frames.ok_or_else(|| StageError::new("bug", "frames were not decoded; this is a bug"))
}

/// One LLM request with the system message, cached under `key`.
pub(crate) async fn llm_stage(
    shared: &Shared,
    stage: &str,
    key: &str,
    prompt: Prompt,
    text: String,
) -> StageResult {
    let value = cached(shared, key, stage, || async {
        let model = &shared.plan.wolf.llm;
        let sampling = llm_sampling(shared, stage);
        let reply = ask_llm(shared, stage, model, &text, sampling).await?;
        let stored = stored_from(&reply, model, prompt);
        Ok((json!({ "caption": reply.text.trim() }), stored))
    })
    .await?;
    Ok(caption_of(&value))
}

/// How LLM stage `stage` generates ([`WolfConfig::stage_sampling`]).
pub(crate) fn llm_sampling(shared: &Shared, stage: &str) -> Sampling {
    shared.plan.wolf.stage_sampling(&shared.plan.models, stage)
}

/// One chat request with the system message to LLM entry `model`.
pub(crate) async fn ask_llm(
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
        model,
        &shared.progress.llm_calls,
        llm.chat(&request),
    )
    .await?)
}
