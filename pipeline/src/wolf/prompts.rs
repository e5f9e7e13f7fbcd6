//! The prompts of the Wolf stages (METHOD.md section 1), each with a version. A
//! version is part of every result key made with its prompt: changing a prompt's text
//! means changing its version, and only what depends on it is computed again.

/// A prompt template and its version. The one prompt type of wolf: the recaption loop's
/// prompts and the CapScore judge's are of this type too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prompt {
    pub version: &'static str,
    pub text: &'static str,
}

/// The per-frame prompt of the image models (the scripts' wording).
pub const FRAME: Prompt = Prompt {
    version: "frame-v1",
    text: "Please describe the visual and narrative elements of the video in detail, \
           particularly the motion behavior.",
};

/// The cascade's addition: the previous frame's caption.
pub const CASCADE: Prompt = Prompt {
    version: "cascade-v1",
    text: "The caption of the previous frame was: {previous}\nDescribe this frame, keeping \
           the names of the objects consistent with that caption and giving each object's \
           location.",
};

/// The temporal summary of one image model's frame captions (the paper's prompt). Its
/// input is [`timed_lines`]: plain captions with their times as words.
pub const SUMMARY: Prompt = Prompt {
    version: "summary-v2",
    text: "Summarize all the captions to describe the video with accurate temporal \
           information. Answer with one paragraph.\n\n{captions}",
};

/// A long video's story (issue 16): the captions of its segments in order, each led by
/// its time span ([`story_lines`]), told as one caption; also each group's story when
/// there are more segments than `[segments] group`.
pub const STORY: Prompt = Prompt {
    version: "story-v2",
    text: "Here are descriptions of consecutive parts of one video, each with its time \
           span. Describe the whole video in one paragraph, telling what happens in order \
           with accurate temporal information.\n\n{captions}",
};

/// The motion caption from tracks.
pub const MOTION: Prompt = Prompt {
    version: "motion-v1",
    text: "Here are the objects of a video clip, each with where its box centre starts and \
           ends (on a 0-999 scale of the frame, x to the right, y downwards), how far it \
           travels and how it moves:\n{facts}\nDescribe the motion of every object in one \
           or two sentences.",
};

/// The video models' prompt (the paper's baseline prompt).
pub const VIDEO: Prompt = Prompt {
    version: "video-v1",
    text: "Elaborate on the visual and narrative elements of the video in detail, \
           particularly the motion behavior.",
};

/// The fusion (the scripts' form, naming each source). Its inputs are [`plain`].
pub const FUSION: Prompt = Prompt {
    version: "fusion-v2",
    text: "Please summarize on the visual and narrative elements of the video in detail \
           from descriptions from {image} and descriptions from {video}.",
};

/// Every stage prompt, for looking one up by its version ([`by_version`]).
pub const STAGE_PROMPTS: [Prompt; 7] = [FRAME, CASCADE, SUMMARY, STORY, MOTION, VIDEO, FUSION];

/// The stage prompt of a version, if it is one of [`STAGE_PROMPTS`].
pub fn by_version(version: &str) -> Option<Prompt> {
    STAGE_PROMPTS.into_iter().find(|p| p.version == version)
}

/// The system message of the LLM stages.
pub const SYSTEM: &str = "You are a careful assistant that describes videos. Answer with \
                          the description only.";

/// `text` without machine syntax, for an LLM: no boxes (a bracket group of numbers,
/// or one cut off at the end), no `No.{j} frame:` numbering, single spaces, and no
/// space before punctuation. Boxes feed the motion stage only.
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // Brackets kept (around words), so that only their own `]` is kept too.
    let mut open = 0usize;
    let mut rest = text;
    while let Some(at) = rest.find(['[', ']']) {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if rest[at..].starts_with(']') {
            if open > 0 {
                open -= 1;
                out.push(']');
            }
            rest = after;
            continue;
        }
        // A box, whole, cut off or garbled: brackets, then numbers, commas and spaces.
        let numbers = after.trim_start_matches(['[', ' ']);
        if numbers.starts_with(|c: char| c.is_ascii_digit()) {
            let tail =
                numbers.trim_start_matches(|c: char| c.is_ascii_digit() || ", .".contains(c));
            rest = tail.trim_start_matches(']');
            out.push(' ');
        } else {
            open += 1;
            out.push('[');
            rest = after;
        }
    }
    out.push_str(rest);
    let words: Vec<&str> = out.split_whitespace().collect();
    let mut kept: Vec<&str> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let skip = frame_number_words(&words[i..]);
        if skip > 0 {
            i += skip;
            continue;
        }
        kept.push(words[i]);
        i += 1;
    }
    let mut joined = kept.join(" ");
    for mark in [",", ".", ";", ":", "!", "?"] {
        joined = joined.replace(&format!(" {mark}"), mark);
    }
    joined
        .trim_matches(|c: char| c == ',' || c.is_whitespace())
        .to_owned()
}

/// Whether `text` holds `No.{j} frame:` numbering anywhere.
pub fn has_frame_numbering(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    (0..words.len()).any(|i| frame_number_words(&words[i..]) > 0)
}

/// How many words of `No.{j} frame:` (two) or `No. {j} frame:` (three) start `words`;
/// 0 when it does not start with one.
fn frame_number_words(words: &[&str]) -> usize {
    let number = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
    match words {
        [first, "frame:", ..] if first.strip_prefix("No.").is_some_and(number) => 2,
        ["No.", second, third, ..] if number(second) && *third == "frame:" => 3,
        _ => 0,
    }
}

/// The frame captions for the temporal summary: [`plain`], a run of equal consecutive
/// captions told once, and each line led by its time as words (`At 1.5 s: ...`, `From
/// 0.5 s to 1.5 s: ...`).
pub fn timed_lines(captions: &[String], times: &[f64]) -> String {
    let mut runs: Vec<(f64, f64, String)> = Vec::new();
    for (i, caption) in captions.iter().enumerate() {
        let time = times.get(i).copied().unwrap_or(i as f64);
        let text = plain(caption);
        match runs.last_mut() {
            Some((_, last, previous)) if *previous == text => *last = time,
            _ => runs.push((time, time, text)),
        }
    }
    runs.iter()
        .map(|(from, to, text)| {
            if from == to {
                format!("At {} s: {text}", seconds(*from))
            } else {
                format!("From {} s to {} s: {text}", seconds(*from), seconds(*to))
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Timed captions for the story: one line each, `0:00–0:42: caption` ([`plain`]).
pub fn story_lines(parts: &[(f64, f64, String)]) -> String {
    parts
        .iter()
        .map(|(from, to, text)| format!("{}–{}: {}", clock(*from), clock(*to), plain(text)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A time as `m:ss`, or `h:mm:ss` from an hour on (whole seconds, rounded down).
pub fn clock(s: f64) -> String {
    let s = s.max(0.0) as u64;
    match s / 3600 {
        0 => format!("{}:{:02}", s / 60, s % 60),
        h => format!("{h}:{:02}:{:02}", s / 60 % 60, s % 60),
    }
}

/// Seconds with one decimal.
fn seconds(s: f64) -> String {
    format!("{s:.1}")
}

/// Model letters A, B, C, ... for the fusion prompt.
pub fn letter(i: usize) -> String {
    let mut n = i;
    let mut s = String::new();
    loop {
        s.insert(0, (b'A' + (n % 26) as u8) as char);
        if n < 26 {
            return s;
        }
        n = n / 26 - 1;
    }
}

/// The fusion prompt: image models (their temporal summary and the motion caption) and
/// video models by letter, and the annotated caption when given, each [`plain`].
pub fn fusion(
    image: &[String],
    motion: Option<&str>,
    video: &[String],
    annotation: Option<&str>,
) -> String {
    let mut image_parts: Vec<String> = image
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "Image Model {} (Image-level Caption: {})",
                letter(i),
                plain(c)
            )
        })
        .collect();
    if let Some(m) = motion {
        image_parts.push(format!("the Motion Caption ({})", plain(m)));
    }
    let video_parts: Vec<String> = video
        .iter()
        .enumerate()
        .map(|(i, c)| format!("Video Model {} ({})", letter(i), plain(c)))
        .collect();
    let image_text = if image_parts.is_empty() {
        "no image models".to_owned()
    } else {
        image_parts.join(" and ")
    };
    let video_text = if video_parts.is_empty() {
        "no video models".to_owned()
    } else {
        video_parts.join(" and ")
    };
    let mut text = FUSION
        .text
        .replace("{image}", &image_text)
        .replace("{video}", &video_text);
    if let Some(a) = annotation {
        text.push_str(&format!(
            " An existing annotated caption says: {}",
            plain(a)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_go_past_z() {
        assert_eq!(letter(0), "A");
        assert_eq!(letter(25), "Z");
        assert_eq!(letter(26), "AA");
    }

    #[test]
    fn fusion_names_every_source() {
        let p = fusion(
            &["a red circle".into()],
            Some("the circle moves right"),
            &["a circle moves".into(), "a ball".into()],
            None,
        );
        assert!(p.contains("Image Model A (Image-level Caption: a red circle)"));
        assert!(p.contains("the Motion Caption (the circle moves right)"));
        assert!(p.contains("Video Model A (a circle moves) and Video Model B (a ball)"));
    }

    #[test]
    fn plain_text_has_no_boxes_or_frame_numbers() {
        assert_eq!(
            plain("a red circle [120, 40, 260, 180] and a blue square [5,6,7,8] ."),
            "a red circle and a blue square."
        );
        assert_eq!(plain("No.1 frame: a cat No. 2 frame: a dog"), "a cat a dog");
        // A box cut off at the token cap, and brackets that are not boxes.
        assert_eq!(plain("a green star [12, 400, 3"), "a green star");
        assert_eq!(plain("a sign [EXIT] here"), "a sign [EXIT] here");
        assert_eq!(plain("a [1.5] b"), "a b");
        // Garbled boxes, as a captioner writes them when it loses its way.
        assert_eq!(
            plain("\"OPEN\" [[237, 162, 125, on a \"BANK\" [237, 982, 237, [824, on]]]"),
            "\"OPEN\" on a \"BANK\" on"
        );
    }

    #[test]
    fn story_lines_lead_each_caption_with_its_clock_span() {
        let parts = [
            (0.0, 42.5, "a red circle [1,2,3,4] moves".to_owned()),
            (42.5, 3725.0, "a blue square".to_owned()),
        ];
        assert_eq!(
            story_lines(&parts),
            "0:00–0:42: a red circle moves\n0:42–1:02:05: a blue square"
        );
    }

    #[test]
    fn timed_lines_collapse_repeats_and_tell_times_as_words() {
        let captions = ["a cat [1,2,3,4]", "a cat [5,6,7,8]", "a dog"].map(String::from);
        assert_eq!(
            timed_lines(&captions, &[0.25, 0.75, 1.25]),
            "From 0.2 s to 0.8 s: a cat\nAt 1.2 s: a dog"
        );
    }
}
