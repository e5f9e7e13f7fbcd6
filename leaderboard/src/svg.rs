//! Charts as inline SVG: line charts (token-efficiency curves, recaption rounds),
//! histograms (score distributions) and dot-and-interval charts (an index's primary
//! metric). Each has a visible title and labelled axes; count axes tick at whole
//! numbers. They scale to their container (the stylesheet's `svg.chart`). Plain markup with presentation attributes (no
//! `style`, which the Content-Security-Policy forbids inline); every label is escaped
//! here, so pages may include the result as is.

use std::fmt::Write as _;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;

/// Series colours (Okabe–Ito, readable by colour-blind readers).
const COLOURS: [&str; 8] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000",
];

/// Text escaped for SVG (XML) content and attributes.
fn escape(text: &str) -> String {
    askama::filters::escape(text, askama::filters::Html)
        .map(|e| e.to_string())
        .unwrap_or_default()
}

/// One line of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// The axis range of values, padded so that a flat series is still drawn.
fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return None;
    }
    if hi - lo < 1e-9 {
        return Some((lo - 0.5, hi + 0.5));
    }
    Some((lo, hi))
}

fn frame(out: &mut String, title: &str, x_label: &str, y_label: &str) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"><title>{}</title><text class="chart-title" x="{}" y="18" text-anchor="middle" font-size="13" font-weight="600">{}</text><rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="#fafafa" stroke="#bbb"/><text x="{}" y="{}" text-anchor="middle" font-size="12">{}</text><text x="12" y="{}" text-anchor="middle" font-size="12" transform="rotate(-90 12 {})">{}</text>"##,
        escape(title),
        WIDTH / 2.0,
        escape(title),
        WIDTH - LEFT - RIGHT,
        HEIGHT - TOP - BOTTOM,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        HEIGHT - 6.0,
        escape(x_label),
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
        escape(y_label),
    );
}

fn ticks(out: &mut String, (x0, x1): (f64, f64), (y0, y1): (f64, f64), y_count: bool) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let x = LEFT + f * plot_w;
        let y = TOP + plot_h - f * plot_h;
        let _ = write!(
            out,
            r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="10">{}</text>"##,
            TOP + plot_h + 14.0,
            short(x0 + f * (x1 - x0)),
            LEFT - 4.0,
            y + 3.0,
            if y_count {
                format!("{:.0}", y0 + f * (y1 - y0))
            } else {
                short(y0 + f * (y1 - y0))
            },
        );
    }
}

/// A number for an axis: few digits.
fn short(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A line chart of several series, with a legend; `None` when there is no point.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Option<String> {
    let xr = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)))?;
    let yr = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)))?;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let px = |x: f64| LEFT + (x - xr.0) / (xr.1 - xr.0) * plot_w;
    let py = |y: f64| TOP + plot_h - (y - yr.0) / (yr.1 - yr.0) * plot_h;
    let mut out = String::new();
    frame(&mut out, title, x_label, y_label);
    ticks(&mut out, xr, yr, false);
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            out,
            r##"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"##,
            points.join(" ")
        );
        for p in &points {
            let (x, y) = p.split_once(',').expect("points are x,y");
            let _ = write!(
                out,
                r##"<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>"##
            );
        }
        let ly = TOP + 12.0 + 16.0 * i as f64;
        let lx = WIDTH - RIGHT + 10.0;
        let _ = write!(
            out,
            r##"<rect x="{lx}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{ly:.1}" font-size="11">{}</text>"##,
            ly - 9.0,
            lx + 14.0,
            escape(&truncate(&s.label, 24)),
        );
    }
    out.push_str("</svg>");
    Some(out)
}

/// A histogram of values in `[lo, hi]` with `bins` bins; `None` without values.
pub fn histogram(
    title: &str,
    x_label: &str,
    values: &[f64],
    lo: f64,
    hi: f64,
    bins: usize,
) -> Option<String> {
    if values.is_empty() || bins == 0 || hi <= lo {
        return None;
    }
    let mut counts = vec![0usize; bins];
    for &v in values.iter().filter(|v| v.is_finite()) {
        let b = (((v - lo) / (hi - lo)) * bins as f64).floor();
        counts[(b.max(0.0) as usize).min(bins - 1)] += 1;
    }
    // The count axis ends at four whole steps, so that its five ticks are integers.
    let step = counts.iter().max().expect("bins > 0").div_ceil(4).max(1);
    let max = (4 * step) as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let mut out = String::new();
    frame(&mut out, title, x_label, "videos");
    ticks(&mut out, (lo, hi), (0.0, max), true);
    let w = plot_w / bins as f64;
    for (i, &c) in counts.iter().enumerate() {
        let h = c as f64 / max * plot_h;
        let _ = write!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#0072b2"><title>{}–{}: {c}</title></rect>"##,
            LEFT + i as f64 * w + 1.0,
            TOP + plot_h - h,
            (w - 2.0).max(1.0),
            short(lo + i as f64 * (hi - lo) / bins as f64),
            short(lo + (i + 1) as f64 * (hi - lo) / bins as f64),
        );
    }
    let _ = write!(
        out,
        r##"<text x="{:.1}" y="{:.1}" font-size="11">n = {}</text></svg>"##,
        WIDTH - RIGHT + 10.0,
        TOP + 12.0,
        values.len()
    );
    Some(out)
}

/// One row of a dot-and-interval chart: a label, a mean and its interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub label: String,
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// Rows of [`interval_chart`], and the left margin its labels take.
const ROW: f64 = 22.0;
const LABEL_W: f64 = 190.0;

/// A dot-and-interval chart: one row per estimate, in the given order, the dot at its
/// mean and a line over its interval, on a shared axis; `None` without a finite row.
pub fn interval_chart(title: &str, x_label: &str, rows: &[Estimate]) -> Option<String> {
    let rows: Vec<&Estimate> = rows
        .iter()
        .filter(|r| r.mean.is_finite() && r.low.is_finite() && r.high.is_finite())
        .collect();
    let (x0, x1) = range(rows.iter().flat_map(|r| [r.low, r.high]))?;
    // A little room at both ends, but none below 0 for a score that is not negative.
    let pad = (x1 - x0) * 0.05;
    let (x0, x1) = (
        if x0 >= 0.0 {
            (x0 - pad).max(0.0)
        } else {
            x0 - pad
        },
        x1 + pad,
    );
    let right = 16.0;
    let plot_w = WIDTH - LABEL_W - right;
    let plot_h = ROW * rows.len() as f64;
    let height = TOP + plot_h + BOTTOM;
    let px = |x: f64| LABEL_W + (x - x0) / (x1 - x0) * plot_w;
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}"><title>{}</title><text class="chart-title" x="{}" y="18" text-anchor="middle" font-size="13" font-weight="600">{}</text><rect x="{LABEL_W}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#bbb"/><text x="{}" y="{}" text-anchor="middle" font-size="12">{}</text>"##,
        escape(title),
        WIDTH / 2.0,
        escape(title),
        LABEL_W + plot_w / 2.0,
        height - 6.0,
        escape(x_label),
    );
    for i in 0..=4 {
        let v = x0 + f64::from(i) / 4.0 * (x1 - x0);
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"##,
            px(v),
            TOP + plot_h + 14.0,
            short(v),
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = TOP + ROW * (i as f64 + 0.5);
        let _ = write!(
            out,
            r##"<g class="estimate"><title>{}: {:.3} [{:.3}, {:.3}]</title><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{}</text><line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#0072b2" stroke-width="2"/><circle cx="{:.1}" cy="{y:.1}" r="4" fill="#0072b2"/></g>"##,
            escape(&r.label),
            r.mean,
            r.low,
            r.high,
            LABEL_W - 6.0,
            y + 4.0,
            escape(&truncate(&r.label, 27)),
            px(r.low),
            px(r.high),
            px(r.mean),
        );
    }
    out.push_str("</svg>");
    Some(out)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        text.chars().take(max - 1).chain(['…']).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        let svg = line_chart(
            "<script>",
            "x",
            "y",
            &[Series {
                label: "\"><img src=x onerror=alert(1)>".into(),
                points: vec![(1.0, 0.5), (2.0, 0.7)],
            }],
        )
        .unwrap();
        assert!(!svg.contains("<script>"));
        assert!(!svg.contains("<img"));
        assert!(svg.contains("&#60;script&#62;") || svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn histogram_counts_every_value_once() {
        let svg = histogram("h", "x", &[0.0, 0.05, 0.5, 1.0, 1.0], 0.0, 1.0, 10).unwrap();
        assert!(svg.contains(": 2</title>"), "{svg}");
        assert!(svg.contains("n = 5"));
        assert!(histogram("h", "x", &[], 0.0, 1.0, 10).is_none());
    }

    /// A count axis ticks at whole numbers, whatever the largest count.
    #[test]
    fn histogram_counts_tick_at_whole_numbers() {
        let svg = histogram("Scores", "x", &[0.1, 0.1, 0.1, 0.9, 0.9, 0.5], 0.0, 1.0, 10).unwrap();
        assert!(svg.contains(">Scores</text>"), "a visible title: {svg}");
        for tick in ["0", "1", "2", "3", "4"] {
            assert!(
                svg.contains(&format!(
                    r#"text-anchor="end" font-size="10">{tick}</text>"#
                )),
                "{tick}: {svg}"
            );
        }
        assert!(
            !svg.contains(r#"text-anchor="end" font-size="10">0.75<"#),
            "{svg}"
        );
    }

    #[test]
    fn an_interval_chart_draws_one_row_per_finite_estimate() {
        let rows = [
            Estimate {
                label: "wolf".into(),
                mean: 0.87,
                low: 0.82,
                high: 0.92,
            },
            Estimate {
                label: "<b>motion</b>".into(),
                mean: 0.82,
                low: 0.78,
                high: 0.86,
            },
            Estimate {
                label: "none".into(),
                mean: f64::NAN,
                low: 0.0,
                high: 1.0,
            },
        ];
        let svg = interval_chart("Truth F1", "truth_f1", &rows).unwrap();
        assert_eq!(svg.matches(r#"<g class="estimate">"#).count(), 2, "{svg}");
        assert!(svg.contains("wolf: 0.870 [0.820, 0.920]"));
        assert!(!svg.contains("<b>"));
        assert!(interval_chart("t", "x", &rows[2..]).is_none());
    }

    #[test]
    fn no_points_no_chart() {
        assert!(line_chart("t", "x", "y", &[]).is_none());
    }
}
