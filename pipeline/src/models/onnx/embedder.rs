//! Sentence embedders: a BERT-style `model.onnx` whose `last_hidden_state` is pooled
//! and normalised as the folder's sentence-transformers files say (`modules.json`,
//! `1_Pooling/config.json`, `sentence_bert_config.json`); without them, mean pooling
//! and L2 normalisation.
//!
//! The tokenizer's own padding and truncation (`tokenizer.json`, often a fixed 128) are
//! turned off: sequences are truncated at `max_seq_length` (sentence-transformers'
//! rule) and padded with id 0 to the longest of the batch.

use std::path::{Path, PathBuf};

use ort::value::Tensor;
use tokenizers::{Tokenizer, TruncationParams};

use super::OnnxError;
use super::folder;
use super::runtime::{Graph, SessionOptions};

/// `max_seq_length` when `sentence_bert_config.json` does not give one.
const DEFAULT_MAX_TOKENS: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    Mean,
    Cls,
    Max,
}

/// A loaded embedder folder.
pub struct SentenceEmbedder {
    folder: PathBuf,
    graph: Graph,
    tokenizer: Tokenizer,
    pooling: Pooling,
    normalise: bool,
    max_tokens: usize,
}

impl std::fmt::Debug for SentenceEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEmbedder")
            .field("folder", &self.folder)
            .field("pooling", &self.pooling)
            .finish_non_exhaustive()
    }
}

impl SentenceEmbedder {
    pub fn load(folder: &Path, options: SessionOptions) -> Result<Self, OnnxError> {
        let graph = Graph::load(&folder.join("model.onnx"), options)?;
        graph.require(&["input_ids", "attention_mask"], &[])?;
        if !graph.has_output("last_hidden_state") && !graph.has_output("token_embeddings") {
            return Err(OnnxError::NoEmbeddings(graph.file.clone()));
        }
        for name in graph.input_names() {
            if !matches!(name, "input_ids" | "attention_mask" | "token_type_ids") {
                return Err(graph.unexpected_input(name));
            }
        }
        let modules = folder::read_json(&folder.join("modules.json"))?;
        let kinds: Vec<&str> = modules
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["type"].as_str())
            .collect();
        let pooling_config = modules
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["type"].as_str().is_some_and(|t| t.ends_with(".Pooling")))
            .and_then(|m| m["path"].as_str())
            .map(|p| folder::read_json(&folder.join(p).join("config.json")))
            .transpose()?
            .unwrap_or_default();
        let pooling = if pooling_config["pooling_mode_cls_token"].as_bool() == Some(true) {
            Pooling::Cls
        } else if pooling_config["pooling_mode_max_tokens"].as_bool() == Some(true) {
            Pooling::Max
        } else {
            Pooling::Mean
        };
        // Without sentence-transformers files: normalise (what similarity wants).
        let normalise = kinds.is_empty() || kinds.iter().any(|k| k.ends_with(".Normalize"));
        let max_tokens =
            folder::read_json(&folder.join("sentence_bert_config.json"))?["max_seq_length"]
                .as_u64()
                .map_or(DEFAULT_MAX_TOKENS, |n| n as usize);
        let mut tokenizer = folder::tokenizer(folder)?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(OnnxError::Truncation)?;
        Ok(Self {
            folder: folder.to_owned(),
            graph,
            tokenizer,
            pooling,
            normalise,
            max_tokens,
        })
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Embeds a batch of texts in one run.
    pub fn embed(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>, OnnxError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|source| OnnxError::Tokenize {
                what: "the texts",
                source,
            })?;
        let rows = texts.len();
        let length = encodings.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0i64; rows * length];
        let mut mask = vec![0i64; rows * length];
        for (row, encoding) in encodings.iter().enumerate() {
            for (i, &id) in encoding.get_ids().iter().enumerate() {
                ids[row * length + i] = id as i64;
                mask[row * length + i] = 1;
            }
        }
        let input = |name: &str, data: Vec<i64>| {
            Tensor::from_array((vec![rows, length], data))
                .map(|t| (name.to_owned(), t.into_dyn().into()))
                .map_err(|source| OnnxError::Tensor {
                    what: format!("the input `{name}`"),
                    source,
                })
        };
        let mut inputs = vec![
            input("input_ids", ids)?,
            input("attention_mask", mask.clone())?,
        ];
        if self.graph.has_input("token_type_ids") {
            inputs.push(input("token_type_ids", vec![0; rows * length])?);
        }
        let output = if self.graph.has_output("token_embeddings") {
            "token_embeddings"
        } else {
            "last_hidden_state"
        };
        let outputs = self.graph.run(inputs, &[output])?;
        let (shape, states) =
            outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(|source| OnnxError::NotFloat {
                    what: format!("`{output}`"),
                    source,
                })?;
        let hidden = match **shape {
            [r, l, h] if r as usize == rows && l as usize == length => h as usize,
            _ => {
                return Err(OnnxError::Shape {
                    name: output.into(),
                    shape: shape.to_vec(),
                    expected: format!("[{rows}, {length}, hidden]"),
                });
            }
        };
        let mut vectors = Vec::with_capacity(rows);
        for row in 0..rows {
            let token = |i: usize| &states[(row * length + i) * hidden..][..hidden];
            let used: Vec<usize> = (0..length)
                .filter(|&i| mask[row * length + i] == 1)
                .collect();
            let mut v = vec![0f32; hidden];
            match self.pooling {
                Pooling::Cls => v.copy_from_slice(token(0)),
                Pooling::Max => {
                    v.fill(f32::NEG_INFINITY);
                    for &i in &used {
                        for (a, &b) in v.iter_mut().zip(token(i)) {
                            *a = a.max(b);
                        }
                    }
                }
                Pooling::Mean => {
                    for &i in &used {
                        for (a, &b) in v.iter_mut().zip(token(i)) {
                            *a += b;
                        }
                    }
                    let n = used.len().max(1) as f32;
                    v.iter_mut().for_each(|a| *a /= n);
                }
            }
            if self.normalise {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|a| *a /= norm);
            }
            vectors.push(v);
        }
        Ok(vectors)
    }
}
