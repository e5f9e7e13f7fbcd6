//! `wolf score` and `wolf report` end to end: a run captioned by scripted models, judged
//! by a scripted judge (faults, caching, listwise shuffling) and by the real default
//! GGUF LLM.

use std::collections::BTreeMap;

use serde_json::Value;
use wolf_pipeline::hash::fnv1a;
use wolf_pipeline::models::scripted::{Behaviour, Script, ScriptedServer};

use crate::util::{Dir, serve};

/// A run `r` of `count` clips captioned by one scripted server; returns its export.
fn captioned_run(dir: &Dir, count: usize) -> Vec<Value> {
    let server = serve(Script::always(Behaviour::with(|req: &Value| {
        let hash = fnv1a(req["messages"].to_string().as_bytes());
        format!("a red circle [100, 100, 200, 200] moves {:x}", hash % 997)
    })));
    let url = server.base_url();
    let mut config = String::from("[sampling]\ncount = 2\n");
    for name in ["img", "vid", "llm"] {
        config.push_str(&format!(
            "[models.{name}]\nbackend = \"openai\"\nbase_url = \"{url}\"\nmodel = \"{name}\"\n"
        ));
    }
    config.push_str(
        "[wolf]\nimage_models = [\"img\"]\nvideo_models = [\"vid\"]\nllm = \"llm\"\nmotion_llm = false\nguard = \"off\"\n",
    );
    std::fs::write(dir.join("caption.toml"), config).unwrap();
    dir.synthetic_dataset(count, 5);
    dir.wolf(&[
        "caption",
        "--dataset",
        "ds",
        "--config",
        "caption.toml",
        "--run",
        "r",
    ])
    .expect_code(0);
    let out = dir.wolf(&["export", "--run", "r"]).expect_code(0).stdout();
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A judge config: `judge` on the server, retries off.
fn judge_config(dir: &Dir, server: &ScriptedServer) -> String {
    let text = format!(
        "[models.judge]\nbackend = \"openai\"\nbase_url = \"{}\"\nmodel = \"judge\"\nmax_retries = 0\ntimeout_s = 0.5\n",
        server.base_url()
    );
    std::fs::write(dir.join("judge.toml"), text).unwrap();
    dir.join("judge.toml").display().to_string()
}

/// `wolf score` of run `r` with `config`'s judge and `metrics`, then `extra`.
fn judged<'a>(config: &'a str, metrics: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "score",
        "--run",
        "r",
        "--config",
        config,
        "--judge",
        "judge",
        "--metrics",
        metrics,
    ];
    args.extend_from_slice(extra);
    args
}

fn report(dir: &Dir) -> Vec<Value> {
    let run = dir.wolf(&["report", "--format", "json"]).expect_code(0);
    run.json().as_array().unwrap().clone()
}

fn line<'a>(lines: &'a [Value], source: &str, metric: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["source"] == source && l["metric"] == metric)
        .unwrap_or_else(|| panic!("no {source} {metric} in {lines:?}"))
}

#[test]
fn judge_faults_are_stored_as_failures_never_as_numbers() {
    let dir = Dir::new();
    let export = captioned_run(&dir, 2);
    assert_eq!(export.len(), 10);
    // One request at a time, in this order: the first ten replies, then valid ones.
    let server = serve(Script::sequence(
        vec![
            Behaviour::text("0.50;0.60"),
            Behaviour::text("0.1,0.2,0.3,0.4;0.1,0.2,0.3,0.4"),
            Behaviour::text("1.50;0.20"),
            Behaviour::text("Sure! 0.80;0.90"),
            Behaviour::ServerError,
            Behaviour::text("0.5;0.6;0.7"),
            Behaviour::Hang,
            Behaviour::text("0.80; 0.90"),
            Behaviour::EmptyContent,
            Behaviour::text("0.30;0.40"),
        ],
        Behaviour::text("0.70;0.70"),
    ));
    let config = judge_config(&dir, &server);
    let run = dir
        .wolf(&judged(
            &config,
            "capscore",
            &["--concurrency", "1", "--parse-retries", "0"],
        ))
        .expect_code(1);
    // 4 unparsable (4 numbers, out of range, prose, 3 numbers) + the empty reply; 2
    // failed calls (server error, timeout); the rest parsed.
    assert!(
        run.stdout().contains("3 ok, 5 parse_failed, 2 failed"),
        "{}",
        run.stdout()
    );
    let lines = report(&dir);
    let (mut ok, mut parse_failed, mut failed) = (0, 0, 0);
    for l in lines
        .iter()
        .filter(|l| l["metric"] == "capscore_similarity")
    {
        ok += l["count"].as_u64().unwrap();
        parse_failed += l["parse_failed"].as_u64().unwrap();
        failed += l["failed"].as_u64().unwrap();
        if let Some(mean) = l["mean"].as_f64() {
            assert!((0.0..=1.0).contains(&mean));
        }
    }
    assert_eq!((ok, parse_failed, failed), (3, 5, 2));

    // Rescoring asks again only for the failed calls; parse failures are final.
    let again = dir
        .wolf(&judged(&config, "capscore", &["--concurrency", "1"]))
        .expect_code(0);
    assert!(
        again
            .stdout()
            .contains("2 judge requests, 8 from the cache"),
        "{}",
        again.stdout()
    );
}

#[test]
fn rescoring_hits_the_cache_and_makes_no_judge_call() {
    let dir = Dir::new();
    captioned_run(&dir, 2);
    let server = serve(Script::always(Behaviour::text("0.40;0.50")));
    let config = judge_config(&dir, &server);
    let args = judged(&config, "capscore", &["--samples", "2"]);
    let first = dir.wolf(&args).expect_code(0);
    assert!(
        first
            .stdout()
            .contains("20 judge requests, 0 from the cache"),
        "{}",
        first.stdout()
    );
    let before = server.requests();
    let second = dir.wolf(&args).expect_code(0);
    assert!(
        second
            .stdout()
            .contains("0 judge requests, 20 from the cache"),
        "{}",
        second.stdout()
    );
    assert_eq!(server.requests(), before);
    let lines = report(&dir);
    let wolf = line(&lines, "wolf", "capscore_quality");
    assert_eq!(wolf["mean"].as_f64(), Some(0.5));
    assert_eq!(wolf["count"].as_u64(), Some(2));
}

/// A config that names only its judge keeps the default entries beneath it: `embed_sim`
/// finds the default embedder `minilm` (issue 24's layers).
#[test]
fn a_judge_only_config_still_finds_the_default_embedder() {
    let dir = Dir::new();
    captioned_run(&dir, 2);
    let server = serve(Script::always(Behaviour::text("0.40;0.50")));
    let config = judge_config(&dir, &server);
    dir.wolf(&judged(&config, "capscore,embed_sim", &[]))
        .expect_code(0);
    let lines = report(&dir);
    let similarity = line(&lines, "wolf", "embed_sim");
    assert_eq!(similarity["count"].as_u64(), Some(2), "{similarity}");
    assert_eq!(
        line(&lines, "wolf", "capscore_quality")["mean"].as_f64(),
        Some(0.5)
    );
    // With `defaults = false` the judge alone is the list: `--judge` names it, and the
    // default `[wolf]` section, which `score` does not run, is not checked.
    let closed = dir.join("closed.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&closed, format!("[models]\ndefaults = false\n\n{text}")).unwrap();
    let closed = closed.display().to_string();
    // (The judgements come from the cache: the same judge, captions and prompt.)
    dir.wolf(&judged(&closed, "capscore", &[])).expect_code(0);
    // A `--judge` the file lacks is refused before any request.
    let requests = server.requests();
    let refused = dir
        .wolf(&[
            "score", "--run", "r", "--config", &closed, "--judge", "nobody",
        ])
        .expect_code(2);
    assert!(
        refused.stderr().contains("no model `nobody`"),
        "{}",
        refused.stderr()
    );
    assert_eq!(server.requests(), requests);
}

/// The judge's score for a caption text: a function of the text alone.
fn score_of(text: &str) -> f64 {
    (fnv1a(text.trim().as_bytes()) % 90 + 10) as f64 / 100.0
}

#[test]
fn listwise_scores_map_back_to_their_captions_whatever_the_shown_order() {
    let dir = Dir::new();
    let export = captioned_run(&dir, 3);
    // Replies score each shown caption by its own text, so a wrong unshuffle shows.
    let server = serve(Script::always(Behaviour::with(|req: &Value| {
        let prompt = req["messages"][0]["content"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let scores: Vec<String> = prompt
            .lines()
            .filter_map(|l| l.strip_prefix("Caption "))
            .filter_map(|l| l.split_once(": "))
            .map(|(_, text)| format!("{:.2}", score_of(text)))
            .collect();
        format!("{};{}", scores.join(","), scores.join(","))
    })));
    let config = judge_config(&dir, &server);
    dir.wolf(&judged(
        &config,
        "capscore",
        &["--mode", "listwise", "--samples", "3"],
    ))
    .expect_code(0);
    // Five sources a video: one call a video and sample.
    assert_eq!(server.requests(), 3 * 3);
    let mut expected: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for row in &export {
        expected
            .entry(row["source"].as_str().unwrap().to_owned())
            .or_default()
            .push(score_of(row["caption"].as_str().unwrap()));
    }
    let lines = report(&dir);
    for (source, values) in expected {
        let want = values.iter().sum::<f64>() / values.len() as f64;
        let got = line(&lines, &source, "capscore_similarity")["mean"]
            .as_f64()
            .unwrap();
        assert!((got - want).abs() < 1e-9, "{source}: {got} != {want}");
    }
}

#[test]
fn a_real_judge_run_with_the_default_gguf_llm_gives_scores_or_parse_failures() {
    let dir = Dir::new();
    captioned_run(&dir, 2);
    let run = dir
        .wolf(&[
            "score",
            "--run",
            "r",
            "--judge",
            "smollm2",
            "--metrics",
            "capscore,embed_sim",
        ])
        .expect_code(0);
    assert!(run.stdout().contains("0 failed"), "{}", run.stdout());
    let lines = report(&dir);
    for l in &lines {
        let n = l["count"].as_u64().unwrap() + l["parse_failed"].as_u64().unwrap();
        assert_eq!(n, 2, "{l}");
        assert_eq!(l["failed"].as_u64(), Some(0), "{l}");
        if let Some(mean) = l["mean"].as_f64() {
            let range = if l["metric"] == "embed_sim" {
                -1.0..=1.0
            } else {
                0.0..=1.0
            };
            assert!(range.contains(&mean), "{l}");
        }
    }
    assert!(lines.iter().any(|l| l["metric"] == "embed_sim"));
    assert!(lines.iter().any(|l| l["metric"] == "capscore_quality"));
}

#[test]
fn token_efficiency_stores_one_curve_per_source() {
    let dir = Dir::new();
    let export = captioned_run(&dir, 2);
    dir.wolf(&["score", "--run", "r", "--metrics", "efficiency"])
        .expect_code(0);
    let rows = dir
        .wolf(&["report", "--efficiency", "--format", "json"])
        .expect_code(0)
        .json();
    let rows = rows.as_array().unwrap();
    for source in ["img:middle", "img:summary", "motion", "vid", "wolf"] {
        let first = rows
            .iter()
            .find(|r| r["source"] == source && r["sentences"] == 1)
            .unwrap_or_else(|| panic!("no first point for {source}: {rows:?}"));
        assert_eq!(first["count"].as_i64(), Some(2));
        // The words of a one-sentence caption are the caption's words.
        let words: Vec<usize> = export
            .iter()
            .filter(|e| e["source"] == source)
            .map(|e| {
                wolf_scorer::efficiency::sentence_prefixes(e["caption"].as_str().unwrap())[0]
                    .split_whitespace()
                    .count()
            })
            .collect();
        let mean = words.iter().sum::<usize>() as f64 / words.len() as f64;
        assert!((first["mean_tokens"].as_f64().unwrap() - mean).abs() < 1e-9);
    }
}

/// CapScore runs only when a judge is named: without one, `wolf score` runs the other
/// metrics and says so, and a judge given by `[score] judge` is used and named.
#[test]
fn capscore_needs_a_judge_and_without_one_the_other_metrics_run() {
    let dir = Dir::new();
    captioned_run(&dir, 2);
    let run = dir.wolf(&["score", "--run", "r"]).expect_code(0);
    let out = run.stdout();
    assert!(
        out.contains("embed_sim: ") && out.contains("classic: "),
        "{out}"
    );
    assert!(
        out.contains("capscore: not run: CapScore needs a judge"),
        "{out}"
    );
    let metrics: Vec<String> = report(&dir)
        .iter()
        .map(|l| l["metric"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !metrics.iter().any(|m| m.starts_with("capscore")),
        "{metrics:?}"
    );
    assert!(metrics.iter().any(|m| m == "cider_d"), "{metrics:?}");

    // Asking for CapScore alone, without a judge, leaves nothing to run.
    let run = dir
        .wolf(&["score", "--run", "r", "--metrics", "capscore"])
        .expect_code(2);
    assert!(
        run.stderr().contains("CapScore needs a judge"),
        "{}",
        run.stderr()
    );

    // `[score] judge` names one.
    let server = serve(Script::always(Behaviour::text("0.40;0.50")));
    let config = judge_config(&dir, &server);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[score]\njudge = \"judge\"\n");
    std::fs::write(&config, text).unwrap();
    let run = dir
        .wolf(&[
            "score",
            "--run",
            "r",
            "--config",
            &config,
            "--metrics",
            "capscore",
        ])
        .expect_code(0);
    assert!(run.stdout().contains("judge `judge`"), "{}", run.stdout());
}

/// `wolf report --per-video`: a row per video, source and metric with the caption the
/// export has and the video's reference; the videos' mean is the report's mean; CSV holds
/// the same rows; a table is refused.
#[test]
fn the_per_video_report_has_every_score_with_its_caption_and_reference() {
    let dir = Dir::new();
    let export = captioned_run(&dir, 2);
    let captions = crate::caption::captions_by_pair(&export);
    dir.wolf(&["score", "--run", "r", "--metrics", "classic"])
        .expect_code(0);
    let out = dir
        .wolf(&["report", "--per-video", "--format", "jsonl"])
        .expect_code(0)
        .stdout();
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines = report(&dir);
    let metrics = lines.iter().filter(|l| l["source"] == "wolf").count();
    assert_eq!(rows.len(), captions.len() * metrics, "{out}");
    let annotations: Value =
        serde_json::from_slice(&std::fs::read(dir.join("world/annotations.json")).unwrap())
            .unwrap();
    for row in &rows {
        let pair = (
            row["video"].as_str().unwrap().to_owned(),
            row["source"].as_str().unwrap().to_owned(),
        );
        assert_eq!(
            row["caption"].as_str(),
            Some(captions[&pair].as_str()),
            "{row}"
        );
        assert_eq!(row["reference"], annotations[&pair.0]["output"], "{row}");
        assert_eq!(
            (row["run"].as_str(), row["samples"].as_i64()),
            (Some("r"), Some(1))
        );
    }
    for l in &lines {
        let values: Vec<f64> = rows
            .iter()
            .filter(|r| r["source"] == l["source"] && r["metric"] == l["metric"])
            .map(|r| r["value"].as_f64().unwrap())
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!(
            (mean - l["mean"].as_f64().unwrap()).abs() < 1e-9,
            "{l} against {values:?}"
        );
    }

    let csv = dir
        .wolf(&["report", "--per-video", "--format", "csv"])
        .expect_code(0)
        .stdout();
    let mut read = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = read.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header[..6],
        ["dataset", "run", "source", "video", "reference", "caption"]
    );
    assert_eq!(read.records().count(), rows.len());
    // The columns are every field of a row, in one order.
    let mut fields: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
    let mut sorted: Vec<&String> = header.iter().collect();
    fields.sort();
    sorted.sort();
    assert_eq!(fields, sorted);

    // Parquet, read back by pyarrow: the same rows, values as numbers.
    let parquet = dir
        .command(&["report", "--per-video", "--format", "parquet"])
        .output()
        .unwrap();
    assert!(
        parquet.status.success(),
        "{}",
        String::from_utf8_lossy(&parquet.stderr)
    );
    std::fs::write(dir.join("scores.parquet"), &parquet.stdout).unwrap();
    crate::intake::testenv_python(
        &dir,
        "import json, pyarrow.parquet as pq\n\
         json.dump(pq.read_table('scores.parquet').to_pylist(), open('back.json', 'w'))",
    );
    let back: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.join("back.json")).unwrap()).unwrap();
    assert_eq!(back, rows);
    let refused = dir.wolf(&["report", "--per-video"]);
    assert_eq!(refused.code(), 2, "{}", refused.stderr());
}

/// `wolf export --format csv|parquet`: the JSONL export's rows as a table, pyarrow
/// reading the Parquet back equal to them; Parquet to `--out`, written whole.
#[test]
fn the_export_as_csv_and_parquet_holds_the_jsonl_rows() {
    let dir = Dir::new();
    let export = captioned_run(&dir, 2);
    let csv = dir
        .wolf(&["export", "--run", "r", "--format", "csv"])
        .expect_code(0)
        .stdout();
    let mut read = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        read.headers().unwrap(),
        vec![
            "video",
            "path",
            "source",
            "caption",
            "model",
            "prompt_version",
            "guard"
        ]
    );
    let records: Vec<csv::StringRecord> = read.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), export.len());
    assert_eq!(&records[0][3], export[0]["caption"].as_str().unwrap());

    dir.wolf(&[
        "export",
        "--run",
        "r",
        "--format",
        "parquet",
        "--out",
        "c.parquet",
    ])
    .expect_code(0);
    crate::intake::testenv_python(
        &dir,
        "import json, pyarrow.parquet as pq\n\
         rows = pq.read_table('c.parquet').to_pylist()\n\
         json.dump([{k: v for k, v in r.items() if v is not None} for r in rows], open('back.json', 'w'))",
    );
    let back: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.join("back.json")).unwrap()).unwrap();
    let without_nulls: Vec<Value> = export
        .iter()
        .map(|row| {
            let mut row = row.clone();
            row.as_object_mut().unwrap().retain(|_, v| !v.is_null());
            row
        })
        .collect();
    assert_eq!(back, without_nulls);
}
