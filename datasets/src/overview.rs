//! What `wolf dataset show` prints of a stored dataset: its counts, each failed file and
//! source problem with its reason, and optionally every video, as a table for people
//! ([`Overview`]'s `Display`) or JSON for programs ([`Overview::to_json`]).

use std::fmt;

use wolf_pipeline::store::{
    DatasetSummary, IntakeProblem, Store, StoreError, VideoRow, VideoStatus,
};

/// A dataset as stored.
pub struct Overview {
    pub summary: DatasetSummary,
    pub videos: Vec<VideoRow>,
    pub problems: Vec<IntakeProblem>,
    /// List every video too.
    pub list_videos: bool,
}

impl Overview {
    pub async fn load(store: &Store, name: &str, list_videos: bool) -> Result<Self, StoreError> {
        let summary = store.dataset(name).await?;
        let videos = store.videos(summary.id).await?;
        let problems = store.intake_problems(summary.id).await?;
        Ok(Self {
            summary,
            videos,
            problems,
            list_videos,
        })
    }

    fn with_status(&self, status: VideoStatus) -> impl Iterator<Item = &VideoRow> {
        self.videos.iter().filter(move |v| v.status == status)
    }

    /// `dataset`, `failed` (key, path, kind, message), `problems`, and with
    /// `list_videos` `videos` (every stored field, the manifest's metadata included).
    pub fn to_json(&self) -> serde_json::Value {
        let failed: Vec<_> = self
            .with_status(VideoStatus::Failed)
            .map(|v| {
                serde_json::json!({
                    "key": v.key, "path": v.path, "kind": v.error_kind, "message": v.error_message,
                })
            })
            .collect();
        let mut value = serde_json::json!({
            "dataset": self.summary,
            "failed": failed,
            "problems": self.problems,
        });
        if self.list_videos {
            value["videos"] =
                serde_json::to_value(&self.videos).expect("stored videos serialise; this is a bug");
        }
        value
    }
}

impl fmt::Display for Overview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let summary = &self.summary;
        let ok: Vec<_> = self.with_status(VideoStatus::Ok).collect();
        let failed: Vec<_> = self.with_status(VideoStatus::Failed).collect();
        writeln!(
            f,
            "Dataset `{}` ({} source `{}`)",
            summary.name, summary.source_kind, summary.source
        )?;
        writeln!(
            f,
            "  {} videos ok, {} failed, {} source problems; {} with a reference caption",
            ok.len(),
            failed.len(),
            self.problems.len(),
            summary.with_reference
        )?;
        if !ok.is_empty() {
            let mean = |value: &dyn Fn(&VideoRow) -> f64| {
                ok.iter().map(|v| value(v)).sum::<f64>() / ok.len() as f64
            };
            writeln!(
                f,
                "  duration {:.1} s in all, {:.2} s on average; {:.1} fps and {:.0} frames on average",
                summary.total_duration_s,
                mean(&|v| v.duration_s.unwrap_or(0.0)),
                mean(&|v| v.fps.unwrap_or(0.0)),
                mean(&|v| v.frame_count.unwrap_or(0) as f64),
            )?;
        }
        if !failed.is_empty() {
            writeln!(f, "Failed files:")?;
            for v in &failed {
                writeln!(
                    f,
                    "  {}  [{}] {}",
                    v.key,
                    v.error_kind.as_deref().unwrap_or("?"),
                    v.error_message.as_deref().unwrap_or("")
                )?;
            }
        }
        if !self.problems.is_empty() {
            writeln!(f, "Source problems:")?;
            for p in &self.problems {
                writeln!(f, "  {}  [{}] {}", p.location, p.kind, p.message)?;
            }
        }
        if self.list_videos {
            writeln!(f, "Videos:")?;
            for v in &self.videos {
                writeln!(
                    f,
                    "  {}  {}  {:.2} s  {}x{}  {:.2} fps  {}",
                    v.key,
                    v.codec.as_deref().unwrap_or("-"),
                    v.duration_s.unwrap_or(0.0),
                    v.width.unwrap_or(0),
                    v.height.unwrap_or(0),
                    v.fps.unwrap_or(0.0),
                    v.sha256.as_deref().unwrap_or("-")
                )?;
            }
        }
        Ok(())
    }
}

/// `wolf dataset list`'s table: a line per dataset with its counts, hours and source.
pub fn list_table(datasets: &[wolf_pipeline::store::DatasetSummary]) -> String {
    let mut out = format!(
        "{:<24} {:>8} {:>8} {:>9} {:>10}  source\n",
        "name", "videos", "failed", "problems", "hours"
    );
    for d in datasets {
        out.push_str(&format!(
            "{:<24} {:>8} {:>8} {:>9} {:>10.2}  {}\n",
            d.name,
            d.videos - d.failed,
            d.failed,
            d.problems,
            d.total_duration_s / 3600.0,
            d.source
        ));
    }
    out
}
