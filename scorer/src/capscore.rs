//! CapScore (METHOD.md section 2): an LLM judge gives a candidate caption two scores
//! in [0, 1] against the reference, similarity and quality.
//!
//! - Pointwise (the default): one candidate per call, reply `similarity;quality`. A
//!   score does not depend on which other captions were judged, so scores of different
//!   submissions compare.
//! - Listwise (the paper's mode, for reproducing its tables): up to five candidates per
//!   call with the paper's prompt, reply `x,x,x,x,x;x,x,x,x,x`; the candidates' order is
//!   shuffled per sample with a seed and mapped back.
//!
//! Replies are parsed strictly: exactly the specified form, numbers in [0, 1] with at
//! most two decimals; anything else is `parse_failed`, never coerced to a number.

/// A judge prompt and its version (the version is part of every cached judgement's
/// key): the pipeline's one prompt type.
pub use wolf_pipeline::wolf::prompts::Prompt;

/// Pointwise: one candidate against the reference.
pub const POINTWISE: Prompt = Prompt {
    version: "capscore-pointwise-v1",
    text: "Can you give a score (two decimal places) from 0 to 1 for the caption, indicating \
           how close it is to the ground truth caption in content and context (metric 1) and \
           how few hallucinations and how little misalignment it contains (metric 2)? Please \
           output only the two scores separated only by a semicolon, in the form \"x.xx;x.xx\" \
           - no text in the output.\nGround truth caption: {reference}\nCaption: {candidate}",
};

/// Listwise: the paper's prompt and the script's addition, for `n` candidates.
pub const LISTWISE: Prompt = Prompt {
    version: "capscore-listwise-v1",
    text: "Can you give a score (two decimal places) from 0 to 1 for captions {numbers}, \
           indicating which one is closer to the ground truth caption (metric 1) and which \
           contains fewer hallucinations and less misalignment (metric 2)? Please output only \
           the scores of each metric separated only by a semicolon. For each metric, please \
           output only the scores of captions {numbers} separated by commas, in order\u{2014}no \
           text in the output. No text in the output and the scores of two metrics should be \
           different and the scores are not 0. The format should be \"{format}\"\nGround \
           truth caption: {reference}\n{captions}",
};

/// The most candidates in one listwise call (the paper's five).
pub const MAX_LISTWISE: usize = 5;

/// The pointwise prompt for one candidate.
pub fn pointwise_prompt(reference: &str, candidate: &str) -> String {
    POINTWISE
        .text
        .replace("{reference}", reference.trim())
        .replace("{candidate}", candidate.trim())
}

/// The listwise prompt for up to five candidates, in the order given.
pub fn listwise_prompt(reference: &str, candidates: &[&str]) -> String {
    let n = candidates.len();
    let numbers = match n {
        0 | 1 => "1".to_owned(),
        _ => {
            let first: Vec<String> = (1..n).map(|i| i.to_string()).collect();
            format!("{} and {n}", first.join(", "))
        }
    };
    let half = vec!["x"; n].join(",");
    let captions: Vec<String> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| format!("Caption {}: {}", i + 1, c.trim()))
        .collect();
    LISTWISE
        .text
        .replace("{numbers}", &numbers)
        .replace("{format}", &format!("{half};{half}"))
        .replace("{reference}", reference.trim())
        .replace("{captions}", &captions.join("\n"))
}

/// One score: digits `0` or `1`, optionally a point and one or two decimals, in [0, 1].
fn score(text: &str) -> Option<f64> {
    let t = text.trim();
    let (whole, fraction) = match t.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (t, None),
    };
    if !(whole == "0" || whole == "1") {
        return None;
    }
    if let Some(f) = fraction
        && (f.is_empty() || f.len() > 2 || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let value: f64 = t.parse().ok()?;
    (0.0..=1.0).contains(&value).then_some(value)
}

/// `similarity;quality` → the two scores.
pub fn parse_pointwise(reply: &str) -> Option<(f64, f64)> {
    let (a, b) = reply.trim().split_once(';')?;
    Some((score(a)?, score(b)?))
}

/// `x,...,x;x,...,x` with exactly `n` scores on each side.
pub fn parse_listwise(reply: &str, n: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    let (a, b) = reply.trim().split_once(';')?;
    let side = |s: &str| -> Option<Vec<f64>> {
        let values: Option<Vec<f64>> = s.split(',').map(score).collect();
        values.filter(|v| v.len() == n)
    };
    Some((side(a)?, side(b)?))
}

/// A permutation of `0..n` drawn from `seed` (splitmix64, Fisher-Yates): the order in
/// which listwise candidates are shown. `order[k]` is the candidate shown at `k`.
pub fn shuffled_order(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// Scores read in shown order, put back in the candidates' order.
pub fn unshuffle(shown: &[f64], order: &[usize]) -> Vec<f64> {
    let mut out = vec![0.0; shown.len()];
    for (k, &candidate) in order.iter().enumerate() {
        out[candidate] = shown[k];
    }
    out
}

/// The mean and a 95% percentile bootstrap interval (`resamples` draws, seeded).
pub fn mean_and_interval(values: &[f64], resamples: usize, seed: u64) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Some((mean, mean, mean));
    }
    let mut state = seed | 1;
    let mut draw = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Multiply-shift instead of a modulo: a division per draw was most of the
        // time of an interval over 10,000 videos.
        ((u128::from(state) * n as u128) >> 64) as usize
    };
    let mut means: Vec<f64> = (0..resamples.max(1))
        .map(|_| (0..n).map(|_| values[draw()]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (means.len() - 1) as f64).round() as usize).min(means.len() - 1)];
    Some((mean, at(0.025), at(0.975)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_specified_pointwise_forms_parse() {
        assert_eq!(parse_pointwise("0.85;0.90"), Some((0.85, 0.9)));
        assert_eq!(parse_pointwise(" 1.00 ; 0.5 "), Some((1.0, 0.5)));
        assert_eq!(parse_pointwise("1;0"), Some((1.0, 0.0)));
        for bad in [
            "",
            "0.85",
            "0.85;",
            ";0.9",
            "0.85,0.90",
            "1.01;0.5",
            "0.855;0.5",
            "-0.1;0.5",
            "0.5;0.5;0.5",
            "Scores: 0.85;0.90",
            "0.85;0.90 (good)",
            ".5;.5",
            "0.;0.5",
            "2;0",
            "00.5;0.5",
            "0.5;nan",
            "1e-1;0.5",
            "+0.5;0.5",
        ] {
            assert_eq!(parse_pointwise(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn listwise_needs_exactly_n_scores_a_side() {
        assert_eq!(
            parse_listwise("0.1,0.2,0.3,0.4,0.5;0.5,0.4,0.3,0.2,0.1", 5),
            Some((vec![0.1, 0.2, 0.3, 0.4, 0.5], vec![0.5, 0.4, 0.3, 0.2, 0.1]))
        );
        assert_eq!(parse_listwise("0.1,0.2,0.3,0.4;0.5,0.4,0.3,0.2", 5), None);
        assert_eq!(
            parse_listwise("0.1,0.2,0.3,0.4,0.5,0.6;0.1,0.2,0.3,0.4,0.5,0.6", 5),
            None
        );
        assert_eq!(
            parse_listwise("0.1,0.2,0.3,0.4,0.5;0.5,0.4,0.3,0.2,1.5", 5),
            None
        );
    }

    #[test]
    fn random_replies_never_panic_and_rarely_parse() {
        let mut state = 12345u64;
        let alphabet: Vec<char> = "0123456789.;, -+eE\nabc\u{e9}".chars().collect();
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            let text: String = (0..len)
                .map(|i| alphabet[((state >> (i % 50)) as usize + i) % alphabet.len()])
                .collect();
            if let Some((a, b)) = parse_pointwise(&text) {
                assert!(
                    (0.0..=1.0).contains(&a) && (0.0..=1.0).contains(&b),
                    "{text:?}"
                );
            }
            let _ = parse_listwise(&text, 5);
        }
    }

    #[test]
    fn a_shuffle_maps_back() {
        for seed in 0..50 {
            let order = shuffled_order(5, seed);
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
            let truth = [0.1, 0.2, 0.3, 0.4, 0.5];
            let shown: Vec<f64> = order.iter().map(|&c| truth[c]).collect();
            assert_eq!(unshuffle(&shown, &order), truth.to_vec());
        }
        assert_ne!(shuffled_order(5, 1), shuffled_order(5, 2));
    }

    #[test]
    fn the_listwise_prompt_is_the_papers() {
        let p = listwise_prompt("a red circle", &["a", "b", "c", "d", "e"]);
        assert!(p.contains("for captions 1, 2, 3, 4 and 5, indicating"));
        assert!(p.contains("\"x,x,x,x,x;x,x,x,x,x\""));
        assert!(p.contains("Ground truth caption: a red circle\nCaption 1: a\n"));
    }

    #[test]
    fn the_interval_holds_the_mean() {
        let values: Vec<f64> = (0..40).map(|i| (i % 10) as f64 / 10.0).collect();
        let (mean, low, high) = mean_and_interval(&values, 2000, 7).unwrap();
        assert!(low <= mean && mean <= high && low < high);
        assert!((mean - 0.45).abs() < 1e-12);
    }
}
