//! The synthetic world's closed vocabulary, in one place: the colours of its shapes and
//! backgrounds, its shapes, the words its signs read, its motions with their
//! `boxes.json` tags, and the phrases its captions use for them ("moves from left to
//! right", "stays in the top left corner", "bounces around the frame").
//!
//! `wolf-datasets` samples and renders the world from these lists and writes its
//! reference captions with these phrases; `wolf-scorer`'s truth metric reads captions
//! against `boxes.json` in the same words. Both depend on this crate and not on each
//! other, so the lists live here and nowhere else. Everything here is plain data.

/// The file beside a world's videos that holds each clip's objects, motions, boxes,
/// background and sign: the truth of the truth metric.
pub const BOXES_FILE: &str = "boxes.json";

/// A shape's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Colour {
    Red,
    Green,
    Blue,
    Yellow,
    Purple,
    Orange,
}

impl Colour {
    pub const ALL: [Colour; 6] = [
        Self::Red,
        Self::Green,
        Self::Blue,
        Self::Yellow,
        Self::Purple,
        Self::Orange,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Red => "red",
            Self::Green => "green",
            Self::Blue => "blue",
            Self::Yellow => "yellow",
            Self::Purple => "purple",
            Self::Orange => "orange",
        }
    }

    /// The colour named `name` (lower case), if the world has it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn rgb(self) -> [u8; 3] {
        match self {
            Self::Red => [220, 30, 30],
            Self::Green => [30, 170, 60],
            Self::Blue => [30, 80, 220],
            Self::Yellow => [240, 210, 20],
            Self::Purple => [140, 50, 180],
            Self::Orange => [245, 130, 20],
        }
    }
}

/// The colour behind everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Background {
    White,
    Gray,
    Black,
}

impl Background {
    pub const ALL: [Background; 3] = [Self::White, Self::Gray, Self::Black];

    pub fn name(self) -> &'static str {
        match self {
            Self::White => "white",
            Self::Gray => "gray",
            Self::Black => "black",
        }
    }

    /// The background named `name` (lower case), if the world has it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    pub fn rgb(self) -> [u8; 3] {
        match self {
            Self::White => [255, 255, 255],
            Self::Gray => [128, 128, 128],
            Self::Black => [0, 0, 0],
        }
    }
}

/// A shape's outline; each fills the square box it is placed in (the triangle points up,
/// its base on the box's bottom edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shape {
    Circle,
    Square,
    Triangle,
}

impl Shape {
    pub const ALL: [Shape; 3] = [Self::Circle, Self::Square, Self::Triangle];

    pub fn name(self) -> &'static str {
        match self {
            Self::Circle => "circle",
            Self::Square => "square",
            Self::Triangle => "triangle",
        }
    }

    /// The shape named `name` (lower case, singular), if the world has it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// `red circle`: how captions and `boxes.json` name a shape of a colour. The colour is a
/// word, so that a caption's `white square` (a colour no shape has) has a label too.
pub fn object_label(colour: &str, shape: Shape) -> String {
    format!("{colour} {}", shape.name())
}

/// The colour and shape of a label written by [`object_label`] with a shape's colour.
pub fn parse_object_label(label: &str) -> Option<(Colour, Shape)> {
    let (colour, shape) = label.split_once(' ')?;
    Some((Colour::from_name(colour)?, Shape::from_name(shape)?))
}

/// Words a sign may read (upper case, as drawn). Every letter must have a glyph in
/// `wolf-datasets`' sign font, whose tests check it.
pub const SIGN_WORDS: [&str; 10] = [
    "STOP", "OPEN", "EXIT", "SALE", "WOLF", "BUS", "PARK", "TAXI", "CAFE", "BANK",
];

/// The label of a sign among the objects of `boxes.json`: `sign "OPEN"`.
pub fn sign_label(word: &str) -> String {
    format!("sign \"{word}\"")
}

/// The word of a sign label written by [`sign_label`]; `None` for any other label.
pub fn sign_word(label: &str) -> Option<&str> {
    label.strip_prefix("sign \"")?.strip_suffix('"')
}

/// Which way a diagonal mover goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diagonal {
    TopLeftToBottomRight,
    TopRightToBottomLeft,
    BottomLeftToTopRight,
    BottomRightToTopLeft,
}

impl Diagonal {
    pub const ALL: [Diagonal; 4] = [
        Self::TopLeftToBottomRight,
        Self::TopRightToBottomLeft,
        Self::BottomLeftToTopRight,
        Self::BottomRightToTopLeft,
    ];

    /// Whether it starts on the left, and whether it starts at the top.
    pub fn starts(self) -> (bool, bool) {
        match self {
            Self::TopLeftToBottomRight => (true, true),
            Self::TopRightToBottomLeft => (false, true),
            Self::BottomLeftToTopRight => (true, false),
            Self::BottomRightToTopLeft => (false, false),
        }
    }

    /// The diagonal that starts on the left (or not) and at the top (or not).
    pub fn from_starts(left: bool, top: bool) -> Self {
        Self::ALL
            .into_iter()
            .find(|d| d.starts() == (left, top))
            .expect("the four diagonals cover every start; this is a bug")
    }
}

/// How a shape moves through a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Motion {
    Still,
    LeftToRight,
    RightToLeft,
    /// From the bottom to the top.
    Up,
    /// From the top to the bottom.
    Down,
    Diagonal(Diagonal),
    /// Straight lines that reflect off the frame's edges.
    Bouncing,
}

/// One cell of the 3x3 grid that places a still shape: row and column, each 0, 1 or 2
/// (top to bottom, left to right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cell {
    pub row: usize,
    pub column: usize,
}

impl Cell {
    /// The nine cells, row by row.
    pub fn all() -> impl Iterator<Item = Cell> {
        (0..3).flat_map(|row| (0..3).map(move |column| Cell { row, column }))
    }
}

/// Which third (0, 1, 2) of an extent a centre falls in, in doubled integer units
/// (`twice` = 2 × centre, `twice_extent` = 2 × extent) so that a pixel box's centre
/// `x + w / 2` needs no rounding.
pub fn third(twice: i64, twice_extent: i64) -> usize {
    usize::try_from((3 * twice / twice_extent.max(1)).clamp(0, 2)).expect("clamped; this is a bug")
}

impl Motion {
    /// The kebab-case word used in tags and in `boxes.json`.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Still => "still",
            Self::LeftToRight => "left-to-right",
            Self::RightToLeft => "right-to-left",
            Self::Up => "up",
            Self::Down => "down",
            Self::Diagonal(_) => "diagonal",
            Self::Bouncing => "bouncing",
        }
    }

    /// The motion of a `boxes.json` tag. The tag `diagonal` does not say which way: it
    /// becomes `Diagonal(diagonal)`.
    pub fn from_tag(tag: &str, diagonal: Diagonal) -> Option<Self> {
        [
            Self::Still,
            Self::LeftToRight,
            Self::RightToLeft,
            Self::Up,
            Self::Down,
            Self::Diagonal(diagonal),
            Self::Bouncing,
        ]
        .into_iter()
        .find(|m| m.tag() == tag)
    }

    /// What a caption says the shape does: "moves from left to right", "stays at the
    /// top". `cell` is where a still shape stays; other motions ignore it.
    pub fn phrase(self, cell: Cell) -> String {
        match self {
            Self::Still => still_phrase(cell).to_owned(),
            Self::LeftToRight => "moves from left to right".to_owned(),
            Self::RightToLeft => "moves from right to left".to_owned(),
            Self::Up => "moves from bottom to top".to_owned(),
            Self::Down => "moves from top to bottom".to_owned(),
            Self::Diagonal(diagonal) => {
                let (left, top) = diagonal.starts();
                let corner = |is_top: bool, is_left: bool| {
                    format!(
                        "the {} {}",
                        if is_top { "top" } else { "bottom" },
                        if is_left { "left" } else { "right" }
                    )
                };
                format!(
                    "moves diagonally from {} to {}",
                    corner(top, left),
                    corner(!top, !left)
                )
            }
            Self::Bouncing => "bounces around the frame".to_owned(),
        }
    }

    /// Every phrase a caption of the world can use for a motion (18: nine places to
    /// stay, four straight moves, four diagonals and the bounce), each once.
    pub fn all_phrases() -> Vec<String> {
        let centre = Cell { row: 1, column: 1 };
        let mut phrases: Vec<String> = Cell::all().map(|c| still_phrase(c).to_owned()).collect();
        for motion in [Self::LeftToRight, Self::RightToLeft, Self::Up, Self::Down] {
            phrases.push(motion.phrase(centre));
        }
        for diagonal in Diagonal::ALL {
            phrases.push(Self::Diagonal(diagonal).phrase(centre));
        }
        phrases.push(Self::Bouncing.phrase(centre));
        phrases
    }
}

/// Where a still shape stays, for a cell of the 3x3 grid (the motion caption's words).
pub fn still_phrase(cell: Cell) -> &'static str {
    crate::wolf::motion::still_phrase(cell.row, cell.column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_colour_lists_do_not_overlap() {
        for c in Colour::ALL {
            assert_eq!(Colour::from_name(c.name()), Some(c));
            assert_eq!(Background::from_name(c.name()), None);
        }
        for b in Background::ALL {
            assert_eq!(Background::from_name(b.name()), Some(b));
        }
        for s in Shape::ALL {
            assert_eq!(Shape::from_name(s.name()), Some(s));
        }
        assert_eq!(Shape::from_name("circles"), None);
        for word in SIGN_WORDS {
            assert_eq!(sign_word(&sign_label(word)), Some(word));
            assert!(word.chars().all(|c| c.is_ascii_uppercase()), "{word}");
        }
        assert_eq!(sign_word("red circle"), None);
        assert_eq!(object_label("white", Shape::Square), "white square");
        for c in Colour::ALL {
            for s in Shape::ALL {
                assert_eq!(parse_object_label(&object_label(c.name(), s)), Some((c, s)));
            }
        }
        for label in [
            "white square",
            "red",
            "red circle ",
            "red  circle",
            "sign \"OPEN\"",
        ] {
            assert_eq!(parse_object_label(label), None, "{label}");
        }
    }

    #[test]
    fn tags_and_diagonals_round_trip() {
        let any = Diagonal::TopLeftToBottomRight;
        for motion in [
            Motion::Still,
            Motion::LeftToRight,
            Motion::RightToLeft,
            Motion::Up,
            Motion::Down,
            Motion::Bouncing,
        ] {
            assert_eq!(Motion::from_tag(motion.tag(), any), Some(motion));
        }
        for d in Diagonal::ALL {
            assert_eq!(Motion::from_tag("diagonal", d), Some(Motion::Diagonal(d)));
            let (left, top) = d.starts();
            assert_eq!(Diagonal::from_starts(left, top), d);
        }
        assert_eq!(Motion::from_tag("sideways", any), None);
    }

    #[test]
    fn phrases_are_eighteen_distinct_verb_phrases() {
        let phrases = Motion::all_phrases();
        assert_eq!(phrases.len(), 18);
        let mut unique = phrases.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 18);
        for p in &phrases {
            assert!(
                ["moves ", "stays ", "bounces "]
                    .iter()
                    .any(|verb| p.starts_with(verb)),
                "{p}"
            );
        }
        assert_eq!(
            Motion::Diagonal(Diagonal::BottomRightToTopLeft).phrase(Cell { row: 0, column: 0 }),
            "moves diagonally from the bottom right to the top left"
        );
        assert_eq!(
            Motion::Still.phrase(Cell { row: 2, column: 1 }),
            "stays at the bottom"
        );
    }

    #[test]
    fn thirds_split_an_extent_in_three() {
        // 320 px: lines at 106.67 and 213.33.
        assert_eq!(third(2 * 106, 640), 0);
        assert_eq!(third(2 * 107, 640), 1);
        assert_eq!(third(2 * 213, 640), 1);
        assert_eq!(third(2 * 214, 640), 2);
        assert_eq!(third(-5, 640), 0);
        assert_eq!(third(5000, 640), 2);
        assert_eq!(third(1, 0), 2);
    }
}
