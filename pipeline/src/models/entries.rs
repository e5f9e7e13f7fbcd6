//! Model entries as a config writes them (`[models.NAME]`), and the embedded defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Generation, Role};
use crate::config::ConfigError;
use crate::home::Home;

/// `[models.NAME]`: one model, by backend. The key `backend` picks the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelConfig {
    /// Any OpenAI-compatible chat server (vLLM, SGLang, llama.cpp's server, Ollama,
    /// OpenAI, Gemini's compatible endpoint).
    Openai(OpenAiConfig),
    /// A GGUF LLM run in process by llama.cpp.
    Gguf(GgufConfig),
    /// A model folder run in process by ONNX Runtime: a captioner, an LLM or an
    /// embedder, as the folder's files say.
    Onnx(OnnxConfig),
}

/// `backend = "openai"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiConfig {
    /// The API's base URL, up to and including `/v1` (e.g. `http://127.0.0.1:8000/v1`).
    pub base_url: String,
    /// The model name the server knows.
    pub model: String,
    /// Name of the environment variable that holds the API key (never the key
    /// itself). Absent: no `Authorization` header.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Requests in flight at once (default 8).
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Seconds before a request is abandoned as timed out (default 120).
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// Retries after the first attempt on 429, 5xx, timeouts and connection errors
    /// (default 4).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Longest wait before a retry, in seconds, whatever `Retry-After` says
    /// (default 60).
    #[serde(default = "default_max_backoff")]
    pub max_backoff_s: f64,
    /// Longest side, in pixels, of images sent to the server (default 768).
    #[serde(default = "default_image_size")]
    pub image_size: u32,
    /// JPEG quality of images sent to the server (default 85).
    #[serde(default = "default_jpeg_quality")]
    pub jpeg_quality: u8,
    /// How a video reaches a video model: `frames` (a list of images, the default) or
    /// `video_url` (the clip's file as a data URL, for servers that take it).
    #[serde(default)]
    pub video: VideoInput,
    /// Generation settings of this entry's requests (`[models.NAME.generation]`); a
    /// stage's own (`[wolf.generation.STAGE]`) replace them key by key.
    #[serde(default)]
    pub generation: Generation,
    /// Fields merged into every chat request's JSON body as they are, for a server's
    /// own parameters (vLLM's `repetition_penalty` or `mm_processor_kwargs`, say).
    #[serde(default)]
    pub extra_body: Option<toml::Table>,
    /// Headers sent with every request: header name = the name of the environment
    /// variable that holds its value (never the value itself, as with `api_key_env`).
    /// Their values are redacted from whatever the server says, like the key.
    #[serde(default)]
    pub extra_headers: BTreeMap<String, String>,
    /// OpenAI's image `detail` (`low`, `high` or `auto`), sent with every image when
    /// set; absent, images carry none and the server decides.
    #[serde(default)]
    pub detail: Option<ImageDetail>,
}

/// OpenAI's `detail` of an image part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageDetail {
    Low,
    High,
    Auto,
}

/// How a video reaches an `openai` video model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoInput {
    #[default]
    Frames,
    VideoUrl,
}

/// `backend = "gguf"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GgufConfig {
    /// The `.gguf` file. Absent: the default model pack's SmolLM2-135M-Instruct.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Inference threads (default 0: one per core).
    #[serde(default)]
    pub threads: usize,
    /// Context size in tokens of each sequence (default 4096).
    #[serde(default = "default_context")]
    pub context: u32,
    /// Requests decoded together, each a sequence of one context (continuous batching;
    /// default 4). Each sequence has `context` tokens of its own: KV memory grows with
    /// `context × parallel`.
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    /// Generation settings of this entry's requests (`[models.NAME.generation]`); a
    /// stage's own (`[wolf.generation.STAGE]`) replace them key by key.
    #[serde(default)]
    pub generation: Generation,
}

/// `backend = "onnx"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxConfig {
    /// The model folder (the Optimum / transformers.js export layout). Absent: the
    /// default model pack's embedder.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `cpu` (the default) or `cuda` (falls back to the CPU, with a warning, when the
    /// loaded ONNX Runtime has no usable CUDA provider).
    #[serde(default)]
    pub device: OnnxDevice,
    /// Intra-op threads (default 0: one per core).
    #[serde(default)]
    pub threads: usize,
    /// The most images (captioners), texts (embedders) or chats (LLMs) run as one batch
    /// (default 8).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Milliseconds a request waits for others to share its batch (default 5).
    #[serde(default = "default_batch_wait_ms")]
    pub batch_wait_ms: u64,
    /// Captioners: `auto` (the merged KV-cache decoder when present), `merged` or
    /// `plain`.
    #[serde(default)]
    pub decoder: OnnxDecoder,
    /// Captioners: beams of beam search (1: greedy). Absent: the folder's
    /// `generation_config.json`.
    #[serde(default)]
    pub num_beams: Option<usize>,
    /// Captioners: the longest caption in tokens, the start token included. Absent: the
    /// folder's `generation_config.json`.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// Generation settings of this entry's requests (`[models.NAME.generation]`); a
    /// stage's own (`[wolf.generation.STAGE]`) replace them key by key.
    #[serde(default)]
    pub generation: Generation,
}

#[cfg(feature = "onnx")]
pub use super::onnx::{DecoderForm as OnnxDecoder, Device as OnnxDevice};

/// Where an `onnx` model runs (this build has no `onnx` backend).
#[cfg(not(feature = "onnx"))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnnxDevice {
    #[default]
    Cpu,
    Cuda,
}

/// Which decoder an `onnx` captioner runs (this build has no `onnx` backend).
#[cfg(not(feature = "onnx"))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnnxDecoder {
    #[default]
    Auto,
    Merged,
    Plain,
}

fn default_batch() -> usize {
    8
}
fn default_batch_wait_ms() -> u64 {
    5
}
fn default_concurrency() -> usize {
    8
}
fn default_timeout() -> f64 {
    120.0
}
fn default_retries() -> u32 {
    4
}
fn default_max_backoff() -> f64 {
    60.0
}
fn default_image_size() -> u32 {
    768
}
fn default_jpeg_quality() -> u8 {
    85
}
fn default_context() -> u32 {
    4096
}
fn default_parallel() -> usize {
    4
}
/// The most sequences of a `gguf` entry (llama.cpp allows 256; 64 is plenty on a CPU).
pub const MAX_PARALLEL: usize = 64;

impl ModelConfig {
    /// The backend's name as written in configs.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Openai(_) => "openai",
            Self::Gguf(_) => "gguf",
            Self::Onnx(_) => "onnx",
        }
    }

    /// The roles this backend can serve.
    pub fn roles(&self) -> &'static [Role] {
        match self {
            Self::Openai(_) => &[
                Role::ImageCaptioner,
                Role::VideoCaptioner,
                Role::Chat,
                Role::Embedder,
            ],
            Self::Gguf(_) => &[Role::Chat],
            // The folder decides which (checked when it is loaded).
            Self::Onnx(_) => &[
                Role::ImageCaptioner,
                Role::VideoCaptioner,
                Role::Chat,
                Role::Embedder,
            ],
        }
    }

    /// The entry with a relative model `path` taken from `base` (an entry written by a
    /// trainer beside the model it exported).
    pub fn based_at(mut self, base: &Path) -> Self {
        let path = match &mut self {
            Self::Openai(_) => None,
            Self::Gguf(c) => c.path.as_mut(),
            Self::Onnx(c) => c.path.as_mut(),
        };
        if let Some(path) = path.filter(|p| p.is_relative()) {
            *path = base.join(&*path);
        }
        self
    }

    /// The roles this entry serves: its backend's, or for an `onnx` entry its folder's
    /// (read from the file names; all four when the folder cannot be read).
    pub fn served_roles(&self) -> &'static [Role] {
        #[cfg(feature = "onnx")]
        if let Self::Onnx(c) = self
            && let Some(layout) = c
                .resolved_path()
                .and_then(|p| crate::models::onnx::Layout::detect(&p).ok())
        {
            return layout.roles();
        }
        self.roles()
    }

    /// Checks the entry's values; the error names the key.
    pub fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &'static str| ConfigError::Value {
            key: format!("models.{name}.{key}"),
            message,
        };
        match self {
            Self::Openai(c) => {
                if !(c.base_url.starts_with("http://") || c.base_url.starts_with("https://")) {
                    return Err(invalid("base_url", "must start with http:// or https://"));
                }
                if c.model.trim().is_empty() {
                    return Err(invalid("model", "must not be empty"));
                }
                if c.max_concurrency == 0 {
                    return Err(invalid("max_concurrency", "must be at least 1"));
                }
                if !(c.timeout_s.is_finite() && c.timeout_s > 0.0) {
                    return Err(invalid("timeout_s", "must be above 0"));
                }
                if !(c.max_backoff_s.is_finite() && c.max_backoff_s >= 0.0) {
                    return Err(invalid("max_backoff_s", "must be 0 or more"));
                }
                if !(1..=100).contains(&c.jpeg_quality) {
                    return Err(invalid("jpeg_quality", "must be between 1 and 100"));
                }
                if c.image_size < 16 {
                    return Err(invalid("image_size", "must be at least 16"));
                }
            }
            Self::Gguf(c) => {
                if c.context < 64 {
                    return Err(invalid("context", "must be at least 64"));
                }
                if !(1..=MAX_PARALLEL).contains(&c.parallel) {
                    return Err(invalid("parallel", "must be between 1 and 64"));
                }
            }
            Self::Onnx(c) => {
                if c.batch == 0 {
                    return Err(invalid("batch", "must be at least 1"));
                }
                if c.num_beams == Some(0) {
                    return Err(invalid("num_beams", "must be at least 1"));
                }
                if c.max_length.is_some_and(|n| n < 2) {
                    return Err(invalid("max_length", "must be at least 2"));
                }
            }
        }
        self.generation()
            .validate(&format!("models.{name}.generation"))
    }

    /// The entry's generation settings.
    pub fn generation(&self) -> &Generation {
        match self {
            Self::Openai(c) => &c.generation,
            Self::Gguf(c) => &c.generation,
            Self::Onnx(c) => &c.generation,
        }
    }
}

impl GgufConfig {
    /// The model file: `path`, or the default model pack's LLM.
    pub fn resolved_path(&self) -> Option<PathBuf> {
        self.path
            .clone()
            .or_else(|| Home::locate().map(|home| home.default_llm()))
    }
}

impl OnnxConfig {
    /// An entry for `path` with every other key at its default.
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            device: OnnxDevice::default(),
            threads: 0,
            batch: default_batch(),
            batch_wait_ms: default_batch_wait_ms(),
            decoder: OnnxDecoder::default(),
            num_beams: None,
            max_length: None,
            generation: Generation::default(),
        }
    }

    /// The model folder: `path` (a relative one from the current directory, else from
    /// the checkout that holds `.wolf/`), or the default model pack's embedder.
    pub fn resolved_path(&self) -> Option<PathBuf> {
        match &self.path {
            Some(path) if path.is_relative() && !path.exists() => Some(
                Home::locate()
                    .and_then(|home| home.root().parent().map(|root| root.join(path)))
                    .filter(|p| p.exists())
                    .unwrap_or_else(|| path.clone()),
            ),
            Some(path) => Some(path.clone()),
            None => Home::locate().map(|home| home.default_embedder()),
        }
    }
}

/// The entries a config without `[models]` gets: the default model pack installed by
/// `make setup` (the SmolLM2 LLM, the MiniLM embedder) and the checkout's fixture
/// captioners (`fixtures/models/`).
pub fn default_models() -> BTreeMap<String, ModelConfig> {
    let fixtures = Home::locate()
        .and_then(|home| home.root().parent().map(|p| p.join("fixtures/models")))
        .unwrap_or_else(|| PathBuf::from("fixtures/models"));
    BTreeMap::from([
        (
            "smollm2".to_owned(),
            ModelConfig::Gguf(GgufConfig {
                path: None,
                threads: 0,
                context: default_context(),
                parallel: default_parallel(),
                generation: Generation::default(),
            }),
        ),
        (
            "minilm".to_owned(),
            ModelConfig::Onnx(OnnxConfig::new(None)),
        ),
        (
            "frame-captioner".to_owned(),
            ModelConfig::Onnx(OnnxConfig::new(Some(fixtures.join("frame-captioner")))),
        ),
        (
            "storyboard-captioner".to_owned(),
            ModelConfig::Onnx(OnnxConfig::new(Some(fixtures.join("storyboard-captioner")))),
        ),
    ])
}
