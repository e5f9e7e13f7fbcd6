//! Scores summarised: per dataset, run, source, metric and judge, the mean over videos
//! with a 95% bootstrap interval, the count and the failures. `wolf report`, the demo
//! and the leaderboard all print these lines.

use std::collections::BTreeMap;

use serde::Serialize;
use wolf_pipeline::store::{CaptionRow, EfficiencyRow, ScoreRow};

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
/// ([`RESAMPLES`] resamples of the videos, seed [`SEED`]). A function of the values
/// alone, whatever their order: they are sorted first, so that `wolf report`, the site
/// and the server, which read them in different orders, give the same interval to the
/// last digit.
pub fn interval(per_video: &[f64]) -> Option<(f64, f64, f64)> {
    let mut sorted = per_video.to_vec();
    sorted.sort_by(f64::total_cmp);
    mean_and_interval(&sorted, RESAMPLES, SEED)
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

/// The columns of [`source_table`]: metric and heading.
pub const SOURCE_COLUMNS: [(&str, &str); 6] = [
    ("truth_f1", "truth_f1"),
    ("truth_precision", "truth_precision"),
    ("embed_sim", "embed_sim"),
    ("cider_d", "CIDEr-D"),
    ("bleu4", "BLEU-4"),
    ("meteor", "METEOR"),
];

/// One run's scores as one row per source (`first` on top, then by `truth_f1`, else
/// `embed_sim`, best first) with a column per metric of [`SOURCE_COLUMNS`] (mean and
/// 95% interval; `-` where not scored) and the mean words of a caption.
pub fn source_table(lines: &[ReportLine], words: &BTreeMap<String, f64>, first: &str) -> String {
    let value = |source: &str, metric: &str| {
        lines
            .iter()
            .find(|l| l.source == source && l.metric == metric)
    };
    let mut sources: Vec<&str> = lines.iter().map(|l| l.source.as_str()).collect();
    sources.sort();
    sources.dedup();
    let rank = |source: &str| {
        let by = |m| value(source, m).and_then(|l| l.mean);
        (
            source != first,
            -by("truth_f1")
                .or(by("embed_sim"))
                .unwrap_or(f64::NEG_INFINITY),
        )
    };
    sources.sort_by(|a, b| {
        let (ra, rb) = (rank(a), rank(b));
        ra.0.cmp(&rb.0).then(ra.1.total_cmp(&rb.1)).then(a.cmp(b))
    });
    let width = 21;
    let mut out = format!("{:<30}", "source");
    for (_, heading) in SOURCE_COLUMNS {
        out.push_str(&format!(" {heading:>width$}"));
    }
    out.push_str(&format!(" {:>6}\n", "words"));
    let f = |v: Option<f64>| v.map_or("-".to_owned(), |x| format!("{x:.3}"));
    for source in sources {
        out.push_str(&format!("{source:<30}"));
        for (metric, _) in SOURCE_COLUMNS {
            let cell = match value(source, metric) {
                Some(l) if l.mean.is_some() => {
                    format!("{} [{}, {}]", f(l.mean), f(l.low), f(l.high))
                }
                _ => "-".to_owned(),
            };
            out.push_str(&format!(" {cell:>width$}"));
        }
        let w = words
            .get(source)
            .map_or("-".to_owned(), |w| format!("{w:.1}"));
        out.push_str(&format!(" {w:>6}\n"));
    }
    out
}

/// One line per source other than `first`: whether `first`'s mean is above it on each
/// of `metrics` (`wolf beats motion on truth_f1 (0.812 vs 0.655) and on embed_sim (...)`).
pub fn beats_lines(lines: &[ReportLine], first: &str, metrics: &[&str]) -> Vec<String> {
    let mean = |source: &str, metric: &str| {
        lines
            .iter()
            .find(|l| l.source == source && l.metric == metric)
            .and_then(|l| l.mean)
    };
    let mut others: Vec<&str> = lines
        .iter()
        .map(|l| l.source.as_str())
        .filter(|s| *s != first)
        .collect();
    others.sort();
    others.dedup();
    others
        .into_iter()
        .map(|other| {
            let parts: Vec<String> = metrics
                .iter()
                .map(|metric| match (mean(first, metric), mean(other, metric)) {
                    (Some(a), Some(b)) => format!(
                        "{} {other} on {metric} ({a:.3} vs {b:.3})",
                        if a > b { "beats" } else { "does NOT beat" }
                    ),
                    _ => format!("cannot be compared with {other} on {metric}"),
                })
                .collect();
            format!("{first} {}", parts.join("; "))
        })
        .collect()
}

/// The token-efficiency curves as an aligned text table (`wolf report --efficiency`).
pub fn efficiency_table(rows: &[EfficiencyRow]) -> String {
    let mut out = format!(
        "{:<14} {:<30} {:<10} {:>9} {:>11} {:>10} {:>5}\n",
        "run", "source", "metric", "sentences", "mean words", "mean score", "n"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<14} {:<30} {:<10} {:>9} {:>11.1} {:>10.3} {:>5}\n",
            r.run, r.source, r.metric, r.sentences, r.mean_tokens, r.mean_score, r.count
        ));
    }
    out
}

/// One line per CapScore column checked against the truth
/// ([`crate::correlation::correlations`] with `truth_f1`), as `wolf report` prints them.
pub fn truth_correlation_lines(scores: &[ScoreRow]) -> Vec<String> {
    crate::correlation::correlations(
        scores,
        "truth_f1",
        &["capscore_similarity", "capscore_quality"],
    )
    .into_iter()
    .map(|c| {
        format!(
            "Kendall tau-b of {} (judge `{}`) with truth_f1 on `{}`: {} over {} captions",
            c.metric,
            c.judge,
            c.dataset,
            c.tau_b
                .map_or("undefined (a constant side)".to_owned(), |t| format!(
                    "{t:.3}"
                )),
            c.pairs
        )
    })
    .collect()
}

/// The mean words ([`crate::efficiency::tokens`]) of each source's captions.
pub fn mean_words(captions: &[CaptionRow]) -> BTreeMap<String, f64> {
    let mut words: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for c in captions {
        let entry = words.entry(c.source.clone()).or_default();
        entry.0 += crate::efficiency::tokens(&c.caption);
        entry.1 += 1;
    }
    words
        .into_iter()
        .map(|(source, (w, n))| (source, w as f64 / n.max(1) as f64))
        .collect()
}

#[cfg(test)]
mod tests {

    /// The same values in another order give the same interval to the last digit.
    #[test]
    fn an_interval_is_a_function_of_the_values_alone() {
        let values: Vec<f64> = (0..97).map(|i| ((i * 37) % 101) as f64 / 101.0).collect();
        let mut reversed = values.clone();
        reversed.reverse();
        let mut rotated = values.clone();
        rotated.rotate_left(41);
        let first = interval(&values).unwrap();
        assert_eq!(interval(&reversed).unwrap(), first);
        assert_eq!(interval(&rotated).unwrap(), first);
        // A different multiset of values is another interval.
        assert_ne!(interval(&values[1..]).unwrap(), first);
    }
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
