//! The rasteriser: draws one frame of a [`Scene`] into an RGB image.
//!
//! Plain fills with integer tests at pixel centres, no anti-aliasing and no floats, so
//! the same scene gives the same pixels on every machine. The order is background, sign,
//! then the objects in the scene's order (later ones in front). Everything is clipped
//! to the image, so a hand-made scene that strays outside cannot panic.

use wolf_pipeline::media::RgbImage;

use super::font;
use super::scene::{Object, Rect, SIGN_SCALE, Scene, Shape, Sign};

const BLACK: [u8; 3] = [0, 0, 0];
const WHITE: [u8; 3] = [255, 255, 255];

/// Frame `frame` of `scene` as a new image.
pub fn render_frame(scene: &Scene, frame: usize) -> RgbImage {
    let mut image = RgbImage::new(scene.width, scene.height);
    draw_frame(&mut image, scene, frame);
    image
}

/// Draws frame `frame` of `scene` over the whole of `image` (reused between frames to
/// spare an allocation per frame).
pub fn draw_frame(image: &mut RgbImage, scene: &Scene, frame: usize) {
    let mut canvas = Canvas::new(image);
    canvas.fill(scene.background.rgb());
    if let Some(sign) = &scene.sign {
        canvas.sign(sign);
    }
    for object in &scene.objects {
        canvas.object(object, frame);
    }
}

/// The image's bytes with its size, for drawing.
struct Canvas<'a> {
    pixels: &'a mut [u8],
    width: i32,
    height: i32,
}

impl<'a> Canvas<'a> {
    fn new(image: &'a mut RgbImage) -> Self {
        let (width, height) = (image.width() as i32, image.height() as i32);
        let pixels: &mut [u8] = image;
        Canvas {
            pixels,
            width,
            height,
        }
    }

    fn fill(&mut self, rgb: [u8; 3]) {
        for pixel in self.pixels.chunks_exact_mut(3) {
            pixel.copy_from_slice(&rgb);
        }
    }

    /// Fills the pixels of `rect` for which `inside(dx, dy)` holds, `(dx, dy)` being
    /// the pixel's offset from the rectangle's corner.
    fn fill_where(&mut self, rect: Rect, rgb: [u8; 3], inside: impl Fn(i32, i32) -> bool) {
        let x0 = rect.x.max(0);
        let x1 = (rect.x + rect.w).min(self.width);
        let y0 = rect.y.max(0);
        let y1 = (rect.y + rect.h).min(self.height);
        for y in y0..y1 {
            let row = (y * self.width) as usize * 3;
            for x in x0..x1 {
                if inside(x - rect.x, y - rect.y) {
                    let at = row + x as usize * 3;
                    self.pixels[at..at + 3].copy_from_slice(&rgb);
                }
            }
        }
    }

    fn rect(&mut self, rect: Rect, rgb: [u8; 3]) {
        self.fill_where(rect, rgb, |_, _| true);
    }

    fn object(&mut self, object: &Object, frame: usize) {
        let rect = object.rect(frame);
        let rgb = object.colour.rgb();
        let s = rect.w;
        match object.shape {
            Shape::Square => self.rect(rect, rgb),
            // Pixel centres in doubled units (2 dx + 1) within the inscribed disc.
            Shape::Circle => self.fill_where(rect, rgb, |dx, dy| {
                let (cx, cy) = (2 * dx + 1 - s, 2 * dy + 1 - s);
                cx * cx + cy * cy <= s * s
            }),
            // Apex at the top centre, base along the bottom edge: at height dy + 1/2 the
            // half-width is (dy + 1/2) / 2; doubled twice to stay in integers.
            Shape::Triangle => {
                self.fill_where(rect, rgb, |dx, dy| 2 * (2 * dx + 1 - s).abs() <= 2 * dy + 1)
            }
        }
    }

    fn sign(&mut self, sign: &Sign) {
        let border = super::scene::SIGN_BORDER as i32;
        self.rect(sign.rect, BLACK);
        let inner = Rect {
            x: sign.rect.x + border,
            y: sign.rect.y + border,
            w: sign.rect.w - 2 * border,
            h: sign.rect.h - 2 * border,
        };
        self.rect(inner, WHITE);
        let scale = SIGN_SCALE as i32;
        let (mut x, y) = sign.text_origin();
        for c in sign.word.chars() {
            // Sampling only writes words the font has; anything else is left blank.
            if let Some(rows) = font::glyph(c) {
                for (row, &bits) in rows.iter().enumerate() {
                    for column in 0..font::GLYPH_WIDTH {
                        if font::is_set(bits, column) {
                            let dot = Rect {
                                x: x + column as i32 * scale,
                                y: y + row as i32 * scale,
                                w: scale,
                                h: scale,
                            };
                            self.rect(dot, BLACK);
                        }
                    }
                }
            }
            x += (font::GLYPH_WIDTH as i32 + 1) * scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::scene::{Background, Colour, Motion, scene};
    use super::*;

    fn pixel(image: &RgbImage, x: i32, y: i32) -> [u8; 3] {
        image.get_pixel(x as u32, y as u32).0
    }

    /// Whether any other object (the sign is behind) covers pixel `(x, y)` in frame `frame`.
    fn covered_by_another(scene: &Scene, me: usize, frame: usize, x: i32, y: i32) -> bool {
        scene
            .objects
            .iter()
            .enumerate()
            .any(|(i, o)| i != me && o.rect(frame).contains(x, y))
    }

    #[test]
    fn the_centre_of_a_still_object_s_box_has_its_colour() {
        let mut checked = 0;
        for index in 0..60 {
            let s = scene(11, index);
            for (me, o) in s.objects.iter().enumerate() {
                if o.motion != Motion::Still {
                    continue;
                }
                let r = o.rect(0);
                let (cx, cy) = (r.x + r.w / 2, r.y + r.h / 2);
                for frame in [0, s.frames as usize / 2, s.frames as usize - 1] {
                    if covered_by_another(&s, me, frame, cx, cy) {
                        continue;
                    }
                    let image = render_frame(&s, frame);
                    assert_eq!(
                        pixel(&image, cx, cy),
                        o.colour.rgb(),
                        "{} in clip {index}",
                        o.label()
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 20, "only {checked} still centres checked");
    }

    #[test]
    fn shapes_fill_their_boxes_and_nothing_outside() {
        let mut s = scene(3, 0);
        s.sign = None;
        s.background = Background::Black;
        let at = (100, 60);
        s.objects = [Shape::Square, Shape::Circle, Shape::Triangle]
            .into_iter()
            .map(|shape| Object {
                colour: Colour::Green,
                shape,
                size: 41,
                motion: Motion::Still,
                positions: vec![at; 1],
            })
            .collect();
        let green = Colour::Green.rgb();
        for (shape, filled) in [
            (Shape::Square, 41 * 41),
            (Shape::Circle, 1320),
            (Shape::Triangle, 861),
        ] {
            let one = Scene {
                objects: s
                    .objects
                    .iter()
                    .filter(|o| o.shape == shape)
                    .cloned()
                    .collect(),
                ..s.clone()
            };
            let image = render_frame(&one, 0);
            let green_pixels: Vec<(u32, u32)> = image
                .enumerate_pixels()
                .filter(|(_, _, p)| p.0 == green)
                .map(|(x, y, _)| (x, y))
                .collect();
            let inside = |&(x, y): &(u32, u32)| (100..141).contains(&x) && (60..101).contains(&y);
            assert!(
                green_pixels.iter().all(inside),
                "{shape:?} spills out of its box"
            );
            // Close to the exact area (41^2, pi 20.5^2, 41^2 / 2).
            let n = green_pixels.len() as i64;
            assert!(
                (n - filled).abs() <= 25,
                "{shape:?} fills {n} pixels, expected about {filled}"
            );
            // Each shape touches its box's top and bottom rows and its middle column.
            assert_eq!(pixel(&image, 120, 60), green, "{shape:?} top");
            assert_eq!(pixel(&image, 120, 100), green, "{shape:?} bottom");
        }
    }

    #[test]
    fn a_sign_is_white_with_black_letters_and_border_behind_the_shapes() {
        let s = (0..200)
            .map(|i| scene(5, i))
            .find(|s| s.sign.is_some())
            .expect("a sign in 200 clips");
        let sign = s.sign.clone().expect("found with a sign");
        let alone = Scene {
            objects: Vec::new(),
            ..s.clone()
        };
        let image = render_frame(&alone, 0);
        let r = sign.rect;
        assert_eq!(pixel(&image, r.x, r.y), BLACK, "border");
        assert_eq!(pixel(&image, r.x + r.w - 1, r.y + r.h - 1), BLACK, "border");
        assert_eq!(pixel(&image, r.x + 3, r.y + 3), WHITE, "padding");
        let (tx, ty) = sign.text_origin();
        let first = font::glyph(sign.word.chars().next().expect("a word")).expect("a glyph");
        for (row, &bits) in first.iter().enumerate() {
            for column in 0..font::GLYPH_WIDTH {
                let want = if font::is_set(bits, column) {
                    BLACK
                } else {
                    WHITE
                };
                let (x, y) = (tx + column as i32 * 3 + 1, ty + row as i32 * 3 + 1);
                assert_eq!(pixel(&image, x, y), want, "letter pixel {column},{row}");
            }
        }
        // Shapes are drawn over the sign.
        let over = Object {
            colour: Colour::Red,
            shape: Shape::Square,
            size: 30,
            motion: Motion::Still,
            positions: vec![(r.x, r.y)],
        };
        let image = render_frame(
            &Scene {
                objects: vec![over],
                ..alone
            },
            0,
        );
        assert_eq!(pixel(&image, r.x + 5, r.y + 5), Colour::Red.rgb());
    }

    #[test]
    fn drawing_clips_to_the_image() {
        let mut s = scene(3, 1);
        for o in &mut s.objects {
            o.positions = vec![(-20, s.height as i32 - 10); o.positions.len()];
        }
        let image = render_frame(&s, 0);
        assert_eq!(image.dimensions(), (s.width, s.height));
    }
}
