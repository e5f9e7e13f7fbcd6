//! Media: probing, frame sampling, shot boundaries, resizing, storyboards, image encoding
//! and clip writing.
//!
//! FFmpeg is reached through `ffmpeg-next`. Everything here is blocking; async callers
//! run it on `spawn_blocking` threads. [`init`] must run once before any of it (every
//! public entry point calls it); it routes FFmpeg's own log through `tracing` under the
//! target `ffmpeg`, at `debug` and below, because every problem that matters to a user
//! is returned as a [`MediaError`] with its own message.

mod frames_folder;
mod image_ops;
mod location;
mod log;
mod probe;
mod sample;
mod shots;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

pub use frames_folder::{FrameEntry, FramesError, FramesIndex, write_frames};
pub use image::RgbImage;
pub use image_ops::{ImageFormat, encode_image, pad_to, rotate, storyboard};
pub use location::{Member, extent, media_name, open_bytes, relative_to, stat};
pub use probe::{Probe, probe};
pub use sample::{
    Frame, Rate, Resize, SampleSettings, Sampled, decode_all, sample_frames, sample_window,
};
pub use shots::{
    CONTEXT, DEFAULT_THRESHOLD, Decoded, FRAME_BYTES, HEIGHT, STEP, Shot, ShotError, Shots, WIDTH,
    WINDOW, decode_small, detect_shots,
};
pub use writer::{Mp4Writer, WriterSettings};

/// How long probing one file may take. Its one demuxing pass reads the whole file, a
/// few seconds for a long video on a local disk; a file slower to read than this (a
/// stalled network mount, a device that trickles) is failed with kind `timeout` rather
/// than holding up the intake of the rest.
pub const PROBE_TIME_LIMIT: Duration = Duration::from_secs(300);

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
    /// A directory, FIFO, socket or device: refused before it is opened, since opening
    /// a FIFO waits for a writer that may never come.
    #[error("`{path}` is not a regular file: it is {what}")]
    NotAFile { path: PathBuf, what: &'static str },
    #[error("`{path}` could not be read within {limit_s} s")]
    TimedOut { path: PathBuf, limit_s: f64 },
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
            Self::NotAFile { .. } => "not_a_file",
            Self::TimedOut { .. } => "timeout",
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
/// unreadable or empty file gets a precise error instead of FFmpeg's generic one, and
/// what is not a regular file is refused by its metadata before anything opens it.
///
/// A tar member ([`Member`]) is checked through its tar, whose length must hold the
/// member's range.
pub(crate) fn check_readable(path: &Path) -> Result<u64, MediaError> {
    if let Some(member) = Member::parse(path) {
        let length = check_readable(&member.archive)?;
        let end = member.offset + member.size;
        if member.size == 0 {
            return Err(MediaError::Empty(path.to_owned()));
        }
        if end > length {
            return Err(MediaError::Truncated {
                path: path.to_owned(),
                message: format!("the member ends at byte {end} of a tar of {length} bytes"),
            });
        }
        return Ok(member.size);
    }
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => MediaError::NotFound(path.to_owned()),
        _ => MediaError::Unreadable {
            path: path.to_owned(),
            message: e.to_string(),
        },
    })?;
    if !meta.is_file() {
        return Err(MediaError::NotAFile {
            path: path.to_owned(),
            what: file_kind(&meta.file_type()),
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

/// What a file that is not a regular file is, in words.
fn file_kind(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "neither a file nor a directory"
    }
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

/// Opens a file (or a tar member, in place) with FFmpeg after [`check_readable`]. With a `limit`, FFmpeg's reads
/// (opening, and every read of the returned input) stop once it has passed: they fail
/// with `ffmpeg_next::Error::Exit`, which [`timed_out`] turns into the error.
pub(crate) fn open_input(
    path: &Path,
    limit: Option<Duration>,
) -> Result<ffmpeg_next::format::context::Input, MediaError> {
    init();
    check_readable(path)?;
    let url = Member::parse(path).map_or_else(|| path.to_owned(), |m| m.ffmpeg_url().into());
    let opened = match limit {
        None => ffmpeg_next::format::input(&url),
        Some(limit) => {
            let deadline = Instant::now() + limit;
            ffmpeg_next::format::input_with_interrupt(&url, move || Instant::now() >= deadline)
        }
    };
    opened.map_err(|e| match (e, limit) {
        (ffmpeg_next::Error::Exit, Some(limit)) => timed_out(path, limit),
        (e, _) => MediaError::InvalidData {
            path: path.to_owned(),
            message: e.to_string(),
        },
    })
}

/// The error of a read stopped by [`open_input`]'s limit.
pub(crate) fn timed_out(path: &Path, limit: Duration) -> MediaError {
    MediaError::TimedOut {
        path: path.to_owned(),
        limit_s: limit.as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opening a FIFO for reading waits for a writer; a FIFO named like a video must be
    /// refused before that, by its metadata (the probe runs on a thread, so that a
    /// regression fails here instead of hanging the tests).
    #[cfg(unix)]
    #[test]
    fn a_fifo_or_a_folder_is_refused_without_being_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.mp4");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(probe(&fifo)));
        let error = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("probing a FIFO returns at once")
            .unwrap_err();
        assert_eq!(error.kind(), "not_a_file", "{error}");
        assert!(error.to_string().contains("a FIFO"), "{error}");
        let error = probe(dir.path()).unwrap_err();
        assert_eq!(error.kind(), "not_a_file", "{error}");
    }
}
