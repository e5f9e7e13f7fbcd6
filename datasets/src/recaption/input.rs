//! Streamed readers of the recaption loop's inputs: WebDataset tar shards, a JSONL
//! manifest or a folder of images and videos, each read into [`Item`]s (an image or a
//! video, its key and its original caption) grouped into shards, the unit of VILA's
//! caption files.
//!
//! [`open_input`] returns [`Items`], an iterator of `Result<Item, Problem>` that holds
//! one sample in memory at a time, whatever the size of the input: tar shards are read
//! member by member, manifests line by line, folders entry by entry. Bad input never
//! stops the stream: each thing left out is yielded as a [`Problem`] with a stable
//! kind, and reading goes on (a truncated or corrupt shard ends that shard only). Only
//! an input that cannot be opened at all is a [`SourceError`].
//!
//! Each `Err(problem)` is final for what it names: with a key, that sample is not
//! captioned; without one, part of a shard (a member that belongs to no sample, a
//! manifest line, the rest of a truncated shard) is left out. Problems that did not
//! stop a sample (an unknown member beside its image, a corrupt caption member when
//! captions are optional) ride on the item as [`Item::notes`], so that every sample
//! has exactly one outcome.
//!
//! Which files are images and videos, and how files under a folder are named, is
//! [`crate::files`]'s, shared with `wolf dataset add`.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files;
pub use crate::files::SourceError;

mod folder;
mod manifest;
pub(crate) mod webdataset;

/// The default limit on the size of one image or video read into memory (1 GiB).
pub const DEFAULT_MAX_MEDIA_BYTES: u64 = 1 << 30;

/// Whether an item is an image or a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
        }
    }

    /// The kind of a file by its extension (without the dot, any case), from
    /// [`files::IMAGE_EXTENSIONS`] and [`files::VIDEO_EXTENSIONS`].
    pub fn of_extension(extension: &str) -> Option<Self> {
        if files::is_image_extension(extension) {
            Some(Self::Image)
        } else if files::is_video_extension(extension) {
            Some(Self::Video)
        } else {
            None
        }
    }

    /// The kind of a file by its path's extension.
    pub fn of_path(path: &Path) -> Option<Self> {
        path.extension()
            .and_then(|e| Self::of_extension(&e.to_string_lossy()))
    }
}

/// An item's image or video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    /// The encoded image (JPEG, PNG or WebP, as stored), already checked to decode
    /// unless [`InputSettings::check_images`] was turned off.
    Image(Vec<u8>),
    /// A video, not checked here (decoding it is the captioner's work).
    Video(Video),
}

impl Media {
    pub fn kind(&self) -> MediaKind {
        match self {
            Self::Image(_) => MediaKind::Image,
            Self::Video(_) => MediaKind::Video,
        }
    }
}

/// Where a video's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Video {
    /// A tar member's bytes; `extension` (lower-case, such as `mp4`) says the container,
    /// for a captioner that must write them to a file first.
    Bytes { bytes: Vec<u8>, extension: String },
    /// A file named by a manifest or found in a folder; it existed when it was listed.
    File(PathBuf),
}

/// One sample to recaption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The shard, named as its caption file will be: a tar shard's path relative to the
    /// input folder without `.tar` (a single shard: its file stem), a manifest's file
    /// stem, or a folder's name.
    pub shard: String,
    /// The sample's key: the WebDataset key, the manifest's `key` (default its path as
    /// written) or a file's path relative to the folder without its extension.
    pub key: String,
    pub media: Media,
    /// The original caption, trimmed; `None` when there is none or it is empty.
    pub original: Option<String>,
    /// Problems that did not stop this sample (see the module's doc).
    pub notes: Vec<Problem>,
    /// A shard sample's `.json` fields other than its caption, if it had any.
    pub metadata: Option<serde_json::Value>,
}

/// Something in the input that was left out, and why.
///
/// Kinds: `corrupt_member` (an image member that does not decode, or a caption member
/// that is not UTF-8 text or JSON), `missing_caption`, `unknown_member` (neither an
/// image, a video nor a caption), `duplicate_member` (a second image or video, or a
/// second caption of the same kind, in one sample), `oversized_member`, `no_media`,
/// `truncated_shard`, `corrupt_shard` (a tar header that fails its checksum),
/// `unreadable_shard`, `bad_line` (a manifest line that is not a valid row),
/// `missing_file`, `unreadable_file`, `corrupt_file` (an image file that does not
/// decode, or a sidecar caption that is not UTF-8), `oversized_file` and
/// `unreadable_folder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub shard: String,
    /// The sample concerned; `None` for a problem of the shard itself.
    pub key: Option<String>,
    pub kind: &'static str,
    pub message: String,
}

impl Problem {
    fn new(shard: &str, key: Option<&str>, kind: &'static str, message: String) -> Self {
        Self {
            shard: shard.to_owned(),
            key: key.map(str::to_owned),
            kind,
            message,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(
                f,
                "shard `{}`, sample `{key}`: {}",
                self.shard, self.message
            ),
            None => write!(f, "shard `{}`: {}", self.shard, self.message),
        }
    }
}

/// What kind of input a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// A `.tar` shard, or a folder searched recursively for `.tar` shards.
    #[serde(rename = "webdataset")]
    WebDataset,
    /// A JSONL manifest: `{"key"?, "image" | "video", "caption"?}` a line.
    Jsonl,
    /// A folder of images and videos with optional `<stem>.txt` captions.
    Folder,
}

impl InputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebDataset => "webdataset",
            Self::Jsonl => "jsonl",
            Self::Folder => "folder",
        }
    }
}

/// How an input is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSettings {
    /// What the input is; `None` guesses: a `.tar` file or a folder holding `.tar`
    /// files is WebDataset, a `.jsonl`/`.ndjson` file a manifest, any other folder a
    /// folder of media.
    pub kind: Option<InputKind>,
    /// Whether a sample without an original caption is left out as `missing_caption`
    /// (the `short_long` and `original_only` templates need one).
    pub require_caption: bool,
    /// Whether images are decoded to check them (a corrupt one is left out here rather
    /// than failing in the captioner).
    pub check_images: bool,
    /// Images and video members larger than this are left out (`oversized_member`,
    /// `oversized_file`), so that one bad member cannot exhaust memory.
    pub max_media_bytes: u64,
    /// Whether a video member of an uncompressed shard is named by its byte range
    /// ([`Video::File`] of a [`wolf_pipeline::media::Member`] path) instead of read.
    pub in_place: bool,
}

impl Default for InputSettings {
    fn default() -> Self {
        Self {
            kind: None,
            require_caption: false,
            check_images: true,
            max_media_bytes: DEFAULT_MAX_MEDIA_BYTES,
            in_place: false,
        }
    }
}

impl InputSettings {
    pub fn with_kind(mut self, kind: InputKind) -> Self {
        self.kind = Some(kind);
        self
    }

    pub fn with_require_caption(mut self, require: bool) -> Self {
        self.require_caption = require;
        self
    }

    pub fn with_check_images(mut self, check: bool) -> Self {
        self.check_images = check;
        self
    }

    pub fn with_max_media_bytes(mut self, bytes: u64) -> Self {
        self.max_media_bytes = bytes;
        self
    }

    pub fn with_in_place(mut self, in_place: bool) -> Self {
        self.in_place = in_place;
        self
    }
}

type SkipFn = Box<dyn FnMut(&str, &str) -> bool + Send>;

/// What every reader needs while it reads: the settings and the caller's skip test.
struct Context {
    settings: InputSettings,
    skip: Option<SkipFn>,
}

impl Context {
    fn skips(&mut self, shard: &str, key: &str) -> bool {
        self.skip.as_mut().is_some_and(|skip| skip(shard, key))
    }

    /// Checks that an image decodes, when checking is on.
    fn check_image(&self, bytes: &[u8]) -> Result<(), image::ImageError> {
        if !self.settings.check_images {
            return Ok(());
        }
        image::load_from_memory(bytes).map(drop)
    }

    /// An image file's bytes, within the size limit and checked to decode.
    fn read_image(&self, path: &Path) -> Result<Vec<u8>, FileError> {
        let meta = std::fs::metadata(path).map_err(|e| FileError::of_io(path, e))?;
        if !meta.is_file() {
            return Err(FileError::NotAFile(path.to_owned()));
        }
        let limit = self.settings.max_media_bytes;
        if meta.len() > limit {
            return Err(FileError::Oversized {
                path: path.to_owned(),
                len: meta.len(),
                limit,
            });
        }
        let bytes = std::fs::read(path).map_err(|e| FileError::of_io(path, e))?;
        self.check_image(&bytes)
            .map_err(|source| FileError::NotAnImage {
                path: path.to_owned(),
                source,
            })?;
        Ok(bytes)
    }

    /// Settles a sample's original caption: `text` is the caption found (if any),
    /// `corrupt` the problem with a caption member or file that could not be read. A
    /// required caption that is missing fails the sample; otherwise a corrupt caption
    /// becomes a note.
    fn settle_caption(
        &self,
        shard: &str,
        key: &str,
        text: Option<String>,
        corrupt: Option<(&'static str, String)>,
        notes: &mut Vec<Problem>,
    ) -> Result<Option<String>, Problem> {
        let text = text.and_then(non_empty);
        if text.is_none() && self.settings.require_caption {
            let (kind, message) = corrupt.unwrap_or_else(|| {
                (
                    "missing_caption",
                    format!("sample `{key}` has no caption, and the template needs one"),
                )
            });
            return Err(Problem::new(shard, Some(key), kind, message));
        }
        if let Some((kind, message)) = corrupt {
            notes.push(Problem::new(shard, Some(key), kind, message));
        }
        Ok(text)
    }
}

/// The readers behind [`Items`].
enum Reader {
    WebDataset(Box<webdataset::Shards>),
    Jsonl(manifest::Manifest),
    Folder(folder::Folder),
}

/// The items of an input, streamed; see the module's doc.
pub struct Items {
    reader: Reader,
    context: Context,
}

impl Items {
    pub fn kind(&self) -> InputKind {
        match self.reader {
            Reader::WebDataset(_) => InputKind::WebDataset,
            Reader::Jsonl(_) => InputKind::Jsonl,
            Reader::Folder(_) => InputKind::Folder,
        }
    }

    /// Leaves out the samples for which `skip(shard, key)` is true (those a resumed
    /// round has done): their bytes are not kept, their images not decoded, and
    /// neither they nor their problems are yielded. Problems without a key are
    /// yielded again.
    pub fn with_skip(mut self, skip: impl FnMut(&str, &str) -> bool + Send + 'static) -> Self {
        self.context.skip = Some(Box::new(skip));
        self
    }
}

impl Iterator for Items {
    type Item = Result<Item, Problem>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.reader {
            Reader::WebDataset(shards) => shards.next(&mut self.context),
            Reader::Jsonl(manifest) => manifest.next(&mut self.context),
            Reader::Folder(folder) => folder.next(&mut self.context),
        }
    }
}

/// Opens an input for streaming; see [`InputSettings::kind`] for how its kind is
/// guessed.
pub fn open_input(path: &Path, settings: InputSettings) -> Result<Items, SourceError> {
    let meta = files::metadata(path)?;
    let mismatch = |kind: InputKind| SourceError::KindMismatch {
        path: path.to_owned(),
        kind: kind.as_str(),
    };
    let reader = if meta.is_dir() {
        match settings.kind {
            Some(InputKind::Jsonl) => return Err(mismatch(InputKind::Jsonl)),
            Some(InputKind::Folder) => Reader::Folder(folder::Folder::new(path)),
            Some(InputKind::WebDataset) => {
                let shards = webdataset::Shards::in_folder(path);
                if shards.is_empty() {
                    return Err(SourceError::NoShards {
                        path: path.to_owned(),
                    });
                }
                Reader::WebDataset(Box::new(shards))
            }
            None => {
                let shards = webdataset::Shards::in_folder(path);
                if shards.is_empty() {
                    Reader::Folder(folder::Folder::new(path))
                } else {
                    Reader::WebDataset(Box::new(shards))
                }
            }
        }
    } else {
        let guessed = match files::lower_extension(path).as_deref() {
            _ if files::shard_stem(path).is_some() => Some(InputKind::WebDataset),
            Some("jsonl" | "ndjson") => Some(InputKind::Jsonl),
            _ => None,
        };
        match settings.kind.or(guessed) {
            Some(InputKind::WebDataset) => {
                Reader::WebDataset(Box::new(webdataset::Shards::single(path)))
            }
            Some(InputKind::Jsonl) => Reader::Jsonl(manifest::Manifest::open(path)?),
            Some(InputKind::Folder) => return Err(mismatch(InputKind::Folder)),
            None => {
                return Err(SourceError::UnknownKind {
                    path: path.to_owned(),
                    expected: "a .tar shard, a .jsonl manifest or a folder",
                });
            }
        }
    };
    Ok(Items {
        reader,
        context: Context {
            settings,
            skip: None,
        },
    })
}

/// A folder's own name (`.` resolved), for naming its shard.
fn folder_name(path: &Path) -> String {
    let named = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n != ".." && !n.is_empty());
    named
        .or_else(|| {
            path.canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        })
        .unwrap_or_else(|| "input".to_owned())
}

/// A file's stem, for naming a single shard or manifest.
fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "input".to_owned())
}

/// Why a file named by a manifest or found in a folder was left out.
#[derive(Debug, thiserror::Error)]
enum FileError {
    #[error("`{0}` does not exist")]
    Missing(PathBuf),
    #[error("cannot read `{path}`: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{0}` is not a file")]
    NotAFile(PathBuf),
    #[error("`{path}` has {len} bytes, more than the limit of {limit}")]
    Oversized { path: PathBuf, len: u64, limit: u64 },
    #[error("`{path}` does not decode as an image: {source}")]
    NotAnImage {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
}

impl FileError {
    fn of_io(path: &Path, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::NotFound => Self::Missing(path.to_owned()),
            _ => Self::Unreadable {
                path: path.to_owned(),
                source,
            },
        }
    }

    /// The [`Problem`] kind.
    fn kind(&self) -> &'static str {
        match self {
            Self::Missing(_) => "missing_file",
            Self::Unreadable { .. } | Self::NotAFile(_) => "unreadable_file",
            Self::Oversized { .. } => "oversized_file",
            Self::NotAnImage { .. } => "corrupt_file",
        }
    }
}

/// A caption trimmed, or `None` if nothing is left.
fn non_empty(text: String) -> Option<String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        None
    } else if trimmed.len() == text.len() {
        Some(text)
    } else {
        Some(trimmed.to_owned())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid 2×2 PNG.
    pub(crate) fn png() -> Vec<u8> {
        let image = image::RgbImage::from_pixel(2, 2, image::Rgb([200, 30, 30]));
        let mut bytes = std::io::Cursor::new(Vec::new());
        image
            .write_to(&mut bytes, image::ImageFormat::Png)
            .expect("encoding a PNG in memory");
        bytes.into_inner()
    }

    pub(crate) fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Every item of an input read with the default settings, none of them a problem.
    pub(crate) fn all_items(path: &Path) -> Vec<Item> {
        open_input(path, InputSettings::default())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// `(shard, key)` of each item.
    pub(crate) fn names(items: &[Item]) -> Vec<(&str, &str)> {
        items
            .iter()
            .map(|i| (i.shard.as_str(), i.key.as_str()))
            .collect()
    }

    /// `(shard, key)` of the items and `(key, kind)` of the problems.
    pub(crate) type Outcome = (Vec<(String, String)>, Vec<(Option<String>, &'static str)>);

    pub(crate) fn outcome(items: Items) -> Outcome {
        let mut ok = Vec::new();
        let mut problems = Vec::new();
        for item in items {
            match item {
                Ok(item) => ok.push((item.shard, item.key)),
                Err(p) => problems.push((p.key, p.kind)),
            }
        }
        (ok, problems)
    }

    #[test]
    fn items_can_move_to_a_blocking_thread() {
        fn send<T: Send>() {}
        send::<Items>();
    }

    #[test]
    fn kinds_are_guessed_from_the_path() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "media/a.png", &png());
        write(dir.path(), "m.jsonl", b"");
        let settings = InputSettings::default;
        let folder = open_input(&dir.path().join("media"), settings()).unwrap();
        assert_eq!(folder.kind(), InputKind::Folder);
        let jsonl = open_input(&dir.path().join("m.jsonl"), settings()).unwrap();
        assert_eq!(jsonl.kind(), InputKind::Jsonl);

        let unknown = write(dir.path(), "notes.txt", b"x");
        let err = open_input(&unknown, settings()).err().unwrap();
        assert_eq!(err.kind(), "source_unknown_kind");
        let err = open_input(&dir.path().join("gone"), settings())
            .err()
            .unwrap();
        assert_eq!(err.kind(), "source_not_found");
        let err = open_input(
            &dir.path().join("media"),
            settings().with_kind(InputKind::WebDataset),
        )
        .err()
        .unwrap();
        assert_eq!(err.kind(), "source_no_shards");
        let err = open_input(&unknown, settings().with_kind(InputKind::Folder))
            .err()
            .unwrap();
        assert_eq!(err.kind(), "source_kind_mismatch");
    }

    #[test]
    fn input_kinds_read_from_config_in_snake_case() {
        let kinds: Vec<InputKind> =
            serde_json::from_str(r#"["webdataset", "jsonl", "folder"]"#).unwrap();
        assert_eq!(
            kinds,
            [InputKind::WebDataset, InputKind::Jsonl, InputKind::Folder]
        );
    }

    #[test]
    fn captions_are_trimmed_and_empty_ones_are_none() {
        assert_eq!(non_empty("  A cat. \n".into()).as_deref(), Some("A cat."));
        assert_eq!(non_empty(" \n".into()), None);
    }
}
