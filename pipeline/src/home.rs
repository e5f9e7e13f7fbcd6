//! The project-local folder that `make setup` fills, and the defaults found in it.
//!
//! `make setup` installs ONNX Runtime's shared library and the default model pack into
//! `.wolf/` at the root of the checkout. The binary finds that folder by itself, so no
//! user ever exports `ORT_DYLIB_PATH`: `WOLF_HOME` when set, else the nearest `.wolf/`
//! above the running executable (a binary under `target/` belongs to its checkout),
//! else the nearest `.wolf/` above the current directory.

use std::path::{Path, PathBuf};

/// Name of the project-local folder.
pub const DIR_NAME: &str = ".wolf";

/// File name of ONNX Runtime's shared library inside [`Home::ort_dir`].
pub const ORT_LIBRARY: &str = "libonnxruntime.so";

/// File name of the default GGUF LLM inside [`Home::models_dir`].
pub const DEFAULT_LLM: &str = "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Folder of the default sentence embedder inside [`Home::models_dir`].
pub const DEFAULT_EMBEDDER: &str = "all-minilm-l6-v2";

/// A located project-local folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// Finds the folder: `WOLF_HOME`, then above the executable, then above the
    /// current directory. `None` when there is none (a binary installed elsewhere).
    pub fn locate() -> Option<Self> {
        if let Some(dir) = std::env::var_os("WOLF_HOME") {
            return Some(Self {
                root: PathBuf::from(dir),
            });
        }
        let exe = std::env::current_exe().ok();
        let cwd = std::env::current_dir().ok();
        exe.iter()
            .chain(cwd.iter())
            .find_map(|start| Self::above(start))
    }

    /// The nearest `.wolf/` folder in `start` or one of its ancestors.
    pub fn above(start: &Path) -> Option<Self> {
        start
            .ancestors()
            .map(|dir| dir.join(DIR_NAME))
            .find(|candidate| candidate.is_dir())
            .map(|root| Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn ort_dir(&self) -> PathBuf {
        self.root.join("ort")
    }

    /// Path of ONNX Runtime's shared library as `make setup` installs it.
    pub fn ort_library(&self) -> PathBuf {
        self.ort_dir().join(ORT_LIBRARY)
    }

    pub fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    pub fn default_llm(&self) -> PathBuf {
        self.models_dir().join(DEFAULT_LLM)
    }

    pub fn default_embedder(&self) -> PathBuf {
        self.models_dir().join(DEFAULT_EMBEDDER)
    }

    /// The database used when neither `--db` nor `WOLF_DB` says otherwise.
    pub fn default_db(&self) -> PathBuf {
        self.root.join("wolf.db")
    }
}

/// The database path used when neither `--db` nor `WOLF_DB` is given: `wolf.db` in
/// the project-local folder, or `$XDG_DATA_HOME/wolf/wolf.db` (default
/// `~/.local/share/wolf/wolf.db`) for a binary that lives outside a checkout.
pub fn default_db_path() -> PathBuf {
    data_dir().join("wolf.db")
}

/// Where gzipped WebDataset shards are extracted and what each shard holds is
/// remembered (`wolf dataset add`) for a database that is not a file: `shards/` in
/// the project-local folder or the data folder (`shard-cache/`).
pub fn shard_cache() -> PathBuf {
    data_dir().join("shard-cache")
}

/// The project-local folder, or `$XDG_DATA_HOME/wolf` (default `~/.local/share/wolf`).
fn data_dir() -> PathBuf {
    if let Some(home) = Home::locate() {
        return home.root;
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("wolf")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_folder_above_a_nested_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".wolf")).unwrap();
        let nested = dir.path().join("target/release/deps");
        std::fs::create_dir_all(&nested).unwrap();
        let home = Home::above(&nested).unwrap();
        assert_eq!(home.root(), dir.path().join(".wolf"));
        assert_eq!(
            home.ort_library(),
            dir.path().join(".wolf/ort/libonnxruntime.so")
        );
    }
}
