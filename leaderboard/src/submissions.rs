//! What the live server does with a submission: validate and store it exactly as
//! `wolf import` does (`wolf_datasets::import`), then score it with the config's
//! metrics (`wolf_scorer::run`): the classic metrics always, `embed_sim` when the
//! config has its embedder, CapScore when it names a judge.

use wolf_datasets::import::{Import, ImportError, import};
use wolf_pipeline::config::Plan;
use wolf_pipeline::models::Role;
use wolf_pipeline::store::{Store, StoreError};
use wolf_scorer::run::{Metric, ScoreError, ScoreSettings, score_items};

/// A submission that could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum SubmissionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Score(#[from] ScoreError),
    #[error("the entry has no caption of a video with a reference")]
    Empty,
    #[error(
        "the judge `{judge}` scored no caption: {parse_failed} parse failures, {failed} failed calls"
    )]
    Unjudged {
        judge: String,
        parse_failed: u64,
        failed: u64,
    },
}

/// Further attempts at storing an upload when the store fails.
const STORE_RETRIES: u64 = 3;

/// The store and the scoring config of a live leaderboard.
pub struct Submissions {
    store: Store,
    plan: Plan,
    /// The longest caption an upload may hold, in bytes.
    max_caption_bytes: usize,
}

impl Submissions {
    /// Uploads take captions of at most `max_caption_bytes` bytes each.
    pub fn new(store: Store, plan: Plan, max_caption_bytes: usize) -> Self {
        Self {
            store,
            plan,
            max_caption_bytes,
        }
    }

    /// Validates `bytes` and `meta` as `wolf import` does and stores them as entry `name` of
    /// `dataset` (never replacing an existing entry); returns its run's id, or the
    /// problems with nothing written.
    pub async fn import(
        &self,
        dataset: &str,
        name: &str,
        bytes: &[u8],
        meta: &[(String, String)],
    ) -> Result<i64, ImportError> {
        let origin = format!("an upload of {} bytes", bytes.len());
        let request = Import {
            dataset,
            name,
            source: None,
            origin: &origin,
            replace: false,
            max_caption_bytes: self.max_caption_bytes,
            meta,
            columns: &wolf_datasets::sources::Columns::default(),
        };
        // A store busy with other writers (SQLite's one writer at a time, beyond its
        // busy timeout) is tried again; a file's own problems are not.
        let mut attempt = 0;
        loop {
            match import(&self.store, &request, bytes).await {
                Ok(imported) => return Ok(imported.run_id),
                Err(ImportError::Store(e)) if attempt < STORE_RETRIES => {
                    attempt += 1;
                    tracing::warn!(attempt, error = %e, "Storing an upload failed; trying again.");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Scores entry `run` with the configured metrics and judge.
    pub async fn score(&self, run: &str) -> Result<(), SubmissionError> {
        let run = self.store.run(run).await?;
        let items = self.store.scoring_items(run.id).await?;
        if items.is_empty() {
            return Err(SubmissionError::Empty);
        }
        let mut settings = ScoreSettings::from_config(&self.plan.score);
        if self
            .plan
            .model_for(&settings.embedder, Role::Embedder)
            .is_err()
        {
            settings.metrics.retain(|m| *m != Metric::EmbedSim);
        }
        let summary = score_items(&self.store, &self.plan, &items, &settings).await?;
        if let Some((judge, report)) = summary.capscore
            && report.ok == 0
        {
            return Err(SubmissionError::Unjudged {
                judge: judge.judge,
                parse_failed: report.parse_failed,
                failed: report.failed,
            });
        }
        Ok(())
    }
}
