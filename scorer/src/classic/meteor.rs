//! METEOR 1.5 (Denkowski and Lavie 2014) for English with its exact and stem modules,
//! ported from `meteor-1.5.jar` as pycocoevalcap runs it (`-l en -norm`, one `SCORE` line
//! per item, then `EVAL` over all of them).
//!
//! What is ported, step by step as the jar does it:
//! - normalisation (`-norm`, `Normalizer.normalizeLine` with punctuation kept): a Moses-style
//!   re-tokenisation of the already PTB-tokenized caption (`'s` becomes `' s`, `n't` becomes
//!   `n 't`, hyphens between letters become spaces, `u.s.` becomes `us`, symbols are split
//!   off), then lower case;
//! - alignment: every exact and every stem match (Snowball English, see [`super::stem`]) is
//!   a candidate; matches that are the only ones for both of their words are fixed; the rest
//!   is resolved by the jar's beam search (beam 40, most matched words first, then fewest
//!   chunks, then least distance), including its integer arithmetic (a stem match adds
//!   `(int)(0.5)`, that is nothing, to the search's match count) and its habit of adding a
//!   match's distance to the path it branched from;
//! - statistics: content and function words (the jar's English function-word list),
//!   matches per module, chunks;
//! - score: parameters alpha 0.85, beta 0.2, gamma 0.6, delta 0.75 and module weights 1.0
//!   (exact) and 0.6 (stem) of METEOR 1.5's default "rank" task; P and R weight content
//!   words by delta and function words by 1 - delta; `Fmean = 1 / ((1-a)/P + a/R)`;
//!   penalty `gamma * (chunks / mean matches)^beta`; the best reference (highest score)
//!   gives the item's statistics; the corpus score is computed from the summed statistics
//!   (an item matched in full adds no chunk), not by averaging.
//!
//! Not ported: the synonym (WordNet) and paraphrase modules of the English default. Their
//! data (6 MB of WordNet synsets and a 60 MB paraphrase table) is not available as a
//! crate; without them fewer words match and the fixed/ambiguous split of the matches
//! differs, so scores are lower than pycocoevalcap's. `docs/METRICS.md` gives the measured
//! difference; against the same jar restricted to `-m "exact stem"` the port agrees to
//! rounding.

use std::collections::HashMap;

use super::TokenizedPair;
use super::stem::stem;

const ALPHA: f64 = 0.85;
const BETA: f64 = 0.2;
const GAMMA: f64 = 0.6;
const DELTA: f64 = 0.75;
/// Scoring weights of the modules in use (exact, stem).
const MODULE_WEIGHTS: [f64; MODULES] = [1.0, 0.6];
/// The weights the aligner's search uses (the jar sets 1.0 for exact, 0.5 for the rest).
const SEARCH_WEIGHTS: [f64; MODULES] = [1.0, 0.5];
const MODULES: usize = 2;
const BEAM: usize = 40;

/// `function/english.words` from the jar.
const FUNCTION_WORDS: &[&str] = &[
    "the", ",", ".", "to", "of", "and", "a", "in", "that", "for", "\"", "is", "on", "'s", "it",
    "with", "was", "as", "said", "at", "he", "by", "be", "from", "have", "has", "are", "his",
    "but", "an", "this", "not", "i", "will", "\u{2019}", "they", ")", "-rrb-", "(", "-lrb-", "who",
    "their", "had", "we", "which", "were", "been", "more", "or", "s", "its", "would", "about",
    "new", "one", "after", "you", ":", "also", "up", "when", "there", "than", "$", "all", "out",
    "her", "people", "she", "year", "two", "-", "can", "if", "last", "first", "\u{201c}", "over",
    "other", "\u{201d}", "into", "some", "what", "so", "--", "no", "time", "years", "could", "?",
    "'t", "\u{2014}", "'", "",
];

/// `nonbreaking/english.prefixes`: prefixes whose period stays; `true` for those that keep it
/// only before a number.
const NONBREAKING: &[(&str, bool)] = &[
    ("Adj", false),
    ("Adm", false),
    ("Adv", false),
    ("Asst", false),
    ("Bart", false),
    ("Bldg", false),
    ("Brig", false),
    ("Bros", false),
    ("Capt", false),
    ("Cmdr", false),
    ("Col", false),
    ("Comdr", false),
    ("Con", false),
    ("Corp", false),
    ("Cpl", false),
    ("DR", false),
    ("Dr", false),
    ("Drs", false),
    ("Ens", false),
    ("Gen", false),
    ("Gov", false),
    ("Hon", false),
    ("Hr", false),
    ("Hosp", false),
    ("Insp", false),
    ("Lt", false),
    ("MM", false),
    ("MR", false),
    ("MRS", false),
    ("MS", false),
    ("Maj", false),
    ("Messrs", false),
    ("Mlle", false),
    ("Mme", false),
    ("Mr", false),
    ("Mrs", false),
    ("Ms", false),
    ("Msgr", false),
    ("Op", false),
    ("Ord", false),
    ("Pfc", false),
    ("Ph", false),
    ("Prof", false),
    ("Pvt", false),
    ("Rep", false),
    ("Reps", false),
    ("Res", false),
    ("Rev", false),
    ("Rt", false),
    ("Sen", false),
    ("Sens", false),
    ("Sfc", false),
    ("Sgt", false),
    ("Sr", false),
    ("St", false),
    ("Supt", false),
    ("Surg", false),
    ("v", false),
    ("vs", false),
    ("i.e", false),
    ("rev", false),
    ("e.g", false),
    ("No", true),
    ("Nos", false),
    ("Art", true),
    ("Nr", false),
    ("pp", true),
];

/// The normaliser's `alpha` class: Latin letters with Western European diacritics, Cyrillic.
fn is_alpha(c: char) -> bool {
    c.is_ascii_alphabetic()
        || matches!(c, '\u{160}' | '\u{17d}' | '\u{161}' | '\u{17e}' | '\u{178}')
        || matches!(c, '\u{c0}'..='\u{d6}' | '\u{d8}'..='\u{f6}' | '\u{f8}'..='\u{17e}')
        || matches!(c, '\u{400}'..='\u{4ff}' | '\u{500}'..='\u{527}' | '\u{a640}'..='\u{a66e}')
        || matches!(c, '\u{a67e}'..='\u{a697}' | '\u{1d00}'..='\u{1d7f}')
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_digit() || is_alpha(c)
}

/// Java's `\s`.
fn is_java_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// `java.util.StringTokenizer`'s default delimiters.
fn is_tokenizer_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{c}')
}

/// Java's `replaceAll` for a three-character pattern `(a)m(b)`: matches do not overlap,
/// and the search goes on after each match's last character.
fn replace3(
    s: &[char],
    a: impl Fn(char) -> bool,
    m: impl Fn(char) -> bool,
    b: impl Fn(char) -> bool,
    with: impl Fn(char, char, &mut Vec<char>),
) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < s.len() {
        if i + 2 < s.len() && a(s[i]) && m(s[i + 1]) && b(s[i + 2]) {
            with(s[i], s[i + 2], &mut out);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

fn push_str(out: &mut Vec<char>, s: &str) {
    out.extend(s.chars());
}

fn replace_literal(s: &[char], from: &str, to: &str) -> Vec<char> {
    let text: String = s.iter().collect();
    text.replace(from, to).chars().collect()
}

/// METEOR's `Normalizer.normalizeLine(line, English, keepPunctuation = true)`.
pub fn normalize(line: &str) -> String {
    let mut w: Vec<char> = format!(" {line} ").chars().collect();
    // Separate every character that is not alphanumeric, space, . ' ` , - ‘ ’.
    let mut sep = Vec::with_capacity(w.len() * 2);
    for &c in &w {
        if is_alnum(c)
            || is_java_space(c)
            || matches!(c, '.' | '\'' | '`' | ',' | '-' | '\u{2018}' | '\u{2019}')
        {
            sep.push(c);
        } else {
            sep.push(' ');
            sep.push(c);
            sep.push(' ');
        }
    }
    w = sep;
    // Escape runs of dots: `\.([\.]+)` -> ` DOTMULTI$1`.
    let mut out = Vec::with_capacity(w.len());
    let mut i = 0;
    while i < w.len() {
        if w[i] == '.' && w.get(i + 1) == Some(&'.') {
            let n = w[i..].iter().take_while(|&&c| c == '.').count();
            push_str(&mut out, " DOTMULTI");
            out.extend(std::iter::repeat_n('.', n - 1));
            i += n;
        } else {
            out.push(w[i]);
            i += 1;
        }
    }
    w = out;
    while w.iter().collect::<String>().contains("DOTMULTI.") {
        // `DOTMULTI\.([^\.])` -> `DOTDOTMULTI $1`, then `DOTMULTI.` -> `DOTDOTMULTI`.
        let text: String = w.iter().collect();
        let mut next = String::with_capacity(text.len() + 8);
        let mut rest = text.as_str();
        while let Some(p) = rest.find("DOTMULTI.") {
            let after = &rest[p + "DOTMULTI.".len()..];
            match after.chars().next() {
                Some(c) if c != '.' => {
                    next.push_str(&rest[..p]);
                    next.push_str("DOTDOTMULTI ");
                    next.push(c);
                    rest = &after[c.len_utf8()..];
                }
                _ => {
                    next.push_str(&rest[..p + "DOTMULTI.".len()]);
                    rest = after;
                }
            }
        }
        next.push_str(rest);
        w = replace_literal(
            &next.chars().collect::<Vec<_>>(),
            "DOTMULTI.",
            "DOTDOTMULTI",
        );
    }
    // Commas, except inside numbers.
    let digit = |c: char| c.is_ascii_digit();
    let comma = |a: char, b: char, o: &mut Vec<char>| {
        o.push(a);
        push_str(o, " , ");
        o.push(b);
    };
    w = replace3(&w, |c| !digit(c), |c| c == ',', |c| !digit(c), comma);
    w = replace3(&w, digit, |c| c == ',', |c| !digit(c), comma);
    w = replace3(&w, |c| !digit(c), |c| c == ',', digit, comma);
    // Quotes: ` ‘ ’ become ', and “ ” '' become " (spaced).
    w = w
        .iter()
        .map(|&c| {
            if matches!(c, '`' | '\u{2018}' | '\u{2019}') {
                '\''
            } else {
                c
            }
        })
        .collect();
    let mut out = Vec::with_capacity(w.len());
    let mut i = 0;
    while i < w.len() {
        if matches!(w[i], '\u{201c}' | '\u{201d}') {
            push_str(&mut out, " \" ");
            i += 1;
        } else if w[i] == '\'' && w.get(i + 1) == Some(&'\'') {
            push_str(&mut out, " \" ");
            i += 2;
        } else {
            out.push(w[i]);
            i += 1;
        }
    }
    w = out;
    // Dashes.
    w = replace_literal(&w, "\u{2013}", "-");
    w = replace_literal(&w, "--", "-");
    w = replace3(
        &w,
        |c| is_alnum(c) || c == '.',
        |c| c == '-',
        is_alnum,
        |a, b, o| {
            o.push(a);
            o.push(' ');
            o.push(b);
        },
    );
    // English contractions split to the right.
    let spaced = |a: char, b: char, o: &mut Vec<char>| {
        o.push(a);
        push_str(o, " ' ");
        o.push(b);
    };
    let joined = |a: char, b: char, o: &mut Vec<char>| {
        o.push(a);
        push_str(o, " '");
        o.push(b);
    };
    let apos = |c: char| c == '\'';
    w = replace3(&w, |c| !is_alpha(c), apos, |c| !is_alpha(c), spaced);
    w = replace3(&w, |c| !is_alpha(c) && !digit(c), apos, is_alpha, spaced);
    w = replace3(&w, is_alpha, apos, |c| !is_alpha(c), spaced);
    w = replace3(&w, is_alpha, apos, is_alpha, joined);
    w = replace3(&w, digit, apos, |c| c == 's', joined);
    // Periods: split unless the word is a non-breaking prefix or an acronym.
    let text: String = w.iter().collect();
    let words: Vec<&str> = text
        .split(is_tokenizer_space)
        .filter(|s| !s.is_empty())
        .collect();
    let nbp: HashMap<&str, bool> = NONBREAKING.iter().copied().collect();
    let mut rebuilt = String::with_capacity(text.len() + 8);
    for (k, word) in words.iter().enumerate() {
        let next = words.get(k + 1);
        if word.encode_utf16().count() > 1 && word.ends_with('.') {
            let pre = &word[..word.len() - 1];
            let kind = nbp.get(pre).copied();
            if pre.contains('.') && pre.chars().any(is_alpha) {
                rebuilt.push_str(&word.replace('.', ""));
            } else if kind == Some(false)
                || next.is_some_and(|n| n.starts_with(|c: char| c.is_ascii_lowercase()))
                || (kind == Some(true)
                    && next.is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit())))
            {
                // A non-breaking prefix, a period before a lower-case word, or a
                // numeric-only prefix before a number: the period stays.
                rebuilt.push_str(word);
            } else {
                rebuilt.push_str(pre);
                rebuilt.push_str(" .");
            }
        } else {
            rebuilt.push_str(word);
        }
        rebuilt.push(' ');
    }
    while rebuilt.contains("DOTDOTMULTI") {
        rebuilt = rebuilt.replace("DOTDOTMULTI", "DOTMULTI.");
    }
    let rebuilt = rebuilt.replace("DOTMULTI", ".");
    // Whitespace: the listed Unicode spaces collapse to one, then Java's `trim`.
    let mut out = String::with_capacity(rebuilt.len());
    let mut in_space = false;
    for c in rebuilt.chars() {
        let space = matches!(
            c,
            ' ' | '\u{2000}'..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{a0}'
        );
        if space {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out.trim_matches(|c: char| c <= ' ').to_string()
}

/// The words METEOR aligns for one caption: normalised, lower case, split.
pub fn meteor_words(tokenized: &str) -> Vec<String> {
    normalize(tokenized)
        .to_lowercase()
        .split(is_tokenizer_space)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Match {
    /// Position in the reference.
    start: usize,
    /// Position in the candidate.
    match_start: usize,
    module: usize,
}

#[derive(Clone, Debug)]
struct Partial {
    matches: Vec<Option<Match>>,
    matches1: i32,
    matches2: i32,
    chunks: i32,
    idx: usize,
    last_match_end: i64,
    distance: i32,
    used1: Vec<bool>,
    used2: Vec<bool>,
}

impl Partial {
    fn is_used(&self, m: &Match) -> bool {
        self.used2[m.start] || self.used1[m.match_start]
    }

    /// Adds a match to the search's counts (`matches1 += 1 * weight` on an int field).
    fn count(&mut self, m: &Match) {
        let w = SEARCH_WEIGHTS[m.module];
        self.matches1 = (f64::from(self.matches1) + w) as i32;
        self.matches2 = (f64::from(self.matches2) + w) as i32;
        if self.last_match_end != -1 && m.match_start as i64 != self.last_match_end {
            self.chunks += 1;
        }
        self.idx = m.start + 1;
        self.last_match_end = m.match_start as i64 + 1;
    }
}

/// `PARTIAL_COMPARE_TOTAL`: more matched words, then fewer chunks, then less distance.
fn compare(x: &Partial, y: &Partial) -> std::cmp::Ordering {
    (y.matches1 + y.matches2)
        .cmp(&(x.matches1 + x.matches2))
        .then(x.chunks.cmp(&y.chunks))
        .then(x.distance.cmp(&y.distance))
}

/// Sufficient statistics of one candidate against one reference (or summed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeteorStats {
    pub test_length: f64,
    pub reference_length: f64,
    pub test_function_words: f64,
    pub reference_function_words: f64,
    /// Per module: candidate content, reference content, candidate function, reference function.
    pub stage: [[f64; 4]; MODULES],
    pub chunks: f64,
    pub test_word_matches: f64,
    pub reference_word_matches: f64,
}

impl MeteorStats {
    fn total_matches(&self) -> (f64, f64) {
        let t = self.stage.iter().map(|s| s[0] + s[2]).sum();
        let r = self.stage.iter().map(|s| s[1] + s[3]).sum();
        (t, r)
    }

    fn is_perfect(&self) -> bool {
        let (t, r) = self.total_matches();
        t == self.test_length && r == self.reference_length && self.chunks == 1.0
    }

    /// `MeteorStats.addStats`.
    fn add(&mut self, o: &MeteorStats) {
        self.test_length += o.test_length;
        self.reference_length += o.reference_length;
        self.test_function_words += o.test_function_words;
        self.reference_function_words += o.reference_function_words;
        for (a, b) in self.stage.iter_mut().zip(&o.stage) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        if !o.is_perfect() {
            self.chunks += o.chunks;
        }
        self.test_word_matches += o.test_word_matches;
        self.reference_word_matches += o.reference_word_matches;
    }

    /// `MeteorScorer.computeMetrics`: the score of these statistics.
    pub fn score(&self) -> f64 {
        let test_wl = DELTA * (self.test_length - self.test_function_words)
            + (1.0 - DELTA) * self.test_function_words;
        let ref_wl = DELTA * (self.reference_length - self.reference_function_words)
            + (1.0 - DELTA) * self.reference_function_words;
        let mut test_wm = 0.0;
        let mut ref_wm = 0.0;
        for (s, w) in self.stage.iter().zip(MODULE_WEIGHTS) {
            test_wm += s[0] * w * DELTA;
        }
        for (s, w) in self.stage.iter().zip(MODULE_WEIGHTS) {
            ref_wm += s[1] * w * DELTA;
        }
        for (s, w) in self.stage.iter().zip(MODULE_WEIGHTS) {
            test_wm += s[2] * w * (1.0 - DELTA);
        }
        for (s, w) in self.stage.iter().zip(MODULE_WEIGHTS) {
            ref_wm += s[3] * w * (1.0 - DELTA);
        }
        let precision = test_wm / test_wl;
        let recall = ref_wm / ref_wl;
        let f_mean = 1.0 / (((1.0 - ALPHA) / precision) + (ALPHA / recall));
        let frag = if self.is_perfect() {
            0.0
        } else {
            self.chunks / ((self.test_word_matches + self.reference_word_matches) / 2.0)
        };
        let penalty = GAMMA * frag.powf(BETA);
        let score = f_mean * (1.0 - penalty);
        if score.is_nan() { 0.0 } else { score.max(0.0) }
    }
}

fn is_function_word(w: &str) -> bool {
    FUNCTION_WORDS.contains(&w.to_lowercase().as_str())
}

/// Aligns a candidate (`test`) with one reference and returns the statistics.
fn align(
    test: &[String],
    reference: &[String],
    test_stems: &[String],
    ref_stems: &[String],
) -> MeteorStats {
    let (n1, n2) = (test.len(), reference.len());
    let mut candidates: Vec<Vec<Match>> = vec![Vec::new(); n2];
    let mut cov1 = vec![0u32; n1];
    let mut cov2 = vec![0u32; n2];
    // Identical sentences use the exact module only.
    let modules = if test == reference { 1 } else { MODULES };
    for module in 0..modules {
        for i in 0..n2 {
            for j in 0..n1 {
                let hit = if module == 0 {
                    test[j] == reference[i]
                } else {
                    test_stems[j] == ref_stems[i] && test[j] != reference[i]
                };
                if hit {
                    candidates[i].push(Match {
                        start: i,
                        match_start: j,
                        module,
                    });
                    cov1[j] += 1;
                    cov2[i] += 1;
                }
            }
        }
    }
    let mut start = Partial {
        matches: vec![None; n2],
        matches1: 0,
        matches2: 0,
        chunks: 0,
        idx: 0,
        last_match_end: -1,
        distance: 0,
        used1: vec![false; n1],
        used2: vec![false; n2],
    };
    // A match that is the only one for both of its words is fixed.
    for (i, ms) in candidates.iter().enumerate() {
        if let [m] = ms.as_slice()
            && cov2[i] == 1
            && cov1[m.match_start] == 1
        {
            start.matches[i] = Some(*m);
            start.used2[i] = true;
            start.used1[m.match_start] = true;
        }
    }
    let best = resolve(&candidates, start);
    let fw1: Vec<bool> = test.iter().map(|w| is_function_word(w)).collect();
    let fw2: Vec<bool> = reference.iter().map(|w| is_function_word(w)).collect();
    let mut stats = MeteorStats {
        test_length: n1 as f64,
        reference_length: n2 as f64,
        test_function_words: fw1.iter().filter(|&&f| f).count() as f64,
        reference_function_words: fw2.iter().filter(|&&f| f).count() as f64,
        ..Default::default()
    };
    let (mut chunks, mut last_end, mut idx) = (0, -1i64, 0);
    let (mut m1, mut m2) = (0.0, 0.0);
    while idx < best.matches.len() {
        match best.matches[idx] {
            None => {
                if last_end != -1 {
                    chunks += 1;
                    last_end = -1;
                }
                idx += 1;
            }
            Some(m) => {
                let s = &mut stats.stage[m.module];
                s[if fw1[m.match_start] { 2 } else { 0 }] += 1.0;
                s[if fw2[m.start] { 3 } else { 1 }] += 1.0;
                m1 += 1.0;
                m2 += 1.0;
                if last_end != -1 && m.match_start as i64 != last_end {
                    chunks += 1;
                }
                idx = m.start + 1;
                last_end = m.match_start as i64 + 1;
            }
        }
    }
    if last_end != -1 {
        chunks += 1;
    }
    stats.chunks = f64::from(chunks);
    stats.test_word_matches = m1;
    stats.reference_word_matches = m2;
    stats
}

/// The jar's beam search over the ambiguous matches, left to right over the reference.
fn resolve(candidates: &[Vec<Match>], start: Partial) -> Partial {
    let mut next = vec![start];
    // One step per reference word, then a last one that closes the open chunks.
    for (current, here) in candidates.iter().map(Some).chain([None]).enumerate() {
        let mut paths = std::mem::take(&mut next);
        paths.sort_by(compare);
        paths.truncate(BEAM);
        for mut path in paths {
            let Some(here) = here else {
                if path.last_match_end != -1 {
                    path.chunks += 1;
                }
                next.push(path);
                continue;
            };
            if path.used2[current] {
                if current < path.idx {
                    next.push(path);
                } else if let Some(m) = path.matches[path.idx] {
                    path.count(&m);
                    path.distance += (m.start as i32 - m.match_start as i32).abs();
                    next.push(path);
                }
                continue;
            }
            for m in here {
                if path.is_used(m) {
                    continue;
                }
                let mut branch = path.clone();
                branch.used2[m.start] = true;
                branch.used1[m.match_start] = true;
                branch.matches[current] = Some(*m);
                branch.count(m);
                // The jar adds the distance to the path it branched from, not to the branch.
                path.distance += (m.start as i32 - m.match_start as i32).abs();
                next.push(branch);
            }
            if path.last_match_end != -1 {
                path.chunks += 1;
                path.last_match_end = -1;
            }
            path.idx += 1;
            next.push(path);
        }
    }
    next.sort_by(compare);
    next.into_iter()
        .next()
        .expect("the search keeps at least one path; this is a bug")
}

/// One caption's words and their stems.
struct Prepared {
    words: Vec<String>,
    stems: Vec<String>,
}

fn prepare(tokenized: &str, cache: &mut HashMap<String, String>) -> Prepared {
    let words = meteor_words(tokenized);
    let stems = words
        .iter()
        .map(|w| cache.entry(w.clone()).or_insert_with(|| stem(w)).clone())
        .collect();
    Prepared { words, stems }
}

/// The statistics of a candidate against its best reference (the first of the highest score).
pub fn item_stats(candidate: &str, references: &[String]) -> MeteorStats {
    let mut cache = HashMap::new();
    best_stats(candidate, references, &mut cache)
}

fn best_stats(
    candidate: &str,
    references: &[String],
    cache: &mut HashMap<String, String>,
) -> MeteorStats {
    let hyp = candidate.replace("|||", "").replace("  ", " ");
    let test = prepare(&hyp, cache);
    let mut best: Option<(f64, MeteorStats)> = None;
    for r in references {
        let reference = prepare(r, cache);
        let stats = align(&test.words, &reference.words, &test.stems, &reference.stems);
        let score = stats.score();
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, stats));
        }
    }
    best.map(|(_, s)| s).unwrap_or_default()
}

/// METEOR (exact + stem) of tokenized pairs: (corpus score from the summed statistics,
/// per-item scores).
pub fn meteor(pairs: &[TokenizedPair]) -> (f64, Vec<f64>) {
    let mut cache = HashMap::new();
    let mut total = MeteorStats::default();
    let mut items = Vec::with_capacity(pairs.len());
    for p in pairs {
        let stats = best_stats(&p.candidate, &p.references, &mut cache);
        items.push(stats.score());
        total.add(&stats);
    }
    (total.score(), items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(c: &str, r: &str) -> f64 {
        item_stats(c, &[r.to_string()]).score()
    }

    #[test]
    fn normalizer_splits_like_the_jar() {
        assert_eq!(
            normalize("a man 's dog does n't run -lrb- really -rrb-"),
            "a man ' s dog does n 't run -lrb- really -rrb-"
        );
        assert_eq!(
            normalize("the u.s. army at 10:30 a.m. paid $ 1,000.50"),
            "the us army at 10 : 30 am paid $ 1,000.50"
        );
        assert_eq!(
            normalize("left-to-right car/bike x-ray 3-d"),
            "left to right car / bike x ray 3 d"
        );
        assert_eq!(normalize("a. b ?! mr. smith"), "a. b ? ! mr. smith");
    }

    #[test]
    fn identical_and_empty() {
        // One chunk, all matched: no penalty, Fmean 1.
        assert!((score("a red circle moves", "a red circle moves") - 1.0).abs() < 1e-12);
        assert_eq!(score("", "a red circle"), 0.0);
        assert_eq!(score("blue square", "a red circle"), 0.0);
    }

    #[test]
    fn stem_matches_count_with_weight_0_6() {
        // "moving" and "moves" share the stem "move".
        let s = item_stats("circle moving", &["circle moves".to_string()]);
        assert_eq!(s.stage[0][0], 1.0);
        assert_eq!(s.stage[1][0], 1.0);
        assert_eq!(s.chunks, 1.0);
    }

    #[test]
    fn matches_the_jar_on_a_known_pair() {
        // meteor-1.5.jar -m "exact stem" -w "1.0 0.6": "a man is running" vs "a man runs fast".
        let s = score("a man is running", "a man runs fast");
        assert!((s - 0.26712004825191626).abs() < 1e-12, "{s}");
    }
}
