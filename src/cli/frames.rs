//! `wolf frames VIDEO --out DIR`: sample frames into a folder, with a JSON of their
//! timestamps.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Serialize;
use wolf_pipeline::config::{Config, FrameFormat, Plan, ResizeMode};
use wolf_pipeline::media;

use super::Outcome;

#[derive(Debug, Args)]
pub(crate) struct FramesArgs {
    /// The video file.
    video: PathBuf,
    /// Folder to write the frames and `frames.json` into (created if needed).
    #[arg(long)]
    out: PathBuf,
    /// Take `[sampling]` from this config; the flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Frames per second of video.
    #[arg(long, conflicts_with = "count")]
    fps: Option<f64>,
    /// An exact number of frames.
    #[arg(long)]
    count: Option<usize>,
    /// At least this many frames (with --fps).
    #[arg(long)]
    min_frames: Option<usize>,
    /// At most this many frames (with --fps).
    #[arg(long)]
    max_frames: Option<usize>,
    /// Frame size: `384` or `640x360`. Default: the video's own size.
    #[arg(long)]
    size: Option<String>,
    /// How frames reach --size.
    #[arg(long, value_enum)]
    resize: Option<ResizeArg>,
    /// Image format of the frames.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// JPEG quality, 1 to 100.
    #[arg(long)]
    quality: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ResizeArg {
    Pad,
    Stretch,
    Fit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Jpeg,
    Png,
}

/// What `frames.json` holds.
#[derive(Debug, Serialize)]
pub(crate) struct FramesIndex {
    pub video: String,
    /// The video's duration in seconds, as probed.
    pub duration: f64,
    pub width: u32,
    pub height: u32,
    pub frames: Vec<FrameEntry>,
}

#[derive(Debug, Serialize)]
pub(crate) struct FrameEntry {
    pub file: String,
    /// Seconds from the first frame.
    pub time: f64,
    /// The stream's presentation timestamp.
    pub pts: i64,
}

impl FramesArgs {
    /// The plan: the config's `[sampling]` with the flags applied, validated.
    fn plan(&self) -> anyhow::Result<Plan> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let s = &mut config.sampling;
        if let Some(count) = self.count {
            s.count = Some(count);
            s.fps = None;
        }
        if let Some(fps) = self.fps {
            s.fps = Some(fps);
            s.count = None;
        }
        s.min_frames = self.min_frames.unwrap_or(s.min_frames);
        s.max_frames = self.max_frames.unwrap_or(s.max_frames);
        s.size = self.size.clone().or(s.size.take());
        if let Some(resize) = self.resize {
            s.resize = match resize {
                ResizeArg::Pad => ResizeMode::Pad,
                ResizeArg::Stretch => ResizeMode::Stretch,
                ResizeArg::Fit => ResizeMode::Fit,
            };
        }
        if let Some(format) = self.format {
            s.format = match format {
                FormatArg::Jpeg => FrameFormat::Jpeg,
                FormatArg::Png => FrameFormat::Png,
            };
        }
        s.jpeg_quality = self.quality.unwrap_or(s.jpeg_quality);
        Ok(config.plan()?)
    }
}

pub(crate) async fn run(args: FramesArgs) -> anyhow::Result<Outcome> {
    let plan = args.plan()?;
    let (video, out) = (args.video.clone(), args.out.clone());
    let index = tokio::task::spawn_blocking(move || write_frames(&video, &out, &plan, 0)).await??;
    outln!(
        "Wrote {} frames of {}x{} to {}.",
        index.frames.len(),
        index.width,
        index.height,
        args.out.display()
    );
    Ok(Outcome::Done)
}

/// Samples a video's frames into `out` (`frame_0000.jpg`, … and `frames.json`, written
/// last and atomically so that its presence means the folder is complete), decoding on
/// at most `threads` threads (0: one per core).
pub(crate) fn write_frames(
    video: &Path,
    out: &Path,
    plan: &Plan,
    threads: usize,
) -> anyhow::Result<FramesIndex> {
    let media::Sampled { duration_s, frames } =
        media::sample_frames(video, &plan.sampling, threads)?;
    std::fs::create_dir_all(out)?;
    let extension = plan.frame_format.extension();
    let mut entries = Vec::with_capacity(frames.len());
    for (i, frame) in frames.iter().enumerate() {
        let file = format!("frame_{i:04}.{extension}");
        let bytes = media::encode_image(&frame.image, plan.frame_format)?;
        std::fs::write(out.join(&file), bytes)?;
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
    write_atomic(
        &out.join("frames.json"),
        serde_json::to_string_pretty(&index)?.as_bytes(),
    )?;
    Ok(index)
}

/// Writes a file through a temporary name in the same folder, then renames it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
