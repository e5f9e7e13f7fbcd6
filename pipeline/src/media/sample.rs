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
use super::probe::{VideoInput, open_decoder, open_video, rotation_of};
use super::{MediaError, RgbImage, next_packet, open_input};

/// How many frames to take.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    /// Frames per second of video, bounded by the settings' min and max.
    PerSecond(f64),
    /// Exactly this many frames (fewer if the clip has fewer).
    Count(usize),
}

/// The size of the frames handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
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
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
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

/// The frames taken from one video.
#[derive(Debug, Clone)]
pub struct Sampled {
    /// The duration the targets were spread over, in seconds.
    pub duration_s: f64,
    pub frames: Vec<Frame>,
}

/// Samples frames from a video; see the module documentation.
///
/// `threads` bounds the decoding threads (0: one per core). Targets are grouped by
/// the keyframe they are reached from; with several groups, each thread decodes whole
/// groups on its own (a GOP is the natural unit of parallel H.264 decoding), otherwise
/// one decoder uses frame threading.
pub fn sample_frames(
    path: &Path,
    settings: &SampleSettings,
    threads: usize,
) -> Result<Sampled, MediaError> {
    sample_window(path, settings, threads, None)
}

/// [`sample_frames`] over the part of the video from `window.0` to `window.1` seconds
/// (a long video's segment; the whole video when `None`): the frames are spread over
/// the window, with times from the video's start, and the decoder seeks to the window.
pub fn sample_window(
    path: &Path,
    settings: &SampleSettings,
    threads: usize,
    window: Option<(f64, f64)>,
) -> Result<Sampled, MediaError> {
    let mut layout = Layout::read(path)?;
    let (from_s, to_s) = window.unwrap_or((0.0, layout.duration_s));
    let to_s = to_s.min(layout.duration_s).max(from_s);
    if window.is_some() && layout.duration_s > 0.0 {
        let share = (to_s - from_s) / layout.duration_s;
        layout.frame_count = ((layout.frame_count as f64 * share).round() as u64).max(1);
        layout.duration_s = to_s - from_s;
    }
    let count = frame_count(&layout, settings);
    let span = layout.duration_s / layout.time_base;
    let first = layout.start + (from_s / layout.time_base).round() as i64;
    let targets: Vec<i64> = (0..count)
        .map(|i| first + ((i as f64 + 0.5) * span / count as f64).round() as i64)
        .collect();
    let groups = group_by_keyframe(&layout, &targets);
    let threads = if threads == 0 {
        crate::process::cores()
    } else {
        threads
    };
    let workers = threads.min(groups.len()).max(1);
    let decoder_threads = if workers == 1 { threads } else { 1 };

    let next_group = std::sync::atomic::AtomicUsize::new(0);
    let work = || -> Result<Vec<(usize, Frame)>, MediaError> {
        let mut walker = Walker::open(path, &layout, decoder_threads, settings.resize)?;
        let mut picks = Vec::new();
        loop {
            let g = next_group.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(group) = groups.get(g) else {
                return Ok(picks);
            };
            for &t in group {
                picks.push((t, walker.frame_at(targets[t])?));
            }
        }
    };
    let mut picks = if workers == 1 {
        work()?
    } else {
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .expect("a sampling thread does not panic; this is a bug")
                })
                .collect()
        });
        let mut all = Vec::with_capacity(targets.len());
        for result in results {
            all.extend(result?);
        }
        all
    };
    picks.sort_by_key(|(t, _)| *t);
    let mut frames: Vec<Frame> = Vec::with_capacity(picks.len());
    for (_, frame) in picks {
        // Two targets can land on one frame of a variable-rate clip: keep it once.
        if frames.last().is_none_or(|last| last.pts != frame.pts) {
            frames.push(frame);
        }
    }
    Ok(Sampled {
        duration_s: layout.duration_s,
        frames,
    })
}

/// What sampling needs to know of a video before decoding it.
struct Layout {
    index: usize,
    time_base: f64,
    /// First presentation timestamp.
    start: i64,
    duration_s: f64,
    frame_count: u64,
    rotation: u32,
    /// Keyframe timestamps from the demuxer's index (empty without an index).
    keyframes: Vec<i64>,
}

impl Layout {
    /// Reads the container's header; only when it states no duration or frame count is
    /// the whole file probed.
    fn read(path: &Path) -> Result<Self, MediaError> {
        let input = open_input(path, None)?;
        let stream = input
            .streams()
            .best(ffmpeg_next::media::Type::Video)
            .ok_or_else(|| MediaError::NoVideoStream(path.to_owned()))?;
        let time_base = f64::from(stream.time_base());
        let stated_duration = if stream.duration() > 0 {
            stream.duration() as f64 * time_base
        } else {
            0.0
        };
        let (duration_s, frame_count) = if stated_duration > 0.0 && stream.frames() > 0 {
            (stated_duration, stream.frames() as u64)
        } else {
            let probe = super::probe(path)?;
            (probe.duration_s, probe.frame_count)
        };
        Ok(Self {
            index: stream.index(),
            time_base,
            start: stream_start(&stream),
            duration_s,
            frame_count,
            rotation: rotation_of(&stream),
            keyframes: keyframe_index(&stream),
        })
    }

    /// The index holds decoding times, a few frames before presentation times when
    /// the stream has B-frames: a target is reached from a keyframe at least this much
    /// before it.
    fn slack(&self) -> i64 {
        (0.25 / self.time_base).ceil() as i64
    }

    fn seek_keyframe(&self, target: i64) -> Option<i64> {
        keyframe_before(&self.keyframes, target - self.slack())
    }
}

/// Indices of targets grouped by the keyframe they are reached from, in order.
fn group_by_keyframe(layout: &Layout, targets: &[i64]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut last_key = None;
    for (i, &target) in targets.iter().enumerate() {
        let key = layout.seek_keyframe(target);
        match groups.last_mut() {
            Some(group) if key == last_key => group.push(i),
            _ => groups.push(vec![i]),
        }
        last_key = key;
    }
    groups
}

/// One demuxer and decoder walking forward through a video, seeking ahead when that
/// skips work, and handing back the frame shown at each target asked for (targets
/// must come in increasing order).
struct Walker<'a> {
    path: &'a Path,
    layout: &'a Layout,
    input: format::context::Input,
    decoder: ffmpeg_next::decoder::Video,
    converter: Converter,
    packet: packet::Packet,
    /// The last frame at or before the latest target.
    previous: Option<frame::Video>,
    /// A decoded frame after the latest target, kept for the next one.
    lookahead: Option<frame::Video>,
    /// Latest decoding timestamp given to the decoder.
    max_sent: Option<i64>,
    eof: bool,
    read_errors: u32,
}

impl<'a> Walker<'a> {
    fn open(
        path: &'a Path,
        layout: &'a Layout,
        threads: usize,
        resize: Resize,
    ) -> Result<Self, MediaError> {
        let input = open_input(path, None)?;
        let stream = input
            .stream(layout.index)
            .expect("the stream was found before; this is a bug");
        let decoder = open_decoder(path, &stream, threads)?;
        Ok(Self {
            path,
            layout,
            input,
            decoder,
            converter: Converter::new(resize, layout.rotation),
            packet: packet::Packet::empty(),
            previous: None,
            lookahead: None,
            max_sent: None,
            eof: false,
            read_errors: 0,
        })
    }

    /// The frame shown at `target`: the last one whose presentation time is at or
    /// before it (the first frame for a target before it).
    fn frame_at(&mut self, target: i64) -> Result<Frame, MediaError> {
        self.seek_if_ahead(target)?;
        loop {
            let frame = match self.lookahead.take() {
                Some(frame) => frame,
                None => match self.next_frame(target)? {
                    Some(frame) => frame,
                    None => {
                        let last =
                            self.previous
                                .as_ref()
                                .ok_or_else(|| MediaError::Undecodable {
                                    path: self.path.to_owned(),
                                    message: "the decoder produced no frame".into(),
                                })?;
                        return self.converter.frame(last, self.layout, self.path);
                    }
                },
            };
            let pts = frame.timestamp().unwrap_or(i64::MIN);
            if pts > target {
                let pick = self.previous.as_ref().unwrap_or(&frame);
                let converted = self.converter.frame(pick, self.layout, self.path);
                self.lookahead = Some(frame);
                return converted;
            }
            self.previous = Some(frame);
        }
    }

    /// Seeks when the keyframe before `target` lies beyond what the decoder was given.
    fn seek_if_ahead(&mut self, target: i64) -> Result<(), MediaError> {
        let position = self.max_sent.or(self.layout.keyframes.first().copied());
        let Some(kf) = self.layout.seek_keyframe(target) else {
            return Ok(());
        };
        if position.is_none_or(|p| kf <= p) {
            return Ok(());
        }
        let point = seek_point(&self.layout.keyframes, kf);
        // SAFETY: a valid, open input context and one of its stream indices.
        let ret = unsafe {
            ffi::av_seek_frame(
                self.input.as_mut_ptr(),
                self.layout.index as i32,
                point,
                ffi::AVSEEK_FLAG_BACKWARD,
            )
        };
        if ret < 0 {
            return Err(MediaError::InvalidData {
                path: self.path.to_owned(),
                message: format!("seeking failed: {}", ffmpeg_next::Error::from(ret)),
            });
        }
        self.decoder.flush();
        self.previous = None;
        self.lookahead = None;
        self.max_sent = Some(kf);
        self.eof = false;
        Ok(())
    }

    /// The next decoded frame, or `None` at the end. Non-reference frames far before
    /// `target` are not decoded: they are never shown at it and no frame needs them.
    fn next_frame(&mut self, target: i64) -> Result<Option<frame::Video>, MediaError> {
        let guard = (0.5 / self.layout.time_base).ceil() as i64;
        let mut frame = frame::Video::empty();
        loop {
            if self.decoder.receive_frame(&mut frame).is_ok() {
                return Ok(Some(frame));
            }
            if self.eof {
                return Ok(None);
            }
            if !read_packet(&mut self.packet, &mut self.input, &mut self.read_errors) {
                self.eof = true;
                let _ = self.decoder.send_eof();
                continue;
            }
            if self.packet.stream() != self.layout.index {
                continue;
            }
            if let Some(order) = self.packet.dts().or(self.packet.pts()) {
                self.max_sent = Some(self.max_sent.map_or(order, |m| m.max(order)));
            }
            let far = self.packet.pts().is_some_and(|pts| pts < target - guard);
            self.decoder.skip_frame(if far {
                Discard::NonReference
            } else {
                Discard::Default
            });
            // A packet the decoder refuses is skipped; the frames after it still come.
            let _ = self.decoder.send_packet(&self.packet);
        }
    }
}

/// Decodes every frame of a video and returns how many there were: the throughput
/// anchor of `make bench` and the check that a whole file decodes.
pub fn decode_all(path: &Path) -> Result<u64, MediaError> {
    let VideoInput {
        mut input,
        index,
        mut decoder,
        ..
    } = open_video(path, 0)?;
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
        match next_packet(input, packet) {
            Ok(true) => return true,
            Ok(false) => return false,
            Err(_) if *errors < MAX_READ_ERRORS => *errors += 1,
            Err(_) => return false,
        }
    }
}

/// How many frames the settings ask of this clip.
fn frame_count(layout: &Layout, settings: &SampleSettings) -> usize {
    let wanted = match settings.rate {
        Rate::Count(n) => n,
        Rate::PerSecond(rate) => ((layout.duration_s * rate).round() as usize).clamp(
            settings.min_frames,
            settings.max_frames.max(settings.min_frames),
        ),
    };
    wanted.min(layout.frame_count as usize).max(1)
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

/// Where to seek to land on keyframe `kf`: halfway to the next keyframe. Demuxers
/// search backwards from the point in their own timeline (presentation time for MP4),
/// which can lie a few frames after the index's decoding time: aiming exactly at the
/// index entry would land on the keyframe before.
fn seek_point(keyframes: &[i64], kf: i64) -> i64 {
    let next = keyframes.partition_point(|&k| k <= kf);
    match keyframes.get(next) {
        Some(&after) => kf + (after - kf) / 2,
        None => kf.saturating_add(1),
    }
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
    /// A decoded frame as a sampled [`Frame`] with its time.
    fn frame(
        &mut self,
        pick: &frame::Video,
        layout: &Layout,
        path: &Path,
    ) -> Result<Frame, MediaError> {
        let pts = pick.timestamp().unwrap_or(layout.start);
        let image = self.convert(pick, path)?;
        Ok(Frame {
            time_s: (pts - layout.start) as f64 * layout.time_base,
            pts,
            image,
        })
    }

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
