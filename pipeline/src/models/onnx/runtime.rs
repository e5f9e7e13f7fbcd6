//! ONNX Runtime itself: the library loaded once per process, sessions built with the
//! entry's device and threads, and [`Graph`], a session that knows its input and
//! output names.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider as _};
use ort::session::Session;
use ort::session::SessionInputValue;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::{DynValue, ValueType};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::OnnxError;
use crate::home::Home;

/// Where a model runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    #[default]
    Cpu,
    /// The CUDA execution provider, when the loaded library has it; else the CPU,
    /// with a warning.
    Cuda,
}

/// How sessions are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    pub device: Device,
    /// Intra-op threads; 0 is one per core.
    pub threads: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            threads: 0,
        }
    }
}

/// The library file: `ORT_DYLIB_PATH`, else `.wolf/ort/libonnxruntime.so`.
pub fn library_path() -> Option<PathBuf> {
    std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .or_else(|| Home::locate().map(|home| home.ort_library()))
}

/// The process's ONNX Runtime environment, loading the library on first use.
pub fn environment() -> Result<&'static Environment, OnnxError> {
    static ENVIRONMENT: OnceLock<Result<Environment, Arc<OnnxError>>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let path = library_path().ok_or(OnnxError::NoLibrary)?;
            if !path.is_file() {
                return Err(OnnxError::MissingLibrary(path).into());
            }
            ort::init_from(&path)
                .map_err(|source| OnnxError::LoadLibrary {
                    path: path.clone(),
                    source,
                })?
                .with_name("wolf")
                .build()
                .map_err(|e| OnnxError::StartRuntime(e).into())
        })
        .as_ref()
        .map_err(|e| OnnxError::Runtime(Arc::clone(e)))
}

/// A session with its input and output names.
pub struct Graph {
    pub session: Session,
    pub file: PathBuf,
    inputs: Vec<(String, ValueType)>,
    outputs: Vec<String>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph").field("file", &self.file).finish()
    }
}

impl Graph {
    /// Loads `file` with `options`. CUDA falls back to the CPU with a warning.
    pub fn load(file: &Path, options: SessionOptions) -> Result<Self, OnnxError> {
        let env = environment()?;
        if !file.is_file() {
            return Err(OnnxError::NoGraph(file.to_owned()));
        }
        let threads = match options.threads {
            0 => crate::process::cores(),
            n => n,
        };
        let fail = |e: ort::Error| OnnxError::LoadGraph {
            file: file.to_owned(),
            source: e,
        };
        // A builder's errors carry the builder; as a cause they need not.
        let fail_builder = |e: ort::Error<SessionBuilder>| fail(e.into());
        let builder = || -> Result<_, OnnxError> {
            Session::builder(env)
                .map_err(fail)?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(fail_builder)?
                .with_intra_threads(threads)
                .map_err(fail_builder)?
                .with_inter_threads(1)
                .map_err(fail_builder)
        };
        let mut builder = builder()?;
        if options.device == Device::Cuda {
            let (with, registered) = with_cuda(builder);
            builder = with;
            match registered {
                Ok(()) => info!(file = %file.display(), "Registered the CUDA execution provider."),
                Err(e) => warn!(
                    file = %file.display(),
                    reason = %crate::models::error::chain(&e),
                    "CUDA is not available; running on the CPU."
                ),
            }
        }
        let session = builder.commit_from_file(file).map_err(fail)?;
        let inputs = session
            .inputs()
            .iter()
            .map(|i| (i.name().to_owned(), i.dtype().clone()))
            .collect();
        let outputs = session
            .outputs()
            .iter()
            .map(|o| o.name().to_owned())
            .collect();
        Ok(Self {
            session,
            file: file.to_owned(),
            inputs,
            outputs,
        })
    }

    pub fn input_names(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().map(|(n, _)| n.as_str())
    }

    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|(n, _)| n == name)
    }

    pub fn has_output(&self, name: &str) -> bool {
        self.outputs.iter().any(|n| n == name)
    }

    /// The declared shape of an input, symbolic dimensions as -1.
    pub fn input_shape(&self, name: &str) -> Option<Vec<i64>> {
        self.inputs
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, t)| t.tensor_shape())
            .map(|s| s.to_vec())
    }

    /// The input names, for messages.
    fn input_list(&self) -> String {
        self.input_names().collect::<Vec<_>>().join(", ")
    }

    /// An error naming an input this code does not know how to fill.
    pub fn unexpected_input(&self, name: &str) -> OnnxError {
        OnnxError::UnexpectedInput {
            file: self.file.clone(),
            name: name.to_owned(),
            inputs: self.input_list(),
        }
    }

    /// An error naming an input or output the layout needs and the graph lacks.
    pub fn require(&self, inputs: &[&str], outputs: &[&str]) -> Result<(), OnnxError> {
        if let Some(input) = inputs.iter().find(|i| !self.has_input(i)) {
            return Err(OnnxError::NoInput {
                file: self.file.clone(),
                name: (*input).to_owned(),
                inputs: self.input_list(),
            });
        }
        if let Some(output) = outputs.iter().find(|o| !self.has_output(o)) {
            return Err(OnnxError::NoOutput {
                file: self.file.clone(),
                name: (*output).to_owned(),
                outputs: self.outputs.join(", "),
            });
        }
        Ok(())
    }

    /// Runs the graph on named inputs and returns the named outputs, in order.
    pub fn run(
        &mut self,
        inputs: Vec<(String, SessionInputValue<'_>)>,
        wanted: &[&str],
    ) -> Result<Vec<DynValue>, OnnxError> {
        let mut outputs = self.session.run(inputs).map_err(|source| OnnxError::Run {
            file: self.file.clone(),
            source,
        })?;
        wanted
            .iter()
            .map(|name| {
                outputs.remove(name).ok_or_else(|| OnnxError::NoRunOutput {
                    file: self.file.clone(),
                    name: (*name).to_owned(),
                })
            })
            .collect()
    }
}

/// Registers CUDA on the builder, or says why it cannot be and gives the builder
/// back as it was (a CPU builder).
fn with_cuda(builder: SessionBuilder) -> (SessionBuilder, Result<(), OnnxError>) {
    match ep::CUDA::is_available() {
        Ok(true) => {}
        Ok(false) => return (builder, Err(OnnxError::NoCuda)),
        Err(e) => return (builder, Err(OnnxError::Cuda(e))),
    }
    match builder.with_execution_providers([ep::CUDA::default().build().error_on_failure()]) {
        Ok(builder) => (builder, Ok(())),
        Err(e) => {
            // The cause without the builder it carries, which goes back to the caller.
            let reason = ort::Error::new_with_code(e.code(), e.message());
            (e.recover(), Err(OnnxError::Cuda(reason)))
        }
    }
}
