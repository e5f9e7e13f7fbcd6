//! The motion stage: tracks of the grounded boxes in the image models' frame captions
//! (or of the dataset's boxes), verbalised by the LLM or by a fixed sentence.

use serde_json::json;

use super::cascade::ImageOutcome;
use super::{StageError, StageResult, cached, caption_of, computed, llm_stage};
use crate::store::VideoRow;
use crate::wolf::runner::Shared;
use crate::wolf::{MotionSource, motion, prompts};

/// The motion caption of `video` under key `key`.
pub(crate) async fn motion(
    shared: &Shared,
    video: &VideoRow,
    key: &str,
    image_results: &[ImageOutcome],
) -> StageResult {
    let detections = match shared.plan.wolf.motion {
        MotionSource::Dataset => {
            let fps = video.fps.unwrap_or(1.0).max(1e-3);
            match shared.boxes.get(&video.key) {
                Some(clip) => motion::from_boxes_json(clip, fps)
                    .map_err(|e| StageError::new("bad_boxes", e.to_string()))?,
                None => {
                    return Err(StageError::new(
                        "no_boxes",
                        format!("`{}` is not in `wolf.boxes_file`", video.key),
                    ));
                }
            }
        }
        _ => grounded(image_results)?,
    };
    motion_caption(shared, key, &detections).await
}

/// Detections per frame from every image model's grounded frame captions.
fn grounded(image_results: &[ImageOutcome]) -> Result<Vec<motion::FrameDetections>, StageError> {
    let mut frames: Vec<motion::FrameDetections> = Vec::new();
    for image in image_results {
        let cascade = image
            .cascade
            .as_ref()
            .map_err(|_| StageError::dependency(&format!("cascade:{}", image.model)))?;
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
    let tracks = motion::associate(frames, shared.plan.wolf.motion_min_track_fraction);
    let motions: Vec<motion::TrackMotion> = tracks.iter().map(motion::describe).collect();
    if motions.is_empty() {
        return Ok(None);
    }
    if shared.plan.wolf.motion_llm {
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
