//! Image operations on decoded frames: rotation, padding, storyboards and encoding.

use std::io::Cursor;

use image::codecs::png::PngEncoder;
use image::{ImageEncoder, Rgb, RgbImage, imageops};

use super::MediaError;

/// An encoded image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    /// JPEG with a quality from 1 to 100.
    Jpeg(u8),
    Png,
}

impl ImageFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg(_) => "jpg",
            Self::Png => "png",
        }
    }
}

/// Rotates an image clockwise by 0, 90, 180 or 270 degrees.
pub fn rotate(image: RgbImage, clockwise: u32) -> RgbImage {
    match clockwise % 360 {
        90 => imageops::rotate90(&image),
        180 => imageops::rotate180(&image),
        270 => imageops::rotate270(&image),
        _ => image,
    }
}

/// Centres an image on a black canvas of exactly `width`×`height`.
pub fn pad_to(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    if image.dimensions() == (width, height) {
        return image.clone();
    }
    let mut canvas = RgbImage::from_pixel(width, height, Rgb([0, 0, 0]));
    let x = (width.saturating_sub(image.width()) / 2) as i64;
    let y = (height.saturating_sub(image.height()) / 2) as i64;
    imageops::replace(&mut canvas, image, x, y);
    canvas
}

/// Tiles frames left to right, top to bottom, in a grid of `columns` columns (rows as
/// needed), each tile the size of the first frame; a frame of another size is padded
/// into its tile. Empty tiles stay black.
pub fn storyboard(frames: &[RgbImage], columns: u32) -> Result<RgbImage, MediaError> {
    let first = frames.first().ok_or_else(|| {
        MediaError::InvalidRequest("a storyboard needs at least one frame".into())
    })?;
    if columns == 0 {
        return Err(MediaError::InvalidRequest(
            "a storyboard needs at least one column".into(),
        ));
    }
    let (tw, th) = first.dimensions();
    let rows = (frames.len() as u32).div_ceil(columns);
    let mut board = RgbImage::from_pixel(tw * columns, th * rows, Rgb([0, 0, 0]));
    for (i, frame) in frames.iter().enumerate() {
        let (col, row) = (i as u32 % columns, i as u32 / columns);
        let tile = if frame.dimensions() == (tw, th) {
            std::borrow::Cow::Borrowed(frame)
        } else {
            let (w, h) = fit_within(frame.width(), frame.height(), tw, th);
            let resized = imageops::resize(frame, w, h, imageops::FilterType::Triangle);
            std::borrow::Cow::Owned(pad_to(&resized, tw, th))
        };
        imageops::replace(
            &mut board,
            tile.as_ref(),
            (col * tw) as i64,
            (row * th) as i64,
        );
    }
    Ok(board)
}

/// The largest size with the aspect ratio of `w`×`h` that fits `max_w`×`max_h`.
pub(crate) fn fit_within(w: u32, h: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    let scale = (max_w as f64 / w as f64).min(max_h as f64 / h as f64);
    let w = ((w as f64 * scale).round() as u32).clamp(1, max_w);
    let h = ((h as f64 * scale).round() as u32).clamp(1, max_h);
    (w, h)
}

/// Encodes an image as JPEG or PNG.
pub fn encode_image(image: &RgbImage, format: ImageFormat) -> Result<Vec<u8>, MediaError> {
    let mut out = Cursor::new(Vec::new());
    let (w, h) = image.dimensions();
    let result = match format {
        ImageFormat::Jpeg(quality) => {
            let (Ok(w), Ok(h)) = (u16::try_from(w), u16::try_from(h)) else {
                return Err(MediaError::InvalidRequest(format!(
                    "cannot encode a {w}x{h} image as JPEG: at most 65535 pixels a side"
                )));
            };
            jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100))
                .encode(image.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
                .map_err(|e| e.to_string())
        }
        ImageFormat::Png => PngEncoder::new(&mut out)
            .write_image(image.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .map_err(|e| e.to_string()),
    };
    result.map_err(|e| MediaError::InvalidRequest(format!("cannot encode an image: {e}")))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storyboard_places_tiles_in_reading_order() {
        let tile = |v: u8| RgbImage::from_pixel(4, 3, Rgb([v, v, v]));
        let board = storyboard(&[tile(10), tile(20), tile(30)], 2).unwrap();
        assert_eq!(board.dimensions(), (8, 6));
        assert_eq!(board.get_pixel(0, 0).0, [10; 3]);
        assert_eq!(board.get_pixel(5, 1).0, [20; 3]);
        assert_eq!(board.get_pixel(1, 4).0, [30; 3]);
        assert_eq!(board.get_pixel(6, 4).0, [0; 3]);
    }

    #[test]
    fn fit_keeps_the_aspect_ratio() {
        assert_eq!(fit_within(1280, 720, 384, 384), (384, 216));
        assert_eq!(fit_within(321, 241, 100, 100), (100, 75));
        assert_eq!(fit_within(1, 1000, 10, 10), (1, 10));
    }

    #[test]
    fn rotation_turns_clockwise() {
        let mut img = RgbImage::new(2, 1);
        img.put_pixel(0, 0, Rgb([255, 0, 0]));
        let turned = rotate(img, 90);
        assert_eq!(turned.dimensions(), (1, 2));
        assert_eq!(turned.get_pixel(0, 0).0, [255, 0, 0]);
    }

    #[test]
    fn encoded_images_decode_to_the_same_size() {
        let img = RgbImage::from_pixel(7, 5, Rgb([1, 2, 3]));
        for format in [ImageFormat::Jpeg(90), ImageFormat::Png] {
            let bytes = encode_image(&img, format).unwrap();
            let back = image::load_from_memory(&bytes).unwrap();
            assert_eq!((back.width(), back.height()), (7, 5));
        }
    }
}
