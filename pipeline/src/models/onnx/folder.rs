//! The JSON files of a model folder: generation settings (`config.json`,
//! `generation_config.json`), image preprocessing (`preprocessor_config.json`) and the
//! tokenizer (`tokenizer.json`).

use std::path::Path;

use image::imageops::{self, FilterType};
use serde_json::Value;
use tokenizers::Tokenizer;

use super::OnnxError;
use crate::media::RgbImage;

/// A JSON file as a value; a missing file is `Ok(Null)`, a malformed one an error.
pub fn read_json(path: &Path) -> Result<Value, OnnxError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|source| OnnxError::Json {
            path: path.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Null),
        Err(source) => Err(OnnxError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// A prompt's token ids, without special tokens (the caller adds what its model needs).
pub fn prompt_ids(tokenizer: &Tokenizer, prompt: &str) -> Result<Vec<u32>, OnnxError> {
    tokenizer
        .encode(prompt, false)
        .map(|encoding| encoding.get_ids().to_vec())
        .map_err(|source| OnnxError::Tokenize {
            what: "the prompt",
            source,
        })
}

/// The folder's `tokenizer.json`, as written (padding and truncation included).
pub fn tokenizer(folder: &Path) -> Result<Tokenizer, OnnxError> {
    let path = folder.join("tokenizer.json");
    if !path.is_file() {
        return Err(OnnxError::NoFile {
            folder: folder.to_owned(),
            file: "tokenizer.json".into(),
        });
    }
    Tokenizer::from_file(&path).map_err(|source| OnnxError::Tokenizer { path, source })
}

/// Token ids that steer generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationIds {
    /// The first decoder token (encoder-decoders); for decoder-only models unused.
    pub decoder_start: Option<i64>,
    /// Any of these ends a sequence.
    pub eos: Vec<i64>,
    /// Fills the rows of a batch that have ended.
    pub pad: i64,
    /// The longest sequence, the start token included (transformers' `max_length`).
    pub max_length: Option<usize>,
    /// Beams of beam search (1: greedy).
    pub num_beams: usize,
    /// Beam search's length penalty (the score is divided by `length ^ penalty`).
    pub length_penalty: f64,
}

/// Reads the generation settings: `generation_config.json` first, then `config.json`
/// and, for encoder-decoders, its `decoder` section.
pub fn generation_ids(folder: &Path) -> Result<GenerationIds, OnnxError> {
    let generation = read_json(&folder.join("generation_config.json"))?;
    let config = read_json(&folder.join("config.json"))?;
    let sources = [&generation, &config, &config["decoder"]];
    let find = |key: &str| sources.iter().map(|s| &s[key]).find(|v| !v.is_null());
    let eos = match find("eos_token_id") {
        Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_i64).collect(),
        Some(v) => v.as_i64().into_iter().collect(),
        None => Vec::new(),
    };
    let pad = find("pad_token_id")
        .and_then(Value::as_i64)
        .or_else(|| eos.first().copied())
        .unwrap_or(0);
    Ok(GenerationIds {
        decoder_start: find("decoder_start_token_id")
            .and_then(Value::as_i64)
            .or_else(|| find("bos_token_id").and_then(Value::as_i64)),
        eos,
        pad,
        max_length: find("max_length")
            .and_then(Value::as_u64)
            .map(|n| n as usize),
        num_beams: find("num_beams")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .max(1) as usize,
        length_penalty: find("length_penalty")
            .and_then(Value::as_f64)
            .unwrap_or(1.0),
    })
}

/// How a captioner folder reads a prompt: `config.json`'s `prompt_prefix`, written by
/// models trained to condition on a text prefix in the decoder (as BLIP's conditional
/// captioning does). The prompt, tokenized without special tokens, follows the decoder
/// start token; generation continues after it, and the caption leaves it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptPrefix {
    /// Only the prompt's last `max_tokens` tokens are kept (the model was trained with
    /// prefixes cut the same way); `None`: all of them, as room allows.
    pub max_tokens: Option<usize>,
}

/// The folder's `prompt_prefix` (`config.json`): absent, `null` or `false` for a
/// captioner that ignores prompts, `true`, or `{"max_tokens": N}`.
pub fn prompt_prefix(folder: &Path) -> Result<Option<PromptPrefix>, OnnxError> {
    let path = folder.join("config.json");
    parse_prompt_prefix(&read_json(&path)?["prompt_prefix"])
        .map_err(|message| OnnxError::Setting { path, message })
}

/// `prompt_prefix`'s value; the error says what is wrong with it (the caller adds the
/// file).
fn parse_prompt_prefix(value: &Value) -> Result<Option<PromptPrefix>, String> {
    match value {
        Value::Null | Value::Bool(false) => Ok(None),
        Value::Bool(true) => Ok(Some(PromptPrefix { max_tokens: None })),
        Value::Object(o) => match o.get("max_tokens") {
            None | Some(Value::Null) => Ok(Some(PromptPrefix { max_tokens: None })),
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => Ok(Some(PromptPrefix {
                    max_tokens: Some(n as usize),
                })),
                _ => Err(format!(
                    "`prompt_prefix.max_tokens` must be a positive integer, not {v}"
                )),
            },
        },
        other => Err(format!(
            "`prompt_prefix` must be true, false or {{\"max_tokens\": N}}, not {other}"
        )),
    }
}

/// Image preprocessing as `preprocessor_config.json` says (the ViT/CLIP image
/// processors' keys): resize, centre crop, rescale, normalise; RGB, NCHW.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessor {
    resize: Option<Resize>,
    crop: Option<(u32, u32)>,
    rescale: Option<f32>,
    mean: [f32; 3],
    std: [f32; 3],
    filter: FilterType,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Resize {
    /// Exactly this width and height.
    Exact(u32, u32),
    /// The shorter side to this length, keeping the aspect ratio.
    ShortestEdge(u32),
}

impl Preprocessor {
    pub fn read(folder: &Path) -> Result<Self, OnnxError> {
        let path = folder.join("preprocessor_config.json");
        if !path.is_file() {
            return Err(OnnxError::NoFile {
                folder: folder.to_owned(),
                file: "preprocessor_config.json".into(),
            });
        }
        let c = read_json(&path)?;
        let setting = |message: String| OnnxError::Setting {
            path: path.clone(),
            message,
        };
        let flag = |key: &str| c[key].as_bool().unwrap_or(true);
        let size = |v: &Value| -> Option<Resize> {
            match v {
                Value::Number(n) => n.as_u64().map(|s| Resize::Exact(s as u32, s as u32)),
                Value::Object(_) => {
                    if let (Some(w), Some(h)) = (v["width"].as_u64(), v["height"].as_u64()) {
                        Some(Resize::Exact(w as u32, h as u32))
                    } else {
                        v["shortest_edge"]
                            .as_u64()
                            .map(|s| Resize::ShortestEdge(s as u32))
                    }
                }
                _ => None,
            }
        };
        let resize = if flag("do_resize") {
            Some(
                size(&c["size"])
                    .ok_or_else(|| setting("`size` is missing or not understood".into()))?,
            )
        } else {
            None
        };
        let crop = if c["do_center_crop"].as_bool().unwrap_or(false) {
            match size(&c["crop_size"]) {
                Some(Resize::Exact(w, h)) => Some((w, h)),
                _ => return Err(setting("`crop_size` is not understood".into())),
            }
        } else {
            None
        };
        let triple = |key: &str, default: f32| -> Result<[f32; 3], OnnxError> {
            let not_three = || setting(format!("`{key}` is not three numbers"));
            match &c[key] {
                Value::Null => Ok([default; 3]),
                Value::Number(n) => Ok([n.as_f64().unwrap_or(default as f64) as f32; 3]),
                Value::Array(a) if a.len() == 3 => {
                    let v: Vec<f32> = a
                        .iter()
                        .filter_map(Value::as_f64)
                        .map(|x| x as f32)
                        .collect();
                    v.try_into().map_err(|_| not_three())
                }
                _ => Err(not_three()),
            }
        };
        let normalise = flag("do_normalize");
        Ok(Self {
            resize,
            crop,
            rescale: flag("do_rescale")
                .then(|| c["rescale_factor"].as_f64().unwrap_or(1.0 / 255.0) as f32),
            mean: if normalise {
                triple("image_mean", 0.5)?
            } else {
                [0.0; 3]
            },
            std: if normalise {
                triple("image_std", 0.5)?
            } else {
                [1.0; 3]
            },
            // PIL's codes: 0 nearest, 2 bilinear (the default), 3 bicubic.
            filter: match c["resample"].as_u64() {
                Some(0) => FilterType::Nearest,
                Some(3) => FilterType::CatmullRom,
                _ => FilterType::Triangle,
            },
        })
    }

    /// Writes one image as CHW floats into `out` (3 × height × width values) and
    /// returns its (width, height).
    pub fn apply(&self, image: &RgbImage, out: &mut Vec<f32>) -> (u32, u32) {
        let mut image = std::borrow::Cow::Borrowed(image);
        if let Some(resize) = self.resize {
            let (w, h) = match resize {
                Resize::Exact(w, h) => (w, h),
                Resize::ShortestEdge(s) => {
                    let (w, h) = image.dimensions();
                    let scale = s as f64 / w.min(h) as f64;
                    (
                        ((w as f64 * scale).round() as u32).max(1),
                        ((h as f64 * scale).round() as u32).max(1),
                    )
                }
            };
            // Resizing to the same size is the identity (as in PIL).
            if image.dimensions() != (w, h) {
                image =
                    std::borrow::Cow::Owned(imageops::resize(image.as_ref(), w, h, self.filter));
            }
        }
        if let Some((cw, ch)) = self.crop {
            let (w, h) = image.dimensions();
            if (w, h) != (cw, ch) {
                let x = w.saturating_sub(cw) / 2;
                let y = h.saturating_sub(ch) / 2;
                let cropped =
                    imageops::crop_imm(image.as_ref(), x, y, cw.min(w), ch.min(h)).to_image();
                image = std::borrow::Cow::Owned(crate::media::pad_to(&cropped, cw, ch));
            }
        }
        let (w, h) = image.dimensions();
        let plane = (w * h) as usize;
        let start = out.len();
        out.resize(start + 3 * plane, 0.0);
        let rescale = self.rescale.unwrap_or(1.0);
        for (i, pixel) in image.pixels().enumerate() {
            for c in 0..3 {
                let v = pixel[c] as f32 * rescale;
                out[start + c * plane + i] = (v - self.mean[c]) / self.std[c];
            }
        }
        (w, h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompt_prefix_is_read_in_each_form() {
        assert_eq!(parse_prompt_prefix(&Value::Null), Ok(None));
        assert_eq!(parse_prompt_prefix(&json!(false)), Ok(None));
        let all = Some(PromptPrefix { max_tokens: None });
        assert_eq!(parse_prompt_prefix(&json!(true)), Ok(all));
        assert_eq!(parse_prompt_prefix(&json!({})), Ok(all));
        assert_eq!(
            parse_prompt_prefix(&json!({"max_tokens": 112})),
            Ok(Some(PromptPrefix {
                max_tokens: Some(112)
            }))
        );
    }

    #[test]
    fn a_malformed_prompt_prefix_is_an_error_naming_the_key() {
        for bad in [
            json!("yes"),
            json!(3),
            json!({"max_tokens": 0}),
            json!({"max_tokens": "9"}),
        ] {
            let err = parse_prompt_prefix(&bad).unwrap_err();
            assert!(err.contains("prompt_prefix"), "{err}");
        }
    }
}
