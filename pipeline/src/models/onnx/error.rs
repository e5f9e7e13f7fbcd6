//! The backend's error: what failed, naming the file, graph input or key it concerns,
//! with the library error that caused it (ONNX Runtime, tokenizers, minijinja, io,
//! JSON) as its source. A model's thread turns it into a [`ModelError`] whose message
//! is the whole chain ([`OnnxError::to_model_error`]).

use std::path::PathBuf;
use std::sync::Arc;

use crate::models::{ErrorKind, ModelError};

/// A failure to load or run an ONNX model folder.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error(
        "ONNX Runtime's library was not found: no `ORT_DYLIB_PATH` and no `.wolf/` folder; \
         run `make setup`"
    )]
    NoLibrary,
    #[error("ONNX Runtime's library `{}` does not exist; run `make setup`", .0.display())]
    MissingLibrary(PathBuf),
    #[error("cannot load ONNX Runtime from `{}`", path.display())]
    LoadLibrary {
        path: PathBuf,
        #[source]
        source: ort::LoadDynamicError,
    },
    #[error("cannot start ONNX Runtime")]
    StartRuntime(#[source] ort::Error),
    /// ONNX Runtime failed to start earlier in this process (the first failure, kept).
    #[error(transparent)]
    Runtime(Arc<OnnxError>),
    /// One failure that several requests share (a pass over a batch of them).
    #[error(transparent)]
    Shared(Arc<OnnxError>),
    #[error("the loaded ONNX Runtime library has no CUDA provider")]
    NoCuda,
    #[error("cannot use the CUDA execution provider")]
    Cuda(#[source] ort::Error),

    #[error("model folder `{}` does not exist", .0.display())]
    NoFolder(PathBuf),
    #[error(
        "`{}` has `encoder_model.onnx` but no `decoder_model.onnx` or \
         `decoder_model_merged.onnx`",
        .0.display()
    )]
    NoDecoder(PathBuf),
    #[error(
        "`{}` holds no ONNX model this backend reads: expected `encoder_model.onnx` with \
         `decoder_model.onnx` or `decoder_model_merged.onnx` (a captioner), \
         `decoder_model_merged.onnx` or `model.onnx` (an LLM or an embedder)",
        .0.display()
    )]
    NoModel(PathBuf),
    /// A file the folder's layout needs.
    #[error("`{}` has no `{file}`", folder.display())]
    NoFile { folder: PathBuf, file: String },
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not valid JSON", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read `{}`", path.display())]
    Tokenizer {
        path: PathBuf,
        #[source]
        source: tokenizers::Error,
    },
    /// A setting of a folder's JSON files that is missing or not understood.
    #[error("`{}`: {message}", path.display())]
    Setting { path: PathBuf, message: String },
    #[error("`{}` has no `chat_template` in `tokenizer_config.json`", .0.display())]
    NoChatTemplate(PathBuf),
    /// The chat template fails on a one-message chat at load.
    #[error("`{}`: the chat template fails", folder.display())]
    TemplateCheck {
        folder: PathBuf,
        #[source]
        source: Box<OnnxError>,
    },

    #[error("`{}` does not exist", .0.display())]
    NoGraph(PathBuf),
    /// A graph `make setup` makes that is missing, or no longer the file it wrote.
    #[error("`{}` {problem}: run `make setup` to convert it again", file.display())]
    SetupGraph { file: PathBuf, problem: String },
    #[error("cannot load `{}`", file.display())]
    LoadGraph {
        file: PathBuf,
        #[source]
        source: ort::Error,
    },
    #[error("`{}` has no input `{name}` (inputs: {inputs})", file.display())]
    NoInput {
        file: PathBuf,
        name: String,
        inputs: String,
    },
    #[error("`{}` has no output `{name}` (outputs: {outputs})", file.display())]
    NoOutput {
        file: PathBuf,
        name: String,
        outputs: String,
    },
    #[error(
        "`{}` has an input this backend does not know: `{name}` (inputs: {inputs})",
        file.display()
    )]
    UnexpectedInput {
        file: PathBuf,
        name: String,
        inputs: String,
    },
    #[error(
        "`{}` has neither `last_hidden_state` nor `token_embeddings` as output",
        .0.display()
    )]
    NoEmbeddings(PathBuf),
    #[error("`{}` has the cache input `{name}` but no output `{present}`", file.display())]
    NoPresent {
        file: PathBuf,
        name: String,
        present: String,
    },
    #[error(
        "`{}` has no `past_key_values.*` inputs: it is not a merged decoder",
        .0.display()
    )]
    NotMerged(PathBuf),

    #[error("`{}` failed", file.display())]
    Run {
        file: PathBuf,
        #[source]
        source: ort::Error,
    },
    #[error("`{}` gave no output `{name}`", file.display())]
    NoRunOutput { file: PathBuf, name: String },
    /// An input tensor that could not be made; `what` names it.
    #[error("cannot make {what}")]
    Tensor {
        what: String,
        #[source]
        source: ort::Error,
    },
    /// An output read as floats that is not; `what` names it.
    #[error("{what} is not a float tensor")]
    NotFloat {
        what: String,
        #[source]
        source: ort::Error,
    },
    #[error("`{name}` has shape {shape:?}, expected {expected}")]
    Shape {
        name: String,
        shape: Vec<i64>,
        expected: String,
    },
    #[error("`{0}` has no tensor shape")]
    NoShape(String),
    #[error("`{0}` has a symbolic head dimension")]
    SymbolicDimension(String),

    #[error("no images")]
    NoImages,
    #[error(
        "`{}`: images of one batch differ in size after preprocessing; set `size` in \
         `preprocessor_config.json`",
        .0.display()
    )]
    MixedSizes(PathBuf),
    /// Text the tokenizer refused; `what` names it.
    #[error("cannot tokenise {what}")]
    Tokenize {
        what: &'static str,
        #[source]
        source: tokenizers::Error,
    },
    #[error("cannot set truncation")]
    Truncation(#[source] tokenizers::Error),
    #[error("cannot decode tokens")]
    Decode(#[source] tokenizers::Error),
    #[error("the chat template does not parse")]
    TemplateParse(#[source] minijinja::Error),
    #[error("cannot render the chat template")]
    TemplateRender(#[source] minijinja::Error),
    #[error("the prompt has no tokens")]
    EmptyPrompt,
    /// The prompt does not fit the model (kind `context_overflow`).
    #[error("context overflow: the prompt has {tokens} tokens; the model takes {context}")]
    ContextOverflow { tokens: usize, context: usize },
    /// Every caller of the batch went away.
    #[error("cancelled")]
    Cancelled,
    #[error("inference panicked")]
    Panicked,
}

impl OnnxError {
    /// This error as a failed call of model `model`: of `kind`, unless the error says
    /// better (a prompt too long is `context_overflow`), with the error and its causes
    /// as the message.
    pub fn to_model_error(&self, kind: ErrorKind, model: &str) -> ModelError {
        let kind = match self {
            Self::ContextOverflow { .. } => ErrorKind::ContextOverflow,
            _ => kind,
        };
        ModelError::from_error(kind, model, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_overflow_keeps_its_kind_and_other_errors_take_the_callers() {
        let overflow = OnnxError::ContextOverflow {
            tokens: 9,
            context: 8,
        };
        let error = overflow.to_model_error(ErrorKind::ServerError, "lm");
        assert_eq!(error.kind, ErrorKind::ContextOverflow);
        assert!(error.message.starts_with("context overflow"), "{error}");
        let error = OnnxError::Cancelled.to_model_error(ErrorKind::ServerError, "lm");
        assert_eq!(error.kind, ErrorKind::ServerError);
    }

    #[test]
    fn the_model_error_message_holds_the_cause() {
        let error = OnnxError::Read {
            path: "m/config.json".into(),
            source: std::io::Error::other("disk on fire"),
        };
        let runtime = OnnxError::Runtime(Arc::new(error));
        assert_eq!(
            runtime.to_model_error(ErrorKind::Load, "m").message,
            "cannot read `m/config.json`: disk on fire"
        );
    }
}
