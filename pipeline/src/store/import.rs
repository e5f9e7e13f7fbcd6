//! Entries imported from elsewhere: a run whose captions came from a file (`wolf
//! import`), so that `wolf score` and `wolf report` treat it like any other run.
//!
//! An import is one transaction: the run, and all its captions or none of them. A
//! re-import of the same name replaces the run's captions (and with them their scores)
//! inside that transaction, so a reader sees the old entry or the new one, never a mix.
//! Dense captions keep their segments in a `results` row, as a long video's stage does.

use sqlx::Row;

use super::runs::upsert_run;
use super::{Store, StoreError};

/// An existing run as an import sees it: which dataset it belongs to and how it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOrigin {
    pub id: i64,
    pub dataset_id: i64,
    pub dataset: String,
    /// The run's config text (`imported from …` for an imported entry).
    pub config: String,
}

/// One caption of an imported entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportCaption {
    pub video_id: i64,
    pub caption: String,
    /// The SHA-256 of the caption's text, or of `value` where there is one.
    pub result_key: String,
    /// Dense captions' stored value, `{"caption", "segments": [{start_s, end_s,
    /// caption}]}` (what a long video's stage stores), kept under `result_key` so that
    /// the export and the dense scores read the segments as they read a run's.
    pub value: Option<String>,
}

/// A validated entry to store as the run `name` of `dataset_id`, whose captions all
/// have the source `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry<'a> {
    pub name: &'a str,
    pub dataset_id: i64,
    pub config: &'a str,
    pub config_hash: &'a str,
    pub captions: &'a [ImportCaption],
    /// The entry's metadata (key, value); replaces what a replaced entry had.
    pub meta: &'a [(String, String)],
}

impl Store {
    /// The run `name` with its dataset's name and its config, if it exists.
    pub async fn run_origin(&self, name: &str) -> Result<Option<RunOrigin>, StoreError> {
        let row = sqlx::query(
            "SELECT r.id, r.dataset_id, d.name, r.config FROM runs r \
             JOIN datasets d ON d.id = r.dataset_id WHERE r.name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| RunOrigin {
            id: r.get(0),
            dataset_id: r.get(1),
            dataset: r.get(2),
            config: r.get(3),
        }))
    }

    /// Stores an imported entry in one transaction: creates the run `done` (or takes
    /// over the one of that name and dataset, replacing its captions and work items)
    /// and inserts every caption with the source `entry.name`. Returns the run's id.
    pub async fn import_entry(&self, entry: &NewEntry<'_>) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let (run_id, existed) = upsert_run(
            &mut tx,
            entry.name,
            entry.dataset_id,
            entry.config,
            entry.config_hash,
            "done",
        )
        .await?;
        if existed {
            // Their scores go with them (ON DELETE CASCADE): they judged other text.
            sqlx::query("DELETE FROM captions WHERE run_id = $1")
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM work_items WHERE run_id = $1")
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM entry_meta WHERE run_id = $1")
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
        }
        for (key, value) in entry.meta {
            sqlx::query("INSERT INTO entry_meta (run_id, key, value) VALUES ($1, $2, $3)")
                .bind(run_id)
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        for caption in entry.captions {
            if let Some(value) = &caption.value {
                // Content-addressed: the same value under the same key is already there.
                sqlx::query(
                    "INSERT INTO results (key, stage, value) VALUES ($1, 'import', $2) \
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(&caption.result_key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO captions (run_id, video_id, source, caption, result_key) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(run_id)
            .bind(caption.video_id)
            .bind(entry.name)
            .bind(&caption.caption)
            .bind(&caption.result_key)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(run_id)
    }
}
