//! `wolf frames VIDEO --out DIR`: sample frames into a folder, with a JSON of their
//! timestamps; `wolf shots VIDEO`: its shots.

use std::path::PathBuf;

#[cfg(feature = "onnx")]
use anyhow::Context as _;
use clap::{Args, ValueEnum};
use wolf_pipeline::config::{Config, FrameFormat, Plan, ResizeMode};
use wolf_pipeline::media;
#[cfg(feature = "onnx")]
use wolf_pipeline::models::onnx::{SessionOptions, ShotModel};

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

impl FramesArgs {
    /// The plan: the config's `[sampling]` with the flags applied, validated.
    fn plan(&self) -> anyhow::Result<Plan> {
        let mut config = Config::load_or_default(self.config.as_deref())?;
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
    let index = tokio::task::spawn_blocking(move || {
        media::write_frames(&video, &out, &plan.sampling, plan.frame_format, 0)
    })
    .await??;
    outln!(
        "Wrote {} frames of {}x{} to {}.",
        index.frames.len(),
        index.width,
        index.height,
        args.out.display()
    );
    Ok(Outcome::Done)
}

#[cfg(feature = "onnx")]
#[derive(Debug, Args)]
pub(crate) struct ShotsArgs {
    /// The video file.
    video: PathBuf,
    /// A frame whose boundary probability is above this ends a shot.
    #[arg(long, default_value_t = media::DEFAULT_THRESHOLD)]
    threshold: f32,
    /// TransNetV2 as ONNX. Default: the file `make setup` converts into `.wolf/models/`.
    #[arg(long)]
    model: Option<PathBuf>,
    /// `table`, or `json` with every frame's probability.
    #[arg(long, value_enum, default_value_t = super::dataset::Format::Table)]
    format: super::dataset::Format,
}

#[cfg(feature = "onnx")]
pub(crate) async fn shots(args: ShotsArgs) -> anyhow::Result<Outcome> {
    let file = (args.model.clone().or_else(ShotModel::default_file))
        .context("no shot model here: `make setup` converts TransNetV2, or pass --model")?;
    let json = args.format == super::dataset::Format::Json;
    let found = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut model = ShotModel::load(&file, SessionOptions::default())?;
        Ok(model.detect(&args.video, args.threshold, json)?)
    })
    .await??;
    if json {
        outln!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        out!("{}", found.table());
    }
    Ok(Outcome::failed_if(found.error.is_some()))
}
