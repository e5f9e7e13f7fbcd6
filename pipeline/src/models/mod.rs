//! Models: the entries a config names, one small trait per role, and the backends.
//!
//! A role is what a stage asks of a model: an [`ImageCaptioner`] (images and a prompt
//! to text), a [`VideoCaptioner`] (a clip's frames and a prompt to text), a
//! [`ChatModel`] (messages to text) or an [`Embedder`] (texts to vectors). Backends
//! implement the roles they can serve; [`ModelConfig::roles`] says which, and the plan
//! rejects an entry asked for a role its backend cannot serve.
//!
//! Backends: `openai` (any OpenAI-compatible server over HTTP, feature `openai`),
//! `gguf` (llama.cpp in process, feature `gguf`) and `onnx` (ONNX Runtime in process:
//! captioners, LLMs and embedders from a model folder, feature `onnx`). Heavy backends sit behind cargo
//! features; an entry whose backend was left out of the build is an error when it is
//! built, naming the feature.
//!
//! Also: [`check`] (one request to one entry, `wolf model check`), `preflight` (every
//! entry a command uses, tried before work starts), [`loops`] (the repetition rules).
//!
//! Threads: HTTP backends are async. In-process backends run inference on a dedicated
//! thread each and take requests over a bounded channel (STYLE.md, TEI's backend
//! thread); a request whose caller went away is skipped.

pub mod check;
mod entries;
mod error;
#[cfg(feature = "gguf")]
pub mod gguf;
pub mod loops;
#[cfg(feature = "onnx")]
pub mod onnx;
#[cfg(feature = "openai")]
pub mod openai;
mod preflight;
#[cfg(any(test, feature = "test-support"))]
pub mod scripted;
mod set;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use entries::{
    GgufConfig, ImageDetail, ModelConfig, OnnxConfig, OnnxDecoder, OnnxDevice, OpenAiConfig,
    VideoInput, default_models,
};
pub(crate) use error::chain as error_chain;
pub use error::{ErrorKind, ModelError};
pub use preflight::{ModelUse, PreflightError};
pub use set::ModelSet;

use crate::config::ConfigError;
use crate::media::RgbImage;

/// A boxed future, so that the role traits can be used as `dyn` objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a stage asks of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    ImageCaptioner,
    VideoCaptioner,
    Chat,
    Embedder,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ImageCaptioner => "image captioner",
            Self::VideoCaptioner => "video captioner",
            Self::Chat => "chat LLM",
            Self::Embedder => "embedder",
        }
    }
}

/// Who speaks in a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    System,
    User,
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Speaker,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Speaker::System,
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Speaker::User,
            content: content.into(),
        }
    }
}

/// How text is generated. `temperature = 0` is greedy (deterministic) decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sampling {
    /// 0 for greedy decoding.
    pub temperature: f32,
    /// Nucleus sampling's probability mass (with temperature > 0).
    pub top_p: Option<f32>,
    /// The most tokens to generate.
    pub max_tokens: u32,
    /// Seed of the sampler (with temperature > 0).
    pub seed: Option<u64>,
    /// Generation stops before any of these strings.
    pub stop: Vec<String>,
    /// llama.cpp's repetition penalty (above 1: a token already generated is less
    /// likely; the logit is divided by it when positive, multiplied when negative).
    pub repeat_penalty: Option<f32>,
    /// OpenAI's frequency penalty: subtracted from a token's logit once per earlier use.
    pub frequency_penalty: Option<f32>,
    /// OpenAI's presence penalty: subtracted from the logit of a token used before.
    pub presence_penalty: Option<f32>,
    /// Never complete a loop ([`loops`]: a word 4-gram the third time): a token that
    /// would is passed over for the next best. The `onnx` backend honours it; the others
    /// cannot and ignore it (the guard's retry sets it).
    pub no_loops: bool,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: None,
            max_tokens: 256,
            seed: None,
            stop: Vec::new(),
            repeat_penalty: None,
            frequency_penalty: None,
            presence_penalty: None,
            no_loops: false,
        }
    }
}

/// Generation settings given in a config (`[models.NAME.generation]`, `[wolf.generation.
/// STAGE]`): each key set here replaces the one of the [`Sampling`] it is applied to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Generation {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_tokens: Option<u32>,
    pub seed: Option<u64>,
    pub stop: Option<Vec<String>>,
    pub repeat_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
}

impl Generation {
    /// `sampling` with every key set here replaced.
    pub fn apply(&self, mut sampling: Sampling) -> Sampling {
        if let Some(t) = self.temperature {
            sampling.temperature = t;
        }
        if let Some(p) = self.top_p {
            sampling.top_p = Some(p);
        }
        if let Some(m) = self.max_tokens {
            sampling.max_tokens = m;
        }
        if let Some(s) = self.seed {
            sampling.seed = Some(s);
        }
        if let Some(stop) = &self.stop {
            sampling.stop = stop.clone();
        }
        if let Some(r) = self.repeat_penalty {
            sampling.repeat_penalty = Some(r);
        }
        if let Some(f) = self.frequency_penalty {
            sampling.frequency_penalty = Some(f);
        }
        if let Some(p) = self.presence_penalty {
            sampling.presence_penalty = Some(p);
        }
        sampling
    }

    /// Checks the values; the error names the key under `prefix`.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &'static str| {
            Err(ConfigError::Value {
                key: format!("{prefix}.{key}"),
                message,
            })
        };
        if self.temperature.is_some_and(|t| !(0.0..=5.0).contains(&t)) {
            return bad("temperature", "must be between 0 and 5");
        }
        if self.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
            return bad("top_p", "must be above 0 and at most 1");
        }
        if self.max_tokens == Some(0) {
            return bad("max_tokens", "must be at least 1");
        }
        if self
            .repeat_penalty
            .is_some_and(|r| !(r > 0.0 && r.is_finite()))
        {
            return bad("repeat_penalty", "must be above 0 (1 is off)");
        }
        for (key, value) in [
            ("frequency_penalty", self.frequency_penalty),
            ("presence_penalty", self.presence_penalty),
        ] {
            if value.is_some_and(|v| !(-2.0..=2.0).contains(&v)) {
                return bad(key, "must be between -2 and 2");
            }
        }
        Ok(())
    }
}

/// A chat request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub sampling: Sampling,
    /// A GBNF grammar the output must follow, where the backend supports one
    /// ([`ChatModel::supports_grammar`]).
    pub grammar: Option<String>,
}

/// Images (one or more) and a prompt for an image captioner.
#[derive(Debug, Clone, Default)]
pub struct ImageRequest {
    pub images: Vec<RgbImage>,
    pub prompt: String,
    pub system: Option<String>,
    pub sampling: Sampling,
}

/// A clip's frames with their times, and a prompt, for a video captioner.
#[derive(Debug, Clone, Default)]
pub struct VideoRequest {
    pub frames: Vec<RgbImage>,
    /// Seconds from the clip's start, one per frame.
    pub times: Vec<f64>,
    /// The clip itself, for servers that take `video_url`.
    pub video_path: Option<std::path::PathBuf>,
    pub prompt: String,
    pub system: Option<String>,
    pub sampling: Sampling,
}

/// Tokens a request used, as the backend counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// What a model said. `text` is never empty: an empty reply is an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: String,
    pub usage: Option<Usage>,
    /// Wall time of the successful attempt.
    pub latency: Duration,
    /// Attempts made, 1 when the first succeeded.
    pub attempts: u32,
}

/// A chat LLM.
pub trait ChatModel: Send + Sync {
    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<Reply, ModelError>>;

    /// Whether [`ChatRequest::grammar`] is enforced.
    fn supports_grammar(&self) -> bool {
        false
    }
}

/// An image captioner.
pub trait ImageCaptioner: Send + Sync {
    fn caption_images<'a>(
        &'a self,
        request: &'a ImageRequest,
    ) -> BoxFuture<'a, Result<Reply, ModelError>>;
}

/// A video captioner.
pub trait VideoCaptioner: Send + Sync {
    fn caption_video<'a>(
        &'a self,
        request: &'a VideoRequest,
    ) -> BoxFuture<'a, Result<Reply, ModelError>>;
}

/// A sentence embedder.
pub trait Embedder: Send + Sync {
    fn embed<'a>(&'a self, texts: &'a [String])
    -> BoxFuture<'a, Result<Vec<Vec<f32>>, ModelError>>;
}

/// A reply's text checked for content: an empty or blank reply is an error, never an
/// empty caption.
pub fn non_empty(text: String, model: &str) -> Result<String, ModelError> {
    if text.trim().is_empty() {
        return Err(ModelError::new(
            ErrorKind::EmptyReply,
            model,
            "the model replied with no text",
        ));
    }
    Ok(text)
}
