//! Sampled frames written to a folder (`frame_0000.jpg`, … and `frames.json` with their
//! times): what `wolf frames` makes.

use std::path::Path;

use serde::Serialize;

use super::{ImageFormat, MediaError, SampleSettings, Sampled, encode_image, sample_frames};

/// What `frames.json` holds.
#[derive(Debug, Serialize)]
pub struct FramesIndex {
    pub video: String,
    /// The video's duration in seconds, as probed.
    pub duration: f64,
    pub width: u32,
    pub height: u32,
    pub frames: Vec<FrameEntry>,
}

/// One frame's file and times.
#[derive(Debug, Serialize)]
pub struct FrameEntry {
    pub file: String,
    /// Seconds from the first frame.
    pub time: f64,
    /// The stream's presentation timestamp.
    pub pts: i64,
}

/// A folder of frames that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FramesError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Samples a video's frames into `out` (`frame_0000.jpg`, … and `frames.json`, written
/// last and atomically so that its presence means the folder is complete), decoding on
/// at most `threads` threads (0: one per core).
pub fn write_frames(
    video: &Path,
    out: &Path,
    settings: &SampleSettings,
    format: ImageFormat,
    threads: usize,
) -> Result<FramesIndex, FramesError> {
    let write = |path: &Path, bytes: &[u8]| {
        std::fs::write(path, bytes).map_err(|source| FramesError::Write {
            path: path.display().to_string(),
            source,
        })
    };
    let Sampled { duration_s, frames } = sample_frames(video, settings, threads)?;
    std::fs::create_dir_all(out).map_err(|source| FramesError::Write {
        path: out.display().to_string(),
        source,
    })?;
    let mut entries = Vec::with_capacity(frames.len());
    for (i, frame) in frames.iter().enumerate() {
        let file = format!("frame_{i:04}.{}", format.extension());
        write(&out.join(&file), &encode_image(&frame.image, format)?)?;
        entries.push(FrameEntry {
            file,
            time: frame.time_s,
            pts: frame.pts,
        });
    }
    let (width, height) = frames.first().map_or((0, 0), |f| f.image.dimensions());
    let index = FramesIndex {
        video: video.display().to_string(),
        duration: duration_s,
        width,
        height,
        frames: entries,
    };
    let json = serde_json::to_string_pretty(&index).expect("the index always serializes");
    let (tmp, path) = (out.join("frames.json.tmp"), out.join("frames.json"));
    write(&tmp, json.as_bytes())?;
    std::fs::rename(&tmp, &path).map_err(|source| FramesError::Write {
        path: path.display().to_string(),
        source,
    })?;
    Ok(index)
}
