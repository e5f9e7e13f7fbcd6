//! Uniform frame sampling (METHOD.md 1.1) with timestamps from the stream.
//!
//! The clip is cut into `n` equal segments and the frame shown at each segment's
//! centre is taken: the last frame whose presentation time is at or before it, which is
//! right for variable frame rates too. `n` comes from a rate (frames per second of
//! video) bounded by `min_frames`/`max_frames`, or from an exact count.
//!
//! How the frames are reached is chosen per target from the stream's keyframe index
//! (FACTS.md: blind seeking can cost more than decoding everything): the decoder seeks
//! only when the keyframe before the next target lies beyond what it has already been
//! given, so frames in the same GOP are reached by decoding on, and GOPs without a
//! target are skipped. Frames far before a target that no other frame refers to are
//! not decoded at all (`skip_frame = nonref`), which saves work without changing which
//! frame is picked.

use std::path::Path;

use ffmpeg_next::{Discard, ffi, format, frame, packet, software::scaling};

use super::image_ops::{fit_within, pad_to, rotate};
use super::probe::{open_decoder, rotation_of};
use super::{MediaError, Probe, RgbImage, open_input};

/// How many frames to take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Frames per second of video, bounded by the settings' min and max.
    PerSecond(f64),
    /// Exactly this many frames (fewer if the clip has fewer).
    Count(usize),
}

/// The size of the frames handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// The displayed size.
    Native,
    /// Keep the aspect ratio and pad with black to exactly this size.
    Pad { width: u32, height: u32 },
    /// Stretch to exactly this size.
    Stretch { width: u32, height: u32 },
    /// Keep the aspect ratio; the longer side becomes this long.
    Fit(u32),
}

/// Validated sampling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleSettings {
    pub rate: Rate,
    pub min_frames: usize,
    pub max_frames: usize,
    pub resize: Resize,
}

impl Default for SampleSettings {
    /// METHOD.md's default: 2 frames per second, at least 4 and at most 32.
    fn default() -> Self {
        Self {
            rate: Rate::PerSecond(2.0),
            min_frames: 4,
            max_frames: 32,
            resize: Resize::Native,
        }
    }
}

/// One sampled frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Presentation time in seconds from the first frame.
    pub time_s: f64,
    /// The raw presentation timestamp, in the stream's time base.
    pub pts: i64,
    pub image: RgbImage,
}

/// The frames taken from one video, with what its probe measured.
#[derive(Debug, Clone)]
pub struct Sampled {
    pub probe: Probe,
    pub frames: Vec<Frame>,
}

/// Samples frames from a video; see the module documentation.
pub fn sample_frames(path: &Path, settings: &SampleSettings) -> Result<Sampled, MediaError> {
    let probe = super::probe(path)?;
    let mut input = open_input(path)?;
    let stream = input
        .streams()
        .best(ffmpeg_next::media::Type::Video)
        .ok_or_else(|| MediaError::NoVideoStream(path.to_owned()))?;
    let index = stream.index();
    let time_base = f64::from(stream.time_base());
    let rotation = rotation_of(&stream);
    let keyframes = keyframe_index(&stream);
    let start = stream_start(&stream);
    let mut decoder = open_decoder(path, &stream, true)?;

    let count = frame_count(&probe, settings);
    let span = probe.duration_s / time_base;
    let targets: Vec<i64> = (0..count)
        .map(|i| start + ((i as f64 + 0.5) * span / count as f64).round() as i64)
        .collect();
    // Non-reference frames this far before a target are never the frame shown at it.
    let guard = (0.5 / time_base).ceil() as i64;
    // The index holds decoding times, a few frames before presentation times when the
    // stream has B-frames: aim the seek that much earlier.
    let slack = (0.25 / time_base).ceil() as i64;
    let mut read_errors = 0u32;

    let mut out = Vec::with_capacity(count);
    let mut converter = Converter::new(settings.resize, rotation);
    let mut current = frame::Video::empty();
    let mut previous = frame::Video::empty();
    let mut have_previous = false;
    let mut next = 0usize;
    let mut max_sent: Option<i64> = None;
    let mut packet = packet::Packet::empty();
    let mut eof = false;

    while next < targets.len() {
        let target = targets[next];
        let position = max_sent.or(keyframes.first().copied());
        if !eof
            && let Some(kf) = keyframe_before(&keyframes, target - slack)
            && position.is_some_and(|p| kf > p)
        {
            seek(&mut input, index, kf, path)?;
            decoder.flush();
            have_previous = false;
            max_sent = Some(kf);
        }
        if !eof && !read_packet(&mut packet, &mut input, &mut read_errors) {
            eof = true;
        }
        if eof {
            let _ = decoder.send_eof();
        } else {
            if packet.stream() != index {
                continue;
            }
            let order = packet.dts().or(packet.pts());
            if let Some(order) = order {
                max_sent = Some(max_sent.map_or(order, |m| m.max(order)));
            }
            let far = packet.pts().is_some_and(|pts| pts < target - guard);
            decoder.skip_frame(if far {
                Discard::NonReference
            } else {
                Discard::Default
            });
            if decoder.send_packet(&packet).is_err() {
                continue;
            }
        }
        while decoder.receive_frame(&mut current).is_ok() {
            let Some(pts) = current.timestamp() else {
                continue;
            };
            while next < targets.len() && pts > targets[next] {
                let pick = if have_previous { &previous } else { &current };
                push_pick(&mut out, pick, start, time_base, &mut converter, path)?;
                next += 1;
            }
            std::mem::swap(&mut previous, &mut current);
            have_previous = true;
        }
        if eof {
            while next < targets.len() {
                if !have_previous {
                    return Err(MediaError::Undecodable {
                        path: path.to_owned(),
                        message: "the decoder produced no frame".into(),
                    });
                }
                push_pick(&mut out, &previous, start, time_base, &mut converter, path)?;
                next += 1;
            }
        }
    }
    Ok(Sampled { probe, frames: out })
}

/// Decodes every frame of a video and returns how many there were: the throughput
/// anchor of `make bench` and the check that a whole file decodes.
pub fn decode_all(path: &Path) -> Result<u64, MediaError> {
    let mut input = open_input(path)?;
    let stream = input
        .streams()
        .best(ffmpeg_next::media::Type::Video)
        .ok_or_else(|| MediaError::NoVideoStream(path.to_owned()))?;
    let index = stream.index();
    let mut decoder = open_decoder(path, &stream, true)?;
    let mut frame = frame::Video::empty();
    let mut packet = packet::Packet::empty();
    let mut frames = 0u64;
    let mut read_errors = 0u32;
    while read_packet(&mut packet, &mut input, &mut read_errors) {
        if packet.stream() != index || decoder.send_packet(&packet).is_err() {
            continue;
        }
        while decoder.receive_frame(&mut frame).is_ok() {
            frames += 1;
        }
    }
    let _ = decoder.send_eof();
    while decoder.receive_frame(&mut frame).is_ok() {
        frames += 1;
    }
    Ok(frames)
}

/// Reads the next packet; `false` at the end. A damaged packet in the middle is skipped
/// and reading goes on (FACTS.md), up to a bound so that a file that fails at every
/// read ends instead of spinning.
fn read_packet(
    packet: &mut packet::Packet,
    input: &mut format::context::Input,
    errors: &mut u32,
) -> bool {
    const MAX_READ_ERRORS: u32 = 64;
    loop {
        match packet.read(input) {
            Ok(()) => return true,
            Err(ffmpeg_next::Error::Eof) => return false,
            Err(_) if *errors < MAX_READ_ERRORS => *errors += 1,
            Err(_) => return false,
        }
    }
}

/// How many frames the settings ask of this clip.
fn frame_count(probe: &Probe, settings: &SampleSettings) -> usize {
    let wanted = match settings.rate {
        Rate::Count(n) => n,
        Rate::PerSecond(rate) => ((probe.duration_s * rate).round() as usize).clamp(
            settings.min_frames,
            settings.max_frames.max(settings.min_frames),
        ),
    };
    wanted.min(probe.frame_count as usize).max(1)
}

fn push_pick(
    out: &mut Vec<Frame>,
    pick: &frame::Video,
    start: i64,
    time_base: f64,
    converter: &mut Converter,
    path: &Path,
) -> Result<(), MediaError> {
    let pts = pick.timestamp().unwrap_or(start);
    // Two targets can land on one frame of a variable-rate clip: keep it once.
    if out.last().is_some_and(|last: &Frame| last.pts == pts) {
        return Ok(());
    }
    let image = converter.convert(pick, path)?;
    out.push(Frame {
        time_s: (pts - start) as f64 * time_base,
        pts,
        image,
    });
    Ok(())
}

/// Keyframe timestamps from the demuxer's index, in the stream's time base (empty when
/// the container has no index, in which case the decoder never seeks).
fn keyframe_index(stream: &format::stream::Stream) -> Vec<i64> {
    // SAFETY: the stream pointer is valid while `stream` lives; entries are read only.
    unsafe {
        let st = stream.as_ptr() as *mut ffi::AVStream;
        let n = ffi::avformat_index_get_entries_count(st);
        let mut keys = Vec::new();
        for i in 0..n {
            let entry = ffi::avformat_index_get_entry(st, i);
            if !entry.is_null() && (*entry).flags() & ffi::AVINDEX_KEYFRAME != 0 {
                keys.push((*entry).timestamp);
            }
        }
        keys.sort_unstable();
        keys
    }
}

/// The latest keyframe at or before `target`.
fn keyframe_before(keyframes: &[i64], target: i64) -> Option<i64> {
    let after = keyframes.partition_point(|&k| k <= target);
    after.checked_sub(1).map(|i| keyframes[i])
}

fn stream_start(stream: &format::stream::Stream) -> i64 {
    let start = stream.start_time();
    if start == ffi::AV_NOPTS_VALUE {
        0
    } else {
        start
    }
}

fn seek(
    input: &mut format::context::Input,
    index: usize,
    timestamp: i64,
    path: &Path,
) -> Result<(), MediaError> {
    // SAFETY: a valid, open input context and one of its stream indices.
    let ret = unsafe {
        ffi::av_seek_frame(
            input.as_mut_ptr(),
            index as i32,
            timestamp,
            ffi::AVSEEK_FLAG_BACKWARD,
        )
    };
    if ret < 0 {
        return Err(MediaError::InvalidData {
            path: path.to_owned(),
            message: format!("seeking failed: {}", ffmpeg_next::Error::from(ret)),
        });
    }
    Ok(())
}

/// What a scaler was made for: source format and size, target size.
type ScalerKey = (ffmpeg_next::format::Pixel, u32, u32, u32, u32);

/// Decoded frame → RGB image of the requested size, upright.
struct Converter {
    resize: Resize,
    rotation: u32,
    scaler: Option<(scaling::Context, ScalerKey)>,
    rgb: frame::Video,
}

impl Converter {
    fn new(resize: Resize, rotation: u32) -> Self {
        Self {
            resize,
            rotation,
            scaler: None,
            rgb: frame::Video::empty(),
        }
    }

    fn convert(&mut self, src: &frame::Video, path: &Path) -> Result<RgbImage, MediaError> {
        let (sw, sh) = (src.width(), src.height());
        let turned = self.rotation % 180 == 90;
        let (dw, dh) = if turned { (sh, sw) } else { (sw, sh) };
        // The size of the upright image before padding.
        let (uw, uh) = match self.resize {
            Resize::Native => (dw, dh),
            Resize::Stretch { width, height } => (width, height),
            Resize::Pad { width, height } => fit_within(dw, dh, width, height),
            Resize::Fit(side) => fit_within(dw, dh, side, side),
        };
        let (tw, th) = if turned { (uh, uw) } else { (uw, uh) };
        let key = (src.format(), sw, sh, tw, th);
        if self.scaler.as_ref().is_none_or(|(_, k)| *k != key) {
            let ctx = scaling::Context::get(
                src.format(),
                sw,
                sh,
                ffmpeg_next::format::Pixel::RGB24,
                tw,
                th,
                scaling::Flags::BILINEAR,
            )
            .map_err(|e| MediaError::Undecodable {
                path: path.to_owned(),
                message: format!("cannot convert frames to RGB: {e}"),
            })?;
            self.scaler = Some((ctx, key));
            self.rgb = frame::Video::empty();
        }
        let (scaler, _) = self
            .scaler
            .as_mut()
            .expect("scaler was just set; this is a bug");
        scaler
            .run(src, &mut self.rgb)
            .map_err(|e| MediaError::Undecodable {
                path: path.to_owned(),
                message: format!("cannot convert a frame to RGB: {e}"),
            })?;
        let stride = self.rgb.stride(0);
        let data = self.rgb.data(0);
        let row = tw as usize * 3;
        let mut pixels = Vec::with_capacity(row * th as usize);
        for y in 0..th as usize {
            pixels.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        let image = RgbImage::from_raw(tw, th, pixels).expect("buffer size matches; this is a bug");
        let image = rotate(image, self.rotation);
        Ok(match self.resize {
            Resize::Pad { width, height } => pad_to(&image, width, height),
            _ => image,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_before_picks_the_latest_at_or_before() {
        let keys = [0, 250, 500];
        assert_eq!(keyframe_before(&keys, 0), Some(0));
        assert_eq!(keyframe_before(&keys, 499), Some(250));
        assert_eq!(keyframe_before(&keys, 500), Some(500));
        assert_eq!(keyframe_before(&[], 10), None);
        assert_eq!(keyframe_before(&[5], 1), None);
    }
}
