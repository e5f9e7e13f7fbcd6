//! Batched generation (issue 21): the aggregate generation rate of the `gguf` backend
//! (continuous batching) at 1, 2, 4 and 8 requests in flight against its own
//! single-sequence rate, and at 4 against llama.cpp's server with `--parallel 4`
//! (`.wolf/bin/llama-server`, built by `tools/setup_llama_server.sh`) on the same model
//! and threads; and the same table for the `onnx` LLM (continuous batching) on the demo's
//! fuser and a fusion prompt of its references.
//!
//! Every side is timed alike: `n` copies of the GGUF bench's chat (about 500 prompt
//! tokens) sent at once, first for 1 token each (prompt processing and one sample),
//! then for `MAX_TOKENS` each; the aggregate generation rate is the tokens generated
//! after the first, summed over the `n`, over the difference of the two wall times.
//! Medians over `REPEATS` repetitions of each pair; sizes alternate within a
//! repetition, and the server takes its turn after each of ours (both loaded
//! throughout, each idle while the other runs).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::task::JoinSet;
use wolf_pipeline::home::Home;
use wolf_pipeline::models::gguf::GgufModel;
use wolf_pipeline::models::onnx::OnnxModel;
use wolf_pipeline::models::{
    ChatModel, ChatRequest, GgufConfig, Message, OnnxConfig, Sampling, Speaker,
};

use super::{Row, median_f};

const THREADS: usize = 2;
const MAX_TOKENS: u32 = 128;
const REPEATS: usize = 5;
const IN_FLIGHT: [usize; 4] = [1, 2, 4, 8];
/// The anchor's slots, and the size compared with it.
const SERVER_SLOTS: usize = 4;
/// Cells of each sequence (of each of the server's slots).
const CONTEXT: u32 = 2048;

/// The aggregate generation rates of one size on one side, one a repetition.
#[derive(Default)]
struct Series {
    rates: Vec<f64>,
    completion_tokens: u32,
}

impl Series {
    /// Adds a repetition's rate: the tokens generated after the first of each of the
    /// `n` requests, over the wall time of the long run less that of the 1-token run
    /// just before it (adjacent runs share the machine's load).
    fn push(
        &mut self,
        n: usize,
        who: &str,
        first: Duration,
        (long, tokens): (Duration, u32),
    ) -> anyhow::Result<()> {
        let after_first = f64::from(tokens) - n as f64;
        if after_first < 1.0 || long <= first {
            bail!(
                "{who} at {n} in flight generated {tokens} tokens in {:.3} s against {:.3} s for one each",
                long.as_secs_f64(),
                first.as_secs_f64()
            );
        }
        self.rates.push(after_first / (long - first).as_secs_f64());
        self.completion_tokens = tokens;
        Ok(())
    }

    /// The median rate in tokens/s.
    fn rate(&self) -> f64 {
        median_f(self.rates.iter().copied())
    }
}

fn request(messages: &[Message], max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: messages.to_vec(),
        sampling: Sampling {
            max_tokens,
            ..Sampling::default()
        },
        grammar: None,
    }
}

/// `n` copies of the chat through the model at once: the wall time and the completion
/// tokens summed.
async fn ours(
    model: &Arc<dyn ChatModel>,
    messages: &[Message],
    n: usize,
    max_tokens: u32,
) -> anyhow::Result<(Duration, u32)> {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let model = Arc::clone(model);
        let request = request(messages, max_tokens);
        tasks.spawn(async move { model.chat(&request).await });
    }
    let mut tokens = 0;
    while let Some(reply) = tasks.join_next().await {
        tokens += reply??.usage.unwrap_or_default().completion_tokens;
    }
    Ok((started.elapsed(), tokens))
}

/// llama.cpp's server on the model, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(binary: &Path, model: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(binary)
            .arg("--model")
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--threads", &THREADS.to_string()])
            .args(["--threads-batch", &THREADS.to_string()])
            .args(["--parallel", &SERVER_SLOTS.to_string()])
            // `--ctx-size` is shared by the slots: `CONTEXT` each, as ours.
            .args(["--ctx-size", &(CONTEXT as usize * SERVER_SLOTS).to_string()])
            .args(["--flash-attn", "off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run `{}`", binary.display()))?;
        let mut server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = client.get(format!("{}/health", server.url)).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("llama-server exited ({status})");
            }
            if Instant::now() > deadline {
                bail!("llama-server was not ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `n` copies of the chat at once, greedy, without the server's prompt cache.
    async fn chat(
        &mut self,
        client: &reqwest::Client,
        messages: &[Message],
        n: usize,
        max_tokens: u32,
    ) -> anyhow::Result<(Duration, u32)> {
        let body = serde_json::json!({
            "messages": messages.iter().map(|m| serde_json::json!({
                "role": m.role, "content": m.content,
            })).collect::<Vec<_>>(),
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "cache_prompt": false,
        });
        let url = format!("{}/v1/chat/completions", self.url);
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for _ in 0..n {
            let post = client.post(&url).json(&body).send();
            tasks.spawn(async move {
                let reply: serde_json::Value = post.await?.error_for_status()?.json().await?;
                anyhow::Ok(reply["usage"]["completion_tokens"].as_u64().unwrap_or(0) as u32)
            });
        }
        let mut tokens = 0;
        while let Some(reply) = tasks.join_next().await {
            tokens += reply??;
        }
        Ok((started.elapsed(), tokens))
    }
}

/// Each size of [`IN_FLIGHT`] through `model`, `REPEATS` times, sizes alternating;
/// `between` runs after each repetition (the anchor's turn).
async fn sizes(
    who: &str,
    model: &Arc<dyn ChatModel>,
    messages: &[Message],
    max_tokens: u32,
    mut between: impl AsyncFnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Series>> {
    ours(model, messages, 1, 8).await?; // warm-up
    let mut series: Vec<Series> = IN_FLIGHT.iter().map(|_| Series::default()).collect();
    for _ in 0..REPEATS {
        for (series, &n) in series.iter_mut().zip(&IN_FLIGHT) {
            let first = ours(model, messages, n, 1).await?.0;
            let long = ours(model, messages, n, max_tokens).await?;
            series.push(n, who, first, long)?;
        }
        between().await?;
    }
    Ok(series)
}

/// The ONNX LLM's table: the demo's fuser (as the demo runs it, with `batch` at the
/// largest size, here on two threads) on the first fusion prompt of its references.
async fn onnx(home: &Home) -> anyhow::Result<Vec<Row>> {
    let folder = home
        .root()
        .parent()
        .context("`.wolf/` has no parent folder")?
        .join("fixtures/models/fuser");
    let references: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        folder.join("reference_outputs.json"),
    )?)?;
    let max_tokens = references["generation"]["max_new_tokens"]
        .as_u64()
        .context("no max_new_tokens")? as u32;
    let messages: Vec<Message> = references["chats"][0]["messages"]
        .as_array()
        .context("no reference chat")?
        .iter()
        .map(|m| Message {
            role: match m["role"].as_str() {
                Some("system") => Speaker::System,
                Some("user") => Speaker::User,
                _ => Speaker::Assistant,
            },
            content: m["content"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    let mut config = OnnxConfig::new(Some(folder));
    config.threads = THREADS;
    config.batch = *IN_FLIGHT.iter().max().unwrap_or(&1);
    let model: Arc<dyn ChatModel> = Arc::new(OnnxModel::load("fuser", &config)?);
    let series = sizes(
        "the onnx fuser",
        &model,
        &messages,
        max_tokens,
        async || Ok(()),
    )
    .await?;
    let single = series[0].rate();
    let mut rows = Vec::new();
    for (series, &n) in series.iter().zip(&IN_FLIGHT) {
        let rate = series.rate();
        eprintln!("onnx aggregate generation at {n} in flight: {rate:.0} tokens/s.");
        rows.push(Row {
            benchmark: format!(
                "ONNX LLM aggregate generation, {n} in flight (continuous batching), the demo's fuser, {THREADS} threads"
            ),
            wolf: format!("{rate:.0} tokens/s"),
            anchor: format!("{single:.0} tokens/s (1 in flight)"),
            ratio: format!("{:.2}x", rate / single),
            goal: "report".into(),
            note: format!(
                "median of {REPEATS} pairs: {n} copies of the fuser's first reference chat at once, greedy, up to {max_tokens} tokens ({} in all) minus 1 token each, wall times; `batch = {}`",
                series.completion_tokens, config.batch
            ),
        });
    }
    Ok(rows)
}

pub(super) async fn batching(_work: &Path) -> anyhow::Result<Vec<Row>> {
    let home = Home::locate().context("no `.wolf/` folder; run `make setup`")?;
    let model_path = home.default_llm();
    let binary = home.root().join("bin/llama-server");
    if !binary.is_file() {
        bail!(
            "`{}` is missing; run `make bench`, which builds it",
            binary.display()
        );
    }
    eprintln!("Benchmarking continuous batching (gguf against llama-server) ...");
    let messages = super::gguf::messages();
    let config = GgufConfig {
        path: Some(model_path.clone()),
        threads: THREADS,
        context: CONTEXT,
        parallel: *IN_FLIGHT.iter().max().unwrap_or(&1),
        generation: Default::default(),
    };
    let model: Arc<dyn ChatModel> = Arc::new(GgufModel::load("smollm2", &config)?);
    let mut server = Server::start(&binary, &model_path).await?;
    let client = reqwest::Client::new();
    server.chat(&client, &messages, 1, 8).await?; // warm-up
    // The server at 1 in flight too (its own gain from batching on this machine), its
    // turn after each of our repetitions.
    let (mut their_single, mut their_series) = (Series::default(), Series::default());
    let our_series = sizes("wolf", &model, &messages, MAX_TOKENS, async || {
        for (series, n) in [(&mut their_single, 1), (&mut their_series, SERVER_SLOTS)] {
            let first = server.chat(&client, &messages, n, 1).await?.0;
            let long = server.chat(&client, &messages, n, MAX_TOKENS).await?;
            series.push(n, "llama-server", first, long)?;
        }
        Ok(())
    })
    .await?;
    drop(server);
    drop(model);

    let single = our_series[0].rate();
    let mut rows = Vec::new();
    let mut at_slots = 0.0;
    for (series, &n) in our_series.iter().zip(&IN_FLIGHT) {
        let rate = series.rate();
        if n == SERVER_SLOTS {
            at_slots = rate;
        }
        eprintln!("gguf aggregate generation at {n} in flight: {rate:.0} tokens/s.");
        rows.push(Row {
            benchmark: format!(
                "GGUF aggregate generation, {n} in flight (continuous batching), SmolLM2-135M Q4_1, {THREADS} threads"
            ),
            wolf: format!("{rate:.0} tokens/s"),
            anchor: format!("{single:.0} tokens/s (1 in flight)"),
            ratio: format!("{:.2}x", rate / single),
            goal: if n == 4 { ">= 2.5x".into() } else { "report".into() },
            note: format!(
                "median of {REPEATS} pairs: {n} copies of the GGUF bench's chat at once, greedy, {MAX_TOKENS} tokens each ({} in all) minus 1 token each, wall times; `parallel = 8`, {CONTEXT} tokens a sequence, flash attention off",
                series.completion_tokens
            ),
        });
    }
    let theirs = their_series.rate();
    let their_one = their_single.rate();
    rows.push(Row {
        benchmark: format!(
            "GGUF aggregate generation at {SERVER_SLOTS} in flight against llama.cpp's server (`--parallel {SERVER_SLOTS}`)"
        ),
        wolf: format!("{at_slots:.0} tokens/s"),
        anchor: format!("{theirs:.0} tokens/s (llama-server of llama-cpp-python 0.3.36's llama.cpp)"),
        ratio: format!("{:.2}x", at_slots / theirs),
        goal: ">= 1.0x".into(),
        note: format!(
            "median of {REPEATS} pairs, alternated with ours, timed alike over HTTP on loopback for the server (`cache_prompt: false`, {CONTEXT} tokens a slot, flash attention off, {THREADS} threads, {} tokens generated in all); the server's own rate at 1 in flight: {their_one:.0} tokens/s, so its gain from {SERVER_SLOTS} in flight is {:.2}x",
            their_series.completion_tokens,
            theirs / their_one
        ),
    });
    rows.extend(onnx(&home).await?);
    Ok(rows)
}
