//! The CapScore runner: asks a chat LLM to judge captions, caches every reply by
//! content, and stores `capscore_similarity` and `capscore_quality` per caption and
//! sample.
//!
//! Cache key: (candidate hash, reference hash, judge identity, prompt version, mode,
//! sample index), and for listwise calls the shown order; a key whose reply parsed, or
//! stayed unparsable after the retries, is never asked again. A model error (timeout,
//! server error after the backend's own retries) is stored as `failed` and asked again
//! by the next `wolf score`.
//!
//! Threads: at most `concurrency` judge calls in flight; each is one async task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Semaphore;
use wolf_pipeline::hash::sha256_bytes;
use wolf_pipeline::models::{ChatModel, ChatRequest, Message, Sampling};
use wolf_pipeline::progress::Progress;
use wolf_pipeline::store::{Judgement, NewScore, ScoringItem, Store, StoreError};

use crate::capscore::{
    self, LISTWISE, MAX_LISTWISE, POINTWISE, parse_listwise, parse_pointwise, shuffled_order,
    unshuffle,
};

/// How candidates meet the judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Pointwise,
    Listwise,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pointwise => "pointwise",
            Self::Listwise => "listwise",
        }
    }
}

/// How one scoring pass runs.
#[derive(Debug, Clone)]
pub struct JudgeSettings {
    /// The judge's entry name (stored with each score).
    pub judge: String,
    /// What decides the judge's replies (model, file, URL), part of the cache key.
    pub identity: String,
    pub mode: Mode,
    /// Samples per item (k).
    pub samples: usize,
    /// Further attempts after an unparsable reply.
    pub parse_retries: usize,
    /// Sampling temperature; 0 is greedy (the paper's), where every sample is the same.
    pub temperature: f32,
    pub concurrency: usize,
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JudgeReport {
    /// Judge requests made (cache misses, attempts counted).
    pub calls: u64,
    /// Judgements read from the cache.
    pub cached: u64,
    pub ok: u64,
    pub parse_failed: u64,
    pub failed: u64,
}

/// The GBNF grammar of a reply with `n` scores a side.
pub fn grammar(n: usize) -> String {
    let side = std::iter::repeat_n("num", n.max(1))
        .collect::<Vec<_>>()
        .join(" \",\" ");
    format!("root ::= {side} \";\" {side}\nnum ::= \"0.\" [0-9] [0-9] | \"1.00\"\n")
}

/// One judge call to make: its key, prompt, how many scores a side, and where each
/// score goes.
struct Call {
    key: String,
    prompt: String,
    n: usize,
    sample: usize,
    /// Caption ids in shown order.
    shown: Vec<i64>,
    /// `order[k]` = index into `shown`'s original (unshuffled) list; identity pointwise.
    order: Vec<usize>,
    prompt_version: &'static str,
}

fn hash(text: &str) -> String {
    sha256_bytes(text.as_bytes())
}

fn calls_for(items: &[ScoringItem], settings: &JudgeSettings) -> Vec<Call> {
    let mut calls = Vec::new();
    for sample in 0..settings.samples.max(1) {
        match settings.mode {
            Mode::Pointwise => {
                for item in items {
                    let key = hash(
                        &serde_json::json!([
                            hash(&item.caption),
                            hash(&item.reference),
                            settings.identity,
                            POINTWISE.version,
                            "pointwise",
                            sample
                        ])
                        .to_string(),
                    );
                    calls.push(Call {
                        key,
                        prompt: capscore::pointwise_prompt(&item.reference, &item.caption),
                        n: 1,
                        sample,
                        shown: vec![item.caption_id],
                        order: vec![0],
                        prompt_version: POINTWISE.version,
                    });
                }
            }
            Mode::Listwise => {
                // Candidates of one video share a call, five at most.
                let mut by_video: BTreeMap<&str, Vec<&ScoringItem>> = BTreeMap::new();
                for item in items {
                    by_video.entry(&item.video).or_default().push(item);
                }
                for (video, group) in by_video {
                    for chunk in group.chunks(MAX_LISTWISE) {
                        let seed = u64::from_str_radix(&hash(video)[..15], 16).unwrap_or(0)
                            ^ (sample as u64).wrapping_mul(0x9E37_79B9);
                        let order = shuffled_order(chunk.len(), seed);
                        let shown: Vec<&ScoringItem> = order.iter().map(|&i| chunk[i]).collect();
                        let texts: Vec<&str> = shown.iter().map(|i| i.caption.as_str()).collect();
                        let reference = &chunk[0].reference;
                        let key = hash(
                            &serde_json::json!([
                                texts.iter().map(|t| hash(t)).collect::<Vec<_>>(),
                                hash(reference),
                                settings.identity,
                                LISTWISE.version,
                                "listwise",
                                sample
                            ])
                            .to_string(),
                        );
                        calls.push(Call {
                            key,
                            prompt: capscore::listwise_prompt(reference, &texts),
                            n: chunk.len(),
                            sample,
                            shown: chunk.iter().map(|i| i.caption_id).collect(),
                            order,
                            prompt_version: LISTWISE.version,
                        });
                    }
                }
            }
        }
    }
    calls
}

/// Parses a reply for a call: (similarity, quality) per caption, in the call's
/// original (unshuffled) candidate order.
fn parse(call: &Call, reply: &str) -> Option<(Vec<f64>, Vec<f64>)> {
    if call.n == 1 && call.prompt_version == POINTWISE.version {
        let (s, q) = parse_pointwise(reply)?;
        return Some((vec![s], vec![q]));
    }
    let (s, q) = parse_listwise(reply, call.n)?;
    Some((unshuffle(&s, &call.order), unshuffle(&q, &call.order)))
}

/// Judges every item `samples` times and stores the scores.
pub async fn judge(
    store: &Store,
    chat: Arc<dyn ChatModel>,
    items: &[ScoringItem],
    settings: &JudgeSettings,
    progress: &Arc<Progress>,
) -> Result<JudgeReport, StoreError> {
    let calls = calls_for(items, settings);
    progress.set_total(calls.len() as u64);
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let made = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for call in calls {
        let (store, chat, permits, made, settings, progress) = (
            store.clone(),
            chat.clone(),
            permits.clone(),
            made.clone(),
            settings.clone(),
            progress.clone(),
        );
        tasks.spawn(async move {
            let cached = store.judgement(&call.key).await?;
            let (judgement, from_cache) = match cached {
                Some(j) if j.status != "failed" => (j, true),
                _ => {
                    let _permit = permits
                        .acquire()
                        .await
                        .expect("never closed; this is a bug");
                    (ask(&chat, &call, &settings, &made).await, false)
                }
            };
            if !from_cache {
                store.put_judgement(&call.key, &judgement).await?;
            }
            let parsed = judgement.reply.as_deref().and_then(|r| parse(&call, r));
            let mut scores = Vec::new();
            for (k, caption_id) in call.shown.iter().enumerate() {
                for (metric, pick) in [("capscore_similarity", 0), ("capscore_quality", 1)] {
                    let value = parsed
                        .as_ref()
                        .map(|p| if pick == 0 { p.0[k] } else { p.1[k] });
                    scores.push(NewScore {
                        caption_id: *caption_id,
                        metric,
                        judge: &settings.judge,
                        prompt_version: call.prompt_version,
                        sample_index: call.sample as i64,
                        status: &judgement.status,
                        value: if judgement.status == "ok" {
                            value
                        } else {
                            None
                        },
                        raw_reply: judgement.reply.as_deref(),
                    });
                }
            }
            store.put_scores(&scores).await?;
            progress.finish_one(judgement.status == "ok");
            Ok::<_, StoreError>((judgement.status.clone(), from_cache))
        });
    }
    let mut report = JudgeReport::default();
    while let Some(done) = tasks.join_next().await {
        let (status, from_cache) = done.expect("a judge task panicked; this is a bug")?;
        if from_cache {
            report.cached += 1;
        }
        match status.as_str() {
            "ok" => report.ok += 1,
            "parse_failed" => report.parse_failed += 1,
            _ => report.failed += 1,
        }
    }
    report.calls = made.load(Ordering::Relaxed);
    Ok(report)
}

/// Asks the judge, retrying unparsable replies; the judgement to cache.
async fn ask(
    chat: &Arc<dyn ChatModel>,
    call: &Call,
    settings: &JudgeSettings,
    made: &AtomicU64,
) -> Judgement {
    let mut last_reply = None;
    let attempts = settings.parse_retries + 1;
    for attempt in 0..attempts {
        let request = ChatRequest {
            messages: vec![Message::user(call.prompt.clone())],
            sampling: Sampling {
                temperature: settings.temperature,
                max_tokens: 16 + 12 * call.n as u32,
                seed: Some((call.sample * 1000 + attempt) as u64),
                ..Sampling::default()
            },
            grammar: chat.supports_grammar().then(|| grammar(call.n)),
        };
        made.fetch_add(1, Ordering::Relaxed);
        match chat.chat(&request).await {
            Ok(reply) => {
                let ok = parse(call, &reply.text).is_some();
                last_reply = Some(reply.text);
                if ok {
                    return Judgement {
                        status: "ok".into(),
                        reply: last_reply,
                        attempts: attempt as i64 + 1,
                        error: None,
                    };
                }
            }
            // An empty reply is an unparsable reply, not a failed call.
            Err(e) if e.kind == wolf_pipeline::models::ErrorKind::EmptyReply => {
                last_reply = Some(String::new());
            }
            Err(e) => {
                return Judgement {
                    status: "failed".into(),
                    reply: last_reply,
                    attempts: attempt as i64 + 1,
                    error: Some(e.to_string()),
                };
            }
        }
    }
    Judgement {
        status: "parse_failed".into(),
        reply: last_reply,
        attempts: attempts as i64,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_has_n_numbers_a_side() {
        let g = grammar(3);
        assert!(g.starts_with("root ::= num \",\" num \",\" num \";\" num \",\" num \",\" num\n"));
    }
}
