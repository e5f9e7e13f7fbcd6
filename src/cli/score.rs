//! `wolf score` (judge and measure a run's captions against the references) and
//! `wolf report` (means, intervals, counts and parse failures per dataset, source and
//! metric).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use wolf_pipeline::config::Config;
use wolf_pipeline::models::{ModelSet, Role};
use wolf_pipeline::store::{NewScore, ScoringItem, Store};
use wolf_pipeline::wolf::model_identity;
use wolf_scorer::judge::{JudgeSettings, Mode, judge};
use wolf_scorer::report::{ReportLine, report_lines};
use wolf_scorer::similarity::cosine;

use super::{Context, Outcome};

#[derive(Debug, Args)]
pub(crate) struct ScoreArgs {
    /// The run whose captions are scored.
    #[arg(long)]
    run: String,
    /// The config with the judge's and the embedder's entries (default: the embedded
    /// defaults: `smollm2` and `minilm`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The judge: a chat LLM entry.
    #[arg(long, default_value = "smollm2")]
    judge: String,
    /// The embedder entry of `embed_sim`.
    #[arg(long, default_value = "minilm")]
    embedder: String,
    #[arg(long, value_enum, default_value_t = ModeArg::Pointwise)]
    mode: ModeArg,
    /// Judge samples per caption (k).
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Judge temperature (0: greedy, the paper's; use more than 0 with several samples).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Further attempts after an unparsable reply.
    #[arg(long, default_value_t = 2)]
    parse_retries: usize,
    /// Judge calls in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Metrics: `capscore`, `embed_sim`, `classic` (BLEU-1..4, METEOR, ROUGE-L,
    /// CIDEr-D), `efficiency` (comma-separated; `efficiency` scores every sentence prefix
    /// of every caption with the embedder).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "capscore,embed_sim,classic"
    )]
    metrics: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Pointwise,
    Listwise,
}

pub(crate) async fn score(args: ScoreArgs, context: &Context) -> anyhow::Result<Outcome> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let plan = config.plan()?;
    for metric in &args.metrics {
        if !["capscore", "embed_sim", "classic", "efficiency"].contains(&metric.as_str()) {
            bail!("unknown metric `{metric}`: use capscore, embed_sim, classic, efficiency");
        }
    }
    let store = context.store().await?;
    let run = store.run(&args.run).await?;
    let items = store.scoring_items(run.id).await?;
    if items.is_empty() {
        bail!(
            "run `{}` has no captions of videos with a reference",
            args.run
        );
    }
    let models = ModelSet::new(plan.models.clone());
    let mut outcome = Outcome::Done;
    if args.metrics.iter().any(|m| m == "embed_sim") {
        plan.model_for(&args.embedder, Role::Embedder)?;
        let n = embed_sim(&store, &models, &args.embedder, &items).await?;
        println!("embed_sim: {n} captions with `{}`", args.embedder);
    }
    if args.metrics.iter().any(|m| m == "classic") {
        let n = classic(&store, &items).await?;
        println!("classic: {n} captions (bleu1-4, meteor, rouge_l, cider_d)");
    }
    if args.metrics.iter().any(|m| m == "efficiency") {
        plan.model_for(&args.embedder, Role::Embedder)?;
        let points = efficiency(&store, &models, &args.embedder, run.id, &items).await?;
        println!(
            "efficiency: {points} curve points with `{}` (`wolf report --efficiency`)",
            args.embedder
        );
    }
    if args.metrics.iter().any(|m| m == "capscore") {
        let mode = match args.mode {
            ModeArg::Pointwise => Mode::Pointwise,
            ModeArg::Listwise => Mode::Listwise,
        };
        let judged = capscore(
            &store,
            &plan,
            &models,
            &args.judge,
            &items,
            JudgeOptions {
                mode,
                samples: args.samples,
                temperature: args.temperature,
                parse_retries: args.parse_retries,
                concurrency: args.concurrency,
            },
        )
        .await?;
        if judged.failed > 0 {
            outcome = Outcome::SomeFailed;
        }
    }
    Ok(outcome)
}

/// How a CapScore pass runs.
pub(crate) struct JudgeOptions {
    pub mode: Mode,
    pub samples: usize,
    pub temperature: f32,
    pub parse_retries: usize,
    pub concurrency: usize,
}

impl JudgeOptions {
    /// A config's `[score]` judging settings (the demo's and the leaderboard's).
    pub(crate) fn from_config(score: &wolf_pipeline::config::ScoreConfig) -> Self {
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

/// Judges every item with `judge` and prints what the pass did.
pub(crate) async fn capscore(
    store: &Store,
    plan: &wolf_pipeline::config::Plan,
    models: &ModelSet,
    judge_name: &str,
    items: &[ScoringItem],
    options: JudgeOptions,
) -> anyhow::Result<wolf_scorer::judge::JudgeReport> {
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
    let report = judge(store, chat, items, &settings).await?;
    println!(
        "capscore ({}, judge `{judge_name}`, {} sample(s)): {} ok, {} parse_failed, {} failed; {} judge requests, {} from the cache",
        settings.mode.as_str(),
        settings.samples,
        report.ok,
        report.parse_failed,
        report.failed,
        report.calls,
        report.cached
    );
    Ok(report)
}

/// Stores `embed_sim` (the cosine of caption and reference embeddings) for every item;
/// returns how many.
pub(crate) async fn embed_sim(
    store: &Store,
    models: &ModelSet,
    embedder: &str,
    items: &[ScoringItem],
) -> anyhow::Result<usize> {
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
pub(crate) async fn classic(store: &Store, items: &[ScoringItem]) -> anyhow::Result<usize> {
    use wolf_scorer::classic::{MetricScores, score_all};
    let mut by_source: BTreeMap<&str, Vec<&ScoringItem>> = BTreeMap::new();
    for item in items {
        by_source.entry(&item.source).or_default().push(item);
    }
    for group in by_source.values() {
        let pairs: Vec<(String, Vec<String>)> = group
            .iter()
            .map(|i| (i.caption.clone(), vec![i.reference.clone()]))
            .collect();
        let scores = tokio::task::spawn_blocking(move || score_all(&pairs)).await?;
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

/// Token efficiency with `embed_sim`: every sentence prefix of every caption embedded
/// and compared with its reference; one curve per source is stored. Returns the points.
pub(crate) async fn efficiency(
    store: &Store,
    models: &ModelSet,
    embedder: &str,
    run_id: i64,
    items: &[ScoringItem],
) -> anyhow::Result<usize> {
    use wolf_scorer::efficiency::{curve, sentence_prefixes, tokens};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Only this dataset.
    #[arg(long)]
    dataset: Option<String>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    format: ReportFormat,
    /// Print the token-efficiency curves (`wolf score --metrics efficiency`) instead.
    #[arg(long)]
    efficiency: bool,
}

pub(crate) async fn report(args: ReportArgs, context: &Context) -> anyhow::Result<Outcome> {
    let store = context.store().await?;
    if args.efficiency {
        let rows = store.efficiency(None).await?;
        match args.format {
            ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
            ReportFormat::Table => {
                println!(
                    "{:<14} {:<30} {:<10} {:>9} {:>11} {:>10} {:>5}",
                    "run", "source", "metric", "sentences", "mean words", "mean score", "n"
                );
                for r in rows {
                    println!(
                        "{:<14} {:<30} {:<10} {:>9} {:>11.1} {:>10.3} {:>5}",
                        r.run,
                        r.source,
                        r.metric,
                        r.sentences,
                        r.mean_tokens,
                        r.mean_score,
                        r.count
                    );
                }
            }
        }
        return Ok(Outcome::Done);
    }
    let text = report_text(&store, args.dataset.as_deref(), args.format).await?;
    print!("{text}");
    Ok(Outcome::Done)
}

async fn report_text(
    store: &Store,
    dataset: Option<&str>,
    format: ReportFormat,
) -> anyhow::Result<String> {
    if let Some(name) = dataset {
        store.dataset(name).await.context("the report's dataset")?;
    }
    let lines = report_lines(&store.scores(dataset).await?);
    Ok(match format {
        ReportFormat::Json => serde_json::to_string_pretty(&lines)? + "\n",
        ReportFormat::Table => table(&lines),
    })
}

/// The report as an aligned text table.
pub(crate) fn table(lines: &[ReportLine]) -> String {
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
