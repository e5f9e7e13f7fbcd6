//! Merging: the caption a round trains on, built from the item's original caption, its
//! recaption and the specialists' answers by the configured [`Template`].
//!
//! The method found recaption-only data hurt some metrics and the concatenation of
//! the original with the recaption best, so [`Template::ShortLong`] is the default:
//!
//! ```text
//! ### Short description:
//! {original}
//!
//! ### Long description:
//! {recaption}
//! ```
//!
//! Each specialist's answer is appended as a question–answer pair, in the order the
//! specialists are configured, in the same heading style:
//!
//! ```text
//! {caption}
//!
//! ### Question: {specialist prompt}
//! ### Answer: {answer}
//! ```
//!
//! Texts are trimmed; an answer that is empty after trimming adds nothing.

use serde::{Deserialize, Serialize};

use super::prompts::Specialist;

/// How the original caption and the recaption are combined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    /// The original as the short description, the recaption as the long one.
    #[default]
    ShortLong,
    /// The recaption alone.
    RecaptionOnly,
    /// The original alone (with specialists' answers, if any).
    OriginalOnly,
}

impl Template {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ShortLong => "short_long",
            Self::RecaptionOnly => "recaption_only",
            Self::OriginalOnly => "original_only",
        }
    }

    /// Whether items need an original caption (set
    /// [`super::input::InputSettings::require_caption`] from this).
    pub fn needs_original(self) -> bool {
        matches!(self, Self::ShortLong | Self::OriginalOnly)
    }

    /// Whether items need a recaption (the captioner need not run otherwise).
    pub fn needs_recaption(self) -> bool {
        matches!(self, Self::ShortLong | Self::RecaptionOnly)
    }
}

/// The merge part of a recaption config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeConfig {
    /// How the original caption and the recaption are combined (default `short_long`).
    #[serde(default)]
    pub template: Template,
    /// The specialists asked about each item, their answers appended in this order.
    #[serde(default)]
    pub specialists: Vec<Specialist>,
}

/// A specialist's answer: the question it was asked and what it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer<'a> {
    pub question: &'a str,
    pub answer: &'a str,
}

/// A caption that cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("template `{template}` needs the original caption, and there is none", template = .0.as_str())]
    MissingOriginal(Template),
    #[error("template `{template}` needs a recaption, and it is empty", template = .0.as_str())]
    MissingRecaption(Template),
}

impl MergeError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MissingOriginal(_) => "missing_caption",
            Self::MissingRecaption(_) => "missing_recaption",
        }
    }
}

/// The merged caption; what the template does not use may be `None`.
pub fn merge(
    template: Template,
    original: Option<&str>,
    recaption: Option<&str>,
    answers: &[Answer<'_>],
) -> Result<String, MergeError> {
    let original = present(original);
    let recaption = present(recaption);
    let need_original = || original.ok_or(MergeError::MissingOriginal(template));
    let need_recaption = || recaption.ok_or(MergeError::MissingRecaption(template));
    let mut caption = match template {
        Template::ShortLong => format!(
            "### Short description:\n{}\n\n### Long description:\n{}",
            need_original()?,
            need_recaption()?
        ),
        Template::RecaptionOnly => need_recaption()?.to_owned(),
        Template::OriginalOnly => need_original()?.to_owned(),
    };
    for answer in answers {
        let Some(text) = present(Some(answer.answer)) else {
            continue;
        };
        caption.push_str("\n\n### Question: ");
        caption.push_str(answer.question.trim());
        caption.push_str("\n### Answer: ");
        caption.push_str(text);
    }
    Ok(caption)
}

/// A text trimmed, if anything is left.
fn present(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recaption::input::MediaKind;

    #[test]
    fn short_long_is_the_method_form_exactly() {
        let merged = merge(
            Template::default(),
            Some(" A dog. "),
            Some("A brown dog runs on a beach.\n"),
            &[],
        )
        .unwrap();
        assert_eq!(
            merged,
            "### Short description:\nA dog.\n\n### Long description:\nA brown dog runs on a beach."
        );
    }

    #[test]
    fn the_other_templates_use_one_caption() {
        let merged = merge(Template::RecaptionOnly, None, Some("Long."), &[]).unwrap();
        assert_eq!(merged, "Long.");
        let merged = merge(Template::OriginalOnly, Some("Short."), None, &[]).unwrap();
        assert_eq!(merged, "Short.");
    }

    #[test]
    fn specialists_answers_are_appended_as_question_answer_pairs() {
        let ocr = Specialist::Ocr.prompt(MediaKind::Image).text;
        let grounding = Specialist::Grounding.prompt(MediaKind::Image).text;
        let answers = [
            Answer {
                question: ocr,
                answer: "The sign reads STOP.",
            },
            Answer {
                question: grounding,
                answer: "  ",
            },
        ];
        let merged = merge(Template::RecaptionOnly, None, Some("A street."), &answers).unwrap();
        assert_eq!(
            merged,
            format!("A street.\n\n### Question: {ocr}\n### Answer: The sign reads STOP.")
        );
    }

    #[test]
    fn a_missing_part_is_an_error_with_a_kind() {
        let err = merge(Template::ShortLong, Some(" "), Some("Long."), &[]).unwrap_err();
        assert_eq!(err.kind(), "missing_caption");
        assert!(err.to_string().contains("`short_long`"), "{err}");
        let err = merge(Template::RecaptionOnly, Some("x"), None, &[]).unwrap_err();
        assert_eq!(err.kind(), "missing_recaption");
    }

    #[test]
    fn the_config_reads_snake_case_and_refuses_unknown_keys() {
        let config: MergeConfig =
            serde_json::from_str(r#"{"template": "recaption_only", "specialists": ["ocr"]}"#)
                .unwrap();
        assert_eq!(config.template, Template::RecaptionOnly);
        assert_eq!(config.specialists, [Specialist::Ocr]);
        assert_eq!(
            serde_json::from_str::<MergeConfig>("{}").unwrap(),
            MergeConfig::default()
        );
        let err = serde_json::from_str::<MergeConfig>(r#"{"templte": "short_long"}"#).unwrap_err();
        assert!(err.to_string().contains("templte"), "{err}");
        assert!(Template::ShortLong.needs_original() && Template::ShortLong.needs_recaption());
        assert!(!Template::RecaptionOnly.needs_original());
        assert!(!Template::OriginalOnly.needs_recaption());
    }
}
