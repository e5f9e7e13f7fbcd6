//! GGUF inference: wolf's `gguf` backend (llama.cpp in process, through the
//! `GgufModel` chat API) against llama-cpp-python (`bench/llama_cpp_python.py` in
//! `.wolf/venv`) on the default SmolLM2-135M-Instruct Q4_1, both on two threads, the
//! same chat, greedy decoding, flash attention off (the `gguf` backend turns it off so
//! that batched sequences decode exactly as they do alone; the anchor follows).
//!
//! Both sides are timed the same way, by wall clock around a chat completion from an
//! empty cache: a 1-token completion gives the prompt rate (prompt tokens over its
//! time, one sample included), and a `MAX_TOKENS` completion of the same chat gives
//! the generation rate (generated tokens after the first over the extra time). The
//! anchor stays loaded in a child process that answers one repetition per stdin line,
//! so single repetitions of the two sides alternate (which goes first alternates too):
//! these machines are shared and their load drifts. Rates come from the medians.

use std::path::Path;

use super::Row;

pub(super) async fn gguf(work: &Path) -> anyhow::Result<Vec<Row>> {
    real::gguf(work).await
}

pub(super) use real::messages;

mod real {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::path::Path;
    use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
    use std::time::{Duration, Instant};

    use anyhow::{Context as _, bail};
    use serde::Deserialize;
    use wolf_pipeline::home::Home;
    use wolf_pipeline::models::gguf::GgufModel;
    use wolf_pipeline::models::{ChatModel, ChatRequest, GgufConfig, Message, Sampling};

    use super::super::{Row, median};

    const THREADS: usize = 2;
    const CONTEXT: u32 = 2048;
    const MAX_TOKENS: u32 = 128;
    /// Repetitions per side.
    const REPEATS: usize = 9;

    /// The anchor's first line.
    #[derive(Debug, Deserialize)]
    struct Ready {
        version: String,
    }

    /// One repetition, from either side.
    #[derive(Debug, Deserialize)]
    struct Repetition {
        first_s: f64,
        long_s: f64,
        prompt_tokens: u32,
        completion_tokens: u32,
        text: String,
    }

    /// Token counts, the two series of times and the last text of one side.
    #[derive(Default)]
    struct Side {
        prompt_tokens: u32,
        completion_tokens: u32,
        first: Vec<Duration>,
        long: Vec<Duration>,
        text: String,
    }

    impl Side {
        fn push(&mut self, repetition: Repetition) {
            self.first.push(Duration::from_secs_f64(repetition.first_s));
            self.long.push(Duration::from_secs_f64(repetition.long_s));
            self.prompt_tokens = repetition.prompt_tokens;
            self.completion_tokens = repetition.completion_tokens;
            self.text = repetition.text;
        }

        /// Prompt and generation rates in tokens/s.
        fn rates(&self, who: &str) -> anyhow::Result<(f64, f64)> {
            let first = median(self.first.clone()).as_secs_f64();
            let long = median(self.long.clone()).as_secs_f64();
            if self.completion_tokens < 2 || long <= first {
                bail!(
                    "{who} generated {} tokens in {long:.3} s against {first:.3} s for one; no generation rate",
                    self.completion_tokens
                );
            }
            Ok((
                f64::from(self.prompt_tokens) / first,
                f64::from(self.completion_tokens - 1) / (long - first),
            ))
        }
    }

    /// `bench/llama_cpp_python.py`, loaded and waiting for repetitions.
    struct Anchor {
        child: Child,
        stdin: Option<ChildStdin>,
        stdout: BufReader<ChildStdout>,
        version: String,
    }

    impl Anchor {
        fn start(
            python: &Path,
            script: &Path,
            request: &serde_json::Value,
        ) -> anyhow::Result<Self> {
            let mut child = Command::new(python)
                .arg(script)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .with_context(|| format!("cannot run `{}`", script.display()))?;
            let mut stdin = child.stdin.take().context("the anchor's stdin")?;
            let stdout = BufReader::new(child.stdout.take().context("the anchor's stdout")?);
            writeln!(stdin, "{request}")?;
            let mut anchor = Self {
                child,
                stdin: Some(stdin),
                stdout,
                version: String::new(),
            };
            anchor.version = anchor.read::<Ready>()?.version;
            Ok(anchor)
        }

        fn repetition(&mut self) -> anyhow::Result<Repetition> {
            let stdin = self
                .stdin
                .as_mut()
                .context("the anchor's stdin is closed")?;
            writeln!(stdin)?;
            stdin.flush()?;
            self.read()
        }

        fn read<T: serde::de::DeserializeOwned>(&mut self) -> anyhow::Result<T> {
            let mut line = String::new();
            self.stdout.read_line(&mut line)?;
            if line.is_empty() {
                bail!(
                    "llama-cpp-python stopped ({}); see its error above",
                    self.child.wait()?
                );
            }
            serde_json::from_str(&line)
                .with_context(|| format!("llama-cpp-python printed {line:?}"))
        }
    }

    impl Drop for Anchor {
        fn drop(&mut self) {
            drop(self.stdin.take()); // end of input ends the script
            let _ = self.child.wait();
        }
    }

    /// The paper's summary prompt over twelve captions (about 500 tokens). Its greedy
    /// continuation runs to `MAX_TOKENS` on both sides; prompts whose first token is a
    /// near tie (logits 30.72 against 30.72) are broken differently by the two
    /// vendored llama.cpp versions, and the two sides then generate different lengths.
    pub(in super::super) fn messages() -> Vec<Message> {
        let captions: Vec<String> = (1..=12)
            .map(|i| {
                format!(
                    "No.{i} frame: a red circle at position {i} of 12 on a white background, \
                     next to a small blue square that does not move, under a grey sky."
                )
            })
            .collect();
        vec![
            Message::system("You are a helpful assistant."),
            Message::user(format!(
                "{}\n\nSummarize all the captions to describe the video with accurate temporal \
                 information.",
                captions.join("\n")
            )),
        ]
    }

    /// One repetition of our side: the same two completions as the anchor's.
    async fn ours(model: &GgufModel, messages: &[Message]) -> anyhow::Result<Repetition> {
        let request = |max_tokens| ChatRequest {
            messages: messages.to_vec(),
            sampling: Sampling {
                max_tokens,
                ..Sampling::default()
            },
            grammar: None,
        };
        let started = Instant::now();
        model.chat(&request(1)).await?;
        let first_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let reply = model.chat(&request(MAX_TOKENS)).await?;
        let long_s = started.elapsed().as_secs_f64();
        let usage = reply.usage.unwrap_or_default();
        Ok(Repetition {
            first_s,
            long_s,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            text: reply.text,
        })
    }

    pub(in super::super) async fn gguf(_work: &Path) -> anyhow::Result<Vec<Row>> {
        let home = Home::locate().context("no `.wolf/` folder; run `make setup`")?;
        let model_path = home.default_llm();
        let python = home.root().join("venv/bin/python");
        let script = home
            .root()
            .parent()
            .context("`.wolf/` has no parent folder")?
            .join("bench/llama_cpp_python.py");
        for (path, fix) in [
            (&model_path, "make setup"),
            (&python, "make venv"),
            (&script, "a full checkout"),
        ] {
            if !path.is_file() {
                bail!("`{}` is missing; run `{fix}`", path.display());
            }
        }
        eprintln!("Benchmarking GGUF inference against llama-cpp-python ...");

        let messages = messages();
        let request = serde_json::json!({
            "model": model_path,
            "threads": THREADS,
            "context": CONTEXT,
            "flash_attn": false,
            "messages": messages.iter().map(|m| serde_json::json!({
                "role": m.role, "content": m.content,
            })).collect::<Vec<_>>(),
            "max_tokens": MAX_TOKENS,
        });
        let mut anchor = Anchor::start(&python, &script, &request)?;
        let config = GgufConfig {
            path: Some(model_path),
            threads: THREADS,
            context: CONTEXT,
            parallel: 4,
            generation: Default::default(),
        };
        let model = GgufModel::load("smollm2", &config)?;
        ours(&model, &messages).await?; // warm-up, as the anchor does

        let (mut our_side, mut their_side) = (Side::default(), Side::default());
        for repetition in 0..REPEATS {
            if repetition % 2 == 0 {
                our_side.push(ours(&model, &messages).await?);
                their_side.push(anchor.repetition()?);
            } else {
                their_side.push(anchor.repetition()?);
                our_side.push(ours(&model, &messages).await?);
            }
        }
        let version = anchor.version.clone();
        drop(anchor);

        let (our_prompt, our_generation) = our_side.rates("wolf")?;
        let (their_prompt, their_generation) = their_side.rates("llama-cpp-python")?;
        eprintln!(
            "GGUF tokens/s, wolf against llama-cpp-python: prompt {our_prompt:.0} / {their_prompt:.0}, \
             generation {our_generation:.0} / {their_generation:.0}."
        );
        let same_text = if our_side.text == their_side.text {
            "the same greedy text on both sides"
        } else {
            "the greedy texts differ"
        };
        let anchor = format!("llama-cpp-python {version}");
        Ok(vec![
            Row {
                benchmark: format!(
                    "GGUF prompt processing, SmolLM2-135M Q4_1, {THREADS} threads, {}-token chat",
                    our_side.prompt_tokens
                ),
                wolf: format!("{our_prompt:.0} tokens/s"),
                anchor: format!(
                    "{their_prompt:.0} tokens/s ({anchor}, {} tokens)",
                    their_side.prompt_tokens
                ),
                ratio: format!("{:.2}x", our_prompt / their_prompt),
                goal: ">= 1.0x".into(),
                note: format!(
                    "median of {REPEATS}, alternating; a 1-token chat completion from an empty cache (one sample included); flash attention off on both; wolf with `parallel = 4` (one request in flight)"
                ),
            },
            Row {
                benchmark: format!(
                    "GGUF generation, greedy, {} tokens after that prompt",
                    our_side.completion_tokens
                ),
                wolf: format!("{our_generation:.0} tokens/s"),
                anchor: format!(
                    "{their_generation:.0} tokens/s ({anchor}, {} tokens)",
                    their_side.completion_tokens
                ),
                ratio: format!("{:.2}x", our_generation / their_generation),
                goal: ">= 1.0x".into(),
                note: format!(
                    "median of {REPEATS}: ({MAX_TOKENS}-token completion - 1-token completion) wall time; {same_text}"
                ),
            },
        ])
    }
}
