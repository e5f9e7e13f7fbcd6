//! The video models' captions of the whole clip (METHOD.md 1.5).

use super::{StageResult, cached, caption_of, caption_request, caption_sampling, frames_of};
use crate::media;
use std::path::Path;

use crate::models::{Sampling, VideoRequest};
use crate::store::VideoRow;
use crate::wolf::keys::Keys;
use crate::wolf::prompts;
use crate::wolf::runner::Shared;

/// What a video model is asked about a clip: its sampled frames with their times, the
/// clip's file (for `video = "video_url"`) and the method's video prompt. `wolf model
/// check --video` sends the same.
pub fn video_request(frames: &media::Sampled, path: &Path, sampling: Sampling) -> VideoRequest {
    VideoRequest {
        frames: frames.frames.iter().map(|f| f.image.clone()).collect(),
        times: frames.frames.iter().map(|f| f.time_s).collect(),
        video_path: Some(path.to_path_buf()),
        prompt: prompts::VIDEO.text.to_owned(),
        system: None,
        sampling,
    }
}

/// Video model `v`'s caption of the clip from its sampled frames.
pub(crate) async fn video_caption(
    shared: &Shared,
    video: &VideoRow,
    v: &str,
    keys: &Keys,
    frames: Option<&media::Sampled>,
    segment: bool,
) -> StageResult {
    let value = cached(shared, &keys.video[v], "video", || async {
        let frames = frames_of(frames)?;
        let captioner = shared.models.video_captioner(v)?;
        let mut request = video_request(
            frames,
            std::path::Path::new(&video.path),
            caption_sampling(shared),
        );
        if segment {
            // The file is the whole video, not the segment.
            request.video_path = None;
        }
        caption_request(
            shared,
            "video captions",
            &shared.progress.video_captions,
            v,
            prompts::VIDEO,
            captioner.caption_video(&request),
        )
        .await
    })
    .await?;
    Ok(caption_of(&value))
}
