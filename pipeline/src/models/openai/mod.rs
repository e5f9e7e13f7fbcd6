//! The `openai` backend: any OpenAI-compatible server over HTTP (vLLM, SGLang,
//! llama.cpp's server, Ollama, OpenAI, Gemini's compatible endpoint).
//!
//! One [`OpenAiModel`] per config entry holds one `reqwest::Client` (a pooled
//! connection per request in flight), a semaphore of `max_concurrency` permits and the
//! API key read once from the environment variable the entry names. A request body is
//! built and serialized once (images resized and encoded as JPEG data URLs), then sent
//! as often as retries need: 429, 5xx, timeouts and broken connections are retried with
//! exponential backoff and full jitter, or after the server's `Retry-After`, capped by
//! `max_backoff_s`. A permit is held for one attempt, not across the waits between
//! attempts, so a model backing off leaves its slots to requests that can proceed.
//!
//! Threads: async. Resizing and JPEG encoding are CPU work; on a multi-threaded runtime
//! they run under `block_in_place`, so that the images need not be copied to a
//! blocking thread.
//!
//! The key never reaches a log: it lives in a header value marked sensitive, and the
//! model's `Debug` prints `<redacted>`. Nor does a server's echo of it: its value is
//! replaced by `<redacted>` in every reply body as it arrives, before anything parses,
//! quotes, stores or prints it (a careless server quotes the request's headers in an
//! error body).
//!
//! Files: this one (the client), `wire` (the request and reply types and their
//! parsers), `failure` (which failures are retried, and the messages that quote a
//! server).

use std::borrow::Cow;
use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use tokio::sync::Semaphore;

use super::{
    BoxFuture, ChatModel, ChatRequest, Embedder, ErrorKind, ImageCaptioner, ImageRequest,
    ModelError, OpenAiConfig, Reply, Sampling, Speaker, VideoCaptioner, VideoInput, VideoRequest,
};
use crate::media::{self, ImageFormat, RgbImage};

mod failure;
mod wire;

use super::error::chain;
use failure::*;
use wire::*;

/// The first retry waits up to this long; each later one up to twice the one before
/// (full jitter), never more than `max_backoff_s`.
const BASE_BACKOFF: Duration = Duration::from_millis(500);

/// The preflight's `GET /models` waits at most this long (or the entry's `timeout_s`,
/// when shorter): a server that has not answered by then is not ready.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);

/// A model served by an OpenAI-compatible server.
pub struct OpenAiModel {
    name: String,
    config: OpenAiConfig,
    chat_url: reqwest::Url,
    embeddings_url: reqwest::Url,
    models_url: reqwest::Url,
    /// The key and the `extra_headers` values, for [`redact`]ing them from what the
    /// server says; they are sent only from the client's default headers, marked
    /// sensitive.
    secrets: Vec<String>,
    client: reqwest::Client,
    permits: Semaphore,
    timeout: Duration,
    max_backoff: Duration,
}

impl std::fmt::Debug for OpenAiModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiModel")
            .field("name", &self.name)
            .field("base_url", &self.config.base_url)
            .field("model", &self.config.model)
            .field("api_key_env", &self.config.api_key_env)
            .field(
                "api_key",
                &if self.config.api_key_env.is_some() {
                    REDACTED
                } else {
                    "<none>"
                },
            )
            .field("max_concurrency", &self.config.max_concurrency)
            .field("timeout_s", &self.config.timeout_s)
            .field("max_retries", &self.config.max_retries)
            .finish_non_exhaustive()
    }
}

impl OpenAiModel {
    /// Builds the client for entry `name`. Fails with kind `auth` when `api_key_env`
    /// names a variable that is not set (or holds no usable key).
    pub fn try_new(name: &str, config: &OpenAiConfig) -> Result<Self, ModelError> {
        let key = match &config.api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(key) if !key.trim().is_empty() => Some(key),
                _ => {
                    return Err(ModelError::new(
                        ErrorKind::Auth,
                        name,
                        format!(
                            "the environment variable `{var}` that `api_key_env` names is not set or empty"
                        ),
                    ));
                }
            },
        };
        let mut extra = Vec::new();
        for (header, var) in &config.extra_headers {
            match std::env::var(var) {
                Ok(value) if !value.trim().is_empty() => extra.push((header.clone(), value)),
                _ => {
                    return Err(ModelError::new(
                        ErrorKind::Auth,
                        name,
                        format!(
                            "the environment variable `{var}` that `extra_headers` names for `{header}` is not set or empty"
                        ),
                    ));
                }
            }
        }
        Self::with_secrets(name, config, key, extra)
    }

    /// The client, with the key (if any) and the `extra_headers` as (name, value).
    fn with_secrets(
        name: &str,
        config: &OpenAiConfig,
        key: Option<String>,
        extra: Vec<(String, String)>,
    ) -> Result<Self, ModelError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let key = key.map(|k| k.trim().to_owned());
        if let Some(key) = &key {
            let mut value = HeaderValue::try_from(format!("Bearer {key}")).map_err(|_| {
                ModelError::new(
                    ErrorKind::Auth,
                    name,
                    "the API key is not a valid HTTP header value",
                )
            })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        let mut secrets: Vec<String> = key.into_iter().collect();
        for (header, value) in extra {
            let value = value.trim().to_owned();
            let invalid = |what: &str| {
                ModelError::new(
                    ErrorKind::Load,
                    name,
                    format!("`extra_headers` `{header}`: not a valid HTTP header {what}"),
                )
            };
            let header_name =
                header::HeaderName::try_from(header.as_str()).map_err(|_| invalid("name"))?;
            let mut header_value =
                HeaderValue::try_from(value.as_str()).map_err(|_| invalid("value"))?;
            header_value.set_sensitive(true);
            headers.insert(header_name, header_value);
            secrets.push(value);
        }
        let timeout = seconds(config.timeout_s);
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("wolf/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(config.max_concurrency.max(1))
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| {
                ModelError::new(
                    ErrorKind::Load,
                    name,
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
        let base = config.base_url.trim_end_matches('/');
        let url = |path: &str| {
            reqwest::Url::parse(&format!("{base}/{path}")).map_err(|e| {
                ModelError::new(
                    ErrorKind::Load,
                    name,
                    format!("`base_url` `{}` is not a URL: {e}", config.base_url),
                )
            })
        };
        Ok(Self {
            name: name.to_owned(),
            chat_url: url("chat/completions")?,
            embeddings_url: url("embeddings")?,
            models_url: url("models")?,
            secrets,
            client,
            permits: Semaphore::new(config.max_concurrency.max(1)),
            timeout,
            max_backoff: seconds(config.max_backoff_s),
            config: config.clone(),
        })
    }

    /// An image part's URL, with the entry's `detail` when it sets one.
    fn image_url(&self, url: String) -> Url {
        Url {
            url,
            detail: self.config.detail,
        }
    }

    /// The entry's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn error(&self, kind: ErrorKind, message: impl Into<String>) -> ModelError {
        ModelError::new(kind, &self.name, message)
    }

    /// The preflight's check: one `GET {base_url}/models`, not retried, which must
    /// answer and list the entry's `model`. A server that answers without listing it
    /// fails with kind `unknown_model` and the names it does list.
    pub async fn check_served(&self) -> Result<(), ModelError> {
        let limit = self.timeout.min(PREFLIGHT_TIMEOUT);
        let failed = |e: reqwest::Error| {
            let mut error = self.transport(&e).error;
            if error.kind == ErrorKind::Timeout {
                error.message = format!(
                    "`GET {}` had no answer within {} s",
                    self.models_url,
                    limit.as_secs_f64()
                );
            }
            error
        };
        let response = self
            .client
            .get(self.models_url.clone())
            .timeout(limit)
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(failed)?;
        let bytes = redact(bytes, &self.secrets);
        let url = &self.models_url;
        if !status.is_success() {
            let mut error = self.status_error(status, &bytes, Carries::Text);
            error.message = format!(
                "`GET {url}`: {} (a server without this endpoint: `--no-preflight` skips the check)",
                error.message
            );
            return Err(error);
        }
        let listed = parse_models(&bytes, &self.name)?;
        if listed.contains(&self.config.model) {
            return Ok(());
        }
        let names = if listed.is_empty() {
            "none".to_owned()
        } else {
            listed
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(self.error(
            ErrorKind::UnknownModel,
            format!(
                "the server at `{}` does not list model `{}`; it lists {names} (set the entry's `model` to one of them)",
                self.config.base_url, self.config.model
            ),
        ))
    }

    async fn chat_impl(&self, request: &ChatRequest) -> Result<Reply, ModelError> {
        let messages = request
            .messages
            .iter()
            .map(|m| WireMessage {
                role: m.role,
                content: Content::Text(&m.content),
            })
            .collect();
        self.complete(messages, &request.sampling, Carries::Text)
            .await
    }

    async fn images_impl(&self, request: &ImageRequest) -> Result<Reply, ModelError> {
        if request.images.is_empty() {
            return Err(self.error(
                ErrorKind::BadRequest,
                "an image request needs at least one image",
            ));
        }
        let urls = cpu(|| {
            request
                .images
                .iter()
                .map(|image| self.data_url(image))
                .collect::<Result<Vec<_>, _>>()
        })?;
        let mut parts: Vec<Part<'_>> = urls
            .into_iter()
            .map(|url| Part::ImageUrl {
                image_url: self.image_url(url),
            })
            .collect();
        parts.push(Part::Text {
            text: Cow::Borrowed(&request.prompt),
        });
        self.complete(
            with_system(request.system.as_deref(), parts),
            &request.sampling,
            Carries::Images,
        )
        .await
    }

    async fn video_impl(&self, request: &VideoRequest) -> Result<Reply, ModelError> {
        let mut parts: Vec<Part<'_>> = Vec::new();
        let carries = match self.config.video {
            VideoInput::Frames => Carries::Images,
            VideoInput::VideoUrl => Carries::Video,
        };
        match self.config.video {
            VideoInput::Frames => {
                if request.frames.is_empty() {
                    return Err(self.error(
                        ErrorKind::BadRequest,
                        "a video request needs at least one frame",
                    ));
                }
                if request.times.len() != request.frames.len() {
                    return Err(self.error(
                        ErrorKind::BadRequest,
                        format!(
                            "{} frames come with {} times",
                            request.frames.len(),
                            request.times.len()
                        ),
                    ));
                }
                let urls = cpu(|| {
                    request
                        .frames
                        .iter()
                        .map(|image| self.data_url(image))
                        .collect::<Result<Vec<_>, _>>()
                })?;
                parts.reserve(urls.len() * 2 + 1);
                for (i, (url, t)) in urls.into_iter().zip(&request.times).enumerate() {
                    parts.push(Part::Text {
                        text: Cow::Owned(format!("Frame {} at {t:.2} s:", i + 1)),
                    });
                    parts.push(Part::ImageUrl {
                        image_url: self.image_url(url),
                    });
                }
            }
            VideoInput::VideoUrl => {
                let Some(path) = &request.video_path else {
                    return Err(self.error(
                        ErrorKind::Unsupported,
                        "`video = \"video_url\"` needs the clip's file, and the request has none",
                    ));
                };
                // A clip in a tar shard is its member's bytes.
                let clip = path.clone();
                let read = tokio::task::spawn_blocking(move || {
                    let mut bytes = Vec::new();
                    crate::media::open_bytes(&clip)?.read_to_end(&mut bytes)?;
                    Ok::<_, std::io::Error>(bytes)
                });
                let bytes = read
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                    .map_err(|e| {
                        self.error(
                            ErrorKind::BadRequest,
                            format!("cannot read the clip `{}`: {e}", path.display()),
                        )
                    })?;
                let name = crate::media::media_name(path);
                let url = cpu(|| data_url(video_mime(&name), &bytes));
                parts.push(Part::VideoUrl {
                    video_url: Url { url, detail: None },
                });
            }
        }
        parts.push(Part::Text {
            text: Cow::Borrowed(&request.prompt),
        });
        self.complete(
            with_system(request.system.as_deref(), parts),
            &request.sampling,
            carries,
        )
        .await
    }

    /// Resizes an image so that its longer side is at most `image_size` and encodes it
    /// as a JPEG data URL.
    fn data_url(&self, image: &RgbImage) -> Result<String, ModelError> {
        let (w, h) = image.dimensions();
        if w == 0 || h == 0 {
            return Err(self.error(ErrorKind::BadRequest, format!("an image is {w}×{h}")));
        }
        let max = self.config.image_size.max(1);
        let resized;
        let image = if w.max(h) > max {
            let scale = f64::from(max) / f64::from(w.max(h));
            let nw = ((f64::from(w) * scale).round() as u32).clamp(1, max);
            let nh = ((f64::from(h) * scale).round() as u32).clamp(1, max);
            resized = image::imageops::resize(image, nw, nh, image::imageops::FilterType::Triangle);
            &resized
        } else {
            image
        };
        let jpeg = media::encode_image(image, ImageFormat::Jpeg(self.config.jpeg_quality))
            .map_err(|e| self.error(ErrorKind::BadRequest, e.to_string()))?;
        Ok(data_url("image/jpeg", &jpeg))
    }

    /// Sends one chat completion request (retrying as configured) and reads its text.
    async fn complete(
        &self,
        messages: Vec<WireMessage<'_>>,
        sampling: &Sampling,
        carries: Carries,
    ) -> Result<Reply, ModelError> {
        let body = ChatBody {
            model: &self.config.model,
            messages,
            temperature: sampling.temperature,
            top_p: sampling.top_p,
            max_tokens: sampling.max_tokens,
            seed: sampling.seed,
            stop: &sampling.stop,
            frequency_penalty: sampling.frequency_penalty,
            presence_penalty: sampling.presence_penalty,
            repetition_penalty: sampling.repeat_penalty,
            extra: self.config.extra_body.as_ref(),
        };
        let bytes =
            serde_json::to_vec(&body).expect("a chat request always serializes; this is a bug");
        drop(body);
        let ((text, usage), latency, attempts) = self
            .call(&self.chat_url, bytes.into(), carries, |b| {
                parse_chat(b, &self.name)
            })
            .await?;
        Ok(Reply {
            text,
            usage,
            latency,
            attempts,
        })
    }

    /// Sends `body` to `url` until it succeeds, fails for good, or the retries run out.
    /// Returns the parsed reply, the successful attempt's wall time and the attempts
    /// made.
    async fn call<T>(
        &self,
        url: &reqwest::Url,
        body: Bytes,
        carries: Carries,
        parse: impl Fn(&[u8]) -> Result<T, ModelError>,
    ) -> Result<(T, Duration, u32), ModelError> {
        let allowed = self.config.max_retries.saturating_add(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let permit = self
                .permits
                .acquire()
                .await
                .expect("the semaphore is never closed; this is a bug");
            let start = Instant::now();
            let outcome = self.attempt(url, body.clone(), carries).await;
            drop(permit);
            let failure = match outcome {
                Ok(bytes) => {
                    let latency = start.elapsed();
                    return match parse(&bytes) {
                        Ok(value) => Ok((value, latency, attempt)),
                        Err(e) => Err(with_attempts(e, attempt)),
                    };
                }
                Err(failure) => failure,
            };
            if !failure.error.kind.is_retryable() || attempt >= allowed {
                tracing::debug!(model = %self.name, attempt, kind = %failure.error.kind, "The request failed.");
                return Err(with_attempts(failure.error, attempt));
            }
            let wait = self.backoff(attempt, failure.retry_after);
            tracing::debug!(
                model = %self.name, attempt, kind = %failure.error.kind, wait_s = wait.as_secs_f64(),
                "Retrying the request."
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One HTTP exchange: the body of a 2xx reply, or the failure with the server's
    /// `Retry-After`.
    async fn attempt(
        &self,
        url: &reqwest::Url,
        body: Bytes,
        carries: Carries,
    ) -> Result<Bytes, Failure> {
        let response = self
            .client
            .post(url.clone())
            .timeout(self.timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = response.status();
        let retry_after = if status.is_success() {
            None
        } else {
            response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(retry_after)
        };
        let bytes = response.bytes().await.map_err(|e| self.transport(&e))?;
        let bytes = redact(bytes, &self.secrets);
        if status.is_success() {
            return Ok(bytes);
        }
        Err(Failure {
            error: self.status_error(status, &bytes, carries),
            retry_after,
        })
    }

    /// The error a request that never got a full reply had.
    fn transport(&self, e: &reqwest::Error) -> Failure {
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else if e.is_builder() {
            ErrorKind::BadRequest
        } else {
            ErrorKind::Connect
        };
        let message = if kind == ErrorKind::Timeout {
            format!(
                "no complete reply within {} s ({})",
                self.config.timeout_s,
                chain(e)
            )
        } else {
            chain(e)
        };
        Failure {
            error: self.error(kind, message),
            retry_after: None,
        }
    }

    /// The error an HTTP status other than 2xx means.
    ///
    /// A server that cannot do what was asked (images or video sent to a text-only
    /// model, embeddings from a server that serves none) often answers 5xx or 422;
    /// those are `unsupported`, not retried, and the message says what to change.
    fn status_error(&self, status: StatusCode, body: &[u8], carries: Carries) -> ModelError {
        let detail = error_detail(body);
        let mut message = format!("HTTP {status}: {detail}");
        let unsupported = status == StatusCode::NOT_IMPLEMENTED
            || ((status.is_server_error() || status.is_client_error())
                && is_unsupported(body, carries));
        let kind = match status.as_u16() {
            429 => ErrorKind::RateLimited,
            401 | 403 => ErrorKind::Auth,
            408 => ErrorKind::Timeout,
            _ if is_context_overflow(body) => ErrorKind::ContextOverflow,
            _ if unsupported => ErrorKind::Unsupported,
            500..=599 => ErrorKind::ServerError,
            _ => ErrorKind::BadRequest,
        };
        if kind == ErrorKind::Unsupported {
            message.push_str(match carries {
                Carries::Text => " (the server cannot serve this request)",
                Carries::Images => {
                    " (the server takes no images in messages: is it a vision model, with its \
                     projector loaded?)"
                }
                Carries::Video => {
                    " (the server takes no `video_url` parts: set `video = \"frames\"` for this model)"
                }
                Carries::Embeddings => " (the server serves no embeddings: start it with embeddings on)",
            });
        }
        self.error(kind, message)
    }

    /// How long to wait before attempt `attempt + 1`.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_backoff);
        }
        let ceiling = BASE_BACKOFF
            .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(20))
            .min(self.max_backoff);
        ceiling.mul_f64(fastrand::f64())
    }

    async fn embed_impl(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let body = serde_json::to_vec(&EmbeddingsBody {
            model: &self.config.model,
            input: texts,
        })
        .expect("an embeddings request always serializes; this is a bug");
        let (vectors, _, _) = self
            .call(
                &self.embeddings_url,
                body.into(),
                Carries::Embeddings,
                |b| parse_embeddings(b, texts.len(), &self.name),
            )
            .await?;
        Ok(vectors)
    }
}

impl ChatModel for OpenAiModel {
    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<Reply, ModelError>> {
        Box::pin(self.chat_impl(request))
    }
}

impl ImageCaptioner for OpenAiModel {
    fn caption_images<'a>(
        &'a self,
        request: &'a ImageRequest,
    ) -> BoxFuture<'a, Result<Reply, ModelError>> {
        Box::pin(self.images_impl(request))
    }
}

impl VideoCaptioner for OpenAiModel {
    fn caption_video<'a>(
        &'a self,
        request: &'a VideoRequest,
    ) -> BoxFuture<'a, Result<Reply, ModelError>> {
        Box::pin(self.video_impl(request))
    }
}

impl Embedder for OpenAiModel {
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, ModelError>> {
        Box::pin(self.embed_impl(texts))
    }
}

fn with_attempts(mut error: ModelError, attempts: u32) -> ModelError {
    if attempts > 1 {
        error.message = format!("{} (after {attempts} attempts)", error.message);
    }
    error
}

/// Runs CPU work (resizing, encoding) without stalling the runtime's other tasks where
/// the runtime allows it.
fn cpu<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn data_url(mime: &str, bytes: &[u8]) -> String {
    let mut url = String::with_capacity(mime.len() + 13 + bytes.len().div_ceil(3) * 4);
    url.push_str("data:");
    url.push_str(mime);
    url.push_str(";base64,");
    BASE64.encode_string(bytes, &mut url);
    url
}

fn video_mime(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("mp4" | "m4v") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mov") => "video/quicktime",
        Some("mkv") => "video/x-matroska",
        Some("avi") => "video/x-msvideo",
        _ => "application/octet-stream",
    }
}

fn with_system<'a>(system: Option<&'a str>, parts: Vec<Part<'a>>) -> Vec<WireMessage<'a>> {
    let mut messages = Vec::with_capacity(2);
    if let Some(system) = system {
        messages.push(WireMessage {
            role: Speaker::System,
            content: Content::Text(system),
        });
    }
    messages.push(WireMessage {
        role: Speaker::User,
        content: Content::Parts(parts),
    });
    messages
}

fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;

    use super::*;
    use crate::models::scripted::{Behaviour, Script, ScriptedServer, embed_text};
    use crate::models::{Message, Usage};

    fn config(server: &ScriptedServer) -> OpenAiConfig {
        OpenAiConfig {
            base_url: server.base_url().to_owned(),
            model: "m".into(),
            api_key_env: None,
            max_concurrency: 4,
            timeout_s: 0.3,
            max_retries: 2,
            max_backoff_s: 0.05,
            image_size: 64,
            jpeg_quality: 80,
            video: VideoInput::Frames,
            generation: Default::default(),
            extra_body: None,
            extra_headers: Default::default(),
            detail: None,
        }
    }

    fn serve(script: Script) -> ScriptedServer {
        ScriptedServer::start(script).expect("the scripted server starts")
    }

    fn model(server: &ScriptedServer) -> OpenAiModel {
        model_with(server, |_| {})
    }

    fn model_with(server: &ScriptedServer, change: impl FnOnce(&mut OpenAiConfig)) -> OpenAiModel {
        let mut config = config(server);
        change(&mut config);
        OpenAiModel::try_new("test", &config).expect("the model builds")
    }

    fn ask(text: &str) -> ChatRequest {
        ChatRequest {
            messages: vec![Message::user(text)],
            ..ChatRequest::default()
        }
    }

    async fn fails(model: &OpenAiModel, text: &str) -> ModelError {
        model.chat(&ask(text)).await.expect_err("the request fails")
    }

    fn body(server: &ScriptedServer, n: usize) -> Value {
        server.received()[n].body.clone()
    }

    #[tokio::test]
    async fn a_text_reply_records_latency_usage_and_one_attempt() {
        let server = serve(Script::always(Behaviour::Echo).with_latency(Duration::from_millis(60)));
        let reply = model(&server).chat(&ask(" hello there\n")).await.unwrap();
        assert_eq!(reply.text, "hello there");
        assert_eq!(reply.attempts, 1);
        assert!(
            reply.latency >= Duration::from_millis(60),
            "latency {:?}",
            reply.latency
        );
        assert_eq!(
            reply.usage,
            Some(Usage {
                prompt_tokens: 2,
                completion_tokens: 2
            })
        );
        let sent = body(&server, 0);
        assert_eq!(sent["model"], "m");
        assert_eq!(sent["temperature"], 0.0);
        assert_eq!(sent["max_tokens"], 256);
        assert_eq!(
            sent["messages"][0],
            serde_json::json!({"role": "user", "content": " hello there\n"})
        );
        for absent in ["top_p", "seed", "stop"] {
            assert!(sent.get(absent).is_none(), "`{absent}` is sent unasked");
        }
    }

    #[tokio::test]
    async fn sampling_settings_and_the_system_prompt_are_sent() {
        let server = serve(Script::always(Behaviour::text("ok")));
        let request = ChatRequest {
            messages: vec![Message::system("be brief"), Message::user("hi")],
            sampling: Sampling {
                temperature: 0.5,
                top_p: Some(0.75),
                max_tokens: 12,
                seed: Some(42),
                stop: vec!["\n".into()],
                ..Sampling::default()
            },
            grammar: None,
        };
        model(&server).chat(&request).await.unwrap();
        let sent = body(&server, 0);
        assert_eq!(
            sent["messages"][0],
            serde_json::json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(sent["temperature"], 0.5);
        assert_eq!(sent["top_p"], 0.75);
        assert_eq!(sent["max_tokens"], 12);
        assert_eq!(sent["seed"], 42);
        assert_eq!(sent["stop"], serde_json::json!(["\n"]));
    }

    #[tokio::test]
    async fn a_429_waits_for_retry_after_then_succeeds() {
        let limited = Behaviour::RateLimited {
            retry_after: Some("1".into()),
        };
        let server = serve(Script::sequence(vec![limited], Behaviour::text("ok")));
        let model = model_with(&server, |c| c.max_backoff_s = 5.0);
        let start = Instant::now();
        let reply = model.chat(&ask("hi")).await.unwrap();
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "waited only {:?}",
            start.elapsed()
        );
        assert_eq!(
            (reply.text.as_str(), reply.attempts, server.requests()),
            ("ok", 2, 2)
        );
    }

    #[tokio::test]
    async fn retry_after_is_capped_by_max_backoff() {
        let limited = Behaviour::RateLimited {
            retry_after: Some("30".into()),
        };
        let server = serve(Script::sequence(vec![limited], Behaviour::text("ok")));
        let start = Instant::now();
        let reply = model(&server).chat(&ask("hi")).await.unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "waited {:?}",
            start.elapsed()
        );
        assert_eq!(reply.attempts, 2);
    }

    #[tokio::test]
    async fn a_500_is_retried_then_succeeds() {
        let server = serve(Script::sequence(
            vec![Behaviour::ServerError, Behaviour::ServerError],
            Behaviour::text("ok"),
        ));
        let reply = model(&server).chat(&ask("hi")).await.unwrap();
        assert_eq!(
            (reply.text.as_str(), reply.attempts, server.requests()),
            ("ok", 3, 3)
        );
    }

    #[tokio::test]
    async fn exhausted_retries_fail_as_server_error_after_every_attempt() {
        let server = serve(Script::always(Behaviour::ServerError));
        let error = fails(&model_with(&server, |c| c.max_retries = 3), "hi").await;
        assert_eq!(error.kind, ErrorKind::ServerError);
        assert_eq!(server.requests(), 4);
        assert!(error.message.contains("after 4 attempts"), "{error}");
        assert!(error.message.contains("500"), "{error}");
    }

    #[tokio::test]
    async fn a_hang_past_the_timeout_is_a_timeout() {
        let server = serve(Script::always(Behaviour::Hang));
        let start = Instant::now();
        let error = fails(&model_with(&server, |c| c.max_retries = 0), "hi").await;
        assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
        assert!(
            start.elapsed() >= Duration::from_millis(300)
                && start.elapsed() < Duration::from_secs(3)
        );
        assert_eq!(server.requests(), 1);
    }

    #[tokio::test]
    async fn a_timeout_is_retried() {
        let server = serve(Script::sequence(
            vec![Behaviour::Hang],
            Behaviour::text("ok"),
        ));
        let reply = model(&server).chat(&ask("hi")).await.unwrap();
        assert_eq!((reply.text.as_str(), reply.attempts), ("ok", 2));
        assert!(
            reply.latency < Duration::from_millis(300),
            "latency is the successful attempt's"
        );
    }

    #[tokio::test]
    async fn malformed_replies_are_bad_responses_and_not_retried() {
        for behaviour in [
            Behaviour::MalformedJson,
            Behaviour::NoChoices,
            Behaviour::MissingContent,
        ] {
            let server = serve(Script::always(behaviour.clone()));
            let error = fails(&model(&server), "hi").await;
            assert_eq!(error.kind, ErrorKind::BadResponse, "{behaviour:?}: {error}");
            assert_eq!(server.requests(), 1, "{behaviour:?}");
        }
    }

    #[tokio::test]
    async fn blank_content_is_an_empty_reply() {
        for behaviour in [Behaviour::EmptyContent, Behaviour::text(" \n\t")] {
            let server = serve(Script::always(behaviour.clone()));
            let error = fails(&model(&server), "hi").await;
            assert_eq!(error.kind, ErrorKind::EmptyReply, "{behaviour:?}: {error}");
        }
    }

    #[tokio::test]
    async fn a_slow_trickle_within_the_timeout_succeeds_and_past_it_times_out() {
        let slow = |interval| Behaviour::Trickle {
            text: "slow but fine".into(),
            chunks: 6,
            interval,
        };
        let server = serve(Script::always(slow(Duration::from_millis(50))));
        let reply = model_with(&server, |c| c.timeout_s = 2.0)
            .chat(&ask("hi"))
            .await
            .unwrap();
        assert_eq!(reply.text, "slow but fine");
        assert!(
            reply.latency >= Duration::from_millis(250),
            "latency {:?}",
            reply.latency
        );

        let server = serve(Script::always(slow(Duration::from_millis(200))));
        let error = fails(&model_with(&server, |c| c.max_retries = 0), "hi").await;
        assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    }

    #[tokio::test]
    async fn client_errors_are_told_apart() {
        let cases = [
            (Behaviour::ContextOverflow, ErrorKind::ContextOverflow),
            (
                Behaviour::Status(
                    400,
                    r#"{"error":{"message":"the request exceeds the available context size"}}"#
                        .into(),
                ),
                ErrorKind::ContextOverflow,
            ),
            (
                Behaviour::Status(400, r#"{"error":{"message":"unknown field `foo`"}}"#.into()),
                ErrorKind::BadRequest,
            ),
            (
                Behaviour::Status(404, "no such model".into()),
                ErrorKind::BadRequest,
            ),
            (
                Behaviour::Status(422, r#"{"detail":"invalid"}"#.into()),
                ErrorKind::BadRequest,
            ),
            (
                Behaviour::Status(401, r#"{"error":"invalid api key"}"#.into()),
                ErrorKind::Auth,
            ),
            (Behaviour::Status(403, String::new()), ErrorKind::Auth),
            (
                Behaviour::Status(503, String::new()),
                ErrorKind::ServerError,
            ),
            (
                Behaviour::Status(
                    500,
                    r#"{"error":{"message":"can only concatenate str (not \"list\") to str"}}"#
                        .into(),
                ),
                ErrorKind::Unsupported,
            ),
            (
                Behaviour::Status(501, String::new()),
                ErrorKind::Unsupported,
            ),
        ];
        for (behaviour, kind) in cases {
            let server = serve(Script::always(behaviour.clone()));
            let error = fails(&model_with(&server, |c| c.max_retries = 1), "hi").await;
            assert_eq!(error.kind, kind, "{behaviour:?}: {error}");
            let expected = if kind.is_retryable() { 2 } else { 1 };
            assert_eq!(server.requests(), expected, "{behaviour:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_concurrency_limit_is_respected() {
        let server = serve(
            Script::always(Behaviour::Echo)
                .with_latency(Duration::from_millis(50))
                .with_threads(2),
        );
        let model = Arc::new(model_with(&server, |c| {
            c.max_concurrency = 3;
            c.timeout_s = 5.0;
        }));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..12 {
            let model = model.clone();
            tasks.spawn(async move { model.chat(&ask(&format!("request {i}"))).await });
        }
        let replies = tasks.join_all().await;
        assert!(replies.iter().all(Result::is_ok));
        assert_eq!(server.requests(), 12);
        assert_eq!(server.max_in_flight(), 3);
    }

    fn decode(url: &str) -> image::RgbImage {
        let data = url
            .strip_prefix("data:image/jpeg;base64,")
            .expect("a JPEG data URL");
        let bytes = BASE64.decode(data).unwrap();
        image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
            .unwrap()
            .to_rgb8()
    }

    // Multi-threaded, so that encoding goes through `block_in_place`; the video tests
    // below take the current-thread path.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn images_arrive_as_jpeg_data_urls_of_the_configured_size() {
        let server = serve(Script::always(Behaviour::text("a red square")));
        let request = ImageRequest {
            images: vec![
                RgbImage::from_pixel(200, 100, image::Rgb([200, 0, 0])),
                RgbImage::new(40, 20),
            ],
            prompt: "Describe.".into(),
            system: Some("You caption images.".into()),
            sampling: Sampling::default(),
        };
        let reply = model(&server).caption_images(&request).await.unwrap();
        assert_eq!(reply.text, "a red square");
        let sent = body(&server, 0);
        assert_eq!(sent["messages"][0]["content"], "You caption images.");
        let parts = sent["messages"][1]["content"].as_array().unwrap();
        assert_eq!(parts.len(), 3);
        let first = decode(parts[0]["image_url"]["url"].as_str().unwrap());
        assert_eq!(first.dimensions(), (64, 32));
        let red = first.get_pixel(32, 16).0;
        assert!(red[0] > 180 && red[1] < 30, "{red:?}");
        assert_eq!(
            decode(parts[1]["image_url"]["url"].as_str().unwrap()).dimensions(),
            (40, 20)
        );
        assert_eq!(
            parts[2],
            serde_json::json!({"type": "text", "text": "Describe."})
        );
    }

    #[tokio::test]
    async fn video_frames_are_sent_with_their_times() {
        let server = serve(Script::always(Behaviour::text("a clip")));
        let request = VideoRequest {
            frames: vec![RgbImage::new(32, 32), RgbImage::new(32, 32)],
            times: vec![0.5, 1.25],
            prompt: "What happens?".into(),
            ..VideoRequest::default()
        };
        model(&server).caption_video(&request).await.unwrap();
        let sent = body(&server, 0);
        let parts = sent["messages"][0]["content"].as_array().unwrap();
        let kinds: Vec<&str> = parts.iter().map(|p| p["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["text", "image_url", "text", "image_url", "text"]);
        assert_eq!(parts[0]["text"], "Frame 1 at 0.50 s:");
        assert_eq!(parts[2]["text"], "Frame 2 at 1.25 s:");
        assert_eq!(parts[4]["text"], "What happens?");

        let mismatched = VideoRequest {
            times: vec![0.5],
            ..request
        };
        let error = model(&server).caption_video(&mismatched).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::BadRequest);
    }

    #[tokio::test]
    async fn video_url_sends_the_clip_as_a_data_url() {
        let server = serve(Script::always(Behaviour::text("a clip")));
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("clip.mp4");
        std::fs::write(&clip, b"fakevideo").unwrap();
        let model = model_with(&server, |c| c.video = VideoInput::VideoUrl);
        let request = VideoRequest {
            video_path: Some(clip),
            prompt: "What happens?".into(),
            ..VideoRequest::default()
        };
        model.caption_video(&request).await.unwrap();
        let sent = body(&server, 0);
        let parts = sent["messages"][0]["content"].as_array().unwrap();
        assert_eq!(
            parts[0],
            serde_json::json!({"type": "video_url", "video_url": {"url": "data:video/mp4;base64,ZmFrZXZpZGVv"}})
        );
        let without = VideoRequest {
            prompt: "x".into(),
            ..VideoRequest::default()
        };
        assert_eq!(
            model.caption_video(&without).await.unwrap_err().kind,
            ErrorKind::Unsupported
        );
    }

    #[tokio::test]
    async fn the_api_key_is_sent_and_redacted_in_debug() {
        // Cargo sets CARGO_PKG_NAME for test processes: a variable that exists without
        // `set_var`, which is unsound while other test threads read the environment.
        let server = serve(Script::always(Behaviour::text("ok")));
        let model = model_with(&server, |c| c.api_key_env = Some("CARGO_PKG_NAME".into()));
        model.chat(&ask("hi")).await.unwrap();
        let key = env!("CARGO_PKG_NAME");
        assert_eq!(
            server.received()[0].authorization.as_deref(),
            Some(format!("Bearer {key}").as_str())
        );
        let shown = format!("{model:?}");
        assert!(!shown.contains(key), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    /// A server that quotes the key back (in an error, or in a 2xx reply's text) does
    /// not get it into an error message or a reply: those are stored and printed.
    #[tokio::test]
    async fn a_key_the_server_echoes_is_redacted_from_what_it_says() {
        let key = "sk-echoed-0123456789abcdef";
        let server = serve(Script::sequence(
            vec![
                Behaviour::EchoAuthorization(500),
                Behaviour::EchoAuthorization(401),
            ],
            Behaviour::text(format!("your key is {key}, isn't it?")),
        ));
        let with_key = |retries| {
            let mut config = config(&server);
            config.max_retries = retries;
            OpenAiModel::with_secrets("test", &config, Some(format!(" {key}\n")), Vec::new())
                .unwrap()
        };
        let error = fails(&with_key(0), "hi").await;
        assert_eq!(error.kind, ErrorKind::ServerError);
        assert!(!error.to_string().contains(key), "{error}");
        assert!(error.message.contains("Bearer <redacted>"), "{error}");
        let error = fails(&with_key(0), "hi").await;
        assert_eq!(error.kind, ErrorKind::Auth);
        assert!(!error.to_string().contains(key), "{error}");
        let reply = with_key(0).chat(&ask("hi")).await.unwrap();
        assert_eq!(reply.text, "your key is <redacted>, isn't it?");
    }

    #[test]
    fn redaction_keeps_bodies_without_the_key_and_json_valid() {
        let body = Bytes::from_static(br#"{"error": {"message": "no key here"}}"#);
        let secrets = ["sk-1".to_owned(), "org-2".to_owned()];
        assert_eq!(redact(body.clone(), &secrets), body);
        let body = Bytes::from_static(br#"{"error": "bad key sk-1, and sk-1 again for org-2"}"#);
        let redacted = redact(body, &secrets);
        let value: Value = serde_json::from_slice(&redacted).unwrap();
        assert_eq!(
            value["error"],
            "bad key <redacted>, and <redacted> again for <redacted>"
        );
    }

    /// `extra_headers` take their values from the environment, are sent with every
    /// request and never shown; `detail` goes with every image; a header whose variable
    /// is not set stops the entry before any request.
    #[tokio::test]
    async fn extra_headers_and_image_detail_are_sent() {
        let server = serve(Script::always(Behaviour::text("ok")));
        let model = model_with(&server, |c| {
            c.extra_headers
                .insert("X-Org".into(), "CARGO_PKG_NAME".into());
            c.detail = Some(crate::models::ImageDetail::Low);
        });
        let request = ImageRequest {
            images: vec![RgbImage::new(8, 8)],
            prompt: "what is this?".into(),
            ..ImageRequest::default()
        };
        model.caption_images(&request).await.unwrap();
        let received = &server.received()[0];
        assert_eq!(
            received.headers.get("x-org").map(String::as_str),
            Some(env!("CARGO_PKG_NAME"))
        );
        let parts = received.body["messages"][0]["content"].as_array().unwrap();
        assert_eq!(parts[0]["image_url"]["detail"], "low");
        assert!(!format!("{model:?}").contains(env!("CARGO_PKG_NAME")));

        let mut config = config(&server);
        config
            .extra_headers
            .insert("X-Org".into(), "WOLF_TEST_HEADER_THAT_IS_NEVER_SET".into());
        let error = OpenAiModel::try_new("test", &config).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Auth);
        assert!(
            error.message.contains("WOLF_TEST_HEADER_THAT_IS_NEVER_SET"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn no_key_means_no_authorization_header() {
        let server = serve(Script::always(Behaviour::text("ok")));
        model(&server).chat(&ask("hi")).await.unwrap();
        assert_eq!(server.received()[0].authorization, None);
    }

    #[test]
    fn a_missing_key_variable_is_an_auth_error() {
        let mut config = OpenAiConfig {
            base_url: "http://127.0.0.1:9/v1".into(),
            model: "m".into(),
            api_key_env: Some("WOLF_TEST_KEY_THAT_IS_NEVER_SET".into()),
            max_concurrency: 1,
            timeout_s: 1.0,
            max_retries: 0,
            max_backoff_s: 0.0,
            image_size: 64,
            jpeg_quality: 80,
            video: VideoInput::Frames,
            generation: Default::default(),
            extra_body: None,
            extra_headers: Default::default(),
            detail: None,
        };
        let error = OpenAiModel::try_new("test", &config).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Auth);
        assert!(
            error.message.contains("WOLF_TEST_KEY_THAT_IS_NEVER_SET"),
            "{error}"
        );
        config.api_key_env = None;
        assert!(OpenAiModel::try_new("test", &config).is_ok());
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = serve(Script::always(Behaviour::text("unused")));
        let mut config = config(&server);
        config.base_url = format!("http://127.0.0.1:{port}/v1");
        config.max_retries = 1;
        let error = OpenAiModel::try_new("test", &config)
            .unwrap()
            .chat(&ask("hi"))
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Connect, "{error}");
        assert!(error.message.contains("after 2 attempts"), "{error}");
    }

    #[tokio::test]
    async fn embeddings_come_back_in_order() {
        let server = serve(Script::always(Behaviour::Echo));
        let model = model(&server);
        let texts = vec!["a red circle".to_owned(), "a blue square".to_owned()];
        let vectors = model.embed(&texts).await.unwrap();
        assert_eq!(vectors, vec![embed_text(&texts[0]), embed_text(&texts[1])]);
        assert_eq!(server.received()[0].path, "/v1/embeddings");
        assert_eq!(server.received()[0].body["input"], serde_json::json!(texts));
        assert!(model.embed(&[]).await.unwrap().is_empty());
        assert_eq!(server.requests(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn random_faults_are_absorbed_by_retries() {
        let weights = vec![
            (0.6, Behaviour::Echo),
            (0.2, Behaviour::ServerError),
            (
                0.2,
                Behaviour::RateLimited {
                    retry_after: Some("0".into()),
                },
            ),
        ];
        let server = serve(Script::random(7, weights));
        let model = Arc::new(model_with(&server, |c| c.max_retries = 10));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let model = model.clone();
            tasks.spawn(async move { model.chat(&ask(&format!("n{i}"))).await });
        }
        let replies = tasks.join_all().await;
        assert!(replies.iter().all(Result::is_ok), "{replies:?}");
        assert!(server.requests() > 20, "some requests failed first");
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_scripted_server_takes_hundreds_of_requests_at_once() {
        let script = Script::always(Behaviour::Echo)
            .with_latency(Duration::from_millis(50))
            .with_threads(2);
        let server = serve(script);
        let model = Arc::new(model_with(&server, |c| {
            c.max_concurrency = 300;
            c.timeout_s = 10.0;
        }));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..300 {
            let model = model.clone();
            tasks.spawn(async move { model.chat(&ask(&format!("n{i}"))).await });
        }
        let replies = tasks.join_all().await;
        assert!(replies.iter().all(Result::is_ok));
        assert!(server.max_in_flight() >= 200, "{}", server.max_in_flight());
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_scripted_server_ends_hanging_requests() {
        let server = serve(Script::always(Behaviour::Hang));
        let model = Arc::new(model_with(&server, |c| {
            c.timeout_s = 30.0;
            c.max_retries = 0;
        }));
        let request = tokio::spawn({
            let model = model.clone();
            async move { model.chat(&ask("hi")).await }
        });
        while server.requests() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let start = Instant::now();
        drop(server);
        let error = request.await.unwrap().unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(error.kind, ErrorKind::Connect, "{error}");
    }

    /// llama.cpp's own OpenAI-compatible server (`llama-server`, built by
    /// `tools/setup_llama_server.sh`) on the default GGUF model, killed on drop.
    struct LlamaServer {
        child: std::process::Child,
        base_url: String,
        log: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    impl Drop for LlamaServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl LlamaServer {
        async fn start() -> Self {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let binary = root.join(".wolf/bin/llama-server");
            let gguf =
                root.join(".wolf/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
            assert!(
                binary.exists(),
                "llama.cpp's server is missing at `{}`: run `make test`, which builds it",
                binary.display()
            );
            assert!(
                gguf.exists(),
                "the default GGUF model is missing at `{}`: run `make test`, which sets it up",
                gguf.display()
            );
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("server.log");
            let out = std::fs::File::create(&log).unwrap();
            let child = std::process::Command::new(&binary)
                .arg("--model")
                .arg(&gguf)
                .args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--threads",
                    "2",
                    "--ctx-size",
                    "2048",
                ])
                .stdin(std::process::Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .expect("llama-server starts");
            let mut server = Self {
                child,
                base_url: format!("http://127.0.0.1:{port}/v1"),
                log,
                _dir: dir,
            };
            let client = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let models = format!("{}/models", server.base_url);
                if let Ok(r) = client.get(&models).send().await
                    && r.status().is_success()
                {
                    return server;
                }
                if let Ok(Some(status)) = server.child.try_wait() {
                    panic!("llama-server exited ({status}):\n{}", server.log_text());
                }
                if Instant::now() > deadline {
                    panic!(
                        "llama-server was not ready within 60 s:\n{}",
                        server.log_text()
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }

        fn log_text(&self) -> String {
            std::fs::read_to_string(&self.log).unwrap_or_default()
        }
    }

    /// Against a real OpenAI-compatible server: text chat works and counts tokens, the
    /// sampling parameters are taken, and what a text-only llama.cpp server cannot do
    /// fails at once with a clear kind instead of being retried.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_real_llama_cpp_server() {
        let server = LlamaServer::start().await;
        let config = OpenAiConfig {
            base_url: server.base_url.clone(),
            model: "smollm2".into(),
            api_key_env: None,
            max_concurrency: 2,
            timeout_s: 120.0,
            max_retries: 3,
            max_backoff_s: 10.0,
            image_size: 64,
            jpeg_quality: 80,
            video: VideoInput::Frames,
            generation: Default::default(),
            extra_body: None,
            extra_headers: Default::default(),
            detail: None,
        };
        let model = OpenAiModel::try_new("smollm2", &config).unwrap();
        let greedy = |text: &str| ChatRequest {
            messages: vec![
                Message::system("You answer in one short sentence."),
                Message::user(text),
            ],
            sampling: Sampling {
                max_tokens: 8,
                ..Sampling::default()
            },
            grammar: None,
        };

        let reply = model.chat(&greedy("Say hello.")).await.unwrap();
        assert!(!reply.text.trim().is_empty());
        assert_eq!(reply.attempts, 1);
        let usage = reply.usage.expect("the server counts tokens");
        assert!(usage.prompt_tokens > 5, "{usage:?}");
        assert!((1..=8).contains(&usage.completion_tokens), "{usage:?}");
        let again = model.chat(&greedy("Say hello.")).await.unwrap();
        assert_eq!(again.text, reply.text, "greedy decoding is deterministic");

        // Sampling parameters, penalties, seed and stop strings are taken.
        let sampled = ChatRequest {
            sampling: Sampling {
                temperature: 0.7,
                top_p: Some(0.9),
                max_tokens: 8,
                seed: Some(7),
                stop: vec!["\n\n".into()],
                frequency_penalty: Some(0.2),
                presence_penalty: Some(0.1),
                ..Sampling::default()
            },
            ..greedy("Name a colour.")
        };
        model.chat(&sampled).await.unwrap();

        // A prompt longer than the context (2,048 tokens by default).
        let long = greedy(&"word ".repeat(3000));
        let error = model.chat(&long).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::ContextOverflow, "{error}");

        // A text-only model: llama-server refuses image and video parts (no multimodal
        // projector) and embeddings (not started with `--embeddings`). Each fails at
        // once (no retries, which would take seconds with this backoff) as
        // `unsupported`.
        let image = ImageRequest {
            images: vec![RgbImage::new(32, 32)],
            prompt: "Describe.".into(),
            ..ImageRequest::default()
        };
        let start = Instant::now();
        let error = model.caption_images(&image).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unsupported, "{error}");
        assert!(!error.message.contains("attempts"), "{error}");
        let frames = VideoRequest {
            frames: vec![RgbImage::new(32, 32)],
            times: vec![0.0],
            prompt: "Describe.".into(),
            ..VideoRequest::default()
        };
        let error = model.caption_video(&frames).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unsupported, "{error}");
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("clip.mp4");
        std::fs::write(&clip, b"not really a video").unwrap();
        let video_url = OpenAiModel::try_new(
            "smollm2",
            &OpenAiConfig {
                video: VideoInput::VideoUrl,
                generation: Default::default(),
                extra_body: None,
                extra_headers: Default::default(),
                detail: None,
                ..config.clone()
            },
        )
        .unwrap();
        let clip_request = VideoRequest {
            video_path: Some(clip),
            prompt: "Describe.".into(),
            ..VideoRequest::default()
        };
        let error = video_url.caption_video(&clip_request).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unsupported, "{error}");
        assert!(error.message.contains("video = \"frames\""), "{error}");
        let error = model.embed(&["a red circle".to_owned()]).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unsupported, "{error}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }
}
