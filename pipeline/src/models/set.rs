//! The models of a plan, built on first use and shared: a GGUF or ONNX model loads once
//! however many stages use it, and an HTTP model keeps one connection pool.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use super::{
    ChatModel, Embedder, ErrorKind, ImageCaptioner, ModelConfig, ModelError, Role, VideoCaptioner,
};

/// A built model: one value per entry, serving every role its backend has.
#[derive(Clone)]
enum Built {
    #[cfg(feature = "openai")]
    OpenAi(Arc<super::openai::OpenAiModel>),
    #[cfg(feature = "gguf")]
    Gguf(Arc<super::gguf::GgufModel>),
    #[cfg(feature = "onnx")]
    Onnx(Arc<super::onnx::OnnxModel>),
}

/// The models of a plan, by entry name.
pub struct ModelSet {
    entries: BTreeMap<String, ModelConfig>,
    built: Mutex<HashMap<String, Built>>,
}

impl ModelSet {
    pub fn new(entries: BTreeMap<String, ModelConfig>) -> Self {
        Self {
            entries,
            built: Mutex::new(HashMap::new()),
        }
    }

    pub fn entries(&self) -> &BTreeMap<String, ModelConfig> {
        &self.entries
    }

    pub fn chat(&self, name: &str) -> Result<Arc<dyn ChatModel>, ModelError> {
        match self.get(name, Role::Chat)? {
            #[cfg(feature = "openai")]
            Built::OpenAi(m) => Ok(m),
            #[cfg(feature = "gguf")]
            Built::Gguf(m) => Ok(m),
            #[cfg(feature = "onnx")]
            Built::Onnx(m) => Ok(m),
        }
    }

    pub fn image_captioner(&self, name: &str) -> Result<Arc<dyn ImageCaptioner>, ModelError> {
        match self.get(name, Role::ImageCaptioner)? {
            #[cfg(feature = "openai")]
            Built::OpenAi(m) => Ok(m),
            #[cfg(feature = "onnx")]
            Built::Onnx(m) => Ok(m),
            #[allow(unreachable_patterns)]
            _ => Err(self.cannot(name, Role::ImageCaptioner)),
        }
    }

    pub fn video_captioner(&self, name: &str) -> Result<Arc<dyn VideoCaptioner>, ModelError> {
        match self.get(name, Role::VideoCaptioner)? {
            #[cfg(feature = "openai")]
            Built::OpenAi(m) => Ok(m),
            #[cfg(feature = "onnx")]
            Built::Onnx(m) => Ok(m),
            #[allow(unreachable_patterns)]
            _ => Err(self.cannot(name, Role::VideoCaptioner)),
        }
    }

    pub fn embedder(&self, name: &str) -> Result<Arc<dyn Embedder>, ModelError> {
        match self.get(name, Role::Embedder)? {
            #[cfg(feature = "openai")]
            Built::OpenAi(m) => Ok(m),
            #[cfg(feature = "onnx")]
            Built::Onnx(m) => Ok(m),
            #[allow(unreachable_patterns)]
            _ => Err(self.cannot(name, Role::Embedder)),
        }
    }

    /// Builds entry `name` for `role` (an in-process model loads here, once for the
    /// set) and, with `ask_server`, asks an HTTP model's server whether it serves it
    /// (see [`super::preflight`]).
    #[cfg_attr(
        not(any(feature = "openai", feature = "gguf", feature = "onnx")),
        allow(unreachable_code, unused_variables)
    )]
    pub(super) async fn check(
        &self,
        name: &str,
        role: Role,
        ask_server: bool,
    ) -> Result<(), ModelError> {
        match self.get(name, role)? {
            #[cfg(feature = "openai")]
            Built::OpenAi(m) if ask_server => m.check_served().await,
            #[allow(unreachable_patterns)]
            _ => Ok(()),
        }
    }

    fn cannot(&self, name: &str, role: Role) -> ModelError {
        let backend = self.entries.get(name).map_or("?", ModelConfig::backend);
        ModelError::new(
            ErrorKind::Unsupported,
            name,
            format!("backend `{backend}` cannot serve as {}", role.as_str()),
        )
    }

    /// The built model `name`, building it on first use, after checking the role.
    // A build without backends has no `Built` values: everything after `build` is dead.
    #[cfg_attr(
        not(any(feature = "openai", feature = "gguf", feature = "onnx")),
        allow(unreachable_code, unused_variables)
    )]
    fn get(&self, name: &str, role: Role) -> Result<Built, ModelError> {
        let entry = self.entries.get(name).ok_or_else(|| {
            ModelError::new(
                ErrorKind::Unsupported,
                name,
                format!("there is no model `{name}`"),
            )
        })?;
        if !entry.roles().contains(&role) {
            return Err(self.cannot(name, role));
        }
        let mut built = self.built.lock().unwrap_or_else(PoisonError::into_inner);
        let model = match built.get(name) {
            Some(model) => model.clone(),
            None => {
                let model = build(name, entry)?;
                built.insert(name.to_owned(), model.clone());
                model
            }
        };
        // An ONNX folder serves the roles of its layout only.
        #[cfg(feature = "onnx")]
        if let Built::Onnx(m) = &model
            && !m.layout().roles().contains(&role)
        {
            return Err(ModelError::new(
                ErrorKind::Unsupported,
                name,
                format!(
                    "its folder holds a {}, which cannot serve as {}",
                    m.layout().as_str(),
                    role.as_str()
                ),
            ));
        }
        Ok(model)
    }
}

fn build(name: &str, entry: &ModelConfig) -> Result<Built, ModelError> {
    match entry {
        #[cfg(feature = "openai")]
        ModelConfig::Openai(config) => Ok(Built::OpenAi(Arc::new(
            super::openai::OpenAiModel::try_new(name, config)?,
        ))),
        #[cfg(not(feature = "openai"))]
        ModelConfig::Openai(_) => Err(missing_backend(name, "openai")),
        #[cfg(feature = "gguf")]
        ModelConfig::Gguf(config) => Ok(Built::Gguf(Arc::new(super::gguf::GgufModel::load(
            name, config,
        )?))),
        #[cfg(not(feature = "gguf"))]
        ModelConfig::Gguf(_) => Err(missing_backend(name, "gguf")),
        #[cfg(feature = "onnx")]
        ModelConfig::Onnx(config) => Ok(Built::Onnx(Arc::new(super::onnx::OnnxModel::load(
            name, config,
        )?))),
        #[cfg(not(feature = "onnx"))]
        ModelConfig::Onnx(_) => Err(missing_backend(name, "onnx")),
    }
}

/// The error for an entry whose backend was left out of this build.
#[cfg(not(all(feature = "openai", feature = "gguf", feature = "onnx")))]
fn missing_backend(name: &str, feature: &str) -> ModelError {
    ModelError::new(
        ErrorKind::Unsupported,
        name,
        format!("this build of wolf has no `{feature}` backend (cargo feature `{feature}`)"),
    )
}
