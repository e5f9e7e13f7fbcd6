//! Vision-encoder-decoder captioners (the ViT-GPT2 / TrOCR export layout): images →
//! `encoder_model.onnx` → greedy or beam decoding with `decoder_model.onnx` or
//! `decoder_model_merged.onnx` → text.
//!
//! A folder whose `config.json` has `prompt_prefix` reads its prompt: the prompt's
//! tokens follow the decoder start token, decoding continues after them, and the
//! caption is what comes after the prompt (BLIP-style conditional captioning). Other
//! folders caption unconditionally and ignore prompts.

use std::path::{Path, PathBuf};

use ort::value::TensorRef;
use tokenizers::Tokenizer;

use super::OnnxError;
use super::folder::{self, GenerationIds, Preprocessor, PromptPrefix};
use super::generate::{self, Context, Decoder, DecoderForm, EncoderStates, Limits, Search};
use super::runtime::{Graph, SessionOptions};
use crate::media::RgbImage;

/// The longest caption when the folder says nothing (transformers' default).
const DEFAULT_MAX_LENGTH: usize = 20;

/// One caption and the tokens it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caption {
    pub text: String,
    /// Generated tokens, the end token included, the start token and prompt not.
    pub tokens: u32,
    /// Prompt tokens the decoder read (0 for a folder that ignores prompts).
    pub prompt_tokens: u32,
}

/// A loaded captioner folder.
pub struct VisionCaptioner {
    folder: PathBuf,
    encoder: Graph,
    decoder: Decoder,
    preprocessor: Preprocessor,
    tokenizer: Tokenizer,
    ids: GenerationIds,
    limits: Limits,
    prompt_prefix: Option<PromptPrefix>,
}

impl std::fmt::Debug for VisionCaptioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisionCaptioner")
            .field("folder", &self.folder)
            .field("merged", &self.decoder.is_merged())
            .field("prompt_prefix", &self.prompt_prefix)
            .finish_non_exhaustive()
    }
}

impl VisionCaptioner {
    /// Loads `folder` with the decoder `form` asks for. The error names the missing
    /// file, input or output.
    pub fn load(
        folder: &Path,
        options: SessionOptions,
        form: DecoderForm,
        search: Search,
    ) -> Result<Self, OnnxError> {
        let merged = folder.join("decoder_model_merged.onnx");
        let plain = folder.join("decoder_model.onnx");
        let decoder_file = match form {
            DecoderForm::Merged => merged,
            DecoderForm::Plain => plain,
            DecoderForm::Auto if merged.is_file() => merged,
            DecoderForm::Auto => plain,
        };
        if !decoder_file.is_file() {
            return Err(OnnxError::NoFile {
                folder: folder.to_owned(),
                file: decoder_file
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            });
        }
        let encoder = Graph::load(&folder.join("encoder_model.onnx"), options)?;
        encoder.require(&["pixel_values"], &["last_hidden_state"])?;
        if let Some(other) = encoder.input_names().find(|n| *n != "pixel_values") {
            return Err(encoder.unexpected_input(other));
        }
        let decoder = Decoder::new(Graph::load(&decoder_file, options)?, true)?;
        if form == DecoderForm::Merged && !decoder.is_merged() {
            return Err(OnnxError::NotMerged(decoder_file));
        }
        let ids = folder::generation_ids(folder)?;
        if ids.decoder_start.is_none() {
            return Err(OnnxError::Setting {
                path: folder.to_owned(),
                message: "neither `generation_config.json` nor `config.json` gives \
                          `decoder_start_token_id` or `bos_token_id`"
                    .into(),
            });
        }
        let limits = Limits {
            max_length: search
                .max_length
                .or(ids.max_length)
                .unwrap_or(DEFAULT_MAX_LENGTH),
            num_beams: search.num_beams.unwrap_or(ids.num_beams).max(1),
            ids: ids.clone(),
        };
        Ok(Self {
            folder: folder.to_owned(),
            encoder,
            decoder,
            preprocessor: Preprocessor::read(folder)?,
            tokenizer: folder::tokenizer(folder)?,
            ids,
            limits,
            prompt_prefix: folder::prompt_prefix(folder)?,
        })
    }

    pub fn is_merged(&self) -> bool {
        self.decoder.is_merged()
    }

    /// Whether the folder declares that its decoder reads the prompt.
    pub fn reads_prompt(&self) -> bool {
        self.prompt_prefix.is_some()
    }

    /// The prompt's tokens as the decoder reads them after its start token: none for a
    /// folder that ignores prompts or an empty prompt; otherwise the tokenizer's ids
    /// without special tokens, the last `max_tokens` kept, and fewer still when the
    /// sequence limit would leave no room to generate.
    pub fn prompt_ids(&self, prompt: &str) -> Result<Vec<i64>, OnnxError> {
        let Some(prefix) = self.prompt_prefix else {
            return Ok(Vec::new());
        };
        if prompt.is_empty() {
            return Ok(Vec::new());
        }
        let ids = folder::prompt_ids(&self.tokenizer, prompt)?;
        // Room for the start token and at least one generated token.
        let room = self.limits.max_length.saturating_sub(2);
        let keep = prefix.max_tokens.unwrap_or(usize::MAX).min(room);
        Ok(ids[ids.len().saturating_sub(keep)..]
            .iter()
            .map(|&i| i64::from(i))
            .collect())
    }

    /// The encoder's output for a batch of images.
    pub fn encode(&mut self, images: &[RgbImage]) -> Result<EncoderStates, OnnxError> {
        let mut pixels = Vec::new();
        let mut size = None;
        for image in images {
            let this = self.preprocessor.apply(image, &mut pixels);
            if size.is_some_and(|s| s != this) {
                return Err(OnnxError::MixedSizes(self.folder.clone()));
            }
            size = Some(this);
        }
        let (w, h) = size.ok_or(OnnxError::NoImages)?;
        let input = TensorRef::from_array_view((
            vec![images.len(), 3, h as usize, w as usize],
            pixels.as_slice(),
        ))
        .map_err(|source| OnnxError::Tensor {
            what: "the input `pixel_values`".into(),
            source,
        })?;
        let outputs = self.encoder.run(
            vec![("pixel_values".into(), input.into_dyn().into())],
            &["last_hidden_state"],
        )?;
        let (shape, data) =
            outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(|source| OnnxError::NotFloat {
                    what: "`last_hidden_state`".into(),
                    source,
                })?;
        match **shape {
            [b, positions, hidden] if b as usize == images.len() => Ok(EncoderStates {
                data: data.to_vec(),
                positions: positions as usize,
                hidden: hidden as usize,
            }),
            _ => Err(OnnxError::Shape {
                name: "last_hidden_state".into(),
                shape: shape.to_vec(),
                expected: format!("[{}, positions, hidden]", images.len()),
            }),
        }
    }

    /// Token ids for a batch of images, each starting with the decoder start token:
    /// greedy rows that ended early are padded to the longest (transformers'
    /// `generate` output); beam search gives each image's best sequence.
    pub fn generate_ids(
        &mut self,
        images: &[RgbImage],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<Vec<i64>>, OnnxError> {
        self.generate_ids_prompted(images, "", cancelled)
    }

    /// As [`Self::generate_ids`], every image with `prompt` (the same for the whole
    /// batch): each sequence starts with the start token and the prompt's ids
    /// ([`Self::prompt_ids`]), as transformers' `generate` given them as
    /// `decoder_input_ids` returns it.
    pub fn generate_ids_prompted(
        &mut self,
        images: &[RgbImage],
        prompt: &str,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<Vec<i64>>, OnnxError> {
        self.generate_ids_each(images, &vec![prompt; images.len()], cancelled)
    }

    /// As [`Self::generate_ids_prompted`], each image with its own prompt
    /// (`prompts[i]` for `images[i]`). The prompts' ids must be equally long: the
    /// decoder graphs of this layout have no attention mask, so rows cannot be padded.
    pub fn generate_ids_each(
        &mut self,
        images: &[RgbImage],
        prompts: &[&str],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<Vec<i64>>, OnnxError> {
        assert_eq!(images.len(), prompts.len(), "one prompt an image");
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let start = self
            .ids
            .decoder_start
            .expect("checked at load; this is a bug");
        let prefixes = prompts
            .iter()
            .map(|prompt| {
                let mut prefix = vec![start];
                prefix.extend(self.prompt_ids(prompt)?);
                Ok(prefix)
            })
            .collect::<Result<Vec<_>, OnnxError>>()?;
        assert!(
            prefixes.iter().all(|p| p.len() == prefixes[0].len()),
            "prompts of one batch must have as many tokens"
        );
        let states = self.encode(images)?;
        let context = Context {
            encoder: Some(states),
            ..Context::default()
        };
        if self.limits.num_beams > 1 {
            generate::beam_search(
                &mut self.decoder,
                prefixes,
                &context,
                &self.limits,
                cancelled,
            )
        } else {
            generate::greedy(
                &mut self.decoder,
                prefixes,
                &context,
                &self.limits,
                cancelled,
            )
        }
    }

    /// The text of a sequence of ids, special tokens left out.
    pub fn decode(&self, ids: &[i64]) -> Result<String, OnnxError> {
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        self.tokenizer.decode(&ids, true).map_err(OnnxError::Decode)
    }

    /// Captions a batch of images without a prompt.
    pub fn caption(
        &mut self,
        images: &[RgbImage],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<Caption>, OnnxError> {
        self.caption_prompted(images, "", cancelled)
    }

    /// Captions a batch of images, each with `prompt` when the folder reads prompts;
    /// the text is what the decoder wrote after the prompt.
    pub fn caption_prompted(
        &mut self,
        images: &[RgbImage],
        prompt: &str,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<Caption>, OnnxError> {
        self.caption_each(images, &vec![prompt; images.len()], cancelled)
    }

    /// As [`Self::caption_prompted`], each image with its own prompt, the prompts'
    /// ids equally long ([`Self::generate_ids_each`]).
    pub fn caption_each(
        &mut self,
        images: &[RgbImage],
        prompts: &[&str],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<Caption>, OnnxError> {
        let prompt_tokens = match prompts.first() {
            Some(prompt) => self.prompt_ids(prompt)?.len(),
            None => 0,
        };
        let sequences = self.generate_ids_each(images, prompts, cancelled)?;
        sequences
            .iter()
            .map(|ids| {
                let generated = &ids[1 + prompt_tokens..];
                let end = generated
                    .iter()
                    .position(|t| self.ids.eos.contains(t))
                    .map_or(generated.len(), |p| p + 1);
                Ok(Caption {
                    text: self.decode(&generated[..end])?.trim().to_owned(),
                    tokens: end as u32,
                    prompt_tokens: prompt_tokens as u32,
                })
            })
            .collect()
    }
}
