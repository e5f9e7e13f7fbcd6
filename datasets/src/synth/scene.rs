//! Scene sampling and the caption grammar of the synthetic world.
//!
//! A [`Scene`] is everything about one clip that is decided before a pixel is drawn:
//! the rate and length, the background, each shape's colour, size and motion with its
//! place in every frame, the sign, and the reference caption and tags. The caption is
//! written from that geometry by a small grammar, so it is exact for what is rendered.
//! Scenes are drawn from a SplitMix64 stream keyed by the seed and the clip's index
//! alone, so clip `i` is the same whatever the number of clips or threads, and no
//! crate's version can change a byte of it.
//!
//! Sampling keeps the caption true: still shapes sit well inside one cell of a 3x3 grid
//! (their phrase comes from that cell) and never overlap each other or the sign, so no
//! still thing is hidden; moving shapes cross most of the frame; bouncing shapes are
//! fast enough to hit an edge at least once.
//!
//! The world's words (colours, shapes, sign words, motions and their phrases) live in
//! `wolf_pipeline::world`, which the truth metric of `wolf-scorer` reads captions with;
//! they are re-exported here.

use super::font;
pub use wolf_pipeline::world::{Background, Colour, Diagonal, Motion, SIGN_WORDS, Shape};
use wolf_pipeline::world::{Cell, object_label, sign_label, third};

/// Frame width in pixels.
pub const WIDTH: u32 = 320;
/// Frame height in pixels.
pub const HEIGHT: u32 = 240;
/// The frame rates a clip may have.
pub const FPS_CHOICES: [u32; 3] = [10, 12, 15];
/// Shortest and longest clip, in seconds.
pub const SECONDS: (u32, u32) = (4, 8);
/// Smallest and largest shape side, in pixels.
pub const SHAPE_SIZE: (u32, u32) = (30, 60);
/// Size of one font pixel on a sign, in frame pixels.
pub const SIGN_SCALE: u32 = 3;
/// Black border of a sign, in frame pixels (it keeps a white sign visible on white).
pub const SIGN_BORDER: u32 = 2;
/// White space between a sign's border and its letters, in frame pixels.
const SIGN_PADDING: u32 = 6;
/// How far (pixels) a still shape's centre keeps from the lines of the 3x3 grid, so
/// that its place phrase is not a coin toss at a boundary.
pub const REGION_MARGIN: i32 = 8;
/// Gap (pixels) kept between still shapes and between a still shape and the sign.
const STILL_GAP: i32 = 4;
/// Moving shapes start and end within this fraction (1/n) of the frame from its edges.
const EDGE_FRACTION: i32 = 10;

/// An axis-aligned rectangle in pixels; `x + w` and `y + h` are exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

impl Rect {
    /// Whether the two rectangles come closer than `gap` pixels.
    pub fn near(&self, other: &Rect, gap: i32) -> bool {
        self.x < other.x + other.w + gap
            && other.x < self.x + self.w + gap
            && self.y < other.y + other.h + gap
            && other.y < self.y + self.h + gap
    }

    /// Whether the pixel `(x, y)` is inside.
    pub fn contains(&self, x: i32, y: i32) -> bool {
        x >= self.x && x < self.x + self.w && y >= self.y && y < self.y + self.h
    }

    /// `[xmin, ymin, xmax, ymax]` on the 0–999 scale of METHOD.md:
    /// `round(px / extent * 999)`, clamped to `0..=999`.
    pub fn to_unit_box(&self, width: u32, height: u32) -> [u16; 4] {
        [
            scale_999(self.x, width),
            scale_999(self.y, height),
            scale_999(self.x + self.w, width),
            scale_999(self.y + self.h, height),
        ]
    }
}

/// `round(px / extent * 999)` clamped to `0..=999`, in integers so that no float
/// rounding at a half can differ from the formula.
fn scale_999(px: i32, extent: u32) -> u16 {
    let px = i64::from(px).clamp(0, i64::from(extent));
    let extent = i64::from(extent.max(1));
    let scaled = (2 * px * 999 + extent) / (2 * extent);
    u16::try_from(scaled.clamp(0, 999)).expect("clamped to 0..=999; this is a bug")
}

/// One coloured shape and where it is in every frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub colour: Colour,
    pub shape: Shape,
    /// Side of its square box in pixels.
    pub size: u32,
    pub motion: Motion,
    /// Top-left corner of its box in each frame.
    pub positions: Vec<(i32, i32)>,
}

impl Object {
    /// "red circle": unique within a clip.
    pub fn label(&self) -> String {
        object_label(self.colour.name(), self.shape)
    }

    /// The box in frame `frame`; the last frame's box past the end.
    pub fn rect(&self, frame: usize) -> Rect {
        let (x, y) = self
            .positions
            .get(frame)
            .or(self.positions.last())
            .copied()
            .unwrap_or((0, 0));
        let size = self.size as i32;
        Rect {
            x,
            y,
            w: size,
            h: size,
        }
    }

    /// What the caption says it does: "moves from left to right", "stays at the top".
    pub fn phrase(&self, width: u32, height: u32) -> String {
        self.motion.phrase(self.cell(width, height))
    }

    /// The cell of the 3x3 grid its first box's centre is in: where a still shape stays.
    pub fn cell(&self, width: u32, height: u32) -> Cell {
        let rect = self.rect(0);
        Cell {
            row: third(i64::from(2 * rect.y + rect.h), 2 * i64::from(height)),
            column: third(i64::from(2 * rect.x + rect.w), 2 * i64::from(width)),
        }
    }
}

/// A white sign with a black border and a black word, static, behind the shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sign {
    pub word: String,
    /// The whole sign, border included.
    pub rect: Rect,
}

impl Sign {
    /// `sign "OPEN"`: its label among the objects of `boxes.json`.
    pub fn label(&self) -> String {
        sign_label(&self.word)
    }

    /// Width and height in pixels of a sign reading `word`.
    pub fn size_for(word: &str) -> (u32, u32) {
        let letters = word.chars().count() as u32;
        let text_w =
            letters * font::GLYPH_WIDTH * SIGN_SCALE + letters.saturating_sub(1) * SIGN_SCALE;
        let text_h = font::GLYPH_HEIGHT * SIGN_SCALE;
        let frame = 2 * (SIGN_BORDER + SIGN_PADDING);
        (text_w + frame, text_h + frame)
    }

    /// Top-left pixel of the first letter.
    pub fn text_origin(&self) -> (i32, i32) {
        let inset = (SIGN_BORDER + SIGN_PADDING) as i32;
        (self.rect.x + inset, self.rect.y + inset)
    }
}

/// One clip of the synthetic world, with its reference caption and tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scene {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: u32,
    pub background: Background,
    /// Drawn first, behind the objects.
    pub sign: Option<Sign>,
    /// Drawn in this order, later ones in front; the caption names them in this order.
    pub objects: Vec<Object>,
    pub caption: String,
    /// Motion kinds present (see [`Motion::tag`]) and `sign` when there is one; sorted,
    /// unique.
    pub tags: Vec<String>,
}

/// The scene of clip `index` under `seed`; it depends on nothing else.
pub fn scene(seed: u64, index: usize) -> Scene {
    let mut rng = Rng::for_clip(seed, index);
    let (width, height) = (WIDTH, HEIGHT);
    let fps = rng.pick(&FPS_CHOICES);
    let frames = rng.range(i64::from(SECONDS.0 * fps), i64::from(SECONDS.1 * fps)) as u32;
    let background = rng.pick(&Background::ALL);
    let count = rng.range(1, 3) as usize;
    let sign = rng.chance(1, 4).then(|| {
        let word = rng.pick(&SIGN_WORDS);
        let (w, h) = Sign::size_for(word);
        let x = rng.range(0, i64::from(width - w)) as i32;
        let y = rng.range(0, i64::from(height - h)) as i32;
        Sign {
            word: word.to_owned(),
            rect: Rect {
                x,
                y,
                w: w as i32,
                h: h as i32,
            },
        }
    });

    let mut objects: Vec<Object> = Vec::with_capacity(count);
    // Cells of the 3x3 grid already taken by a still shape, so that two still shapes
    // never share a place phrase.
    let mut still_cells: Vec<(usize, usize)> = Vec::new();
    while objects.len() < count {
        let colour = rng.pick(&Colour::ALL);
        let shape = rng.pick(&Shape::ALL);
        if objects
            .iter()
            .any(|o| o.colour == colour && o.shape == shape)
        {
            continue;
        }
        let size = rng.range(i64::from(SHAPE_SIZE.0), i64::from(SHAPE_SIZE.1)) as u32;
        let mut motion = match rng.below(7) {
            0 => Motion::Still,
            1 => Motion::LeftToRight,
            2 => Motion::RightToLeft,
            3 => Motion::Up,
            4 => Motion::Down,
            5 => Motion::Diagonal(rng.pick(&Diagonal::ALL)),
            _ => Motion::Bouncing,
        };
        let mut still_at = None;
        if motion == Motion::Still {
            let stills: Vec<Rect> = objects
                .iter()
                .filter(|o| o.motion == Motion::Still)
                .map(|o| o.rect(0))
                .collect();
            let place = Placement {
                width,
                height,
                size,
                sign: sign.as_ref(),
                stills: &stills,
            };
            match place_still(&mut rng, &place, &still_cells) {
                Some((cell, at)) => {
                    still_cells.push(cell);
                    still_at = Some(at);
                }
                // No free spot: it moves instead, which keeps the caption true.
                None => motion = Motion::Bouncing,
            }
        }
        let positions = match still_at {
            Some(at) => vec![at; frames as usize],
            None => path(&mut rng, motion, width, height, size, frames),
        };
        objects.push(Object {
            colour,
            shape,
            size,
            motion,
            positions,
        });
    }

    let caption = caption(width, height, background, &objects, sign.as_ref());
    let tags = tags(&objects, sign.as_ref());
    Scene {
        width,
        height,
        fps,
        frames,
        background,
        sign,
        objects,
        caption,
        tags,
    }
}

/// What a still shape must keep clear of.
struct Placement<'a> {
    width: u32,
    height: u32,
    size: u32,
    sign: Option<&'a Sign>,
    stills: &'a [Rect],
}

/// A free grid cell `(row, column)` and a top-left corner in it, or `None` after a
/// bounded number of tries.
fn place_still(
    rng: &mut Rng,
    place: &Placement<'_>,
    taken: &[(usize, usize)],
) -> Option<((usize, usize), (i32, i32))> {
    let free: Vec<(usize, usize)> = (0..3)
        .flat_map(|r| (0..3).map(move |c| (r, c)))
        .filter(|cell| !taken.contains(cell))
        .collect();
    let size = place.size as i32;
    for _ in 0..64 {
        let (row, column) = rng.pick(&free);
        let (x_lo, x_hi) = cell_span(column, place.width, size);
        let (y_lo, y_hi) = cell_span(row, place.height, size);
        if x_lo > x_hi || y_lo > y_hi {
            continue;
        }
        let x = rng.range(i64::from(x_lo), i64::from(x_hi)) as i32;
        let y = rng.range(i64::from(y_lo), i64::from(y_hi)) as i32;
        let rect = Rect {
            x,
            y,
            w: size,
            h: size,
        };
        let clear_of_sign = place.sign.is_none_or(|s| !rect.near(&s.rect, STILL_GAP));
        if clear_of_sign && place.stills.iter().all(|r| !rect.near(r, STILL_GAP)) {
            return Some(((row, column), (x, y)));
        }
    }
    None
}

/// The range of top-left coordinates that keeps a shape of `size` inside the frame and
/// its centre at least [`REGION_MARGIN`] inside third `third` of `extent`.
fn cell_span(third: usize, extent: u32, size: i32) -> (i32, i32) {
    let extent = extent as i32;
    let start = third as i32 * extent / 3;
    let end = (third as i32 + 1) * extent / 3;
    // Centre = x + size / 2 in doubled units: 2x + size; keep it in
    // [2 (start + margin), 2 (end - margin)].
    let lo = (2 * (start + REGION_MARGIN) - size + 1)
        .div_euclid(2)
        .max(0);
    let hi = (2 * (end - REGION_MARGIN) - size)
        .div_euclid(2)
        .min(extent - size);
    (lo, hi)
}

/// Top-left corners of a moving shape in every frame.
fn path(
    rng: &mut Rng,
    motion: Motion,
    width: u32,
    height: u32,
    size: u32,
    frames: u32,
) -> Vec<(i32, i32)> {
    let range_x = (width - size) as i32;
    let range_y = (height - size) as i32;
    let frames = frames.max(2) as i64;
    // A start near one edge and an end near the other, so the shape crosses most of
    // the frame.
    let near_edge = |rng: &mut Rng, range: i32, extent: u32, low: bool| {
        let offset = rng.range(0, i64::from(extent as i32 / EDGE_FRACTION)) as i32;
        if low { offset } else { range - offset }
    };
    let (start, end) = match motion {
        Motion::Still | Motion::Bouncing => {
            let at = (
                rng.range(0, i64::from(range_x)) as i32,
                rng.range(0, i64::from(range_y)) as i32,
            );
            if motion == Motion::Still {
                return vec![at; frames as usize];
            }
            return bounce(rng, at, range_x, range_y, frames);
        }
        Motion::LeftToRight | Motion::RightToLeft => {
            let rightward = motion == Motion::LeftToRight;
            let from = near_edge(rng, range_x, width, rightward);
            let to = near_edge(rng, range_x, width, !rightward);
            let y = rng.range(0, i64::from(range_y)) as i32;
            ((from, y), (to, y))
        }
        Motion::Up | Motion::Down => {
            let downward = motion == Motion::Down;
            let from = near_edge(rng, range_y, height, downward);
            let to = near_edge(rng, range_y, height, !downward);
            let x = rng.range(0, i64::from(range_x)) as i32;
            ((x, from), (x, to))
        }
        Motion::Diagonal(diagonal) => {
            let (left, top) = diagonal.starts();
            let from_x = near_edge(rng, range_x, width, left);
            let from_y = near_edge(rng, range_y, height, top);
            let to_x = near_edge(rng, range_x, width, !left);
            let to_y = near_edge(rng, range_y, height, !top);
            ((from_x, from_y), (to_x, to_y))
        }
    };
    let lerp = |a: i32, b: i32, f: i64| (i64::from(a) + i64::from(b - a) * f / (frames - 1)) as i32;
    (0..frames)
        .map(|f| (lerp(start.0, end.0, f), lerp(start.1, end.1, f)))
        .collect()
}

/// A straight path from `at` that reflects off the edges; each axis covers 1.3 to 2
/// times its free range over the clip, so the shape hits at least one edge.
fn bounce(
    rng: &mut Rng,
    at: (i32, i32),
    range_x: i32,
    range_y: i32,
    frames: i64,
) -> Vec<(i32, i32)> {
    let mut velocity = |range: i32| {
        let tenths = rng.range(13, 20);
        let steps = 10 * (frames - 1);
        let speed = ((i64::from(range) * tenths + steps - 1) / steps).max(1) as i32;
        if rng.chance(1, 2) { speed } else { -speed }
    };
    let (mut vx, mut vy) = (velocity(range_x), velocity(range_y));
    let (mut x, mut y) = at;
    let mut positions = Vec::with_capacity(frames as usize);
    for _ in 0..frames {
        positions.push((x, y));
        (x, vx) = reflect(x + vx, vx, range_x);
        (y, vy) = reflect(y + vy, vy, range_y);
    }
    positions
}

/// Folds a coordinate that left `0..=max` back inside, turning the velocity around.
/// Speeds are far below the range, so one fold is enough.
fn reflect(position: i32, velocity: i32, max: i32) -> (i32, i32) {
    if position < 0 {
        ((-position).min(max), -velocity)
    } else if position > max {
        ((2 * max - position).max(0), -velocity)
    } else {
        (position, velocity)
    }
}

/// "an" before a vowel sound ("an orange circle"), "a" otherwise.
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The reference caption: one clause per object in drawing order, joined with "while"
/// (two) or commas and "and" (three), then the background, then the sign.
pub fn caption(
    width: u32,
    height: u32,
    background: Background,
    objects: &[Object],
    sign: Option<&Sign>,
) -> String {
    let clauses: Vec<String> = objects
        .iter()
        .map(|o| {
            let label = o.label();
            format!("{} {label} {}", article(&label), o.phrase(width, height))
        })
        .collect();
    let body = match clauses.as_slice() {
        [] => "nothing moves".to_owned(),
        [one] => one.clone(),
        [first, second] => format!("{first} while {second}"),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    let mut text = format!(
        "{body} on {} {} background.",
        article(background.name()),
        background.name()
    );
    if let Some(sign) = sign {
        text.push_str(&format!(" A sign reads \"{}\".", sign.word));
    }
    capitalise(&text)
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The motion tags present, plus `sign`; sorted and unique.
pub fn tags(objects: &[Object], sign: Option<&Sign>) -> Vec<String> {
    let mut tags: Vec<String> = objects.iter().map(|o| o.motion.tag().to_owned()).collect();
    if sign.is_some() {
        tags.push("sign".to_owned());
    }
    tags.sort();
    tags.dedup();
    tags
}

/// SplitMix64 (Steele, Lea and Flood): tiny, fast and fixed forever, so the world's
/// bytes never depend on a random-number crate's version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The stream of clip `index` under `seed`: both are mixed, so neighbouring seeds and
    /// indices give unrelated streams.
    pub fn for_clip(seed: u64, index: usize) -> Self {
        Rng(mix(
            seed ^ mix((index as u64).wrapping_add(0x6A09_E667_F3BC_C909))
        ))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A value in `0..n` (Lemire's multiply-shift; the bias is below 2^-50 here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A value in `lo..=hi`; `lo` when the range is empty.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        assert!(
            !items.is_empty(),
            "picked from an empty list; this is a bug"
        );
        items[self.below(items.len() as u64) as usize]
    }
}

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEDS: [u64; 3] = [0, 1, 0xDEAD_BEEF];

    fn scenes() -> impl Iterator<Item = Scene> {
        SEEDS
            .into_iter()
            .flat_map(|seed| (0..150).map(move |i| scene(seed, i)))
    }

    #[test]
    fn splitmix_matches_the_reference_stream() {
        // First outputs of the reference SplitMix64 seeded with 1234567.
        let mut rng = Rng(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn the_same_seed_and_index_give_the_same_scene_and_others_differ() {
        assert_eq!(scene(7, 3), scene(7, 3));
        let differing = (0..20)
            .filter(|&i| scene(1, i).caption != scene(2, i).caption)
            .count();
        assert!(
            differing >= 15,
            "only {differing} of 20 captions differ between seeds"
        );
        let differing = (0..20)
            .filter(|&i| scene(1, i).caption != scene(1, i + 1).caption)
            .count();
        assert!(
            differing >= 15,
            "only {differing} of 20 neighbouring captions differ"
        );
    }

    #[test]
    fn scenes_keep_to_the_world_s_limits() {
        for s in scenes() {
            assert_eq!((s.width, s.height), (WIDTH, HEIGHT));
            assert!(FPS_CHOICES.contains(&s.fps));
            assert!(
                (SECONDS.0 * s.fps..=SECONDS.1 * s.fps).contains(&s.frames),
                "{} frames",
                s.frames
            );
            assert!((1..=3).contains(&s.objects.len()));
            for (i, o) in s.objects.iter().enumerate() {
                assert!((SHAPE_SIZE.0..=SHAPE_SIZE.1).contains(&o.size));
                assert_eq!(o.positions.len(), s.frames as usize);
                assert!(
                    !s.objects[..i].iter().any(|p| p.label() == o.label()),
                    "{} twice",
                    o.label()
                );
                for f in 0..s.frames as usize {
                    let r = o.rect(f);
                    assert!(
                        r.x >= 0 && r.y >= 0,
                        "{} leaves the frame: {r:?}",
                        o.label()
                    );
                    assert!(
                        r.x + r.w <= s.width as i32 && r.y + r.h <= s.height as i32,
                        "{r:?}"
                    );
                }
            }
            if let Some(sign) = &s.sign {
                let r = sign.rect;
                assert!(
                    r.x >= 0 && r.y >= 0 && r.x + r.w <= WIDTH as i32 && r.y + r.h <= HEIGHT as i32
                );
                assert!(
                    sign.word.chars().all(|c| font::glyph(c).is_some()),
                    "{}",
                    sign.word
                );
            }
        }
    }

    #[test]
    fn still_shapes_sit_clear_inside_their_cell_and_clear_of_each_other_and_the_sign() {
        let mut seen = 0;
        for s in scenes() {
            let stills: Vec<&Object> = s
                .objects
                .iter()
                .filter(|o| o.motion == Motion::Still)
                .collect();
            for (i, o) in stills.iter().enumerate() {
                seen += 1;
                let r = o.rect(0);
                assert!(o.positions.iter().all(|&p| p == o.positions[0]));
                // Doubled centre at least 2 * margin (less one for odd sizes) from each
                // grid line.
                for (twice, extent) in [
                    (2 * r.x + r.w, s.width as i32),
                    (2 * r.y + r.h, s.height as i32),
                ] {
                    for line in [extent / 3, 2 * extent / 3] {
                        assert!(
                            (twice - 2 * line).abs() >= 2 * REGION_MARGIN - 1,
                            "{r:?} near {line}"
                        );
                    }
                }
                for other in &stills[..i] {
                    assert!(
                        !r.near(&other.rect(0), STILL_GAP),
                        "still shapes overlap in {}",
                        s.caption
                    );
                    assert_ne!(o.phrase(s.width, s.height), other.phrase(s.width, s.height));
                }
                if let Some(sign) = &s.sign {
                    assert!(
                        !r.near(&sign.rect, STILL_GAP),
                        "a still shape hides the sign"
                    );
                }
            }
        }
        assert!(seen > 50, "only {seen} still shapes sampled");
    }

    #[test]
    fn moving_shapes_cross_most_of_the_frame_the_way_their_caption_says() {
        for s in scenes() {
            for o in &s.objects {
                let (first, last) = (o.rect(0), o.rect(s.frames as usize - 1));
                let (dx, dy) = (last.x - first.x, last.y - first.y);
                let far_x = (s.width as i32 - o.size as i32) * 3 / 5;
                let far_y = (s.height as i32 - o.size as i32) * 3 / 5;
                match o.motion {
                    Motion::Still => assert_eq!((dx, dy), (0, 0)),
                    Motion::LeftToRight => assert!(dx >= far_x && dy == 0),
                    Motion::RightToLeft => assert!(-dx >= far_x && dy == 0),
                    Motion::Down => assert!(dy >= far_y && dx == 0),
                    Motion::Up => assert!(-dy >= far_y && dx == 0),
                    Motion::Diagonal(d) => {
                        let (left, top) = d.starts();
                        assert!(dx.abs() >= far_x && dy.abs() >= far_y);
                        assert_eq!((dx > 0, dy > 0), (left, top), "{:?}", d);
                    }
                    Motion::Bouncing => {
                        let turns = o.positions.windows(3).any(|w| {
                            let a = (w[1].0 - w[0].0, w[1].1 - w[0].1);
                            let b = (w[2].0 - w[1].0, w[2].1 - w[1].1);
                            a.0 * b.0 < 0 || a.1 * b.1 < 0
                        });
                        assert!(turns, "a bouncing {} never bounces", o.label());
                    }
                }
            }
        }
    }

    #[test]
    fn each_caption_says_what_its_scene_holds() {
        for s in scenes() {
            let c = &s.caption;
            assert!(c.starts_with('A') && c.ends_with('.'), "{c}");
            let background = format!(" on a {} background.", s.background.name());
            assert!(c.contains(&background), "{c}");
            for o in &s.objects {
                let clause = format!("{} {}", o.label(), o.phrase(s.width, s.height));
                assert!(c.contains(&clause), "{clause:?} missing from {c:?}");
                assert!(s.tags.iter().any(|t| t == o.motion.tag()));
            }
            let has_sign_tag = s.tags.iter().any(|t| t == "sign");
            assert_eq!(has_sign_tag, s.sign.is_some());
            assert_eq!(c.contains("A sign reads"), has_sign_tag, "{c}");
            if let Some(sign) = &s.sign {
                assert!(
                    c.ends_with(&format!(" A sign reads \"{}\".", sign.word)),
                    "{c}"
                );
            }
            let mut sorted = s.tags.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted, s.tags);
        }
    }

    #[test]
    fn the_grammar_reads_like_the_issue_s_examples() {
        let still = |colour, shape, at| Object {
            colour,
            shape,
            size: 40,
            motion: Motion::Still,
            positions: vec![at; 2],
        };
        let moving = |colour, shape, motion| Object {
            colour,
            shape,
            size: 40,
            motion,
            positions: vec![(0, 0); 2],
        };
        let two = [
            moving(Colour::Red, Shape::Circle, Motion::LeftToRight),
            still(Colour::Blue, Shape::Square, (10, 10)),
        ];
        assert_eq!(
            caption(WIDTH, HEIGHT, Background::White, &two, None),
            "A red circle moves from left to right while a blue square stays in the top left corner \
             on a white background."
        );
        let three = [
            moving(Colour::Red, Shape::Circle, Motion::LeftToRight),
            moving(Colour::Green, Shape::Triangle, Motion::Down),
            still(Colour::Blue, Shape::Square, (10, 10)),
        ];
        assert_eq!(
            caption(WIDTH, HEIGHT, Background::White, &three, None),
            "A red circle moves from left to right, a green triangle moves from top to bottom and a \
             blue square stays in the top left corner on a white background."
        );
        let sign = Sign {
            word: "OPEN".into(),
            rect: Rect {
                x: 0,
                y: 0,
                w: 1,
                h: 1,
            },
        };
        let one = [moving(
            Colour::Orange,
            Shape::Triangle,
            Motion::Diagonal(Diagonal::BottomRightToTopLeft),
        )];
        assert_eq!(
            caption(WIDTH, HEIGHT, Background::Gray, &one, Some(&sign)),
            "An orange triangle moves diagonally from the bottom right to the top left on a gray \
             background. A sign reads \"OPEN\"."
        );
        assert_eq!(
            still(Colour::Red, Shape::Circle, (140, 100)).phrase(WIDTH, HEIGHT),
            "stays in the center"
        );
        assert_eq!(
            still(Colour::Red, Shape::Circle, (140, 190)).phrase(WIDTH, HEIGHT),
            "stays at the bottom"
        );
        assert_eq!(
            still(Colour::Red, Shape::Circle, (270, 100)).phrase(WIDTH, HEIGHT),
            "stays on the right"
        );
        assert_eq!(
            tags(&three, Some(&sign)),
            ["down", "left-to-right", "sign", "still"]
        );
    }

    #[test]
    fn unit_boxes_follow_the_0_to_999_formula() {
        let r = Rect {
            x: 0,
            y: 120,
            w: 160,
            h: 120,
        };
        assert_eq!(r.to_unit_box(320, 240), [0, 500, 500, 999]);
        let r = Rect {
            x: 1,
            y: 1,
            w: 30,
            h: 30,
        };
        // round(1/320*999) = 3, round(31/320*999) = 97, round(1/240*999) = 4, round(31/240*999) = 129.
        assert_eq!(r.to_unit_box(320, 240), [3, 4, 97, 129]);
        assert_eq!(scale_999(-5, 320), 0);
        assert_eq!(scale_999(400, 320), 999);
    }
}
