//! Media: probing, frame sampling, resizing, storyboards, image encoding and clip writing.
//!
//! FFmpeg is reached through `ffmpeg-next`. Everything here is blocking; async callers
//! run it on `spawn_blocking` threads. [`init`] must run once before any of it (every
//! public entry point calls it); it routes FFmpeg's own log through `tracing` under the
//! target `ffmpeg`, at `debug` and below, because every problem that matters to a user
//! is returned as a [`MediaError`] with its own message.

mod image_ops;
mod log;
mod probe;
mod sample;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Once;

pub use image::RgbImage;
pub use image_ops::{ImageFormat, encode_image, pad_to, rotate, storyboard};
pub use probe::{Probe, probe};
pub use sample::{Frame, Rate, Resize, SampleSettings, Sampled, decode_all, sample_frames};
pub use writer::{Mp4Writer, WriterSettings};

/// What went wrong with one media file. Each variant has a stable [`MediaError::kind`]
/// that is stored with the item.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MediaError {
    #[error("file `{0}` does not exist")]
    NotFound(PathBuf),
    #[error("cannot read `{path}`: {message}")]
    Unreadable { path: PathBuf, message: String },
    #[error("file `{0}` is empty")]
    Empty(PathBuf),
    #[error("`{path}` is not a media file FFmpeg can read: {message}")]
    InvalidData { path: PathBuf, message: String },
    #[error("`{0}` has no video stream")]
    NoVideoStream(PathBuf),
    #[error("`{path}` uses codec `{codec}`, which this FFmpeg cannot decode")]
    UnsupportedCodec { path: PathBuf, codec: String },
    #[error("`{path}` is truncated: {message}")]
    Truncated { path: PathBuf, message: String },
    #[error("no frame of `{path}` could be decoded: {message}")]
    Undecodable { path: PathBuf, message: String },
    #[error("cannot write `{path}`: {message}")]
    Write { path: PathBuf, message: String },
    #[error("{0}")]
    InvalidRequest(String),
}

impl MediaError {
    /// A stable label for the error, stored with failed items.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Unreadable { .. } => "unreadable",
            Self::Empty(_) => "empty_file",
            Self::InvalidData { .. } => "invalid_data",
            Self::NoVideoStream(_) => "no_video_stream",
            Self::UnsupportedCodec { .. } => "unsupported_codec",
            Self::Truncated { .. } => "truncated",
            Self::Undecodable { .. } => "undecodable",
            Self::Write { .. } => "write_failed",
            Self::InvalidRequest(_) => "invalid_request",
        }
    }
}

/// Initialises FFmpeg once per process and routes its log through `tracing`.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        ffmpeg_next::init().expect("FFmpeg failed to initialise; this is a bug");
        log::route_to_tracing();
    });
}

/// Checks what the file system can tell before FFmpeg opens a file, so that a missing,
/// unreadable or empty file gets a precise error instead of FFmpeg's generic one.
pub(crate) fn check_readable(path: &Path) -> Result<u64, MediaError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => MediaError::NotFound(path.to_owned()),
        _ => MediaError::Unreadable {
            path: path.to_owned(),
            message: e.to_string(),
        },
    })?;
    if meta.is_dir() {
        return Err(MediaError::Unreadable {
            path: path.to_owned(),
            message: "it is a directory".into(),
        });
    }
    std::fs::File::open(path).map_err(|e| MediaError::Unreadable {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if meta.len() == 0 {
        return Err(MediaError::Empty(path.to_owned()));
    }
    Ok(meta.len())
}

/// Reads the next packet into `packet`: `Ok(true)` with one, `Ok(false)` at the end.
///
/// The previous packet is released first: `av_read_frame` does not release what the
/// packet held, so reusing one without this leaks every packet's buffer.
pub(crate) fn next_packet(
    input: &mut ffmpeg_next::format::context::Input,
    packet: &mut ffmpeg_next::Packet,
) -> Result<bool, ffmpeg_next::Error> {
    *packet = ffmpeg_next::Packet::empty();
    match packet.read(input) {
        Ok(()) => Ok(true),
        Err(ffmpeg_next::Error::Eof) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Opens a file with FFmpeg after [`check_readable`].
pub(crate) fn open_input(path: &Path) -> Result<ffmpeg_next::format::context::Input, MediaError> {
    init();
    check_readable(path)?;
    ffmpeg_next::format::input(path).map_err(|e| MediaError::InvalidData {
        path: path.to_owned(),
        message: e.to_string(),
    })
}
