//! The `onnx` backend: models run in process by ONNX Runtime (`ort`, `load-dynamic`).
//!
//! A model is a folder in the layout Hugging Face Optimum and transformers.js export,
//! and the folder decides what the entry is ([`Layout::detect`]):
//! - a vision-encoder-decoder captioner (`encoder_model.onnx` with `decoder_model.onnx`
//!   and/or `decoder_model_merged.onnx`: the ViT-GPT2 / TrOCR layout), serving as image
//!   captioner and as video captioner (on a 2×2 storyboard of the clip's frames); it
//!   reads the request's prompt as a decoder prefix when its `config.json` declares
//!   `prompt_prefix`, and ignores it otherwise;
//! - a decoder-only causal LLM with a KV cache (`decoder_model_merged.onnx` or
//!   `model.onnx` with `past_key_values.*` inputs) and a chat template, serving as chat
//!   LLM;
//! - a sentence embedder (BERT-style `model.onnx`), serving as embedder.
//!
//! Apart from the entries, [`ShotModel`] runs TransNetV2, the shot detector that `make
//! setup` converts.
//!
//! ONNX Runtime's library is loaded once per process from `ORT_DYLIB_PATH` or the
//! project-local folder (`.wolf/ort/`, installed by `make setup`). `device = "cuda"`
//! registers the CUDA execution provider when the library has it and falls back to
//! the CPU with a warning when it cannot.
//!
//! Threads: each model owns one dedicated std thread holding its sessions (ONNX Runtime
//! runs sessions with `&mut`); callers send jobs over a bounded channel ([`QUEUE`]).
//! The thread takes the first waiting job, then gathers more for up to `batch_wait_ms`
//! until `batch` items are ready, and runs them as one batch (dynamic batching); a job
//! whose caller went away is skipped. Intra-op threads come from the entry.

mod captioner;
mod embedder;
mod error;
mod folder;
mod generate;
mod llm;
mod runtime;
mod shots;
mod worker;

use std::path::Path;
use std::time::Instant;

pub use captioner::VisionCaptioner;
pub use embedder::SentenceEmbedder;
pub use error::OnnxError;
pub use generate::{DecoderForm, Search};
pub use llm::{CausalLm, Running};
pub use runtime::{Device, SessionOptions};
pub use shots::ShotModel;

use super::{
    BoxFuture, ChatModel, ChatRequest, Embedder, ErrorKind, ImageCaptioner, ImageRequest,
    ModelError, OnnxConfig, Reply, Role, VideoCaptioner, VideoRequest, non_empty,
};
use worker::{Worker, WorkerSettings};

/// Jobs waiting for a model's thread; senders wait when it is full (backpressure).
pub const QUEUE: usize = 64;

/// What a model folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `encoder_model.onnx` and a decoder: an image-to-text captioner.
    VisionEncoderDecoder,
    /// A decoder-only LLM with a KV cache.
    CausalLm,
    /// A BERT-style sentence embedder.
    Embedder,
}

impl Layout {
    /// Reads the folder's file names (and, for `model.onnx`, its input names) to tell
    /// what it holds. The error names what is missing.
    pub fn detect(folder: &Path) -> Result<Self, OnnxError> {
        if !folder.is_dir() {
            return Err(OnnxError::NoFolder(folder.to_owned()));
        }
        let has = |file: &str| folder.join(file).is_file();
        if has("encoder_model.onnx") {
            if has("decoder_model.onnx") || has("decoder_model_merged.onnx") {
                return Ok(Self::VisionEncoderDecoder);
            }
            return Err(OnnxError::NoDecoder(folder.to_owned()));
        }
        if has("decoder_model_merged.onnx") {
            return Ok(Self::CausalLm);
        }
        if has("model.onnx") {
            let config = folder::read_json(&folder.join("config.json")).unwrap_or_default();
            let decoder = config
                .get("architectures")
                .and_then(|a| a.as_array())
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str())
                .any(|a| a.ends_with("ForCausalLM") || a.ends_with("LMHeadModel"));
            return Ok(if decoder {
                Self::CausalLm
            } else {
                Self::Embedder
            });
        }
        Err(OnnxError::NoModel(folder.to_owned()))
    }

    pub fn roles(self) -> &'static [Role] {
        match self {
            Self::VisionEncoderDecoder => &[Role::ImageCaptioner, Role::VideoCaptioner],
            Self::CausalLm => &[Role::Chat],
            Self::Embedder => &[Role::Embedder],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::VisionEncoderDecoder => "vision-encoder-decoder captioner",
            Self::CausalLm => "causal LLM",
            Self::Embedder => "sentence embedder",
        }
    }
}

/// An ONNX model folder on its own inference thread.
pub struct OnnxModel {
    name: String,
    layout: Layout,
    worker: Worker,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("name", &self.name)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl OnnxModel {
    /// Loads the folder of `config` and starts its inference thread. Fails (kind
    /// `load`) when the folder does not match a layout, ONNX Runtime cannot be loaded
    /// or a graph does not have the inputs and outputs the layout needs.
    pub fn load(name: &str, config: &OnnxConfig) -> Result<Self, ModelError> {
        let folder = config.resolved_path().ok_or_else(|| {
            ModelError::new(
                ErrorKind::Load,
                name,
                "no model folder: `path` is not set and no `.wolf/` folder was found; run \
                 `make setup`",
            )
        })?;
        let layout =
            Layout::detect(&folder).map_err(|e| e.to_model_error(ErrorKind::Load, name))?;
        let settings = WorkerSettings {
            name: name.to_owned(),
            folder,
            layout,
            options: SessionOptions {
                device: config.device,
                threads: config.threads,
            },
            search: Search {
                num_beams: config.num_beams,
                max_length: config.max_length,
            },
            decoder: config.decoder,
            batch: config.batch,
            batch_wait: std::time::Duration::from_millis(config.batch_wait_ms),
        };
        let worker = Worker::start(settings)?;
        Ok(Self {
            name: name.to_owned(),
            layout,
            worker,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    fn unsupported(&self, role: Role) -> ModelError {
        ModelError::new(
            ErrorKind::Unsupported,
            &self.name,
            format!(
                "the folder holds a {}, which cannot serve as {}",
                self.layout.as_str(),
                role.as_str()
            ),
        )
    }

    async fn caption(
        &self,
        image: crate::media::RgbImage,
        prompt: &str,
    ) -> Result<Reply, ModelError> {
        if self.layout != Layout::VisionEncoderDecoder {
            return Err(self.unsupported(Role::ImageCaptioner));
        }
        let started = Instant::now();
        let caption = self.worker.caption(image, prompt.to_owned()).await?;
        Ok(Reply {
            text: non_empty(caption.text, &self.name)?,
            usage: Some(super::Usage {
                prompt_tokens: caption.prompt_tokens,
                completion_tokens: caption.tokens,
            }),
            latency: started.elapsed(),
            attempts: 1,
        })
    }
}

/// The image a captioner sees for several images: a storyboard of them, 2 columns
/// (the 2×2 layout of the fixture storyboard captioner for four frames).
fn one_image(
    images: &[crate::media::RgbImage],
    model: &str,
) -> Result<crate::media::RgbImage, ModelError> {
    match images {
        [] => Err(ModelError::new(
            ErrorKind::BadRequest,
            model,
            "the request has no image",
        )),
        [one] => Ok(one.clone()),
        several => crate::media::storyboard(several, 2)
            .map_err(|e| ModelError::new(ErrorKind::BadRequest, model, e.to_string())),
    }
}

/// Four frames of a clip at the centres of four equal segments (the storyboard the
/// fixture storyboard captioner was trained on), or all of them when there are fewer.
fn storyboard_frames(frames: &[crate::media::RgbImage]) -> Vec<crate::media::RgbImage> {
    const TILES: usize = 4;
    if frames.len() <= TILES {
        return frames.to_vec();
    }
    let n = frames.len();
    (0..TILES)
        .map(|k| frames[((2 * k + 1) * n) / (2 * TILES)].clone())
        .collect()
}

impl ImageCaptioner for OnnxModel {
    /// The prompt is the decoder's prefix when the folder declares `prompt_prefix`;
    /// other captioners of this layout are unconditional and ignore it.
    fn caption_images<'a>(
        &'a self,
        request: &'a ImageRequest,
    ) -> BoxFuture<'a, Result<Reply, ModelError>> {
        Box::pin(async move {
            let image = one_image(&request.images, &self.name)?;
            self.caption(image, &request.prompt).await
        })
    }
}

impl VideoCaptioner for OnnxModel {
    /// Captions a 2×2 storyboard of four of the clip's frames; the prompt is read as
    /// for an image (only by a folder that declares `prompt_prefix`).
    fn caption_video<'a>(
        &'a self,
        request: &'a VideoRequest,
    ) -> BoxFuture<'a, Result<Reply, ModelError>> {
        Box::pin(async move {
            if self.layout != Layout::VisionEncoderDecoder {
                return Err(self.unsupported(Role::VideoCaptioner));
            }
            let frames = storyboard_frames(&request.frames);
            let image = one_image(&frames, &self.name)?;
            self.caption(image, &request.prompt).await
        })
    }
}

impl ChatModel for OnnxModel {
    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<Reply, ModelError>> {
        Box::pin(async move {
            if self.layout != Layout::CausalLm {
                return Err(self.unsupported(Role::Chat));
            }
            if request.grammar.is_some() {
                return Err(ModelError::new(
                    ErrorKind::Unsupported,
                    &self.name,
                    "the onnx backend does not enforce grammars",
                ));
            }
            let started = Instant::now();
            let generation = self.worker.chat(request.clone()).await?;
            Ok(Reply {
                text: non_empty(generation.text, &self.name)?,
                usage: Some(generation.usage),
                latency: started.elapsed(),
                attempts: 1,
            })
        })
    }
}

impl Embedder for OnnxModel {
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, ModelError>> {
        Box::pin(async move {
            if self.layout != Layout::Embedder {
                return Err(self.unsupported(Role::Embedder));
            }
            self.worker.embed(texts.to_vec()).await
        })
    }
}
