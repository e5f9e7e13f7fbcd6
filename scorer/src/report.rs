//! Scores summarised: per dataset, run, source, metric and judge, the mean over videos
//! with a 95% bootstrap interval, the count and the failures. `wolf report`, the demo
//! and the leaderboard all print these lines.

use std::collections::BTreeMap;

use serde::Serialize;
use wolf_pipeline::store::ScoreRow;

use crate::capscore::mean_and_interval;

/// Bootstrap resamples of every interval, and their seed: the same scores always give
/// the same interval.
pub const RESAMPLES: usize = 2000;
pub const SEED: u64 = 7;

/// One line of a report: dataset × run × source × metric (× judge).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportLine {
    pub dataset: String,
    pub run: String,
    pub source: String,
    pub metric: String,
    pub judge: String,
    pub mean: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Videos with at least one ok score.
    pub count: usize,
    pub parse_failed: usize,
    pub failed: usize,
}

/// Per-video means over samples, then the mean over videos with a 95% bootstrap
/// interval (videos are the unit of resampling).
pub fn report_lines(scores: &[ScoreRow]) -> Vec<ReportLine> {
    type Group<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);
    let mut groups: BTreeMap<Group, Vec<&ScoreRow>> = BTreeMap::new();
    for s in scores {
        let key = (
            s.dataset.as_str(),
            s.run.as_str(),
            s.source.as_str(),
            s.metric.as_str(),
            s.judge.as_str(),
        );
        groups.entry(key).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|((dataset, run, source, metric, judge), rows)| {
            let mut per_video: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            let (mut parse_failed, mut failed) = (0, 0);
            for r in &rows {
                match (r.status.as_str(), r.value) {
                    ("ok", Some(v)) => per_video.entry(&r.video).or_default().push(v),
                    ("parse_failed", _) => parse_failed += 1,
                    _ => failed += 1,
                }
            }
            let values: Vec<f64> = per_video.values().map(|v| mean(v)).collect();
            let interval = interval(&values);
            ReportLine {
                dataset: dataset.to_owned(),
                run: run.to_owned(),
                source: source.to_owned(),
                metric: metric.to_owned(),
                judge: judge.to_owned(),
                mean: interval.map(|i| i.0),
                low: interval.map(|i| i.1),
                high: interval.map(|i| i.2),
                count: values.len(),
                parse_failed,
                failed,
            }
        })
        .collect()
}

/// The mean over videos of per-video values, with its 95% bootstrap interval
/// ([`RESAMPLES`] resamples of the videos, seed [`SEED`]).
pub fn interval(per_video: &[f64]) -> Option<(f64, f64, f64)> {
    mean_and_interval(per_video, RESAMPLES, SEED)
}

/// The mean of a non-empty slice.
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The report as an aligned text table.
pub fn table(lines: &[ReportLine]) -> String {
    let mut out = format!(
        "{:<18} {:<14} {:<30} {:<20} {:>6} {:>15} {:>5} {:>6}\n",
        "dataset", "run", "source", "metric", "mean", "95% interval", "n", "failed"
    );
    let f = |v: Option<f64>| v.map_or("-".to_owned(), |x| format!("{x:.3}"));
    for l in lines {
        let failures = if l.parse_failed + l.failed > 0 {
            format!("{}p+{}", l.parse_failed, l.failed)
        } else {
            "0".into()
        };
        out.push_str(&format!(
            "{:<18} {:<14} {:<30} {:<20} {:>6} {:>15} {:>5} {:>6}\n",
            l.dataset,
            l.run,
            l.source,
            l.metric,
            f(l.mean),
            format!("[{}, {}]", f(l.low), f(l.high)),
            l.count,
            failures
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(video: &str, sample: i64, status: &str, value: Option<f64>) -> ScoreRow {
        ScoreRow {
            dataset: "d".into(),
            run: "r".into(),
            source: "s".into(),
            video: video.into(),
            metric: "m".into(),
            judge: "j".into(),
            sample_index: sample,
            status: status.into(),
            value,
        }
    }

    #[test]
    fn samples_average_per_video_before_videos_average() {
        let lines = report_lines(&[
            row("a", 0, "ok", Some(1.0)),
            row("a", 1, "ok", Some(0.0)),
            row("b", 0, "ok", Some(1.0)),
            row("c", 0, "parse_failed", None),
            row("c", 1, "failed", None),
        ]);
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert!((l.mean.unwrap() - 0.75).abs() < 1e-12);
        assert!(l.low.unwrap() <= 0.75 && l.high.unwrap() >= 0.75);
        assert_eq!((l.count, l.parse_failed, l.failed), (2, 1, 1));
    }
}
