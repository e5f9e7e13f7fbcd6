//! Intake: each entry of a source is hashed (SHA-256, streamed) and probed, then stored
//! with its measurements or with the reason it failed.
//!
//! Measuring runs on tokio's blocking threads, at most `threads` at once; results flow
//! through a bounded channel to one writer that stores them in batches, each batch in
//! one transaction, so memory stays flat however large the source is and a crash loses
//! at most the batch in flight (a rerun redoes it). A file already stored with the same
//! path, size and modification time is not measured again.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use wolf_pipeline::media::{self, MediaError};
use wolf_pipeline::progress::Progress;
use wolf_pipeline::store::{
    NewDataset, Store, StoreError, VideoMeta, VideoRecord, VideoRow, VideoStatus,
};

use crate::sources::{Entry, Source};

/// Videos stored per transaction.
const BATCH: usize = 256;

/// How intake runs.
#[derive(Debug, Clone, Copy)]
pub struct IntakeSettings {
    /// Files measured at once.
    pub threads: usize,
}

/// What one intake did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntakeReport {
    pub dataset_id: i64,
    /// Videos stored as ok (measured now or unchanged since the last intake).
    pub ok: usize,
    /// Videos stored as failed.
    pub failed: usize,
    /// Of the ok videos, those not measured again because they had not changed.
    pub unchanged: usize,
    /// Problems of the source itself.
    pub problems: usize,
}

/// Stores a read source as dataset `name`.
pub async fn ingest(
    store: &Store,
    name: &str,
    source_label: &str,
    source: Source,
    settings: IntakeSettings,
    progress: Arc<Progress>,
) -> Result<IntakeReport, StoreError> {
    let dataset = NewDataset {
        name: name.to_owned(),
        source: source_label.to_owned(),
        source_kind: source.kind.as_str().to_owned(),
        root: Some(source.root.display().to_string()),
    };
    let dataset_id = store.begin_intake(&dataset).await?;
    store.put_problems(dataset_id, &source.problems).await?;
    let mut stored = store.videos_by_key(dataset_id).await?;
    progress.set_total(source.entries.len() as u64);

    let (tx, mut rx) = mpsc::channel::<(VideoRecord, bool)>(BATCH);
    let permits = Arc::new(Semaphore::new(settings.threads.max(1)));
    let mut previous: Vec<Option<VideoRow>> = source
        .entries
        .iter()
        .map(|e| stored.remove(&e.key))
        .collect();
    let producer = tokio::spawn(async move {
        for (entry, previous) in source.entries.into_iter().zip(previous.drain(..)) {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let tx = tx.clone();
            tokio::task::spawn_blocking(move || {
                let measured = measure(entry, previous.as_ref());
                drop(permit);
                // The writer only goes away when storing failed; that error is reported.
                let _ = tx.blocking_send(measured);
            });
        }
    });

    let mut report = IntakeReport {
        dataset_id,
        ..Default::default()
    };
    let mut batch = Vec::with_capacity(BATCH);
    while let Some((record, unchanged)) = rx.recv().await {
        let ok = record.outcome.is_ok();
        if ok {
            report.ok += 1;
        } else {
            report.failed += 1;
        }
        if unchanged {
            report.unchanged += 1;
        }
        progress.finish_one(ok);
        batch.push(record);
        if batch.len() == BATCH {
            store.put_videos(dataset_id, &batch).await?;
            batch.clear();
        }
    }
    store.put_videos(dataset_id, &batch).await?;
    producer
        .await
        .expect("the intake producer does not panic; this is a bug");
    report.problems = store.intake_problems(dataset_id).await?.len();
    Ok(report)
}

/// Hashes and probes one entry, or reuses what was stored when the file is unchanged.
/// Returns the record and whether it was reused.
fn measure(entry: Entry, previous: Option<&VideoRow>) -> (VideoRecord, bool) {
    let path_text = entry.path.display().to_string();
    let size_mtime = media::stat(&entry.path);
    let reused = previous.and_then(|row| reuse(row, &path_text, size_mtime));
    let unchanged = reused.is_some();
    let outcome = match reused {
        Some(meta) => Ok(meta),
        None => measure_file(&entry.path, size_mtime.map_or(0, |(_, m)| m))
            .map_err(|e| (e.kind().to_owned(), e.to_string())),
    };
    let record = VideoRecord {
        key: entry.key,
        path: path_text,
        reference: entry.reference,
        tags: entry.tags,
        metadata: entry.metadata,
        outcome,
    };
    (record, unchanged)
}

/// The stored measurements of an ok video whose file has the same path, size and
/// modification time as before.
fn reuse(row: &VideoRow, path: &str, size_mtime: Option<(u64, i64)>) -> Option<VideoMeta> {
    let (size, mtime) = size_mtime?;
    if row.status != VideoStatus::Ok
        || row.path != path
        || row.size_bytes != Some(size as i64)
        || row.mtime_ns != Some(mtime)
    {
        return None;
    }
    Some(VideoMeta {
        sha256: row.sha256.clone()?,
        size_bytes: size,
        mtime_ns: mtime,
        probe: media::Probe {
            duration_s: row.duration_s?,
            fps: row.fps?,
            width: row.width? as u32,
            height: row.height? as u32,
            rotation: row.rotation? as u32,
            codec: row.codec.clone()?,
            frame_count: row.frame_count? as u64,
            keyframe_count: row.keyframe_count? as u64,
            has_audio: row.has_audio?,
        },
    })
}

fn measure_file(path: &Path, mtime_ns: i64) -> Result<VideoMeta, MediaError> {
    let probe = media::probe(path)?;
    let (sha256, size_bytes) = media::open_bytes(path)
        .and_then(wolf_pipeline::hash::sha256_read)
        .map_err(|e| MediaError::Unreadable {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    Ok(VideoMeta {
        sha256,
        size_bytes,
        mtime_ns,
        probe,
    })
}
