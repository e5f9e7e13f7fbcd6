//! The `gguf` backend: a GGUF LLM run in process by llama.cpp (`llama-cpp-2`).
//!
//! Threads: each [`GgufModel`] owns one dedicated std thread that holds the model and
//! its context (llama.cpp's context is not shareable, and inference blocks). Callers
//! send a job over a bounded channel ([`QUEUE`] jobs) carrying the request, a oneshot
//! for the reply and the caller's span (TEI's backend thread); a job whose caller went
//! away is skipped, and a generation whose caller goes away stops at the next token.
//! Requests are served one at a time, each from an empty KV cache. The thread ends when
//! the model is dropped.
//!
//! llama.cpp's backend is initialised once per process and shared by every model;
//! llama.cpp's own logging (thousands of lines to stderr) is silenced then.
//!
//! Prompts are built with the GGUF's own chat template through llama.cpp's built-in
//! template matcher (not a Jinja engine); a template the matcher does not know fails
//! the load, not the first request.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use llama_cpp_2::LlamaCppError;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::{
    BoxFuture, ChatModel, ChatRequest, ErrorKind, GgufConfig, Message, ModelError, Reply, Speaker,
    Usage, non_empty,
};

/// Jobs waiting for a model's thread; senders wait when it is full (backpressure).
pub const QUEUE: usize = 8;

/// A GGUF chat LLM on its own inference thread.
pub struct GgufModel {
    name: String,
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for GgufModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufModel")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One request for the inference thread.
struct Job {
    request: ChatRequest,
    reply: oneshot::Sender<Result<Generation, ModelError>>,
    span: tracing::Span,
}

/// What the inference thread produced for one request.
#[derive(Debug)]
struct Generation {
    text: String,
    usage: Usage,
}

/// The settings the inference thread starts from.
struct Settings {
    name: String,
    path: PathBuf,
    threads: i32,
    context: u32,
}

impl GgufModel {
    /// Loads the model file of `config` and starts its inference thread. Fails (kind
    /// `load`) when the file is missing or llama.cpp cannot load it.
    pub fn load(name: &str, config: &GgufConfig) -> Result<Self, ModelError> {
        let load_error = |message: String| ModelError::new(ErrorKind::Load, name, message);
        let setup_hint = if config.path.is_none() {
            "; run `make setup`"
        } else {
            ""
        };
        let path = config.resolved_path().ok_or_else(|| {
            load_error(
                "no model file: `path` is not set and no `.wolf/` folder was found; run `make setup`"
                    .into(),
            )
        })?;
        if !path.is_file() {
            return Err(load_error(format!(
                "model file `{}` does not exist{setup_hint}",
                path.display()
            )));
        }
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let settings = Settings {
            name: name.to_owned(),
            path,
            threads: i32::try_from(threads).unwrap_or(i32::MAX),
            context: config.context,
        };
        let (jobs, queue) = mpsc::channel(QUEUE);
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(format!("gguf-{name}"))
            .spawn(move || serve(settings, ready_tx, queue))
            .map_err(|e| load_error(format!("cannot start the inference thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                name: name.to_owned(),
                jobs,
            }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(load_error(
                "the inference thread stopped while loading".into(),
            )),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn stopped(&self) -> ModelError {
        ModelError::new(
            ErrorKind::Cancelled,
            &self.name,
            "the inference thread has stopped",
        )
    }
}

impl ChatModel for GgufModel {
    fn chat<'a>(&'a self, request: &'a ChatRequest) -> BoxFuture<'a, Result<Reply, ModelError>> {
        Box::pin(async move {
            let started = Instant::now();
            let (reply, answer) = oneshot::channel();
            let job = Job {
                request: request.clone(),
                reply,
                span: tracing::Span::current(),
            };
            self.jobs.send(job).await.map_err(|_| self.stopped())?;
            let generation = answer.await.map_err(|_| self.stopped())??;
            Ok(Reply {
                text: non_empty(generation.text, &self.name)?,
                usage: Some(generation.usage),
                latency: started.elapsed(),
                attempts: 1,
            })
        })
    }

    fn supports_grammar(&self) -> bool {
        true
    }
}

/// llama.cpp's backend could not be initialised (the first failure of the process,
/// shared by every later load).
#[derive(Debug, thiserror::Error)]
#[error("cannot initialise llama.cpp")]
struct BackendError(#[source] Arc<LlamaCppError>);

/// llama.cpp's backend, initialised once per process (`LlamaBackend::init` fails on a
/// second call) and never dropped, with llama.cpp's logging silenced first.
fn backend() -> Result<&'static LlamaBackend, BackendError> {
    static BACKEND: OnceLock<Result<LlamaBackend, Arc<LlamaCppError>>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // `void_logs` misses the multimodal logger; this silences every logger.
            llama_cpp_2::send_logs_to_tracing(
                llama_cpp_2::LogOptions::default().with_logs_enabled(false),
            );
            LlamaBackend::init().map_err(Arc::new)
        })
        .as_ref()
        .map_err(|e| BackendError(Arc::clone(e)))
}

/// The inference thread: loads, reports readiness, then serves jobs until every
/// sender is gone.
fn serve(
    settings: Settings,
    ready: std::sync::mpsc::SyncSender<Result<(), ModelError>>,
    mut queue: mpsc::Receiver<Job>,
) {
    let name = settings.name.clone();
    let fail = |error: ModelError| {
        let _ = ready.send(Err(error));
    };
    let backend = match backend() {
        Ok(backend) => backend,
        Err(error) => return fail(ModelError::from_error(ErrorKind::Load, &name, &error)),
    };
    let model = match load_model(backend, &settings) {
        Ok(model) => model,
        Err(error) => return fail(error),
    };
    let mut engine = match Engine::new(backend, &model, &settings) {
        Ok(engine) => engine,
        Err(error) => return fail(error),
    };
    let _ = ready.send(Ok(()));
    drop(ready);
    while let Some(job) = queue.blocking_recv() {
        if job.reply.is_closed() {
            debug!(model = %name, "Skipped a request whose caller went away.");
            continue;
        }
        let result = job.span.in_scope(|| {
            let run = std::panic::AssertUnwindSafe(|| {
                engine.generate(&job.request, &|| job.reply.is_closed())
            });
            std::panic::catch_unwind(run).unwrap_or_else(|_| {
                Err(ModelError::new(
                    ErrorKind::ServerError,
                    &name,
                    "inference panicked",
                ))
            })
        });
        let _ = job.reply.send(result);
    }
}

fn load_model(backend: &LlamaBackend, settings: &Settings) -> Result<LlamaModel, ModelError> {
    let started = Instant::now();
    let model = LlamaModel::load_from_file(backend, &settings.path, &LlamaModelParams::default())
        .map_err(|e| {
        ModelError::new(
            ErrorKind::Load,
            &settings.name,
            format!("cannot load `{}`: {e}", settings.path.display()),
        )
    })?;
    debug!(
        model = %settings.name,
        path = %settings.path.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Loaded a GGUF model."
    );
    Ok(model)
}

/// A model with its context, owned by the inference thread.
struct Engine<'m> {
    name: String,
    model: &'m LlamaModel,
    context: LlamaContext<'m>,
    template: LlamaChatTemplate,
    batch: LlamaBatch<'static>,
    batch_size: usize,
}

impl<'m> Engine<'m> {
    fn new(
        backend: &LlamaBackend,
        model: &'m LlamaModel,
        settings: &Settings,
    ) -> Result<Self, ModelError> {
        let load_error =
            |message: String| ModelError::new(ErrorKind::Load, &settings.name, message);
        let path = settings.path.display();
        // Both thread counts, always: llama.cpp's default of 4 on two cores is ruinous.
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(settings.context))
            .with_n_threads(settings.threads)
            .with_n_threads_batch(settings.threads);
        let context = model
            .new_context(backend, params)
            .map_err(|e| load_error(format!("cannot create a context for `{path}`: {e}")))?;
        let template = model
            .chat_template(None)
            .map_err(|e| load_error(format!("`{path}` has no usable chat template: {e}")))?;
        let batch_size = context.n_batch() as usize;
        let engine = Self {
            name: settings.name.clone(),
            model,
            context,
            template,
            batch: LlamaBatch::new(batch_size, 1),
            batch_size,
        };
        // Validate the template now: llama.cpp's matcher knows about 50 formats.
        engine.prompt(&[Message::user("hello")]).map_err(|e| {
            load_error(format!(
                "llama.cpp does not know the chat template of `{path}`: {}",
                e.message
            ))
        })?;
        debug!(
            model = %settings.name,
            threads = settings.threads,
            context = engine.context.n_ctx(),
            "Created a GGUF context."
        );
        Ok(engine)
    }

    fn error(&self, kind: ErrorKind, message: impl Into<String>) -> ModelError {
        ModelError::new(kind, &self.name, message)
    }

    /// The chat rendered by the model's template, ending with the assistant's turn.
    fn prompt(&self, messages: &[Message]) -> Result<String, ModelError> {
        let chat = messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Speaker::System => "system",
                    Speaker::User => "user",
                    Speaker::Assistant => "assistant",
                };
                LlamaChatMessage::new(role.to_owned(), m.content.clone())
                    .map_err(|e| self.error(ErrorKind::BadRequest, format!("bad message: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.model
            .apply_chat_template(&self.template, &chat, true)
            .map_err(|e| {
                self.error(
                    ErrorKind::BadRequest,
                    format!("cannot apply the chat template: {e}"),
                )
            })
    }

    fn sampler(&self, request: &ChatRequest) -> Result<LlamaSampler, ModelError> {
        let sampling = &request.sampling;
        let mut chain = Vec::new();
        if let Some(grammar) = &request.grammar {
            let sampler = LlamaSampler::grammar(self.model, grammar, "root").map_err(|e| {
                self.error(
                    ErrorKind::BadRequest,
                    format!("the GBNF grammar does not parse: {e}"),
                )
            })?;
            chain.push(sampler);
        }
        let penalised = sampling.repeat_penalty.is_some()
            || sampling.frequency_penalty.is_some()
            || sampling.presence_penalty.is_some();
        if penalised {
            // Over a window of the whole context (llama.cpp counts the tokens it
            // accepts; a window of 0 turns the penalties off).
            chain.push(LlamaSampler::penalties(
                self.model.n_vocab(),
                self.context.n_ctx() as i32,
                sampling.repeat_penalty.unwrap_or(1.0),
                sampling.frequency_penalty.unwrap_or(0.0),
                sampling.presence_penalty.unwrap_or(0.0),
            ));
        }
        if sampling.temperature > 0.0 {
            if let Some(top_p) = sampling.top_p {
                chain.push(LlamaSampler::top_p(top_p, 1));
            }
            chain.push(LlamaSampler::temp(sampling.temperature));
            // llama.cpp draws a random seed for u32::MAX (LLAMA_DEFAULT_SEED).
            let seed = sampling.seed.map_or(u32::MAX, |s| (s ^ (s >> 32)) as u32);
            chain.push(LlamaSampler::dist(seed));
        } else {
            chain.push(LlamaSampler::greedy());
        }
        Ok(LlamaSampler::chain(chain, true))
    }

    /// Answers one request from an empty KV cache. `cancelled` is polled once per token.
    fn generate(
        &mut self,
        request: &ChatRequest,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Generation, ModelError> {
        let prompt = self.prompt(&request.messages)?;
        let tokens = self.model.vocab().tokenize(prompt.as_bytes(), true, true);
        let n_ctx = self.context.n_ctx() as usize;
        if tokens.is_empty() {
            return Err(self.error(ErrorKind::BadRequest, "the prompt has no tokens"));
        }
        if tokens.len() >= n_ctx {
            return Err(self.error(
                ErrorKind::ContextOverflow,
                format!(
                    "the prompt has {} tokens; the context holds {n_ctx}",
                    tokens.len()
                ),
            ));
        }
        let mut sampler = self.sampler(request)?;
        self.context.clear_kv_cache();

        let started = Instant::now();
        self.decode_prompt(&tokens)?;
        let prompt_time = started.elapsed();

        let max_new = (request.sampling.max_tokens as usize).min(n_ctx - tokens.len());
        let stops: Vec<&[u8]> = request
            .sampling
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes())
            .collect();
        let longest_stop = stops.iter().map(|s| s.len()).max().unwrap_or(0);
        let vocab = self.model.vocab();
        let mut text = Vec::new();
        let mut generated = 0usize;
        let mut position = tokens.len();
        while generated < max_new {
            if cancelled() {
                return Err(self.error(ErrorKind::Cancelled, "the caller went away"));
            }
            let token = sampler.sample(&self.context, self.batch.n_tokens() - 1);
            if vocab.is_eog(token) {
                break;
            }
            generated += 1;
            let before = text.len();
            vocab.token_to_piece_into(token, &mut text, false, None);
            if let Some(cut) = find_stop(&text, &stops, before.saturating_sub(longest_stop)) {
                text.truncate(cut);
                break;
            }
            if generated == max_new {
                break;
            }
            self.decode_one(token, position)?;
            position += 1;
        }
        let generation_time = started.elapsed() - prompt_time;
        debug!(
            model = %self.name,
            prompt_tokens = tokens.len(),
            completion_tokens = generated,
            prompt_ms = millis(prompt_time),
            generation_ms = millis(generation_time),
            "Generated."
        );
        Ok(Generation {
            text: utf8(text),
            usage: Usage {
                prompt_tokens: count(tokens.len()),
                completion_tokens: count(generated),
            },
        })
    }

    /// Decodes the prompt in batches; only its last token's logits are kept.
    fn decode_prompt(&mut self, tokens: &[LlamaToken]) -> Result<(), ModelError> {
        let last = tokens.len() - 1;
        for (chunk_index, chunk) in tokens.chunks(self.batch_size).enumerate() {
            self.batch.clear();
            for (offset, &token) in chunk.iter().enumerate() {
                let position = chunk_index * self.batch_size + offset;
                self.batch
                    .add(token, position as i32, &[0], position == last)
                    .map_err(|e| self.error(ErrorKind::ServerError, format!("batch: {e}")))?;
            }
            self.context.decode(&mut self.batch).map_err(|e| {
                self.error(ErrorKind::ServerError, format!("decoding the prompt: {e}"))
            })?;
        }
        Ok(())
    }

    fn decode_one(&mut self, token: LlamaToken, position: usize) -> Result<(), ModelError> {
        self.batch.clear();
        self.batch
            .add(token, position as i32, &[0], true)
            .map_err(|e| self.error(ErrorKind::ServerError, format!("batch: {e}")))?;
        self.context
            .decode(&mut self.batch)
            .map_err(|e| self.error(ErrorKind::ServerError, format!("decoding: {e}")))
    }
}

/// Where the earliest stop string starts in `text`, looking at matches that start at
/// or after `from` (earlier ones were looked for after earlier tokens).
fn find_stop(text: &[u8], stops: &[&[u8]], from: usize) -> Option<usize> {
    stops
        .iter()
        .filter_map(|stop| {
            text.get(from..)?
                .windows(stop.len())
                .position(|window| window == *stop)
                .map(|at| from + at)
        })
        .min()
}

/// The generated bytes as text, without a trailing partial character (a token limit
/// can cut one in two); invalid bytes elsewhere become U+FFFD.
fn utf8(mut bytes: Vec<u8>) -> String {
    if let Err(error) = std::str::from_utf8(&bytes)
        && error.error_len().is_none()
    {
        bytes.truncate(error.valid_up_to());
    }
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Sampling;

    /// Where the default model pack's LLM is expected (`make setup` puts it there).
    fn default_model_path() -> PathBuf {
        GgufConfig {
            path: None,
            threads: 2,
            context: 2048,
            generation: crate::models::Generation::default(),
        }
        .resolved_path()
        .unwrap_or_else(|| {
            std::path::Path::new(crate::home::DIR_NAME)
                .join("models")
                .join(crate::home::DEFAULT_LLM)
        })
    }

    /// One model shared by the tests: requests are served one at a time anyway, and
    /// two cores are better spent on one inference thread than on several.
    fn model() -> &'static GgufModel {
        static MODEL: OnceLock<GgufModel> = OnceLock::new();
        MODEL.get_or_init(|| {
            let path = default_model_path();
            assert!(
                path.is_file(),
                "the test model `{}` is missing; run `make setup`",
                path.display()
            );
            let config = GgufConfig {
                path: Some(path),
                threads: 2,
                context: 2048,
                generation: crate::models::Generation::default(),
            };
            GgufModel::load("smollm2", &config).expect("the test model loads")
        })
    }

    fn request(prompt: &str, max_tokens: u32) -> ChatRequest {
        ChatRequest {
            messages: vec![Message::user(prompt)],
            sampling: Sampling {
                max_tokens,
                ..Sampling::default()
            },
            grammar: None,
        }
    }

    const CAPTIONS: &str = "No.1 frame: a red circle on the left of a white background.\n\
        No.2 frame: the red circle in the middle of the white background.\n\
        No.3 frame: the red circle on the right of the white background.\n\n\
        Summarize all the captions to describe the video with accurate temporal information.";

    #[tokio::test]
    async fn summarises_frame_captions() {
        let mut summary = request(CAPTIONS, 96);
        summary
            .messages
            .insert(0, Message::system("You are a helpful assistant."));
        let reply = model().chat(&summary).await.unwrap();
        assert!(!reply.text.trim().is_empty());
        let usage = reply.usage.unwrap();
        assert!(usage.prompt_tokens > 40, "{usage:?}");
        assert!(
            usage.completion_tokens > 0 && usage.completion_tokens <= 96,
            "{usage:?}"
        );
        assert_eq!(reply.attempts, 1);
        assert!(model().supports_grammar());
    }

    #[tokio::test]
    async fn greedy_runs_are_identical() {
        let first = model().chat(&request(CAPTIONS, 48)).await.unwrap();
        let second = model().chat(&request(CAPTIONS, 48)).await.unwrap();
        assert_eq!(first.text, second.text);
        assert_eq!(first.usage, second.usage);
    }

    #[tokio::test]
    async fn seeded_sampling_is_reproducible() {
        let mut sampled = request("Write a short poem about the sea.", 24);
        sampled.sampling.temperature = 0.9;
        sampled.sampling.top_p = Some(0.95);
        sampled.sampling.seed = Some(7);
        let first = model().chat(&sampled).await.unwrap();
        let second = model().chat(&sampled).await.unwrap();
        assert_eq!(first.text, second.text);
    }

    #[tokio::test]
    async fn a_repetition_penalty_changes_greedy_output() {
        let plain = request(CAPTIONS, 48);
        let mut penalised = plain.clone();
        penalised.sampling.repeat_penalty = Some(3.0);
        let a = model().chat(&plain).await.unwrap();
        let b = model().chat(&penalised).await.unwrap();
        assert_ne!(
            a.text, b.text,
            "a penalty of 3 left the greedy text as it was"
        );
    }

    #[tokio::test]
    async fn grammar_constrains_the_output() {
        let mut constrained = request(
            "How likely is it that the video shows a circle, and how likely a square? \
             Answer with two probabilities.",
            32,
        );
        constrained.grammar = Some(r#"root ::= "0." [0-9] [0-9] ";0." [0-9] [0-9]"#.into());
        let reply = model().chat(&constrained).await.unwrap();
        let bytes = reply.text.as_bytes();
        let shape = b"0.dd;0.dd";
        assert!(
            bytes.len() == shape.len()
                && bytes.iter().zip(shape).all(|(b, s)| match s {
                    b'd' => b.is_ascii_digit(),
                    s => b == s,
                }),
            "{:?} does not match ^0\\.\\d\\d;0\\.\\d\\d$",
            reply.text
        );
    }

    #[tokio::test]
    async fn a_bad_grammar_is_a_bad_request() {
        let mut bad = request("Hello.", 8);
        bad.grammar = Some("root ::= (".into());
        let error = model().chat(&bad).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::BadRequest, "{error}");
    }

    #[tokio::test]
    async fn stops_before_a_stop_string() {
        let free = model().chat(&request(CAPTIONS, 64)).await.unwrap();
        // A word from the middle of the free text, so that what precedes it is not empty.
        let word = free
            .text
            .split_whitespace()
            .nth(3)
            .expect("a few words")
            .to_owned();
        let stop = format!(" {word}");
        let at = free.text.find(&stop).expect("the stop string occurs");
        let mut stopped = request(CAPTIONS, 64);
        stopped.sampling.stop = vec![stop.clone(), "a string that never occurs".into()];
        let reply = model().chat(&stopped).await.unwrap();
        assert_eq!(reply.text, free.text[..at], "stop string {stop:?}");
        assert!(!reply.text.contains(&stop));
    }

    #[tokio::test]
    async fn max_tokens_bounds_the_completion() {
        let reply = model().chat(&request(CAPTIONS, 5)).await.unwrap();
        let usage = reply.usage.unwrap();
        assert!(
            usage.completion_tokens >= 1 && usage.completion_tokens <= 5,
            "{usage:?}"
        );
    }

    #[tokio::test]
    async fn a_prompt_longer_than_the_context_overflows() {
        let long = "the red circle moves to the right. ".repeat(600);
        let error = model().chat(&request(&long, 8)).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::ContextOverflow, "{error}");
        assert_eq!(error.kind(), "context_overflow");
    }

    #[tokio::test]
    async fn a_dropped_caller_does_not_wedge_the_thread() {
        let model = model();
        // Callers that give up: one mid-generation, several still queued.
        let long = request("Write a very long story about a red circle.", 2000);
        let gave_up = tokio::time::timeout(Duration::from_millis(200), model.chat(&long)).await;
        assert!(gave_up.is_err(), "a 2000-token story within 200 ms");
        for _ in 0..3 {
            let _ = tokio::time::timeout(Duration::from_millis(1), model.chat(&long)).await;
        }
        let next =
            tokio::time::timeout(Duration::from_secs(120), model.chat(&request(CAPTIONS, 16)))
                .await
                .expect("the next request is answered")
                .unwrap();
        assert!(!next.text.trim().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_are_all_answered() {
        let model = model();
        let prompts = [
            "Name a colour.",
            "Name an animal.",
            "Name a city.",
            "Name a fruit.",
        ];
        let tasks: Vec<_> = prompts
            .into_iter()
            .map(|prompt| tokio::spawn(async move { model.chat(&request(prompt, 12)).await }))
            .collect();
        for task in tasks {
            let reply = task.await.unwrap().unwrap();
            assert!(!reply.text.trim().is_empty());
        }
    }

    #[test]
    fn a_missing_file_fails_to_load_naming_it() {
        let config = GgufConfig {
            path: Some("/nonexistent/model.gguf".into()),
            threads: 1,
            context: 256,
            generation: crate::models::Generation::default(),
        };
        let error = GgufModel::load("m", &config).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Load);
        assert!(
            error.message.contains("`/nonexistent/model.gguf`"),
            "{error}"
        );
    }

    #[test]
    fn a_file_that_is_not_gguf_fails_to_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.gguf");
        std::fs::write(&path, b"not a gguf file at all").unwrap();
        let config = GgufConfig {
            path: Some(path.clone()),
            threads: 1,
            context: 256,
            generation: crate::models::Generation::default(),
        };
        let error = GgufModel::load("m", &config).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Load);
        assert!(
            error.message.contains(&format!("`{}`", path.display())),
            "{error}"
        );
    }

    #[test]
    fn stop_strings_are_found_at_their_earliest_start() {
        let stops: [&[u8]; 2] = [b"cd", b"bc"];
        assert_eq!(find_stop(b"abcde", &stops, 0), Some(1));
        assert_eq!(find_stop(b"abcde", &stops, 2), Some(2));
        assert_eq!(find_stop(b"abcde", &[b"xyz"], 0), None);
    }

    #[test]
    fn a_cut_character_is_dropped() {
        let mut bytes = "é".as_bytes().to_vec();
        bytes.insert(0, b'a');
        bytes.pop();
        assert_eq!(utf8(bytes), "a");
    }
}
