//! The guard's path for an LLM stage (the summary and the fusion): the output is
//! checked ([`guard::check`]), retried once with seeded sampling, a penalty and
//! [`Sampling::no_loops`], then replaced by the consensus pick among the stage's inputs
//! (METHOD.md, the fusion guard).

use std::time::Instant;

use serde_json::json;

use super::{StageError, StageResult, ask_llm, cached, caption_of, llm_sampling, stored_from};
use crate::hash::fnv1a;
use crate::models::{Reply, Sampling};
use crate::store::StoredResult;
use crate::wolf::guard::{self, GuardMode, GuardRecord, Rejected};
use crate::wolf::prompts::Prompt;
use crate::wolf::runner::Shared;

/// A summary or fusion request and what the guard checks it against.
pub(crate) struct Guarded<'a> {
    pub stage: &'a str,
    pub key: &'a str,
    pub prompt: Prompt,
    pub model: &'a str,
    pub text: String,
    /// The stage's inputs as plain text, each with its name: what the output must be
    /// grounded in, and the consensus pick's candidates.
    pub candidates: Vec<(String, String)>,
    /// A long video's story: as many tokens as the stage's for each part, checked by
    /// [`guard::check_story`], its retry free to say again what its parts say (the retry
    /// of the others never completes a loop).
    pub story: bool,
}

/// An LLM stage behind the fusion guard ([`guard`]): the output is checked, retried
/// once with seeded sampling, then replaced by the consensus pick (or failed, with
/// `guard = "retry"`). The value stores the path taken and the rejected attempts.
pub(crate) async fn guarded_stage(shared: &Shared, g: Guarded<'_>) -> StageResult {
    let value = cached(shared, g.key, g.stage, || async {
        let mode = shared.plan.wolf.guard;
        let mut greedy = llm_sampling(shared, g.stage);
        let check = if g.story {
            let parts = g.candidates.len().max(1) as u32;
            greedy.max_tokens = greedy.max_tokens.saturating_mul(parts);
            guard::check_story
        } else {
            guard::check
        };
        let first = ask_llm(shared, g.stage, g.model, &g.text, greedy.clone()).await?;
        let mut stored = stored_from(&first, g.model, g.prompt);
        if mode == GuardMode::Off {
            return Ok((json!({ "caption": first.text.trim() }), stored));
        }
        let inputs: Vec<String> = g.candidates.iter().map(|(_, t)| t.clone()).collect();
        let at_cap = |reply: &Reply| {
            reply
                .usage
                .is_some_and(|u| u.completion_tokens >= greedy.max_tokens)
        };
        let mut rejected = Vec::new();
        let text = first.text.trim().to_owned();
        match check(&text, &inputs, at_cap(&first)) {
            Ok(()) => return Ok((guarded_value(&text, "fused", rejected), stored)),
            Err(failure) => rejected.push(Rejected { text, failure }),
        }
        let retry = Sampling {
            temperature: RETRY_TEMPERATURE,
            top_p: Some(RETRY_TOP_P),
            seed: Some(fnv1a(g.key.as_bytes())),
            repeat_penalty: Some(greedy.repeat_penalty.unwrap_or(1.0).max(RETRY_PENALTY)),
            // The check's own loop rule as a constraint, where the backend can apply it.
            no_loops: !g.story,
            ..greedy.clone()
        };
        let second = ask_llm(shared, g.stage, g.model, &g.text, retry).await?;
        add_usage(&mut stored, &second);
        let text = second.text.trim().to_owned();
        match check(&text, &inputs, at_cap(&second)) {
            Ok(()) => return Ok((guarded_value(&text, "fused_retry", rejected), stored)),
            Err(failure) => rejected.push(Rejected { text, failure }),
        }
        if mode == GuardMode::Retry {
            let reasons: Vec<String> = rejected.iter().map(|r| r.failure.to_string()).collect();
            return Err(StageError::new(
                "guard",
                format!("both attempts failed the check: {}", reasons.join("; ")),
            ));
        }
        let (name, text) = consensus_pick(shared, &rejected, &g.candidates).await?;
        let path = format!("consensus:{name}");
        Ok((guarded_value(&text, &path, rejected), stored))
    })
    .await?;
    Ok(caption_of(&value))
}

/// The retry's sampling: enough temperature to leave a greedy loop.
const RETRY_TEMPERATURE: f32 = 0.7;
const RETRY_TOP_P: f32 = 0.9;
/// The retry's repetition penalty at least.
const RETRY_PENALTY: f32 = 1.3;

pub(crate) fn guarded_value(
    caption: &str,
    path: &str,
    rejected: Vec<Rejected>,
) -> serde_json::Value {
    let record = GuardRecord {
        path: path.to_owned(),
        rejected,
    };
    json!({ "caption": caption, "guard": record })
}

/// Adds a second request's tokens and time to a stage's record.
pub(crate) fn add_usage(stored: &mut StoredResult, reply: &Reply) {
    if let Some(u) = reply.usage {
        *stored.prompt_tokens.get_or_insert(0) += u.prompt_tokens as i64;
        *stored.completion_tokens.get_or_insert(0) += u.completion_tokens as i64;
    }
    *stored.latency_ms.get_or_insert(0) += reply.latency.as_millis() as i64;
}

/// The consensus pick among the inputs (the rejected attempts vote but are not picked):
/// the input whose embedding is closest on average to every other candidate's.
pub(crate) async fn consensus_pick(
    shared: &Shared,
    rejected: &[Rejected],
    candidates: &[(String, String)],
) -> Result<(String, String), StageError> {
    let pickable: Vec<&(String, String)> =
        candidates.iter().filter(|(_, t)| !t.is_empty()).collect();
    let Some(first) = pickable.first() else {
        return Err(StageError::new("guard", "no input to pick from"));
    };
    if pickable.len() == 1 {
        return Ok((*first).clone());
    }
    let mut texts: Vec<String> = pickable.iter().map(|(_, t)| t.clone()).collect();
    texts.extend(rejected.iter().map(|r| r.text.clone()));
    let embedder = shared.models.embedder(&shared.plan.score.embedder)?;
    let started = Instant::now();
    let vectors = embedder.embed(&texts).await?;
    shared.count_time("guard", started);
    let pick = guard::consensus_among(&vectors, pickable.len())
        .ok_or_else(|| StageError::new("guard", "the embedder returned no vectors"))?;
    Ok(pickable[pick].clone())
}
