//! What the leaderboard reads, and its submissions queue.
//!
//! The leaderboard loads a dataset's entries, captions and scores in a few whole-table
//! queries (a page of 10,000 videos must not cost 10,000 round trips) and a video's
//! stage outputs on demand. Submissions are uploads of serve mode: a valid one is an
//! imported entry waiting for its scores, an invalid one only a row with its reason.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

/// One entry of a dataset: a (run, source) pair with its run's settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryRow {
    pub run_id: i64,
    pub run: String,
    pub source: String,
    /// The run's config text (`imported from …` for an imported entry).
    pub config: String,
    pub status: String,
    pub created_at: String,
    /// Distinct models and prompt versions of its captions.
    pub models: Vec<String>,
    pub prompt_versions: Vec<String>,
    /// Its metadata (`wolf import --meta`, the submission form), by key.
    pub meta: Vec<(String, String)>,
}

/// A caption as the leaderboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoardCaption {
    pub caption_id: i64,
    pub run_id: i64,
    pub video_id: i64,
    pub source: String,
    pub caption: String,
}

/// A score of a caption (by caption id).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaptionScore {
    pub caption_id: i64,
    pub id: i64,
    pub metric: String,
    pub judge: String,
    pub prompt_version: String,
    pub sample_index: i64,
    pub status: String,
    pub value: Option<f64>,
}

/// A stage's output for one video of a run (the intermediate captions of Wolf).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageOutput {
    pub run_id: i64,
    pub stage: String,
    /// JSON text: `{"caption": …}`, or `{"captions": […], "times": […]}` for a cascade.
    pub value: String,
    pub model: Option<String>,
    pub prompt_version: Option<String>,
}

/// The status of a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmissionStatus {
    Invalid,
    Queued,
    Scoring,
    Scored,
    Failed,
    Deleted,
}

impl SubmissionStatus {
    const ALL: [Self; 6] = [
        Self::Invalid,
        Self::Queued,
        Self::Scoring,
        Self::Scored,
        Self::Failed,
        Self::Deleted,
    ];

    /// The status stored as `text` (the schema's CHECK allows no other).
    fn parse(text: &str) -> Result<Self, sqlx::Error> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown submission status `{text}`").into())
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Queued => "queued",
            Self::Scoring => "scoring",
            Self::Scored => "scored",
            Self::Failed => "failed",
            Self::Deleted => "deleted",
        }
    }
}

/// A stored submission.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubmissionRow {
    pub id: i64,
    pub dataset: String,
    pub name: String,
    pub run_id: Option<i64>,
    pub status: SubmissionStatus,
    pub error: Option<String>,
    pub size_bytes: i64,
    pub sha256: String,
    pub created_at: String,
    pub updated_at: String,
    /// Captions stored for it (0 before its entry is stored).
    pub captions: i64,
    /// Readable videos of its dataset (its coverage is `captions / videos`).
    pub videos: i64,
}

/// A new submission's record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubmission<'a> {
    pub dataset_id: i64,
    pub name: &'a str,
    pub run_id: Option<i64>,
    pub status: SubmissionStatus,
    pub error: Option<&'a str>,
    pub size_bytes: i64,
    pub sha256: &'a str,
}

impl Store {
    /// The entries of a dataset: every (run, source) with captions, by run then source.
    pub async fn entries(&self, dataset_id: i64) -> Result<Vec<EntryRow>, StoreError> {
        let dialect = self.dialect();
        let (models, prompts) = (
            dialect.distinct_list("c.model"),
            dialect.distinct_list("c.prompt_version"),
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT r.id, r.name, c.source, r.config, r.status, r.created_at, {models}, \
             {prompts} FROM runs r JOIN captions c ON c.run_id = r.id WHERE r.dataset_id = $1 \
             GROUP BY r.id, c.source ORDER BY r.name, c.source"
        )))
        .bind(dataset_id)
        .fetch_all(self.pool())
        .await?;
        let mut meta: std::collections::HashMap<i64, Vec<(String, String)>> =
            std::collections::HashMap::new();
        for r in sqlx::query(
            "SELECT m.run_id, m.key, m.value FROM entry_meta m JOIN runs r ON r.id = m.run_id \
             WHERE r.dataset_id = $1 ORDER BY m.run_id, m.key",
        )
        .bind(dataset_id)
        .fetch_all(self.pool())
        .await?
        {
            meta.entry(r.get(0)).or_default().push((r.get(1), r.get(2)));
        }
        let split = |s: Option<String>| -> Vec<String> {
            let mut v: Vec<String> = s
                .unwrap_or_default()
                .split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect();
            v.sort();
            v
        };
        Ok(rows
            .into_iter()
            .map(|r| EntryRow {
                run_id: r.get(0),
                run: r.get(1),
                source: r.get(2),
                config: r.get(3),
                status: r.get(4),
                created_at: r.get(5),
                models: split(r.get(6)),
                prompt_versions: split(r.get(7)),
                meta: Vec::new(),
            })
            .map(|mut e: EntryRow| {
                e.meta = meta.remove(&e.run_id).unwrap_or_default();
                e
            })
            .collect())
    }

    /// Every caption of a dataset's runs.
    pub async fn dataset_captions(&self, dataset_id: i64) -> Result<Vec<BoardCaption>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.id, c.run_id, c.video_id, c.source, c.caption FROM captions c \
             JOIN runs r ON r.id = c.run_id WHERE r.dataset_id = $1 ORDER BY c.id",
        )
        .bind(dataset_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| BoardCaption {
                caption_id: r.get(0),
                run_id: r.get(1),
                video_id: r.get(2),
                source: r.get(3),
                caption: r.get(4),
            })
            .collect())
    }

    /// A page of a dataset's scores in (caption, id) order, after the score `after`
    /// (a (caption id, score id) pair; `(0, 0)` for the first page). A dataset's scores
    /// can be millions of rows: the leaderboard folds them in page by page.
    pub async fn dataset_scores_page(
        &self,
        dataset_id: i64,
        after: (i64, i64),
        limit: i64,
    ) -> Result<Vec<CaptionScore>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.caption_id, s.id, s.metric, s.judge, s.prompt_version, s.sample_index, \
             s.status, s.value FROM scores s JOIN captions c ON c.id = s.caption_id \
             JOIN runs r ON r.id = c.run_id WHERE r.dataset_id = $1 \
             AND (s.caption_id > $2 OR (s.caption_id = $2 AND s.id > $3)) \
             ORDER BY s.caption_id, s.id LIMIT $4",
        )
        .bind(dataset_id)
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| CaptionScore {
                caption_id: r.get(0),
                id: r.get(1),
                metric: r.get(2),
                judge: r.get(3),
                prompt_version: r.get(4),
                sample_index: r.get(5),
                status: r.get(6),
                value: r.get(7),
            })
            .collect())
    }

    /// The done stages of one video, in every run, with their outputs.
    pub async fn stage_outputs(&self, video_id: i64) -> Result<Vec<StageOutput>, StoreError> {
        let rows = sqlx::query(
            "SELECT w.run_id, w.stage, r.value, r.model, r.prompt_version FROM work_items w \
             JOIN results r ON r.key = w.result_key WHERE w.video_id = $1 AND w.status = 'done' \
             ORDER BY w.run_id, w.id",
        )
        .bind(video_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| StageOutput {
                run_id: r.get(0),
                stage: r.get(1),
                value: r.get(2),
                model: r.get(3),
                prompt_version: r.get(4),
            })
            .collect())
    }

    /// A number that changes whenever what the leaderboard shows may have changed (runs,
    /// captions, scores, submissions), cheap enough to ask every few seconds.
    pub async fn board_version(&self) -> Result<String, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM runs), (SELECT max(updated_at) FROM runs), \
             (SELECT max(id) FROM captions), (SELECT max(id) FROM scores), \
             (SELECT count(*) FROM submissions), (SELECT max(updated_at) FROM submissions), \
             (SELECT count(*) FROM datasets), (SELECT max(updated_at) FROM datasets), \
             (SELECT max(created_at) FROM recaption_rounds)",
        )
        .fetch_one(self.pool())
        .await?;
        let a: i64 = row.get(0);
        let b: Option<String> = row.get(1);
        let c: Option<i64> = row.get(2);
        let d: Option<i64> = row.get(3);
        let e: i64 = row.get(4);
        let f: Option<String> = row.get(5);
        let g: i64 = row.get(6);
        let h: Option<String> = row.get(7);
        let i: Option<String> = row.get(8);
        Ok(format!("{a}/{b:?}/{c:?}/{d:?}/{e}/{f:?}/{g}/{h:?}/{i:?}"))
    }

    /// Records a submission; returns its id.
    pub async fn put_submission(&self, s: &NewSubmission<'_>) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO submissions (dataset_id, name, run_id, status, error, size_bytes, sha256) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(s.dataset_id)
        .bind(s.name)
        .bind(s.run_id)
        .bind(s.status.as_str())
        .bind(s.error)
        .bind(s.size_bytes)
        .bind(s.sha256)
        .fetch_one(self.pool())
        .await?)
    }

    /// Gives a submission its stored entry's run.
    pub async fn attach_submission(&self, id: i64, run_id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE submissions SET run_id = $1, updated_at = CURRENT_TIMESTAMP WHERE id = $2",
        )
        .bind(run_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The database's clock as text, in the form of its timestamps (UTC; SQLite's
    /// `YYYY-MM-DD HH:MM:SS`, PostgreSQL's with fractions and zone).
    pub async fn now(&self) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar("SELECT CAST(CURRENT_TIMESTAMP AS TEXT)")
            .fetch_one(self.pool())
            .await?)
    }

    /// Every submission, newest first.
    pub async fn submissions(&self) -> Result<Vec<SubmissionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id, d.name, s.name, s.run_id, s.status, s.error, s.size_bytes, s.sha256, \
             s.created_at, s.updated_at, \
             (SELECT COUNT(*) FROM captions c WHERE c.run_id = s.run_id), \
             (SELECT COUNT(*) FROM videos v WHERE v.dataset_id = s.dataset_id AND v.status = 'ok') \
             FROM submissions s JOIN datasets d ON d.id = s.dataset_id ORDER BY s.id DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(SubmissionRow {
                    id: r.try_get(0)?,
                    dataset: r.try_get(1)?,
                    name: r.try_get(2)?,
                    run_id: r.try_get(3)?,
                    status: SubmissionStatus::parse(r.try_get(4)?)?,
                    error: r.try_get(5)?,
                    size_bytes: r.try_get(6)?,
                    sha256: r.try_get(7)?,
                    created_at: r.try_get(8)?,
                    updated_at: r.try_get(9)?,
                    captions: r.try_get(10)?,
                    videos: r.try_get(11)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Claims the oldest queued submission for scoring: marks it `scoring` and returns
    /// it (with its run's name), or `None` when none waits.
    pub async fn claim_submission(&self) -> Result<Option<(i64, String)>, StoreError> {
        let claimed = sqlx::query(
            "UPDATE submissions SET status = 'scoring', updated_at = CURRENT_TIMESTAMP \
             WHERE id = (SELECT id FROM submissions WHERE status = 'queued' AND run_id IS NOT NULL \
             ORDER BY id LIMIT 1) RETURNING id, run_id",
        )
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = claimed else {
            return Ok(None);
        };
        let (id, run_id): (i64, i64) = (row.get(0), row.get(1));
        let run: String = sqlx::query_scalar("SELECT name FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(self.pool())
            .await?;
        Ok(Some((id, run)))
    }

    /// Sets a submission's status (and error, for `failed`).
    pub async fn finish_submission(
        &self,
        id: i64,
        status: SubmissionStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE submissions SET status = $1, error = $2, updated_at = CURRENT_TIMESTAMP \
             WHERE id = $3",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Puts submissions left `scoring` by a stopped server back in the queue.
    pub async fn requeue_submissions(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE submissions SET status = 'queued', updated_at = CURRENT_TIMESTAMP \
             WHERE status = 'scoring'",
        )
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    /// Deletes a run with its captions, scores, work items and curves in one transaction;
    /// its submission, if any, becomes `deleted`. Returns whether the run existed.
    pub async fn delete_run(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(id) = sqlx::query_scalar::<_, i64>("SELECT id FROM runs WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE submissions SET status = 'deleted', updated_at = CURRENT_TIMESTAMP \
             WHERE run_id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        for statement in [
            "DELETE FROM captions WHERE run_id = $1",
            "DELETE FROM work_items WHERE run_id = $1",
            "DELETE FROM efficiency WHERE run_id = $1",
        ] {
            sqlx::query(statement).bind(id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM runs WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ImportCaption, NewEntry, NewScore};

    async fn with_entry(store: Store) -> (Store, i64, i64) {
        let dataset: i64 = sqlx::query_scalar(
            "INSERT INTO datasets (name, source, source_kind) VALUES ('d', 's', 'folder') RETURNING id",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        let video: i64 = sqlx::query_scalar(
            "INSERT INTO videos (dataset_id, key, path, status, sha256) \
             VALUES ($1, 'a.mp4', '/a.mp4', 'ok', 'x') RETURNING id",
        )
        .bind(dataset)
        .fetch_one(store.pool())
        .await
        .unwrap();
        let captions = [ImportCaption {
            video_id: video,
            caption: "a red circle".into(),
            result_key: "k".into(),
            value: None,
        }];
        let run = store
            .import_entry(&NewEntry {
                name: "e",
                dataset_id: dataset,
                config: "imported from f",
                config_hash: "h",
                captions: &captions,
                meta: &[("model".into(), "m".into())],
            })
            .await
            .unwrap();
        (store, dataset, run)
    }

    #[tokio::test]
    async fn a_submission_is_claimed_once_and_deleting_its_run_takes_everything() {
        let dir = tempfile::tempdir().unwrap();
        for (_, store) in crate::store::testing::stores(dir.path()).await {
            submission_round_trip(store).await;
        }
    }

    async fn submission_round_trip(store: Store) {
        let (store, dataset, run) = with_entry(store).await;
        let caption = store.dataset_captions(dataset).await.unwrap()[0].caption_id;
        store
            .put_scores(&[NewScore {
                caption_id: caption,
                metric: "bleu4",
                judge: "",
                prompt_version: "coco",
                sample_index: 0,
                status: "ok",
                value: Some(0.5),
                raw_reply: None,
            }])
            .await
            .unwrap();
        let entries = store.entries(dataset).await.unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            (entries[0].run.as_str(), entries[0].source.as_str()),
            ("e", "e")
        );
        let page = store
            .dataset_scores_page(dataset, (0, 0), 10)
            .await
            .unwrap();
        assert_eq!(page.len(), 1);
        let after = (page[0].caption_id, page[0].id);
        assert!(
            store
                .dataset_scores_page(dataset, after, 10)
                .await
                .unwrap()
                .is_empty()
        );

        let id = store
            .put_submission(&NewSubmission {
                dataset_id: dataset,
                name: "e",
                run_id: None,
                status: SubmissionStatus::Queued,
                error: None,
                size_bytes: 10,
                sha256: "s",
            })
            .await
            .unwrap();
        // Not claimable before its entry is stored.
        assert_eq!(store.claim_submission().await.unwrap(), None);
        store.attach_submission(id, run).await.unwrap();
        let before = store.board_version().await.unwrap();
        assert_eq!(
            store.claim_submission().await.unwrap(),
            Some((id, "e".to_owned()))
        );
        assert_eq!(store.claim_submission().await.unwrap(), None);
        assert_eq!(store.requeue_submissions().await.unwrap(), 1);
        assert!(store.claim_submission().await.unwrap().is_some());
        store
            .finish_submission(id, SubmissionStatus::Scored, None)
            .await
            .unwrap();

        assert!(store.delete_run("e").await.unwrap());
        assert!(!store.delete_run("e").await.unwrap());
        assert!(store.entries(dataset).await.unwrap().is_empty());
        assert!(
            store
                .dataset_scores_page(dataset, (0, 0), 10)
                .await
                .unwrap()
                .is_empty()
        );
        let submissions = store.submissions().await.unwrap();
        assert_eq!(submissions[0].status, SubmissionStatus::Deleted);
        assert_eq!(submissions[0].run_id, None);
        assert_ne!(store.board_version().await.unwrap(), before);
    }
}
