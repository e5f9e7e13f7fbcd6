//! The prompts of VILA² recaptioning (METHOD.md section 3), each with a version that
//! is recorded with every caption made from it: the three long recaption prompts, one
//! drawn per item, and the three specialist prompts whose answers are appended to the
//! caption.
//!
//! The method's prompts speak of an image. Videos are asked the same questions about
//! "the video" (as Wolf's own video prompt does), under versions of their own, so that
//! a video model is never asked to describe an image.
//!
//! The recaption prompt of an item is drawn from a seed, its shard and its key only
//! (SHA-256 of the three), not from a generator's state: a resumed or repeated round,
//! or one that visits items in another order, draws the same prompt for each item.

use serde::{Deserialize, Serialize};
pub use wolf_pipeline::wolf::prompts::Prompt;

use super::input::MediaKind;

/// "Describe the image in details." (the method's wording, grammar included).
pub const DESCRIBE_IMAGE: Prompt = Prompt {
    version: "recaption-describe-image-v1",
    text: "Describe the image in details.",
};

pub const DESCRIBE_VIDEO: Prompt = Prompt {
    version: "recaption-describe-video-v1",
    text: "Describe the video in details.",
};

pub const ELABORATE_IMAGE: Prompt = Prompt {
    version: "recaption-elaborate-image-v1",
    text: "Elaborate on the visual and narrative elements of the image in detail.",
};

pub const ELABORATE_VIDEO: Prompt = Prompt {
    version: "recaption-elaborate-video-v1",
    text: "Elaborate on the visual and narrative elements of the video in detail.",
};

pub const CONFIDENT_IMAGE: Prompt = Prompt {
    version: "recaption-confident-image-v1",
    text: "Instead of describing the imaginary content, only describing the content one \
           can determine confidently from the image. Do not describe the contents by \
           itemizing them in list form. Minimize aesthetic descriptions as much as \
           possible.",
};

pub const CONFIDENT_VIDEO: Prompt = Prompt {
    version: "recaption-confident-video-v1",
    text: "Instead of describing the imaginary content, only describing the content one \
           can determine confidently from the video. Do not describe the contents by \
           itemizing them in list form. Minimize aesthetic descriptions as much as \
           possible.",
};

/// The recaption prompts for images, in the method's order.
pub const RECAPTION_IMAGE: [Prompt; 3] = [DESCRIBE_IMAGE, ELABORATE_IMAGE, CONFIDENT_IMAGE];

/// The recaption prompts for videos, in the same order.
pub const RECAPTION_VIDEO: [Prompt; 3] = [DESCRIBE_VIDEO, ELABORATE_VIDEO, CONFIDENT_VIDEO];

/// The recaption prompts for a kind of media.
pub fn recaption_prompts(media: MediaKind) -> &'static [Prompt; 3] {
    match media {
        MediaKind::Image => &RECAPTION_IMAGE,
        MediaKind::Video => &RECAPTION_VIDEO,
    }
}

/// Which of the three recaption prompts an item gets: a function of `seed`, `shard`
/// and `key` only.
pub fn recaption_choice(seed: u64, shard: &str, key: &str) -> usize {
    // Lengths delimit the fields, so that no two (shard, key) pairs hash alike.
    let input = format!("{seed}:{}:{shard}:{}:{key}", shard.len(), key.len());
    let digest = wolf_pipeline::hash::sha256_bytes(input.as_bytes());
    let draw = u64::from_str_radix(&digest[..16], 16)
        .expect("a SHA-256 hex digest starts with 16 hex digits; this is a bug");
    (draw % 3) as usize
}

/// The recaption prompt of an item.
pub fn recaption_prompt(seed: u64, shard: &str, key: &str, media: MediaKind) -> Prompt {
    recaption_prompts(media)[recaption_choice(seed, shard, key)]
}

/// A specialist (METHOD.md section 3), fine-tuned from the self-augmented model, whose
/// answer to its prompt is appended to the caption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Specialist {
    /// Spatial relations.
    Spatial,
    /// Objects with `[xmin,ymin,xmax,ymax]` boxes, coordinates from 0 to 999.
    Grounding,
    /// The text in the image.
    Ocr,
}

pub const SPATIAL_IMAGE: Prompt = Prompt {
    version: "specialist-spatial-image-v1",
    text: "Elaborate on the visual and narrative elements of the image in detail, with a \
           focus on spatial relations.",
};

pub const SPATIAL_VIDEO: Prompt = Prompt {
    version: "specialist-spatial-video-v1",
    text: "Elaborate on the visual and narrative elements of the video in detail, with a \
           focus on spatial relations.",
};

/// The boxes' coordinates run from 0 to 999, as the grounding specialist was trained;
/// the prompt keeps the method's wording, which does not say so.
pub const GROUNDING_IMAGE: Prompt = Prompt {
    version: "specialist-grounding-image-v1",
    text: "Elaborate on the visual and narrative elements in the image, and specify their \
           location with [xmin,ymin,xmax,ymax].",
};

pub const GROUNDING_VIDEO: Prompt = Prompt {
    version: "specialist-grounding-video-v1",
    text: "Elaborate on the visual and narrative elements in the video, and specify their \
           location with [xmin,ymin,xmax,ymax].",
};

pub const OCR_IMAGE: Prompt = Prompt {
    version: "specialist-ocr-image-v1",
    text: "Your task is to recognize and describe the text in the image. Please provide a \
           brief description that focuses on the textual content.",
};

pub const OCR_VIDEO: Prompt = Prompt {
    version: "specialist-ocr-video-v1",
    text: "Your task is to recognize and describe the text in the video. Please provide a \
           brief description that focuses on the textual content.",
};

impl Specialist {
    pub const ALL: [Specialist; 3] = [Self::Spatial, Self::Grounding, Self::Ocr];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spatial => "spatial",
            Self::Grounding => "grounding",
            Self::Ocr => "ocr",
        }
    }

    /// The specialist's prompt for a kind of media.
    pub fn prompt(self, media: MediaKind) -> Prompt {
        match (self, media) {
            (Self::Spatial, MediaKind::Image) => SPATIAL_IMAGE,
            (Self::Spatial, MediaKind::Video) => SPATIAL_VIDEO,
            (Self::Grounding, MediaKind::Image) => GROUNDING_IMAGE,
            (Self::Grounding, MediaKind::Video) => GROUNDING_VIDEO,
            (Self::Ocr, MediaKind::Image) => OCR_IMAGE,
            (Self::Ocr, MediaKind::Video) => OCR_VIDEO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_three_prompts_are_drawn_in_about_equal_shares() {
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            counts[recaption_choice(7, "shard-000", &format!("{i:06}"))] += 1;
        }
        for count in counts {
            assert!((850..=1150).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn the_draw_depends_only_on_seed_shard_and_key() {
        let first: Vec<_> = (0..50)
            .map(|i| recaption_prompt(1, "s", &i.to_string(), MediaKind::Image).version)
            .collect();
        let again: Vec<_> = (0..50)
            .rev()
            .map(|i| recaption_prompt(1, "s", &i.to_string(), MediaKind::Image).version)
            .rev()
            .collect();
        assert_eq!(first, again);
        let other_seed: Vec<_> = (0..50)
            .map(|i| recaption_prompt(2, "s", &i.to_string(), MediaKind::Image).version)
            .collect();
        assert_ne!(first, other_seed);
        // Shard and key are delimited: moving a character across them changes the input.
        let a: Vec<_> = (0..20).map(|s| recaption_choice(s, "ab", "c")).collect();
        let b: Vec<_> = (0..20).map(|s| recaption_choice(s, "a", "bc")).collect();
        assert_ne!(a, b);
    }

    /// Guards the draw against a change of hash or input format: a round resumed with a
    /// newer build must draw the prompts it drew before.
    #[test]
    fn the_draw_is_pinned() {
        let draws: Vec<_> = (0..12)
            .map(|i| recaption_choice(0, "shard-0000", &format!("{i:06}")))
            .collect();
        assert_eq!(draws, PINNED);
    }
    const PINNED: [usize; 12] = [1, 2, 0, 2, 0, 2, 1, 2, 2, 2, 0, 0];

    #[test]
    fn images_and_videos_get_the_same_choice_in_their_own_words() {
        for i in 0..30 {
            let key = i.to_string();
            let image = recaption_prompt(3, "s", &key, MediaKind::Image);
            let video = recaption_prompt(3, "s", &key, MediaKind::Video);
            assert_eq!(image.text.replace("image", "video"), video.text);
            assert_eq!(image.version.replace("image", "video"), video.version);
        }
        for specialist in Specialist::ALL {
            let image = specialist.prompt(MediaKind::Image);
            let video = specialist.prompt(MediaKind::Video);
            assert_eq!(image.text.replace("image", "video"), video.text);
        }
    }

    #[test]
    fn the_method_wording_is_kept() {
        assert_eq!(DESCRIBE_IMAGE.text, "Describe the image in details.");
        assert!(
            CONFIDENT_IMAGE
                .text
                .contains("from the image. Do not describe")
        );
        let specialists: Vec<Specialist> =
            serde_json::from_str(r#"["spatial", "grounding", "ocr"]"#).unwrap();
        assert_eq!(specialists, Specialist::ALL);
    }
}
