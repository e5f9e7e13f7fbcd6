//! The scoring run: a run's (or an imported entry's) captions scored with the metrics
//! asked for, each stored in the store's `scores` table. What `wolf score`, the demo,
//! the leaderboard's submissions, the recaption loop's held-out check and the benchmarks
//! all call; they print, this module computes and stores.
//!
//! Threads: the judge keeps a bounded number of requests in flight on the caller's async
//! runtime; the classic metrics run on a blocking thread; embedders batch in their
//! backend.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use wolf_pipeline::config::{Choices, ConfigError, Plan, ScoreConfig};
use wolf_pipeline::models::{ModelError, ModelSet, ModelUse, PreflightError, Role};
use wolf_pipeline::progress::Progress;
use wolf_pipeline::store::{NewScore, ScoringItem, Store, StoreError};
use wolf_pipeline::wolf::model_identity;

use crate::judge::{JudgeReport, JudgeSettings, Mode, judge};
use crate::similarity::cosine;
use crate::truth::{TruthError, WorldTruth};

/// A scoring run that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error("CapScore needs a judge: `--judge NAME` or `[score] judge` names a chat LLM entry")]
    NoJudge,
    #[error("unknown metric `{0}`: use capscore, embed_sim, classic, efficiency, truth, dense")]
    UnknownMetric(String),
    #[error("the truth metric needs the dataset's truth: {0}")]
    Truth(#[from] TruthError),
    #[error("the truth metric needs a dataset folder with a `boxes.json`")]
    NoTruth,
    #[error("the classic metrics stopped: {0}")]
    Classic(#[source] tokio::task::JoinError),
    #[error("the dense metric needs timed references: {0}")]
    Dense(#[from] crate::dense::DenseError),
    #[error("the dense metric needs a dataset folder with a `dense.json` (timed references)")]
    NoDense,
}

impl ScoreError {
    /// A stable label of the error's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Store(e) => e.kind(),
            Self::Config(_) => "config",
            Self::Model(e) => e.kind.as_str(),
            Self::Preflight(e) => e.kind(),
            Self::NoJudge => "no_judge",
            Self::UnknownMetric(_) => "unknown_metric",
            Self::Classic(_) => "panic",
            Self::Truth(e) => e.kind(),
            Self::NoTruth => "no_truth",
            Self::Dense(_) | Self::NoDense => "no_dense",
        }
    }
}

/// A metric family that a scoring run computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// CapScore with an LLM judge.
    Capscore,
    /// Cosine similarity of caption and reference embeddings.
    EmbedSim,
    /// BLEU-1..4, METEOR, ROUGE-L, CIDEr-D.
    Classic,
    /// Token-efficiency curves with the embedder.
    Efficiency,
    /// Precision, recall and F1 of the facts stated against the world's truth.
    Truth,
    /// ActivityNet's dense-captioning scores against timed references.
    Dense,
}

impl Metric {
    /// The metrics a scoring run computes: those `asked` for (None: `embed_sim` and the
    /// classic metrics, and CapScore when a judge is named), CapScore only with a
    /// judge. The flag says that CapScore was asked for, or would have been a default,
    /// and is left out for want of a judge.
    pub fn with_judge(asked: Option<Vec<Metric>>, judge: bool) -> (Vec<Metric>, bool) {
        let mut metrics =
            asked.unwrap_or_else(|| vec![Metric::EmbedSim, Metric::Classic, Metric::Capscore]);
        let wanted = metrics.contains(&Metric::Capscore);
        if !judge {
            metrics.retain(|m| *m != Metric::Capscore);
        }
        (metrics, wanted && !judge)
    }
}

impl FromStr for Metric {
    type Err = ScoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "capscore" => Ok(Self::Capscore),
            "embed_sim" => Ok(Self::EmbedSim),
            "classic" => Ok(Self::Classic),
            "efficiency" => Ok(Self::Efficiency),
            "truth" => Ok(Self::Truth),
            "dense" => Ok(Self::Dense),
            other => Err(ScoreError::UnknownMetric(other.to_owned())),
        }
    }
}

/// How a CapScore pass runs.
#[derive(Debug, Clone)]
pub struct JudgeOptions {
    pub mode: Mode,
    pub samples: usize,
    pub temperature: f32,
    pub parse_retries: usize,
    pub concurrency: usize,
}

impl JudgeOptions {
    /// A config's `[score]` judging settings (the demo's and the leaderboard's).
    pub fn from_config(score: &ScoreConfig) -> Self {
        Self {
            mode: match score.mode.as_str() {
                "listwise" => Mode::Listwise,
                _ => Mode::Pointwise,
            },
            samples: score.samples,
            temperature: if score.samples > 1 { 0.7 } else { 0.0 },
            parse_retries: 2,
            concurrency: 4,
        }
    }
}

/// What to score and with which models.
#[derive(Debug, Clone)]
pub struct ScoreSettings {
    pub metrics: Vec<Metric>,
    /// The judge's entry, for [`Metric::Capscore`] (which needs one).
    pub judge: Option<String>,
    pub judge_options: JudgeOptions,
    /// The embedder's entry, for [`Metric::EmbedSim`] and [`Metric::Efficiency`].
    pub embedder: String,
    /// Where the judge and the embedder were named: a flag (`--judge`) or a config key
    /// (`[score] judge`), for the preflight's messages.
    pub judge_by: String,
    pub embedder_by: String,
    /// Check the judge and the embedder before anything is scored
    /// ([`ModelSet::preflight`]).
    pub preflight: bool,
    /// The run whose efficiency curves are stored ([`Metric::Efficiency`] only).
    pub run_id: Option<i64>,
    /// The dataset's folder, whose `boxes.json` is the truth ([`Metric::Truth`] only).
    pub truth_folder: Option<std::path::PathBuf>,
    /// Judge requests (or cache reads) finished, for the binary's bar.
    pub judge_progress: Arc<Progress>,
}

impl ScoreSettings {
    /// The config's `[score]` section: `embed_sim` and the classic metrics, and CapScore
    /// when it names a judge (the demo's, the leaderboard's and the recaption loop's).
    pub fn from_config(score: &ScoreConfig) -> Self {
        let mut metrics = vec![Metric::EmbedSim, Metric::Classic];
        if score.judge.is_some() {
            metrics.push(Metric::Capscore);
        }
        Self {
            metrics,
            judge: score.judge.clone(),
            judge_options: JudgeOptions::from_config(score),
            embedder: score.embedder.clone(),
            judge_by: "[score] judge".into(),
            embedder_by: "[score] embedder".into(),
            preflight: false,
            run_id: None,
            truth_folder: None,
            judge_progress: Arc::default(),
        }
    }

    /// `wolf score`'s settings: the plan's `[score]` (the command line's `choices`
    /// applied by [`Config::plan_with`]), the metrics `asked` for (None: the defaults,
    /// CapScore only with a judge) and what named each model, for the preflight's
    /// messages. The flag says that CapScore was wanted and is left out for want of a
    /// judge.
    ///
    /// [`Config::plan_with`]: wolf_pipeline::config::Config::plan_with
    pub fn chosen(
        plan: &Plan,
        choices: &Choices,
        asked: Option<Vec<Metric>>,
        judge_options: JudgeOptions,
    ) -> Result<(Self, bool), ScoreError> {
        let (metrics, no_judge) = Metric::with_judge(asked, plan.score.judge.is_some());
        if metrics.is_empty() {
            return Err(ScoreError::NoJudge);
        }
        let by =
            |flag: bool, flag_name: &str, key: &str| if flag { flag_name } else { key }.to_owned();
        let settings = Self {
            metrics,
            judge: plan.score.judge.clone(),
            judge_options,
            embedder: plan.score.embedder.clone(),
            judge_by: by(choices.judge.is_some(), "--judge", "[score] judge"),
            embedder_by: by(choices.embedder.is_some(), "--embedder", "[score] embedder"),
            preflight: true,
            run_id: None,
            truth_folder: None,
            judge_progress: Arc::default(),
        };
        Ok((settings, no_judge))
    }

    /// The truth metric too, when the dataset's folder (`source`, as added) has a
    /// `boxes.json`, and the dense one when it has a `dense.json`.
    pub fn with_truth_of(mut self, source: &str) -> Self {
        let folder = crate::truth::folder_of(source);
        for (file, metric) in [
            (wolf_pipeline::world::BOXES_FILE, Metric::Truth),
            (crate::dense::DENSE_FILE, Metric::Dense),
        ] {
            if folder.join(file).is_file() && !self.metrics.contains(&metric) {
                self.metrics.push(metric);
            }
        }
        self.truth_folder = Some(folder);
        self
    }
}

/// What a scoring run did, metric by metric (None: not asked for).
#[derive(Debug, Clone, Default)]
pub struct ScoreSummary {
    /// Captions given `embed_sim`.
    pub embed_sim: Option<usize>,
    /// Captions given the classic metrics.
    pub classic: Option<usize>,
    /// Efficiency curve points stored.
    pub efficiency: Option<usize>,
    /// Captions given the truth metric, and those whose video the truth lacks.
    pub truth: Option<(usize, usize)>,
    /// Captions given the dense metric, and those whose video has no timed references.
    pub dense: Option<(usize, usize)>,
    /// Captions given the shot-boundary scores (of videos the run cut at their shots and
    /// whose true transitions are known).
    pub boundaries: Option<usize>,
    /// The CapScore pass, with the judge's settings.
    pub capscore: Option<(JudgeSettings, JudgeReport)>,
}

impl ScoreSummary {
    /// One line per metric family that was scored (what `wolf score` prints).
    pub fn lines(&self, settings: &ScoreSettings) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(n) = self.embed_sim {
            lines.push(format!(
                "embed_sim: {n} captions with `{}`",
                settings.embedder
            ));
        }
        if let Some(n) = self.classic {
            lines.push(format!(
                "classic: {n} captions (bleu1-4, meteor, rouge_l, cider_d)"
            ));
        }
        if let Some(points) = self.efficiency {
            lines.push(format!(
                "efficiency: {points} curve points with `{}` (`wolf report --efficiency`)",
                settings.embedder
            ));
        }
        if let Some((ok, failed)) = self.truth {
            let failed = if failed > 0 {
                format!(", {failed} failed: their video is not in the truth")
            } else {
                String::new()
            };
            lines.push(format!(
                "truth: {ok} captions (truth_precision, truth_recall, truth_f1){failed}"
            ));
        }
        if let Some((ok, failed)) = self.dense {
            lines.push(format!(
                "dense: {ok} captions (dense_precision, dense_recall, dense_meteor, dense_f1; mean over tIoU 0.3, 0.5, 0.7, 0.9){}",
                if failed > 0 { format!(", {failed} failed: their video has no timed references") } else { String::new() }
            ));
        }
        if let Some(n) = self.boundaries {
            lines.push(format!(
                "boundaries: {n} captions of videos cut at their shots (boundary_precision, boundary_recall, boundary_f1 at ±{} frames)",
                crate::dense::BOUNDARY_TOLERANCE
            ));
        }
        if let Some((judge, report)) = &self.capscore {
            lines.push(format!(
                "capscore ({}, judge `{}`, {} sample(s)): {} ok, {} parse_failed, {} failed; {} judge requests, {} from the cache",
                judge.mode.as_str(),
                judge.judge,
                judge.samples,
                report.ok,
                report.parse_failed,
                report.failed,
                report.calls,
                report.cached
            ));
        }
        lines
    }
}

/// Scores `items` with every metric of `settings`, storing each score; the models are
/// checked against `plan` (and, with [`ScoreSettings::preflight`], tried) before the
/// first is computed.
pub async fn score_items(
    store: &Store,
    plan: &Plan,
    items: &[ScoringItem],
    settings: &ScoreSettings,
) -> Result<ScoreSummary, ScoreError> {
    let models = ModelSet::new(plan.models.clone());
    score_items_with(store, plan, &models, items, settings).await
}

/// Scores run `run` with the config's `[score]` metrics and the truth of the dataset
/// folder `folder` (`boxes.json`, `dense.json`, `shots.json`, where present): the run's
/// id, the settings and what was scored (`wolf demo`'s scoring).
pub async fn score_run_with_truth(
    store: &Store,
    plan: &Plan,
    run: &str,
    folder: &std::path::Path,
) -> Result<(i64, ScoreSettings, ScoreSummary), ScoreError> {
    let run_id = store.run(run).await?.id;
    let items = store.scoring_items(run_id).await?;
    let settings =
        ScoreSettings::from_config(&plan.score).with_truth_of(&folder.display().to_string());
    let summary = score_items(store, plan, &items, &settings).await?;
    Ok((run_id, settings, summary))
}

/// [`score_items`] with models the caller built already (the recaption loop's, whose
/// embedder its preflight loaded).
pub async fn score_items_with(
    store: &Store,
    plan: &Plan,
    models: &ModelSet,
    items: &[ScoringItem],
    settings: &ScoreSettings,
) -> Result<ScoreSummary, ScoreError> {
    let wants = |m: Metric| settings.metrics.contains(&m);
    let mut uses = Vec::new();
    if wants(Metric::Capscore) {
        let judge = settings.judge.as_deref().ok_or(ScoreError::NoJudge)?;
        plan.model_for(judge, Role::Chat)?;
        uses.push(ModelUse::named(&settings.judge_by, judge, Role::Chat));
    }
    if wants(Metric::EmbedSim) || wants(Metric::Efficiency) {
        plan.model_for(&settings.embedder, Role::Embedder)?;
        uses.push(ModelUse::named(
            &settings.embedder_by,
            &settings.embedder,
            Role::Embedder,
        ));
    }
    if settings.preflight {
        models.preflight(&uses).await?;
    }
    let mut summary = ScoreSummary::default();
    if wants(Metric::EmbedSim) {
        summary.embed_sim = Some(embed_sim(store, models, &settings.embedder, items).await?);
    }
    if wants(Metric::Classic) {
        summary.classic = Some(classic(store, items).await?);
    }
    if wants(Metric::Truth) {
        let folder = settings
            .truth_folder
            .as_deref()
            .ok_or(ScoreError::NoTruth)?;
        let world = WorldTruth::read_folder(folder)?;
        summary.truth = Some(truth(store, &world, items).await?);
    }
    if wants(Metric::Dense) {
        let folder = settings
            .truth_folder
            .as_deref()
            .ok_or(ScoreError::NoDense)?;
        let file = folder.join(crate::dense::DENSE_FILE);
        if !file.is_file() {
            return Err(ScoreError::NoDense);
        }
        let references = crate::dense::read_references(&file)?;
        summary.dense = Some(dense(store, &references, items).await?);
        let shots = folder.join(crate::dense::SHOTS_FILE);
        if shots.is_file() {
            let truth = crate::dense::read_transitions(&shots)?;
            summary.boundaries = Some(boundaries(store, &truth, items).await?);
        }
    }
    if wants(Metric::Efficiency)
        && let Some(run_id) = settings.run_id
    {
        summary.efficiency =
            Some(efficiency(store, models, &settings.embedder, run_id, items).await?);
    }
    if let (true, Some(judge)) = (wants(Metric::Capscore), &settings.judge) {
        summary.capscore = Some(capscore(store, plan, models, judge, items, settings).await?);
    }
    Ok(summary)
}

/// Judges every item with `judge_name`.
async fn capscore(
    store: &Store,
    plan: &Plan,
    models: &ModelSet,
    judge_name: &str,
    items: &[ScoringItem],
    score: &ScoreSettings,
) -> Result<(JudgeSettings, JudgeReport), ScoreError> {
    let options = &score.judge_options;
    let entry = plan.model_for(judge_name, Role::Chat)?;
    let chat = models.chat(judge_name)?;
    let settings = JudgeSettings {
        judge: judge_name.to_owned(),
        identity: model_identity(entry),
        mode: options.mode,
        samples: options.samples.max(1),
        parse_retries: options.parse_retries,
        temperature: options.temperature,
        concurrency: options.concurrency,
    };
    let report = judge(store, chat, items, &settings, &score.judge_progress).await?;
    Ok((settings, report))
}

/// Stores `embed_sim` (the cosine of caption and reference embeddings) for every item;
/// returns how many.
async fn embed_sim(
    store: &Store,
    models: &ModelSet,
    embedder: &str,
    items: &[ScoringItem],
) -> Result<usize, ScoreError> {
    let model = models.embedder(embedder)?;
    let mut texts = Vec::with_capacity(items.len() * 2);
    for item in items {
        texts.push(item.caption.clone());
        texts.push(item.reference.clone());
    }
    let vectors = model.embed(&texts).await?;
    let scores: Vec<NewScore> = items
        .iter()
        .zip(vectors.chunks(2))
        .map(|(item, v)| NewScore {
            caption_id: item.caption_id,
            metric: "embed_sim",
            judge: embedder,
            prompt_version: "",
            sample_index: 0,
            status: "ok",
            value: Some(cosine(&v[0], &v[1])),
            raw_reply: None,
        })
        .collect();
    store.put_scores(&scores).await?;
    Ok(items.len())
}

/// Stores the classic metrics of every item, computed per source (a source is one
/// submission: CIDEr-D's document frequencies come from its set); returns how many.
async fn classic(store: &Store, items: &[ScoringItem]) -> Result<usize, ScoreError> {
    use crate::classic::{MetricScores, score_all};
    let mut by_source: BTreeMap<&str, Vec<&ScoringItem>> = BTreeMap::new();
    for item in items {
        by_source.entry(&item.source).or_default().push(item);
    }
    for group in by_source.values() {
        let pairs: Vec<(String, Vec<String>)> = group
            .iter()
            .map(|i| (i.caption.clone(), vec![i.reference.clone()]))
            .collect();
        let scores = tokio::task::spawn_blocking(move || score_all(&pairs))
            .await
            .map_err(ScoreError::Classic)?;
        let mut rows = Vec::new();
        for (item, s) in group.iter().zip(&scores.items) {
            for name in MetricScores::NAMES {
                rows.push(NewScore {
                    caption_id: item.caption_id,
                    metric: name,
                    judge: "",
                    prompt_version: "coco",
                    sample_index: 0,
                    status: "ok",
                    value: s.get(name),
                    raw_reply: None,
                });
            }
        }
        store.put_scores(&rows).await?;
    }
    Ok(items.len())
}

/// Stores `truth_precision`, `truth_recall` and `truth_f1` of every item (the facts
/// behind them with `truth_f1`); an item whose video the truth lacks is stored failed
/// with the reason. Returns (scored, failed).
async fn truth(
    store: &Store,
    world: &WorldTruth,
    items: &[ScoringItem],
) -> Result<(usize, usize), ScoreError> {
    let results = crate::truth::score_captions(
        world,
        items.iter().map(|i| (i.video.as_str(), i.caption.as_str())),
    );
    let (mut ok, mut failed) = (0, 0);
    let mut replies = Vec::with_capacity(items.len());
    for result in &results {
        replies.push(match result {
            Ok(score) => {
                ok += 1;
                score.facts_json()
            }
            Err(e) => {
                failed += 1;
                e.to_string()
            }
        });
    }
    let mut rows = Vec::with_capacity(items.len() * 3);
    for ((item, result), reply) in items.iter().zip(&results).zip(&replies) {
        for metric in crate::truth::METRICS {
            let last = metric == "truth_f1";
            rows.push(NewScore {
                caption_id: item.caption_id,
                metric,
                judge: "",
                prompt_version: crate::truth::VERSION,
                sample_index: 0,
                status: if result.is_ok() { "ok" } else { "failed" },
                value: result.as_ref().ok().and_then(|s| s.get(metric)),
                raw_reply: last.then_some(reply.as_str()),
            });
        }
    }
    store.put_scores(&rows).await?;
    Ok((ok, failed))
}

/// Stores the dense scores of every item against its video's timed `references`
/// (ActivityNet's precision, recall and METEOR, each the mean over the tIoU thresholds,
/// and the F1 of that precision and recall); a video that was not cut is one segment
/// over its length. An item whose video has no references is stored failed. Returns
/// (scored, failed).
async fn dense(
    store: &Store,
    references: &BTreeMap<String, Vec<crate::dense::Segment>>,
    items: &[ScoringItem],
) -> Result<(usize, usize), ScoreError> {
    use crate::dense::{DenseVideo, Segment, dense_scores};
    let videos: Vec<Option<DenseVideo>> = items
        .iter()
        .map(|item| {
            let references = references.get(&item.video)?.clone();
            let predicted = match &item.segments {
                Some(segments) => segments
                    .iter()
                    .map(|s| Segment {
                        start: s.start_s,
                        end: s.end_s,
                        sentence: s.caption.clone(),
                    })
                    .collect(),
                None => vec![Segment {
                    start: 0.0,
                    end: item.duration_s.unwrap_or_default(),
                    sentence: item.caption.clone(),
                }],
            };
            Some(DenseVideo {
                predicted,
                references,
            })
        })
        .collect();
    let scores = tokio::task::spawn_blocking(move || {
        videos
            .iter()
            .map(|v| {
                v.as_ref()
                    .map(|v| dense_scores(std::slice::from_ref(v)).mean)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(ScoreError::Classic)?;
    let (mut ok, mut failed) = (0, 0);
    let mut rows = Vec::with_capacity(items.len() * 4);
    for (item, score) in items.iter().zip(&scores) {
        match score {
            Some(_) => ok += 1,
            None => failed += 1,
        }
        let values = score.map(|s| [s.precision, s.recall, s.meteor, s.f1()]);
        for (k, metric) in [
            "dense_precision",
            "dense_recall",
            "dense_meteor",
            "dense_f1",
        ]
        .into_iter()
        .enumerate()
        {
            rows.push(NewScore {
                caption_id: item.caption_id,
                metric,
                judge: "",
                prompt_version: "densevid-2018",
                sample_index: 0,
                status: if score.is_some() { "ok" } else { "failed" },
                value: values.map(|v| v[k]),
                raw_reply: score
                    .is_none()
                    .then_some("the video is not in `dense.json`"),
            });
        }
    }
    store.put_scores(&rows).await?;
    Ok((ok, failed))
}

/// Stores the shot-boundary scores of every item whose video the run cut at its shots
/// and whose true transitions `truth` has: the transitions between the cut's shots
/// against the true ones, at [`BOUNDARY_TOLERANCE`](crate::dense::BOUNDARY_TOLERANCE)
/// frames. Returns how many.
async fn boundaries(
    store: &Store,
    truth: &BTreeMap<String, Vec<(u64, u64)>>,
    items: &[ScoringItem],
) -> Result<usize, ScoreError> {
    use crate::dense::{BOUNDARY_TOLERANCE, boundary_scores, transitions};
    let mut rows = Vec::new();
    for item in items {
        let (Some(shots), Some(truth)) = (&item.shots, truth.get(&item.video)) else {
            continue;
        };
        let s = boundary_scores(&transitions(shots), truth, BOUNDARY_TOLERANCE);
        for (metric, value) in [
            ("boundary_precision", s.precision),
            ("boundary_recall", s.recall),
            ("boundary_f1", s.f1),
        ] {
            rows.push(NewScore {
                caption_id: item.caption_id,
                metric,
                judge: "",
                prompt_version: "transnetv2",
                sample_index: 0,
                status: "ok",
                value: Some(value),
                raw_reply: None,
            });
        }
    }
    store.put_scores(&rows).await?;
    Ok(rows.len() / 3)
}

/// Token efficiency with `embed_sim`: every sentence prefix of every caption embedded
/// and compared with its reference; one curve per source is stored. Returns the points.
async fn efficiency(
    store: &Store,
    models: &ModelSet,
    embedder: &str,
    run_id: i64,
    items: &[ScoringItem],
) -> Result<usize, ScoreError> {
    use crate::efficiency::{curve, sentence_prefixes, tokens};
    let model = models.embedder(embedder)?;
    // (source, prefix sentences, tokens) with the texts to embed: prefix, reference.
    let mut keys = Vec::new();
    let mut texts = Vec::new();
    for item in items {
        for (k, prefix) in sentence_prefixes(&item.caption).into_iter().enumerate() {
            keys.push((item.source.clone(), k + 1, tokens(&prefix)));
            texts.push(prefix);
            texts.push(item.reference.clone());
        }
    }
    let vectors = model.embed(&texts).await?;
    let mut by_source: BTreeMap<String, Vec<(usize, usize, f64)>> = BTreeMap::new();
    for ((source, k, n), v) in keys.into_iter().zip(vectors.chunks(2)) {
        by_source
            .entry(source)
            .or_default()
            .push((k, n, cosine(&v[0], &v[1])));
    }
    let mut total = 0;
    for (source, observations) in by_source {
        let points: Vec<(i64, f64, f64, i64)> = curve(&observations)
            .into_iter()
            .map(|p| {
                (
                    p.sentences as i64,
                    p.mean_tokens,
                    p.mean_score,
                    p.count as i64,
                )
            })
            .collect();
        total += points.len();
        store
            .put_efficiency(run_id, &source, "embed_sim", &points)
            .await?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_parse_and_unknown_ones_are_refused() {
        assert_eq!("embed_sim".parse::<Metric>().unwrap(), Metric::EmbedSim);
        assert_eq!("capscore".parse::<Metric>().unwrap(), Metric::Capscore);
        let e = "bleu".parse::<Metric>().unwrap_err();
        assert_eq!(e.kind(), "unknown_metric");
        assert!(e.to_string().contains("`bleu`"));
    }
}
