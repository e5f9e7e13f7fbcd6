//! The `gguf` backend: a GGUF LLM run in process by llama.cpp (`llama-cpp-2`).
//!
//! Threads: each [`GgufModel`] owns one dedicated std thread that holds the model and
//! its context (llama.cpp's context is not shareable, and inference blocks). Callers
//! send a job over a bounded channel ([`QUEUE`] jobs) carrying the request, a oneshot
//! for the reply and the caller's span (TEI's backend thread); a job whose caller went
//! away is skipped, and a generation whose caller goes away stops at the next step and
//! frees its sequence. The thread ends when the model is dropped.
//!
//! Continuous batching, as llama.cpp's server does it: one context serves up to
//! `parallel` requests, each a llama.cpp sequence with a KV stream of `context` cells of
//! its own. Every step decodes one batch holding the next token of each generating
//! sequence and a chunk of the prompts being read ([`PROMPT_CHUNK`] tokens at most, so
//! that a long prompt does not stall the others); each sequence samples with its own
//! request's settings. A request joins at the next step when a sequence is free (it
//! waits in order otherwise) and leaves when it is done, freeing its sequence; one whose
//! prompt does not fit `context` fails at once as `context_overflow`. On a CPU decoding
//! four sequences costs little more than one (generation is memory-bound), hence the
//! batching. A sequence's greedy tokens are the same whatever is decoded beside it.
//!
//! llama.cpp's backend is initialised once per process and shared by every model;
//! llama.cpp's own logging (thousands of lines to stderr) is silenced then.
//!
//! Prompts are built with the GGUF's own chat template through llama.cpp's built-in
//! template matcher (not a Jinja engine); a template the matcher does not know fails
//! the load, not the first request.

use std::collections::VecDeque;
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
    parallel: usize,
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
            0 => crate::process::cores(),
            n => n,
        };
        let settings = Settings {
            name: name.to_owned(),
            path,
            threads: i32::try_from(threads).unwrap_or(i32::MAX),
            context: config.context,
            parallel: config.parallel,
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
    let mut waiting: VecDeque<Waiting> = VecDeque::new();
    loop {
        // Block only when there is nothing to do; otherwise take what has arrived, up
        // to as many waiting requests as there are sequences (the rest wait in the
        // channel, which bounds the callers).
        if engine.slots.is_empty() && waiting.is_empty() {
            match queue.blocking_recv() {
                Some(job) => waiting.push_back(Waiting::new(job)),
                None => break,
            }
        }
        while waiting.len() < engine.parallel {
            match queue.try_recv() {
                Ok(job) => waiting.push_back(Waiting::new(job)),
                Err(_) => break,
            }
        }
        engine.admit(&mut waiting);
        if engine.slots.is_empty() {
            continue;
        }
        let step = std::panic::AssertUnwindSafe(|| engine.step());
        if std::panic::catch_unwind(step).is_err() {
            engine.fail_all("inference panicked");
        }
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

/// Prompt tokens decoded in one step at most, over every sequence: a long prompt is
/// taken in chunks, so that the sequences generating beside it wait for one chunk at a
/// time, not for the whole prompt.
const PROMPT_CHUNK: usize = 256;

/// llama.cpp's `LLAMA_FLASH_ATTN_TYPE_DISABLED`.
const FLASH_ATTENTION_OFF: i32 = 0;

/// A request taken off the queue, waiting for a sequence and for context space.
struct Waiting {
    job: Job,
    /// Its prompt and sampler, made once, on first sight.
    prepared: Option<Prepared>,
}

impl Waiting {
    fn new(job: Job) -> Self {
        Self {
            job,
            prepared: None,
        }
    }
}

/// What a request needs before it can start: its prompt's tokens, its sampler and how
/// many tokens it may generate (its prompt and those fill its sequence at most).
struct Prepared {
    tokens: Vec<LlamaToken>,
    sampler: LlamaSampler,
    max_new: usize,
    /// The request's non-empty stop strings.
    stops: Vec<Vec<u8>>,
}

/// A request being served: one llama.cpp sequence.
struct Slot {
    job: Job,
    seq: i32,
    prepared: Prepared,
    /// Prompt tokens decoded so far.
    fed: usize,
    /// The next position of the sequence.
    position: usize,
    /// The token sampled last, decoded at the next step.
    pending: Option<LlamaToken>,
    /// Where its logits are in the batch just decoded.
    logits: Option<i32>,
    text: Vec<u8>,
    generated: usize,
    admitted: Instant,
    prompt_time: Duration,
}

/// A model with its context and the sequences it serves, owned by the inference
/// thread. Every step decodes one batch: the next token of each generating sequence
/// and a chunk of the prompts still being read.
struct Engine<'m> {
    name: String,
    model: &'m LlamaModel,
    context: LlamaContext<'m>,
    template: LlamaChatTemplate,
    batch: LlamaBatch<'static>,
    /// Sequences at most ([`GgufConfig::parallel`]).
    parallel: usize,
    /// In sequence order: see [`Engine::step`].
    slots: Vec<Slot>,
    /// Highest first, so that `pop` hands out the lowest.
    free_seqs: Vec<i32>,
    /// KV cells of each sequence.
    context_size: usize,
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
        let parallel = settings.parallel;
        let batch_size = PROMPT_CHUNK + parallel;
        // Both thread counts, always: llama.cpp's default of 4 on two cores is ruinous.
        // Each sequence has a KV stream of its own of `context` cells, in which its
        // tokens lie as they would alone, and attention without flash attention: the
        // only settings under which a sequence's greedy tokens do not depend on what is
        // decoded beside it (docs/DECISIONS.md, "Continuous batching").
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(
                settings.context.saturating_mul(parallel as u32),
            ))
            .with_n_threads(settings.threads)
            .with_n_threads_batch(settings.threads)
            .with_n_seq_max(parallel as u32)
            .with_kv_unified(false)
            .with_flash_attention_policy(FLASH_ATTENTION_OFF)
            .with_n_batch((batch_size as u32).max(LlamaContextParams::default().n_batch()));
        let context = model
            .new_context(backend, params)
            .map_err(|e| load_error(format!("cannot create a context for `{path}`: {e}")))?;
        let template = model
            .chat_template(None)
            .map_err(|e| load_error(format!("`{path}` has no usable chat template: {e}")))?;
        let engine = Self {
            name: settings.name.clone(),
            model,
            context,
            template,
            batch: LlamaBatch::new(batch_size, 1),
            parallel,
            slots: Vec::with_capacity(parallel),
            free_seqs: (0..parallel as i32).rev().collect(),
            context_size: settings.context as usize,
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
            context = engine.context_size,
            parallel,
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
                self.context_size as i32,
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

    /// The request's prompt tokens, sampler and token budget; fails when it is bad or
    /// can never fit the context.
    fn prepare(&self, request: &ChatRequest) -> Result<Prepared, ModelError> {
        let prompt = self.prompt(&request.messages)?;
        let tokens = self.model.vocab().tokenize(prompt.as_bytes(), true, true);
        let n_ctx = self.context_size;
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
        let max_new = (request.sampling.max_tokens as usize).min(n_ctx - tokens.len());
        Ok(Prepared {
            sampler: self.sampler(request)?,
            tokens,
            max_new,
            stops: request
                .sampling
                .stop
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        })
    }

    /// Starts the waiting requests in order while a sequence is free. Requests whose
    /// callers went away are dropped, and bad ones (a prompt longer than the context,
    /// say) are answered at once, wherever they wait.
    fn admit(&mut self, waiting: &mut VecDeque<Waiting>) {
        let mut index = 0;
        while index < waiting.len() {
            let item = &mut waiting[index];
            if item.job.reply.is_closed() {
                debug!(model = %self.name, "Skipped a request whose caller went away.");
                waiting.remove(index);
                continue;
            }
            if item.prepared.is_none() {
                // A panic here (the template, the tokenizer, a grammar) fails this
                // request alone.
                let prepare = std::panic::AssertUnwindSafe(|| {
                    item.job.span.in_scope(|| self.prepare(&item.job.request))
                });
                let prepared = std::panic::catch_unwind(prepare).unwrap_or_else(|_| {
                    Err(self.error(ErrorKind::ServerError, "preparing the request panicked"))
                });
                match prepared {
                    Ok(prepared) => item.prepared = Some(prepared),
                    Err(error) => {
                        if let Some(item) = waiting.remove(index) {
                            let _ = item.job.reply.send(Err(error));
                        }
                        continue;
                    }
                }
            }
            index += 1;
        }
        while let Some(seq) = self.free_seqs.pop() {
            let (job, prepared) = match waiting.pop_front() {
                Some(Waiting {
                    job,
                    prepared: Some(prepared),
                }) => (job, prepared),
                // Prepared above, or answered; nothing else waits.
                other => {
                    waiting.extend(other);
                    self.free_seqs.push(seq);
                    return;
                }
            };
            self.slots.push(Slot {
                job,
                seq,
                prepared,
                fed: 0,
                position: 0,
                pending: None,
                logits: None,
                text: Vec::new(),
                generated: 0,
                admitted: Instant::now(),
                prompt_time: Duration::ZERO,
            });
        }
    }

    /// One decode of every slot: drops those whose callers went away, decodes the
    /// generating sequences' last tokens and a chunk of the prompts, then samples each
    /// sequence whose logits came out and answers those that are done.
    fn step(&mut self) {
        let mut index = 0;
        while index < self.slots.len() {
            if self.slots[index].job.reply.is_closed() {
                let slot = self.slots.swap_remove(index);
                debug!(model = %self.name, "Stopped a generation whose caller went away.");
                self.release(slot, None);
            } else {
                index += 1;
            }
        }
        if self.slots.is_empty() {
            return;
        }
        // With a KV stream per sequence, llama.cpp splits a batch into ubatches of
        // consecutive sequence ids, each ubatch one pass over the model: the tokens go in
        // sequence order, and the lowest free sequences are handed out, so that the
        // generating sequences form one run and take one pass (in any other order, each
        // of `n` sequences in flight took a pass of its own: 0.66x the rate of one at 2).
        self.slots.sort_unstable_by_key(|slot| slot.seq);
        self.batch.clear();
        let mut added = Ok(());
        for slot in &mut self.slots {
            slot.logits = None;
            if let Some(token) = slot.pending.take() {
                slot.logits = Some(self.batch.n_tokens());
                added = added.and(
                    self.batch
                        .add(token, slot.position as i32, &[slot.seq], true),
                );
                slot.position += 1;
            }
        }
        let mut budget = PROMPT_CHUNK;
        for slot in &mut self.slots {
            let prompt = &slot.prepared.tokens;
            while slot.fed < prompt.len() && budget > 0 {
                let last = slot.fed + 1 == prompt.len();
                if last {
                    slot.logits = Some(self.batch.n_tokens());
                }
                let token = prompt[slot.fed];
                added = added.and(
                    self.batch
                        .add(token, slot.position as i32, &[slot.seq], last),
                );
                slot.fed += 1;
                slot.position += 1;
                budget -= 1;
            }
        }
        if let Err(e) = added {
            return self.fail_all(&format!("batch: {e}"));
        }
        if let Err(e) = self.context.decode(&mut self.batch) {
            return self.fail_all(&format!("decoding: {e}"));
        }
        let mut index = 0;
        while index < self.slots.len() {
            if self.sample(index) {
                let slot = self.slots.swap_remove(index);
                self.release(slot, Some(Ok(())));
            } else {
                index += 1;
            }
        }
    }

    /// Samples slot `index`'s next token when its logits came out of the last decode;
    /// true when the slot is done.
    fn sample(&mut self, index: usize) -> bool {
        let slot = &mut self.slots[index];
        let Some(at) = slot.logits else {
            return false;
        };
        if slot.generated == 0 {
            slot.prompt_time = slot.admitted.elapsed();
        }
        if slot.generated == slot.prepared.max_new {
            return true;
        }
        let token = slot.prepared.sampler.sample(&self.context, at);
        let vocab = self.model.vocab();
        if vocab.is_eog(token) {
            return true;
        }
        slot.generated += 1;
        let before = slot.text.len();
        vocab.token_to_piece_into(token, &mut slot.text, false, None);
        let stops = &slot.prepared.stops;
        let longest_stop = stops.iter().map(Vec::len).max().unwrap_or(0);
        if let Some(cut) = find_stop(&slot.text, stops, before.saturating_sub(longest_stop)) {
            slot.text.truncate(cut);
            return true;
        }
        if slot.generated == slot.prepared.max_new {
            return true;
        }
        slot.pending = Some(token);
        false
    }

    /// Frees a slot's sequence and context space, and answers its caller: with its text
    /// (`Some(Ok)`), an error (`Some(Err)`), or not at all (`None`: the caller is gone).
    fn release(&mut self, slot: Slot, result: Option<Result<(), ModelError>>) {
        // Removing a whole sequence cannot fail.
        let _ = self
            .context
            .clear_kv_cache_seq(Some(slot.seq as u32), None, None);
        self.free_seqs.push(slot.seq);
        self.free_seqs.sort_unstable_by(|a, b| b.cmp(a));
        let Some(result) = result else { return };
        let generation_time = slot.admitted.elapsed().saturating_sub(slot.prompt_time);
        let answer = result.map(|()| {
            slot.job.span.in_scope(|| {
                debug!(
                    model = %self.name,
                    prompt_tokens = slot.prepared.tokens.len(),
                    completion_tokens = slot.generated,
                    prompt_ms = millis(slot.prompt_time),
                    generation_ms = millis(generation_time),
                    "Generated."
                );
            });
            Generation {
                text: utf8(slot.text),
                usage: Usage {
                    prompt_tokens: count(slot.prepared.tokens.len()),
                    completion_tokens: count(slot.generated),
                },
            }
        });
        let _ = slot.job.reply.send(answer);
    }

    /// Answers every slot with `message` as a server error and empties the KV cache
    /// (a failed decode or a panic leaves it in an unknown state).
    fn fail_all(&mut self, message: &str) {
        for slot in std::mem::take(&mut self.slots) {
            let error = self.error(ErrorKind::ServerError, message);
            self.release(slot, Some(Err(error)));
        }
        self.context.clear_kv_cache();
    }
}

/// Where the earliest stop string starts in `text`, looking at matches that start at
/// or after `from` (earlier ones were looked for after earlier tokens).
fn find_stop<S: AsRef<[u8]>>(text: &[u8], stops: &[S], from: usize) -> Option<usize> {
    stops
        .iter()
        .filter_map(|stop| {
            let stop = stop.as_ref();
            text.get(from..)?
                .windows(stop.len())
                .position(|window| window == stop)
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

    /// An entry for the default model pack's LLM (`make setup` puts it in `.wolf/`).
    fn config(parallel: usize, context: u32) -> GgufConfig {
        let mut config = GgufConfig {
            path: None,
            threads: 2,
            context,
            parallel,
            generation: crate::models::Generation::default(),
        };
        let path = config.resolved_path().unwrap_or_else(|| {
            std::path::Path::new(crate::home::DIR_NAME)
                .join("models")
                .join(crate::home::DEFAULT_LLM)
        });
        assert!(
            path.is_file(),
            "the test model `{}` is missing; run `make setup`",
            path.display()
        );
        config.path = Some(path);
        config
    }

    /// One model shared by most tests, serving four sequences: tests that run at the
    /// same time share its batches, as callers do.
    fn model() -> &'static GgufModel {
        static MODEL: OnceLock<GgufModel> = OnceLock::new();
        MODEL.get_or_init(|| GgufModel::load("smollm2", &config(4, 2048)).expect("it loads"))
    }

    /// The same model serving one sequence at a time: what the batched one must match.
    fn one_at_a_time() -> &'static GgufModel {
        static MODEL: OnceLock<GgufModel> = OnceLock::new();
        MODEL.get_or_init(|| GgufModel::load("alone", &config(1, 2048)).expect("it loads"))
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

    /// Prompts of different lengths, so that sequences start, read and end apart.
    const PROMPTS: [&str; 4] = [
        "Name a colour.",
        CAPTIONS,
        "Write two sentences about a blue square that moves from left to right.",
        "List three animals that live in the sea, with one fact about each.",
    ];

    /// Each prompt's greedy text from the one-sequence model, alone.
    async fn references(max_tokens: u32) -> Vec<String> {
        let mut texts = Vec::new();
        for prompt in PROMPTS {
            let reply = one_at_a_time().chat(&request(prompt, max_tokens)).await;
            texts.push(reply.unwrap().text);
        }
        texts
    }

    /// The four prompts through `model`, `in_flight` at a time.
    async fn batched(model: &'static GgufModel, in_flight: usize, max_tokens: u32) -> Vec<String> {
        let mut texts = Vec::new();
        for group in PROMPTS.chunks(in_flight) {
            let tasks: Vec<_> = group
                .iter()
                .map(|&prompt| {
                    tokio::spawn(async move { model.chat(&request(prompt, max_tokens)).await })
                })
                .collect();
            for task in tasks {
                texts.push(task.await.unwrap().unwrap().text);
            }
        }
        texts
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn greedy_outputs_are_the_same_at_1_2_and_4_in_flight() {
        let alone = references(48).await;
        for in_flight in [1, 2, 4] {
            let texts = batched(model(), in_flight, 48).await;
            assert_eq!(texts, alone, "{in_flight} in flight");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_join_and_leave_mid_generation() {
        let model = model();
        let long = tokio::spawn(async move {
            let reply = model.chat(&request(PROMPTS[3], 120)).await;
            (reply, Instant::now())
        });
        // The short one joins while the long one generates, and leaves before it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let short = model.chat(&request(PROMPTS[0], 4)).await.unwrap();
        let short_done = Instant::now();
        let (long_reply, long_done) = long.await.unwrap();
        let long_reply = long_reply.unwrap();
        assert!(
            long_reply.usage.unwrap().completion_tokens > 40,
            "the long request ended early: {:?}",
            long_reply.usage
        );
        assert!(
            short_done < long_done,
            "the short request waited for the long one"
        );
        let alone_long = one_at_a_time()
            .chat(&request(PROMPTS[3], 120))
            .await
            .unwrap();
        let alone_short = one_at_a_time().chat(&request(PROMPTS[0], 4)).await.unwrap();
        assert_eq!(long_reply.text, alone_long.text);
        assert_eq!(short.text, alone_short.text);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_request_frees_its_sequence() {
        static MODEL: OnceLock<GgufModel> = OnceLock::new();
        let model = MODEL.get_or_init(|| GgufModel::load("two", &config(2, 2048)).unwrap());
        // Both sequences busy with stories, then both callers give up.
        let story = request("Write a very long story about a red circle.", 2000);
        for _ in 0..2 {
            let gave_up =
                tokio::time::timeout(Duration::from_millis(300), model.chat(&story)).await;
            assert!(gave_up.is_err(), "a 2000-token story within 300 ms");
        }
        // Two sequences must be free again: two requests at once, answered in time and
        // as they are alone.
        let both = tokio::time::timeout(Duration::from_secs(120), batched(model, 2, 24))
            .await
            .expect("the sequences were freed");
        let alone = references(24).await;
        assert_eq!(both, alone);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_prompt_longer_than_a_sequence_overflows_and_the_others_go_on() {
        static MODEL: OnceLock<GgufModel> = OnceLock::new();
        // 256 cells a sequence, two sequences.
        let model = MODEL.get_or_init(|| GgufModel::load("small", &config(2, 256)).unwrap());
        let fits = tokio::spawn(async move { model.chat(&request(CAPTIONS, 120)).await });
        let never = request(&"the red circle moves to the right. ".repeat(40), 8);
        let error = model.chat(&never).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::ContextOverflow, "{error}");
        // The one that fits gets as many tokens as its sequence has cells left.
        let reply = fits.await.unwrap().unwrap();
        let usage = reply.usage.unwrap();
        assert!(
            usage.prompt_tokens + usage.completion_tokens <= 256,
            "{usage:?}"
        );
        let alone = one_at_a_time().chat(&request(CAPTIONS, 120)).await.unwrap();
        assert!(
            alone.text.starts_with(&reply.text),
            "{:?} against {:?}",
            reply.text,
            alone.text
        );
    }

    #[test]
    fn a_missing_file_fails_to_load_naming_it() {
        let config = GgufConfig {
            path: Some("/nonexistent/model.gguf".into()),
            threads: 1,
            context: 256,
            parallel: 1,
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
            parallel: 1,
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
