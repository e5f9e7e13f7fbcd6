//! Rank correlation: Kendall's tau-b, and the correlation of stored metrics with one
//! target metric over the captions that have both (`wolf report` checks each CapScore
//! column against `truth_f1` with it).
//!
//! [`kendall_tau_b`] is Knight's O(n log n) algorithm (the one SciPy's `kendalltau`
//! uses): sort the pairs by x then y, count the pairs tied in x, in y and in both, and
//! count the discordant pairs as the inversions of a merge sort of the y values.
//! Plain computation on the caller's thread.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;
use wolf_pipeline::store::ScoreRow;

use crate::report::mean;

/// Kendall's tau-b of paired values: (concordant − discordant) / √((n₀ − n₁)(n₀ − n₂)),
/// with n₀ = n(n − 1)/2 pairs, n₁ of them tied in x and n₂ tied in y, so ties lower
/// neither side's count of comparable pairs twice.
///
/// `None` when the slices differ in length, hold a value that is not finite, have fewer
/// than two pairs, or one side is constant (no pair can be ranked on it).
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n != y.len() || n < 2 || x.iter().chain(y).any(|v| !v.is_finite()) {
        return None;
    }
    let mut pairs: Vec<(f64, f64)> = x.iter().copied().zip(y.iter().copied()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let all = pairs_of(n);
    let tied_x = tied_pairs(&pairs, |a, b| a.0 == b.0);
    let tied_both = tied_pairs(&pairs, |a, b| a == b);
    let mut ys: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let mut buffer = vec![0.0; n];
    let discordant = inversions(&mut ys, &mut buffer);
    // `ys` is sorted now.
    let tied_y = tied_pairs(&ys, |a, b| a == b);
    let denominator = ((all - tied_x) as f64 * (all - tied_y) as f64).sqrt();
    if denominator == 0.0 {
        return None;
    }
    // Every pair is concordant, discordant or tied: all = C + D + tied_x + tied_y −
    // tied_both.
    let numerator =
        all as f64 - tied_x as f64 - tied_y as f64 + tied_both as f64 - 2.0 * discordant as f64;
    Some(numerator / denominator)
}

fn pairs_of(count: usize) -> u64 {
    let count = count as u64;
    count * count.saturating_sub(1) / 2
}

/// Pairs within runs of equal neighbours of a sorted slice.
fn tied_pairs<T>(sorted: &[T], equal: impl Fn(&T, &T) -> bool) -> u64 {
    let (mut total, mut run) = (0, 1);
    for w in sorted.windows(2) {
        if equal(&w[0], &w[1]) {
            run += 1;
        } else {
            total += pairs_of(run);
            run = 1;
        }
    }
    total + pairs_of(run)
}

/// Sorts `values` (merge sort) and returns the pairs it found out of order (strictly
/// greater before smaller; equal values are not an inversion).
fn inversions(values: &mut [f64], buffer: &mut [f64]) -> u64 {
    let n = values.len();
    if n < 2 {
        return 0;
    }
    let middle = n / 2;
    let mut count = {
        let (left, right) = values.split_at_mut(middle);
        inversions(left, &mut buffer[..middle]) + inversions(right, &mut buffer[middle..n])
    };
    let (mut i, mut j, mut k) = (0, middle, 0);
    while i < middle && j < n {
        if values[j].total_cmp(&values[i]) == Ordering::Less {
            // Every value left in the left half is greater than this one.
            count += (middle - i) as u64;
            buffer[k] = values[j];
            j += 1;
        } else {
            buffer[k] = values[i];
            i += 1;
        }
        k += 1;
    }
    buffer[k..k + middle - i].copy_from_slice(&values[i..middle]);
    k += middle - i;
    buffer[k..k + n - j].copy_from_slice(&values[j..n]);
    values.copy_from_slice(&buffer[..n]);
    count
}

/// The rank correlation of one metric with the target metric in one dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Correlation {
    pub dataset: String,
    pub metric: String,
    pub judge: String,
    /// Captions with an ok value of both.
    pub pairs: usize,
    /// `None` where [`kendall_tau_b`] is undefined (fewer than two pairs, a constant
    /// side: a judge that gives every caption 1.00).
    pub tau_b: Option<f64>,
}

/// Kendall's tau-b of each metric in `metrics` (per judge) with `target` (whatever its
/// judge), per dataset, over the captions (dataset, run, source, video) that have an
/// ok value of both; a caption's samples are averaged first. Sorted by dataset, metric,
/// judge.
pub fn correlations(scores: &[ScoreRow], target: &str, metrics: &[&str]) -> Vec<Correlation> {
    type Caption<'a> = (&'a str, &'a str, &'a str);
    let mut targets: BTreeMap<(&str, Caption), Vec<f64>> = BTreeMap::new();
    let mut others: BTreeMap<(&str, &str, &str), BTreeMap<Caption, Vec<f64>>> = BTreeMap::new();
    for s in scores {
        let (Some(value), "ok") = (s.value, s.status.as_str()) else {
            continue;
        };
        let caption = (s.run.as_str(), s.source.as_str(), s.video.as_str());
        if s.metric == target {
            targets
                .entry((s.dataset.as_str(), caption))
                .or_default()
                .push(value);
        } else if metrics.contains(&s.metric.as_str()) {
            others
                .entry((s.dataset.as_str(), s.metric.as_str(), s.judge.as_str()))
                .or_default()
                .entry(caption)
                .or_default()
                .push(value);
        }
    }
    others
        .into_iter()
        .map(|((dataset, metric, judge), captions)| {
            let (x, y): (Vec<f64>, Vec<f64>) = captions
                .iter()
                .filter_map(|(caption, values)| {
                    let truth = targets.get(&(dataset, *caption))?;
                    Some((mean(values), mean(truth)))
                })
                .unzip();
            Correlation {
                dataset: dataset.to_owned(),
                metric: metric.to_owned(),
                judge: judge.to_owned(),
                pairs: x.len(),
                tau_b: kendall_tau_b(&x, &y),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tau-b by its definition, over every pair: the reference of the fast one.
    fn brute_force(x: &[f64], y: &[f64]) -> Option<f64> {
        let n = x.len();
        let (mut concordant, mut discordant, mut tied_x, mut tied_y) = (0i64, 0i64, 0i64, 0i64);
        for i in 0..n {
            for j in i + 1..n {
                let (dx, dy) = (x[i] - x[j], y[i] - y[j]);
                if dx == 0.0 {
                    tied_x += 1;
                }
                if dy == 0.0 {
                    tied_y += 1;
                }
                if dx * dy > 0.0 {
                    concordant += 1;
                } else if dx * dy < 0.0 {
                    discordant += 1;
                }
            }
        }
        let all = (n * (n - 1) / 2) as i64;
        let denominator = (((all - tied_x) * (all - tied_y)) as f64).sqrt();
        (denominator > 0.0).then(|| (concordant - discordant) as f64 / denominator)
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn known_values() {
        // SciPy's documented example of `scipy.stats.kendalltau`: -0.47140452079103173.
        let tau = kendall_tau_b(&[12.0, 2.0, 1.0, 12.0, 2.0], &[1.0, 4.0, 7.0, 1.0, 0.0]);
        assert!(close(tau, -0.471_404_520_791_031_73), "{tau:?}");
        // No ties: (C − D) / n₀ = (5 − 1) / 6.
        let tau = kendall_tau_b(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]);
        assert!(close(tau, 4.0 / 6.0), "{tau:?}");
        // Ties in y only: C = 4, D = 0, n₂ = 2: 4 / √(6 · 4) = √(2/3).
        let tau = kendall_tau_b(&[1.0, 2.0, 3.0, 4.0], &[1.0, 1.0, 2.0, 2.0]);
        assert!(close(tau, (2.0f64 / 3.0).sqrt()), "{tau:?}");
        let up = [0.1, 0.5, 0.7, 0.9];
        assert!(close(kendall_tau_b(&up, &up), 1.0));
        let down: Vec<f64> = up.iter().map(|v| -v).collect();
        assert!(close(kendall_tau_b(&up, &down), -1.0));
    }

    #[test]
    fn undefined_cases_are_none() {
        assert_eq!(kendall_tau_b(&[], &[]), None);
        assert_eq!(kendall_tau_b(&[1.0], &[2.0]), None);
        assert_eq!(kendall_tau_b(&[1.0, 2.0], &[1.0]), None);
        // A judge that gives every caption 1.00 ranks nothing.
        assert_eq!(kendall_tau_b(&[1.0, 1.0, 1.0], &[0.2, 0.5, 0.9]), None);
        assert_eq!(kendall_tau_b(&[1.0, f64::NAN], &[1.0, 2.0]), None);
        assert_eq!(kendall_tau_b(&[1.0, 2.0], &[1.0, f64::INFINITY]), None);
    }

    #[test]
    fn the_fast_count_matches_the_definition_on_tied_data() {
        // A fixed linear congruential stream; few distinct values, so ties abound.
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |levels: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) % levels) as f64
        };
        for n in [2, 3, 7, 40, 301] {
            for levels in [2, 5, 1000] {
                let x: Vec<f64> = (0..n).map(|_| next(levels)).collect();
                let y: Vec<f64> = x.iter().map(|v| v + next(levels)).collect();
                let (fast, slow) = (kendall_tau_b(&x, &y), brute_force(&x, &y));
                match (fast, slow) {
                    (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "{n} {levels}: {a} {b}"),
                    _ => assert_eq!(fast, slow, "{n} {levels}"),
                }
            }
        }
    }

    fn row(run: &str, video: &str, metric: &str, judge: &str, value: f64) -> ScoreRow {
        ScoreRow {
            dataset: "world".into(),
            run: run.into(),
            source: "wolf".into(),
            video: video.into(),
            metric: metric.into(),
            judge: judge.into(),
            sample_index: 0,
            status: "ok".into(),
            value: Some(value),
        }
    }

    #[test]
    fn correlations_pair_captions_and_average_samples() {
        let mut scores = vec![
            row("r", "a", "truth_f1", "", 0.2),
            row("r", "b", "truth_f1", "", 0.5),
            row("r", "c", "truth_f1", "", 0.9),
            row("r", "a", "capscore_quality", "j", 0.1),
            row("r", "b", "capscore_quality", "j", 0.4),
            // Two samples of c average to 0.8.
            row("r", "c", "capscore_quality", "j", 0.7),
            row("r", "c", "capscore_quality", "j", 0.9),
            // No truth for d: left out.
            row("r", "d", "capscore_quality", "j", 0.0),
            // A constant judge.
            row("r", "a", "capscore_similarity", "j", 1.0),
            row("r", "b", "capscore_similarity", "j", 1.0),
            row("r", "c", "capscore_similarity", "j", 1.0),
            // Not asked for.
            row("r", "a", "bleu4", "", 0.3),
        ];
        scores[6].sample_index = 1;
        let mut failed = row("r", "b", "capscore_quality", "k", 0.0);
        failed.status = "parse_failed".into();
        failed.value = None;
        scores.push(failed);
        let found = correlations(
            &scores,
            "truth_f1",
            &["capscore_similarity", "capscore_quality"],
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            (
                found[0].metric.as_str(),
                found[0].judge.as_str(),
                found[0].pairs
            ),
            ("capscore_quality", "j", 3)
        );
        assert!(close(found[0].tau_b, 1.0), "{found:?}");
        assert_eq!(found[1].metric, "capscore_similarity");
        assert_eq!((found[1].pairs, found[1].tau_b), (3, None));
    }
}
