//! The facts a caption states, in the world's closed vocabulary.
//!
//! The caption is cut into words and boundaries: bracketed groups (`[120, 340, 260,
//! 480]`, a grounded caption's boxes) are dropped first; letters are lower-cased; `-`,
//! `_`, `/` and quotes separate words; `.`, `!`, `?` and line breaks end a sentence;
//! `,`, `;`, `:` and round brackets end a clause, and so do the words `and`, `but`, `while`,
//! `whereas`, `although` and `though`. `grey` is read as `gray` and `centre` as
//! `center`; a possessive `'s` is dropped (`the circle's path`). Then, left to right:
//!
//! - **Object**: a colour word directly before a shape word (`red circle`, `red
//!   circles`). Colour words are all the world's colours, shapes' and backgrounds', so
//!   `white square` is a stated object that is never true.
//! - **Motion**: one of the world's motion phrases (`moves from left to right`, `stays in
//!   the top left corner`, ...) with its verb in any form (`moves`, `move`, `moving`,
//!   `moved`) and articles ignored (`stays at top`, `moves from the left to the right`).
//!   It belongs to the last object named before it (across sentences, so `It moves ...`
//!   works); a shape named without a colour or a sign in between leaves it nobody's, and
//!   then it is no fact. A phrase followed by another place word (`stays at the top
//!   right`) is not the world's phrase and is no fact.
//! - **Background**: a colour word before `background` or `backdrop`, or `background is
//!   white` (also `was`, `remains`).
//! - **Sign**: a sign word (`OPEN`, any case) in a sentence that has the word `sign`.
//! - **Negation**: after `no`, `not` (but not `not only`), `never`, `without`, `nor`,
//!   `neither`, `none`, `nothing`, `cannot`, `instead of`, `rather than` or a word
//!   ending in `n't`, nothing more in the same clause is a fact (`there is no red
//!   circle`, `the circle does not move from left to right`).
//!
//! Anything else is not a fact, however true: paraphrases (`a circle that is red`,
//! `slides to the right`, `remains still`), counts, sizes and positions of moving shapes.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use wolf_pipeline::world::{Background, Colour, Motion, SIGN_WORDS, Shape, object_label};

use super::Fact;

/// The facts `caption` states, as a set.
pub fn facts(caption: &str) -> BTreeSet<Fact> {
    let tokens = tokenize(caption);
    let mut reader = Reader::default();
    let mut i = 0;
    while i < tokens.len() {
        i += reader.step(&tokens, i);
    }
    reader.end_sentence();
    reader.facts
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    /// `,` `;` `:` or a bracket.
    Clause,
    /// `.` `!` `?` or a line break.
    Sentence,
}

impl Token {
    fn word(&self) -> Option<&str> {
        match self {
            Self::Word(w) => Some(w),
            _ => None,
        }
    }
}

/// Words that join clauses: a negation before them does not reach past them.
const CLAUSE_WORDS: [&str; 6] = ["and", "but", "while", "whereas", "although", "though"];
/// Words that negate the rest of their clause.
const NEGATIONS: [&str; 9] = [
    "no", "not", "never", "without", "nor", "neither", "none", "nothing", "cannot",
];
/// Two-word negations: `instead of`, `rather than`.
const NEGATION_PAIRS: [(&str, &str); 2] = [("instead", "of"), ("rather", "than")];
/// Words skipped inside a motion phrase, in the caption and in the phrase alike.
const ARTICLES: [&str; 3] = ["a", "an", "the"];
/// Words that, right after a place phrase, make it another place than the world's.
const PLACE_WORDS: [&str; 7] = [
    "left", "right", "top", "bottom", "corner", "center", "middle",
];
/// Spellings read as the world's.
const SPELLINGS: [(&str, &str); 2] = [("grey", "gray"), ("centre", "center")];

fn tokenize(caption: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut depth = 0usize;
    let flush = |word: &mut String, tokens: &mut Vec<Token>| {
        if !word.is_empty() {
            let mut w = std::mem::take(word);
            // A possessive names its owner: `the circle's path`.
            if let Some(owner) = w.strip_suffix("'s") {
                w = owner.to_owned();
            }
            let w = SPELLINGS
                .iter()
                .find(|(from, _)| *from == w)
                .map_or(w, |(_, to)| (*to).to_owned());
            tokens.push(Token::Word(w));
        }
    };
    let mut chars = caption.chars().peekable();
    while let Some(c) = chars.next() {
        // A grounded caption's boxes, `[120, 340, 260, 480]`, say nothing in words.
        if c == '[' {
            flush(&mut word, &mut tokens);
            depth += 1;
            continue;
        }
        if depth > 0 {
            if c == ']' {
                depth -= 1;
            }
            continue;
        }
        let c = if matches!(c, '\u{2019}' | '\u{2018}') {
            '\''
        } else {
            c
        };
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if c == '\'' && !word.is_empty() && chars.peek().is_some_and(|n| n.is_alphanumeric())
        {
            // Inside a word: `isn't`, `circle's`.
            word.push(c);
        } else {
            flush(&mut word, &mut tokens);
            match c {
                '.' | '!' | '?' | '\n' => tokens.push(Token::Sentence),
                ',' | ';' | ':' | '(' | ')' | ']' => tokens.push(Token::Clause),
                _ => {}
            }
        }
    }
    flush(&mut word, &mut tokens);
    tokens
}

/// A motion phrase of the world, ready to match.
struct Phrase {
    /// The world's words: `moves from left to right`.
    text: String,
    /// Every form of its verb: `move`, `moves`, `moved`, `moving`.
    verbs: Vec<String>,
    /// The words after the verb, without articles.
    rest: Vec<String>,
}

static PHRASES: LazyLock<Vec<Phrase>> = LazyLock::new(|| {
    Motion::all_phrases()
        .into_iter()
        .map(|text| {
            let mut words = text.split(' ');
            let verb = words
                .next()
                .expect("a motion phrase starts with its verb; this is a bug");
            let rest = words
                .filter(|w| !ARTICLES.contains(w))
                .map(str::to_owned)
                .collect();
            Phrase {
                verbs: verb_forms(verb),
                text: text.clone(),
                rest,
            }
        })
        .collect()
});

/// `moves` → `move`, `moves`, `moved`, `moving`; `stays` → `stay`, `stays`, `stayed`,
/// `staying`.
fn verb_forms(third_person: &str) -> Vec<String> {
    let base = third_person.strip_suffix('s').unwrap_or(third_person);
    let (past, ing) = match base.strip_suffix('e') {
        Some(stem) => (format!("{base}d"), format!("{stem}ing")),
        None => (format!("{base}ed"), format!("{base}ing")),
    };
    vec![base.to_owned(), third_person.to_owned(), past, ing]
}

fn is_colour(word: &str) -> bool {
    Colour::from_name(word).is_some() || Background::from_name(word).is_some()
}

/// The shape a word names, singular or plural.
fn shape(word: &str) -> Option<Shape> {
    Shape::from_name(word).or_else(|| Shape::from_name(word.strip_suffix('s')?))
}

#[derive(Default)]
struct Reader {
    facts: BTreeSet<Fact>,
    /// A negation was read earlier in this clause.
    negated: bool,
    /// The object a motion phrase now belongs to; `None` after a shape without a
    /// colour, a sign or a negated object.
    subject: Option<String>,
    /// This sentence has the word `sign`.
    sentence_has_sign: bool,
    /// Sign words of this sentence, not negated.
    sign_words: Vec<&'static str>,
}

impl Reader {
    /// Reads what starts at `tokens[i]`; returns how many tokens it took (at least 1).
    fn step(&mut self, tokens: &[Token], i: usize) -> usize {
        let word = match &tokens[i] {
            Token::Sentence => {
                self.end_sentence();
                self.negated = false;
                return 1;
            }
            Token::Clause => {
                self.negated = false;
                return 1;
            }
            Token::Word(w) => w.as_str(),
        };
        let next = tokens.get(i + 1).and_then(Token::word);
        if CLAUSE_WORDS.contains(&word) {
            self.negated = false;
            return 1;
        }
        if let Some(taken) = negation(word, next) {
            self.negated = true;
            return taken;
        }
        if let Some((phrase, taken)) = motion_at(tokens, i) {
            if let (false, Some(object)) = (self.negated, &self.subject) {
                self.facts.insert(Fact::Motion {
                    object: object.clone(),
                    motion: phrase.to_owned(),
                });
            }
            return taken;
        }
        if is_colour(word) {
            if let Some(shape) = next.and_then(shape) {
                let object = object_label(word, shape);
                self.subject = None;
                if !self.negated {
                    self.facts.insert(Fact::Object {
                        object: object.clone(),
                    });
                    self.subject = Some(object);
                }
                return 2;
            }
            if matches!(next, Some("background" | "backdrop")) {
                self.background(word);
                return 2;
            }
        }
        if matches!(word, "background" | "backdrop")
            && matches!(next, Some("is" | "was" | "remains"))
            && let Some(colour) = tokens.get(i + 2).and_then(Token::word)
            && is_colour(colour)
        {
            self.background(colour);
            return 3;
        }
        if shape(word).is_some() {
            // A shape without a colour: what follows is not about the last object.
            self.subject = None;
        } else if matches!(word, "sign" | "signs") {
            self.sentence_has_sign = true;
            self.subject = None;
        } else if let Some(sign) = SIGN_WORDS
            .into_iter()
            .find(|w| w.eq_ignore_ascii_case(word))
            && !self.negated
        {
            self.sign_words.push(sign);
        }
        1
    }

    fn background(&mut self, colour: &str) {
        if !self.negated {
            self.facts.insert(Fact::Background {
                colour: colour.to_owned(),
            });
        }
    }

    fn end_sentence(&mut self) {
        let words = std::mem::take(&mut self.sign_words);
        if std::mem::take(&mut self.sentence_has_sign) {
            for word in words {
                self.facts.insert(Fact::Sign {
                    word: word.to_owned(),
                });
            }
        }
    }
}

/// How many tokens a negation starting with `word` takes, if it is one.
fn negation(word: &str, next: Option<&str>) -> Option<usize> {
    if word == "not" && next == Some("only") {
        return None;
    }
    if NEGATIONS.contains(&word) || word.ends_with("n't") {
        return Some(1);
    }
    NEGATION_PAIRS
        .iter()
        .any(|&(first, second)| word == first && next == Some(second))
        .then_some(2)
}

/// The longest motion phrase starting at `tokens[i]`, with the tokens it takes.
fn motion_at(tokens: &[Token], i: usize) -> Option<(&'static str, usize)> {
    let verb = tokens[i].word()?;
    let skip_articles = |mut j: usize| {
        while tokens
            .get(j)
            .and_then(Token::word)
            .is_some_and(|w| ARTICLES.contains(&w))
        {
            j += 1;
        }
        j
    };
    PHRASES
        .iter()
        .filter(|p| p.verbs.iter().any(|v| v == verb))
        .filter_map(|p| {
            let mut j = i + 1;
            for expected in &p.rest {
                j = skip_articles(j);
                if tokens.get(j).and_then(Token::word) != Some(expected.as_str()) {
                    return None;
                }
                j += 1;
            }
            let after = tokens.get(skip_articles(j)).and_then(Token::word);
            if after.is_some_and(|w| PLACE_WORDS.contains(&w)) {
                return None;
            }
            Some((p.text.as_str(), j - i))
        })
        .max_by_key(|&(_, taken)| taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The facts of `caption` as text, in the set's order (objects, motions,
    /// backgrounds, signs).
    fn read(caption: &str) -> Vec<String> {
        facts(caption).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_world_s_own_captions_are_read_whole() {
        assert_eq!(
            read(
                "A red circle moves from left to right while a blue square stays in the top \
                 left corner on a white background."
            ),
            [
                "blue square",
                "red circle",
                "blue square stays in the top left corner",
                "red circle moves from left to right",
                "white background"
            ]
        );
        assert_eq!(
            read(
                "An orange triangle moves diagonally from the bottom right to the top left on \
                 a gray background. A sign reads \"OPEN\"."
            ),
            [
                "orange triangle",
                "orange triangle moves diagonally from the bottom right to the top left",
                "gray background",
                "sign \"OPEN\""
            ]
        );
    }

    #[test]
    fn grounded_frame_captions_lose_their_boxes_and_keep_their_words() {
        assert_eq!(
            read(
                "a red circle [120, 340, 260, 480] and a sign \"OPEN\" [600, 80, 720, 200] on \
                 a white background"
            ),
            ["red circle", "white background", "sign \"OPEN\""]
        );
        // Frame numbering: `No.1` is no negation, the `.` ends it.
        assert_eq!(
            read("No.1 frame: a blue triangle [1, 2, 30, 40]. No.2 frame: a blue triangle."),
            ["blue triangle"]
        );
        // Nested brackets swallow what they hold, nothing more.
        assert_eq!(read("a [[1, 2], 3] green square"), ["green square"]);
    }

    #[test]
    fn the_motion_caption_s_style_is_read_and_its_sign_is_no_object() {
        assert_eq!(
            read(
                "The red circle moves from left to right while the sign \"open\" stays at the \
                 top."
            ),
            [
                "red circle",
                "red circle moves from left to right",
                "sign \"OPEN\""
            ]
        );
    }

    #[test]
    fn negations_the_vocabulary_does_not_cover_state_nothing() {
        for caption in [
            "There is no red circle.",
            "not a square",
            "There are no red circles in the frame.",
            "The video shows neither a blue square nor a green triangle.",
            "A scene without a purple circle.",
            "The background isn't white.",
            "The sign does not read OPEN.",
            "No sign reads STOP.",
            "It never moves from left to right.",
        ] {
            assert_eq!(read(caption), Vec::<String>::new(), "{caption}");
        }
        // A negated motion keeps the object named before the negation.
        assert_eq!(
            read("A red circle does not move from left to right."),
            ["red circle"]
        );
        // A negation ends with its clause.
        assert_eq!(
            read("There is no red circle, but a blue square stays in the center."),
            ["blue square", "blue square stays in the center"]
        );
        assert_eq!(
            read("not a square; a yellow circle instead of a green circle"),
            ["yellow circle"]
        );
        assert_eq!(
            read("Not only a red circle but also a blue square."),
            ["blue square", "red circle"]
        );
    }

    #[test]
    fn paraphrases_outside_the_vocabulary_are_no_facts() {
        for caption in [
            "A circle that is red slides to the right.",
            "A crimson ball travels across the screen.",
            "The square remains still in the middle.",
            "A red shape moves from left to right.",
            "Something moves from left to right.",
            "A pink hexagon bounces.",
        ] {
            assert_eq!(read(caption), Vec::<String>::new(), "{caption}");
        }
        // The object is in the vocabulary, its motion is not.
        assert_eq!(
            read("A red circle glides smoothly to the right."),
            ["red circle"]
        );
        // Another place than the world's phrase names.
        assert_eq!(
            read("A red circle stays at the top right of the frame."),
            ["red circle"]
        );
    }

    #[test]
    fn verb_forms_articles_spellings_and_pronouns_are_read() {
        assert_eq!(
            read("A green circle is moving from the left to the right."),
            ["green circle", "green circle moves from left to right"]
        );
        assert_eq!(
            read("A grey background. A yellow square stayed in the centre."),
            [
                "yellow square",
                "yellow square stays in the center",
                "gray background"
            ]
        );
        assert_eq!(
            read("There is a purple triangle. It keeps bouncing around the frame."),
            [
                "purple triangle",
                "purple triangle bounces around the frame"
            ]
        );
        assert_eq!(
            read("The background is black and the top-left corner holds a red square."),
            ["red square", "black background"]
        );
        assert_eq!(
            read("The red circle's path: it moves from right to left."),
            ["red circle", "red circle moves from right to left"]
        );
    }

    #[test]
    fn a_motion_belongs_to_the_last_object_named_and_to_nobody_after_a_bare_shape() {
        assert_eq!(
            read("A red circle appears. A square moves from top to bottom."),
            ["red circle"]
        );
        assert_eq!(
            read("A red circle and a sign. It stays on the left."),
            ["red circle"]
        );
        assert_eq!(
            read("A red circle and a blue circle move from bottom to top."),
            [
                "blue circle",
                "red circle",
                "blue circle moves from bottom to top"
            ]
        );
    }

    #[test]
    fn colours_the_world_gives_only_backgrounds_still_name_objects() {
        assert_eq!(
            read("A white square on a red background."),
            ["white square", "red background"]
        );
    }

    #[test]
    fn sign_words_count_only_in_a_sentence_about_a_sign() {
        assert_eq!(read("The bus stops at the park."), Vec::<String>::new());
        assert_eq!(read("OPEN is written on a sign. Stop."), ["sign \"OPEN\""]);
        assert_eq!(
            read("A sign reads \"CAFE\" and \"BANK\"."),
            ["sign \"BANK\"", "sign \"CAFE\""]
        );
    }

    #[test]
    fn saying_a_fact_twice_counts_once() {
        assert_eq!(
            read("A red circle. A red circle! a RED CIRCLE"),
            ["red circle"]
        );
    }

    #[test]
    fn every_world_phrase_is_read_back_as_itself() {
        for phrase in Motion::all_phrases() {
            let caption = format!("A blue square {phrase}.");
            assert_eq!(
                read(&caption),
                ["blue square".to_owned(), format!("blue square {phrase}")],
                "{caption}"
            );
        }
        assert_eq!(
            verb_forms("bounces"),
            ["bounce", "bounces", "bounced", "bouncing"]
        );
        assert_eq!(verb_forms("stays"), ["stay", "stays", "stayed", "staying"]);
    }
}
