//! Scores of captions and the judge's cached replies.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

/// The scores with their caption, run, video and dataset, of one dataset (`$1`) or of
/// all (`$1` null): the `FROM` of the report's queries, as a literal for `concat!`.
macro_rules! scores_of_dataset {
    () => {
        "FROM scores s JOIN captions c ON c.id = s.caption_id \
         JOIN runs r ON r.id = c.run_id JOIN videos v ON v.id = c.video_id \
         JOIN datasets d ON d.id = r.dataset_id WHERE ($1 IS NULL OR d.name = $1)"
    };
}

/// A judge reply as cached: its status, the raw reply and how many attempts it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// `ok`, `parse_failed` or `failed`.
    pub status: String,
    pub reply: Option<String>,
    pub attempts: i64,
    pub error: Option<String>,
}

/// One score of one caption.
#[derive(Debug, Clone, PartialEq)]
pub struct NewScore<'a> {
    pub caption_id: i64,
    pub metric: &'a str,
    pub judge: &'a str,
    pub prompt_version: &'a str,
    pub sample_index: i64,
    /// `ok`, `parse_failed` or `failed`.
    pub status: &'a str,
    pub value: Option<f64>,
    pub raw_reply: Option<&'a str>,
}

/// A stored score with where it belongs, for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreRow {
    pub dataset: String,
    pub run: String,
    pub source: String,
    pub video: String,
    pub metric: String,
    pub judge: String,
    pub sample_index: i64,
    pub status: String,
    pub value: Option<f64>,
}

/// A caption to score: its id, source, text and the video's reference.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoringItem {
    pub caption_id: i64,
    pub video: String,
    pub source: String,
    pub caption: String,
    pub reference: String,
    /// The video's duration in seconds, where known.
    pub duration_s: Option<f64>,
    /// A long video's segments with their captions (the dense captions).
    pub segments: Option<Vec<super::TimedCaption>>,
    /// The shots the run found in a long video, as inclusive frame ranges.
    pub shots: Option<Vec<(u64, u64)>>,
}

/// The shots of a long video's cut (its `segments` result), as frame ranges.
fn shots_of(value: Option<&str>) -> Option<Vec<(u64, u64)>> {
    let parsed: serde_json::Value = serde_json::from_str(value?).ok()?;
    parsed["shots"]
        .as_array()?
        .iter()
        .map(|s| Some((s["first"].as_u64()?, s["last"].as_u64()?)))
        .collect()
}

impl Store {
    pub async fn judgement(&self, key: &str) -> Result<Option<Judgement>, StoreError> {
        let row =
            sqlx::query("SELECT status, reply, attempts, error FROM judgements WHERE key = $1")
                .bind(key)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|r| Judgement {
            status: r.get(0),
            reply: r.get(1),
            attempts: r.get(2),
            error: r.get(3),
        }))
    }

    /// Caches a judge reply; a later write of the same key replaces a failed one only.
    pub async fn put_judgement(&self, key: &str, j: &Judgement) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO judgements (key, status, reply, attempts, error) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (key) DO UPDATE SET status = excluded.status, reply = excluded.reply, \
             attempts = judgements.attempts + excluded.attempts, error = excluded.error \
             WHERE judgements.status <> 'ok'",
        )
        .bind(key)
        .bind(&j.status)
        .bind(&j.reply)
        .bind(j.attempts)
        .bind(&j.error)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Stores scores in one transaction, replacing earlier values of the same
    /// (caption, metric, judge, prompt version, sample).
    pub async fn put_scores(&self, scores: &[NewScore<'_>]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for s in scores {
            sqlx::query(
                "INSERT INTO scores (caption_id, metric, judge, prompt_version, sample_index, \
                 status, value, raw_reply) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (caption_id, metric, judge, prompt_version, sample_index) DO UPDATE \
                 SET status = excluded.status, value = excluded.value, \
                 raw_reply = excluded.raw_reply, created_at = CURRENT_TIMESTAMP",
            )
            .bind(s.caption_id)
            .bind(s.metric)
            .bind(s.judge)
            .bind(s.prompt_version)
            .bind(s.sample_index)
            .bind(s.status)
            .bind(s.value)
            .bind(s.raw_reply)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The captions of a run that have a reference, to score.
    pub async fn scoring_items(&self, run_id: i64) -> Result<Vec<ScoringItem>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.id, v.key, c.source, c.caption, v.reference, v.duration_s, r.value, cut.value \
             FROM captions c JOIN videos v ON v.id = c.video_id \
             LEFT JOIN results r ON r.key = c.result_key \
             LEFT JOIN work_items w ON w.run_id = c.run_id AND w.video_id = c.video_id \
             AND w.stage = 'segments' AND w.status = 'done' \
             LEFT JOIN results cut ON cut.key = w.result_key \
             WHERE c.run_id = $1 AND v.reference IS NOT NULL \
             AND length(trim(v.reference)) > 0 ORDER BY v.key, c.source",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ScoringItem {
                caption_id: r.get(0),
                video: r.get(1),
                source: r.get(2),
                caption: r.get(3),
                reference: r.get(4),
                duration_s: r.get(5),
                segments: super::runs::segments_of(r.get::<Option<String>, _>(6).as_deref()),
                shots: shots_of(r.get::<Option<String>, _>(7).as_deref()),
            })
            .collect())
    }

    /// Every score, with its dataset, run, source and video; one dataset when given.
    pub async fn scores(&self, dataset: Option<&str>) -> Result<Vec<ScoreRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT d.name, r.name, c.source, v.key, s.metric, s.judge, s.sample_index, \
                 s.status, s.value ",
            scores_of_dataset!(),
            " ORDER BY d.name, r.name, c.source, s.metric, v.key, s.sample_index"
        ))
        .bind(dataset)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ScoreRow {
                dataset: r.get(0),
                run: r.get(1),
                source: r.get(2),
                video: r.get(3),
                metric: r.get(4),
                judge: r.get(5),
                sample_index: r.get(6),
                status: r.get(7),
                value: r.get(8),
            })
            .collect())
    }

    /// Every (video, source, metric, judge) score of every run, samples averaged, with
    /// the caption and the reference; one dataset when given.
    pub async fn video_scores(&self, dataset: Option<&str>) -> Result<Vec<VideoScore>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT d.name, r.name, c.source, v.key, v.reference, c.caption, s.metric, \
                 s.judge, AVG(s.value), COUNT(*), \
                 SUM(CASE WHEN s.status = 'ok' THEN 0 ELSE 1 END) ",
            scores_of_dataset!(),
            " GROUP BY d.name, r.name, c.source, v.key, v.reference, c.caption, s.metric, \
                 s.judge ORDER BY d.name, r.name, v.key, c.source, s.metric, s.judge"
        ))
        .bind(dataset)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| VideoScore {
                dataset: r.get(0),
                run: r.get(1),
                source: r.get(2),
                video: r.get(3),
                reference: r.get(4),
                caption: r.get(5),
                metric: r.get(6),
                judge: r.get(7),
                value: r.get(8),
                samples: r.get(9),
                failed: r.get(10),
            })
            .collect())
    }
}

/// [`VideoScore`]'s fields in their order: the columns of `wolf report --per-video`.
pub const VIDEO_SCORE_COLUMNS: [&str; 11] = [
    "dataset",
    "run",
    "source",
    "video",
    "reference",
    "caption",
    "metric",
    "judge",
    "value",
    "samples",
    "failed",
];

/// One video's score of one metric for one source of a run, with the caption and the
/// reference it compared: a row of `wolf report --per-video`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoScore {
    pub dataset: String,
    pub run: String,
    pub source: String,
    pub video: String,
    pub reference: Option<String>,
    pub caption: String,
    pub metric: String,
    /// The judge of a judged metric (CapScore), else empty.
    pub judge: String,
    /// The mean of the samples scored; None when none could be.
    pub value: Option<f64>,
    pub samples: i64,
    /// Samples that could not be scored (a judge's reply that did not parse, say).
    pub failed: i64,
}

/// One point of a stored token-efficiency curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EfficiencyRow {
    pub run: String,
    pub source: String,
    pub metric: String,
    pub sentences: i64,
    pub mean_tokens: f64,
    pub mean_score: f64,
    pub count: i64,
}

impl Store {
    /// Replaces the curve of (run, source, metric): (sentences, mean tokens, mean score,
    /// count) per point, in one transaction.
    pub async fn put_efficiency(
        &self,
        run_id: i64,
        source: &str,
        metric: &str,
        points: &[(i64, f64, f64, i64)],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM efficiency WHERE run_id = $1 AND source = $2 AND metric = $3")
            .bind(run_id)
            .bind(source)
            .bind(metric)
            .execute(&mut *tx)
            .await?;
        for (sentences, tokens, score, count) in points {
            sqlx::query(
                "INSERT INTO efficiency (run_id, source, metric, sentences, mean_tokens, \
                 mean_score, count) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(run_id)
            .bind(source)
            .bind(metric)
            .bind(sentences)
            .bind(tokens)
            .bind(score)
            .bind(count)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every stored curve point, by run, source, metric and length.
    pub async fn efficiency(&self, run: Option<&str>) -> Result<Vec<EfficiencyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.name, e.source, e.metric, e.sentences, e.mean_tokens, e.mean_score, \
             e.count FROM efficiency e JOIN runs r ON r.id = e.run_id \
             WHERE ($1 IS NULL OR r.name = $1) ORDER BY r.name, e.source, e.metric, e.sentences",
        )
        .bind(run)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| EfficiencyRow {
                run: r.get(0),
                source: r.get(1),
                metric: r.get(2),
                sentences: r.get(3),
                mean_tokens: r.get(4),
                mean_score: r.get(5),
                count: r.get(6),
            })
            .collect())
    }
}
