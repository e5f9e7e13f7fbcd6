//! A scripted OpenAI-compatible server on loopback, for fault-injection tests and the
//! HTTP benchmark.
//!
//! [`ScriptedServer::start`] binds `127.0.0.1:0` and serves `/v1/chat/completions`,
//! `/v1/embeddings` and `/v1/models` until the handle is dropped. Each chat or
//! embeddings request gets a [`Behaviour`] chosen by the [`Script`]: from an explicit
//! sequence and then a default, or drawn with seeded probabilities. Behaviours cover
//! what real servers do to clients: answers (fixed, echoed or computed), latency, 429
//! with `Retry-After`, 500, hanging, malformed JSON, empty `choices`, a missing or
//! empty `content`, a body trickled out in small chunks, and a 400 context overflow.
//!
//! Threads: the server runs on its own thread with its own tokio runtime, so that it
//! works from sync and async tests alike and its work is not scheduled on the
//! caller's runtime; dropping the handle stops the runtime, which cancels every
//! request still in flight (a hanging one included). The handle records what it
//! received (bodies, the `Authorization` header) and the most requests it saw in
//! flight at once.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::hash::{SplitMix64, fnv1a};

/// Dimensions of the vectors `/v1/embeddings` returns.
pub const EMBEDDING_DIM: usize = 64;

/// A reply text computed from the request's JSON body.
pub type ReplyFn = Arc<dyn Fn(&Value) -> String + Send + Sync>;

/// What the server does with one request.
#[derive(Clone)]
pub enum Behaviour {
    /// Answer with this text as the assistant's content (verbatim: `"  "` is a blank
    /// reply). Embeddings requests get their vectors.
    Text(String),
    /// Answer with the text of the last user message.
    Echo,
    /// Answer with a text computed from the request body.
    With(ReplyFn),
    /// Wait this long, then behave as the inner behaviour.
    Delayed(Duration, Box<Behaviour>),
    /// HTTP 429 with this `Retry-After` value (seconds or an HTTP date), if any.
    RateLimited { retry_after: Option<String> },
    /// HTTP 500.
    ServerError,
    /// Any status with this body (JSON or not).
    Status(u16, String),
    /// This status with an error message that quotes the request's `Authorization`
    /// header, as a careless server does.
    EchoAuthorization(u16),
    /// Never answer (until the server is dropped).
    Hang,
    /// HTTP 200 with a body that is not JSON.
    MalformedJson,
    /// A completion with `"choices": []`.
    NoChoices,
    /// A completion whose message has no `content` field.
    MissingContent,
    /// A completion whose content is `""`.
    EmptyContent,
    /// A normal completion with this text, its body sent in `chunks` pieces, one every
    /// `interval`.
    Trickle {
        text: String,
        chunks: usize,
        interval: Duration,
    },
    /// HTTP 400 the way OpenAI says the prompt does not fit the context.
    ContextOverflow,
}

impl Behaviour {
    /// [`Behaviour::Text`].
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    /// [`Behaviour::With`].
    pub fn with(f: impl Fn(&Value) -> String + Send + Sync + 'static) -> Self {
        Self::With(Arc::new(f))
    }

    /// [`Behaviour::Delayed`].
    pub fn delayed(delay: Duration, then: Behaviour) -> Self {
        Self::Delayed(delay, Box::new(then))
    }
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text(t) => f.debug_tuple("Text").field(t).finish(),
            Self::Echo => f.write_str("Echo"),
            Self::With(_) => f.write_str("With(<fn>)"),
            Self::Delayed(d, b) => f.debug_tuple("Delayed").field(d).field(b).finish(),
            Self::RateLimited { retry_after } => f
                .debug_struct("RateLimited")
                .field("retry_after", retry_after)
                .finish(),
            Self::ServerError => f.write_str("ServerError"),
            Self::Status(code, body) => f.debug_tuple("Status").field(code).field(body).finish(),
            Self::EchoAuthorization(code) => {
                f.debug_tuple("EchoAuthorization").field(code).finish()
            }
            Self::Hang => f.write_str("Hang"),
            Self::MalformedJson => f.write_str("MalformedJson"),
            Self::NoChoices => f.write_str("NoChoices"),
            Self::MissingContent => f.write_str("MissingContent"),
            Self::EmptyContent => f.write_str("EmptyContent"),
            Self::Trickle {
                text,
                chunks,
                interval,
            } => f
                .debug_struct("Trickle")
                .field("text", text)
                .field("chunks", chunks)
                .field("interval", interval)
                .finish(),
            Self::ContextOverflow => f.write_str("ContextOverflow"),
        }
    }
}

/// How behaviours are chosen, request by request.
#[derive(Debug, Clone)]
enum Choice {
    /// The n-th request gets `steps[n]`, later ones `then`.
    Sequence {
        steps: Vec<Behaviour>,
        then: Behaviour,
    },
    /// Each request draws from `weights` (relative, not necessarily summing to 1).
    Random {
        seed: u64,
        weights: Vec<(f64, Behaviour)>,
    },
}

/// The model names `/v1/models` lists unless [`Script::with_models`] says otherwise.
pub const DEFAULT_MODELS: [&str; 1] = ["scripted"];

/// What the server does: the choice of behaviours, a latency added to every request,
/// whether bodies are recorded, the server's threads and the model names it lists.
#[derive(Debug, Clone)]
pub struct Script {
    choice: Choice,
    latency: Duration,
    record: bool,
    threads: usize,
    models: Vec<String>,
}

impl Script {
    /// Every request gets `behaviour`.
    pub fn always(behaviour: Behaviour) -> Self {
        Self::sequence(Vec::new(), behaviour)
    }

    /// Request n (counting from 0, chat and embeddings together) gets `steps[n]`; the
    /// rest get `then`.
    pub fn sequence(steps: Vec<Behaviour>, then: Behaviour) -> Self {
        Self {
            choice: Choice::Sequence { steps, then },
            latency: Duration::ZERO,
            record: true,
            threads: 1,
            models: DEFAULT_MODELS.map(String::from).to_vec(),
        }
    }

    /// Each request draws its behaviour with these relative weights from a generator
    /// seeded with `seed`: the same seed gives the same sequence of draws.
    pub fn random(seed: u64, weights: Vec<(f64, Behaviour)>) -> Self {
        assert!(
            !weights.is_empty() && weights.iter().all(|(w, _)| w.is_finite() && *w >= 0.0),
            "a random script needs weights that are finite and not negative"
        );
        Self {
            choice: Choice::Random { seed, weights },
            latency: Duration::ZERO,
            record: true,
            threads: 1,
            models: DEFAULT_MODELS.map(String::from).to_vec(),
        }
    }

    /// Every request waits this long before its behaviour.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Whether request bodies are kept for [`ScriptedServer::received`] (default yes;
    /// benchmarks turn it off).
    pub fn with_recording(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// The model names `GET /v1/models` lists (default [`DEFAULT_MODELS`]), which the
    /// preflight looks for; requests for other names are answered all the same.
    pub fn with_models<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.models = names.into_iter().map(Into::into).collect();
        self
    }

    /// Worker threads of the server's runtime (default 1).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// Every header, by lower-case name.
    pub headers: std::collections::BTreeMap<String, String>,
    /// The body as JSON (`Value::Null` when it was not JSON).
    pub body: Value,
}

struct Shared {
    script: Script,
    rng: Mutex<SplitMix64>,
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    received: Mutex<Vec<Received>>,
}

/// A running scripted server; dropping it stops the server.
pub struct ScriptedServer {
    addr: SocketAddr,
    base_url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ScriptedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedServer")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl ScriptedServer {
    /// Binds `127.0.0.1:0` and serves `script` on a thread of its own. Works from sync
    /// and async code.
    pub fn start(script: Script) -> std::io::Result<Self> {
        let seed = match &script.choice {
            Choice::Random { seed, .. } => *seed,
            Choice::Sequence { .. } => 0,
        };
        let threads = script.threads;
        let shared = Arc::new(Shared {
            script,
            rng: Mutex::new(SplitMix64::new(seed)),
            requests: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            received: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel::<std::io::Result<SocketAddr>>();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("scripted-server".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name("scripted-server-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = bound_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match bind_loopback() {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = bound_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = bound_tx.send(listener.local_addr());
                    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    let app = Router::new()
                        .route("/v1/chat/completions", post(chat))
                        .route("/v1/embeddings", post(embeddings))
                        .route("/v1/models", get(models))
                        .layer(DefaultBodyLimit::max(512 << 20))
                        .with_state(state);
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here cancels every connection task, hanging ones
                // included.
                drop(runtime);
            })?;
        let addr = bound_rx
            .recv()
            .map_err(|_| std::io::Error::other("the scripted server's thread ended"))??;
        Ok(Self {
            addr,
            base_url: format!("http://{addr}/v1"),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Chat and embeddings requests received so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The requests received so far, in order of arrival (empty when recording is off).
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .expect("the received list is never poisoned; this is a bug")
            .clone()
    }

    /// The most chat and embeddings requests that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A loopback listener with a backlog that takes hundreds of connections at once (std's
/// `bind` uses 128, and a dropped SYN costs the client a second).
fn bind_loopback() -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    socket.listen(4096)
}

/// Counts a request in flight while it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    /// Counts the request, records it, and picks its behaviour.
    fn admit(&self, path: &str, headers: &HeaderMap, body: &Value) -> Behaviour {
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        if self.script.record {
            let authorization = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            self.received
                .lock()
                .expect("the received list is never poisoned; this is a bug")
                .push(Received {
                    path: path.to_owned(),
                    authorization,
                    headers: headers
                        .iter()
                        .filter_map(|(name, value)| {
                            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
                        })
                        .collect(),
                    body: body.clone(),
                });
        }
        match &self.script.choice {
            Choice::Sequence { steps, then } => steps.get(n).unwrap_or(then).clone(),
            Choice::Random { weights, .. } => {
                let total: f64 = weights.iter().map(|(w, _)| w).sum();
                let draw = self
                    .rng
                    .lock()
                    .expect("the generator is never poisoned; this is a bug")
                    .next_f64()
                    * total;
                let mut acc = 0.0;
                for (w, b) in weights {
                    acc += w;
                    if draw < acc {
                        return b.clone();
                    }
                }
                weights
                    .last()
                    .expect("weights are not empty; this is a bug")
                    .1
                    .clone()
            }
        }
    }
}

/// What a request asks for, as far as the behaviours need to know.
enum Endpoint {
    Chat,
    Embeddings,
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    respond(&shared, Endpoint::Chat, &headers, &body).await
}

async fn embeddings(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(&shared, Endpoint::Embeddings, &headers, &body).await
}

async fn models(State(shared): State<Arc<Shared>>) -> Response {
    let data: Vec<Value> = shared
        .script
        .models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "owned_by": "wolf"}))
        .collect();
    json_response(StatusCode::OK, json!({"object": "list", "data": data}))
}

async fn respond(
    shared: &Shared,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let _in_flight = InFlight::enter(shared);
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let path = match endpoint {
        Endpoint::Chat => "/v1/chat/completions",
        Endpoint::Embeddings => "/v1/embeddings",
    };
    let mut behaviour = shared.admit(path, headers, &request);
    if !shared.script.latency.is_zero() {
        tokio::time::sleep(shared.script.latency).await;
    }
    while let Behaviour::Delayed(delay, then) = behaviour {
        tokio::time::sleep(delay).await;
        behaviour = *then;
    }
    let text = match behaviour {
        Behaviour::Text(text) => text,
        Behaviour::Echo => last_user_text(&request),
        Behaviour::With(f) => f(&request),
        Behaviour::Delayed(..) => unreachable!("delays were taken above"),
        Behaviour::RateLimited { retry_after } => {
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached.",
                "rate_limit_exceeded",
            );
            if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        Behaviour::ServerError => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server had an error.",
                "server_error",
            );
        }
        Behaviour::Status(code, text) => {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (code, [(header::CONTENT_TYPE, "application/json")], text).into_response();
        }
        Behaviour::EchoAuthorization(code) => {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let sent = headers
                .get(header::AUTHORIZATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            return error_response(
                code,
                &format!("cannot serve a request with `Authorization: {sent}`"),
                "server_error",
            );
        }
        Behaviour::Hang => std::future::pending().await,
        Behaviour::MalformedJson => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"choices\": [{\"message\": ",
            )
                .into_response();
        }
        Behaviour::NoChoices => {
            return json_response(
                StatusCode::OK,
                json!({"id": "chatcmpl-scripted", "object": "chat.completion", "choices": []}),
            );
        }
        Behaviour::MissingContent => {
            return json_response(
                StatusCode::OK,
                json!({"id": "chatcmpl-scripted", "object": "chat.completion",
                       "choices": [{"index": 0, "message": {"role": "assistant"}, "finish_reason": "stop"}]}),
            );
        }
        Behaviour::EmptyContent => String::new(),
        Behaviour::Trickle {
            text,
            chunks,
            interval,
        } => {
            let body = match endpoint {
                Endpoint::Chat => completion(&request, &text),
                Endpoint::Embeddings => embedding_list(&request),
            };
            let bytes = Bytes::from(
                serde_json::to_vec(&body).expect("JSON values serialize; this is a bug"),
            );
            let size = bytes.len().div_ceil(chunks.max(1)).max(1);
            let pieces = (0..bytes.len())
                .step_by(size)
                .map(|at| bytes.slice(at..(at + size).min(bytes.len())))
                .collect();
            let trickle = Trickle {
                pieces,
                interval,
                sleep: Box::pin(tokio::time::sleep(interval)),
            };
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::new(trickle),
            )
                .into_response();
        }
        Behaviour::ContextOverflow => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "This model's maximum context length is 2048 tokens. However, your messages resulted in 9000 tokens. \
                 Please reduce the length of the messages.",
                "context_length_exceeded",
            );
        }
    };
    match endpoint {
        Endpoint::Chat => json_response(StatusCode::OK, completion(&request, &text)),
        Endpoint::Embeddings => json_response(StatusCode::OK, embedding_list(&request)),
    }
}

fn json_response(status: StatusCode, value: Value) -> Response {
    let bytes = serde_json::to_vec(&value).expect("JSON values serialize; this is a bug");
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

fn error_response(status: StatusCode, message: &str, code: &str) -> Response {
    json_response(
        status,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}}),
    )
}

/// A chat completion saying `text`, with token counts by words.
fn completion(request: &Value, text: &str) -> Value {
    let prompt_tokens = words_in_messages(request);
    let completion_tokens = text.split_whitespace().count();
    json!({
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model").and_then(Value::as_str).unwrap_or("scripted"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    })
}

fn words_in_messages(request: &Value) -> usize {
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return 0;
    };
    messages
        .iter()
        .map(|m| message_text(m).split_whitespace().count())
        .sum()
}

/// The text of a message: its string content, or its text parts joined by newlines.
fn message_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The text of the last user message, or `""`.
pub fn last_user_text(request: &Value) -> String {
    request
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|ms| {
            ms.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .map(message_text)
        .unwrap_or_default()
}

fn embedding_list(request: &Value) -> Value {
    let inputs: Vec<&str> = match request.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embed_text(t)}))
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": request.get("model").and_then(Value::as_str).unwrap_or("scripted"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}

/// A deterministic unit vector for `text`: a signed bag of hashed lower-case words, so
/// that texts sharing words point the same way and unrelated texts are nearly
/// orthogonal. An empty text gets the first axis.
pub fn embed_text(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; EMBEDDING_DIM];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let h = fnv1a(word.to_lowercase().as_bytes());
        let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
        v[(h % EMBEDDING_DIM as u64) as usize] += sign;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        v[0] = 1.0;
    } else {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// A response body sent in pieces, one every `interval`.
struct Trickle {
    pieces: VecDeque<Bytes>,
    interval: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl HttpBody for Trickle {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.pieces.is_empty() {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let next = tokio::time::Instant::now() + self.interval;
        self.sleep.as_mut().reset(next);
        let piece = self
            .pieces
            .pop_front()
            .expect("checked above; this is a bug");
        Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_deterministic_unit_vectors_that_share_words() {
        let a = embed_text("a red circle moves left");
        assert_eq!(a, embed_text("A red circle moves LEFT"));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f32>();
        let close = dot(&a, &embed_text("a red circle moves right"));
        let far = dot(&a, &embed_text("zebra quartz"));
        assert!(close > 0.5 && far.abs() < close, "close {close}, far {far}");
        assert_eq!(embed_text("").len(), EMBEDDING_DIM);
    }

    #[test]
    fn random_scripts_repeat_with_the_same_seed() {
        let draws = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..20)
                .map(|_| (rng.next_f64() * 4.0) as u32)
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
    }

    #[test]
    fn the_last_user_message_is_echoed_from_text_parts_too() {
        let request = json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {"url": "x"}}]},
        ]});
        assert_eq!(last_user_text(&request), "hello");
    }
}
