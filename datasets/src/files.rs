//! Files on disk as the datasets see them: which files are videos or images, which are
//! hidden, how a folder is walked, how a file found under a folder is named, and the
//! error of a source that cannot be opened at all.
//!
//! `wolf dataset add` ([`crate::sources`]) and the recaption loop's readers
//! ([`crate::recaption::input`]) both use this one module, so that they take the same
//! files for videos and name them the same way.

use std::path::{Path, PathBuf};

/// File extensions taken as videos (compared case-insensitively).
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "mpg", "mpeg", "ts", "wmv", "flv", "3gp",
];

/// File extensions taken as images (compared case-insensitively): the formats the
/// recaption loop decodes.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp"];

/// A path's extension in lower case, without the dot.
pub fn lower_extension(path: &Path) -> Option<String> {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
}

/// Whether an extension (without the dot, any case) is a video's.
pub fn is_video_extension(extension: &str) -> bool {
    let extension = extension.to_ascii_lowercase();
    VIDEO_EXTENSIONS.contains(&extension.as_str())
}

/// Whether an extension (without the dot, any case) is an image's.
pub fn is_image_extension(extension: &str) -> bool {
    let extension = extension.to_ascii_lowercase();
    IMAGE_EXTENSIONS.contains(&extension.as_str())
}

/// Whether a path names a video by its extension.
pub fn is_video(path: &Path) -> bool {
    lower_extension(path).is_some_and(|e| is_video_extension(&e))
}

/// Shard file endings: an uncompressed tar (read in place) and gzipped ones.
pub const SHARD_ENDINGS: &[&str] = &[".tar", ".tar.gz", ".tgz"];

/// A shard's path without its ending (`a/000001.tar.gz`: `a/000001`), `None` when the
/// path is not a shard's (compared case-insensitively).
pub fn shard_stem(path: &Path) -> Option<PathBuf> {
    let text = path.to_str()?;
    let lower = text.to_ascii_lowercase();
    let ending = SHARD_ENDINGS.iter().find(|e| lower.ends_with(*e))?;
    let stem = &text[..text.len() - ending.len()];
    (!stem.is_empty() && !stem.ends_with('/')).then(|| PathBuf::from(stem))
}

/// Whether a shard is gzipped (and so must be decompressed to be read).
pub fn is_compressed_shard(path: &Path) -> bool {
    shard_stem(path).is_some() && lower_extension(path).as_deref() != Some("tar")
}

/// Whether a walked entry is part of a dataset: hidden files and folders (such as a
/// clip or shard still being written under a temporary name) are not. The walk's root
/// is always visible, whatever its name.
pub fn visible(entry: &walkdir::DirEntry) -> bool {
    entry.depth() == 0 || !entry.file_name().to_string_lossy().starts_with('.')
}

/// A walk of a folder: see [`walk`].
pub type Walk = walkdir::FilterEntry<walkdir::IntoIter, fn(&walkdir::DirEntry) -> bool>;

/// Walks a folder recursively in file-name order, following links and passing over
/// what is not [`visible`].
pub fn walk(root: &Path) -> Walk {
    walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(visible as fn(&walkdir::DirEntry) -> bool)
}

/// The key of a file found under `root`: its path relative to `root`, with `/`
/// separators. A dataset's video keeps its extension in its key (`b/clip.mp4`, as
/// Wolf's annotation files name videos); the recaption loop names a sample by the
/// path without its extension (`b/clip`, as WebDataset keys are), so it passes
/// `path.with_extension("")`.
pub fn relative_key(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// A source's metadata: a missing source is [`SourceError::NotFound`].
pub fn metadata(path: &Path) -> Result<std::fs::Metadata, SourceError> {
    std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SourceError::NotFound(path.to_owned()),
        _ => SourceError::Io {
            path: path.to_owned(),
            source: e,
        },
    })
}

/// A source that cannot be read at all: what `wolf dataset add` or a recaption round
/// was pointed at. A problem with one line, key or sample of a source is not this
/// error; it is recorded and the rest of the source is read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source `{0}` does not exist")]
    NotFound(PathBuf),
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The path's kind cannot be told from its extension; `expected` says what kinds
    /// the reader takes.
    #[error("`{path}` is not {expected}")]
    UnknownKind {
        path: PathBuf,
        expected: &'static str,
    },
    /// The kind the caller named does not fit the path (a folder named as a manifest).
    #[error("`{path}` cannot be read as `{kind}`")]
    KindMismatch { path: PathBuf, kind: &'static str },
    #[error("folder `{path}` holds no .tar shards")]
    NoShards { path: PathBuf },
    /// A brace pattern (`shards/{000000..000099}.tar`) none of whose shards exists.
    #[error("no shard matches `{pattern}` ({tried} paths tried, such as `{first}`)")]
    NoMatch {
        pattern: String,
        tried: usize,
        first: PathBuf,
    },
    /// A brace pattern that cannot be expanded.
    #[error("`{pattern}` is not a valid brace pattern: {message}")]
    BadPattern { pattern: String, message: String },
    #[error("annotations `{path}` are not a JSON object of video keys: {source}")]
    Annotations {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("manifest `{path}`: {source}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    /// A column named by a mapping (`--caption-column text`) that the manifest lacks.
    #[error("manifest `{path}` has no column `{column}` ({option}); its columns: {present}")]
    MissingColumn {
        path: PathBuf,
        column: String,
        option: &'static str,
        present: String,
    },
    #[error("manifest `{path}` is not a readable Parquet file: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error(
        "manifest `{path}` has no path column (`path`, `video` or `url`; `--path-column` names another); its columns: {present}"
    )]
    NoPathColumn { path: PathBuf, present: String },
    /// The folder's timed references (`dense.json`) that cannot be used.
    #[error(transparent)]
    Dense(#[from] wolf_scorer::dense::DenseError),
}

impl SourceError {
    /// A stable label of the error, for logs and for filtering.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "source_not_found",
            Self::Io { .. } => "source_unreadable",
            Self::UnknownKind { .. } => "source_unknown_kind",
            Self::KindMismatch { .. } => "source_kind_mismatch",
            Self::NoShards { .. } | Self::NoMatch { .. } => "source_no_shards",
            Self::BadPattern { .. } => "source_bad_pattern",
            Self::Annotations { .. } | Self::Dense(_) => "annotations_invalid",
            Self::Csv { .. }
            | Self::Parquet { .. }
            | Self::MissingColumn { .. }
            | Self::NoPathColumn { .. } => "manifest_invalid",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_list_of_video_extensions_in_any_case() {
        for name in ["a.mp4", "b/c.M4V", "d.ts", "e.MKV", "f.3gp"] {
            assert!(is_video(Path::new(name)), "{name}");
        }
        for name in ["a.txt", "b.png", "c", ".mp4"] {
            assert!(!is_video(Path::new(name)), "{name}");
        }
        assert!(is_image_extension("JPEG"));
        assert!(!is_image_extension("mp4"));
        assert!(
            IMAGE_EXTENSIONS
                .iter()
                .all(|e| !VIDEO_EXTENSIONS.contains(e))
        );
    }

    #[test]
    fn shards_are_told_by_their_ending() {
        assert_eq!(shard_stem(Path::new("a/01.tar")), Some("a/01".into()));
        assert_eq!(shard_stem(Path::new("a/01.TAR.GZ")), Some("a/01".into()));
        assert_eq!(shard_stem(Path::new("01.tgz")), Some("01".into()));
        assert_eq!(shard_stem(Path::new("01.gz")), None);
        assert_eq!(shard_stem(Path::new(".tar")), None);
        assert!(is_compressed_shard(Path::new("01.tgz")));
        assert!(!is_compressed_shard(Path::new("01.tar")));
    }

    #[test]
    fn walks_pass_over_hidden_entries_but_not_a_hidden_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(".root");
        for name in ["b/x.mp4", "a.mp4", ".partial.mp4", ".cache/y.mp4"] {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"x").unwrap();
        }
        let files: Vec<String> = walk(&root)
            .map(Result::unwrap)
            .filter(|e| e.file_type().is_file())
            .map(|e| relative_key(&root, e.path()))
            .collect();
        assert_eq!(files, ["a.mp4", "b/x.mp4"]);
    }

    #[test]
    fn keys_are_relative_and_slash_separated() {
        let root = Path::new("/data/set");
        assert_eq!(
            relative_key(root, Path::new("/data/set/b/clip.mp4")),
            "b/clip.mp4"
        );
        assert_eq!(
            relative_key(root, &Path::new("/data/set/b/clip.mp4").with_extension("")),
            "b/clip"
        );
    }

    #[test]
    fn a_missing_source_is_not_found() {
        let err = metadata(Path::new("/definitely/not/here")).unwrap_err();
        assert_eq!(err.kind(), "source_not_found");
    }
}
