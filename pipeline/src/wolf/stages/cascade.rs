//! The image models' stages: the cascade (each frame captioned with the previous
//! frame's caption in the prompt, METHOD.md 1.2) and the middle frame alone (the
//! single-image baseline).

use serde_json::json;

use super::{
    StageError, StageResult, cached, caption_of, caption_request, caption_sampling, computed,
    frames_of,
};
use crate::media::{self, RgbImage};
use crate::models::ImageRequest;
use crate::store::{StoredResult, VideoRow};
use crate::wolf::keys::Keys;
use crate::wolf::prompts;
use crate::wolf::runner::Shared;

/// What one image model's stages gave for a video.
pub(crate) struct ImageOutcome {
    pub model: String,
    pub cascade: Result<Cascade, StageError>,
    pub middle: StageResult,
    pub summary: StageResult,
}

/// One image model's frame captions, in order.
#[derive(Debug, Clone)]
pub(crate) struct Cascade {
    pub captions: Vec<String>,
    /// Seconds from the clip's start, one per caption.
    pub times: Vec<f64>,
}

/// Captions one frame with image model `m`, with the previous caption when given.
pub(crate) async fn caption_frame(
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
        sampling: caption_sampling(shared),
    };
    caption_request(
        shared,
        "frame captions",
        &shared.progress.frame_captions,
        m,
        prompts::FRAME,
        captioner.caption_images(&request),
    )
    .await
}

/// Image model `m`'s captions of the sampled frames, in order, each frame (after the
/// first) given the previous caption when the cascade is on.
pub(crate) async fn cascade(
    shared: &Shared,
    video: &VideoRow,
    m: &str,
    keys: &Keys,
    frames: Option<&media::Sampled>,
) -> Result<Cascade, StageError> {
    let cascade_key = &keys.cascade[m];
    let value = cached(shared, cascade_key, "cascade", || async {
        let frames = frames_of(frames)?;
        let mut captions = Vec::with_capacity(frames.frames.len());
        let mut previous_key = String::new();
        for (i, frame) in frames.frames.iter().enumerate() {
            let frame_key = if shared.plan.wolf.cascade {
                shared.keys.cascade_frame(keys, m, i, &previous_key)
            } else {
                shared.keys.lone_frame(keys, m, i)
            };
            let previous: Option<String> = captions.last().cloned();
            let cascading = shared.plan.wolf.cascade && previous.is_some();
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

/// The middle frame alone (the single-image baseline). Without the cascade it is the
/// cascade's own middle caption; with it, one more request without history.
pub(crate) async fn middle(
    shared: &Shared,
    m: &str,
    keys: &Keys,
    frames: Option<&media::Sampled>,
    cascade: Option<&Cascade>,
) -> StageResult {
    let value = cached(shared, &keys.middle[m], "middle", || async {
        if !shared.plan.wolf.cascade
            && let Some(c) = cascade
        {
            let text = c.captions[c.captions.len() / 2].clone();
            let stored = computed(Some(m), prompts::FRAME.version);
            return Ok((json!({ "caption": text }), stored));
        }
        let frames = frames_of(frames)?;
        let i = frames.frames.len() / 2;
        let frame_key = shared.keys.lone_frame(keys, m, i);
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
