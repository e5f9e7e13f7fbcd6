//! Loops in generated text: a word n-gram said too often. The fusion guard rejects a
//! text with one (`wolf::guard`), and a generator asked for [`Sampling::no_loops`]
//! never writes one (the `onnx` backend: a token that would complete such an n-gram is
//! passed over for the next best).
//!
//! [`Sampling::no_loops`]: super::Sampling::no_loops

use std::collections::HashMap;

/// The words of the smallest loop.
pub const LOOP_WORDS: usize = 4;
/// How often a [`LOOP_WORDS`]-gram may appear before it is a loop.
pub const LOOP_REPEATS: usize = 3;

/// Lower-case words without surrounding punctuation.
pub fn words_of(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The first word [`LOOP_WORDS`]-gram that appears [`LOOP_REPEATS`] times.
pub fn repeated_ngram(words: &[String]) -> Option<String> {
    let mut counts: HashMap<&[String], usize> = HashMap::new();
    for gram in words.windows(LOOP_WORDS) {
        let count = counts.entry(gram).or_default();
        *count += 1;
        if *count >= LOOP_REPEATS {
            return Some(gram.join(" "));
        }
    }
    None
}

/// Whether a [`LOOP_WORDS`]-gram ending at word `from` or later is said
/// [`LOOP_REPEATS`] times or more: the words from `from` on complete a loop (a token
/// may add several words at once).
pub fn completes_loop(words: &[String], from: usize) -> bool {
    let first_end = from.max(LOOP_WORDS - 1);
    (first_end..words.len()).any(|end| {
        let gram = &words[end + 1 - LOOP_WORDS..=end];
        words.windows(LOOP_WORDS).filter(|g| *g == gram).count() >= LOOP_REPEATS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fourgram_three_times_is_a_loop() {
        let words = words_of("A red circle moves left, a red circle moves up. A red circle moves!");
        assert_eq!(
            repeated_ngram(&words).as_deref(),
            Some("a red circle moves")
        );
        assert!(repeated_ngram(&words_of("a red circle moves and a red circle moves")).is_none());
        assert!(completes_loop(&words, words.len() - 1));
        // Several words at once: the loop ends before the last word.
        let more = words_of(
            "a red circle moves left, a red circle moves up. A red circle moves on and on",
        );
        assert!(completes_loop(&more, 11));
        assert!(completes_loop(&more, 13));
        assert!(!completes_loop(&more, 14));
        assert!(!completes_loop(&words_of("a red"), 0));
    }
}
