//! A hand-written 5x7 bitmap font of the capital letters, for the words on signs.
//!
//! Each glyph is seven rows of five pixels, top row first; in a row, bit 4 is the
//! leftmost pixel. The font lives here, as data, rather than coming from a font file or
//! crate, so that the pixels of a sign, and so the bytes of a clip, can never change
//! with a dependency's version.

/// Glyph width in font pixels.
pub const GLYPH_WIDTH: u32 = 5;
/// Glyph height in font pixels.
pub const GLYPH_HEIGHT: u32 = 7;

/// The rows of a capital letter `A`–`Z`, or `None` for any other character.
pub fn glyph(c: char) -> Option<[u8; 7]> {
    let rows = match c {
        'A' => [
            0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
        'B' => [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110,
        ],
        'C' => [
            0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110,
        ],
        'D' => [
            0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100,
        ],
        'E' => [
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111,
        ],
        'F' => [
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
        'G' => [
            0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111,
        ],
        'H' => [
            0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
        'I' => [
            0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
        ],
        'J' => [
            0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100,
        ],
        'K' => [
            0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001,
        ],
        'L' => [
            0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111,
        ],
        'M' => [
            0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001,
        ],
        'N' => [
            0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001,
        ],
        'O' => [
            0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
        ],
        'P' => [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
        'Q' => [
            0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101,
        ],
        'R' => [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001,
        ],
        'S' => [
            0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110,
        ],
        'T' => [
            0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100,
        ],
        'U' => [
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
        ],
        'V' => [
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100,
        ],
        'W' => [
            0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010,
        ],
        'X' => [
            0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001,
        ],
        'Y' => [
            0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100,
        ],
        'Z' => [
            0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111,
        ],
        _ => return None,
    };
    Some(rows)
}

/// Whether the font pixel at column `x` (0 is leftmost) of a glyph row is set.
pub fn is_set(row: u8, x: u32) -> bool {
    x < GLYPH_WIDTH && row >> (GLYPH_WIDTH - 1 - x) & 1 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_capital_has_a_distinct_glyph_within_five_columns() {
        let glyphs: Vec<[u8; 7]> = ('A'..='Z')
            .map(|c| glyph(c).unwrap_or_else(|| panic!("no glyph for {c}")))
            .collect();
        for (i, rows) in glyphs.iter().enumerate() {
            assert!(
                rows.iter().all(|&r| r < 1 << GLYPH_WIDTH),
                "glyph {i} is wider than 5"
            );
            assert!(rows.iter().any(|&r| r != 0), "glyph {i} is empty");
            assert!(
                !glyphs[..i].contains(rows),
                "glyph {i} repeats an earlier one"
            );
        }
        assert_eq!(glyph('a'), None);
        assert_eq!(glyph(' '), None);
    }

    #[test]
    fn every_sign_word_of_the_world_can_be_drawn() {
        for word in wolf_pipeline::world::SIGN_WORDS {
            assert!(word.chars().all(|c| glyph(c).is_some()), "{word}");
        }
    }

    #[test]
    fn bit_four_is_the_leftmost_pixel() {
        let t = glyph('T').expect("T has a glyph");
        assert!((0..5).all(|x| is_set(t[0], x)));
        assert!(!is_set(t[1], 0) && is_set(t[1], 2) && !is_set(t[1], 4));
        let l = glyph('L').expect("L has a glyph");
        assert!(is_set(l[0], 0) && !is_set(l[0], 1));
    }
}
