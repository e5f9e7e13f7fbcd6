//! `wolf model check`'s one request: a text, an image or a clip to one entry, sent as
//! the pipeline sends it, and what came back. The binary prints it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{ChatRequest, ImageRequest, Message, ModelError, ModelSet, Reply, Role, Sampling};
use crate::config::{ConfigError, Plan};
use crate::media::{MediaError, RgbImage};
use crate::wolf::prompts;

/// What to ask an entry.
pub enum Probe {
    /// A chat: the prompt, or a greeting.
    Text,
    /// A caption of one image.
    Image(RgbImage),
    /// A caption of the clip at this path.
    Video(PathBuf),
}

/// What came back, with the sampled frames' times (for a clip) and the time it took,
/// loading included.
pub struct Probed {
    pub reply: Reply,
    pub frame_times: Vec<f64>,
    pub elapsed: Duration,
}

/// A probe that could not be made or answered.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("cannot sample frames from `{path}`: {source}")]
    Frames {
        path: PathBuf,
        #[source]
        source: MediaError,
    },
    #[error("frame sampling stopped: {0}")]
    Panic(String),
}

/// Asks entry `name` of `plan` once, generating at most `max_tokens`: a chat for text,
/// a caption for an image (the pipeline's per-frame prompt) or a clip (its frames
/// sampled by the plan's `[sampling]`, with the video stage's payload and prompt).
/// `prompt` replaces the default one.
pub async fn probe(
    plan: &Plan,
    name: &str,
    input: Probe,
    prompt: Option<String>,
    max_tokens: u32,
) -> Result<Probed, ProbeError> {
    let role = match input {
        Probe::Text => Role::Chat,
        Probe::Image(_) => Role::ImageCaptioner,
        Probe::Video(_) => Role::VideoCaptioner,
    };
    plan.model_for(name, role)?;
    let models = ModelSet::new(plan.models.clone());
    let sampling = Sampling {
        max_tokens,
        ..Sampling::default()
    };
    let started = Instant::now();
    let mut frame_times = Vec::new();
    let reply = match input {
        Probe::Video(path) => {
            let (settings, clip) = (plan.sampling, path.clone());
            let frames = tokio::task::spawn_blocking(move || {
                crate::media::sample_frames(&clip, &settings, 0)
            })
            .await
            .map_err(|e| ProbeError::Panic(e.to_string()))?
            .map_err(|source| ProbeError::Frames {
                path: path.clone(),
                source,
            })?;
            frame_times = frames.frames.iter().map(|f| f.time_s).collect();
            let mut request = crate::wolf::video_request(&frames, &path, sampling);
            if let Some(prompt) = prompt {
                request.prompt = prompt;
            }
            models.video_captioner(name)?.caption_video(&request).await
        }
        Probe::Image(image) => {
            let request = ImageRequest {
                images: vec![image],
                prompt: prompt.unwrap_or_else(|| prompts::FRAME.text.to_owned()),
                system: None,
                sampling,
            };
            models.image_captioner(name)?.caption_images(&request).await
        }
        Probe::Text => {
            let request = ChatRequest {
                messages: vec![Message::user(
                    prompt.unwrap_or_else(|| "Say hello in one short sentence.".into()),
                )],
                sampling,
                grammar: None,
            };
            models.chat(name)?.chat(&request).await
        }
    };
    Ok(Probed {
        reply: reply?,
        frame_times,
        elapsed: started.elapsed(),
    })
}
