//! The fusion guard (DESIGN.md, "Every LLM output passes the fusion guard"): a summary
//! or fused text is checked before it is stored. A text fails when it holds machine
//! syntax (boxes, frame numbering), loops (a word 4-gram three times), names nothing
//! from its inputs or copies one of them, or was cut off at the token cap mid-sentence.
//!
//! On a failure the stage retries once, seeded, with sampling and a penalty; when that
//! fails too, the output is the consensus pick: the candidate (the attempts and the
//! inputs) with the highest mean embedding similarity to the other candidates
//! (minimum-Bayes-risk selection). The path taken is recorded with the output.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::prompts;

/// `[wolf] guard`: what a failed check leads to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardMode {
    /// No check: the first output is stored as it is.
    Off,
    /// Check, retry once; a second failure fails the stage.
    Retry,
    /// Check, retry once, then take the consensus pick.
    #[default]
    Consensus,
}

impl GuardMode {
    /// The mode's name in content keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "guard-off",
            Self::Retry => "guard-v1-retry",
            Self::Consensus => "guard-v1-consensus",
        }
    }
}

/// Why a text failed the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// A box or `No.{j} frame:` numbering.
    MachineSyntax,
    /// A word 4-gram said three times or more.
    Loop { ngram: String },
    /// Not one content word of the inputs.
    Ungrounded,
    /// One input, word for word (or two or more inputs whole).
    Copy,
    /// Stopped at the token cap in the middle of a sentence.
    Truncated,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MachineSyntax => write!(f, "holds boxes or frame numbering"),
            Self::Loop { ngram } => write!(f, "repeats `{ngram}` three times or more"),
            Self::Ungrounded => write!(f, "names nothing from its inputs"),
            Self::Copy => write!(f, "copies its input"),
            Self::Truncated => write!(f, "is cut off at the token cap"),
        }
    }
}

pub use crate::models::loops::{LOOP_REPEATS, LOOP_WORDS};

/// The guard's version, part of the keys of the stages it checks: 2 since its retry
/// never completes a loop ([`crate::models::Sampling::no_loops`]).
pub const VERSION: u32 = 2;
use crate::models::loops::{repeated_ngram, words_of};

/// Checks `text` against its `inputs` (the plain texts it was made from). `at_cap`:
/// the model stopped because it reached its token cap.
pub fn check(text: &str, inputs: &[String], at_cap: bool) -> Result<(), Failure> {
    checked(text, inputs, at_cap, false)
}

/// [`check`] for a long video's story, whose parts say the same things again (`on a
/// white background` in each scene): a word 4-gram is a loop only where the story says
/// it [`LOOP_REPEATS`] times and more often than its parts do together, and a story that
/// tells its parts word for word is no copy (their captions in order are what a story
/// falls back to).
pub fn check_story(text: &str, parts: &[String], at_cap: bool) -> Result<(), Failure> {
    checked(text, parts, at_cap, true)
}

fn checked(text: &str, inputs: &[String], at_cap: bool, story: bool) -> Result<(), Failure> {
    if has_machine_syntax(text) {
        return Err(Failure::MachineSyntax);
    }
    let words = words_of(text);
    let input_words: Vec<Vec<String>> = inputs.iter().map(|i| words_of(i)).collect();
    let looped = if story {
        story_loop(&words, &input_words)
    } else {
        repeated_ngram(&words)
    };
    if let Some(ngram) = looped {
        return Err(Failure::Loop { ngram });
    }
    let known: HashSet<&str> = input_words
        .iter()
        .flatten()
        .map(String::as_str)
        .filter(|w| is_content(w))
        .collect();
    if !known.is_empty() && !words.iter().any(|w| known.contains(w.as_str())) {
        return Err(Failure::Ungrounded);
    }
    if !story && copies(&words, &input_words) {
        return Err(Failure::Copy);
    }
    if at_cap && !ends_a_sentence(text) {
        return Err(Failure::Truncated);
    }
    Ok(())
}

/// How many of `parts` (a long video's segment captions, in order) `text` tells: a part
/// is told when the text holds one of its content words that not every part holds (what
/// sets it apart: a shape, a colour, a sign, not the word all of them share).
pub fn parts_told(text: &str, parts: &[String]) -> usize {
    let words: HashSet<String> = words_of(text).into_iter().collect();
    let part_words: Vec<HashSet<String>> = parts
        .iter()
        .map(|p| words_of(p).into_iter().filter(|w| is_content(w)).collect())
        .collect();
    let everywhere = |w: &String| part_words.iter().all(|p| p.contains(w));
    part_words
        .iter()
        .filter(|p| p.iter().any(|w| !everywhere(w) && words.contains(w)))
        .count()
}

/// Whether `text` says one word three times in a row (`background background
/// background`): a small model's stutter, which the 4-gram loop rule does not see.
pub fn stutters(text: &str) -> bool {
    words_of(text)
        .windows(3)
        .any(|w| w[0] == w[1] && w[1] == w[2])
}

/// A box (`[` then a digit) or frame numbering (`No.1 frame:`).
pub fn has_machine_syntax(text: &str) -> bool {
    let boxes = text.match_indices('[').any(|(i, _)| {
        text[i + 1..]
            .trim_start()
            .starts_with(|c: char| c.is_ascii_digit())
    });
    boxes || prompts::has_frame_numbering(text)
}

/// Words that name something: not a short function word.
fn is_content(word: &str) -> bool {
    const FUNCTION: &[&str] = &[
        "the", "and", "with", "from", "that", "this", "then", "there", "their", "they", "into",
        "over", "while", "each", "video", "clip", "frame", "frames", "image", "scene", "shows",
        "show", "shown", "appears", "visible", "some", "which", "where", "when", "also", "are",
        "was", "were", "its", "has", "have", "been", "being", "for", "but", "not",
    ];
    word.len() >= 3 && !word.bytes().all(|b| b.is_ascii_digit()) && !FUNCTION.contains(&word)
}

/// The text is one input word for word, or holds two or more inputs whole (inputs of
/// four words or more, so that a short caption may be quoted).
/// The first word 4-gram `words` says [`LOOP_REPEATS`] times or more and more often than
/// `parts` say it together.
fn story_loop(words: &[String], parts: &[Vec<String>]) -> Option<String> {
    let said =
        |gram: &[String], text: &[String]| text.windows(LOOP_WORDS).filter(|g| *g == gram).count();
    words.windows(LOOP_WORDS).find_map(|gram| {
        let n = said(gram, words);
        let in_parts: usize = parts.iter().map(|p| said(gram, p)).sum();
        (n >= LOOP_REPEATS && n > in_parts).then(|| gram.join(" "))
    })
}

fn copies(words: &[String], inputs: &[Vec<String>]) -> bool {
    let distinct: HashSet<&Vec<String>> = inputs.iter().filter(|i| !i.is_empty()).collect();
    if distinct.len() < 2 {
        return false;
    }
    if distinct.iter().any(|i| i.as_slice() == words) {
        return true;
    }
    let whole = distinct
        .iter()
        .filter(|i| i.len() >= LOOP_WORDS && contains(words, i))
        .count();
    whole >= 2
}

fn contains(haystack: &[String], needle: &[String]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn ends_a_sentence(text: &str) -> bool {
    text.trim_end().ends_with(['.', '!', '?', '"', ')'])
}

/// The consensus pick: of the first `pickable` candidates, the index of the one with
/// the highest mean cosine similarity to all the other candidates (ties: the earliest).
/// `embeddings` are L2-normalised; the candidates after `pickable` only vote.
pub fn consensus_among(embeddings: &[Vec<f32>], pickable: usize) -> Option<usize> {
    let pickable = pickable.min(embeddings.len());
    if pickable == 0 {
        return None;
    }
    if embeddings.len() == 1 {
        return Some(0);
    }
    let dot = |a: &[f32], b: &[f32]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    };
    let mut best = (0, f64::NEG_INFINITY);
    for (i, a) in embeddings.iter().enumerate().take(pickable) {
        let total: f64 = embeddings
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, b)| dot(a, b))
            .sum();
        let mean = total / (embeddings.len() - 1) as f64;
        if mean > best.1 {
            best = (i, mean);
        }
    }
    Some(best.0)
}

/// How a guarded stage's output was reached, stored with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardRecord {
    /// `fused`, `fused_retry`, `consensus:CANDIDATE` or `unchecked`.
    pub path: String,
    /// The attempts that failed the check, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<Rejected>,
}

/// An attempt that failed the check, kept for inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    pub text: String,
    pub failure: Failure,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_told_by_a_word_that_sets_it_apart() {
        let parts = [
            "A red circle moves left on a white background.",
            "A blue square stays on a white background.",
            "A sign reads PARK on a white background.",
        ]
        .map(String::from);
        assert_eq!(
            parts_told("A white background, white background.", &parts),
            0
        );
        assert_eq!(parts_told("A red circle, then a blue square.", &parts), 2);
        assert_eq!(parts_told("Circle, square, and the sign: PARK.", &parts), 3);
        assert!(stutters("on a white background background background."));
        assert!(!stutters("a white background, a black background."));
    }

    fn inputs() -> Vec<String> {
        vec![
            "a red circle moves to the right".into(),
            "a blue square stays in the centre".into(),
        ]
    }

    #[test]
    fn a_fused_text_that_names_its_inputs_passes() {
        let text = "A red circle moves to the right while a blue square stays still.";
        assert_eq!(check(text, &inputs(), false), Ok(()));
        // At the cap but at the end of a sentence: not cut off.
        assert_eq!(check(text, &inputs(), true), Ok(()));
    }

    #[test]
    fn each_failure_is_named() {
        let i = inputs();
        assert_eq!(
            check("a red circle [10, 20, 30, 40] moves", &i, false),
            Err(Failure::MachineSyntax)
        );
        assert_eq!(
            check("No.1 frame: a red circle moves", &i, false),
            Err(Failure::MachineSyntax)
        );
        assert_eq!(
            check(
                "a sequence of images and a sequence of images and a sequence of images",
                &i,
                false
            ),
            Err(Failure::Loop {
                ngram: "a sequence of images".into()
            })
        );
        assert_eq!(
            check("Nothing happens here at all.", &i, false),
            Err(Failure::Ungrounded)
        );
        assert_eq!(
            check("A red circle moves to the right.", &i, false),
            Err(Failure::Copy)
        );
        assert_eq!(
            check(
                "a red circle moves to the right and a blue square stays in the centre",
                &i,
                false
            ),
            Err(Failure::Copy)
        );
        assert_eq!(
            check("A red circle moves to the right while a blue", &i, true),
            Err(Failure::Truncated)
        );
    }

    #[test]
    fn brackets_that_are_not_boxes_pass() {
        let text = "A red circle passes a sign [EXIT] (on the left).";
        assert!(!has_machine_syntax(text));
        assert!(has_machine_syntax("a circle [ 12,3,4,5]"));
        assert!(has_machine_syntax("at No. 3 frame: a circle"));
    }

    #[test]
    fn a_story_may_say_again_what_its_parts_say_but_not_loop() {
        let parts: Vec<String> = ["white", "gray", "black"]
            .iter()
            .map(|bg| format!("A red circle moves on a {bg} background."))
            .collect();
        let told = "A red circle moves on a white background. Then a red circle moves on a \
                    gray background, and a red circle moves on a black background.";
        // `a red circle moves` three times: as often as the parts say it.
        assert_eq!(check_story(told, &parts, false), Ok(()));
        assert!(matches!(
            check(told, &parts, false),
            Err(Failure::Loop { .. })
        ));
        // The parts in order are a story, not a copy.
        assert_eq!(check_story(&parts.join(" "), &parts, false), Ok(()));
        // More often than the parts: a loop.
        let looped = format!("{told} A red circle moves on and on.");
        assert_eq!(
            check_story(&looped, &parts, false),
            Err(Failure::Loop {
                ngram: "a red circle moves".into()
            })
        );
        assert_eq!(
            check_story("A red circle moves on a white", &parts, true),
            Err(Failure::Truncated)
        );
    }

    #[test]
    fn one_input_alone_may_be_repeated() {
        let one = vec!["a red circle moves".to_owned()];
        assert_eq!(check("a red circle moves", &one, false), Ok(()));
    }

    #[test]
    fn consensus_picks_the_candidate_closest_to_the_others() {
        let e = |x: f32, y: f32| {
            let n = (x * x + y * y).sqrt();
            vec![x / n, y / n]
        };
        let candidates = [e(1.0, 0.0), e(1.0, 1.0), e(0.0, 1.0), e(1.0, 0.9)];
        // The middle direction is closest to everything.
        assert_eq!(consensus_among(&candidates, 4), Some(1));
        // The last two only vote: of the first two, the second is closer to them.
        let voters = [e(0.0, 1.0), e(1.0, 0.0), e(1.0, 0.1), e(1.0, 0.2)];
        assert_eq!(consensus_among(&voters, 2), Some(1));
        assert_eq!(consensus_among(&[], 3), None);
        assert_eq!(consensus_among(&[e(1.0, 0.0)], 1), Some(0));
    }
}
