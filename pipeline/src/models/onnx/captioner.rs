//! Vision-encoder-decoder captioners (the ViT-GPT2 / TrOCR export layout): images →
//! `encoder_model.onnx` → greedy or beam decoding with `decoder_model.onnx` or
//! `decoder_model_merged.onnx` → text.

use std::path::{Path, PathBuf};

use ort::value::TensorRef;
use tokenizers::Tokenizer;

use super::folder::{self, GenerationIds, Preprocessor};
use super::generate::{self, Context, Decoder, DecoderForm, EncoderStates, Limits, Search};
use super::runtime::{Graph, SessionOptions};
use crate::media::RgbImage;

/// The longest caption when the folder says nothing (transformers' default).
const DEFAULT_MAX_LENGTH: usize = 20;

/// One caption and the tokens it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caption {
    pub text: String,
    /// Generated tokens, the end token included, the start token not.
    pub tokens: u32,
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
}

impl std::fmt::Debug for VisionCaptioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisionCaptioner")
            .field("folder", &self.folder)
            .field("merged", &self.decoder.is_merged())
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
    ) -> Result<Self, String> {
        let merged = folder.join("decoder_model_merged.onnx");
        let plain = folder.join("decoder_model.onnx");
        let decoder_file = match form {
            DecoderForm::Merged => merged,
            DecoderForm::Plain => plain,
            DecoderForm::Auto if merged.is_file() => merged,
            DecoderForm::Auto => plain,
        };
        if !decoder_file.is_file() {
            return Err(format!(
                "`{}` has no `{}`",
                folder.display(),
                decoder_file
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
            ));
        }
        let encoder = Graph::load(&folder.join("encoder_model.onnx"), options)?;
        encoder.require(&["pixel_values"], &["last_hidden_state"])?;
        if let Some(other) = encoder.input_names().find(|n| *n != "pixel_values") {
            return Err(encoder.unexpected_input(other));
        }
        let decoder = Decoder::new(Graph::load(&decoder_file, options)?, true)?;
        if form == DecoderForm::Merged && !decoder.is_merged() {
            return Err(format!(
                "`{}` has no `past_key_values.*` inputs: it is not a merged decoder",
                decoder_file.display()
            ));
        }
        let ids = folder::generation_ids(folder)?;
        if ids.decoder_start.is_none() {
            return Err(format!(
                "`{}`: neither `generation_config.json` nor `config.json` gives \
                 `decoder_start_token_id` or `bos_token_id`",
                folder.display()
            ));
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
        })
    }

    pub fn is_merged(&self) -> bool {
        self.decoder.is_merged()
    }

    /// The encoder's output for a batch of images.
    pub fn encode(&mut self, images: &[RgbImage]) -> Result<EncoderStates, String> {
        let mut pixels = Vec::new();
        let mut size = None;
        for image in images {
            let this = self.preprocessor.apply(image, &mut pixels);
            if size.is_some_and(|s| s != this) {
                return Err(format!(
                    "`{}`: images of one batch differ in size after preprocessing; set \
                     `size` in `preprocessor_config.json`",
                    self.folder.display()
                ));
            }
            size = Some(this);
        }
        let (w, h) = size.ok_or("no images")?;
        let input = TensorRef::from_array_view((
            vec![images.len(), 3, h as usize, w as usize],
            pixels.as_slice(),
        ))
        .map_err(|e| format!("cannot make a tensor: {e}"))?;
        let outputs = self.encoder.run(
            vec![("pixel_values".into(), input.into_dyn().into())],
            &["last_hidden_state"],
        )?;
        let (shape, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| format!("`last_hidden_state` is not a float tensor: {e}"))?;
        match **shape {
            [b, positions, hidden] if b as usize == images.len() => Ok(EncoderStates {
                data: data.to_vec(),
                positions: positions as usize,
                hidden: hidden as usize,
            }),
            _ => Err(format!("`last_hidden_state` has shape {shape:?}")),
        }
    }

    /// Token ids for a batch of images, each starting with the decoder start token:
    /// greedy rows that ended early are padded to the longest (transformers'
    /// `generate` output); beam search gives each image's best sequence.
    pub fn generate_ids(
        &mut self,
        images: &[RgbImage],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<Vec<i64>>, String> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let states = self.encode(images)?;
        let start = self
            .ids
            .decoder_start
            .expect("checked at load; this is a bug");
        let prefixes = vec![vec![start]; images.len()];
        let context = Context {
            encoder: Some(states),
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
    pub fn decode(&self, ids: &[i64]) -> Result<String, String> {
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        self.tokenizer
            .decode(&ids, true)
            .map_err(|e| format!("cannot decode tokens: {e}"))
    }

    /// Captions a batch of images.
    pub fn caption(
        &mut self,
        images: &[RgbImage],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<Caption>, String> {
        let sequences = self.generate_ids(images, cancelled)?;
        sequences
            .iter()
            .map(|ids| {
                let generated = &ids[1..];
                let end = generated
                    .iter()
                    .position(|t| self.ids.eos.contains(t))
                    .map_or(generated.len(), |p| p + 1);
                Ok(Caption {
                    text: self.decode(&generated[..end])?.trim().to_owned(),
                    tokens: end as u32,
                })
            })
            .collect()
    }
}
