//! The temporal summary of one image model's frame captions (METHOD.md 1.3), behind
//! the guard.

use super::StageResult;
use super::cascade::Cascade;
use super::guarded::{Guarded, guarded_stage};
use crate::wolf::keys::Keys;
use crate::wolf::prompts;
use crate::wolf::runner::Shared;

/// Image model `m`'s frame captions, with their times, summarised by the summary LLM.
pub(crate) async fn summary(
    shared: &Shared,
    m: &str,
    keys: &Keys,
    cascade: &Cascade,
) -> StageResult {
    let text = prompts::SUMMARY.text.replace(
        "{captions}",
        &prompts::timed_lines(&cascade.captions, &cascade.times),
    );
    let candidates = cascade
        .captions
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("frame:{}", i + 1), prompts::plain(c)))
        .collect();
    let stage = Guarded {
        stage: "summary",
        key: &keys.summary[m],
        prompt: prompts::SUMMARY,
        model: shared.plan.wolf.summary_llm(),
        text,
        candidates,
        story: false,
    };
    guarded_stage(shared, stage).await
}
