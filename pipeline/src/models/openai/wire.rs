//! The OpenAI wire types: request bodies borrow from the caller, replies read only
//! what is used, and the parsers of chat and embedding replies.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::failure::error_detail;
use crate::models::{ErrorKind, ImageDetail, ModelError, Speaker, Usage, non_empty};

// Wire types: requests borrow from the caller, replies read only what is used.

#[derive(Serialize)]
pub(super) struct ChatBody<'a> {
    pub(super) model: &'a str,
    pub(super) messages: Vec<WireMessage<'a>>,
    pub(super) temperature: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) top_p: Option<f32>,
    pub(super) max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) seed: Option<u64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(super) stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) presence_penalty: Option<f32>,
    /// `repeat_penalty` under the name vLLM and llama.cpp's server read (OpenAI's own
    /// API has no such field: use the frequency penalty there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) repetition_penalty: Option<f32>,
    /// The entry's `extra_body`, merged as it is.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(super) extra: Option<&'a toml::Table>,
}

#[derive(Serialize)]
pub(super) struct WireMessage<'a> {
    pub(super) role: Speaker,
    pub(super) content: Content<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Content<'a> {
    Text(&'a str),
    Parts(Vec<Part<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Part<'a> {
    Text { text: Cow<'a, str> },
    ImageUrl { image_url: Url },
    VideoUrl { video_url: Url },
}

#[derive(Serialize)]
pub(super) struct Url {
    pub(super) url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) detail: Option<ImageDetail>,
}

#[derive(Serialize)]
pub(super) struct EmbeddingsBody<'a> {
    pub(super) model: &'a str,
    pub(super) input: &'a [String],
}

#[derive(Deserialize)]
struct ChatResponse {
    pub(super) choices: Option<Vec<ChoiceResponse>>,
    pub(super) usage: Option<UsageResponse>,
}

#[derive(Deserialize)]
struct ChoiceResponse {
    pub(super) message: Option<MessageResponse>,
}

#[derive(Deserialize)]
struct MessageResponse {
    pub(super) content: Option<String>,
}

#[derive(Deserialize)]
struct UsageResponse {
    #[serde(default)]
    pub(super) prompt_tokens: u32,
    #[serde(default)]
    pub(super) completion_tokens: u32,
}

pub(super) fn parse_chat(body: &[u8], model: &str) -> Result<(String, Option<Usage>), ModelError> {
    let bad = |message: String| ModelError::new(ErrorKind::BadResponse, model, message);
    let response: ChatResponse = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the reply is not a chat completion ({e}): {}",
            error_detail(body)
        ))
    })?;
    let choice = response
        .choices
        .and_then(|c| c.into_iter().next())
        .ok_or_else(|| bad(format!("the reply has no choices: {}", error_detail(body))))?;
    let content = choice
        .message
        .and_then(|m| m.content)
        .ok_or_else(|| bad("the reply's message has no content".to_owned()))?;
    let text = non_empty(content, model)?;
    let text = match text.trim() {
        trimmed if trimmed.len() == text.len() => text,
        trimmed => trimmed.to_owned(),
    };
    let usage = response.usage.map(|u| Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
    });
    Ok((text, usage))
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    pub(super) data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    pub(super) index: Option<usize>,
    pub(super) embedding: Vec<f32>,
}

pub(super) fn parse_embeddings(
    body: &[u8],
    expected: usize,
    model: &str,
) -> Result<Vec<Vec<f32>>, ModelError> {
    let bad = |message: String| ModelError::new(ErrorKind::BadResponse, model, message);
    let response: EmbeddingsResponse = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the reply is not an embeddings list ({e}): {}",
            error_detail(body)
        ))
    })?;
    if response.data.len() != expected {
        return Err(bad(format!(
            "{expected} texts got {} vectors",
            response.data.len()
        )));
    }
    let mut out: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (i, item) in response.data.into_iter().enumerate() {
        let at = item.index.unwrap_or(i);
        match out.get_mut(at) {
            Some(slot @ None) => *slot = Some(item.embedding),
            _ => {
                return Err(bad(format!(
                    "the reply's vector indices are not 0..{expected}"
                )));
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|v| v.expect("every slot was filled above; this is a bug"))
        .collect())
}

#[derive(Deserialize)]
struct ModelsResponse {
    data: Vec<ModelItem>,
}

#[derive(Deserialize)]
struct ModelItem {
    id: String,
}

/// The model names a `GET /v1/models` reply lists.
pub(super) fn parse_models(body: &[u8], model: &str) -> Result<Vec<String>, ModelError> {
    let response: ModelsResponse = serde_json::from_slice(body).map_err(|e| {
        ModelError::new(
            ErrorKind::BadResponse,
            model,
            format!(
                "the reply to `GET /models` is not a model list ({e}): {}",
                error_detail(body)
            ),
        )
    })?;
    Ok(response.data.into_iter().map(|m| m.id).collect())
}
