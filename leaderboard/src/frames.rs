//! Frame thumbnails of a video page: frames sampled uniformly (METHOD.md's default, 2
//! per second, 4 to 32) by the pipeline's own sampler, scaled to fit [`THUMB`] pixels
//! and encoded as JPEG, each with its presentation time.
//!
//! A video that cannot be read (moved, deleted, broken) gets no thumbnails and a
//! reason, shown on its page; its captions still show.

use std::path::Path;

use wolf_pipeline::media::{self, ImageFormat, MediaError, Resize, SampleSettings};

/// The longer side of a thumbnail, in pixels.
pub const THUMB: u32 = 160;

/// Why a video page has no thumbnails (shown on the page).
#[derive(Debug, Clone, thiserror::Error)]
pub enum NoThumbnails {
    #[error("thumbnails were not built (`--no-thumbnails`)")]
    NotBuilt,
    #[error("the video could not be read at intake")]
    Unreadable,
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("the thumbnail task failed: {0}")]
    Task(String),
}

/// One thumbnail.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumb {
    /// Seconds from the first frame.
    pub time_s: f64,
    pub jpeg: Vec<u8>,
}

/// Samples and encodes the thumbnails of the video at `path` (blocking: call it from a
/// blocking thread). `threads` bounds the decoder's threads.
pub fn thumbnails(path: &Path, threads: usize) -> Result<Vec<Thumb>, NoThumbnails> {
    media::init();
    let settings = SampleSettings {
        resize: Resize::Fit(THUMB),
        ..SampleSettings::default()
    };
    let sampled = media::sample_frames(path, &settings, threads)?;
    sampled
        .frames
        .iter()
        .map(|f| {
            Ok(Thumb {
                time_s: f.time_s,
                jpeg: media::encode_image(&f.image, ImageFormat::Jpeg(80))?,
            })
        })
        .collect()
}
