//! The COCO caption evaluation's tokenisation: Stanford CoreNLP 3.4.1's `PTBTokenizer`
//! (`-preserveLines -lowerCase`), then pycocoevalcap's `ptbtokenizer.py` drops the tokens
//! in its punctuation list.
//!
//! The Java tokenizer is a JFlex lexer: at each position the longest match of its rules
//! wins (trailing context counts towards the length), ties go to the rule listed first.
//! This module is a hand-written scanner over the same rules, reduced to what English
//! captions contain: words, contractions (`does n't`, `it 's`), numbers, hyphenated and
//! slashed compounds, abbreviations and acronyms (`mr.`, `u.s.`, `a.`), URLs, quotes,
//! brackets (`-lrb-`), dashes, ellipses and symbols. Two quirks of the original are kept on
//! purpose: `-lowerCase` also lower-cases the bracket tokens, so `-lrb-` and `-rrb-` never
//! match the upper-case `-LRB-` in the punctuation list and stay in the output; and runs such
//! as `??`, `!!` or `?!` are one token, not in the list, and stay too. The agreement with the
//! Java tokenizer is measured in `tests/classic.rs` and reported in `docs/METRICS.md`.

/// pycocoevalcap's `PUNCTUATIONS` (compared after lower-casing, as the script does).
const PUNCTUATIONS: [&str; 17] = [
    "''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
    "...", ";",
];

/// The caption as pycocoevalcap scores it: PTB tokens, lower case, punctuation tokens
/// dropped, joined by single spaces (empty when nothing is left).
pub fn tokenize(text: &str) -> String {
    ptb_tokens(text)
        .into_iter()
        .filter(|t| !PUNCTUATIONS.contains(&t.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The PTB tokenizer's own output for one line (lower case, punctuation still there).
pub fn ptb_tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let mut lexer = Lexer {
        s: &chars,
        out: Vec::new(),
    };
    lexer.run();
    lexer.out.into_iter().map(|t| t.to_lowercase()).collect()
}

/// What a rule does with its match.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Act {
    /// Emit the matched text.
    Keep,
    /// Emit a fixed replacement.
    Fixed(&'static str),
    /// Quotes and apostrophe-initial tokens: `'` and curly quotes normalised (LaTeX style).
    Quote { left: bool },
    /// Currency symbols normalised.
    Currency,
    /// `-` runs: three or four become `--`.
    Hyphens,
    /// Fractions like `½` spelled out.
    Fraction,
    /// Drop the text (spaces, untokenizable characters).
    Skip,
    /// A sentence-final abbreviation: emit it with its period, then lex the period again
    /// (so a `.` token follows).
    FinalAbbreviation,
}

/// One rule's match at the cursor: `total` characters decide the longest match (trailing
/// context included), `emit` of them are consumed.
#[derive(Clone, Copy, Debug)]
struct Hit {
    total: usize,
    emit: usize,
    act: Act,
}

struct Lexer<'a> {
    s: &'a [char],
    out: Vec<String>,
}

fn is_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\u{a0}' | '\u{2000}'..='\u{200a}' | '\u{3000}'
    ) || matches!(c, '\u{b}' | '\u{c}' | '\u{85}' | '\u{2028}' | '\u{2029}')
        || matches!(c, '\u{200b}' | '\u{200e}' | '\u{200f}' | '\u{feff}' | '\0')
}

fn is_letter(c: char) -> bool {
    c.is_alphabetic() || c == '\u{ad}' || ('\u{300}'..='\u{36f}').contains(&c)
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

fn is_alnum(c: char) -> bool {
    is_letter(c) || is_digit(c)
}

fn is_apos(c: char) -> bool {
    matches!(c, '\'' | '\u{92}' | '\u{2019}')
}

/// `APOSETCETERA`: apostrophes plus the ones that turn up inside words.
fn is_apos_etc(c: char) -> bool {
    is_apos(c) || matches!(c, '\u{91}' | '\u{2018}' | '\u{201b}')
}

fn eq_ci(a: &[char], b: &str) -> bool {
    a.len() == b.chars().count()
        && a.iter()
            .zip(b.chars())
            .all(|(x, y)| x.to_lowercase().eq(y.to_lowercase()))
}

/// Abbreviations that may end a sentence (`ABBREV1`), without their period.
const ABBREV1: &[&str] = &[
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mon",
    "tue", "tues", "wed", "thu", "thurs", "fri", "ala", "ariz", "ark", "calif", "colo", "conn",
    "dak", "del", "fla", "ga", "ill", "ind", "kan", "kans", "ky", "la", "mass", "md", "mich",
    "minn", "miss", "mo", "mont", "neb", "nev", "okla", "ore", "pa", "penn", "tenn", "tex", "va",
    "vt", "wash", "wis", "wisc", "wyo", "inc", "co", "cos", "corp", "pty", "ptys", "ppty", "pptys",
    "ltd", "plc", "bancorp", "dept", "bhd", "assn", "univ", "intl", "sys", "no", "nos", "prop",
    "ph", "tel", "est", "ext", "sq", "ft", "jr", "sr", "bros", "ed.d", "ph.d", "blvd", "rd", "esq",
    "etc", "al", "seq",
];

/// Abbreviations normally followed by a capitalised word (`ABBREV4` without `ACRO`).
const ABBREV4: &[&str] = &[
    "mr", "mrs", "ms", "miss", "dr", "drs", "prof", "profs", "sen", "sens", "rep", "reps", "atty",
    "attys", "lt", "col", "gen", "messrs", "gov", "govs", "adm", "rev", "maj", "sgt", "cpl", "pvt",
    "mt", "capt", "st", "ste", "ave", "pres", "lieut", "hon", "brig", "cmdr", "comdr", "pfc",
    "spc", "supt", "supts", "det", "vs", "alex", "wm", "jos", "cie", "a.k.a", "cf", "treas",
    "invt", "elec", "natl", "mfg", "mtg",
];

impl Lexer<'_> {
    fn run(&mut self) {
        let mut i = 0;
        while i < self.s.len() {
            let hit = self.best(i);
            let shown = hit.emit + usize::from(hit.act == Act::FinalAbbreviation);
            let text: String = self.s[i..i + shown].iter().collect();
            if let Some(token) = self.render(&text, hit.act) {
                self.out.push(token);
            }
            i += hit.emit.max(1);
        }
    }

    fn render(&self, text: &str, act: Act) -> Option<String> {
        match act {
            Act::Keep | Act::FinalAbbreviation => Some(text.to_string()),
            Act::Fixed(s) => Some(s.to_string()),
            Act::Skip => None,
            Act::Quote { left } => {
                let mut out = String::new();
                for c in text.chars() {
                    match c {
                        '\'' if left => out.push('`'),
                        '"' if left => out.push_str("``"),
                        '"' => out.push_str("''"),
                        '\u{91}' | '\u{2018}' | '\u{201b}' | '\u{2039}' => out.push('`'),
                        '\u{92}' | '\u{2019}' | '\u{203a}' => out.push('\''),
                        '\u{93}' | '\u{201c}' | '\u{ab}' => out.push_str("``"),
                        '\u{94}' | '\u{201d}' | '\u{bb}' => out.push_str("''"),
                        c => out.push(c),
                    }
                }
                Some(out)
            }
            Act::Currency => Some(match text {
                "\u{a2}" => "cents".to_string(),
                "\u{a3}" => "#".to_string(),
                "\u{80}" | "\u{a4}" | "\u{20a0}" | "\u{20ac}" => "$".to_string(),
                t => t.to_string(),
            }),
            Act::Hyphens => {
                let n = text.chars().count();
                Some(if (3..=4).contains(&n) {
                    "--".to_string()
                } else {
                    text.to_string()
                })
            }
            Act::Fraction => Some(
                match text {
                    "\u{bc}" => "1/4",
                    "\u{bd}" => "1/2",
                    "\u{be}" => "3/4",
                    "\u{2153}" => "1/3",
                    "\u{2154}" => "2/3",
                    t => t,
                }
                .to_string(),
            ),
        }
    }

    fn at(&self, i: usize) -> Option<char> {
        self.s.get(i).copied()
    }

    /// The longest match at `i`; ties go to the earlier rule.
    fn best(&self, i: usize) -> Hit {
        let c = self.s[i];
        if is_space(c) {
            let n = self.s[i..].iter().take_while(|&&c| is_space(c)).count();
            return Hit {
                total: n,
                emit: n,
                act: Act::Skip,
            };
        }
        let candidates = [
            self.assimilation(i),
            self.sgml(i),
            self.single(
                i,
                |c| {
                    matches!(
                        c,
                        '\u{96}' | '\u{97}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
                    )
                },
                Act::Fixed("--"),
            ),
            self.literal_ci(i, "&amp;", Act::Fixed("&")),
            self.word_redaux(i),
            self.sword_sredaux(i),
            self.word(i).map(|n| Hit {
                total: n,
                emit: n,
                act: Act::Keep,
            }),
            self.apoword(i),
            self.apoword2(i),
            self.t_contraction(i),
            self.url(i),
            self.email(i),
            self.redaux_context(i),
            self.sredaux(i),
            self.date(i),
            self.number(i).map(|n| Hit {
                total: n,
                emit: n,
                act: Act::Keep,
            }),
            self.frac(i),
            self.single(
                i,
                |c| matches!(c, '\u{bc}' | '\u{bd}' | '\u{be}' | '\u{2153}'..='\u{215e}'),
                Act::Fraction,
            ),
            self.tbspec(i),
            self.thing3(i),
            self.dolsign(i),
            self.single(
                i,
                |c| {
                    matches!(
                        c,
                        '\u{a2}'
                            ..='\u{a5}'
                                | '\u{80}'
                                | '\u{20a0}'
                                | '\u{20ac}'
                                | '\u{60b}'
                                | '\u{e3f}'
                                | '\u{20a4}'
                    ) || matches!(c, '\u{ffe0}' | '\u{ffe1}' | '\u{ffe5}' | '\u{ffe6}')
                },
                Act::Currency,
            ),
            self.abbreviation(i),
            self.acro_context(i),
            self.tbspec2(i),
            self.word_dot_insentp(i),
            self.dblquote(i),
            self.single(
                i,
                |c| {
                    matches!(
                        c,
                        '+' | '%' | '&' | '\u{2030}' | '\u{2031}' | '~' | '^' | '|' | '\\' | '='
                    )
                },
                Act::Keep,
            ),
            self.single(i, |c| matches!(c, '<' | '>'), Act::Keep),
            self.single(i, |c| c == '[', Act::Fixed("-LSB-")),
            self.single(i, |c| c == ']', Act::Fixed("-RSB-")),
            self.single(i, |c| c == '{', Act::Fixed("-LCB-")),
            self.single(i, |c| c == '}', Act::Fixed("-RCB-")),
            self.single(i, |c| c == '(', Act::Fixed("-LRB-")),
            self.single(i, |c| c == ')', Act::Fixed("-RRB-")),
            self.run_of(i, |c| c == '-', Act::Hyphens),
            self.ldots(i),
            self.tag(i),
            self.run_of(i, |c| c == '@', Act::Keep),
            self.run_of(i, |c| c == '#', Act::Keep),
            self.run_of(i, |c| c == '_', Act::Keep),
            self.run_of(i, |c| c == '*', Act::Keep),
            self.single(i, |c| matches!(c, ',' | ';' | ':'), Act::Keep),
            self.run_of(i, |c| matches!(c, '?' | '!'), Act::Keep),
            self.single(i, |c| matches!(c, '.' | '\u{a1}' | '\u{bf}'), Act::Keep),
            self.single(i, |c| c == '/', Act::Keep),
            self.hthing(i),
            self.thing(i),
            self.open_quote(i),
            self.redaux(i).map(|n| Hit {
                total: n,
                emit: n,
                act: Act::Quote { left: false },
            }),
            self.quotes(i),
            self.single(i, is_misc_symbol, Act::Keep),
        ];
        let mut best: Option<Hit> = None;
        for hit in candidates.into_iter().flatten() {
            if best.is_none_or(|b| hit.total > b.total) {
                best = Some(hit);
            }
        }
        // Anything else is untokenizable and deleted (the tokenizer's `firstDelete`).
        best.unwrap_or(Hit {
            total: 1,
            emit: 1,
            act: Act::Skip,
        })
    }

    fn single(&self, i: usize, pred: impl Fn(char) -> bool, act: Act) -> Option<Hit> {
        pred(self.s[i]).then_some(Hit {
            total: 1,
            emit: 1,
            act,
        })
    }

    fn run_of(&self, i: usize, pred: impl Fn(char) -> bool, act: Act) -> Option<Hit> {
        let n = self.s[i..].iter().take_while(|&&c| pred(c)).count();
        (n > 0).then_some(Hit {
            total: n,
            emit: n,
            act,
        })
    }

    fn literal_ci(&self, i: usize, lit: &str, act: Act) -> Option<Hit> {
        let n = lit.chars().count();
        (i + n <= self.s.len() && eq_ci(&self.s[i..i + n], lit)).then_some(Hit {
            total: n,
            emit: n,
            act,
        })
    }

    fn count(&self, i: usize, pred: impl Fn(char) -> bool) -> usize {
        self.s[i.min(self.s.len())..]
            .iter()
            .take_while(|&&c| pred(c))
            .count()
    }

    /// Assimilations are split: `cannot` as `can not`, `gonna` as `gon na`, and `gotta`,
    /// `wanna`, `gimme`, `lemme` alike.
    fn assimilation(&self, i: usize) -> Option<Hit> {
        ["cannot", "gonna", "gotta", "wanna", "gimme", "lemme"]
            .iter()
            .find_map(|w| self.literal_ci(i, w, Act::Keep))
            .map(|h| Hit {
                total: h.total,
                emit: 3,
                act: Act::Keep,
            })
    }

    /// `<\/?[A-Za-z!][^>]*>`
    fn sgml(&self, i: usize) -> Option<Hit> {
        if self.s[i] != '<' {
            return None;
        }
        let mut j = i + 1;
        if self.at(j) == Some('/') {
            j += 1;
        }
        if !self
            .at(j)
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '!')
        {
            return None;
        }
        let close = self.s[j..].iter().position(|&c| c == '>')?;
        let n = j + close + 1 - i;
        Some(Hit {
            total: n,
            emit: n,
            act: Act::Keep,
        })
    }

    /// `WORD`: letters (with combining marks and soft hyphens).
    fn word(&self, i: usize) -> Option<usize> {
        let n = self.count(i, is_letter);
        (n > 0).then_some(n)
    }

    /// `REDAUX`: `'s 'm 'd 're 've 'll` (any case).
    fn redaux(&self, i: usize) -> Option<usize> {
        if !self.at(i).is_some_and(is_apos) {
            return None;
        }
        for suffix in ["re", "ve", "ll", "m", "s", "d"] {
            let n = suffix.len();
            if i + 1 + n <= self.s.len() && eq_ci(&self.s[i + 1..i + 1 + n], suffix) {
                return Some(1 + n);
            }
        }
        None
    }

    /// `{WORD}/{REDAUX}`
    fn word_redaux(&self, i: usize) -> Option<Hit> {
        let w = self.word(i)?;
        let r = self.redaux(i + w)?;
        Some(Hit {
            total: w + r,
            emit: w,
            act: Act::Keep,
        })
    }

    /// `SREDAUX`: `n't` (any case).
    fn sredaux(&self, i: usize) -> Option<Hit> {
        let ok = self.at(i).is_some_and(|c| c == 'n' || c == 'N')
            && self.at(i + 1).is_some_and(is_apos_etc)
            && self.at(i + 2).is_some_and(|c| c == 't' || c == 'T');
        ok.then_some(Hit {
            total: 3,
            emit: 3,
            act: Act::Quote { left: false },
        })
    }

    /// `{SWORD}/{SREDAUX}`: an ASCII word not ending in `n`, then `n't`.
    fn sword_sredaux(&self, i: usize) -> Option<Hit> {
        let n = self.count(i, |c| c.is_ascii_alphabetic() || c == '\u{ad}');
        // The longest prefix that ends in a letter other than `n` and is followed by n't.
        for w in (1..=n).rev() {
            let last = self.s[i + w - 1];
            if last.is_ascii_alphabetic()
                && !matches!(last, 'n' | 'N')
                && self.sredaux(i + w).is_some()
            {
                return Some(Hit {
                    total: w + 3,
                    emit: w,
                    act: Act::Keep,
                });
            }
        }
        None
    }

    /// The parts of `APOWORD` that captions meet: `'n'`, `'em`, `'90s`, `'til(l)`,
    /// `'cause`, `ol'`, `o'clock`-like words and `l'`/`d'` elisions.
    fn apoword(&self, i: usize) -> Option<Hit> {
        let s = self.s;
        let keep = |n: usize| {
            Some(Hit {
                total: n,
                emit: n,
                act: Act::Keep,
            })
        };
        let c = s[i];
        if is_apos(c) {
            let rest = &s[i + 1..];
            let starts = |lit: &str| rest.len() >= lit.len() && eq_ci(&rest[..lit.len()], lit);
            if starts("n") && rest.get(1).is_some_and(|&c| is_apos(c)) {
                return keep(3);
            }
            if starts("cause") {
                return keep(6);
            }
            if starts("till") {
                return keep(5);
            }
            if starts("til") {
                return keep(4);
            }
            if starts("em") {
                return keep(3);
            }
            if starts("n") {
                return keep(2);
            }
            if rest.len() >= 3
                && ('2'..='9').contains(&rest[0])
                && rest[1] == '0'
                && matches!(rest[2], 's' | 'S')
            {
                return keep(4);
            }
            return None;
        }
        let mut best = 0;
        // [lLdDjJ]{APOS}
        if matches!(c, 'l' | 'L' | 'd' | 'D' | 'j' | 'J') && self.at(i + 1).is_some_and(is_apos) {
            best = 2;
        }
        // ol{APOS}
        if self.literal_ci(i, "ol", Act::Keep).is_some() && self.at(i + 2).is_some_and(is_apos) {
            best = best.max(3);
        }
        // [A-HJ-XZn]{APOSETCETERA}[:letter:]{2}[:letter:]*
        if (c.is_ascii_uppercase() && c != 'I' && c != 'Y' || c == 'n')
            && self.at(i + 1).is_some_and(is_apos_etc)
        {
            let n = self.count(i + 2, is_letter);
            if n >= 2 {
                best = best.max(2 + n);
            }
        }
        // [:letter:]+[aeiouyAEIOUY]{APOSETCETERA}[aeiouA-Z][:letter:]*
        let w = self.count(i, is_letter);
        for k in (2..=w).rev() {
            let v = s[i + k - 1];
            if "aeiouyAEIOUY".contains(v)
                && self.at(i + k).is_some_and(is_apos_etc)
                && self
                    .at(i + k + 1)
                    .is_some_and(|c| "aeiou".contains(c) || c.is_ascii_uppercase())
            {
                best = best.max(k + 2 + self.count(i + k + 2, is_letter));
                break;
            }
        }
        (best > 0).then(|| keep(best)).flatten()
    }

    /// `y{APOS}` before a letter (`y'all`).
    fn apoword2(&self, i: usize) -> Option<Hit> {
        let ok = matches!(self.s[i], 'y' | 'Y')
            && self.at(i + 1).is_some_and(is_apos)
            && self.at(i + 2).is_some_and(is_letter);
        ok.then_some(Hit {
            total: 3,
            emit: 2,
            act: Act::Keep,
        })
    }

    /// `'tis` and `'twas` become `'t` + the rest.
    fn t_contraction(&self, i: usize) -> Option<Hit> {
        if !is_apos(self.s[i]) || !self.at(i + 1).is_some_and(|c| c == 't' || c == 'T') {
            return None;
        }
        for rest in ["is", "was"] {
            let n = rest.len();
            if i + 2 + n <= self.s.len()
                && eq_ci(&self.s[i + 2..i + 2 + n], rest)
                && !self.at(i + 2 + n).is_some_and(is_letter)
            {
                return Some(Hit {
                    total: 2 + n,
                    emit: 2,
                    act: Act::Quote { left: false },
                });
            }
        }
        None
    }

    /// `FULLURL` and the `www.` / `.com` forms of `LIKELYURL`.
    fn url(&self, i: usize) -> Option<Hit> {
        let s = self.s;
        let stop = |c: char| c.is_whitespace() || matches!(c, '"' | '<' | '>' | '|' | '(' | ')');
        let trailing_bad =
            |c: char| matches!(c, '.' | '!' | '?' | '(' | ')' | '{' | '}' | ',' | '-');
        if !s[i].is_alphanumeric() {
            return None;
        }
        let chunk = self.count(i, |c| !stop(c));
        if !s[i..i + chunk].contains(&'.') {
            return None;
        }
        let scheme = ["http://", "https://"]
            .iter()
            .find(|p| self.literal_ci(i, p, Act::Keep).is_some());
        let www = self.literal_ci(i, "www.", Act::Keep).is_some();
        if scheme.is_none() && !www {
            // `something.com` (or .net .org .edu), optionally a path.
            let n = self.count(i, |c| !stop(c) && !c.is_whitespace());
            let text: String = s[i..i + n].iter().collect::<String>().to_lowercase();
            for tld in [".com", ".net", ".org", ".edu"] {
                if let Some(p) = text.find(tld) {
                    let host = &text[..p];
                    let end = p + tld.len();
                    let host_ok = !host.is_empty()
                        && host.split('.').all(|part| {
                            !part.is_empty()
                                && part.chars().all(|c| {
                                    !"`'<>|.!?(){},-_$\"".contains(c) && !c.is_whitespace()
                                })
                        });
                    let after_ok = text[end..]
                        .chars()
                        .next()
                        .is_none_or(|c| c == '/' || !c.is_alphanumeric());
                    if host_ok && after_ok {
                        let mut m = text[..end].chars().count();
                        if text[end..].starts_with('/') {
                            let mut k = n;
                            while k > m && trailing_bad(s[i + k - 1]) {
                                k -= 1;
                            }
                            m = k;
                        }
                        return Some(Hit {
                            total: m,
                            emit: m,
                            act: Act::Keep,
                        });
                    }
                }
            }
            return None;
        }
        let mut n = self.count(i, |c| !stop(c));
        while n > 0 && trailing_bad(s[i + n - 1]) {
            n -= 1;
        }
        let min = scheme.map_or(5, |p| p.len() + 1);
        (n >= min).then_some(Hit {
            total: n,
            emit: n,
            act: Act::Keep,
        })
    }

    /// `EMAIL`
    fn email(&self, i: usize) -> Option<Hit> {
        if !self.s[i].is_ascii_alphanumeric() {
            return None;
        }
        let stop = |c: char| c.is_whitespace() || matches!(c, '"' | '<' | '>' | '|' | '(' | ')');
        let n = self.count(i, |c| !stop(c));
        if !self.s[i..i + n].contains(&'@') {
            return None;
        }
        let text: Vec<char> = self.s[i..i + n].to_vec();
        let at = text.iter().rposition(|&c| c == '@')?;
        let domain: String = text[at + 1..].iter().collect();
        let parts: Vec<&str> = domain.split('.').collect();
        if parts.len() < 2 {
            return None;
        }
        // The longest run of labels ending in a 2-4 letter top-level domain.
        let mut used = 0;
        let mut best = None;
        for (k, part) in parts.iter().enumerate() {
            if part.is_empty() {
                break;
            }
            used += part.chars().count() + usize::from(k > 0);
            let tld: usize = part.chars().take_while(|c| c.is_ascii_alphabetic()).count();
            if k > 0 && (2..=4).contains(&tld) {
                best = Some(at + 1 + used - part.chars().count() + tld);
            }
        }
        best.map(|m| Hit {
            total: m,
            emit: m,
            act: Act::Keep,
        })
    }

    /// `{REDAUX}/[^A-Za-z]`
    fn redaux_context(&self, i: usize) -> Option<Hit> {
        let n = self.redaux(i)?;
        let next = self.at(i + n);
        if next.is_some_and(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        Some(Hit {
            total: n + usize::from(next.is_some()),
            emit: n,
            act: Act::Quote { left: false },
        })
    }

    /// `DATE`: `1-2 digits [-/] 1-2 digits [-/] 2-4 digits`.
    fn date(&self, i: usize) -> Option<Hit> {
        let sep = |j: usize| matches!(self.at(j), Some('-' | '/'));
        let a = self.count(i, is_digit);
        if !(1..=2).contains(&a) || !sep(i + a) {
            return None;
        }
        let b = self.count(i + a + 1, is_digit);
        if !(1..=2).contains(&b) || !sep(i + a + 1 + b) {
            return None;
        }
        let c = self.count(i + a + b + 2, is_digit).min(4);
        let n = a + b + 2 + c;
        (c >= 2).then_some(Hit {
            total: n,
            emit: n,
            act: Act::Keep,
        })
    }

    /// `NUMBER = [-+]? (DIGIT+ | DIGIT* ([.:,\u00AD] DIGIT+)+)`
    fn number(&self, i: usize) -> Option<usize> {
        let sign = usize::from(matches!(self.s[i], '-' | '+'));
        let mut j = i + sign;
        let lead = self.count(j, is_digit);
        j += lead;
        let mut groups = 0;
        while self
            .at(j)
            .is_some_and(|c| matches!(c, '.' | ':' | ',' | '\u{ad}' | '\u{66b}' | '\u{66c}'))
        {
            let d = self.count(j + 1, is_digit);
            if d == 0 {
                break;
            }
            j += 1 + d;
            groups += 1;
        }
        (lead > 0 || groups > 0).then_some(j - i)
    }

    /// `FRAC`: an optional whole part, then `d{1,4}/d{1,4}`.
    fn frac(&self, i: usize) -> Option<Hit> {
        let simple = |j: usize| -> Option<usize> {
            let a = self.count(j, is_digit);
            if !(1..=4).contains(&a) {
                return None;
            }
            let slash = if self.at(j + a) == Some('\\') && self.at(j + a + 1) == Some('/') {
                2
            } else if matches!(self.at(j + a), Some('/' | '\u{2044}')) {
                1
            } else {
                return None;
            };
            let b = self.count(j + a + slash, is_digit);
            (1..=4).contains(&b).then_some(a + slash + b)
        };
        let mut best = simple(i);
        let a = self.count(i, is_digit);
        if (1..=4).contains(&a)
            && matches!(self.at(i + a), Some('-' | ' ' | '\u{a0}'))
            && let Some(rest) = simple(i + a + 1)
        {
            best = Some(a + 1 + rest);
        }
        best.map(|n| Hit {
            total: n,
            emit: n,
            act: Act::Keep,
        })
    }

    /// `TBSPEC`: `-LRB-` and friends, `pro-`, `anti-`.
    fn tbspec(&self, i: usize) -> Option<Hit> {
        for lit in [
            "-RRB-", "-LRB-", "-RCB-", "-LCB-", "-RSB-", "-LSB-", "anti-", "pro-",
        ] {
            if let Some(h) = self.literal_ci(i, lit, Act::Keep) {
                return Some(h);
            }
        }
        None
    }

    /// `THING3`: `word(-x){0,2}` joined by 1-2 slashes (`car/bike`, `100km/h`).
    fn thing3(&self, i: usize) -> Option<Hit> {
        let part = |j: usize| -> Option<usize> {
            let a = self.count(j, |c| c.is_ascii_alphanumeric());
            if a == 0 {
                return None;
            }
            let mut n = a;
            for _ in 0..2 {
                if self.at(j + n) == Some('-') {
                    let b = self.count(j + n + 1, |c| c.is_ascii_alphabetic());
                    if b > 0 {
                        n += 1 + b;
                        continue;
                    }
                }
                break;
            }
            Some(n)
        };
        let mut n = part(i)?;
        let mut slashes = 0;
        while slashes < 2 {
            let sl = if self.at(i + n) == Some('\\') && self.at(i + n + 1) == Some('/') {
                2
            } else if self.at(i + n) == Some('/') {
                1
            } else {
                break;
            };
            match part(i + n + sl) {
                Some(p) => {
                    n += sl + p;
                    slashes += 1;
                }
                None => break,
            }
        }
        (slashes > 0).then_some(Hit {
            total: n,
            emit: n,
            act: Act::Keep,
        })
    }

    /// `DOLSIGN = [A-Z]*\$ | #`
    fn dolsign(&self, i: usize) -> Option<Hit> {
        if self.s[i] == '#' {
            return Some(Hit {
                total: 1,
                emit: 1,
                act: Act::Keep,
            });
        }
        let n = self.count(i, |c| c.is_ascii_alphabetic());
        (self.at(i + n) == Some('$')).then_some(Hit {
            total: n + 1,
            emit: n + 1,
            act: Act::Keep,
        })
    }

    /// `ACRO = [A-Za-z](\.[A-Za-z])+`: its length at `i` (without a final period).
    fn acro(&self, i: usize) -> Option<usize> {
        // `i` may be the end of the text (a compound cut after its hyphen, `1-`).
        if !self.at(i).is_some_and(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        let mut n = 1;
        while self.at(i + n) == Some('.')
            && self.at(i + n + 1).is_some_and(|c| c.is_ascii_alphabetic())
        {
            n += 2;
        }
        (n > 1).then_some(n)
    }

    /// `ABBREV1`, `ABBREV2` and `ACRONYM`: an abbreviation with its period. An `ABBREV1`
    /// before a sentence end (a space, then a space, a capital or the end of the line) and
    /// an acronym before one of the words that usually start a sentence are sentence-final:
    /// a `.` token follows them.
    fn abbreviation(&self, i: usize) -> Option<Hit> {
        let letters = self.count(i, |c| c.is_ascii_alphabetic() || c == '.');
        if !self.s[i].is_ascii_alphabetic() || !self.s[i..i + letters].contains(&'.') {
            return None;
        }
        let mut best = 0;
        let mut acronym = 0;
        if let Some(n) = self.acro(i)
            && self.at(i + n) == Some('.')
        {
            acronym = n + 1;
            best = n + 1;
        }
        let mut abbrev1 = 0;
        for (list, final_ok) in [(ABBREV1, true), (ABBREV4, false)] {
            for ab in list {
                let n = ab.len();
                if n < letters + 1
                    && i + n < self.s.len()
                    && eq_ci(&self.s[i..i + n], ab)
                    && self.at(i + n) == Some('.')
                {
                    best = best.max(n + 1);
                    if final_ok {
                        abbrev1 = abbrev1.max(n + 1);
                    }
                }
            }
        }
        // A single letter and a period.
        if self.s[i].is_ascii_alphabetic() && self.at(i + 1) == Some('.') {
            best = best.max(2);
        }
        if best == 0 {
            return None;
        }
        if abbrev1 > 0
            && let Some(ctx) = self.sentence_end(i + abbrev1)
        {
            return Some(Hit {
                total: abbrev1 + ctx,
                emit: abbrev1 - 1,
                act: Act::FinalAbbreviation,
            });
        }
        if acronym > 0
            && let Some(ctx) = self.sentence_starter(i + acronym)
        {
            return Some(Hit {
                total: acronym + ctx,
                emit: acronym - 1,
                act: Act::FinalAbbreviation,
            });
        }
        Some(Hit {
            total: best,
            emit: best,
            act: Act::Keep,
        })
    }

    /// `SENTEND = {SPACENL}({SPACENL}|[A-Z]|{SGML})`, or the end of the line: its length.
    fn sentence_end(&self, j: usize) -> Option<usize> {
        match (self.at(j), self.at(j + 1)) {
            (None, _) => Some(0),
            (Some(a), None) if is_space(a) => Some(1),
            (Some(a), Some(b))
                if is_space(a)
                    && (is_space(b) || b.is_ascii_uppercase() || self.sgml(j + 1).is_some()) =>
            {
                Some(2)
            }
            _ => None,
        }
    }

    /// Spaces, then a word that usually starts a sentence (capitalised), then a space.
    fn sentence_starter(&self, j: usize) -> Option<usize> {
        const STARTERS: &[&str] = &[
            "About",
            "According",
            "Additionally",
            "After",
            "An",
            "A",
            "As",
            "At",
            "But",
            "Earlier",
            "He",
            "Her",
            "Here",
            "However",
            "If",
            "In",
            "It",
            "Last",
            "Many",
            "More",
            "Mr.",
            "Ms.",
            "Now",
            "Once",
            "One",
            "Other",
            "Our",
            "She",
            "Since",
            "So",
            "Some",
            "Such",
            "That",
            "The",
            "Then",
            "There",
            "These",
            "They",
            "This",
            "We",
            "When",
            "While",
            "What",
            "Yet",
            "You",
        ];
        let spaces = self.count(j, |c| {
            matches!(
                c,
                ' ' | '\t' | '\u{a0}' | '\u{2000}'..='\u{200a}' | '\u{3000}'
            )
        });
        if spaces == 0 {
            return None;
        }
        let k = j + spaces;
        STARTERS
            .iter()
            .filter(|w| {
                let n = w.len();
                k + n < self.s.len()
                    && self.s[k] == w.chars().next().unwrap_or(' ')
                    && eq_ci(&self.s[k..k + n], w)
                    && is_space(self.s[k + n])
            })
            .map(|w| spaces + w.len() + 1)
            .max()
    }

    /// `{ACRO}/{SPACENL}`
    fn acro_context(&self, i: usize) -> Option<Hit> {
        let n = self.acro(i)?;
        let next = self.at(i + n)?;
        is_space(next).then_some(Hit {
            total: n + 1,
            emit: n,
            act: Act::Keep,
        })
    }

    /// `{APOS}[0-9][0-9]/{SPACENL}`
    fn tbspec2(&self, i: usize) -> Option<Hit> {
        let ok = is_apos(self.s[i])
            && self.at(i + 1).is_some_and(is_digit)
            && self.at(i + 2).is_some_and(is_digit)
            && self.at(i + 3).is_some_and(is_space);
        ok.then_some(Hit {
            total: 4,
            emit: 3,
            act: Act::Keep,
        })
    }

    /// `{WORD}\./{INSENTP}`
    fn word_dot_insentp(&self, i: usize) -> Option<Hit> {
        let w = self.word(i)?;
        self.period_before_insentp(i + w).then_some(Hit {
            total: w + 2,
            emit: w + 1,
            act: Act::Keep,
        })
    }

    /// Whether `j` holds a period followed by `,`, `;` or `:` (`\./{INSENTP}`).
    fn period_before_insentp(&self, j: usize) -> bool {
        self.at(j) == Some('.') && self.at(j + 1).is_some_and(|c| matches!(c, ',' | ';' | ':'))
    }

    /// The `n` characters at `i` kept as one token, with the period after them when
    /// it comes before `,`, `;` or `:` (the rules `{HTHING}\./{INSENTP}` and
    /// `{THING}\./{INSENTP}` beside `{HTHING}` and `{THING}`).
    fn keep_with_insentp_period(&self, i: usize, n: usize) -> Hit {
        if self.period_before_insentp(i + n) {
            Hit {
                total: n + 2,
                emit: n + 1,
                act: Act::Keep,
            }
        } else {
            Hit {
                total: n,
                emit: n,
                act: Act::Keep,
            }
        }
    }

    /// `"`: an opening quote before `[A-Za-z0-9$]`, a closing one otherwise.
    fn dblquote(&self, i: usize) -> Option<Hit> {
        if self.s[i] != '"' {
            return None;
        }
        let left = self
            .at(i + 1)
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '$');
        Some(Hit {
            total: 1 + usize::from(left),
            emit: 1,
            act: Act::Quote { left },
        })
    }

    /// `#` or `@` directly before letters stays with them (`#hash`, `@name`).
    fn tag(&self, i: usize) -> Option<Hit> {
        if !matches!(self.s[i], '#' | '@') {
            return None;
        }
        let n = 1 + self.word(i + 1)?;
        Some(Hit {
            total: n,
            emit: n,
            act: Act::Keep,
        })
    }

    /// `LDOTS`: 3-5 periods, spaced periods, or the ellipsis character.
    fn ldots(&self, i: usize) -> Option<Hit> {
        if matches!(self.s[i], '\u{85}' | '\u{2026}') {
            return Some(Hit {
                total: 1,
                emit: 1,
                act: Act::Fixed("..."),
            });
        }
        let dots = self.count(i, |c| c == '.');
        if dots >= 3 {
            let n = dots.min(5);
            return Some(Hit {
                total: n,
                emit: n,
                act: Act::Fixed("..."),
            });
        }
        // (\.[ \u00A0]){2,4}\.
        let mut pairs = 0;
        while pairs < 4
            && self.at(i + 2 * pairs) == Some('.')
            && matches!(self.at(i + 2 * pairs + 1), Some(' ' | '\u{a0}'))
        {
            pairs += 1;
        }
        while pairs >= 2 {
            if self.at(i + 2 * pairs) == Some('.') {
                let n = 2 * pairs + 1;
                return Some(Hit {
                    total: n,
                    emit: n,
                    act: Act::Fixed("..."),
                });
            }
            pairs -= 1;
        }
        None
    }

    /// `HTHING = [A-Za-z0-9][A-Za-z0-9.,]*(-([A-Za-z0-9]+|ACRO\.))+`, and `HTHING\./{INSENTP}`.
    fn hthing(&self, i: usize) -> Option<Hit> {
        if !self.s[i].is_ascii_alphanumeric() {
            return None;
        }
        let head = 1 + self.count(i + 1, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | ',' | '\u{ad}')
        });
        // The head may give back characters so that a hyphen follows: try from the longest.
        let mut best = None;
        for h in (1..=head).rev() {
            let mut n = h;
            let mut groups = 0;
            while self.at(i + n) == Some('-') {
                let j = i + n + 1;
                let alnum = self.count(j, |c| c.is_ascii_alphanumeric() || c == '\u{ad}');
                let acro = self
                    .acro(j)
                    .filter(|&a| self.at(j + a) == Some('.'))
                    .map(|a| a + 1);
                let step = alnum.max(acro.unwrap_or(0));
                if step == 0 {
                    break;
                }
                n += 1 + step;
                groups += 1;
            }
            if groups > 0 {
                best = Some(n);
                break;
            }
        }
        let n = best?;
        Some(self.keep_with_insentp_period(i, n))
    }

    /// `THING`: letters and digits joined by hyphens or underscores, with optional
    /// `o'`/`d'`/`l'` prefixes; also periods between letters and digits (`word.next`),
    /// which CoreNLP 3.4.1 keeps in one token.
    fn thing(&self, i: usize) -> Option<Hit> {
        let prefix = |j: usize| -> usize {
            let ok = self.at(j).is_some_and(|c| "dDoOlL".contains(c))
                && self.at(j + 1).is_some_and(is_apos_etc)
                && self.at(j + 2).is_some_and(is_alnum);
            if ok { 2 } else { 0 }
        };
        let mut n = prefix(i);
        let a = self.count(i + n, is_alnum);
        if a == 0 {
            return None;
        }
        n += a;
        loop {
            let c = self.at(i + n);
            if c.is_some_and(|c| matches!(c, '-' | '_' | '\u{58a}' | '\u{2010}' | '\u{2011}' | '.'))
            {
                let p = if c == Some('.') { 0 } else { prefix(i + n + 1) };
                let b = self.count(i + n + 1 + p, is_alnum);
                if b > 0 {
                    n += 1 + p + b;
                    continue;
                }
            }
            break;
        }
        Some(self.keep_with_insentp_period(i, n))
    }

    /// `'/[A-Za-z][^ \t\n\r\u00A0]`: an opening single quote.
    fn open_quote(&self, i: usize) -> Option<Hit> {
        let ok = self.s[i] == '\''
            && self.at(i + 1).is_some_and(|c| c.is_ascii_alphabetic())
            && self
                .at(i + 2)
                .is_some_and(|c| !matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{a0}'));
        ok.then_some(Hit {
            total: 3,
            emit: 1,
            act: Act::Quote { left: true },
        })
    }

    /// `QUOTES = {APOS} | '' | [`‘’‚‛“”„‟‹›«»]{1,2}`
    fn quotes(&self, i: usize) -> Option<Hit> {
        let c = self.s[i];
        let q = |c: char| {
            matches!(
                c,
                '`' | '\u{2018}'
                    | '\u{2019}'
                    | '\u{201a}'
                    | '\u{201b}'
                    | '\u{201c}'
                    | '\u{201d}'
                    | '\u{91}'
                    | '\u{92}'
                    | '\u{93}'
                    | '\u{94}'
                    | '\u{201e}'
                    | '\u{201f}'
                    | '\u{2039}'
                    | '\u{203a}'
                    | '\u{ab}'
                    | '\u{bb}'
            )
        };
        let n = if c == '\'' && self.at(i + 1) == Some('\'') {
            2
        } else if q(c) {
            1 + usize::from(self.at(i + 1).is_some_and(q))
        } else if is_apos(c) {
            1
        } else {
            return None;
        };
        Some(Hit {
            total: n,
            emit: n,
            act: Act::Quote { left: false },
        })
    }
}

/// `MISCSYMBOL`: symbols that stand alone (degree, multiplication sign, arrows, maths).
fn is_misc_symbol(c: char) -> bool {
    matches!(
        c,
        '\u{a6}' | '\u{a7}' | '\u{a8}' | '\u{a9}' | '\u{ac}' | '\u{ae}' | '\u{af}' | '\u{b0}'
            ..='\u{ba}'
    ) || matches!(c, '\u{d7}' | '\u{f7}' | '\u{2020}'..='\u{2023}' | '\u{2032}'..='\u{2038}' | '\u{2044}')
        || matches!(c, '\u{2100}'..='\u{214f}' | '\u{2190}'..='\u{21ff}' | '\u{2200}'..='\u{22ff}' | '\u{2600}'..='\u{26ff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ptb(s: &str) -> String {
        ptb_tokens(s).join(" ")
    }

    #[test]
    fn splits_contractions_and_punctuation() {
        assert_eq!(
            ptb("A man's dog doesn't run; it's \"fast\" (really)."),
            "a man 's dog does n't run ; it 's `` fast '' -lrb- really -rrb- ."
        );
        assert_eq!(
            ptb("I'm we're they'll can't won't cannot"),
            "i 'm we 're they 'll ca n't wo n't can not"
        );
    }

    #[test]
    fn keeps_numbers_abbreviations_and_compounds() {
        assert_eq!(
            ptb("The U.S. army at 10:30 a.m. paid $1,000.50 for 3.5 kg -- cheap!"),
            "the u.s. army at 10:30 a.m. paid $ 1,000.50 for 3.5 kg -- cheap !"
        );
        assert_eq!(
            ptb("left-to-right car/bike Mr. Smith x_y 2nd"),
            "left-to-right car/bike mr. smith x_y 2nd"
        );
    }

    #[test]
    fn drops_the_punctuation_list_but_not_lowercased_brackets() {
        assert_eq!(
            tokenize("A circle (small) moves... left, right!"),
            "a circle -lrb- small -rrb- moves left right"
        );
        assert_eq!(tokenize("What?? No!!"), "what ?? no !!");
        assert_eq!(tokenize(""), "");
        assert_eq!(tokenize(" ... "), "");
    }

    /// Regression: a hyphen at the end of the text made the compound rule look for an
    /// acronym past the end, and scoring such a caption panicked.
    #[test]
    fn a_text_ending_in_a_hyphen_does_not_panic() {
        assert_eq!(ptb("1-"), "1 -");
        assert_eq!(ptb("a red x-"), "a red x -");
    }

    /// The period before `,`, `;` or `:` goes with the word, compound or abbreviation
    /// before it (the `\./{INSENTP}` rules).
    #[test]
    fn a_period_before_inner_punctuation_stays_with_the_token() {
        assert_eq!(ptb("word., next"), "word. , next");
        assert_eq!(ptb("3-d.: film"), "3-d. : film");
        assert_eq!(ptb("o'neil., x"), "o'neil. , x");
    }

    #[test]
    fn normalises_unicode_quotes_dashes_and_ellipsis() {
        assert_eq!(
            ptb("Café — “quoted” it’s…"),
            "café -- `` quoted '' it 's ..."
        );
    }
}
