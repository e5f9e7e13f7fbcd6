//! The recaption loop's rounds, as the leaderboard shows them.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

/// One finished round of a recaption loop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundRow {
    pub loop_name: String,
    pub round: i64,
    pub captioner: String,
    pub captions: i64,
    pub mean_words: Option<f64>,
    pub heldout_dataset: Option<String>,
    pub heldout_score: Option<f64>,
    /// `truth_f1` or `embed_sim` (None: recorded before the metric was kept, embed_sim).
    pub heldout_metric: Option<String>,
    /// The round's statistics as JSON.
    pub stats: String,
}

impl Store {
    /// Records a round (replacing an earlier record of the same loop and round).
    pub async fn put_round(&self, r: &RoundRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO recaption_rounds (loop_name, round, captioner, captions, mean_words, \
             heldout_dataset, heldout_score, stats, heldout_metric) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (loop_name, round) DO UPDATE SET captioner = excluded.captioner, \
             captions = excluded.captions, mean_words = excluded.mean_words, \
             heldout_dataset = excluded.heldout_dataset, heldout_score = excluded.heldout_score, \
             stats = excluded.stats, heldout_metric = excluded.heldout_metric, \
             created_at = CURRENT_TIMESTAMP",
        )
        .bind(&r.loop_name)
        .bind(r.round)
        .bind(&r.captioner)
        .bind(r.captions)
        .bind(r.mean_words)
        .bind(&r.heldout_dataset)
        .bind(r.heldout_score)
        .bind(&r.stats)
        .bind(&r.heldout_metric)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every recorded round, by loop and round.
    pub async fn rounds(&self) -> Result<Vec<RoundRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT loop_name, round, captioner, captions, mean_words, heldout_dataset, \
             heldout_score, stats, heldout_metric FROM recaption_rounds ORDER BY loop_name, round",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RoundRow {
                loop_name: r.get(0),
                round: r.get(1),
                captioner: r.get(2),
                captions: r.get(3),
                mean_words: r.get(4),
                heldout_dataset: r.get(5),
                heldout_score: r.get(6),
                stats: r.get(7),
                heldout_metric: r.get(8),
            })
            .collect())
    }
}
