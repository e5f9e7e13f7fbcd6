//! Datasets, their videos and the problems of their latest intake.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Store, StoreError};
use crate::media::Probe;

/// A dataset as `wolf dataset add` registers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDataset {
    pub name: String,
    /// Where it came from (a folder or a manifest), as given.
    pub source: String,
    /// `folder`, `jsonl`, `csv`, `parquet`, `webdataset` or `wolf_json`.
    pub source_kind: String,
    /// The folder its videos' paths are relative to in exports, if known.
    pub root: Option<String>,
}

/// Whether a video was ingested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoStatus {
    Ok,
    Failed,
}

impl VideoStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
        }
    }
}

/// What intake measured of a readable video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoMeta {
    pub sha256: String,
    pub size_bytes: u64,
    pub mtime_ns: i64,
    pub probe: Probe,
}

/// One video to store: measured, or failed with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoRecord {
    pub key: String,
    pub path: String,
    pub reference: Option<String>,
    pub tags: Vec<String>,
    /// The manifest's other columns for this video (a JSON object's text), if it had
    /// any.
    pub metadata: Option<String>,
    pub outcome: Result<VideoMeta, (String, String)>,
}

/// A problem of the source itself, not of one video file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeProblem {
    /// Where: a manifest line (`manifest.jsonl:3`) or an annotation key.
    pub location: String,
    pub kind: String,
    pub message: String,
}

/// A stored video.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoRow {
    pub id: i64,
    pub key: String,
    pub path: String,
    pub status: VideoStatus,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub sha256: Option<String>,
    pub size_bytes: Option<i64>,
    pub mtime_ns: Option<i64>,
    pub duration_s: Option<f64>,
    pub fps: Option<f64>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub rotation: Option<i64>,
    pub codec: Option<String>,
    pub frame_count: Option<i64>,
    pub keyframe_count: Option<i64>,
    pub has_audio: Option<bool>,
    pub reference: Option<String>,
    pub tags: Vec<String>,
    /// The manifest's other columns (a JSON object), if it had any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// Counts of one dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetSummary {
    pub id: i64,
    pub name: String,
    pub source: String,
    pub source_kind: String,
    /// The folder its videos' paths are relative to in exports ([`NewDataset::root`]).
    pub root: Option<String>,
    pub videos: i64,
    pub failed: i64,
    pub problems: i64,
    pub with_reference: i64,
    pub total_duration_s: f64,
    pub updated_at: String,
}

impl Store {
    /// Creates or updates a dataset and clears the problems of its previous intake;
    /// returns its id.
    pub async fn begin_intake(&self, dataset: &NewDataset) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO datasets (name, source, source_kind, root) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET source = excluded.source,
                 source_kind = excluded.source_kind, root = excluded.root,
                 updated_at = CURRENT_TIMESTAMP
             RETURNING id",
        )
        .bind(&dataset.name)
        .bind(&dataset.source)
        .bind(&dataset.source_kind)
        .bind(&dataset.root)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM intake_problems WHERE dataset_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Upserts videos of a dataset in one transaction: all of them or none.
    pub async fn put_videos(
        &self,
        dataset_id: i64,
        videos: &[VideoRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for video in videos {
            let tags =
                serde_json::to_string(&video.tags).expect("strings serialise; this is a bug");
            let (status, meta, error) = match &video.outcome {
                Ok(meta) => (VideoStatus::Ok, Some(meta), None),
                Err(error) => (VideoStatus::Failed, None, Some(error)),
            };
            let probe = meta.map(|m| &m.probe);
            sqlx::query(
                "INSERT INTO videos (dataset_id, key, path, status, error_kind, error_message,
                     sha256, size_bytes, mtime_ns, duration_s, fps, width, height, rotation, codec,
                     frame_count, keyframe_count, has_audio, reference, tags, metadata)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $17, $18, $19, $20, $21)
                 ON CONFLICT (dataset_id, key) DO UPDATE SET path = excluded.path,
                     status = excluded.status, error_kind = excluded.error_kind,
                     error_message = excluded.error_message, sha256 = excluded.sha256,
                     size_bytes = excluded.size_bytes, mtime_ns = excluded.mtime_ns,
                     duration_s = excluded.duration_s, fps = excluded.fps, width = excluded.width,
                     height = excluded.height, rotation = excluded.rotation, codec = excluded.codec,
                     frame_count = excluded.frame_count, keyframe_count = excluded.keyframe_count,
                     has_audio = excluded.has_audio, reference = excluded.reference,
                     tags = excluded.tags, metadata = excluded.metadata,
                     updated_at = CURRENT_TIMESTAMP",
            )
            .bind(dataset_id)
            .bind(&video.key)
            .bind(&video.path)
            .bind(status.as_str())
            .bind(error.map(|e| e.0.as_str()))
            .bind(error.map(|e| e.1.as_str()))
            .bind(meta.map(|m| m.sha256.as_str()))
            .bind(meta.map(|m| m.size_bytes as i64))
            .bind(meta.map(|m| m.mtime_ns))
            .bind(probe.map(|p| p.duration_s))
            .bind(probe.map(|p| p.fps))
            .bind(probe.map(|p| p.width as i64))
            .bind(probe.map(|p| p.height as i64))
            .bind(probe.map(|p| p.rotation as i64))
            .bind(probe.map(|p| p.codec.as_str()))
            .bind(probe.map(|p| p.frame_count as i64))
            .bind(probe.map(|p| p.keyframe_count as i64))
            .bind(probe.map(|p| p.has_audio))
            .bind(video.reference.as_deref())
            .bind(tags)
            .bind(video.metadata.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records problems of the source in one transaction.
    pub async fn put_problems(
        &self,
        dataset_id: i64,
        problems: &[IntakeProblem],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for problem in problems {
            sqlx::query("INSERT INTO intake_problems (dataset_id, location, kind, message) VALUES ($1, $2, $3, $4)")
                .bind(dataset_id)
                .bind(&problem.location)
                .bind(&problem.kind)
                .bind(&problem.message)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every dataset with its counts, by name.
    pub async fn datasets(&self) -> Result<Vec<DatasetSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.id, d.name, d.source, d.source_kind, d.root, d.updated_at,
                 (SELECT count(*) FROM videos v WHERE v.dataset_id = d.id) AS videos,
                 (SELECT count(*) FROM videos v WHERE v.dataset_id = d.id AND v.status = 'failed') AS failed,
                 (SELECT count(*) FROM videos v WHERE v.dataset_id = d.id AND v.reference IS NOT NULL) AS with_reference,
                 (SELECT coalesce(sum(v.duration_s), 0.0) FROM videos v WHERE v.dataset_id = d.id AND v.status = 'ok') AS total_duration_s,
                 (SELECT count(*) FROM intake_problems p WHERE p.dataset_id = d.id) AS problems
             FROM datasets d ORDER BY d.name",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DatasetSummary {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    source: row.try_get("source")?,
                    source_kind: row.try_get("source_kind")?,
                    root: row.try_get("root")?,
                    videos: row.try_get("videos")?,
                    failed: row.try_get("failed")?,
                    problems: row.try_get("problems")?,
                    with_reference: row.try_get("with_reference")?,
                    total_duration_s: row.try_get("total_duration_s")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// One dataset's counts.
    pub async fn dataset(&self, name: &str) -> Result<DatasetSummary, StoreError> {
        let datasets = self.datasets().await?;
        let known = datasets.iter().map(|d| d.name.clone()).collect();
        datasets
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| StoreError::NoDataset {
                name: name.to_owned(),
                known,
            })
    }

    /// The videos of a dataset, by key.
    /// How many readable videos a dataset has.
    pub async fn ok_video_count(&self, dataset_id: i64) -> Result<usize, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM videos WHERE dataset_id = $1 AND status = 'ok'",
        )
        .bind(dataset_id)
        .fetch_one(self.pool())
        .await?;
        Ok(n as usize)
    }

    /// Readable videos of a dataset after key `after` (all when `None`), by key, at most
    /// `limit`: a dataset read a page at a time.
    pub async fn ok_videos_page(
        &self,
        dataset_id: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<VideoRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VIDEO_COLUMNS} FROM videos \
                 WHERE dataset_id = $1 AND status = 'ok' AND ($2 IS NULL OR key > $2) \
                 ORDER BY key LIMIT $3"
        )))
        .bind(dataset_id)
        .bind(after)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(video_row)
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)
    }

    pub async fn videos(&self, dataset_id: i64) -> Result<Vec<VideoRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VIDEO_COLUMNS} FROM videos WHERE dataset_id = $1 ORDER BY key"
        )))
        .bind(dataset_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(video_row)
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)
    }

    /// One video by id (a worker's claimed item names its video by id).
    pub async fn video_by_id(&self, id: i64) -> Result<VideoRow, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VIDEO_COLUMNS} FROM videos WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        Ok(video_row(&row)?)
    }

    /// Stored videos of a dataset by key, for skipping unchanged files on re-intake.
    pub async fn videos_by_key(
        &self,
        dataset_id: i64,
    ) -> Result<HashMap<String, VideoRow>, StoreError> {
        Ok(self
            .videos(dataset_id)
            .await?
            .into_iter()
            .map(|v| (v.key.clone(), v))
            .collect())
    }

    /// The problems of a dataset's latest intake.
    pub async fn intake_problems(&self, dataset_id: i64) -> Result<Vec<IntakeProblem>, StoreError> {
        let rows = sqlx::query(
            "SELECT location, kind, message FROM intake_problems WHERE dataset_id = $1 ORDER BY id",
        )
        .bind(dataset_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(IntakeProblem {
                    location: row.try_get("location")?,
                    kind: row.try_get("kind")?,
                    message: row.try_get("message")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

/// The columns [`video_row`] reads. `has_audio` comes as an integer: the `Any` driver
/// cannot read SQLite's BOOLEAN columns.
const VIDEO_COLUMNS: &str = "id, key, path, status, error_kind, error_message, sha256, \
     size_bytes, mtime_ns, duration_s, fps, width, height, rotation, codec, frame_count, \
     keyframe_count, CASE WHEN has_audio IS NULL THEN NULL WHEN has_audio THEN 1 ELSE 0 END \
     AS has_audio, reference, tags, metadata";

fn video_row(row: &sqlx::any::AnyRow) -> Result<VideoRow, sqlx::Error> {
    let has_audio: Option<i64> = row.try_get("has_audio")?;
    let status: String = row.try_get("status")?;
    let tags: String = row.try_get("tags")?;
    let metadata: Option<String> = row.try_get("metadata")?;
    let decode = |e| sqlx::Error::Decode(Box::new(e));
    Ok(VideoRow {
        id: row.try_get("id")?,
        key: row.try_get("key")?,
        path: row.try_get("path")?,
        status: if status == "ok" {
            VideoStatus::Ok
        } else {
            VideoStatus::Failed
        },
        error_kind: row.try_get("error_kind")?,
        error_message: row.try_get("error_message")?,
        sha256: row.try_get("sha256")?,
        size_bytes: row.try_get("size_bytes")?,
        mtime_ns: row.try_get("mtime_ns")?,
        duration_s: row.try_get("duration_s")?,
        fps: row.try_get("fps")?,
        width: row.try_get("width")?,
        height: row.try_get("height")?,
        rotation: row.try_get("rotation")?,
        codec: row.try_get("codec")?,
        frame_count: row.try_get("frame_count")?,
        keyframe_count: row.try_get("keyframe_count")?,
        has_audio: has_audio.map(|a| a != 0),
        reference: row.try_get("reference")?,
        tags: serde_json::from_str(&tags).map_err(decode)?,
        metadata: metadata
            .map(|m| serde_json::from_str(&m))
            .transpose()
            .map_err(decode)?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn probe() -> Probe {
        Probe {
            duration_s: 4.0,
            fps: 12.0,
            width: 320,
            height: 240,
            rotation: 0,
            codec: "h264".into(),
            frame_count: 48,
            keyframe_count: 2,
            has_audio: false,
        }
    }

    pub(crate) fn record(key: &str, ok: bool) -> VideoRecord {
        VideoRecord {
            key: key.into(),
            path: format!("/data/{key}"),
            reference: Some("A red circle.".into()),
            tags: vec!["still".into()],
            metadata: None,
            outcome: if ok {
                Ok(VideoMeta {
                    sha256: "ab".repeat(32),
                    size_bytes: 10,
                    mtime_ns: 1,
                    probe: probe(),
                })
            } else {
                Err(("truncated".into(), "`x` is truncated".into()))
            },
        }
    }

    #[tokio::test]
    async fn intake_upserts_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        for (target, store) in crate::store::testing::stores(dir.path()).await {
            intake_round_trip(&target, &store).await;
        }
    }

    async fn intake_round_trip(target: &str, store: &Store) {
        let dataset = NewDataset {
            name: "d".into(),
            source: "/data".into(),
            source_kind: "folder".into(),
            root: None,
        };
        for _ in 0..2 {
            let id = store.begin_intake(&dataset).await.unwrap();
            store
                .put_videos(id, &[record("a.mp4", true), record("b.mp4", false)])
                .await
                .unwrap();
            let problem = IntakeProblem {
                location: "m.jsonl:3".into(),
                kind: "duplicate_key".into(),
                message: "m".into(),
            };
            store.put_problems(id, &[problem]).await.unwrap();
        }
        let summary = store.dataset("d").await.unwrap();
        assert_eq!(
            (summary.videos, summary.failed, summary.problems),
            (2, 1, 1)
        );
        let videos = store.videos(summary.id).await.unwrap();
        assert_eq!(videos[0].tags, vec!["still".to_owned()]);
        assert_eq!(videos[1].error_kind.as_deref(), Some("truncated"));
        assert!(matches!(
            store.dataset("nope").await,
            Err(StoreError::NoDataset { .. })
        ));
        // Reopening applies nothing new.
        let again = Store::connect(target).await.unwrap();
        assert_eq!(again.migrate().await.unwrap(), 0, "{target}");
    }

    #[tokio::test]
    async fn an_empty_caption_is_refused_by_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        for (_, store) in crate::store::testing::stores(dir.path()).await {
            empty_caption_refused(&store).await;
        }
    }

    async fn empty_caption_refused(store: &Store) {
        let id = store
            .begin_intake(&NewDataset {
                name: "d".into(),
                source: "s".into(),
                source_kind: "folder".into(),
                root: None,
            })
            .await
            .unwrap();
        store
            .put_videos(id, &[record("a.mp4", true)])
            .await
            .unwrap();
        sqlx::query("INSERT INTO runs (name, dataset_id, config, config_hash, status) VALUES ('r', $1, '', '', 'running')")
            .bind(id)
            .execute(store.pool())
            .await
            .unwrap();
        let insert = |caption: &'static str| {
            sqlx::query(
                "INSERT INTO captions (run_id, video_id, source, caption, result_key)
                 SELECT r.id, v.id, 'wolf', $1, 'k' FROM runs r, videos v",
            )
            .bind(caption)
            .execute(store.pool())
        };
        assert!(insert("  ").await.is_err());
        assert!(insert("A red circle.").await.is_ok());
    }
}
