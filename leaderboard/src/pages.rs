//! The pages: askama templates (`templates/`) fed with view structs built from the
//! board. Values are formatted here; the templates escape every one of them (a caption
//! reading `<script>` shows as text). Only the inline SVG charts are included as they
//! are, and [`crate::svg`] escapes their labels.
//!
//! Every link is relative (`root` climbs out of `videos/`), so the static site works
//! from any folder or web path, and the server answers the same paths.

use askama::Template;
use wolf_pipeline::store::{
    RoundRow, StageOutput, SubmissionRow, SubmissionStatus, TimedCaption, VideoRow, VideoStatus,
};
use wolf_pipeline::wolf::prompts::clock;
use wolf_scorer::report::{RESAMPLES, SEED};

use wolf_datasets::import::{MAX_META_CHARS, META_KEYS};

use crate::Error;
use crate::board::{Board, Column, DatasetBoard, Entry, EntryKind, below_coverage, label};
use crate::svg::{self, Estimate, Series};

/// The Content-Security-Policy of every page (a header in serve mode, a `<meta>` in
/// both): scripts and styles from the site only, no inline script, no plugin, forms
/// post to the site only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The site's stylesheet and script, served from `static/`.
pub const STYLE_CSS: &str = include_str!("../static/style.css");
pub const APP_JS: &str = include_str!("../static/app.js");

/// How pages are rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Serve mode: links to the submission pages.
    pub live: bool,
    /// Serve mode with an admin token set: entry pages carry a delete form.
    pub admin: bool,
    /// When the board was loaded (shown in the footer).
    pub generated: String,
    /// The upload limit in bytes (shown on the submission form).
    pub max_upload: u64,
}

pub fn dataset_file(id: i64) -> String {
    format!("dataset-{id}.html")
}

pub fn entry_file(dataset: i64, slug: &str) -> String {
    format!("entry-{dataset}-{slug}.html")
}

pub fn video_file(id: i64) -> String {
    format!("videos/{id}.html")
}

/// Where a video's clip is, in a site built `--with-videos` and in serve mode: its id
/// and its own extension (lowercase; `bin` when it has none a browser would know).
pub fn media_file(id: i64, path: &str) -> String {
    let ext = wolf_pipeline::media::media_name(std::path::Path::new(path))
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .filter(|e| !e.is_empty() && e.len() <= 5 && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "bin".into());
    format!("media/{id}.{ext}")
}

pub fn frame_file(video: i64, index: usize) -> String {
    format!("frames/{video}-{index}.jpg")
}

struct Layout {
    title: String,
    root: &'static str,
    live: bool,
    generated: String,
    csp: &'static str,
}

impl Layout {
    fn new(title: impl Into<String>, root: &'static str, settings: &Settings) -> Self {
        Self {
            title: title.into(),
            root,
            live: settings.live,
            generated: settings.generated.clone(),
            csp: CSP,
        }
    }
}

fn render(page: &str, template: &impl Template) -> Result<String, Error> {
    template.render().map_err(|source| Error::Render {
        page: page.to_owned(),
        source,
    })
}

/// A score for a table: three decimals.
pub fn number(v: f64) -> String {
    format!("{v:.3}")
}

fn interval(low: Option<f64>, high: Option<f64>) -> String {
    match (low, high) {
        (Some(l), Some(h)) => format!("[{}, {}]", number(l), number(h)),
        _ => String::new(),
    }
}

struct ColumnHead {
    key: String,
    label: String,
}

struct Cell {
    key: String,
    /// `data-value`: the mean, empty when there is none.
    value: String,
    text: String,
    interval: String,
    best: bool,
}

struct BoardRow {
    name: String,
    /// The name cut after each `/` and `:`, where a long name may break.
    name_parts: Vec<String>,
    /// Its metadata, in brief (model, size, submitter) and its link.
    about: String,
    link: String,
    href: String,
    kind: &'static str,
    /// The rank on the dataset's primary metric (`—` without it).
    rank: String,
    /// Videos captioned of the dataset's readable videos, as `n / N`, and the share.
    coverage: String,
    coverage_value: String,
    cells: Vec<Cell>,
    words: String,
    words_value: String,
    parse_failed: usize,
    failed: usize,
}

struct BoardTable {
    /// The label of the metric that ranks the entries.
    primary: String,
    /// Its column key (the one sorted when the page loads: by rank).
    primary_key: String,
    dataset_id: i64,
    name: String,
    href: String,
    videos: i64,
    columns: Vec<ColumnHead>,
    /// Ranked entries, best first.
    rows: Vec<BoardRow>,
    /// Entries below the least coverage: listed apart, unranked.
    partial: Vec<BoardRow>,
    /// The least coverage of a ranked entry, as a percentage.
    min_coverage: String,
    /// The dot-and-interval chart of the ranked entries' primary metric.
    chart: Option<String>,
}

/// A name cut after each `/` and `:` (the template puts a line-break opportunity there).
fn break_points(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = name;
    while let Some(i) = rest.find(['/', ':']) {
        parts.push(rest[..=i].to_owned());
        rest = &rest[i + 1..];
    }
    parts.push(rest.to_owned());
    parts
}

fn kind_label(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Wolf => "wolf run",
        EntryKind::Imported => "imported",
    }
}

fn board_table(ds: &DatasetBoard) -> BoardTable {
    let columns: Vec<&Column> = ds.index_columns();
    let best: Vec<Option<f64>> = columns
        .iter()
        .map(|c| {
            ds.entries
                .iter()
                .filter(|e| !ds.is_partial(e))
                .filter_map(|e| e.mean(&c.key))
                .fold(None, |b: Option<f64>, v| Some(b.map_or(v, |b| b.max(v))))
        })
        .collect();
    let readable = ds.readable();
    let ranks = ds.ranks();
    let (mut rows, mut partial) = (Vec::new(), Vec::new());
    for (e, rank) in ds.entries.iter().zip(&ranks) {
        let is_partial = ds.is_partial(e);
        let row = BoardRow {
            rank: rank.map_or("—".into(), |r| r.to_string()),
            name: e.name(),
            name_parts: break_points(&e.name()),
            about: ["model", "size", "submitter"]
                .iter()
                .filter_map(|k| e.row.meta.iter().find(|(key, _)| key == k))
                .map(|(k, v)| {
                    if k == "submitter" {
                        format!("by {v}")
                    } else {
                        v.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" · "),
            link: e
                .row
                .meta
                .iter()
                .find(|(k, _)| k == "link")
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            href: entry_file(ds.summary.id, &e.slug),
            kind: kind_label(e.kind),
            coverage: format!("{} / {readable}", e.captions),
            coverage_value: format!("{:.6}", ds.coverage(e)),
            cells: columns
                .iter()
                .zip(&best)
                .map(|(c, best)| {
                    let line = e.lines.get(&c.key);
                    let mean = line.and_then(|l| l.mean);
                    Cell {
                        key: c.key.clone(),
                        value: mean.map(|m| format!("{m:.6}")).unwrap_or_default(),
                        text: mean.map_or("—".into(), number),
                        interval: line.map(|l| interval(l.low, l.high)).unwrap_or_default(),
                        best: !is_partial
                            && mean.is_some()
                            && mean == *best
                            && ds.entries.len() > 1,
                    }
                })
                .collect(),
            words: format!("{:.1}", e.mean_words),
            words_value: format!("{:.3}", e.mean_words),
            parse_failed: e.parse_failed,
            failed: e.failed,
        };
        if is_partial {
            partial.push(row);
        } else {
            rows.push(row);
        }
    }
    let primary = ds.primary();
    let chart = primary.and_then(|p| {
        let estimates: Vec<Estimate> = ds
            .entries
            .iter()
            .filter(|e| !ds.is_partial(e))
            .filter_map(|e| {
                let line = e.lines.get(&p.key)?;
                Some(Estimate {
                    label: e.name(),
                    mean: line.mean?,
                    low: line.low?,
                    high: line.high?,
                })
            })
            .collect();
        svg::interval_chart(
            &format!("{} of the ranked entries, with 95% intervals", p.label()),
            &p.label(),
            &estimates,
        )
    });
    BoardTable {
        primary: primary.map(Column::label).unwrap_or_default(),
        primary_key: primary.map(|c| c.key.clone()).unwrap_or_default(),
        dataset_id: ds.summary.id,
        name: ds.summary.name.clone(),
        href: dataset_file(ds.summary.id),
        videos: ds.summary.videos,
        columns: columns
            .iter()
            .map(|c| ColumnHead {
                key: c.key.clone(),
                label: c.label(),
            })
            .collect(),
        rows,
        partial,
        min_coverage: format!("{:.0}%", ds.options.min_coverage * 100.0),
        chart,
    }
}

struct RoundView {
    round: i64,
    captioner: String,
    captions: i64,
    words: String,
    heldout: String,
}

struct LoopView {
    name: String,
    rounds: Vec<RoundView>,
    charts: Vec<String>,
}

/// The recaption loops: a table and charts (words and held-out score per round).
fn loops(board: &Board) -> Vec<LoopView> {
    let mut out: Vec<LoopView> = Vec::new();
    for r in &board.rounds {
        if out.last().is_none_or(|l| l.name != r.loop_name) {
            out.push(LoopView {
                name: r.loop_name.clone(),
                rounds: Vec::new(),
                charts: Vec::new(),
            });
        }
        out.last_mut()
            .expect("pushed above")
            .rounds
            .push(RoundView {
                round: r.round,
                captioner: r.captioner.clone(),
                captions: r.captions,
                words: r.mean_words.map_or("—".into(), |w| format!("{w:.1}")),
                heldout: match (r.heldout_score, &r.heldout_dataset) {
                    (Some(s), Some(d)) => format!("{} on {d}", number(s)),
                    _ => "—".into(),
                },
            });
    }
    for l in &mut out {
        let of = |f: &dyn Fn(&RoundRow) -> Option<f64>| -> Vec<(f64, f64)> {
            board
                .rounds
                .iter()
                .filter(|r| r.loop_name == l.name)
                .filter_map(|r| Some((r.round as f64, f(r)?)))
                .collect()
        };
        let words = Series {
            label: "mean words".into(),
            points: of(&|r| r.mean_words),
        };
        // The loop's metric: truth_f1 where its held-out set has truth.
        let metric = board
            .rounds
            .iter()
            .filter(|r| r.loop_name == l.name)
            .find_map(|r| r.heldout_metric.clone())
            .unwrap_or_else(|| "embed_sim".into());
        let heldout = Series {
            label: format!("held-out {metric}"),
            points: of(&|r| r.heldout_score),
        };
        l.charts = [
            svg::line_chart("Caption length per round", "round", "mean words", &[words]),
            svg::line_chart("Held-out score per round", "round", &metric, &[heldout]),
        ]
        .into_iter()
        .flatten()
        .collect();
    }
    out
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    layout: Layout,
    datasets: Vec<BoardTable>,
    loops: Vec<LoopView>,
}

pub fn index(board: &Board, settings: &Settings) -> Result<String, Error> {
    render(
        "index",
        &IndexPage {
            layout: Layout::new("Leaderboard", "", settings),
            datasets: board.datasets.iter().map(board_table).collect(),
            loops: loops(board),
        },
    )
}

struct BreakdownCell {
    text: String,
    best: bool,
}

struct BreakdownRow {
    tag: String,
    videos: usize,
    cells: Vec<BreakdownCell>,
}

struct BreakdownView {
    label: String,
    entries: Vec<String>,
    rows: Vec<BreakdownRow>,
}

struct VideoLink {
    href: String,
    key: String,
    tags: String,
    captions: usize,
    reference: String,
    error: String,
}

#[derive(Template)]
#[template(path = "dataset.html")]
struct DatasetPage {
    layout: Layout,
    table: BoardTable,
    failed: i64,
    with_reference: i64,
    duration: String,
    source: String,
    breakdowns: Vec<BreakdownView>,
    efficiency: Option<String>,
    videos: Vec<VideoLink>,
}

/// The mean-score-against-words chart of some entries' curves.
fn efficiency_chart(ds: &DatasetBoard, only: Option<usize>) -> Option<String> {
    let series: Vec<Series> = ds
        .curves
        .iter()
        .filter(|c| only.is_none_or(|e| e == c.entry))
        .map(|c| Series {
            label: format!("{} ({})", ds.entries[c.entry].name(), label(&c.metric)),
            points: c.points.iter().map(|p| (p.0, p.1)).collect(),
        })
        .collect();
    svg::line_chart("Token efficiency", "mean words", "mean score", &series)
}

fn excerpt(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        text.chars().take(max).chain(['…']).collect()
    }
}

pub fn dataset(ds: &DatasetBoard, settings: &Settings) -> Result<String, Error> {
    let breakdowns = ds
        .breakdowns
        .iter()
        .map(|b| BreakdownView {
            label: b.column.label(),
            entries: ds.entries.iter().map(Entry::name).collect(),
            rows: b
                .rows
                .iter()
                .map(|r| {
                    let best = r
                        .means
                        .iter()
                        .flatten()
                        .fold(None, |b: Option<f64>, &v| Some(b.map_or(v, |b| b.max(v))));
                    BreakdownRow {
                        tag: r.tag.clone(),
                        videos: r.videos,
                        cells: r
                            .means
                            .iter()
                            .map(|m| BreakdownCell {
                                text: m.map_or("—".into(), number),
                                best: m.is_some() && *m == best && r.means.len() > 1,
                            })
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect();
    let videos = ds
        .videos
        .iter()
        .map(|v| VideoLink {
            href: video_file(v.id),
            key: v.key.clone(),
            tags: v.tags.join(", "),
            captions: ds.captions.get(&v.id).map_or(0, Vec::len),
            reference: excerpt(v.reference.as_deref().unwrap_or(""), 120),
            error: v.error_message.clone().unwrap_or_default(),
        })
        .collect();
    let minutes = ds.summary.total_duration_s / 60.0;
    render(
        "dataset",
        &DatasetPage {
            layout: Layout::new(ds.summary.name.clone(), "", settings),
            table: board_table(ds),
            failed: ds.summary.failed,
            with_reference: ds.summary.with_reference,
            duration: if minutes >= 1.0 {
                format!("{minutes:.1} min")
            } else {
                format!("{:.1} s", ds.summary.total_duration_s)
            },
            source: source_by_name(&ds.summary.source),
            breakdowns,
            efficiency: efficiency_chart(ds, None),
            videos,
        },
    )
}

struct MetricRow {
    key: String,
    label: String,
    judge: String,
    mean: String,
    interval: String,
    count: usize,
    parse_failed: usize,
    failed: usize,
}

#[derive(Template)]
#[template(path = "entry.html")]
struct EntryPage {
    layout: Layout,
    dataset: String,
    dataset_href: String,
    name: String,
    kind: &'static str,
    run: String,
    source: String,
    status: String,
    created: String,
    captions: usize,
    mean_words: String,
    guard_paths: String,
    models: String,
    prompt_versions: String,
    judges: String,
    metrics: Vec<MetricRow>,
    histograms: Vec<String>,
    efficiency: Option<String>,
    config: String,
    delete: bool,
    meta: Vec<MetaView>,
}

/// One metadata field of an entry, labelled; a link is shown as one.
struct MetaView {
    key: String,
    label: String,
    value: String,
}

impl MetaView {
    fn is_link(&self) -> bool {
        self.key == "link"
    }
}

fn meta_views(e: &Entry) -> Vec<MetaView> {
    e.row
        .meta
        .iter()
        .map(|(key, value)| MetaView {
            key: key.clone(),
            label: META_KEYS
                .iter()
                .find(|(k, _)| k == key)
                .map_or(key.as_str(), |(_, l)| l)
                .to_owned(),
            value: value.clone(),
        })
        .collect()
}

pub fn entry(ds: &DatasetBoard, e: &Entry, settings: &Settings) -> Result<String, Error> {
    let index = ds
        .entries
        .iter()
        .position(|x| x.slug == e.slug)
        .expect("the entry is the dataset's; this is a bug");
    let mut metrics = Vec::new();
    let mut histograms = Vec::new();
    let mut judges = Vec::new();
    for column in &ds.columns {
        let Some(line) = e.lines.get(&column.key) else {
            continue;
        };
        let scorer = scorer_role(column);
        if !scorer.is_empty() && !judges.contains(&scorer) {
            judges.push(scorer.clone());
        }
        metrics.push(MetricRow {
            key: column.key.clone(),
            label: label(&column.metric).to_owned(),
            judge: scorer,
            mean: line.mean.map_or("—".into(), number),
            interval: interval(line.low, line.high),
            count: line.count,
            parse_failed: line.parse_failed,
            failed: line.failed,
        });
        if let Some(values) = e.per_video.get(&column.key) {
            let values: Vec<f64> = values.iter().map(|v| v.1).collect();
            let hi = if column.metric == "cider_d" {
                values.iter().copied().fold(1.0, f64::max).ceil()
            } else {
                1.0
            };
            if let Some(chart) = svg::histogram(&column.label(), "score", &values, 0.0, hi, 20) {
                histograms.push(chart);
            }
        }
    }
    render(
        "entry",
        &EntryPage {
            layout: Layout::new(format!("{} · {}", e.name(), ds.summary.name), "", settings),
            dataset: ds.summary.name.clone(),
            dataset_href: dataset_file(ds.summary.id),
            name: e.name(),
            kind: kind_label(e.kind),
            run: e.row.run.clone(),
            source: e.row.source.clone(),
            status: e.row.status.clone(),
            created: e.row.created_at.clone(),
            captions: e.captions,
            mean_words: format!("{:.1}", e.mean_words),
            guard_paths: e.guard_paths.clone(),
            models: e.row.models.join(", "),
            prompt_versions: e.row.prompt_versions.join(", "),
            judges: judges.join(", "),
            metrics,
            histograms,
            efficiency: efficiency_chart(ds, Some(index)),
            config: e.row.config.clone(),
            delete: settings.admin,
            meta: meta_views(e),
        },
    )
}

struct FrameView {
    src: String,
    time: String,
    width: u32,
}

/// One segment of a long video's timeline: its span, its thumbnails and its caption.
struct SegmentView {
    time: String,
    frames: Vec<FrameView>,
    caption: String,
}

struct ScoreView {
    key: String,
    label: String,
    value: String,
}

struct CaptionView {
    entry: String,
    entry_href: String,
    source: String,
    text: String,
    scores: Vec<ScoreView>,
}

struct StageView {
    stage: String,
    model: String,
    prompt_version: String,
    /// (time, text) per line; the time is empty when the output has none.
    lines: Vec<(String, String)>,
}

struct StageRun {
    run: String,
    stages: Vec<StageView>,
}

#[derive(Template)]
#[template(path = "video.html")]
struct VideoPage {
    layout: Layout,
    dataset: String,
    dataset_href: String,
    key: String,
    meta: String,
    tags: String,
    error: String,
    frames: Vec<FrameView>,
    frames_error: Option<String>,
    /// A long video's segments with their fused captions (a run's `fusion` stage).
    timeline: Vec<SegmentView>,
    reference: Option<String>,
    captions: Vec<CaptionView>,
    stages: Vec<StageRun>,
    /// The clip's address for the player, when the site can reach it.
    clip: Option<String>,
    /// The previous and next videos of the dataset: (href, key).
    previous: Option<(String, String)>,
    next: Option<(String, String)>,
}

/// A stage output's lines: one caption, or a cascade's captions with their times.
fn stage_lines(value: &str) -> Vec<(String, String)> {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(value) else {
        return vec![(String::new(), value.to_owned())];
    };
    if let Some(text) = json.get("caption").and_then(|c| c.as_str()) {
        return vec![(String::new(), text.to_owned())];
    }
    // A long video's cut: its segments' spans.
    if let Some(spans) = json.get("spans").and_then(|s| s.as_array()) {
        let shots = json["shots"].as_array().map_or(0, Vec::len);
        return spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (from, to) = (s["start_s"].as_f64(), s["end_s"].as_f64());
                let time = format!(
                    "{}–{}",
                    clock(from.unwrap_or(0.0)),
                    clock(to.unwrap_or(0.0))
                );
                (
                    time,
                    format!("segment {} of {} ({shots} shots)", i + 1, spans.len()),
                )
            })
            .collect();
    }
    if let Some(list) = json.get("captions").and_then(|c| c.as_array()) {
        let times = json.get("times").and_then(|t| t.as_array());
        return list
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let time = times
                    .and_then(|t| t.get(i))
                    .and_then(|t| t.as_f64())
                    .map(|t| format!("{t:.2} s"))
                    .unwrap_or_default();
                (time, c.as_str().unwrap_or_default().to_owned())
            })
            .collect();
    }
    vec![(String::new(), json.to_string())]
}

/// The segments of the first run's fused caption that has them (a long video's).
fn timeline(stages: &[StageOutput]) -> Vec<TimedCaption> {
    stages
        .iter()
        .filter(|s| s.stage == "fusion")
        .find_map(|s| {
            let value: serde_json::Value = serde_json::from_str(&s.value).ok()?;
            serde_json::from_value(value.get("segments")?.clone()).ok()
        })
        .unwrap_or_default()
}

/// The thumbnails of a segment: those within its span, else the one nearest its middle.
fn segment_frames(times: &[f64], start_s: f64, end_s: f64) -> Vec<usize> {
    let inside: Vec<usize> = (0..times.len())
        .filter(|&i| times[i] >= start_s && times[i] < end_s)
        .collect();
    if !inside.is_empty() || times.is_empty() {
        return inside;
    }
    let middle = (start_s + end_s) / 2.0;
    let nearest = (0..times.len())
        .min_by(|&a, &b| {
            (times[a] - middle)
                .abs()
                .total_cmp(&(times[b] - middle).abs())
        })
        .expect("not empty");
    vec![nearest]
}

/// The frame times of a video page's thumbnails, or why there are none.
pub type FrameTimes = Result<Vec<f64>, crate::frames::NoThumbnails>;

pub fn video(
    ds: &DatasetBoard,
    v: &VideoRow,
    frames: &FrameTimes,
    stages: &[StageOutput],
    clip: Option<String>,
    settings: &Settings,
) -> Result<String, Error> {
    let position = ds.videos.iter().position(|x| x.id == v.id);
    let neighbour = |i: Option<usize>| {
        let n = &ds.videos[i?];
        // Video pages are siblings in `videos/`.
        Some((format!("{}.html", n.id), n.key.clone()))
    };
    let previous = neighbour(position.and_then(|p| p.checked_sub(1)));
    let next = neighbour(position.map(|p| p + 1).filter(|&n| n < ds.videos.len()));
    let captions = ds
        .captions
        .get(&v.id)
        .map(|list| {
            list.iter()
                .map(|c| {
                    let e = &ds.entries[c.entry];
                    let scores = ds
                        .caption_scores
                        .get(&c.caption_id)
                        .map(|values| {
                            values
                                .iter()
                                .map(|s| ScoreView {
                                    key: ds.columns[s.column].key.clone(),
                                    label: ds.columns[s.column].label(),
                                    value: match s.value {
                                        Some(x) if s.failures == 0 => number(x),
                                        Some(x) => {
                                            format!(
                                                "{} ({} of {} failed)",
                                                number(x),
                                                s.failures,
                                                s.samples
                                            )
                                        }
                                        None => "failed".into(),
                                    },
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    CaptionView {
                        entry: e.name(),
                        entry_href: entry_file(ds.summary.id, &e.slug),
                        source: e.row.source.clone(),
                        text: c.text.clone(),
                        scores,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let mut runs: Vec<StageRun> = Vec::new();
    for s in stages {
        let run = ds
            .entries
            .iter()
            .find(|e| e.row.run_id == s.run_id)
            .map_or_else(|| format!("#{}", s.run_id), |e| e.row.run.clone());
        if runs.last().is_none_or(|r| r.run != run) {
            runs.push(StageRun {
                run: run.clone(),
                stages: Vec::new(),
            });
        }
        runs.last_mut()
            .expect("pushed above")
            .stages
            .push(StageView {
                stage: s.stage.clone(),
                model: s.model.clone().unwrap_or_default(),
                prompt_version: s.prompt_version.clone().unwrap_or_default(),
                lines: stage_lines(&s.value),
            });
    }
    let mut meta = Vec::new();
    if let Some(d) = v.duration_s {
        meta.push(format!("{d:.2} s"));
    }
    if let (Some(w), Some(h)) = (v.width, v.height) {
        meta.push(format!("{w}×{h}"));
    }
    if let Some(fps) = v.fps {
        meta.push(format!("{fps:.2} fps"));
    }
    if let Some(codec) = &v.codec {
        meta.push(codec.clone());
    }
    let frame_view = |i: usize, t: f64| FrameView {
        src: format!("../{}", frame_file(v.id, i)),
        time: format!("{t:.2} s"),
        width: crate::frames::THUMB,
    };
    let times: Vec<f64> = frames.as_ref().map_or_else(|_| Vec::new(), Clone::clone);
    let (frames, frames_error) = match frames {
        Ok(times) => (
            times
                .iter()
                .enumerate()
                .map(|(i, &t)| frame_view(i, t))
                .collect(),
            None,
        ),
        Err(reason) => (Vec::new(), Some(reason.to_string())),
    };
    let timeline = timeline(stages)
        .into_iter()
        .map(|s| SegmentView {
            time: format!("{}–{}", clock(s.start_s), clock(s.end_s)),
            frames: segment_frames(&times, s.start_s, s.end_s)
                .into_iter()
                .map(|i| frame_view(i, times[i]))
                .collect(),
            caption: s.caption,
        })
        .collect();
    render(
        "video",
        &VideoPage {
            layout: Layout::new(format!("{} · {}", v.key, ds.summary.name), "../", settings),
            dataset: ds.summary.name.clone(),
            dataset_href: format!("../{}", dataset_file(ds.summary.id)),
            key: v.key.clone(),
            meta: meta.join(" · "),
            tags: v.tags.join(", "),
            error: match v.status {
                VideoStatus::Failed => v.error_message.clone().unwrap_or_default(),
                VideoStatus::Ok => String::new(),
            },
            frames,
            frames_error,
            timeline,
            reference: v.reference.clone(),
            captions,
            stages: runs,
            clip,
            previous,
            next,
        },
    )
}

#[derive(Template)]
#[template(path = "methods.html")]
struct MethodsPage {
    layout: Layout,
    judges: Vec<(String, String, String)>,
    resamples: usize,
    seed: u64,
    judge_prompts: Vec<(String, String)>,
    wolf_prompts: Vec<(String, String)>,
}

pub fn methods(board: &Board, settings: &Settings) -> Result<String, Error> {
    use wolf_pipeline::wolf::prompts;
    use wolf_scorer::capscore::{LISTWISE, POINTWISE};
    let prompt =
        |name: &str, version: &str, text: &str| (format!("{name} ({version})"), text.to_owned());
    render(
        "methods",
        &MethodsPage {
            layout: Layout::new("Methods", "", settings),
            judges: board
                .judges
                .iter()
                .map(|j| {
                    (
                        label(&j.metric).to_owned(),
                        if j.judge.is_empty() {
                            "—".into()
                        } else {
                            j.judge.clone()
                        },
                        if j.prompt_version.is_empty() {
                            "—".into()
                        } else {
                            j.prompt_version.clone()
                        },
                    )
                })
                .collect(),
            resamples: RESAMPLES,
            seed: SEED,
            judge_prompts: vec![
                prompt("Pointwise", POINTWISE.version, POINTWISE.text),
                prompt("Listwise", LISTWISE.version, LISTWISE.text),
            ],
            wolf_prompts: vec![
                prompt("Frame", prompts::FRAME.version, prompts::FRAME.text),
                prompt("Cascade", prompts::CASCADE.version, prompts::CASCADE.text),
                prompt(
                    "Temporal summary",
                    prompts::SUMMARY.version,
                    prompts::SUMMARY.text,
                ),
                prompt("Motion", prompts::MOTION.version, prompts::MOTION.text),
                prompt("Video", prompts::VIDEO.version, prompts::VIDEO.text),
                prompt("Fusion", prompts::FUSION.version, prompts::FUSION.text),
                ("System".into(), prompts::SYSTEM.to_owned()),
            ],
        },
    )
}

#[derive(Template)]
#[template(path = "submit.html")]
struct SubmitPage {
    layout: Layout,
    datasets: Vec<String>,
    max_upload: String,
    /// The metadata fields: (key, label).
    meta_fields: Vec<(&'static str, &'static str)>,
    max_meta: usize,
}

/// A size in bytes for people.
pub fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else if bytes >= 1 << 10 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} bytes")
    }
}

pub fn submit(board: &Board, settings: &Settings) -> Result<String, Error> {
    render(
        "submit",
        &SubmitPage {
            layout: Layout::new("Submit", "", settings),
            datasets: board
                .datasets
                .iter()
                .map(|d| d.summary.name.clone())
                .collect(),
            max_upload: size(settings.max_upload),
            meta_fields: META_KEYS.to_vec(),
            max_meta: MAX_META_CHARS,
        },
    )
}

struct SubmissionView {
    name: String,
    href: String,
    dataset: String,
    status: &'static str,
    created: String,
    size: String,
    error: String,
    coverage: String,
}

#[derive(Template)]
#[template(path = "submissions.html")]
struct SubmissionsPage {
    layout: Layout,
    rows: Vec<SubmissionView>,
}

/// The submissions page: `rows` (newest first) with links to the scored entries.
pub fn submissions(
    board: &Board,
    rows: &[SubmissionRow],
    settings: &Settings,
) -> Result<String, Error> {
    let href = |s: &SubmissionRow| -> String {
        if s.status != SubmissionStatus::Scored {
            return String::new();
        }
        board
            .datasets
            .iter()
            .filter(|d| d.summary.name == s.dataset)
            .flat_map(|d| d.entries.iter().map(move |e| (d, e)))
            .find(|(_, e)| Some(e.row.run_id) == s.run_id)
            .map(|(d, e)| entry_file(d.summary.id, &e.slug))
            .unwrap_or_default()
    };
    render(
        "submissions",
        &SubmissionsPage {
            layout: Layout::new("Submissions", "", settings),
            rows: rows
                .iter()
                .map(|s| SubmissionView {
                    name: s.name.clone(),
                    href: href(s),
                    dataset: s.dataset.clone(),
                    status: s.status.as_str(),
                    created: s.created_at.clone(),
                    size: size(s.size_bytes.max(0) as u64),
                    error: s.error.clone().unwrap_or_default(),
                    coverage: submission_coverage(board, s),
                })
                .collect(),
        },
    )
}

/// A stored submission's coverage, and whether it is ranked (empty before it is stored).
fn submission_coverage(board: &Board, s: &SubmissionRow) -> String {
    if s.run_id.is_none() || s.captions == 0 {
        return String::new();
    }
    let least = board
        .datasets
        .iter()
        .find(|d| d.summary.name == s.dataset)
        .map_or(1.0, |d| d.options.min_coverage);
    if below_coverage(s.captions as f64 / s.videos.max(1) as f64, least) {
        format!(
            "{} / {} videos: partial, listed apart and not ranked (below {:.0}%)",
            s.captions,
            s.videos,
            least * 100.0
        )
    } else {
        format!("{} / {} videos", s.captions, s.videos)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    heading: String,
    message: String,
}

/// A page for a refused request or a missing page.
pub fn error(heading: &str, message: &str, settings: &Settings) -> Result<String, Error> {
    render(
        "error",
        &ErrorPage {
            layout: Layout::new(heading, "", settings),
            heading: heading.to_owned(),
            message: message.to_owned(),
        },
    )
}

/// A dataset's source as the page shows it: each part (`FOLDER + ANNOTATIONS`) by its
/// file name, so that no path of the machine that built the site is published.
fn source_by_name(source: &str) -> String {
    source
        .split(" + ")
        .map(|part| {
            std::path::Path::new(part)
                .file_name()
                .map_or_else(|| part.to_owned(), |n| n.to_string_lossy().into_owned())
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Who scored a column, named by role: `judge NAME` for CapScore's LLM, `embedder NAME`
/// for the embedding metrics, `reference metric` for those computed from the text alone
/// (the classic metrics, the truth).
fn scorer_role(column: &Column) -> String {
    if column.judge.is_empty() {
        "reference metric".to_owned()
    } else if column.metric.starts_with("capscore") {
        format!("judge {}", column.judge)
    } else {
        format!("embedder {}", column.judge)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_scorer_is_named_by_its_role() {
        let column = |metric: &str, judge: &str| Column {
            key: metric.to_owned(),
            metric: metric.to_owned(),
            judge: judge.to_owned(),
        };
        assert_eq!(
            scorer_role(&column("embed_sim", "minilm")),
            "embedder minilm"
        );
        assert_eq!(scorer_role(&column("capscore_quality", "gpt")), "judge gpt");
        assert_eq!(scorer_role(&column("bleu4", "")), "reference metric");
    }

    #[test]
    fn a_dataset_source_is_shown_by_its_names() {
        assert_eq!(
            source_by_name("/home/me/data/world + /home/me/data/world/annotations.json"),
            "world + annotations.json"
        );
        assert_eq!(source_by_name("clips.jsonl"), "clips.jsonl");
        assert_eq!(source_by_name("/"), "/");
    }

    use super::*;

    #[test]
    fn stage_outputs_become_lines() {
        assert_eq!(
            stage_lines(r#"{"caption": "a <b>"}"#),
            vec![(String::new(), "a <b>".to_owned())]
        );
        assert_eq!(
            stage_lines(r#"{"captions": ["x", "y"], "times": [0.25, 1.5]}"#),
            vec![
                ("0.25 s".to_owned(), "x".to_owned()),
                ("1.50 s".to_owned(), "y".to_owned())
            ]
        );
        assert_eq!(
            stage_lines("not json"),
            vec![(String::new(), "not json".to_owned())]
        );
    }

    #[test]
    fn a_caption_is_escaped_in_the_error_page() {
        let settings = Settings {
            live: false,
            admin: false,
            generated: "now".into(),
            max_upload: 10,
        };
        let html = error("Refused", "<script>alert(1)</script>", &settings).unwrap();
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
    }
}
