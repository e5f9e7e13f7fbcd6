//! Why a run's stages failed, grouped by reason, with a hint of what to do: the last
//! screen of `wolf caption` (the run's failed work items, [`Store::failure_groups`])
//! and of `wolf worker` (the failed attempts it made). The binary prints them.
//!
//! [`Store::failure_groups`]: crate::store::Store::failure_groups

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::WolfConfig;
use crate::store::{Store, StoreError};

/// The reasons [`Failures::lines`] shows; the rest are counted.
pub const REASONS_SHOWN: usize = 5;

/// The kind of a stage that failed because a stage it reads failed.
pub const DEPENDENCY: &str = "dependency";

/// Failed stages counted by (kind, message), with the model entries they were for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failures {
    groups: BTreeMap<(String, String), Group>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Group {
    count: u64,
    models: BTreeSet<String>,
}

/// One reason: its kind and message, how many stages failed with it, the model entries
/// they were for, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureReason {
    pub kind: String,
    pub message: String,
    pub count: u64,
    pub models: Vec<String>,
    pub hint: Option<String>,
}

impl Failures {
    /// Counts `count` stages failed with `kind` and `message`, for `model` when the
    /// stage has one.
    pub fn add(&mut self, kind: &str, message: &str, model: Option<&str>, count: u64) {
        let group = self
            .groups
            .entry((kind.to_owned(), message.to_owned()))
            .or_default();
        group.count += count;
        group.models.extend(model.map(str::to_owned));
    }

    pub fn merge(&mut self, other: Failures) {
        for ((kind, message), group) in other.groups {
            let mine = self.groups.entry((kind, message)).or_default();
            mine.count += group.count;
            mine.models.extend(group.models);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Failed stages counted.
    /// Why stages failed, commonest first, each with its count and a hint; past
    /// [`REASONS_SHOWN`], the rest are counted. Empty without failures.
    pub fn lines(&self) -> Vec<String> {
        let reasons = self.reasons();
        if reasons.is_empty() {
            return Vec::new();
        }
        let mut lines = vec![format!("Why stages failed ({} in all):", self.total())];
        for reason in reasons.iter().take(REASONS_SHOWN) {
            let hint = reason
                .hint
                .as_deref()
                .map_or_else(String::new, |hint| format!(" \u{2014} {hint}"));
            lines.push(format!(
                "  {}: {} \u{d7}{}{hint}",
                reason.kind, reason.message, reason.count
            ));
        }
        if reasons.len() > REASONS_SHOWN {
            let rest: u64 = reasons[REASONS_SHOWN..].iter().map(|r| r.count).sum();
            lines.push(format!(
                "  and {} more reasons ({rest} stages)",
                reasons.len() - REASONS_SHOWN
            ));
        }
        lines
    }

    pub fn total(&self) -> u64 {
        self.groups.values().map(|g| g.count).sum()
    }

    /// The reasons, commonest first; those that only follow from another stage's
    /// failure (`dependency`) after every cause.
    pub fn reasons(&self) -> Vec<FailureReason> {
        let mut reasons: Vec<FailureReason> = self
            .groups
            .iter()
            .map(|((kind, message), group)| {
                let models: Vec<String> = group.models.iter().cloned().collect();
                FailureReason {
                    hint: hint(kind, &models),
                    kind: kind.clone(),
                    message: message.clone(),
                    count: group.count,
                    models,
                }
            })
            .collect();
        reasons.sort_by(|a, b| {
            (a.kind == DEPENDENCY)
                .cmp(&(b.kind == DEPENDENCY))
                .then(b.count.cmp(&a.count))
                .then(a.kind.cmp(&b.kind))
                .then(a.message.cmp(&b.message))
        });
        reasons
    }
}

/// The reasons of run `run_id`'s failed stages, whichever pass failed them.
pub async fn of_run(store: &Store, run_id: i64, wolf: &WolfConfig) -> Result<Failures, StoreError> {
    let mut failures = Failures::default();
    for (stage, kind, message, count) in store.failure_groups(run_id).await? {
        failures.add(&kind, &message, wolf.stage_model(&stage), count as u64);
    }
    Ok(failures)
}

/// What to try for a failure of `kind` of the model entries `models` (the error kinds
/// of `crate::models::ErrorKind`, the video's and the dependency).
pub fn hint(kind: &str, models: &[String]) -> Option<String> {
    let check = match models {
        [] => "`wolf model check NAME`".to_owned(),
        names => names
            .iter()
            .map(|name| format!("`wolf model check {name}`"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let text = match kind {
        "connect" => format!("is the server up? ({check})"),
        "timeout" => format!(
            "the server is slow or stuck: raise the entry's `timeout_s` or lower its \
             `max_concurrency` ({check})"
        ),
        "rate_limited" => {
            "the server limits requests: lower the entry's `max_concurrency`".to_owned()
        }
        "server_error" => format!("the server failed: see its log ({check})"),
        "auth" => "set the API key in the variable the entry's `api_key_env` names".to_owned(),
        "unknown_model" | "bad_request" => {
            format!("does the server serve the entry's `model`? ({check})")
        }
        "unsupported" => format!("the model cannot take this input ({check})"),
        "context_overflow" => {
            "the prompt is too long: sample fewer frames or lower `[wolf] caption_max_tokens`"
                .to_owned()
        }
        "load" => format!("the model did not load: check the entry's `path` ({check})"),
        "bad_response" | "empty_reply" => {
            format!("the server answered something unusable ({check})")
        }
        DEPENDENCY => "follows from the failures above".to_owned(),
        _ => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_come_commonest_first_with_dependencies_last_and_hints_name_the_model() {
        let mut failures = Failures::default();
        failures.add(DEPENDENCY, "needs `cascade:img`, which failed", None, 40);
        failures.add("connect", "refused", Some("img"), 3);
        failures.add("connect", "refused", Some("img"), 21);
        let mut other = Failures::default();
        other.add("timeout", "slow", Some("llm"), 2);
        failures.merge(other);
        assert_eq!(failures.total(), 66);
        let reasons = failures.reasons();
        let kinds: Vec<(&str, u64)> = reasons.iter().map(|r| (r.kind.as_str(), r.count)).collect();
        assert_eq!(kinds, [("connect", 24), ("timeout", 2), (DEPENDENCY, 40)]);
        assert_eq!(reasons[0].models, ["img"]);
        assert_eq!(
            reasons[0].hint.as_deref(),
            Some("is the server up? (`wolf model check img`)")
        );
        assert_eq!(hint("no_such_kind", &[]), None);
    }
}
