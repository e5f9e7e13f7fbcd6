//! The board: everything the pages show, loaded from the store in one pass.
//!
//! An entry is one (run, source) of a dataset: each source of a `wolf caption` run (the
//! fused `wolf` caption and every intermediate source that was scored) and each
//! imported entry. Its scores are summarised by `wolf_scorer::report` (per-video means
//! over samples, then the mean over videos with a 95% bootstrap interval), the same
//! numbers `wolf report` prints. A metric judged by several judges in one dataset gets
//! one column per judge.
//!
//! Entries of submissions that are not scored yet (queued, scoring, failed) are left
//! out: the submissions page shows them with their status.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use wolf_pipeline::config::LeaderboardConfig;
use wolf_pipeline::store::{
    DatasetSummary, EfficiencyRow, EntryRow, RoundRow, Store, SubmissionRow, SubmissionStatus,
    VideoRow,
};
use wolf_pipeline::wolf::worker::guard_paths;
use wolf_scorer::efficiency::tokens;
use wolf_scorer::report::{ReportLine, interval};

use crate::Error;

/// Metrics in the order pages show them, with their labels.
pub const METRICS: [(&str, &str); 20] = [
    ("truth_f1", "Truth F1"),
    ("truth_precision", "Truth precision"),
    ("truth_recall", "Truth recall"),
    ("dense_f1", "Dense F1"),
    ("dense_meteor", "Dense METEOR"),
    ("dense_precision", "Dense precision"),
    ("dense_recall", "Dense recall"),
    ("boundary_f1", "Shot boundary F1"),
    ("boundary_precision", "Shot boundary precision"),
    ("boundary_recall", "Shot boundary recall"),
    ("capscore_similarity", "CapScore similarity"),
    ("capscore_quality", "CapScore quality"),
    ("embed_sim", "Embedding similarity"),
    ("bleu1", "BLEU-1"),
    ("bleu2", "BLEU-2"),
    ("bleu3", "BLEU-3"),
    ("bleu4", "BLEU-4"),
    ("meteor", "METEOR"),
    ("rouge_l", "ROUGE-L"),
    ("cider_d", "CIDEr-D"),
];

/// The metrics of the index's tables (BLEU-1..3 are on the entry pages).
pub const INDEX_METRICS: [&str; 12] = [
    "truth_f1",
    "truth_precision",
    "dense_f1",
    "dense_meteor",
    "boundary_f1",
    "capscore_similarity",
    "capscore_quality",
    "embed_sim",
    "bleu4",
    "meteor",
    "rouge_l",
    "cider_d",
];

/// The metrics broken down by tag on a dataset's page, when present.
pub const TAG_METRICS: [&str; 4] = ["truth_f1", "capscore_similarity", "embed_sim", "cider_d"];

/// A metric's label (its name when unknown).
pub fn label(metric: &str) -> &str {
    METRICS
        .iter()
        .find(|(m, _)| *m == metric)
        .map_or(metric, |(_, l)| l)
}

fn metric_rank(metric: &str) -> usize {
    METRICS
        .iter()
        .position(|(m, _)| *m == metric)
        .unwrap_or(METRICS.len())
}

/// One score column: a metric, with its judge when the dataset has several.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Column {
    /// `metric`, or `metric:judge` when the metric has several judges here.
    pub key: String,
    pub metric: String,
    pub judge: String,
}

impl Column {
    pub fn label(&self) -> String {
        if self.key == self.metric {
            label(&self.metric).to_owned()
        } else {
            format!("{} ({})", label(&self.metric), self.judge)
        }
    }
}

/// How an entry was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A source of a `wolf caption` run.
    Wolf,
    /// An imported entry (`wolf import` or a submission).
    Imported,
}

/// One entry of a dataset.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Unique within the dataset; names the entry's page.
    pub slug: String,
    pub row: EntryRow,
    pub kind: EntryKind,
    /// Summary per column key.
    pub lines: BTreeMap<String, ReportLine>,
    /// (video id, value) per column key: the mean of the video's caption's samples.
    pub per_video: BTreeMap<String, Vec<(i64, f64)>>,
    pub captions: usize,
    pub mean_words: f64,
    pub parse_failed: usize,
    pub failed: usize,
    /// How the fusion guard reached its captions (`fused 37, fused_retry 1, ...`);
    /// empty for a source the guard does not check.
    pub guard_paths: String,
}

impl Entry {
    /// The name the tables show: the run, and the source when it differs.
    pub fn name(&self) -> String {
        if self.row.source == self.row.run {
            self.row.run.clone()
        } else {
            format!("{} / {}", self.row.run, self.row.source)
        }
    }

    pub fn mean(&self, key: &str) -> Option<f64> {
        self.lines.get(key).and_then(|l| l.mean)
    }
}

/// A caption of a video, with its entry and its scores.
#[derive(Debug, Clone)]
pub struct VideoCaption {
    /// Index into the dataset's entries.
    pub entry: usize,
    pub caption_id: i64,
    pub text: String,
}

/// A curve's point: (mean words, mean score, captions) of one sentence count.
pub type CurvePoint = (f64, f64, i64);

/// One token-efficiency curve.
#[derive(Debug, Clone)]
pub struct Curve {
    pub entry: usize,
    pub metric: String,
    pub points: Vec<CurvePoint>,
}

/// One tag's row of a breakdown: per entry, the mean over the tag's videos.
#[derive(Debug, Clone)]
pub struct TagRow {
    pub tag: String,
    pub videos: usize,
    pub means: Vec<Option<f64>>,
}

/// A breakdown by tag of one column.
#[derive(Debug, Clone)]
pub struct Breakdown {
    pub column: Column,
    pub rows: Vec<TagRow>,
}

/// A dataset as the pages show it.
#[derive(Debug, Clone)]
pub struct DatasetBoard {
    pub summary: DatasetSummary,
    pub options: LeaderboardConfig,
    pub videos: Vec<VideoRow>,
    pub entries: Vec<Entry>,
    /// Every score column present, in page order.
    pub columns: Vec<Column>,
    /// Captions by video id, in entry order.
    pub captions: HashMap<i64, Vec<VideoCaption>>,
    /// Per caption id, its value (the mean of its ok samples) of each column.
    pub caption_scores: HashMap<i64, Vec<CaptionValue>>,
    pub breakdowns: Vec<Breakdown>,
    pub curves: Vec<Curve>,
}

/// One caption's value of one column.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionValue {
    /// Index into the dataset's columns.
    pub column: usize,
    pub value: Option<f64>,
    pub samples: usize,
    pub failures: usize,
}

impl DatasetBoard {
    /// The column that ranks the entries: the configured primary metric where the
    /// dataset has it, else `truth_f1` where the dataset has the truth, else
    /// `capscore_quality` where a judge scored it, else `embed_sim`, else the first
    /// column of the index.
    pub fn primary(&self) -> Option<&Column> {
        primary_column(&self.columns, self.options.primary.as_deref())
    }

    /// The dataset's readable videos (those an entry can caption).
    pub fn readable(&self) -> usize {
        readable(&self.summary)
    }

    /// The share of the readable videos an entry captions.
    pub fn coverage(&self, e: &Entry) -> f64 {
        coverage(&self.summary, e)
    }

    /// Whether an entry covers too few videos to be ranked.
    pub fn is_partial(&self, e: &Entry) -> bool {
        is_partial(&self.summary, &self.options, e)
    }

    /// Each entry's rank on [`DatasetBoard::primary`], as LMSYS ranks models: 1 + the
    /// number of ranked entries whose interval lies wholly above its own (ties share a
    /// rank); `None` for an entry without that score or below the least coverage.
    pub fn ranks(&self) -> Vec<Option<usize>> {
        let Some(primary) = self.primary() else {
            return vec![None; self.entries.len()];
        };
        let bounds: Vec<Option<(f64, f64)>> = self
            .entries
            .iter()
            .map(|e| {
                if self.is_partial(e) {
                    return None;
                }
                let line = e.lines.get(&primary.key)?;
                Some((line.low?, line.high?))
            })
            .collect();
        rank_by_intervals(&bounds)
    }

    pub fn index_columns(&self) -> Vec<&Column> {
        self.columns
            .iter()
            .filter(|c| INDEX_METRICS.contains(&c.metric.as_str()))
            .collect()
    }

    pub fn entry(&self, slug: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.slug == slug)
    }

    pub fn video(&self, id: i64) -> Option<&VideoRow> {
        self.videos.iter().find(|v| v.id == id)
    }
}

/// A judge (or embedder) that produced scores, with its prompt version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct JudgeUse {
    pub metric: String,
    pub judge: String,
    pub prompt_version: String,
}

/// Everything the pages show.
#[derive(Debug, Clone, Default)]
pub struct Board {
    pub datasets: Vec<DatasetBoard>,
    pub judges: Vec<JudgeUse>,
    pub submissions: Vec<SubmissionRow>,
    /// The recaption loops' rounds (`wolf recaption loop`), by loop and round.
    pub rounds: Vec<RoundRow>,
}

impl Board {
    /// Loads every dataset that has videos.
    pub async fn load(store: &Store, options: &LeaderboardConfig) -> Result<Self, Error> {
        let submissions = store.submissions().await?;
        // By name: a submission's row exists (queued) before its entry is stored.
        let hidden: HashSet<(String, String)> = submissions
            .iter()
            .filter(|s| {
                matches!(
                    s.status,
                    SubmissionStatus::Queued | SubmissionStatus::Scoring | SubmissionStatus::Failed
                )
            })
            .map(|s| (s.dataset.clone(), s.name.clone()))
            .collect();
        let efficiency = store.efficiency(None).await?;
        let mut datasets = Vec::new();
        let mut judges = BTreeSet::new();
        for summary in store.datasets().await? {
            let board =
                load_dataset(store, summary, options, &hidden, &efficiency, &mut judges).await?;
            datasets.push(board);
        }
        Ok(Self {
            datasets,
            judges: judges.into_iter().collect(),
            submissions,
            rounds: store.rounds().await?,
        })
    }

    pub fn dataset(&self, id: i64) -> Option<&DatasetBoard> {
        self.datasets.iter().find(|d| d.summary.id == id)
    }

    /// The dataset holding video `id`.
    pub fn dataset_of_video(&self, id: i64) -> Option<&DatasetBoard> {
        self.datasets.iter().find(|d| d.video(id).is_some())
    }
}

async fn load_dataset(
    store: &Store,
    summary: DatasetSummary,
    options: &LeaderboardConfig,
    hidden: &HashSet<(String, String)>,
    efficiency: &[EfficiencyRow],
    judges: &mut BTreeSet<JudgeUse>,
) -> Result<DatasetBoard, Error> {
    let videos = store.videos(summary.id).await?;
    let rows: Vec<EntryRow> = store
        .entries(summary.id)
        .await?
        .into_iter()
        .filter(|e| !hidden.contains(&(summary.name.clone(), e.run.clone())))
        .collect();
    let index: HashMap<(i64, String), usize> = rows
        .iter()
        .enumerate()
        .map(|(i, e)| ((e.run_id, e.source.clone()), i))
        .collect();

    // Captions, by entry and by video.
    let mut captions: HashMap<i64, Vec<VideoCaption>> = HashMap::new();
    let mut caption_entry: HashMap<i64, (usize, i64)> = HashMap::new();
    let mut words: Vec<(usize, usize)> = vec![(0, 0); rows.len()];
    for c in store.dataset_captions(summary.id).await? {
        let Some(&entry) = index.get(&(c.run_id, c.source.clone())) else {
            continue;
        };
        words[entry].0 += tokens(&c.caption);
        words[entry].1 += 1;
        caption_entry.insert(c.caption_id, (entry, c.video_id));
        captions.entry(c.video_id).or_default().push(VideoCaption {
            entry,
            caption_id: c.caption_id,
            text: c.caption,
        });
    }
    for list in captions.values_mut() {
        list.sort_by_key(|c| c.entry);
    }

    let folded = fold_scores(store, summary.id, &caption_entry, rows.len(), judges).await?;
    let Folded {
        columns,
        lines,
        per_video,
        caption_scores,
    } = folded;

    let mut slugs = HashSet::new();
    let mut entries: Vec<Entry> = rows
        .into_iter()
        .zip(lines)
        .zip(per_video)
        .zip(words)
        .map(|(((row, lines), per_video), (words, count))| {
            let (parse_failed, failed) = lines
                .values()
                .fold((0, 0), |(p, f), l| (p + l.parse_failed, f + l.failed));
            let kind = if row.config.starts_with("imported from ") {
                EntryKind::Imported
            } else {
                EntryKind::Wolf
            };
            Entry {
                slug: unique_slug(&row, &mut slugs),
                kind,
                row,
                lines,
                per_video,
                captions: count,
                mean_words: if count > 0 {
                    words as f64 / count as f64
                } else {
                    0.0
                },
                parse_failed,
                failed,
                guard_paths: String::new(),
            }
        })
        .collect();
    for entry in entries.iter_mut().filter(|e| e.kind == EntryKind::Wolf) {
        let paths = guard_paths(store, entry.row.run_id, &entry.row.source).await?;
        if paths.keys().any(|p| p != "unchecked") {
            let counts: Vec<String> = paths.iter().map(|(p, n)| format!("{p} {n}")).collect();
            entry.guard_paths = counts.join(", ");
        }
    }

    // Ranked entries first, then the partial ones; each part best first on the primary
    // metric. The caption lists keep pointing at the right entries through a remap.
    let partial = |e: &Entry| is_partial(&summary, options, e);
    let rank_key = primary_column(&columns, options.primary.as_deref()).map(|c| c.key.clone());
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = rank_key
            .as_ref()
            .map_or((None, None), |k| (entries[a].mean(k), entries[b].mean(k)));
        partial(&entries[a])
            .cmp(&partial(&entries[b]))
            .then_with(|| y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal))
            .then_with(|| y.is_some().cmp(&x.is_some()))
            .then_with(|| entries[a].slug.cmp(&entries[b].slug))
    });
    let remap: HashMap<usize, usize> = order
        .iter()
        .enumerate()
        .map(|(new, &old)| (old, new))
        .collect();
    let mut taken: Vec<Option<Entry>> = entries.drain(..).map(Some).collect();
    entries = order
        .iter()
        .map(|&old| {
            taken[old]
                .take()
                .expect("each entry moves once; this is a bug")
        })
        .collect();
    for list in captions.values_mut() {
        for c in list.iter_mut() {
            c.entry = remap[&c.entry];
        }
        list.sort_by_key(|c| c.entry);
    }

    let breakdowns = breakdowns(&videos, &entries, &columns);
    let run_entries: HashMap<(&str, &str), usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| ((e.row.run.as_str(), e.row.source.as_str()), i))
        .collect();
    let mut curves: BTreeMap<(usize, String), Vec<CurvePoint>> = BTreeMap::new();
    for e in efficiency {
        if let Some(&entry) = run_entries.get(&(e.run.as_str(), e.source.as_str())) {
            curves.entry((entry, e.metric.clone())).or_default().push((
                e.mean_tokens,
                e.mean_score,
                e.count,
            ));
        }
    }
    let curves = curves
        .into_iter()
        .map(|((entry, metric), points)| Curve {
            entry,
            metric,
            points,
        })
        .collect();

    Ok(DatasetBoard {
        summary,
        options: options.clone(),
        videos,
        entries,
        columns,
        captions,
        caption_scores,
        breakdowns,
        curves,
    })
}

/// Pages of scores fetched at once while folding.
const SCORE_PAGE: i64 = 50_000;

/// A dataset's scores folded into columns, entry summaries and caption values.
struct Folded {
    columns: Vec<Column>,
    lines: Vec<BTreeMap<String, ReportLine>>,
    per_video: Vec<BTreeMap<String, Vec<(i64, f64)>>>,
    caption_scores: HashMap<i64, Vec<CaptionValue>>,
}

/// One (entry, column)'s tally while folding.
#[derive(Default)]
struct Tally {
    per_video: Vec<(i64, f64)>,
    parse_failed: usize,
    failed: usize,
}

/// Reads a dataset's scores page by page (in caption order) and folds them: per
/// caption and column the mean of its ok samples, per entry and column the per-video
/// values and the failures, then each entry's summary (`wolf_scorer::report`'s
/// interval). Memory holds one page of rows, not the dataset's millions.
async fn fold_scores(
    store: &Store,
    dataset_id: i64,
    caption_entry: &HashMap<i64, (usize, i64)>,
    entries: usize,
    judges: &mut BTreeSet<JudgeUse>,
) -> Result<Folded, Error> {
    // Provisional column per (metric, judge), in order of discovery.
    let mut kinds: HashMap<(String, String), usize> = HashMap::new();
    let mut tallies: HashMap<(usize, usize), Tally> = HashMap::new();
    let mut caption_scores: HashMap<i64, Vec<CaptionValue>> = HashMap::new();
    // The caption being folded: per provisional column (sum, ok samples, failures).
    let mut current: Option<i64> = None;
    let mut open: BTreeMap<usize, (f64, usize, usize)> = BTreeMap::new();
    let mut flush = |caption: i64,
                     open: &mut BTreeMap<usize, (f64, usize, usize)>,
                     tallies: &mut HashMap<(usize, usize), Tally>| {
        let (entry, video) = caption_entry[&caption];
        let values = caption_scores.entry(caption).or_default();
        for (&column, &(sum, ok, failures)) in open.iter() {
            let value = (ok > 0).then(|| sum / ok as f64);
            if let Some(v) = value {
                tallies
                    .entry((entry, column))
                    .or_default()
                    .per_video
                    .push((video, v));
            }
            values.push(CaptionValue {
                column,
                value,
                samples: ok + failures,
                failures,
            });
        }
        open.clear();
    };
    let mut after = (0, 0);
    loop {
        let page = store
            .dataset_scores_page(dataset_id, after, SCORE_PAGE)
            .await?;
        let Some(last) = page.last() else {
            break;
        };
        after = (last.caption_id, last.id);
        for s in page {
            let Some(&(entry, _)) = caption_entry.get(&s.caption_id) else {
                continue;
            };
            if current != Some(s.caption_id) {
                if let Some(c) = current {
                    flush(c, &mut open, &mut tallies);
                }
                current = Some(s.caption_id);
            }
            let next = kinds.len();
            let column = *kinds
                .entry((s.metric.clone(), s.judge.clone()))
                .or_insert_with(|| {
                    judges.insert(JudgeUse {
                        metric: s.metric.clone(),
                        judge: s.judge.clone(),
                        prompt_version: s.prompt_version.clone(),
                    });
                    next
                });
            let slot = open.entry(column).or_default();
            let tally = tallies.entry((entry, column)).or_default();
            match (s.status.as_str(), s.value) {
                ("ok", Some(v)) => {
                    slot.0 += v;
                    slot.1 += 1;
                }
                ("parse_failed", _) => {
                    slot.2 += 1;
                    tally.parse_failed += 1;
                }
                _ => {
                    slot.2 += 1;
                    tally.failed += 1;
                }
            }
        }
    }
    if let Some(c) = current {
        flush(c, &mut open, &mut tallies);
    }

    // Final columns: a metric with several judges here gets one column per judge.
    let mut judges_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (metric, _) in kinds.keys() {
        *judges_of.entry(metric).or_default() += 1;
    }
    let mut columns: Vec<(Column, usize)> = kinds
        .iter()
        .map(|((metric, judge), &provisional)| {
            let key = if judges_of[metric.as_str()] > 1 {
                format!("{metric}:{judge}")
            } else {
                metric.clone()
            };
            let column = Column {
                key,
                metric: metric.clone(),
                judge: judge.clone(),
            };
            (column, provisional)
        })
        .collect();
    columns.sort_by(|a, b| {
        (metric_rank(&a.0.metric), &a.0.key).cmp(&(metric_rank(&b.0.metric), &b.0.key))
    });
    let remap: HashMap<usize, usize> = columns
        .iter()
        .enumerate()
        .map(|(final_index, (_, provisional))| (*provisional, final_index))
        .collect();
    let columns: Vec<Column> = columns.into_iter().map(|(c, _)| c).collect();
    for values in caption_scores.values_mut() {
        for v in values.iter_mut() {
            v.column = remap[&v.column];
        }
        values.sort_by_key(|v| v.column);
    }

    let mut lines: Vec<BTreeMap<String, ReportLine>> = vec![BTreeMap::new(); entries];
    let mut per_video: Vec<BTreeMap<String, Vec<(i64, f64)>>> = vec![BTreeMap::new(); entries];
    // The bootstrap intervals are most of the fold's time on large datasets: one
    // thread per core.
    let tallies: Vec<((usize, usize), Tally)> = tallies.into_iter().collect();
    let cores = wolf_pipeline::process::cores();
    let chunk = tallies.len().div_ceil(cores).max(1);
    let summaries: Vec<Option<(f64, f64, f64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = tallies
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(_, t)| {
                            let values: Vec<f64> = t.per_video.iter().map(|p| p.1).collect();
                            interval(&values)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .expect("an interval thread panicked; this is a bug")
            })
            .collect()
    });
    for (((entry, provisional), tally), summary) in tallies.into_iter().zip(summaries) {
        let column = &columns[remap[&provisional]];
        lines[entry].insert(
            column.key.clone(),
            ReportLine {
                dataset: String::new(),
                run: String::new(),
                source: String::new(),
                metric: column.metric.clone(),
                judge: column.judge.clone(),
                mean: summary.map(|i| i.0),
                low: summary.map(|i| i.1),
                high: summary.map(|i| i.2),
                count: tally.per_video.len(),
                parse_failed: tally.parse_failed,
                failed: tally.failed,
            },
        );
        per_video[entry].insert(column.key.clone(), tally.per_video);
    }
    Ok(Folded {
        columns,
        lines,
        per_video,
        caption_scores,
    })
}

/// Per tag and entry, the mean over the tag's videos of the entry's per-video values.
fn breakdowns(videos: &[VideoRow], entries: &[Entry], columns: &[Column]) -> Vec<Breakdown> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut tags_of: HashMap<i64, &[String]> = HashMap::new();
    for v in videos {
        for t in &v.tags {
            *counts.entry(t).or_default() += 1;
        }
        tags_of.insert(v.id, &v.tags);
    }
    if counts.is_empty() {
        return Vec::new();
    }
    let tag_index: HashMap<&str, usize> = counts.keys().enumerate().map(|(i, t)| (*t, i)).collect();
    columns
        .iter()
        .filter(|c| TAG_METRICS.contains(&c.metric.as_str()))
        .map(|column| {
            // (sum, n) per tag and entry.
            let mut sums = vec![vec![(0.0, 0usize); entries.len()]; counts.len()];
            for (e, entry) in entries.iter().enumerate() {
                for (video, value) in entry.per_video.get(&column.key).into_iter().flatten() {
                    for tag in tags_of.get(video).copied().unwrap_or_default() {
                        let slot = &mut sums[tag_index[tag.as_str()]][e];
                        slot.0 += value;
                        slot.1 += 1;
                    }
                }
            }
            Breakdown {
                column: column.clone(),
                rows: counts
                    .iter()
                    .zip(sums)
                    .map(|((tag, &videos), sums)| TagRow {
                        tag: (*tag).to_owned(),
                        videos,
                        means: sums
                            .into_iter()
                            .map(|(sum, n)| (n > 0).then(|| sum / n as f64))
                            .collect(),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A file-name-safe slug of the entry's name, unique among `taken`.
fn unique_slug(row: &EntryRow, taken: &mut HashSet<String>) -> String {
    let name = if row.source == row.run {
        row.run.clone()
    } else {
        format!("{}-{}", row.run, row.source)
    };
    let mut base: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    base = base.trim_matches('-').to_owned();
    base.truncate(60);
    if base.is_empty() {
        base = "entry".into();
    }
    let mut slug = base.clone();
    let mut n = 2;
    while !taken.insert(slug.clone()) {
        slug = format!("{base}-{n}");
        n += 1;
    }
    slug
}

/// 1 + the number of intervals whose lower bound is above each interval's upper bound.
fn readable(summary: &DatasetSummary) -> usize {
    (summary.videos - summary.failed).max(0) as usize
}

fn coverage(summary: &DatasetSummary, e: &Entry) -> f64 {
    e.captions as f64 / readable(summary).max(1) as f64
}

fn is_partial(summary: &DatasetSummary, options: &LeaderboardConfig, e: &Entry) -> bool {
    below_coverage(coverage(summary, e), options.min_coverage)
}

/// Whether a share of a dataset's videos is below the least coverage of a ranked entry.
pub fn below_coverage(share: f64, least: f64) -> bool {
    // A hair of slack, so that 1.0 means every video however the share rounds.
    share + 1e-9 < least
}

/// The primary column among `columns` (see [`DatasetBoard::primary`]).
fn primary_column<'a>(columns: &'a [Column], configured: Option<&str>) -> Option<&'a Column> {
    configured
        .into_iter()
        .chain(["truth_f1", "capscore_quality", "embed_sim"])
        .find_map(|m| columns.iter().find(|c| c.metric == m))
        .or_else(|| {
            columns
                .iter()
                .find(|c| INDEX_METRICS.contains(&c.metric.as_str()))
        })
}

pub fn rank_by_intervals(bounds: &[Option<(f64, f64)>]) -> Vec<Option<usize>> {
    bounds
        .iter()
        .map(|own| {
            let (_, high) = (*own)?;
            let above = bounds
                .iter()
                .flatten()
                .filter(|(low, _)| *low > high)
                .count();
            Some(1 + above)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// Overlapping intervals share a rank; an entry is below every entry whose interval
    /// lies wholly above its own.
    #[test]
    fn ranks_account_for_overlapping_intervals() {
        let bounds = [
            Some((0.80, 0.90)),
            Some((0.78, 0.88)),
            Some((0.60, 0.70)),
            None,
            Some((0.50, 0.79)),
        ];
        assert_eq!(
            rank_by_intervals(&bounds),
            [Some(1), Some(1), Some(3), None, Some(2)]
        );
    }

    use super::*;

    fn row(run: &str, source: &str) -> EntryRow {
        EntryRow {
            run_id: 1,
            run: run.into(),
            source: source.into(),
            config: String::new(),
            status: "done".into(),
            created_at: String::new(),
            models: Vec::new(),
            prompt_versions: Vec::new(),
            meta: Vec::new(),
        }
    }

    #[test]
    fn slugs_are_safe_and_unique() {
        let mut taken = HashSet::new();
        assert_eq!(unique_slug(&row("demo", "wolf"), &mut taken), "demo-wolf");
        assert_eq!(unique_slug(&row("demo", "wolf"), &mut taken), "demo-wolf-2");
        assert_eq!(
            unique_slug(&row("x", "frame-captioner:middle"), &mut taken),
            "x-frame-captioner-middle"
        );
        assert_eq!(
            unique_slug(&row("../../etc", "../../etc"), &mut taken),
            "etc"
        );
        assert_eq!(unique_slug(&row("<>", "<>"), &mut taken), "entry");
    }
}
