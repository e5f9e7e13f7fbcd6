//! The method's results (issue 15): `wolf demo` on the demo's world (seed 7) and on a
//! fresh one, each source's scores against the world's truth and references, whether
//! the fused caption beats every source, the motion caption's object counts, and what
//! the fusion guard did and cost. Measured, not timed: the ratios are wolf's fused
//! caption over the best single source.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context as _;
use serde_json::Value;
use wolf_scorer::truth::{Fact, WorldTruth, facts};

use super::pipeline::{number_before, seconds_after_in, stage_lines};
use super::{Row, run_ok};

/// The demo's own world, and a fresh one: a seed no fixture model was trained or
/// measured on (captioners 11-13, fuser 1001 and up, its measurements 1101 and up).
const SEEDS: [u64; 2] = [7, 31];
const CLIPS: usize = 40;
/// The metrics the fused caption must beat every source on.
const HEADLINE: [&str; 2] = ["truth_f1", "embed_sim"];

pub(super) async fn method(exe: &Path, work: &Path) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for seed in SEEDS {
        rows.extend(demo_world(exe, work, seed)?);
    }
    Ok(rows)
}

/// `wolf demo --seed SEED` as a child in a fresh folder and database, then its report,
/// export and truth.
fn demo_world(exe: &Path, work: &Path, seed: u64) -> anyhow::Result<Vec<Row>> {
    eprintln!("Method: `wolf demo --seed {seed}` (a few minutes) ...");
    let folder = work.join(format!("method-{seed}"));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder)?;
    let db = folder.join("demo.db");
    let wolf = |args: &[&str]| -> anyhow::Result<String> {
        run_ok(
            Command::new(exe)
                .args(["--no-progress", "--db"])
                .arg(&db)
                .args(args)
                .stdin(Stdio::null()),
        )
    };
    let start = Instant::now();
    let out = folder.display().to_string();
    let (seed_text, clips) = (seed.to_string(), CLIPS.to_string());
    let stdout = wolf(&[
        "demo", "--out", &out, "--seed", &seed_text, "--count", &clips,
    ])
    .context("`wolf demo`")?;
    let wall = start.elapsed().as_secs_f64();
    let lines: Vec<Value> = serde_json::from_str(&wolf(&["report", "--format", "json"])?)
        .context("`wolf report --format json`")?;
    let export: Vec<Value> = wolf(&["export", "--run", "demo"])?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("`wolf export`")?;
    let truth = WorldTruth::read_folder(&folder.join("world"))?;

    let mut rows = Vec::new();
    if seed == SEEDS[0] {
        rows.push(wall_row(&stdout, wall)?);
    }
    rows.extend(source_rows(&lines, seed));
    rows.push(motion_row(&export, &truth, seed));
    rows.push(guard_row(&export, seed));
    let _ = std::fs::remove_dir_all(&folder);
    Ok(rows)
}

/// The mean of `metric` for `source` in the report's lines.
fn mean(lines: &[Value], source: &str, metric: &str) -> Option<f64> {
    lines
        .iter()
        .find(|l| l["source"] == source && l["metric"] == metric)
        .and_then(|l| l["mean"].as_f64())
}

/// One row per headline metric: the fused caption against the best single source, and
/// every source's mean in the note.
fn source_rows(lines: &[Value], seed: u64) -> Vec<Row> {
    let mut sources: Vec<&str> = lines.iter().filter_map(|l| l["source"].as_str()).collect();
    sources.sort();
    sources.dedup();
    HEADLINE
        .iter()
        .map(|metric| {
            let fused = mean(lines, "wolf", metric);
            let best = sources
                .iter()
                .filter(|s| **s != "wolf")
                .filter_map(|s| Some((*s, mean(lines, s, metric)?)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let all: Vec<String> = sources
                .iter()
                .filter_map(|s| Some(format!("{s} {:.3}", mean(lines, s, metric)?)))
                .collect();
            let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
            Row {
                benchmark: format!(
                    "method, world seed {seed} ({CLIPS} clips): {metric} of `wolf` against the best single source"
                ),
                wolf: f(fused),
                anchor: match best {
                    Some((source, value)) => format!("{value:.3} ({source})"),
                    None => "-".into(),
                },
                ratio: match (fused, best) {
                    (Some(a), Some((_, b))) if b > 0.0 => format!("{:.2}", a / b),
                    _ => "-".into(),
                },
                goal: "above 1 (the fusion beats every source)".into(),
                note: format!("every source: {}", all.join(", ")),
            }
        })
        .collect()
}

fn objects(facts: impl IntoIterator<Item = Fact>) -> usize {
    facts
        .into_iter()
        .filter(|f| matches!(f, Fact::Object { .. }))
        .count()
}

/// How many motion captions name the true number of objects.
fn motion_row(export: &[Value], truth: &WorldTruth, seed: u64) -> Row {
    let mut named: BTreeMap<&str, usize> = BTreeMap::new();
    for row in export.iter().filter(|r| r["source"] == "motion") {
        if let (Some(video), Some(caption)) = (row["video"].as_str(), row["caption"].as_str()) {
            named.insert(video, objects(facts(caption)));
        }
    }
    let (mut right, mut over, mut under) = (0, 0, 0);
    for (key, clip) in truth.clips() {
        let true_count = objects(clip.facts.iter().cloned());
        match named.get(key).copied().unwrap_or(0).cmp(&true_count) {
            std::cmp::Ordering::Equal => right += 1,
            std::cmp::Ordering::Greater => over += 1,
            std::cmp::Ordering::Less => under += 1,
        }
    }
    Row {
        benchmark: format!(
            "method, world seed {seed}: motion captions naming the true number of objects"
        ),
        wolf: format!("{right} of {}", truth.len()),
        anchor: "-".into(),
        ratio: "-".into(),
        goal: format!("at least 35 of 40 ({CLIPS} clips)"),
        note: format!("{over} over-counted, {under} under-counted"),
    }
}

/// The guard's paths over the summaries and fusions, and its embedding calls per video.
fn guard_row(export: &[Value], seed: u64) -> Row {
    let mut paths: BTreeMap<String, usize> = BTreeMap::new();
    let mut videos = std::collections::BTreeSet::new();
    let mut consensus = 0;
    for row in export {
        videos.extend(row["video"].as_str());
        if let Some(path) = row["guard"].as_str() {
            let kind = path.split(':').next().unwrap_or(path);
            let source = row["source"].as_str().unwrap_or("?");
            let stage = if source == "wolf" {
                "fusion"
            } else {
                "summary"
            };
            *paths.entry(format!("{stage} {kind}")).or_default() += 1;
            consensus += usize::from(kind == "consensus");
        }
    }
    let counts: Vec<String> = paths.iter().map(|(p, n)| format!("{p} {n}")).collect();
    Row {
        benchmark: format!(
            "method, world seed {seed}: the fusion guard's embedding calls per video"
        ),
        wolf: format!("{:.2}", consensus as f64 / videos.len().max(1) as f64),
        anchor: "-".into(),
        ratio: "-".into(),
        goal: "report".into(),
        note: format!(
            "one embedding call (a batch) per consensus pick; paths: {}",
            counts.join(", ")
        ),
    }
}

/// The demo's wall time and the split its output reports.
fn wall_row(stdout: &str, wall: f64) -> anyhow::Result<Row> {
    let mut steps = Vec::new();
    for (prefix, name) in [
        ("1/5", "synth"),
        ("2/5", "intake"),
        ("3/5", "caption"),
        ("4/5", "scoring"),
        ("5/5", "leaderboard"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .with_context(|| format!("`wolf demo` printed no `{prefix}` line:\n{stdout}"))?;
        let seconds = seconds_after_in(line).with_context(|| format!("no time in `{line}`"))?;
        steps.push(format!("{name} {seconds:.1} s"));
    }
    let stages = stage_lines(stdout)
        .iter()
        .map(|(s, t)| format!("{s} {t:.1} s"))
        .collect::<Vec<_>>()
        .join(", ");
    let videos = stdout
        .lines()
        .find(|l| l.starts_with("run `"))
        .and_then(|l| number_before(l, " videos"))
        .unwrap_or(0.0);
    Ok(Row {
        benchmark: "demo (`wolf demo`): wall time and its split by stage".into(),
        wolf: format!("{wall:.1} s"),
        anchor: "-".into(),
        ratio: "-".into(),
        goal: "report".into(),
        note: format!(
            "child process, spawn to exit, fresh database and world; steps: {}; caption \
             stages of its {videos:.0} videos, summed over videos in flight: {stages}",
            steps.join(", ")
        ),
    })
}
