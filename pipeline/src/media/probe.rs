//! Probing: what a video is (duration, rate, size, codec, rotation) and whether it is
//! whole and decodable.
//!
//! One demuxing pass reads every packet of the video stream without decoding it (cheap,
//! about the cost of reading the file), which counts the frames and keyframes, measures
//! the duration from the packets themselves (container durations of truncated files
//! can be wrong, FACTS.md) and notices a file that ends before its index says. The
//! first packets are also decoded, so that a file whose codec cannot be decoded fails
//! here and not in the middle of a run.

use std::path::Path;
use std::time::Duration;

use ffmpeg_next::{codec, ffi, format, frame, media, packet};
use serde::{Deserialize, Serialize};

use super::{MediaError, PROBE_TIME_LIMIT, next_packet, open_input, timed_out};

/// What a video is, as measured from its packets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// Seconds from the first frame's start to the last frame's end.
    pub duration_s: f64,
    /// Average frames per second.
    pub fps: f64,
    /// Width as displayed, after rotation metadata.
    pub width: u32,
    /// Height as displayed, after rotation metadata.
    pub height: u32,
    /// Clockwise rotation in degrees (0, 90, 180 or 270) that displays the frames.
    pub rotation: u32,
    /// FFmpeg's name for the video codec.
    pub codec: String,
    /// Video packets (frames) in the stream.
    pub frame_count: u64,
    /// Keyframes among them.
    pub keyframe_count: u64,
    /// Whether the file also has an audio stream.
    pub has_audio: bool,
}

/// Probes a video file, within [`PROBE_TIME_LIMIT`]. See the module documentation for
/// what is checked.
pub fn probe(path: &Path) -> Result<Probe, MediaError> {
    probe_within(path, PROBE_TIME_LIMIT)
}

fn probe_within(path: &Path, limit: Duration) -> Result<Probe, MediaError> {
    let mut input = open_input(path, Some(limit))?;
    let has_audio = input.streams().best(media::Type::Audio).is_some();
    let stream = input
        .streams()
        .best(media::Type::Video)
        .ok_or_else(|| MediaError::NoVideoStream(path.to_owned()))?;
    let index = stream.index();
    let time_base = f64::from(stream.time_base());
    let declared_frames = stream.frames();
    let rotation = rotation_of(&stream);
    let avg_rate = rate_value(stream.avg_frame_rate()).or_else(|| rate_value(stream.rate()));
    let mut decoder = open_decoder(path, &stream, 1)?;
    let codec_name = decoder.id().name().to_owned();
    let (coded_w, coded_h) = (decoder.width(), decoder.height());

    let mut packets = 0u64;
    let mut keyframes = 0u64;
    let mut first_pts: Option<i64> = None;
    let mut end_pts: Option<i64> = None;
    let mut decoded_one = false;
    let mut decode_error: Option<String> = None;
    let mut frame = frame::Video::empty();
    let mut packet = packet::Packet::empty();
    let read_error = loop {
        match next_packet(&mut input, &mut packet) {
            Ok(true) => {}
            Ok(false) => break None,
            Err(ffmpeg_next::Error::Exit) => return Err(timed_out(path, limit)),
            Err(e) => break Some(e.to_string()),
        }
        if packet.stream() != index {
            continue;
        }
        packets += 1;
        if packet.is_key() {
            keyframes += 1;
        }
        if let Some(pts) = packet.pts() {
            first_pts = Some(first_pts.map_or(pts, |f| f.min(pts)));
            let end = pts + packet.duration().max(0);
            end_pts = Some(end_pts.map_or(end, |e| e.max(end)));
        }
        if !decoded_one {
            match decoder.send_packet(&packet) {
                Ok(()) => decoded_one = decoder.receive_frame(&mut frame).is_ok(),
                Err(e) => decode_error = Some(e.to_string()),
            }
        }
    };
    if !decoded_one {
        let _ = decoder.send_eof();
        decoded_one = decoder.receive_frame(&mut frame).is_ok();
    }

    if packets == 0 {
        return Err(MediaError::Truncated {
            path: path.to_owned(),
            message: read_error.unwrap_or_else(|| "the video stream has no packets".into()),
        });
    }
    if let Some(message) = read_error {
        return Err(MediaError::Truncated {
            path: path.to_owned(),
            message: format!("reading stopped after {packets} frames: {message}"),
        });
    }
    if declared_frames > 0 && (packets as i64) < declared_frames {
        return Err(MediaError::Truncated {
            path: path.to_owned(),
            message: format!(
                "only {packets} of the {declared_frames} frames its index lists are present"
            ),
        });
    }
    if !decoded_one {
        return Err(MediaError::Undecodable {
            path: path.to_owned(),
            message: decode_error.unwrap_or_else(|| "the decoder produced no frame".into()),
        });
    }

    let duration_s = match (first_pts, end_pts) {
        (Some(first), Some(end)) if end > first => (end - first) as f64 * time_base,
        _ => {
            let container = input.duration();
            if container > 0 {
                container as f64 / f64::from(ffi::AV_TIME_BASE)
            } else {
                0.0
            }
        }
    };
    let fps = avg_rate.unwrap_or(if duration_s > 0.0 {
        packets as f64 / duration_s
    } else {
        0.0
    });
    let (width, height) = if rotation % 180 == 90 {
        (coded_h, coded_w)
    } else {
        (coded_w, coded_h)
    };
    Ok(Probe {
        duration_s,
        fps,
        width,
        height,
        rotation,
        codec: codec_name,
        frame_count: packets,
        keyframe_count: keyframes,
        has_audio,
    })
}

/// A file opened for decoding its best video stream from the start.
pub(super) struct VideoInput {
    pub input: format::context::Input,
    /// The stream's index among the file's streams.
    pub index: usize,
    /// The stream's time base, in seconds.
    pub time_base: f64,
    /// The frames the stream's index lists (0 when it lists none).
    pub declared_frames: u64,
    pub decoder: ffmpeg_next::decoder::Video,
}

/// Opens `path` (no time limit) and the decoder of its best video stream with `threads`
/// frame threads (0: one per core).
pub(super) fn open_video(path: &Path, threads: usize) -> Result<VideoInput, MediaError> {
    let input = open_input(path, None)?;
    let stream = input
        .streams()
        .best(media::Type::Video)
        .ok_or_else(|| MediaError::NoVideoStream(path.to_owned()))?;
    let (index, time_base) = (stream.index(), f64::from(stream.time_base()));
    let declared_frames = stream.frames().max(0) as u64;
    let decoder = open_decoder(path, &stream, threads)?;
    Ok(VideoInput {
        input,
        index,
        time_base,
        declared_frames,
        decoder,
    })
}

/// Opens the decoder of a stream with `threads` frame threads (0: one per core; frame
/// threading must be set before the decoder opens, FACTS.md).
pub(super) fn open_decoder(
    path: &Path,
    stream: &format::stream::Stream,
    threads: usize,
) -> Result<ffmpeg_next::decoder::Video, MediaError> {
    let params = stream.parameters();
    let id = params.id();
    let unsupported = || MediaError::UnsupportedCodec {
        path: path.to_owned(),
        codec: codec_label(stream),
    };
    if id == codec::Id::None || ffmpeg_next::decoder::find(id).is_none() {
        return Err(unsupported());
    }
    let mut context =
        codec::context::Context::from_parameters(params).map_err(|e| MediaError::InvalidData {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if threads != 1 {
        context.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: threads,
            ..Default::default()
        });
    }
    context
        .decoder()
        .video()
        .map_err(|e| MediaError::Undecodable {
            path: path.to_owned(),
            message: format!("the decoder did not open: {e}"),
        })
}

/// The codec's name, or the four-character tag of an unknown one.
fn codec_label(stream: &format::stream::Stream) -> String {
    let params = stream.parameters();
    if params.id() != codec::Id::None {
        return params.id().name().to_owned();
    }
    // SAFETY: codecpar is valid for the stream's lifetime.
    let tag = unsafe { (*params.as_ptr()).codec_tag };
    let bytes = tag.to_le_bytes();
    if bytes.iter().all(|b| b.is_ascii_graphic()) {
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        format!("0x{tag:08x}")
    }
}

fn rate_value(rate: ffmpeg_next::Rational) -> Option<f64> {
    (rate.numerator() > 0 && rate.denominator() > 0).then(|| f64::from(rate))
}

/// Clockwise degrees (0, 90, 180, 270) from the stream's display matrix.
pub(super) fn rotation_of(stream: &format::stream::Stream) -> u32 {
    for side in stream.side_data() {
        if side.kind() != packet::side_data::Type::DisplayMatrix || side.data().len() < 36 {
            continue;
        }
        // SAFETY: a display matrix is nine 32-bit integers; the length was checked.
        let ccw = unsafe { ffi::av_display_rotation_get(side.data().as_ptr().cast()) };
        if ccw.is_nan() {
            return 0;
        }
        let clockwise = (-ccw).rem_euclid(360.0);
        return ((clockwise / 90.0).round() as u32 % 4) * 90;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Mp4Writer, RgbImage, WriterSettings};

    #[test]
    fn probing_stops_at_its_time_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.mp4");
        let mut writer = Mp4Writer::create(&path, WriterSettings::new(64, 48, 10)).unwrap();
        for _ in 0..10 {
            writer.write(&RgbImage::new(64, 48)).unwrap();
        }
        writer.finish().unwrap();
        assert_eq!(probe(&path).unwrap().frame_count, 10);
        let error = probe_within(&path, Duration::ZERO).unwrap_err();
        assert_eq!(error.kind(), "timeout", "{error}");
    }
}
