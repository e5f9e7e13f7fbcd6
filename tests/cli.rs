//! `wolf config check`, `wolf db migrate` and the exit statuses.

use std::process::Stdio;

use crate::caption::{ModelsToml, answered_world, caption};
use crate::util::Dir;

#[test]
fn config_check_names_an_unknown_key() {
    let dir = Dir::new();
    std::fs::write(dir.join("bad.toml"), "[sampling]\nfsp = 2.0\n").unwrap();
    let run = dir.wolf(&["config", "check", "bad.toml"]).expect_code(2);
    assert!(run.stderr().contains("fsp"), "{}", run.stderr());
    std::fs::write(
        dir.join("bad.toml"),
        "[sampling]\nmin_frames = 9\nmax_frames = 3\n",
    )
    .unwrap();
    let run = dir.wolf(&["config", "check", "bad.toml"]).expect_code(2);
    assert!(
        run.stderr().contains("sampling.max_frames"),
        "{}",
        run.stderr()
    );
}

#[test]
fn the_example_configs_are_valid() {
    let dir = Dir::new();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            dir.wolf(&["config", "check", path.to_str().unwrap()])
                .expect_code(0);
        }
    }
}

#[test]
fn migrations_apply_once() {
    let dir = Dir::new();
    let first = dir.wolf(&["db", "migrate"]).expect_code(0).stdout();
    let known = wolf_pipeline::store::Store::known_migrations();
    assert!(known >= 4, "{known}");
    assert!(
        first.contains(&format!("applied {known} migration")),
        "{first}"
    );
    let again = dir.wolf(&["db", "migrate"]).expect_code(0).stdout();
    assert!(again.contains("applied 0 migration"), "{again}");
}

#[test]
fn an_unsupported_database_url_is_refused() {
    let dir = Dir::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wolf"))
        .args(["--db", "mysql://localhost/x", "dataset", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not supported"));
    drop(dir);
}

#[test]
fn config_check_says_where_each_model_entry_comes_from() {
    let dir = Dir::new();
    let judge = "[models.judge]\nbackend = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"j\"\n\n[models.minilm]\nbackend = \"onnx\"\nthreads = 2\n";
    std::fs::write(dir.join("judge.toml"), judge).unwrap();
    let out = dir
        .wolf(&["config", "check", "judge.toml"])
        .expect_code(0)
        .stdout();
    let line = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no line for {name}: {out}"))
            .to_owned()
    };
    assert!(line("judge").ends_with("config file"), "{out}");
    assert!(
        line("minilm").ends_with("config file (replaces the default)"),
        "{out}"
    );
    assert!(line("frame-captioner").ends_with("default"), "{out}");
    std::fs::write(
        dir.join("closed.toml"),
        format!("[models]\ndefaults = false\n\n{judge}"),
    )
    .unwrap();
    let out = dir
        .wolf(&["config", "check", "closed.toml"])
        .expect_code(0)
        .stdout();
    assert!(
        !out.lines()
            .any(|l| l.split_whitespace().next() == Some("frame-captioner")),
        "{out}"
    );
}

/// `wolf … | head -0`: every command that prints ends quietly with status 0 when the
/// reader has closed stdout, instead of panicking (`println!`) or printing an error.
#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let dir = Dir::new();
    let (_server, config) = answered_world(&dir, 2, "a.toml");
    caption(&dir, &config, "r", &[]).expect_code(0);
    let commands: &[&[&str]] = &[
        &["dataset", "list"],
        &["dataset", "show", "world", "--videos"],
        &["run", "status", "r"],
        &["run", "status", "r", "--format", "json"],
        &["export", "--run", "r"],
        &["export", "--run", "r", "--format", "wolf-json"],
        &["model", "list", "--config", &config],
        &["config", "check", &config],
        &["db", "migrate"],
        &["score", "--run", "r", "--metrics", "classic"],
        &["report"],
        &["report", "--format", "json"],
        &[
            "caption",
            "--dataset",
            "world",
            "--config",
            &config,
            "--run",
            "r",
        ],
        &["leaderboard", "build", "--out", "site"],
        &["synth", "--out", "w2", "--count", "1"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = dir
            .command(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error"),
            "{args:?}: {stderr}"
        );
    }
}

/// A PostgreSQL server that is not there fails within seconds, once, naming the host
/// and port and never the password (it waited 30 s for a pool and said "pool timed
/// out" twice).
#[test]
fn an_unreachable_postgres_url_fails_at_once_without_the_password() {
    let dir = Dir::new();
    let started = std::time::Instant::now();
    let out = dir
        .command_with_db(
            "postgres://wolf:hunter2secret@127.0.0.1:1/wolf",
            &["dataset", "list"],
        )
        .output()
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("hunter2secret"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("timed out"), "{stderr}");
}

/// `wolf config check` prints the plan as text (sampling, models with their origin and
/// the keys that use them, sources, stages with their content keys' inputs), not a Rust
/// `Debug` dump; `--format json` is the same plan for programs.
#[test]
fn config_check_prints_the_plan_as_text_and_as_json() {
    let dir = Dir::new();
    let config = ModelsToml::new("http://127.0.0.1:9/v1").write(&dir, "c.toml");
    let text = dir
        .wolf(&["config", "check", &config])
        .expect_code(0)
        .stdout();
    for needle in [
        "Sampling: 4 frames a clip; 96x72, padded; JPEG quality 90",
        "Models (where each entry comes from):",
        "used by [wolf] image_models = [\"img\"]",
        "Sources (each video's captions): img:middle, img:summary, motion, vid, wolf",
        "  cascade:img (model `img`)",
        "  fusion (model `llm`)",
        "<key of cascade:img>",
        "prompt       frame-v1",
        "Scoring: embedder `minilm`, no CapScore judge",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    // No `Debug` dump: no struct braces at a line's end, no `Plan {`.
    assert!(!text.contains("Plan {"), "{text}");
    assert!(!text.lines().any(|l| l.ends_with('{')), "{text}");

    let json = dir
        .wolf(&["config", "check", &config, "--format", "json"])
        .expect_code(0)
        .json();
    assert_eq!(json["sampling"]["rate"]["count"], 4);
    let img = json["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "img")
        .unwrap();
    assert_eq!(img["origin"], "config file");
    assert_eq!(img["backend"], "openai");
    let stages = json["wolf"]["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "frames",
            "cascade:img",
            "middle:img",
            "summary:img",
            "motion",
            "video:vid",
            "fusion"
        ]
    );
    assert_eq!(stages[3]["model"], "llm");
    assert_eq!(json["wolf"]["sources"][4], "wolf");
}
