//! Autoregressive decoding shared by captioners and LLMs: a decoder graph in either of
//! Optimum's forms, and greedy and beam search over it.
//!
//! - Plain (`decoder_model.onnx`, or a `model.onnx` without cache inputs): every step
//!   feeds the whole prefix and reads the last position's logits.
//! - Merged (`decoder_model_merged.onnx`): the first step feeds the prefix with empty
//!   `past_key_values.*` and `use_cache_branch = false`; later steps feed the last token
//!   with the previous step's `present.*` and `use_cache_branch = true`.
//!
//! Greedy search follows transformers' `generate`: rows that have ended are fed and
//! filled with the pad id, and decoding stops when every row has ended or the length
//! reaches `max_length` (the start token counted). Beam search follows transformers'
//! beam scorer: `2 × beams` candidates a step, finished hypotheses scored by their
//! summed log-probabilities over `length ^ length_penalty`, and a batch item done when
//! no running beam can beat its worst kept hypothesis.

use ort::session::SessionInputValue;
use ort::value::{DynValue, Tensor, TensorRef};
use serde::{Deserialize, Serialize};

use super::OnnxError;
use super::folder::GenerationIds;
use super::runtime::Graph;

/// Which decoder file an encoder-decoder folder is run with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecoderForm {
    /// The merged decoder (KV cache) when the folder has one, else the plain one.
    #[default]
    Auto,
    /// `decoder_model_merged.onnx`.
    Merged,
    /// `decoder_model.onnx`: no cache, the whole prefix every step.
    Plain,
}

/// Search settings an entry may override.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Search {
    /// Beams (1: greedy); `None`: the folder's `generation_config.json`.
    pub num_beams: Option<usize>,
    /// The longest sequence, start token included; `None`: the folder's.
    pub max_length: Option<usize>,
}

/// What every step feeds besides the tokens and the cache.
#[derive(Default)]
pub struct Context {
    /// The encoder's output, one row per decoder row (encoder-decoders).
    pub encoder: Option<EncoderStates>,
    /// Pad tokens at the start of each row (a batch of prompts of different lengths,
    /// padded on the left as transformers does); empty: none. The attention mask hides
    /// them, and positions count from each row's first real token.
    pub left_pad: Vec<usize>,
}

impl Context {
    fn pad(&self, row: usize) -> usize {
        self.left_pad.get(row).copied().unwrap_or(0)
    }
}

/// An encoder's `last_hidden_state`, row-major `[rows, positions, hidden]`.
#[derive(Debug, Clone)]
pub struct EncoderStates {
    pub data: Vec<f32>,
    pub positions: usize,
    pub hidden: usize,
}

impl EncoderStates {
    pub fn rows(&self) -> usize {
        self.data.len() / (self.positions * self.hidden).max(1)
    }

    /// These states with each row repeated `times` times in place (for beams).
    pub fn repeat_rows(&self, times: usize) -> Self {
        let row = self.positions * self.hidden;
        let mut data = Vec::with_capacity(self.data.len() * times);
        for chunk in self.data.chunks(row) {
            for _ in 0..times {
                data.extend_from_slice(chunk);
            }
        }
        Self {
            data,
            positions: self.positions,
            hidden: self.hidden,
        }
    }
}

/// A decoder graph and how to feed it.
pub struct Decoder {
    pub graph: Graph,
    /// `(past input, present output)` pairs of a merged decoder; empty for plain.
    cache: Vec<(String, String)>,
    merged: bool,
}

/// The cache between steps: one tensor per `past_key_values.*` input.
pub struct Cache {
    values: Vec<DynValue>,
}

impl Decoder {
    /// Wraps a decoder graph, checking its inputs: `input_ids` and `logits` always;
    /// `use_cache_branch` with `past_key_values.*` for a merged decoder; any other input
    /// must be one this code fills.
    pub fn new(graph: Graph, encoder_decoder: bool) -> Result<Self, OnnxError> {
        graph.require(&["input_ids"], &["logits"])?;
        let mut cache = Vec::new();
        for name in graph.input_names() {
            if let Some(rest) = name.strip_prefix("past_key_values") {
                let present = format!("present{rest}");
                if !graph.has_output(&present) {
                    return Err(OnnxError::NoPresent {
                        file: graph.file.clone(),
                        name: name.to_owned(),
                        present,
                    });
                }
                cache.push((name.to_owned(), present));
                continue;
            }
            let known = match name {
                "input_ids" | "use_cache_branch" | "attention_mask" | "position_ids" => true,
                "encoder_hidden_states" | "encoder_attention_mask" => encoder_decoder,
                _ => false,
            };
            if !known {
                return Err(graph.unexpected_input(name));
            }
        }
        if encoder_decoder {
            graph.require(&["encoder_hidden_states"], &[])?;
        }
        let merged = !cache.is_empty();
        Ok(Self {
            graph,
            cache,
            merged,
        })
    }

    pub fn is_merged(&self) -> bool {
        self.merged
    }

    /// Whether rows padded on the left can share a batch: the graph takes an
    /// `attention_mask` to hide the pads and `position_ids` to count each row from its
    /// first real token.
    pub fn can_pad(&self) -> bool {
        self.graph.has_input("attention_mask") && self.graph.has_input("position_ids")
    }

    /// One step: `tokens` holds every row's whole sequence so far (all rows the same
    /// length). Returns the last position's logits, row-major `[rows, vocabulary]`,
    /// and the vocabulary size.
    pub fn step(
        &mut self,
        tokens: &[Vec<i64>],
        cache: &mut Option<Cache>,
        context: &Context,
    ) -> Result<(Vec<f32>, usize), OnnxError> {
        let rows = tokens.len();
        let length = tokens[0].len();
        let past = if self.merged {
            cache.as_ref().map_or(0, |_| length - 1)
        } else {
            0
        };
        let fed: Vec<i64> = tokens
            .iter()
            .flat_map(|t| t[past..].iter().copied())
            .collect();
        let step_length = length - past;
        let mut inputs: Vec<(String, SessionInputValue<'_>)> = Vec::new();
        let tensor_error = |name: &str| {
            let what = format!("the input `{name}`");
            move |source| OnnxError::Tensor { what, source }
        };
        inputs.push(i64_input("input_ids", vec![rows, step_length], fed)?);
        if let Some(encoder) = &context.encoder {
            inputs.push((
                "encoder_hidden_states".into(),
                TensorRef::from_array_view((
                    vec![rows, encoder.positions, encoder.hidden],
                    encoder.data.as_slice(),
                ))
                .map_err(tensor_error("encoder_hidden_states"))?
                .into_dyn()
                .into(),
            ));
            if self.graph.has_input("encoder_attention_mask") {
                inputs.push(i64_input(
                    "encoder_attention_mask",
                    vec![rows, encoder.positions],
                    vec![1; rows * encoder.positions],
                )?);
            }
        }
        if self.graph.has_input("attention_mask") {
            let mask: Vec<i64> = (0..rows)
                .flat_map(|row| (0..length).map(move |p| i64::from(p >= context.pad(row))))
                .collect();
            inputs.push(i64_input("attention_mask", vec![rows, length], mask)?);
        }
        if !self.can_pad() && context.left_pad.iter().any(|&pad| pad > 0) {
            return Err(graph_cannot_pad(&self.graph));
        }
        if self.graph.has_input("position_ids") {
            // transformers' positions of a padded row: its real tokens count from 0,
            // its pads are at 1 (they are masked).
            let positions: Vec<i64> = (0..rows)
                .flat_map(|row| {
                    let pad = context.pad(row);
                    (past..length).map(move |p| if p >= pad { (p - pad) as i64 } else { 1 })
                })
                .collect();
            inputs.push(i64_input(
                "position_ids",
                vec![rows, step_length],
                positions,
            )?);
        }
        if self.merged {
            let use_cache = cache.is_some();
            if self.graph.has_input("use_cache_branch") {
                inputs.push((
                    "use_cache_branch".into(),
                    Tensor::from_array((vec![1usize], vec![use_cache]))
                        .map_err(tensor_error("use_cache_branch"))?
                        .into_dyn()
                        .into(),
                ));
            }
            match cache.take() {
                Some(cache) => {
                    for ((name, _), value) in self.cache.iter().zip(cache.values) {
                        inputs.push((name.clone(), value.into()));
                    }
                }
                None => {
                    for (name, _) in &self.cache {
                        inputs.push((name.clone(), self.empty_past(name, rows)?.into()));
                    }
                }
            }
        }
        let mut wanted: Vec<&str> = vec!["logits"];
        wanted.extend(self.cache.iter().map(|(_, present)| present.as_str()));
        let mut outputs = self.graph.run(inputs, &wanted)?;
        let presents = outputs.split_off(1);
        if self.merged {
            *cache = Some(Cache { values: presents });
        }
        let (shape, logits) =
            outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(|source| OnnxError::NotFloat {
                    what: "`logits`".into(),
                    source,
                })?;
        let (out_rows, out_length, vocabulary) = match **shape {
            [r, l, v] => (r as usize, l as usize, v as usize),
            _ => {
                return Err(OnnxError::Shape {
                    name: "logits".into(),
                    shape: shape.to_vec(),
                    expected: "3 dimensions".into(),
                });
            }
        };
        if out_rows != rows || out_length != step_length {
            return Err(OnnxError::Shape {
                name: "logits".into(),
                shape: shape.to_vec(),
                expected: format!("[{rows}, {step_length}, vocabulary]"),
            });
        }
        let mut last = Vec::with_capacity(rows * vocabulary);
        for row in 0..rows {
            let start = (row * out_length + out_length - 1) * vocabulary;
            last.extend_from_slice(&logits[start..start + vocabulary]);
        }
        Ok((last, vocabulary))
    }

    /// A zero-length past for input `name`: its declared shape with the batch as
    /// `rows` and the sequence dimension as 0.
    fn empty_past(&self, name: &str, rows: usize) -> Result<DynValue, OnnxError> {
        let shape = self
            .graph
            .input_shape(name)
            .ok_or_else(|| OnnxError::NoShape(name.to_owned()))?;
        if shape.len() != 4 {
            return Err(OnnxError::Shape {
                name: name.to_owned(),
                shape,
                expected: "4 dimensions".into(),
            });
        }
        // [batch, heads, sequence, head size]
        let dims = vec![rows, dim(shape[1], name)?, 0, dim(shape[3], name)?];
        Tensor::from_array((dims, Vec::<f32>::new()))
            .map(|t| t.into_dyn())
            .map_err(|source| OnnxError::Tensor {
                what: format!("an empty `{name}`"),
                source,
            })
    }
}

fn graph_cannot_pad(graph: &Graph) -> OnnxError {
    OnnxError::Setting {
        path: graph.file.clone(),
        message: "the graph lacks `attention_mask` or `position_ids`, so prompts of different lengths cannot share a batch".into(),
    }
}

fn dim(d: i64, name: &str) -> Result<usize, OnnxError> {
    usize::try_from(d).map_err(|_| OnnxError::SymbolicDimension(name.to_owned()))
}

/// Keeps the cache rows `order` says, in that order (beam search's reordering).
fn reorder(cache: &mut Option<Cache>, order: &[usize]) -> Result<(), OnnxError> {
    if let Some(cache) = cache {
        cache.select(order, 0)?;
    }
    Ok(())
}

impl Cache {
    /// Keeps the rows `rows` says, in that order, each without its first `drop`
    /// positions.
    pub(super) fn select(&mut self, rows: &[usize], drop: usize) -> Result<(), OnnxError> {
        for value in &mut self.values {
            let (dims, data) = positions_of(value)?;
            let [_, heads, length, width] = dims;
            let kept = length.saturating_sub(drop);
            let mut out = Vec::with_capacity(rows.len() * heads * kept * width);
            for &row in rows {
                for head in 0..heads {
                    let block = (row * heads + head) * length * width;
                    out.extend_from_slice(&data[block + drop * width..block + length * width]);
                }
            }
            *value = cache_tensor([rows.len(), heads, kept, width], out)?;
        }
        Ok(())
    }

    /// The rows of `self` then those of `other`, each padded at the front with zero
    /// positions to the longer of the two caches' lengths.
    pub(super) fn join(&mut self, other: Cache) -> Result<(), OnnxError> {
        for (value, added) in self.values.iter_mut().zip(other.values) {
            let (a_dims, a) = positions_of(value)?;
            let (b_dims, b) = positions_of(&added)?;
            let [a_rows, heads, a_length, width] = a_dims;
            let [b_rows, b_heads, b_length, b_width] = b_dims;
            if (heads, width) != (b_heads, b_width) {
                return Err(OnnxError::Shape {
                    name: "a cache tensor".into(),
                    shape: b_dims.iter().map(|&d| d as i64).collect(),
                    expected: format!("[rows, {heads}, positions, {width}]"),
                });
            }
            let length = a_length.max(b_length);
            let mut out = Vec::with_capacity((a_rows + b_rows) * heads * length * width);
            for (data, rows, own) in [(a, a_rows, a_length), (b, b_rows, b_length)] {
                let size = own * width;
                for block in 0..rows * heads {
                    out.resize(out.len() + (length - own) * width, 0.0);
                    out.extend_from_slice(&data[block * size..(block + 1) * size]);
                }
            }
            *value = cache_tensor([a_rows + b_rows, heads, length, width], out)?;
        }
        Ok(())
    }
}

/// A cache tensor's dimensions `[rows, heads, positions, width]` and its values.
fn positions_of(value: &DynValue) -> Result<([usize; 4], Vec<f32>), OnnxError> {
    let (shape, data) =
        value
            .try_extract_tensor::<f32>()
            .map_err(|source| OnnxError::NotFloat {
                what: "a cache tensor".into(),
                source,
            })?;
    match **shape {
        [r, h, p, w] => Ok((
            [r as usize, h as usize, p as usize, w as usize],
            data.to_vec(),
        )),
        _ => Err(OnnxError::Shape {
            name: "a cache tensor".into(),
            shape: shape.to_vec(),
            expected: "[rows, heads, positions, width]".into(),
        }),
    }
}

fn cache_tensor(dims: [usize; 4], values: Vec<f32>) -> Result<DynValue, OnnxError> {
    Tensor::from_array((dims.to_vec(), values))
        .map(|t| t.into_dyn())
        .map_err(|source| OnnxError::Tensor {
            what: "a rebuilt cache tensor".into(),
            source,
        })
}

/// The index of the largest value; the first of equals (as `torch.argmax`).
fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Limits of one generation.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The longest sequence, prefix included.
    pub max_length: usize,
    pub ids: GenerationIds,
    /// Beams (1: greedy).
    pub num_beams: usize,
}

/// Greedy decoding of `prefixes` (all the same length). Returns each row's whole
/// sequence, prefix included, rows that ended early filled with the pad id to the
/// longest row's length (transformers' output).
pub fn greedy(
    decoder: &mut Decoder,
    prefixes: Vec<Vec<i64>>,
    context: &Context,
    limits: &Limits,
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<Vec<i64>>, OnnxError> {
    let mut tokens = prefixes;
    let rows = tokens.len();
    let mut ended = vec![false; rows];
    let mut cache = None;
    while tokens[0].len() < limits.max_length {
        if cancelled() {
            return Err(OnnxError::Cancelled);
        }
        let (logits, vocabulary) = decoder.step(&tokens, &mut cache, context)?;
        for row in 0..rows {
            let next = if ended[row] {
                limits.ids.pad
            } else {
                argmax(&logits[row * vocabulary..(row + 1) * vocabulary]) as i64
            };
            if limits.ids.eos.contains(&next) {
                ended[row] = true;
            }
            tokens[row].push(next);
        }
        if ended.iter().all(|&e| e) {
            break;
        }
    }
    Ok(tokens)
}

/// A finished hypothesis of beam search.
#[derive(Debug, Clone)]
struct Hypothesis {
    score: f64,
    tokens: Vec<i64>,
}

/// Beam search over `prefixes` (all the same length; one per batch item), `context`
/// holding one encoder row per batch item. Returns each item's best sequence, prefix
/// included, ending with its end token when it ended.
pub fn beam_search(
    decoder: &mut Decoder,
    prefixes: Vec<Vec<i64>>,
    context: &Context,
    limits: &Limits,
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<Vec<i64>>, OnnxError> {
    let beams = limits.num_beams;
    let items = prefixes.len();
    let context = Context {
        encoder: context.encoder.as_ref().map(|e| e.repeat_rows(beams)),
        ..Context::default()
    };
    // Every beam starts as its item's prefix; only the first counts at the start.
    let mut tokens: Vec<Vec<i64>> = prefixes
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), beams))
        .collect();
    let mut scores: Vec<f64> = (0..items * beams)
        .map(|i| if i % beams == 0 { 0.0 } else { -1e9 })
        .collect();
    let mut hypotheses: Vec<Vec<Hypothesis>> = vec![Vec::new(); items];
    let mut done = vec![false; items];
    let penalty = limits.ids.length_penalty;
    let normalise = |sum: f64, length: usize| sum / (length as f64).powf(penalty);
    let mut cache = None;
    while tokens[0].len() < limits.max_length && !done.iter().all(|&d| d) {
        if cancelled() {
            return Err(OnnxError::Cancelled);
        }
        let length = tokens[0].len();
        let (logits, vocabulary) = decoder.step(&tokens, &mut cache, &context)?;
        let mut next_tokens = Vec::with_capacity(items * beams);
        let mut next_scores = Vec::with_capacity(items * beams);
        let mut order = Vec::with_capacity(items * beams);
        for item in 0..items {
            if done[item] {
                // Keep the rows in place, padded; they are not used again.
                for b in 0..beams {
                    let row = item * beams + b;
                    order.push(row);
                    next_tokens.push(limits.ids.pad);
                    next_scores.push(scores[row]);
                }
                continue;
            }
            // Candidates: (score, source row, token), the best 2 × beams.
            let mut candidates: Vec<(f64, usize, i64)> = Vec::new();
            for b in 0..beams {
                let row = item * beams + b;
                let row_logits = &logits[row * vocabulary..(row + 1) * vocabulary];
                for (token, logprob) in log_softmax(row_logits).into_iter().enumerate() {
                    candidates.push((scores[row] + logprob, row, token as i64));
                }
            }
            let keep = (2 * beams).min(candidates.len());
            candidates.select_nth_unstable_by(keep - 1, |a, b| b.0.total_cmp(&a.0));
            candidates.truncate(keep);
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut chosen = 0;
            for (rank, &(score, row, token)) in candidates.iter().enumerate() {
                if limits.ids.eos.contains(&token) {
                    if rank >= beams {
                        continue;
                    }
                    let mut sequence = tokens[row].clone();
                    sequence.push(token);
                    let kept = &mut hypotheses[item];
                    kept.push(Hypothesis {
                        score: normalise(score, length + 1),
                        tokens: sequence,
                    });
                    kept.sort_by(|a, b| b.score.total_cmp(&a.score));
                    kept.truncate(beams);
                } else {
                    order.push(row);
                    next_tokens.push(token);
                    next_scores.push(score);
                    chosen += 1;
                }
                if chosen == beams {
                    break;
                }
            }
            // Fewer running candidates than beams (several end tokens): fill with
            // hopeless copies of the item's first row.
            for _ in chosen..beams {
                order.push(item * beams);
                next_tokens.push(limits.ids.pad);
                next_scores.push(-1e9);
            }
            let best_running = next_scores[next_scores.len() - beams];
            let kept = &hypotheses[item];
            done[item] = kept.len() == beams
                && kept
                    .last()
                    .is_some_and(|worst| normalise(best_running, length + 1) <= worst.score);
        }
        let mut reordered: Vec<Vec<i64>> = order.iter().map(|&r| tokens[r].clone()).collect();
        for (sequence, token) in reordered.iter_mut().zip(&next_tokens) {
            sequence.push(*token);
        }
        tokens = reordered;
        scores = next_scores;
        reorder(&mut cache, &order)?;
    }
    // Items still running at the length limit: their beams are hypotheses too.
    let mut best = Vec::with_capacity(items);
    for item in 0..items {
        let mut kept = hypotheses[item].clone();
        if !done[item] {
            for b in 0..beams {
                let row = item * beams + b;
                kept.push(Hypothesis {
                    score: normalise(scores[row], tokens[row].len()),
                    tokens: tokens[row].clone(),
                });
            }
        }
        kept.sort_by(|a, b| b.score.total_cmp(&a.score));
        best.push(kept.swap_remove(0).tokens);
    }
    Ok(best)
}

fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    let log_sum = sum.ln() + max;
    logits.iter().map(|&x| x as f64 - log_sum).collect()
}

/// An `i64` input named `name` of `shape` holding `values`.
fn i64_input(
    name: &str,
    shape: Vec<usize>,
    values: Vec<i64>,
) -> Result<(String, SessionInputValue<'static>), OnnxError> {
    let tensor = Tensor::from_array((shape, values)).map_err(|source| OnnxError::Tensor {
        what: format!("the input `{name}`"),
        source,
    })?;
    Ok((name.to_owned(), tensor.into_dyn().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_equal_values() {
        assert_eq!(argmax(&[0.0, 2.0, 2.0, 1.0]), 1);
        assert_eq!(argmax(&[-1.0]), 0);
    }

    #[test]
    fn log_softmax_sums_to_one() {
        let p: f64 = log_softmax(&[1.0, 2.0, 3.0]).iter().map(|l| l.exp()).sum();
        assert!((p - 1.0).abs() < 1e-12);
    }

    #[test]
    fn repeated_encoder_rows_stay_in_item_order() {
        let states = EncoderStates {
            data: vec![1.0, 2.0, 3.0, 4.0],
            positions: 1,
            hidden: 2,
        };
        assert_eq!(
            states.repeat_rows(2).data,
            vec![1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0]
        );
    }
}
