//! Token efficiency (METHOD.md section 2, the paper's length study): captions cut into
//! sentence prefixes, each prefix scored, and per source the mean score of the first k
//! sentences against their mean length.
//!
//! Length is counted in words (white-space separated), a tokenizer-independent stand-in
//! for tokens: judges and embedders each have their own tokenizer.

/// The first 1, 2, ... sentences of a caption (a sentence ends at `.`, `!` or `?`
/// followed by white space or the end). A caption without such an end is one sentence.
pub fn sentence_prefixes(caption: &str) -> Vec<String> {
    let text = caption.trim();
    let mut ends = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        let at_end = chars
            .get(k + 1)
            .is_none_or(|&(_, next)| next.is_whitespace());
        if matches!(c, '.' | '!' | '?') && at_end {
            ends.push(i + c.len_utf8());
        }
    }
    if ends.last() != Some(&text.len()) {
        ends.push(text.len());
    }
    ends.dedup();
    ends.into_iter()
        .map(|end| text[..end].trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Words of a text.
pub fn tokens(text: &str) -> usize {
    text.split_whitespace().count()
}

/// One point of a source's curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub sentences: usize,
    pub mean_tokens: f64,
    pub mean_score: f64,
    /// Captions with at least this many sentences.
    pub count: usize,
}

/// The curve of one source from (prefix sentences, tokens, score) observations.
pub fn curve(observations: &[(usize, usize, f64)]) -> Vec<Point> {
    let most = observations.iter().map(|o| o.0).max().unwrap_or(0);
    (1..=most)
        .filter_map(|k| {
            let at: Vec<&(usize, usize, f64)> = observations.iter().filter(|o| o.0 == k).collect();
            (!at.is_empty()).then(|| Point {
                sentences: k,
                mean_tokens: at.iter().map(|o| o.1 as f64).sum::<f64>() / at.len() as f64,
                mean_score: at.iter().map(|o| o.2).sum::<f64>() / at.len() as f64,
                count: at.len(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_grow_one_sentence_at_a_time() {
        assert_eq!(
            sentence_prefixes("A red circle moves. It stops! Then? the end"),
            vec![
                "A red circle moves.",
                "A red circle moves. It stops!",
                "A red circle moves. It stops! Then?",
                "A red circle moves. It stops! Then? the end",
            ]
        );
        assert_eq!(
            sentence_prefixes("a sign reads 3.5 m"),
            vec!["a sign reads 3.5 m"]
        );
        assert!(sentence_prefixes("   ").is_empty());
    }

    #[test]
    fn the_curve_averages_each_prefix_length() {
        let points = curve(&[(1, 4, 0.5), (1, 6, 0.7), (2, 10, 0.9)]);
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].count, 2);
        assert!((points[0].mean_tokens - 5.0).abs() < 1e-12);
        assert!((points[0].mean_score - 0.6).abs() < 1e-12);
        assert_eq!(points[1].sentences, 2);
    }
}
