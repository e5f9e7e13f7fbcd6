//! Runs, the content-addressed results cache, the captions of a run and its work items.
//!
//! Every write is one statement or one transaction, so a process killed at any moment
//! leaves either the whole row or nothing: a result, a caption and a work item's status
//! are never half-written.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

/// A stored run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub name: String,
    pub dataset_id: i64,
    pub config_hash: String,
    pub status: String,
}

/// A stage's output as the cache holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResult {
    /// JSON text.
    pub value: String,
    pub model: Option<String>,
    pub prompt_version: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub latency_ms: Option<i64>,
}

impl StoredResult {
    /// An output with no model request behind it (no model, tokens or latency).
    pub fn bare(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            model: None,
            prompt_version: None,
            prompt_tokens: None,
            completion_tokens: None,
            latency_ms: None,
        }
    }
}

/// One caption of a run, as stored and exported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaptionRow {
    pub video_id: i64,
    pub video: String,
    pub path: String,
    /// The root of the video's dataset (see [`crate::store::NewDataset::root`]).
    pub root: Option<String>,
    pub source: String,
    pub caption: String,
    pub model: Option<String>,
    pub prompt_version: Option<String>,
    pub result_key: String,
    pub reference: Option<String>,
    /// The fusion guard's path to this caption (`fused`, `fused_retry`,
    /// `consensus:SOURCE`), for a guarded stage's output.
    pub guard: Option<String>,
    /// The video's duration in seconds, where known.
    pub duration_s: Option<f64>,
    /// A long video's segments with their captions (the dense captions), in order.
    pub segments: Option<Vec<TimedCaption>>,
}

/// One segment's caption and its span, in seconds from the video's start.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TimedCaption {
    pub start_s: f64,
    pub end_s: f64,
    pub caption: String,
}

/// One stage's outcome for (run, video): a worker buffers a video's writes and commits
/// them with its queue item ([`Store::finish_claim`]).
#[derive(Debug, Clone, PartialEq)]
pub enum StageWrite {
    /// The stage is done and its text is the caption of `source`.
    Caption {
        stage: String,
        source: String,
        caption: String,
        result_key: String,
        result: StoredResult,
    },
    /// The stage is done without a caption, or failed with (kind, message); a caption
    /// of `source` that an earlier config gave is removed.
    Item {
        stage: String,
        result_key: String,
        source: Option<String>,
        error: Option<(String, String)>,
    },
}

/// A work item's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkItemRow {
    pub video_id: i64,
    pub video: String,
    pub stage: String,
    pub status: String,
    /// The key of the output this item was for.
    pub result_key: String,
    pub attempts: i64,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
}

impl Store {
    /// The run `name`, created for `dataset_id` when new. A run that exists keeps its
    /// dataset (a different one is an error) and takes the given config.
    pub async fn open_run(
        &self,
        name: &str,
        dataset_id: i64,
        config: &str,
        config_hash: &str,
    ) -> Result<RunRow, StoreError> {
        let mut tx = self.begin_write().await?;
        let (id, _) = upsert_run(&mut tx, name, dataset_id, config, config_hash, "running").await?;
        tx.commit().await?;
        Ok(RunRow {
            id,
            name: name.to_owned(),
            dataset_id,
            config_hash: config_hash.to_owned(),
            status: "running".into(),
        })
    }

    pub async fn run(&self, name: &str) -> Result<RunRow, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, dataset_id, config_hash, status FROM runs WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            let known = sqlx::query_scalar("SELECT name FROM runs ORDER BY name")
                .fetch_all(self.pool())
                .await?;
            return Err(StoreError::NoRun {
                name: name.to_owned(),
                known,
            });
        };
        Ok(RunRow {
            id: row.get("id"),
            name: row.get("name"),
            dataset_id: row.get("dataset_id"),
            config_hash: row.get("config_hash"),
            status: row.get("status"),
        })
    }

    pub async fn finish_run(&self, run_id: i64, status: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET status = $1, updated_at = CURRENT_TIMESTAMP WHERE id = $2")
            .bind(status)
            .bind(run_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The cached output of `key`, if any run computed it.
    pub async fn result(&self, key: &str) -> Result<Option<StoredResult>, StoreError> {
        let row = sqlx::query(
            "SELECT value, model, prompt_version, prompt_tokens, completion_tokens, latency_ms \
             FROM results WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| StoredResult {
            value: r.get("value"),
            model: r.get("model"),
            prompt_version: r.get("prompt_version"),
            prompt_tokens: r.get("prompt_tokens"),
            completion_tokens: r.get("completion_tokens"),
            latency_ms: r.get("latency_ms"),
        }))
    }

    /// Caches a stage's output. The first write of a key wins (a key names one content).
    pub async fn put_result(
        &self,
        key: &str,
        stage: &str,
        result: &StoredResult,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO results (key, stage, value, model, prompt_version, prompt_tokens, \
             completion_tokens, latency_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(stage)
        .bind(&result.value)
        .bind(&result.model)
        .bind(&result.prompt_version)
        .bind(result.prompt_tokens)
        .bind(result.completion_tokens)
        .bind(result.latency_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Work items of a run, by video key and stage.
    pub async fn work_items(&self, run_id: i64) -> Result<Vec<WorkItemRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT w.video_id, v.key, w.stage, w.status, w.attempts, w.error_kind, \
             w.error_message, w.result_key FROM work_items w JOIN videos v ON v.id = w.video_id \
             WHERE w.run_id = $1 ORDER BY v.key, w.stage",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| WorkItemRow {
                video_id: r.get(0),
                video: r.get(1),
                stage: r.get(2),
                status: r.get(3),
                attempts: r.get(4),
                error_kind: r.get(5),
                error_message: r.get(6),
                result_key: r.get(7),
            })
            .collect())
    }

    /// The failed stages a run holds, whichever pass failed them.
    pub async fn failed_stage_count(&self, run_id: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM work_items WHERE run_id = $1 AND status = 'failed'",
        )
        .bind(run_id)
        .fetch_one(self.pool())
        .await?)
    }

    /// The run's failed stages counted by (stage, kind, message).
    pub async fn failure_groups(
        &self,
        run_id: i64,
    ) -> Result<Vec<(String, String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT stage, COALESCE(error_kind, ''), COALESCE(error_message, ''), count(*) \
             FROM work_items WHERE run_id = $1 AND status = 'failed' \
             GROUP BY stage, error_kind, error_message",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }

    /// (video id, stage, status, result key) of the work items of some videos of a run.
    pub async fn work_item_states(
        &self,
        run_id: i64,
        video_ids: &[i64],
    ) -> Result<Vec<(i64, String, String, String)>, StoreError> {
        let ids = serde_json::to_string(video_ids).expect("integers serialise");
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT video_id, stage, status, result_key FROM work_items WHERE run_id = $1 \
             AND video_id IN ({})",
            self.dialect().json_values(2, true)
        )))
        .bind(run_id)
        .bind(ids)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }

    /// Captions of a run, by video key then source; one source only when given.
    pub async fn captions(
        &self,
        run_id: i64,
        source: Option<&str>,
    ) -> Result<Vec<CaptionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.video_id, v.key, v.path, c.source, c.caption, c.model, c.prompt_version, \
             c.result_key, v.reference, r.value, v.duration_s, d.root FROM captions c \
             JOIN videos v ON v.id = c.video_id JOIN datasets d ON d.id = v.dataset_id \
             LEFT JOIN results r ON r.key = c.result_key WHERE c.run_id = $1 AND ($2 IS NULL OR c.source = $2) ORDER BY v.key, c.source",
        )
        .bind(run_id)
        .bind(source)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| CaptionRow {
                video_id: r.get(0),
                video: r.get(1),
                path: r.get(2),
                source: r.get(3),
                caption: r.get(4),
                model: r.get(5),
                prompt_version: r.get(6),
                result_key: r.get(7),
                reference: r.get(8),
                guard: guard_path(r.get::<Option<String>, _>(9).as_deref()),
                segments: segments_of(r.get::<Option<String>, _>(9).as_deref()),
                duration_s: r.get(10),
                root: r.get(11),
            })
            .collect())
    }

    /// Removes the captions and work items of sources and stages a run no longer has
    /// (after its config changed).
    pub async fn prune_run(
        &self,
        run_id: i64,
        sources: &[String],
        stages: &[String],
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut removed = 0;
        let kept_sources = serde_json::to_string(sources).expect("strings serialise");
        let kept_stages = serde_json::to_string(stages).expect("strings serialise");
        let kept = self.dialect().json_values(2, false);
        removed += sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM captions WHERE run_id = $1 AND source NOT IN ({kept})"
        )))
        .bind(run_id)
        .bind(&kept_sources)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        removed += sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM work_items WHERE run_id = $1 AND stage NOT IN ({kept})"
        )))
        .bind(run_id)
        .bind(&kept_stages)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(removed)
    }
}

/// Writes one stage's outcome inside `tx`.
/// Creates run `name` for `dataset_id` with `status`, or takes over the run of that
/// name (a different dataset is an error) with the given config and status. Returns
/// its id and whether it existed.
pub(super) async fn upsert_run(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    dataset_id: i64,
    config: &str,
    config_hash: &str,
    status: &str,
) -> Result<(i64, bool), StoreError> {
    let existing = sqlx::query("SELECT id, dataset_id FROM runs WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    match existing {
        Some(row) => {
            let id: i64 = row.get("id");
            let other: i64 = row.get("dataset_id");
            if other != dataset_id {
                return Err(StoreError::RunDataset(name.to_owned()));
            }
            sqlx::query(
                "UPDATE runs SET config = $1, config_hash = $2, status = $3, \
                 updated_at = CURRENT_TIMESTAMP WHERE id = $4",
            )
            .bind(config)
            .bind(config_hash)
            .bind(status)
            .bind(id)
            .execute(&mut **tx)
            .await?;
            Ok((id, true))
        }
        None => {
            let id = sqlx::query_scalar(
                "INSERT INTO runs (name, dataset_id, config, config_hash, status) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(name)
            .bind(dataset_id)
            .bind(config)
            .bind(config_hash)
            .bind(status)
            .fetch_one(&mut **tx)
            .await?;
            Ok((id, false))
        }
    }
}

pub(super) async fn write_stage(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: i64,
    video_id: i64,
    write: &StageWrite,
) -> Result<(), StoreError> {
    match write {
        StageWrite::Caption {
            stage,
            source,
            caption,
            result_key,
            result,
        } => {
            sqlx::query(
                "INSERT INTO captions (run_id, video_id, source, caption, model, \
                 prompt_version, result_key, prompt_tokens, completion_tokens, latency_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (run_id, video_id, source) DO UPDATE SET caption = excluded.caption, \
                 model = excluded.model, prompt_version = excluded.prompt_version, \
                 result_key = excluded.result_key, prompt_tokens = excluded.prompt_tokens, \
                 completion_tokens = excluded.completion_tokens, latency_ms = excluded.latency_ms, \
                 created_at = CURRENT_TIMESTAMP",
            )
            .bind(run_id)
            .bind(video_id)
            .bind(source)
            .bind(caption)
            .bind(&result.model)
            .bind(&result.prompt_version)
            .bind(result_key)
            .bind(result.prompt_tokens)
            .bind(result.completion_tokens)
            .bind(result.latency_ms)
            .execute(&mut **tx)
            .await?;
            set_item(tx, run_id, video_id, stage, result_key, None).await
        }
        StageWrite::Item {
            stage,
            result_key,
            source,
            error,
        } => {
            if let Some(source) = source {
                sqlx::query(
                    "DELETE FROM captions WHERE run_id = $1 AND video_id = $2 AND source = $3",
                )
                .bind(run_id)
                .bind(video_id)
                .bind(source)
                .execute(&mut **tx)
                .await?;
            }
            let error = error.as_ref().map(|(k, m)| (k.as_str(), m.as_str()));
            set_item(tx, run_id, video_id, stage, result_key, error).await
        }
    }
}

async fn set_item(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: i64,
    video_id: i64,
    stage: &str,
    result_key: &str,
    error: Option<(&str, &str)>,
) -> Result<(), StoreError> {
    let status = if error.is_some() { "failed" } else { "done" };
    sqlx::query(
        "INSERT INTO work_items (run_id, video_id, stage, result_key, status, attempts, \
         error_kind, error_message) VALUES ($1, $2, $3, $4, $5, 1, $6, $7) \
         ON CONFLICT (run_id, video_id, stage) DO UPDATE SET result_key = excluded.result_key, \
         status = excluded.status, attempts = work_items.attempts + 1, \
         error_kind = excluded.error_kind, error_message = excluded.error_message, \
         updated_at = CURRENT_TIMESTAMP",
    )
    .bind(run_id)
    .bind(video_id)
    .bind(stage)
    .bind(result_key)
    .bind(status)
    .bind(error.map(|e| e.0))
    .bind(error.map(|e| e.1))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The guard's path in a stored result value (`{"caption", "guard": {"path"}}`); only a
/// guarded stage's value is parsed.
/// The segments a long video's caption was told from (`segments` in its result).
pub(super) fn segments_of(value: Option<&str>) -> Option<Vec<TimedCaption>> {
    let value = value.filter(|v| v.contains("\"segments\""))?;
    let parsed: serde_json::Value = serde_json::from_str(value).ok()?;
    serde_json::from_value(parsed["segments"].clone()).ok()
}

fn guard_path(value: Option<&str>) -> Option<String> {
    let value = value.filter(|v| v.contains("\"guard\""))?;
    let parsed: serde_json::Value = serde_json::from_str(value).ok()?;
    parsed["guard"]["path"].as_str().map(str::to_owned)
}
