//! Writing H.264 MP4 clips from RGB frames (the synthetic world and test material).
//!
//! The output is reproducible: one encoder thread, no macroblock tree (it reads memory
//! x264 never wrote), bit-exact flags on the encoder and the muxer, and no creation time,
//! so the same frames give the same bytes in any process.

use std::path::{Path, PathBuf};

use ffmpeg_next::{Dictionary, Packet, Rational, codec, encoder, format, frame, software::scaling};

use super::{MediaError, RgbImage, init};

/// Settings of an H.264 clip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterSettings {
    pub width: u32,
    pub height: u32,
    /// Frames per second (constant).
    pub fps: u32,
    /// x264's constant rate factor (lower is better quality).
    pub crf: u8,
    /// Frames between keyframes.
    pub gop: u32,
}

impl WriterSettings {
    pub fn new(width: u32, height: u32, fps: u32) -> Self {
        Self {
            width,
            height,
            fps,
            crf: 23,
            gop: fps * 2,
        }
    }
}

/// An H.264 MP4 file being written frame by frame; [`Mp4Writer::finish`] completes it.
pub struct Mp4Writer {
    path: PathBuf,
    output: format::context::Output,
    encoder: encoder::Video,
    scaler: scaling::Context,
    yuv: frame::Video,
    rgb: frame::Video,
    settings: WriterSettings,
    next_pts: i64,
    stream_time_base: Rational,
}

impl Mp4Writer {
    /// Creates the file and opens the encoder. Sizes must be even (4:2:0 chroma).
    pub fn create(path: &Path, settings: WriterSettings) -> Result<Self, MediaError> {
        init();
        let fail = |message: String| MediaError::Write {
            path: path.to_owned(),
            message,
        };
        let WriterSettings {
            width, height, fps, ..
        } = settings;
        if width == 0 || height == 0 || width % 2 == 1 || height % 2 == 1 || fps == 0 {
            return Err(MediaError::InvalidRequest(format!(
                "an H.264 clip needs an even, non-zero size and a rate; got {width}x{height} at {fps} fps"
            )));
        }
        let mut output = format::output(path).map_err(|e| fail(e.to_string()))?;
        let codec = encoder::find_by_name("libx264")
            .ok_or_else(|| fail("this FFmpeg has no libx264 encoder".into()))?;
        let global_header = output
            .format()
            .flags()
            .contains(format::Flags::GLOBAL_HEADER);
        let mut stream = output.add_stream(codec).map_err(|e| fail(e.to_string()))?;
        let mut context = codec::context::Context::new_with_codec(codec);
        context.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Slice,
            count: 1,
            ..Default::default()
        });
        let mut video = context.encoder().video().map_err(|e| fail(e.to_string()))?;
        let time_base = Rational::new(1, fps as i32);
        video.set_width(width);
        video.set_height(height);
        video.set_format(format::Pixel::YUV420P);
        video.set_time_base(time_base);
        video.set_frame_rate(Some(Rational::new(fps as i32, 1)));
        video.set_gop(settings.gop);
        let mut flags = codec::Flags::BITEXACT;
        if global_header {
            flags |= codec::Flags::GLOBAL_HEADER;
        }
        video.set_flags(flags);
        let mut options = Dictionary::new();
        options.set("preset", "veryfast");
        options.set("crf", &settings.crf.to_string());
        options.set("threads", "1");
        // x264's macroblock tree reads memory it never wrote (the lookahead's lowres
        // planes): with it, the bytes of a clip depended on what malloc handed out, so on
        // what the process had done before (seen with `MALLOC_PERTURB_`: four values, three
        // different files). Without it they do not; the pictures are CRF-coded as before.
        options.set("mbtree", "0");
        let encoder = video.open_with(options).map_err(|e| fail(e.to_string()))?;
        stream.set_parameters(&encoder);
        stream.set_time_base(time_base);
        let mut header = Dictionary::new();
        header.set("fflags", "+bitexact");
        output
            .write_header_with(header)
            .map_err(|e| fail(e.to_string()))?;
        let stream_time_base = output
            .stream(0)
            .expect("the stream was just added; this is a bug")
            .time_base();
        let scaler = scaling::Context::get(
            format::Pixel::RGB24,
            width,
            height,
            format::Pixel::YUV420P,
            width,
            height,
            scaling::Flags::BILINEAR | scaling::Flags::ACCURATE_RND | scaling::Flags::BITEXACT,
        )
        .map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            path: path.to_owned(),
            output,
            encoder,
            scaler,
            yuv: frame::Video::new(format::Pixel::YUV420P, width, height),
            rgb: frame::Video::new(format::Pixel::RGB24, width, height),
            settings,
            next_pts: 0,
            stream_time_base,
        })
    }

    /// Appends one frame; it must have the clip's size.
    pub fn write(&mut self, image: &RgbImage) -> Result<(), MediaError> {
        if image.dimensions() != (self.settings.width, self.settings.height) {
            return Err(MediaError::InvalidRequest(format!(
                "frame of {}x{} written to a {}x{} clip",
                image.width(),
                image.height(),
                self.settings.width,
                self.settings.height
            )));
        }
        let row = self.settings.width as usize * 3;
        let stride = self.rgb.stride(0);
        let data = self.rgb.data_mut(0);
        for (y, src) in image.as_raw().chunks_exact(row).enumerate() {
            data[y * stride..y * stride + row].copy_from_slice(src);
        }
        self.scaler
            .run(&self.rgb, &mut self.yuv)
            .map_err(|e| self.fail(e))?;
        self.yuv.set_pts(Some(self.next_pts));
        self.next_pts += 1;
        self.encoder
            .send_frame(&self.yuv)
            .map_err(|e| self.fail(e))?;
        self.drain()
    }

    /// Flushes the encoder and writes the trailer.
    pub fn finish(mut self) -> Result<(), MediaError> {
        self.encoder.send_eof().map_err(|e| self.fail(e))?;
        self.drain()?;
        self.output.write_trailer().map_err(|e| self.fail(e))
    }

    fn drain(&mut self) -> Result<(), MediaError> {
        let mut packet = Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            // Every frame lasts one tick of the encoder's time base; without it the
            // muxer gives the last frame no duration and the clip reads one frame short.
            packet.set_duration(1);
            packet.rescale_ts(
                Rational::new(1, self.settings.fps as i32),
                self.stream_time_base,
            );
            packet
                .write_interleaved(&mut self.output)
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    fn fail(&self, e: ffmpeg_next::Error) -> MediaError {
        MediaError::Write {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}
