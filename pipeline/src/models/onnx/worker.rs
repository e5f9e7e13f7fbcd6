//! The inference thread of an ONNX model and its dynamic batching.
//!
//! The thread waits for a job, then gathers more for up to the batch wait, until the
//! batch holds `batch` images (captioners), texts (embedders) or chats (LLMs), and runs
//! them as one batch. An LLM's prompts are padded on the left to the longest, each row
//! is decoded until it ends, and chats that arrive meanwhile join at the next step
//! (continuous batching; static for a graph that cannot pad). A captioner that reads
//! its prompt runs the images whose prompts have as many tokens together (one run per
//! prompt length). Jobs whose caller went away are skipped before the batch runs; a
//! batch stops early when every caller is gone, and a chat whose caller goes away
//! stops at the next step.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::captioner::{Caption, VisionCaptioner};
use super::embedder::SentenceEmbedder;
use super::generate::{DecoderForm, Search};
use super::llm::{CausalLm, Generation, Running};
use super::runtime::SessionOptions;
use super::{Layout, OnnxError, QUEUE};
use crate::media::RgbImage;
use crate::models::{ChatRequest, ErrorKind, ModelError};

/// What the inference thread starts from.
pub struct WorkerSettings {
    pub name: String,
    pub folder: PathBuf,
    pub layout: Layout,
    pub options: SessionOptions,
    pub search: Search,
    pub decoder: DecoderForm,
    /// The most images or texts in one batch.
    pub batch: usize,
    /// How long the first job of a batch waits for company.
    pub batch_wait: Duration,
}

type Answer<T> = oneshot::Sender<Result<T, ModelError>>;

/// One request. Batches mix callers, so no job carries its caller's span.
enum Job {
    /// An image and the prompt it came with.
    Caption(RgbImage, String, Answer<Caption>),
    Embed(Vec<String>, Answer<Vec<Vec<f32>>>),
    Chat(Box<ChatRequest>, Answer<Generation>),
}

impl Job {
    fn is_closed(&self) -> bool {
        match self {
            Self::Caption(_, _, a) => a.is_closed(),
            Self::Embed(_, a) => a.is_closed(),
            Self::Chat(_, a) => a.is_closed(),
        }
    }

    /// Images or texts the job adds to a batch.
    fn size(&self) -> usize {
        match self {
            Self::Embed(texts, _) => texts.len().max(1),
            _ => 1,
        }
    }
}

/// The loaded model the thread owns.
enum Engine {
    Captioner(Box<VisionCaptioner>),
    Embedder(Box<SentenceEmbedder>),
    Lm(Box<CausalLm>),
}

/// The sending side of a model's thread.
pub struct Worker {
    name: String,
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// Starts the thread and waits until the model is loaded.
    pub fn start(settings: WorkerSettings) -> Result<Self, ModelError> {
        let name = settings.name.clone();
        let (jobs, queue) = mpsc::channel(QUEUE);
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(format!("onnx-{name}"))
            .spawn(move || serve(settings, ready_tx, queue))
            .map_err(|e| {
                ModelError::new(
                    ErrorKind::Load,
                    &name,
                    format!("cannot start the inference thread: {e}"),
                )
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self { name, jobs }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ModelError::new(
                ErrorKind::Load,
                &name,
                "the inference thread stopped while loading",
            )),
        }
    }

    fn stopped(&self) -> ModelError {
        ModelError::new(
            ErrorKind::Cancelled,
            &self.name,
            "the inference thread has stopped",
        )
    }

    async fn ask<T>(
        &self,
        job: impl FnOnce(Answer<T>) -> Job,
        answer: oneshot::Receiver<Result<T, ModelError>>,
        reply: Answer<T>,
    ) -> Result<T, ModelError> {
        self.jobs
            .send(job(reply))
            .await
            .map_err(|_| self.stopped())?;
        answer.await.map_err(|_| self.stopped())?
    }

    /// Captions `image`; `prompt` is read by folders that declare `prompt_prefix`.
    pub async fn caption(&self, image: RgbImage, prompt: String) -> Result<Caption, ModelError> {
        let (reply, answer) = oneshot::channel();
        self.ask(|r| Job::Caption(image, prompt, r), answer, reply)
            .await
    }

    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.ask(|r| Job::Embed(texts, r), answer, reply).await
    }

    pub async fn chat(&self, request: ChatRequest) -> Result<Generation, ModelError> {
        let (reply, answer) = oneshot::channel();
        self.ask(|r| Job::Chat(Box::new(request), r), answer, reply)
            .await
    }
}

fn load(settings: &WorkerSettings) -> Result<Engine, OnnxError> {
    let folder = &settings.folder;
    Ok(match settings.layout {
        Layout::VisionEncoderDecoder => Engine::Captioner(Box::new(VisionCaptioner::load(
            folder,
            settings.options,
            settings.decoder,
            settings.search,
        )?)),
        Layout::Embedder => {
            Engine::Embedder(Box::new(SentenceEmbedder::load(folder, settings.options)?))
        }
        Layout::CausalLm => Engine::Lm(Box::new(CausalLm::load(folder, settings.options)?)),
    })
}

/// The inference thread: loads, reports readiness, then serves batches until every
/// sender is gone.
fn serve(
    settings: WorkerSettings,
    ready: std::sync::mpsc::SyncSender<Result<(), ModelError>>,
    mut queue: mpsc::Receiver<Job>,
) {
    let name = settings.name.clone();
    let started = Instant::now();
    let mut engine = match load(&settings) {
        Ok(engine) => engine,
        Err(error) => {
            let _ = ready.send(Err(error.to_model_error(ErrorKind::Load, &name)));
            return;
        }
    };
    debug!(
        model = %name,
        folder = %settings.folder.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Loaded an ONNX model."
    );
    let clock = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(clock) => clock,
        Err(e) => {
            let message = format!("cannot start the batching clock: {e}");
            let _ = ready.send(Err(ModelError::new(ErrorKind::Load, &name, message)));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    drop(ready);
    let limit = settings.batch.max(1);
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        let mut size = batch[0].size();
        let deadline = Instant::now() + settings.batch_wait;
        while size < limit {
            let next = match queue.try_recv() {
                Ok(job) => Some(job),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        None
                    } else {
                        clock
                            .block_on(async { tokio::time::timeout(left, queue.recv()).await })
                            .ok()
                            .flatten()
                    }
                }
            };
            let Some(job) = next else { break };
            size += job.size();
            batch.push(job);
        }
        batch.retain(|job| {
            let closed = job.is_closed();
            if closed {
                debug!(model = %name, "Skipped a request whose caller went away.");
            }
            !closed
        });
        if !batch.is_empty() {
            run_batch(&mut engine, batch, &mut queue, &name, limit);
        }
    }
}

/// Runs `f`; a panic in it is an error.
fn guarded<T>(f: impl FnOnce() -> Result<T, OnnxError>) -> Result<T, OnnxError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(OnnxError::Panicked))
}

/// Caption jobs whose prompts have `length` tokens (`None`: a prompt that does not
/// tokenize), run together.
struct Group {
    length: Option<usize>,
    prompts: Vec<String>,
    images: Vec<RgbImage>,
    answers: Vec<Answer<Caption>>,
}

/// Runs one batch and answers every job in it; an LLM's batch takes the chats that
/// arrive while it runs ([`run_chats`]). A panic fails the batch, not the thread.
fn run_batch(
    engine: &mut Engine,
    batch: Vec<Job>,
    queue: &mut mpsc::Receiver<Job>,
    name: &str,
    limit: usize,
) {
    let fail = |error: OnnxError| error.to_model_error(ErrorKind::ServerError, name);
    match engine {
        Engine::Captioner(captioner) => {
            // One run per prompt length in tokens (in order of first arrival): rows whose
            // prompts are equally long need no padding, which the decoder graph cannot
            // express, so different prompts share a run (the cascade gives every frame
            // a prompt of its own). A folder that ignores prompts runs the whole batch at
            // once; a prompt that does not tokenize runs alone, to fail alone.
            let reads_prompt = captioner.reads_prompt();
            let mut groups: Vec<Group> = Vec::new();
            for job in batch {
                if let Job::Caption(image, prompt, answer) = job {
                    let prompt = if reads_prompt { prompt } else { String::new() };
                    let length = captioner.prompt_ids(&prompt).ok().map(|ids| ids.len());
                    match groups
                        .iter_mut()
                        .find(|g| length.is_some() && g.length == length)
                    {
                        Some(group) => {
                            group.prompts.push(prompt);
                            group.images.push(image);
                            group.answers.push(answer);
                        }
                        None => groups.push(Group {
                            length,
                            prompts: vec![prompt],
                            images: vec![image],
                            answers: vec![answer],
                        }),
                    }
                }
            }
            for group in groups {
                let Group {
                    prompts,
                    images,
                    answers,
                    ..
                } = group;
                let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
                let closed = || answers.iter().all(|a| a.is_closed());
                match guarded(|| captioner.caption_each(&images, &prompts, &closed)) {
                    Ok(captions) => {
                        for (answer, caption) in answers.into_iter().zip(captions) {
                            let _ = answer.send(Ok(caption));
                        }
                    }
                    Err(error) => {
                        let error = fail(error);
                        for answer in answers {
                            let _ = answer.send(Err(error.clone()));
                        }
                    }
                }
            }
        }
        Engine::Embedder(embedder) => {
            let mut texts = Vec::new();
            let mut answers = Vec::new();
            for job in batch {
                if let Job::Embed(t, answer) = job {
                    answers.push((answer, t.len()));
                    texts.extend(t);
                }
            }
            let outcome = guarded(|| {
                let mut vectors = Vec::with_capacity(texts.len());
                for chunk in texts.chunks(limit) {
                    vectors.extend(embedder.embed(chunk)?);
                }
                Ok(vectors)
            });
            match outcome {
                Ok(vectors) => {
                    let mut vectors = vectors.into_iter();
                    for (answer, n) in answers {
                        let _ = answer.send(Ok(vectors.by_ref().take(n).collect()));
                    }
                }
                Err(error) => {
                    let error = fail(error);
                    for (answer, _) in answers {
                        let _ = answer.send(Err(error.clone()));
                    }
                }
            }
        }
        Engine::Lm(lm) if lm.can_join() => run_chats(lm, batch, queue, name, limit),
        Engine::Lm(lm) => {
            // Static: a graph that cannot pad runs prompts of different lengths one at a
            // time ([`CausalLm::generate_batch`]).
            let mut requests = Vec::new();
            let mut answers = Vec::new();
            for job in batch {
                if let Job::Chat(request, answer) = job {
                    requests.push(request);
                    answers.push(answer);
                }
            }
            let borrowed: Vec<&ChatRequest> = requests.iter().map(|r| r.as_ref()).collect();
            let closed = |i: usize| answers[i].is_closed();
            // A context overflow keeps its own kind (`to_model_error`).
            match guarded(|| lm.generate_batch(&borrowed, &closed)) {
                Ok(results) => {
                    for (answer, result) in answers.into_iter().zip(results) {
                        let _ = answer.send(result.map_err(fail));
                    }
                }
                Err(error) => {
                    let error = fail(error);
                    for answer in answers {
                        let _ = answer.send(Err(error.clone()));
                    }
                }
            }
        }
    }
}

/// Chats decoded with continuous batching: the batch's chats start together, and until
/// every row has ended, chats that arrive join at the next step while the batch holds
/// fewer than `limit`; each is answered when it ends.
fn run_chats(
    lm: &mut CausalLm,
    batch: Vec<Job>,
    queue: &mut mpsc::Receiver<Job>,
    name: &str,
    limit: usize,
) {
    let fail = |error: OnnxError| error.to_model_error(ErrorKind::ServerError, name);
    let mut running = Running::default();
    // The callers of the rows not yet answered, by row key.
    let mut answers: HashMap<usize, Answer<Generation>> = HashMap::new();
    let mut next_key = 0;
    let mut arrived = batch;
    loop {
        for job in arrived.drain(..) {
            let Job::Chat(request, answer) = job else {
                continue;
            };
            let key = next_key;
            next_key += 1;
            // A context overflow keeps its own kind (`to_model_error`).
            match guarded(|| lm.admit(&mut running, key, &request)) {
                Ok(()) => {
                    answers.insert(key, answer);
                }
                Err(error) => {
                    let _ = answer.send(Err(fail(error)));
                }
            }
        }
        if running.is_empty() {
            return;
        }
        let closed = |key: usize| answers.get(&key).is_none_or(|a| a.is_closed());
        match guarded(|| lm.step(&mut running, &closed)) {
            Ok(ended) => {
                for (key, outcome) in ended {
                    if let Some(answer) = answers.remove(&key) {
                        let _ = answer.send(outcome.map_err(fail));
                    }
                }
            }
            Err(error) => {
                let error = fail(error);
                for answer in answers.into_values() {
                    let _ = answer.send(Err(error.clone()));
                }
                return;
            }
        }
        while running.len() + arrived.len() < limit {
            match queue.try_recv() {
                Ok(job) if job.is_closed() => {
                    debug!(model = %name, "Skipped a request whose caller went away.");
                }
                Ok(job) => arrived.push(job),
                Err(_) => break,
            }
        }
    }
}
