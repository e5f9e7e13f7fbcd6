//! The fusion stage: the LLM's fusion of every source into the `wolf` caption, behind
//! the guard.

use super::cascade::ImageOutcome;
use super::guarded::{Guarded, guarded_stage};
use super::{StageError, StageResult};
use crate::store::VideoRow;
use crate::wolf::keys::Keys;
use crate::wolf::runner::Shared;
use crate::wolf::{MOTION_SOURCE, prompts};

/// The fused caption of `video`, when every input is there (else a `dependency`
/// failure naming the first missing one).
pub(crate) async fn fusion(
    shared: &Shared,
    video: &VideoRow,
    keys: &Keys,
    image_results: &[ImageOutcome],
    motion: Option<&StageResult>,
    video_results: &[(String, StageResult)],
) -> StageResult {
    let mut missing = None;
    let mut summaries = Vec::new();
    for image in image_results {
        match &image.summary {
            Ok(Some(text)) => summaries.push(text.clone()),
            _ => missing = missing.or(Some(format!("summary:{}", image.model))),
        }
    }
    let motion_text = match motion {
        Some(Ok(text)) => text.clone(),
        Some(Err(_)) => {
            missing = missing.or(Some("motion".to_owned()));
            None
        }
        None => None,
    };
    let mut videos = Vec::new();
    for (v, result) in video_results {
        match result {
            Ok(Some(text)) => videos.push(text.clone()),
            _ => missing = missing.or(Some(format!("video:{v}"))),
        }
    }
    if let Some(stage) = missing {
        return Err(StageError::dependency(&stage));
    }
    let annotation = if shared.plan.wolf.fuse_annotation {
        video.reference.as_deref()
    } else {
        None
    };
    let prompt = prompts::fusion(&summaries, motion_text.as_deref(), &videos, annotation);
    let mut candidates = Vec::new();
    for (image, text) in image_results.iter().zip(&summaries) {
        candidates.push((format!("{}:summary", image.model), prompts::plain(text)));
    }
    if let Some(text) = &motion_text {
        candidates.push((MOTION_SOURCE.to_owned(), prompts::plain(text)));
    }
    for ((v, _), text) in video_results.iter().zip(&videos) {
        candidates.push((v.clone(), prompts::plain(text)));
    }
    let stage = Guarded {
        stage: "fusion",
        key: &keys.fusion,
        prompt: prompts::FUSION,
        model: shared.plan.wolf.fusion_llm(),
        text: prompt,
        candidates,
        story: false,
    };
    guarded_stage(shared, stage).await
}
