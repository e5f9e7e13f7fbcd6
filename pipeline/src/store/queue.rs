//! The work queue of `wolf worker` (DESIGN.md "Several machines"): one item per (run,
//! video), claimed in batches under leases.
//!
//! - **Claim**: pending items whose backoff has passed, oldest first, locked with
//!   `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite has one writer at a time); each
//!   claim counts an attempt and sets the lease's owner and expiry.
//! - **Heartbeat**: one statement extends every lease an owner holds.
//! - **Reaper**: an expired lease returns its item to the queue after a backoff that
//!   doubles with each attempt, or quarantines it once the attempts reach the limit.
//! - **Finish**: the video's stage writes and the item's new state are one transaction
//!   that commits only while the worker still holds the lease, so two workers never
//!   both commit an item.
//!
//! - **Wake-up**: on PostgreSQL, enqueueing notifies channel [`QUEUE_CHANNEL`], and idle
//!   workers listening on it claim at once; polling stays the fallback.
//!
//! Times are milliseconds of the database's clock ([`super::Dialect::now_ms`]).

use std::sync::Arc;

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use super::runs::{StageWrite, write_stage};
use super::{Dialect, Store, StoreError};

/// The PostgreSQL channel enqueueing notifies.
pub const QUEUE_CHANNEL: &str = "wolf_queue";

/// The queue's knobs, shared by the claim, the reaper and the finish.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueSettings {
    /// How long a claim holds without a heartbeat.
    pub lease_ms: i64,
    /// Attempts after which an item is quarantined.
    pub max_attempts: i64,
    /// The first retry's delay; each further attempt doubles it.
    pub backoff_ms: i64,
    pub max_backoff_ms: i64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            lease_ms: 60_000,
            max_attempts: 3,
            backoff_ms: 2_000,
            max_backoff_ms: 300_000,
        }
    }
}

impl QueueSettings {
    /// The delay before an item that failed its `attempts`-th attempt may run again.
    pub fn backoff(&self, attempts: i64) -> i64 {
        let doublings = attempts.clamp(1, 30) - 1;
        self.backoff_ms
            .saturating_mul(1_i64 << doublings)
            .min(self.max_backoff_ms)
    }
}

/// A claimed item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    pub id: i64,
    pub run_id: i64,
    pub video_id: i64,
    /// Attempts including this one.
    pub attempts: i64,
}

/// How a claimed item ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobCommit {
    /// Every stage is done.
    Done,
    /// A stage failed: retried after a backoff, or quarantined at the attempt limit.
    Failed { kind: String, message: String },
}

/// Items by status.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueCount {
    pub pending: i64,
    pub running: i64,
    pub done: i64,
    pub quarantined: i64,
}

/// A worker holding leases.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaseOwner {
    pub owner: String,
    pub items: i64,
    /// Milliseconds until its earliest lease expires (negative: already expired).
    pub expires_in_ms: i64,
}

/// A quarantined item with its last error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quarantined {
    pub video: String,
    pub attempts: i64,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
}

/// A run's progress across workers (`wolf run status`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStatus {
    pub run: String,
    pub count: QueueCount,
    pub owners: Vec<LeaseOwner>,
    pub quarantined: Vec<Quarantined>,
    /// Items retried at least once and now pending, with their last error.
    pub retrying: i64,
    /// Failed stages recorded in the run's work items.
    pub failed_stages: i64,
    /// Commits of finished videos: `done` when each was committed once.
    pub commits: i64,
}

impl QueueStatus {
    /// Nothing pending or running: the run's queue is drained.
    pub fn drained(&self) -> bool {
        self.count.pending == 0 && self.count.running == 0
    }
}

/// The table `wolf run status` prints: the counts, then a line per owner in flight and
/// per quarantined video.
impl std::fmt::Display for QueueStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.count;
        let total = c.pending + c.running + c.done + c.quarantined;
        writeln!(
            f,
            "run `{}`: {total} videos queued: {} done, {} running, {} pending ({} retrying), {} quarantined; {} failed stages",
            self.run,
            c.done,
            c.running,
            c.pending,
            self.retrying,
            c.quarantined,
            self.failed_stages
        )?;
        for owner in &self.owners {
            writeln!(
                f,
                "  in flight: {:<32} {:>6} videos, next lease expiry in {:.1} s",
                owner.owner,
                owner.items,
                owner.expires_in_ms as f64 / 1000.0
            )?;
        }
        for q in &self.quarantined {
            writeln!(
                f,
                "  quarantined: {} after {} attempts: {}: {}",
                q.video,
                q.attempts,
                q.error_kind.as_deref().unwrap_or("?"),
                q.error_message.as_deref().unwrap_or("")
            )?;
        }
        Ok(())
    }
}

impl Store {
    /// Puts every readable video of `dataset_id` in the queue of `run_id`; an item that
    /// is there and not running starts over (pending, no attempts). Returns the items
    /// added or reset.
    pub async fn enqueue(&self, run_id: i64, dataset_id: i64) -> Result<u64, StoreError> {
        let queued = self.enqueue_items(run_id, dataset_id).await?;
        if queued > 0 && self.dialect == Dialect::Postgres {
            // Idle workers listening on PostgreSQL claim at once ([`Store::queue_wakeups`]).
            sqlx::query(AssertSqlSafe(format!("NOTIFY {QUEUE_CHANNEL}")))
                .execute(self.pool())
                .await?;
        }
        Ok(queued)
    }

    /// A `Notify` woken each time a run is enqueued on this database (PostgreSQL's
    /// `LISTEN` on a connection of its own, which sqlx reconnects when it is lost), and
    /// the task that listens; None on SQLite, or when the listener cannot connect (with
    /// a warning). Polling stays: a notification lost while the connection was down
    /// strands nothing, it only waits for the next look at the queue.
    pub async fn queue_wakeups(
        &self,
    ) -> Option<(Arc<tokio::sync::Notify>, tokio::task::JoinHandle<()>)> {
        let url = self.url.as_deref()?;
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect(url).await?;
            listener.listen(QUEUE_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listening.await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot listen for enqueued runs; polling only.");
                return None;
            }
        };
        let wake = Arc::new(tokio::sync::Notify::new());
        let woken = Arc::clone(&wake);
        let task = tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    // One stored permit: a worker that was busy claims at its next wait.
                    Ok(_) => woken.notify_one(),
                    Err(e) => {
                        tracing::warn!(error = %e, "The queue's listener lost its connection; reconnecting.");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Some((wake, task))
    }

    async fn enqueue_items(&self, run_id: i64, dataset_id: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "INSERT INTO queue (run_id, video_id, status) \
             SELECT $1, id, 'pending' FROM videos WHERE dataset_id = $2 AND status = 'ok' \
             ON CONFLICT (run_id, video_id) DO UPDATE SET status = 'pending', attempts = 0, \
             not_before_ms = 0, error_kind = NULL, error_message = NULL, \
             updated_at = CURRENT_TIMESTAMP WHERE queue.status <> 'running'",
        )
        .bind(run_id)
        .bind(dataset_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// (id, name, config text) of the runs with pending items.
    pub async fn queued_runs(&self) -> Result<Vec<(i64, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.name, r.config FROM runs r WHERE EXISTS \
             (SELECT 1 FROM queue q WHERE q.run_id = r.id AND q.status = 'pending') \
             ORDER BY r.id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Claims up to `limit` pending items of `run_ids` for `owner`.
    pub async fn claim(
        &self,
        owner: &str,
        run_ids: &[i64],
        limit: usize,
        settings: &QueueSettings,
    ) -> Result<Vec<Claim>, StoreError> {
        if run_ids.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let dialect = self.dialect();
        let now = dialect.now_ms();
        let lock = match dialect {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let runs = dialect.json_values(4, true);
        let ids = serde_json::to_string(run_ids).expect("integers serialise");
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE queue SET status = 'running', attempts = attempts + 1, lease_owner = $1, \
             lease_expires_ms = {now} + $2, updated_at = CURRENT_TIMESTAMP \
             WHERE id IN (SELECT id FROM queue WHERE status = 'pending' \
             AND not_before_ms <= {now} AND run_id IN ({runs}) ORDER BY id LIMIT $3 {lock}) \
             RETURNING id, run_id, video_id, attempts"
        )))
        .bind(owner)
        .bind(settings.lease_ms)
        .bind(limit as i64)
        .bind(ids)
        .fetch_all(self.pool())
        .await?;
        let mut claims: Vec<Claim> = rows
            .into_iter()
            .map(|r| Claim {
                id: r.get(0),
                run_id: r.get(1),
                video_id: r.get(2),
                attempts: r.get(3),
            })
            .collect();
        claims.sort_by_key(|c| c.id);
        Ok(claims)
    }

    /// Extends the leases `owner` holds on the items `ids` (those it is still working
    /// on: one it gave up stays to expire); returns how many.
    pub async fn heartbeat(
        &self,
        owner: &str,
        ids: &[i64],
        lease_ms: i64,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let dialect = self.dialect();
        let (now, items) = (dialect.now_ms(), dialect.json_values(3, true));
        let done = sqlx::query(AssertSqlSafe(format!(
            "UPDATE queue SET lease_expires_ms = {now} + $2 \
             WHERE lease_owner = $1 AND status = 'running' AND id IN ({items})"
        )))
        .bind(owner)
        .bind(lease_ms)
        .bind(serde_json::to_string(ids).expect("integers serialise"))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Returns expired leases to the queue (after a backoff) or quarantines them at the
    /// attempt limit; returns (requeued, quarantined).
    pub async fn reap(&self, settings: &QueueSettings) -> Result<(u64, u64), StoreError> {
        let now = self.dialect().now_ms();
        let expired = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, attempts, lease_owner FROM queue \
             WHERE status = 'running' AND lease_expires_ms < {now}"
        )))
        .fetch_all(self.pool())
        .await?;
        let (mut requeued, mut quarantined) = (0, 0);
        for row in expired {
            let (id, attempts, owner): (i64, i64, Option<String>) =
                (row.get(0), row.get(1), row.get(2));
            let message = format!(
                "the lease of `{}` expired during attempt {attempts}",
                owner.unwrap_or_default()
            );
            let quarantine = attempts >= settings.max_attempts;
            // The expiry is checked again: a heartbeat or a commit since the select wins.
            let done = sqlx::query(AssertSqlSafe(format!(
                "UPDATE queue SET status = $2, lease_owner = NULL, lease_expires_ms = NULL, \
                 not_before_ms = {now} + $3, error_kind = 'lease_expired', \
                 error_message = $4, updated_at = CURRENT_TIMESTAMP \
                 WHERE id = $1 AND status = 'running' AND lease_expires_ms < {now}"
            )))
            .bind(id)
            .bind(if quarantine { "quarantined" } else { "pending" })
            .bind(settings.backoff(attempts))
            .bind(message)
            .execute(self.pool())
            .await?;
            match (done.rows_affected(), quarantine) {
                (0, _) => {}
                (_, true) => quarantined += 1,
                (_, false) => requeued += 1,
            }
        }
        Ok((requeued, quarantined))
    }

    /// Commits a claimed item: its new state and the video's stage writes, in one
    /// transaction, only while `owner` still holds the lease. Returns false (and writes
    /// nothing) when the lease was lost: the item went back to the queue meanwhile.
    pub async fn finish_claim(
        &self,
        claim: &Claim,
        owner: &str,
        writes: &[StageWrite],
        outcome: &JobCommit,
        settings: &QueueSettings,
    ) -> Result<bool, StoreError> {
        let now = self.dialect().now_ms();
        let (status, commits, kind, message) = match outcome {
            JobCommit::Done => ("done", 1, None, None),
            JobCommit::Failed { kind, message } => {
                let status = if claim.attempts >= settings.max_attempts {
                    "quarantined"
                } else {
                    "pending"
                };
                (status, 0, Some(kind.as_str()), Some(message.as_str()))
            }
        };
        let mut tx = self.begin_write().await?;
        let held = sqlx::query(AssertSqlSafe(format!(
            "UPDATE queue SET status = $3, commits = commits + $4, \
             done_by = CASE WHEN $4 = 1 THEN $2 ELSE done_by END, lease_owner = NULL, \
             lease_expires_ms = NULL, not_before_ms = {now} + $5, error_kind = $6, \
             error_message = $7, updated_at = CURRENT_TIMESTAMP \
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'"
        )))
        .bind(claim.id)
        .bind(owner)
        .bind(status)
        .bind(commits as i64)
        .bind(settings.backoff(claim.attempts))
        .bind(kind)
        .bind(message)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !held {
            tx.rollback().await?;
            return Ok(false);
        }
        for write in writes {
            write_stage(&mut tx, claim.run_id, claim.video_id, write).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Gives a claimed item back unfinished (a stopping worker): pending at once, and
    /// the attempt does not count. False when the lease was already lost.
    pub async fn release_claim(&self, claim: &Claim, owner: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE queue SET status = 'pending', lease_owner = NULL, lease_expires_ms = NULL, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
             updated_at = CURRENT_TIMESTAMP \
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(claim.id)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The lease owners of running items.
    pub async fn lease_owners(&self) -> Result<Vec<String>, StoreError> {
        let owners = sqlx::query_scalar(
            "SELECT DISTINCT lease_owner FROM queue \
             WHERE status = 'running' AND lease_owner IS NOT NULL ORDER BY lease_owner",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(owners)
    }

    /// Gives every item `owner` holds back to the queue at once, as its own release
    /// would (the attempt does not count): for an owner known to be dead, whose leases
    /// would otherwise hold until they expire. Returns how many.
    pub async fn release_owner(&self, owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE queue SET status = 'pending', lease_owner = NULL, lease_expires_ms = NULL, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
             updated_at = CURRENT_TIMESTAMP \
             WHERE lease_owner = $1 AND status = 'running'",
        )
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Items of `run_ids` still pending or running.
    pub async fn queue_open(&self, run_ids: &[i64]) -> Result<i64, StoreError> {
        let runs = self.dialect().json_values(1, true);
        let count = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM queue WHERE status IN ('pending', 'running') \
             AND run_id IN ({runs})"
        )))
        .bind(serde_json::to_string(run_ids).expect("integers serialise"))
        .fetch_one(self.pool())
        .await?;
        Ok(count)
    }

    /// The queue of run `name`: counts, lease owners, quarantined items.
    pub async fn queue_status(&self, name: &str) -> Result<QueueStatus, StoreError> {
        let run = self.run(name).await?;
        let mut count = QueueCount::default();
        let rows =
            sqlx::query("SELECT status, count(*) FROM queue WHERE run_id = $1 GROUP BY status")
                .bind(run.id)
                .fetch_all(self.pool())
                .await?;
        for row in rows {
            let (status, n): (String, i64) = (row.get(0), row.get(1));
            match status.as_str() {
                "pending" => count.pending = n,
                "running" => count.running = n,
                "done" => count.done = n,
                _ => count.quarantined = n,
            }
        }
        let now = self.dialect().now_ms();
        let owners = sqlx::query(AssertSqlSafe(format!(
            "SELECT lease_owner, count(*), min(lease_expires_ms) - {now} FROM queue \
             WHERE run_id = $1 AND status = 'running' GROUP BY lease_owner ORDER BY lease_owner"
        )))
        .bind(run.id)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|r| LeaseOwner {
            owner: r.get(0),
            items: r.get(1),
            expires_in_ms: r.get(2),
        })
        .collect();
        let quarantined = sqlx::query(
            "SELECT v.key, q.attempts, q.error_kind, q.error_message FROM queue q \
             JOIN videos v ON v.id = q.video_id WHERE q.run_id = $1 AND q.status = 'quarantined' \
             ORDER BY v.key",
        )
        .bind(run.id)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|r| Quarantined {
            video: r.get(0),
            attempts: r.get(1),
            error_kind: r.get(2),
            error_message: r.get(3),
        })
        .collect();
        let retrying = sqlx::query_scalar(
            "SELECT count(*) FROM queue WHERE run_id = $1 AND status = 'pending' \
             AND error_kind IS NOT NULL",
        )
        .bind(run.id)
        .fetch_one(self.pool())
        .await?;
        let failed_stages = self.failed_stage_count(run.id).await?;
        let commits = sqlx::query_scalar(
            "SELECT CAST(coalesce(sum(commits), 0) AS BIGINT) FROM queue WHERE run_id = $1",
        )
        .bind(run.id)
        .fetch_one(self.pool())
        .await?;
        Ok(QueueStatus {
            run: run.name,
            commits,
            count,
            owners,
            quarantined,
            retrying,
            failed_stages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::stores;
    use crate::store::{NewDataset, StoredResult};

    async fn world(store: &Store, videos: usize) -> (i64, i64) {
        let dataset = store
            .begin_intake(&NewDataset {
                name: "d".into(),
                source: "s".into(),
                source_kind: "folder".into(),
                root: None,
            })
            .await
            .unwrap();
        let records: Vec<_> = (0..videos)
            .map(|i| crate::store::videos::tests::record(&format!("v{i:02}"), true))
            .collect();
        store.put_videos(dataset, &records).await.unwrap();
        let run = store.open_run("r", dataset, "", "h").await.unwrap();
        (dataset, run.id)
    }

    fn fast() -> QueueSettings {
        QueueSettings {
            lease_ms: 200,
            max_attempts: 2,
            backoff_ms: 0,
            max_backoff_ms: 0,
        }
    }

    #[tokio::test]
    async fn claims_never_overlap_and_only_the_lease_holder_commits() {
        let dir = tempfile::tempdir().unwrap();
        for (db, store) in stores(dir.path()).await {
            let (dataset, run) = world(&store, 5).await;
            assert_eq!(store.enqueue(run, dataset).await.unwrap(), 5, "{db}");
            let settings = fast();
            let a = store.claim("a", &[run], 3, &settings).await.unwrap();
            let b = store.claim("b", &[run], 3, &settings).await.unwrap();
            assert_eq!((a.len(), b.len()), (3, 2), "{db}");
            assert!(a.iter().all(|x| b.iter().all(|y| x.id != y.id)), "{db}");
            // `a` stops heartbeating; its leases expire and go back to the queue.
            let ids: Vec<i64> = b.iter().map(|c| c.id).collect();
            assert_eq!(store.heartbeat("b", &ids, 60_000).await.unwrap(), 2, "{db}");
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert_eq!(store.reap(&settings).await.unwrap(), (3, 0), "{db}");
            let again = store.claim("c", &[run], 10, &settings).await.unwrap();
            assert_eq!(again.len(), 3, "{db}");
            // `a` comes back and tries to commit: refused, nothing written.
            let write = StageWrite::Caption {
                stage: "fusion".into(),
                source: "wolf".into(),
                caption: "A red circle.".into(),
                result_key: "k".into(),
                result: StoredResult::bare("{}"),
            };
            let late = store
                .finish_claim(
                    &a[0],
                    "a",
                    std::slice::from_ref(&write),
                    &JobCommit::Done,
                    &settings,
                )
                .await
                .unwrap();
            assert!(!late, "{db}");
            assert!(store.captions(run, None).await.unwrap().is_empty(), "{db}");
            let c = again.iter().find(|c| c.id == a[0].id).unwrap();
            assert!(
                store
                    .finish_claim(c, "c", &[write], &JobCommit::Done, &settings)
                    .await
                    .unwrap(),
                "{db}"
            );
            assert_eq!(store.captions(run, None).await.unwrap().len(), 1, "{db}");
            let status = store.queue_status("r").await.unwrap();
            assert_eq!(
                (
                    status.count.done,
                    status.count.running,
                    status.count.pending
                ),
                (1, 4, 0),
                "{db}"
            );
            assert_eq!(status.owners.len(), 2, "{db}: owners b and c");
        }
    }

    #[tokio::test]
    async fn failures_back_off_then_quarantine_with_the_last_error() {
        let dir = tempfile::tempdir().unwrap();
        for (db, store) in stores(dir.path()).await {
            let (dataset, run) = world(&store, 1).await;
            store.enqueue(run, dataset).await.unwrap();
            let settings = QueueSettings {
                backoff_ms: 60_000,
                max_backoff_ms: 60_000,
                ..fast()
            };
            let failed = JobCommit::Failed {
                kind: "model_error".into(),
                message: "500".into(),
            };
            let first = store.claim("w", &[run], 1, &settings).await.unwrap();
            assert!(
                store
                    .finish_claim(&first[0], "w", &[], &failed, &settings)
                    .await
                    .unwrap()
            );
            // Backing off: nothing to claim for a minute.
            let early = store.claim("w", &[run], 1, &settings).await.unwrap();
            assert!(early.is_empty(), "{db}");
            sqlx::query("UPDATE queue SET not_before_ms = 0")
                .execute(store.pool())
                .await
                .unwrap();
            let second = store.claim("w", &[run], 1, &settings).await.unwrap();
            assert_eq!(second[0].attempts, 2, "{db}");
            store
                .finish_claim(&second[0], "w", &[], &failed, &settings)
                .await
                .unwrap();
            let status = store.queue_status("r").await.unwrap();
            assert_eq!(status.count.quarantined, 1, "{db}");
            assert_eq!(
                status.quarantined[0].error_kind.as_deref(),
                Some("model_error")
            );
            // A stopping worker's release does not count the attempt.
            store.enqueue(run, dataset).await.unwrap();
            let third = store.claim("w", &[run], 1, &settings).await.unwrap();
            assert!(store.release_claim(&third[0], "w").await.unwrap(), "{db}");
            let again = store.claim("w", &[run], 1, &settings).await.unwrap();
            assert_eq!(again[0].attempts, 1, "{db}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let s = QueueSettings {
            backoff_ms: 100,
            max_backoff_ms: 350,
            ..QueueSettings::default()
        };
        let delays: Vec<i64> = (1..=4).map(|a| s.backoff(a)).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
    }
}
