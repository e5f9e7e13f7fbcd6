//! Decoder-only causal LLMs with a KV cache (`decoder_model_merged.onnx`, or
//! `model.onnx` with or without `past_key_values.*`), prompts built with the chat
//! template of `tokenizer_config.json` (Jinja, rendered by minijinja).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::{Environment, Error as JinjaError, ErrorKind as JinjaErrorKind, context};
use tokenizers::Tokenizer;

use super::OnnxError;
use super::folder::{self, GenerationIds};
use super::generate::{Cache, Context, Decoder};
use super::runtime::{Graph, SessionOptions};
use crate::models::loops::{completes_loop, words_of};
use crate::models::{ChatRequest, Message, Sampling, Speaker, Usage};

/// What one request produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub text: String,
    pub usage: Usage,
}

/// A loaded LLM folder.
pub struct CausalLm {
    folder: PathBuf,
    decoder: Decoder,
    tokenizer: Tokenizer,
    template: String,
    bos: String,
    eos: String,
    ids: GenerationIds,
    /// The longest sequence the model takes (`max_position_embeddings`), if known.
    context: Option<usize>,
}

impl std::fmt::Debug for CausalLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CausalLm")
            .field("folder", &self.folder)
            .finish_non_exhaustive()
    }
}

impl CausalLm {
    pub fn load(folder: &Path, options: SessionOptions) -> Result<Self, OnnxError> {
        let merged = folder.join("decoder_model_merged.onnx");
        let file = if merged.is_file() {
            merged
        } else {
            folder.join("model.onnx")
        };
        let decoder = Decoder::new(Graph::load(&file, options)?, false)?;
        let tokenizer_config = folder::read_json(&folder.join("tokenizer_config.json"))?;
        let template = match &tokenizer_config["chat_template"] {
            serde_json::Value::String(t) => t.clone(),
            serde_json::Value::Array(named) => named
                .iter()
                .find(|t| t["name"] == "default")
                .and_then(|t| t["template"].as_str())
                .map(str::to_owned)
                .ok_or_else(|| OnnxError::Setting {
                    path: folder.to_owned(),
                    message: "no `default` chat template".into(),
                })?,
            _ => return Err(OnnxError::NoChatTemplate(folder.to_owned())),
        };
        let token_text = |key: &str| match &tokenizer_config[key] {
            serde_json::Value::String(s) => s.clone(),
            v => v["content"].as_str().unwrap_or_default().to_owned(),
        };
        let config = folder::read_json(&folder.join("config.json"))?;
        let lm = Self {
            folder: folder.to_owned(),
            decoder,
            tokenizer: folder::tokenizer(folder)?,
            template,
            bos: token_text("bos_token"),
            eos: token_text("eos_token"),
            ids: folder::generation_ids(folder)?,
            context: config["max_position_embeddings"]
                .as_u64()
                .map(|n| n as usize),
        };
        lm.prompt(&[Message::user("hello")])
            .map_err(|e| OnnxError::TemplateCheck {
                folder: folder.to_owned(),
                source: Box::new(e),
            })?;
        Ok(lm)
    }

    /// The chat rendered by the model's template, ending with the assistant's turn.
    pub fn prompt(&self, messages: &[Message]) -> Result<String, OnnxError> {
        let mut env = Environment::new();
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, JinjaError> {
                Err(JinjaError::new(JinjaErrorKind::InvalidOperation, message))
            },
        );
        env.add_template("chat", &self.template)
            .map_err(OnnxError::TemplateParse)?;
        let messages: Vec<_> = messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Speaker::System => "system",
                    Speaker::User => "user",
                    Speaker::Assistant => "assistant",
                };
                context! { role => role, content => m.content }
            })
            .collect();
        env.get_template("chat")
            .and_then(|t| {
                t.render(context! {
                    messages => messages,
                    add_generation_prompt => true,
                    bos_token => self.bos,
                    eos_token => self.eos,
                })
            })
            .map_err(OnnxError::TemplateRender)
    }

    /// Answers one request. `cancelled` is polled once per token.
    pub fn generate(
        &mut self,
        request: &ChatRequest,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Generation, OnnxError> {
        let mut results = self.generate_batch(&[request], &|_| cancelled())?;
        results.pop().unwrap_or(Err(OnnxError::Cancelled))
    }

    /// Whether chats can join a batch while it generates: the graph takes rows padded
    /// on the left ([`Decoder::can_pad`]).
    pub fn can_join(&self) -> bool {
        self.decoder.can_pad()
    }

    /// Answers `requests` together: their prompts, padded on the left to the longest,
    /// run as one batch, each row sampled with its own request's settings until it
    /// ends, when it leaves the batch. `cancelled(i)` is polled once per step for each
    /// running row. A request that cannot start (an empty prompt, one longer than the
    /// context) gets its error and the others run; an error of the model fails the
    /// batch.
    pub fn generate_batch(
        &mut self,
        requests: &[&ChatRequest],
        cancelled: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<Result<Generation, OnnxError>>, OnnxError> {
        let mut results: Vec<Option<Result<Generation, OnnxError>>> =
            requests.iter().map(|_| None).collect();
        let mut running = Running::default();
        for (index, request) in requests.iter().enumerate() {
            if let Err(error) = self.admit(&mut running, index, request) {
                results[index] = Some(Err(error));
            }
        }
        let mut lengths = running.waiting.iter().map(|r| r.prompt.len());
        let first = lengths.next();
        if !self.can_join() && lengths.any(|l| Some(l) != first) {
            // Prompts of different lengths need padding this graph cannot take: one at
            // a time.
            return requests
                .iter()
                .enumerate()
                .map(|(i, request)| {
                    let mut one = self.generate_batch(&[request], &|_| cancelled(i))?;
                    Ok(one.pop().unwrap_or(Err(OnnxError::Cancelled)))
                })
                .collect();
        }
        while !running.is_empty() {
            for (index, outcome) in self.step(&mut running, cancelled)? {
                results[index] = Some(outcome);
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(OnnxError::Cancelled)))
            .collect())
    }

    /// Adds `request` to `running` under `key`; its prompt is read at the next step. A
    /// request that cannot start (an empty prompt, one longer than the context) is
    /// refused with its error. Rows may join a running batch only where
    /// [`Self::can_join`]; otherwise admit prompts of one length while it is empty.
    pub fn admit(
        &self,
        running: &mut Running,
        key: usize,
        request: &ChatRequest,
    ) -> Result<(), OnnxError> {
        running.waiting.push(self.start(key, request)?);
        Ok(())
    }

    /// One step of `running`: the prompts of the rows admitted since the last step,
    /// read together and joined to the batch, or else the next token of every row.
    /// Returns the rows that ended (done, cancelled, or failed alone) with their keys,
    /// and takes them out of the batch. `cancelled(key)` is polled once per step for
    /// each row. An error of the model is the whole batch's: the caller fails every
    /// row.
    pub fn step(
        &mut self,
        running: &mut Running,
        cancelled: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<Ended>, OnnxError> {
        for row in running.rows.iter_mut().chain(&mut running.waiting) {
            if row.outcome.is_none() && cancelled(row.key) {
                row.outcome = Some(Err(OnnxError::Cancelled));
            }
            row.settle();
        }
        let mut ended = running.leave()?;
        if !running.waiting.is_empty() {
            ended.extend(self.join(running)?);
        } else if !running.rows.is_empty() {
            let (logits, vocabulary) =
                self.decoder
                    .step(&running.tokens, &mut running.cache, &running.context)?;
            self.sample(&mut running.rows, &mut running.tokens, &logits, vocabulary);
        }
        ended.extend(running.leave()?);
        Ok(ended)
    }

    /// Reads the waiting rows' prompts as one batch padded on the left, samples their
    /// first tokens, and joins them to the running rows, the shorter side padded. When
    /// that pass fails, the newcomers end with its error (returned) and the running
    /// rows go on.
    fn join(&mut self, running: &mut Running) -> Result<Vec<Ended>, OnnxError> {
        let mut rows = std::mem::take(&mut running.waiting);
        let longest = rows.iter().map(|r| r.prompt.len()).max().unwrap_or(0);
        let mut tokens = Vec::with_capacity(rows.len());
        let mut context = Context::default();
        for row in &rows {
            let pad = longest - row.prompt.len();
            let mut padded = vec![self.ids.pad; pad];
            padded.extend(&row.prompt);
            tokens.push(padded);
            context.left_pad.push(pad);
        }
        let mut cache = None;
        let (logits, vocabulary) = match self.decoder.step(&tokens, &mut cache, &context) {
            Ok(out) => out,
            Err(error) => {
                let error = Arc::new(error);
                return Ok(rows
                    .into_iter()
                    .map(|mut row| {
                        row.outcome = Some(Err(OnnxError::Shared(Arc::clone(&error))));
                        row.finish()
                    })
                    .collect());
            }
        };
        self.sample(&mut rows, &mut tokens, &logits, vocabulary);
        if running.rows.is_empty() {
            running.rows = rows;
            running.tokens = tokens;
            running.context = context;
            running.cache = cache;
            return Ok(Vec::new());
        }
        // Both sides' sequences are as long as their caches and one token more.
        let (old, new) = (running.tokens[0].len(), tokens[0].len());
        let length = old.max(new);
        if let (Some(kept), Some(added)) = (running.cache.as_mut(), cache) {
            kept.join(added)?;
        }
        for (sequences, pads, from) in [
            (&mut running.tokens, &mut running.context.left_pad, old),
            (&mut tokens, &mut context.left_pad, new),
        ] {
            for (sequence, pad) in sequences.iter_mut().zip(pads.iter_mut()) {
                sequence.splice(0..0, std::iter::repeat_n(self.ids.pad, length - from));
                *pad += length - from;
            }
        }
        running.rows.extend(rows);
        running.tokens.extend(tokens);
        running.context.left_pad.extend(context.left_pad);
        Ok(Vec::new())
    }

    /// Takes each running row's next token from its row of `logits` and appends it to
    /// the row's sequence (the pad id for a row that has ended).
    fn sample(&self, rows: &mut [Row], tokens: &mut [Vec<i64>], logits: &[f32], vocabulary: usize) {
        for (n, row) in rows.iter_mut().enumerate() {
            let next = match row.outcome {
                Some(_) => self.ids.pad,
                None => {
                    let logits = logits[n * vocabulary..(n + 1) * vocabulary].to_vec();
                    // A token the tokenizer cannot decode ends its row alone.
                    self.advance(row, logits).unwrap_or_else(|error| {
                        row.outcome = Some(Err(error));
                        self.ids.pad
                    })
                }
            };
            row.settle();
            tokens[n].push(next);
        }
    }

    /// A request's row: its prompt's ids and its sampler.
    fn start(&self, key: usize, request: &ChatRequest) -> Result<Row, OnnxError> {
        let prompt = self.prompt(&request.messages)?;
        let prompt: Vec<i64> = folder::prompt_ids(&self.tokenizer, &prompt)?
            .into_iter()
            .map(i64::from)
            .collect();
        if prompt.is_empty() {
            return Err(OnnxError::EmptyPrompt);
        }
        let sampling = &request.sampling;
        let mut max_new = sampling.max_tokens as usize;
        if let Some(context) = self.context {
            if prompt.len() >= context {
                return Err(OnnxError::ContextOverflow {
                    tokens: prompt.len(),
                    context,
                });
            }
            max_new = max_new.min(context - prompt.len());
        }
        Ok(Row {
            key,
            sampling: sampling.clone(),
            sampler: Sampler::new(sampling),
            prompt,
            max_new,
            generated: Vec::new(),
            text: String::new(),
            outcome: None,
        })
    }

    /// Chooses a running row's next token from its logits and takes it: the token fed
    /// next (the pad id once the row has ended).
    fn advance(&self, row: &mut Row, mut logits: Vec<f32>) -> Result<i64, OnnxError> {
        let sampling = &row.sampling;
        let mut passed_over = 0;
        // The last word so far may be a word's start; its n-grams are checked again.
        let said = words_of(&row.text).len().saturating_sub(1);
        let before = row.text.clone();
        let next = loop {
            let next = row.sampler.choose(&logits, &row.generated);
            if self.ids.eos.contains(&next) {
                break next;
            }
            row.generated.push(next as u32);
            row.text = self
                .tokenizer
                .decode(&row.generated, true)
                .map_err(OnnxError::Decode)?;
            // The text's last word counts as said: a token that may complete a loop
            // is passed over, however the word goes on.
            if !sampling.no_loops
                || passed_over >= MAX_PASSED_OVER
                || !completes_loop(&words_of(&row.text), said)
            {
                break next;
            }
            row.generated.pop();
            row.text.clone_from(&before);
            logits[next as usize] = f32::NEG_INFINITY;
            passed_over += 1;
        };
        if self.ids.eos.contains(&next) {
            row.outcome = Some(Ok(()));
            return Ok(self.ids.pad);
        }
        if let Some(cut) = sampling
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| row.text.find(s.as_str()))
            .min()
        {
            row.text.truncate(cut);
            row.outcome = Some(Ok(()));
        }
        Ok(next)
    }
}

/// A row that has ended: its key and what it gave.
pub type Ended = (usize, Result<Generation, OnnxError>);

/// One request of a batch being generated.
struct Row {
    /// The caller's name for it.
    key: usize,
    sampling: Sampling,
    sampler: Sampler,
    prompt: Vec<i64>,
    max_new: usize,
    generated: Vec<u32>,
    text: String,
    /// `Some` once the row has ended: done, or its error.
    outcome: Option<Result<(), OnnxError>>,
}

impl Row {
    /// Ends a running row that has all the tokens it may have.
    fn settle(&mut self) {
        if self.outcome.is_none() && self.generated.len() >= self.max_new {
            self.outcome = Some(Ok(()));
        }
    }

    fn finish(self) -> Ended {
        let usage = Usage {
            prompt_tokens: self.prompt.len() as u32,
            completion_tokens: self.generated.len() as u32,
        };
        let text = self.text;
        let outcome = self
            .outcome
            .unwrap_or(Ok(()))
            .map(|()| Generation { text, usage });
        (self.key, outcome)
    }
}

/// Chats decoded together, each joining the batch at the step after it is admitted
/// and leaving it when it ends (continuous batching). Every row's sequence is padded
/// on the left to one length: the attention mask hides the pads and positions count
/// from each row's first real token. Pads every row has are dropped when rows leave.
#[derive(Default)]
pub struct Running {
    /// The batch's rows, in the cache's order.
    rows: Vec<Row>,
    /// Each row's sequence, pads first, all as long.
    tokens: Vec<Vec<i64>>,
    context: Context,
    cache: Option<Cache>,
    /// Admitted rows whose prompts the next step reads.
    waiting: Vec<Row>,
}

impl Running {
    /// Rows admitted and not yet ended.
    pub fn len(&self) -> usize {
        self.rows.len() + self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the rows that have ended out of the batch (and out of the waiting ones)
    /// and drops the pads every remaining row has.
    fn leave(&mut self) -> Result<Vec<Ended>, OnnxError> {
        let mut ended = Vec::new();
        let waiting = std::mem::take(&mut self.waiting);
        for row in waiting {
            if row.outcome.is_some() {
                ended.push(row.finish());
            } else {
                self.waiting.push(row);
            }
        }
        if self.rows.iter().all(|r| r.outcome.is_none()) {
            return Ok(ended);
        }
        let kept: Vec<usize> = (0..self.rows.len())
            .filter(|&n| self.rows[n].outcome.is_none())
            .collect();
        let drop = kept
            .iter()
            .map(|&n| self.context.left_pad[n])
            .min()
            .unwrap_or(0);
        if kept.is_empty() {
            self.cache = None;
        } else if let Some(cache) = &mut self.cache {
            cache.select(&kept, drop)?;
        }
        let rows = std::mem::take(&mut self.rows);
        let mut tokens = std::mem::take(&mut self.tokens);
        let pads = std::mem::take(&mut self.context.left_pad);
        for (n, row) in rows.into_iter().enumerate() {
            if row.outcome.is_some() {
                ended.push(row.finish());
                continue;
            }
            self.tokens.push(tokens[n].split_off(drop));
            self.context.left_pad.push(pads[n] - drop);
            self.rows.push(row);
        }
        Ok(ended)
    }
}

/// The most tokens passed over at one step for [`Sampling::no_loops`]; then the next
/// choice is taken whatever it completes.
const MAX_PASSED_OVER: usize = 32;

/// Picks the next token: the most likely one at temperature 0, else a draw from the
/// softmax at the temperature, restricted to the nucleus `top_p`.
struct Sampler {
    temperature: f32,
    top_p: f32,
    state: u64,
    repeat_penalty: f32,
    frequency_penalty: f32,
    presence_penalty: f32,
}

impl Sampler {
    fn new(sampling: &Sampling) -> Self {
        let seed = sampling.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
        Self {
            temperature: sampling.temperature,
            top_p: sampling.top_p.unwrap_or(1.0),
            state: seed | 1,
            repeat_penalty: sampling.repeat_penalty.unwrap_or(1.0),
            frequency_penalty: sampling.frequency_penalty.unwrap_or(0.0),
            presence_penalty: sampling.presence_penalty.unwrap_or(0.0),
        }
    }

    /// The logits with the penalties of the tokens in `history` applied as llama.cpp
    /// applies them: the repetition penalty divides a positive logit and multiplies a
    /// negative one; the frequency penalty is subtracted once per use, the presence
    /// penalty once.
    fn penalised(&self, logits: &[f32], history: &[u32]) -> Vec<f32> {
        let mut out = logits.to_vec();
        let mut counts: std::collections::BTreeMap<u32, u32> = Default::default();
        for &t in history {
            *counts.entry(t).or_default() += 1;
        }
        for (token, count) in counts {
            let Some(l) = out.get_mut(token as usize) else {
                continue;
            };
            *l = if *l > 0.0 {
                *l / self.repeat_penalty
            } else {
                *l * self.repeat_penalty
            };
            *l -= count as f32 * self.frequency_penalty + self.presence_penalty;
        }
        out
    }

    /// xorshift64*: a uniform draw in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn choose(&mut self, logits: &[f32], history: &[u32]) -> i64 {
        let penalised;
        let logits = if self.repeat_penalty != 1.0
            || self.frequency_penalty != 0.0
            || self.presence_penalty != 0.0
        {
            penalised = self.penalised(logits, history);
            &penalised[..]
        } else {
            logits
        };
        let best = logits
            .iter()
            .enumerate()
            .fold(0, |b, (i, &v)| if v > logits[b] { i } else { b });
        if self.temperature <= 0.0 {
            return best as i64;
        }
        let t = self.temperature as f64;
        let max = logits[best] as f64;
        let mut weights: Vec<(usize, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i, ((l as f64 - max) / t).exp()))
            .collect();
        weights.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f64 = weights.iter().map(|w| w.1).sum();
        let mut kept = 0.0;
        let mut nucleus = weights.len();
        for (n, w) in weights.iter().enumerate() {
            kept += w.1 / total;
            if kept >= self.top_p as f64 {
                nucleus = n + 1;
                break;
            }
        }
        let weights = &weights[..nucleus];
        let sum: f64 = weights.iter().map(|w| w.1).sum();
        let mut draw = self.uniform() * sum;
        for &(i, w) in weights {
            if draw < w {
                return i as i64;
            }
            draw -= w;
        }
        weights[weights.len() - 1].0 as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_sampler_takes_the_largest_logit() {
        let mut s = Sampler::new(&Sampling::default());
        assert_eq!(s.choose(&[0.1, 3.0, 2.0], &[]), 1);
    }

    #[test]
    fn penalties_lower_the_tokens_already_generated() {
        let sampling = Sampling {
            repeat_penalty: Some(2.0),
            ..Sampling::default()
        };
        let mut s = Sampler::new(&sampling);
        // 3.0 / 2 = 1.5 < 2.0: the second token wins once the first was said.
        assert_eq!(s.choose(&[0.1, 3.0, 2.0], &[]), 1);
        assert_eq!(s.choose(&[0.1, 3.0, 2.0], &[1]), 2);
        let frequency = Sampling {
            frequency_penalty: Some(0.6),
            ..Sampling::default()
        };
        let mut s = Sampler::new(&frequency);
        assert_eq!(s.choose(&[0.1, 3.0, 2.0], &[1]), 1);
        assert_eq!(s.choose(&[0.1, 3.0, 2.0], &[1, 1]), 2);
    }

    #[test]
    fn a_tiny_nucleus_keeps_only_the_best_token() {
        let sampling = Sampling {
            temperature: 1.0,
            top_p: Some(0.01),
            seed: Some(7),
            ..Sampling::default()
        };
        let mut s = Sampler::new(&sampling);
        for _ in 0..20 {
            assert_eq!(s.choose(&[0.0, 5.0, 1.0], &[]), 1);
        }
    }
}
