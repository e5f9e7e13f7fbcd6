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

/// The temporal summary of one image model's frame captions (the paper's prompt).
pub const SUMMARY: Prompt = Prompt {
    version: "summary-v1",
    text: "Summarize all the captions to describe the video with accurate temporal \
           information. Answer with one paragraph.\n\n{captions}",
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

/// The fusion (the scripts' form, naming each source).
pub const FUSION: Prompt = Prompt {
    version: "fusion-v1",
    text: "Please summarize on the visual and narrative elements of the video in detail \
           from descriptions from {image} and descriptions from {video}.",
};

/// The system message of the LLM stages.
pub const SYSTEM: &str = "You are a careful assistant that describes videos. Answer with \
                          the description only.";

/// `No.{j} frame: {caption}` lines, numbered from 1 (the paper's format).
pub fn frame_lines(captions: &[String]) -> String {
    captions
        .iter()
        .enumerate()
        .map(|(j, c)| format!("No.{} frame: {}", j + 1, c.trim()))
        .collect::<Vec<_>>()
        .join("\n")
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
/// video models by letter, and the annotated caption when given.
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
                c.trim()
            )
        })
        .collect();
    if let Some(m) = motion {
        image_parts.push(format!("the Motion Caption ({})", m.trim()));
    }
    let video_parts: Vec<String> = video
        .iter()
        .enumerate()
        .map(|(i, c)| format!("Video Model {} ({})", letter(i), c.trim()))
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
            a.trim()
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
    fn frame_lines_are_numbered_from_one() {
        assert_eq!(
            frame_lines(&["a".into(), "b".into()]),
            "No.1 frame: a\nNo.2 frame: b"
        );
    }
}
