//! Scoring: judged items/s through `wolf score` with a scripted judge of fixed latency
//! against the ideal (calls × latency / calls in flight), and the classic metrics in
//! Rust against pycocoevalcap (`bench/classic_python.py` in `.wolf/venv`) on 100,000
//! pairs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Deserialize;
use wolf_pipeline::home::Home;
use wolf_pipeline::models::scripted::{Behaviour, Script, ScriptedServer};

use super::{Row, run_ok};

/// The judge's latency.
const LATENCY: Duration = Duration::from_millis(50);
/// Judge calls in flight.
const IN_FLIGHT: usize = 32;
/// Clips of the judged world, and samples per caption: clips × samples calls.
const CLIPS: usize = 100;
const SAMPLES: usize = 10;
/// Pairs of the classic-metrics benchmark, and how many of them the Java METEOR scores.
const PAIRS: usize = 100_000;
const METEOR_PAIRS: usize = 1_000;

pub(super) async fn score(exe: &Path, work: &Path) -> anyhow::Result<Vec<Row>> {
    let mut rows = vec![judge(exe, work).await?];
    rows.extend(tokio::task::block_in_place(|| classic(work))?);
    Ok(rows)
}

fn wolf(exe: &Path, db: &Path) -> Command {
    let mut c = Command::new(exe);
    c.arg("--no-progress").arg("--db").arg(db);
    c
}

async fn judge(exe: &Path, work: &Path) -> anyhow::Result<Row> {
    let dir = work.join("score");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("score.db");
    let world = dir.join("world");
    run_ok(
        wolf(exe, &db)
            .args([
                "synth",
                "--count",
                &CLIPS.to_string(),
                "--seed",
                "9",
                "--out",
            ])
            .arg(&world),
    )?;
    run_ok(
        wolf(exe, &db)
            .args(["dataset", "add", "judged"])
            .arg(&world)
            .arg("--annotations")
            .arg(world.join("annotations.json")),
    )?;
    // An entry whose captions are the references with a word changed.
    let annotations: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(world.join("annotations.json"))?)?;
    let mut entry = serde_json::Map::new();
    for (key, value) in annotations
        .as_object()
        .context("annotations are an object")?
    {
        let text = value["output"]
            .as_str()
            .or(value.as_str())
            .unwrap_or("a video");
        entry.insert(key.clone(), text.replacen("moves", "glides", 1).into());
    }
    let file = dir.join("entry.json");
    std::fs::write(&file, serde_json::to_string(&entry)?)?;
    run_ok(
        wolf(exe, &db)
            .args(["import", "--dataset", "judged", "--name", "entry"])
            .arg(&file),
    )?;
    let server = ScriptedServer::start(
        Script::always(Behaviour::text("0.50;0.60"))
            .with_models(["judge"])
            .with_latency(LATENCY)
            .with_recording(false),
    )?;
    let config = dir.join("judge.toml");
    std::fs::write(
        &config,
        format!(
            "[models.judge]\nbackend = \"openai\"\nbase_url = \"{}\"\nmodel = \"judge\"\nmax_concurrency = {IN_FLIGHT}\n",
            server.base_url()
        ),
    )?;
    let started = Instant::now();
    let out = run_ok(
        wolf(exe, &db)
            .args([
                "score",
                "--run",
                "entry",
                "--judge",
                "judge",
                "--metrics",
                "capscore",
            ])
            .args(["--samples", &SAMPLES.to_string()])
            .args([
                "--temperature",
                "0.7",
                "--concurrency",
                &IN_FLIGHT.to_string(),
            ])
            .arg("--config")
            .arg(&config),
    )?;
    let wall = started.elapsed();
    let calls = server.requests();
    let ideal = LATENCY.as_secs_f64() * calls as f64 / IN_FLIGHT as f64;
    Ok(Row {
        benchmark: format!(
            "judged items/s: `wolf score`, scripted judge at {} ms, {IN_FLIGHT} in flight",
            LATENCY.as_millis()
        ),
        wolf: format!("{:.0} items/s", calls as f64 / wall.as_secs_f64()),
        anchor: format!(
            "{:.0} items/s (ideal: in flight / latency)",
            calls as f64 / ideal
        ),
        ratio: format!("{:.3}", ideal / wall.as_secs_f64()),
        goal: "report".into(),
        note: format!(
            "{calls} judge calls ({CLIPS} captions × {SAMPLES} samples) in {:.2} s, the whole child process (start, store, cache writes) included; {}",
            wall.as_secs_f64(),
            out.lines().last().unwrap_or_default().trim()
        ),
    })
}

#[derive(Debug, Deserialize)]
struct PythonTimes {
    tokenize_s: f64,
    bleu_s: f64,
    rouge_s: f64,
    cider_s: f64,
    meteor_s: f64,
    meteor_pairs: usize,
}

fn classic(work: &Path) -> anyhow::Result<Vec<Row>> {
    use wolf_scorer::classic::{TokenizedPair, bleu, cider, meteor, rouge};
    let committed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        crate::checkout_path("tests/data/classic_pairs.json"),
    )?)?;
    let base: Vec<(String, Vec<String>)> = committed["pairs"]
        .as_array()
        .context("`pairs` in classic_pairs.json")?
        .iter()
        .map(|p| {
            let refs = p["references"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            (p["candidate"].as_str().unwrap_or_default().to_owned(), refs)
        })
        .collect();
    let pairs: Vec<(String, Vec<String>)> =
        (0..PAIRS).map(|i| base[i % base.len()].clone()).collect();
    let file = work.join("classic_pairs_100k.json");
    std::fs::write(&file, serde_json::to_string(&pairs)?)?;

    let t = Instant::now();
    let tokenized: Vec<TokenizedPair> = pairs
        .iter()
        .map(|(c, r)| TokenizedPair::from_raw(c, r))
        .collect();
    let tokenize = t.elapsed().as_secs_f64();
    let timed = |f: &dyn Fn()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64()
    };
    let rust_bleu = timed(&|| drop(bleu::bleu(&tokenized)));
    let rust_rouge = timed(&|| drop(rouge::rouge(&tokenized)));
    let rust_cider = timed(&|| drop(cider::cider_d(&tokenized)));
    let rust_meteor_all = timed(&|| drop(meteor::meteor(&tokenized)));
    let rust_meteor_part = timed(&|| drop(meteor::meteor(&tokenized[..METEOR_PAIRS])));

    let python = Home::locate()
        .map(|h| h.root().join("venv/bin/python"))
        .filter(|p| p.is_file());
    let java = Command::new("java").arg("-version").output().is_ok();
    let rust_fast = tokenize + rust_bleu + rust_rouge + rust_cider;
    let mut rows = Vec::new();
    let note_rust = format!(
        "Rust: tokenise {tokenize:.2} s, BLEU {rust_bleu:.2} s, ROUGE-L {rust_rouge:.2} s, CIDEr-D {rust_cider:.2} s (one thread); the 260 committed pairs cycled"
    );
    match (python, java) {
        (Some(python), true) => {
            let script = crate::checkout_path("bench/classic_python.py");
            let out = run_ok(
                Command::new(python)
                    .arg(script)
                    .arg("--pairs")
                    .arg(&file)
                    .args(["--meteor-pairs", &METEOR_PAIRS.to_string()]),
            )?;
            let times: PythonTimes = serde_json::from_str(out.lines().last().unwrap_or_default())
                .with_context(|| format!("bad anchor output: {out}"))?;
            let python_fast = times.tokenize_s + times.bleu_s + times.rouge_s + times.cider_s;
            rows.push(Row {
                benchmark: format!("classic metrics (tokenise, BLEU-1..4, ROUGE-L, CIDEr-D), {PAIRS} pairs"),
                wolf: format!("{rust_fast:.2} s"),
                anchor: format!("{python_fast:.2} s (pycocoevalcap 1.2)"),
                ratio: format!("{:.1}× faster", python_fast / rust_fast),
                goal: "report".into(),
                note: format!(
                    "{note_rust}; pycocoevalcap: PTB tokenizer (Java) {:.2} s, Bleu {:.2} s, Rouge {:.2} s, Cider {:.2} s",
                    times.tokenize_s, times.bleu_s, times.rouge_s, times.cider_s
                ),
            });
            rows.push(Row {
                benchmark: format!("METEOR, {} pairs", times.meteor_pairs),
                wolf: format!("{rust_meteor_part:.2} s"),
                anchor: format!("{:.2} s (METEOR 1.5 jar through pycocoevalcap)", times.meteor_s),
                ratio: format!("{:.1}× faster", times.meteor_s / rust_meteor_part),
                goal: "report".into(),
                note: format!(
                    "the jar's run on {PAIRS} pairs would take about {:.0} min; ours took {rust_meteor_all:.1} s on all {PAIRS}; exact + stem matching only (docs/METRICS.md)",
                    times.meteor_s / times.meteor_pairs as f64 * PAIRS as f64 / 60.0
                ),
            });
        }
        _ => rows.push(Row {
            benchmark: format!("classic metrics, {PAIRS} pairs"),
            wolf: format!("{rust_fast:.2} s (+ METEOR {rust_meteor_all:.1} s)"),
            anchor: "skipped: no `.wolf/venv` or no `java`".into(),
            ratio: "-".into(),
            goal: "report".into(),
            note: note_rust,
        }),
    }
    Ok(rows)
}
