//! The preflight: `wolf caption`, `wolf worker` and `wolf score --judge` check every
//! model they use before they start work, and fail at once (exit 2) with the entry's
//! name and the config key or flag that names it.

use std::time::{Duration, Instant};

use wolf_pipeline::models::scripted::{Behaviour, Script, ScriptedServer};

use crate::caption::{ModelsToml, answering, caption, caption_args, world};
use crate::util::{Dir, Run};

/// A loopback port nobody listens on: bound, then let go.
fn stopped_server() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/v1")
}

/// Runs `wolf ARGS` and expects exit 2 within a few seconds, with `needles` in stderr.
fn fails_at_once(dir: &Dir, args: &[&str], needles: &[&str]) -> Run {
    let started = Instant::now();
    let run = dir.wolf(args).expect_code(2);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{args:?} took {:?}",
        started.elapsed()
    );
    for needle in needles {
        assert!(run.stderr().contains(needle), "{needle}: {}", run.stderr());
    }
    run
}

#[test]
fn caption_and_worker_fail_at_once_on_a_stopped_server_with_the_key_that_names_the_model() {
    let dir = Dir::new();
    world(&dir, 1);
    let config = ModelsToml::new(&stopped_server()).write(&dir, "stopped.toml");
    fails_at_once(
        &dir,
        &caption_args(&config, "r", &[]),
        &[r#"[wolf] image_models = ["img"]"#, "`img`", "(connect)"],
    );
    // Nothing was opened: the run does not exist.
    dir.wolf(&["run", "status", "r"]).expect_code(2);

    // A queued run's models are checked when a worker starts.
    caption(&dir, &config, "q", &["--enqueue-only"]).expect_code(0);
    fails_at_once(
        &dir,
        &["worker", "--exit-when-idle", "--poll-secs", "0.05"],
        &[r#"[wolf] image_models = ["img"]"#, "(connect)"],
    );
}

#[test]
fn a_model_the_server_does_not_list_is_named_with_the_names_it_lists() {
    let dir = Dir::new();
    world(&dir, 1);
    let server =
        ScriptedServer::start(Script::always(answering()).with_models(["img", "vid", "llm-7b"]))
            .unwrap();
    let config = ModelsToml::new(server.base_url()).write(&dir, "c.toml");
    fails_at_once(
        &dir,
        &caption_args(&config, "r", &[]),
        &[
            r#"[wolf] llm = "llm""#,
            "does not list model `llm`",
            "`img`, `vid`, `llm-7b`",
        ],
    );
    assert_eq!(server.requests(), 0, "no work started");
    // `--no-preflight` skips the check (this server answers whatever name it is asked).
    caption(&dir, &config, "r", &["--no-preflight"]).expect_code(0);
}

#[test]
fn score_checks_its_judge_before_judging() {
    let dir = Dir::new();
    dir.synthetic_dataset(1, 5);
    let server = crate::util::serve(Script::always(answering()));
    let config = ModelsToml::new(server.base_url()).write(&dir, "c.toml");
    dir.wolf(&[
        "caption",
        "--dataset",
        "ds",
        "--config",
        &config,
        "--run",
        "r",
    ])
    .expect_code(0);
    std::fs::write(
        dir.join("judge.toml"),
        format!(
            "[models.judge]\nbackend = \"openai\"\nbase_url = \"{}\"\nmodel = \"judge\"\n",
            stopped_server()
        ),
    )
    .unwrap();
    let args = [
        "score",
        "--run",
        "r",
        "--config",
        "judge.toml",
        "--judge",
        "judge",
        "--metrics",
        "capscore",
    ];
    fails_at_once(&dir, &args, &["`--judge judge`", "(connect)"]);
    let judge = ScriptedServer::start(Script::always(Behaviour::text("0.5;0.5"))).unwrap();
    std::fs::write(
        dir.join("judge.toml"),
        format!(
            "[models.judge]\nbackend = \"openai\"\nbase_url = \"{}\"\nmodel = \"judge\"\n\n[score]\njudge = \"judge\"\n",
            judge.base_url()
        ),
    )
    .unwrap();
    fails_at_once(
        &dir,
        &[
            "score",
            "--run",
            "r",
            "--config",
            "judge.toml",
            "--metrics",
            "capscore",
        ],
        &[r#"`[score] judge = "judge"`"#, "it lists `scripted`"],
    );
}

/// The last screen of a failed run: its failure reasons grouped, each with its count and
/// a hint naming the entry to check; each failed stage logged once with its video and
/// kind. A worker's summary lists its reasons the same way; a run that succeeds ends with
/// the next commands.
#[test]
fn a_failed_run_ends_with_its_reasons_counted_and_a_hint_and_a_good_one_with_next_steps() {
    let dir = Dir::new();
    world(&dir, 2);
    let config = ModelsToml::new(&stopped_server()).write(&dir, "stopped.toml");
    let run = caption(&dir, &config, "r", &["--no-preflight"]).expect_code(1);
    let stdout = run.stdout();
    let line = |kind: &str| -> String {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{kind}: model `img`")))
            .unwrap_or_else(|| panic!("no {kind} reason for img:\n{stdout}"))
            .to_owned()
    };
    let connect = line("connect");
    // Two videos, each with its cascade and middle frame refused: one reason, counted.
    let count: u64 = connect
        .rsplit_once('\u{d7}')
        .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no count: {connect}"));
    assert!(count >= 4, "{connect}");
    assert!(
        connect.ends_with("is the server up? (`wolf model check img`)"),
        "{connect}"
    );
    assert!(stdout.contains("Why stages failed ("), "{stdout}");
    assert!(!stdout.contains("Next:"), "{stdout}");
    // The dependencies come after every cause.
    let position = |needle: &str| stdout.find(needle).unwrap_or(usize::MAX);
    assert!(position("connect: ") < position("dependency: "), "{stdout}");
    let stderr = run.stderr();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("A stage failed."))
        .collect();
    let failed: usize = dir
        .wolf(&["export", "--run", "r", "--failed"])
        .expect_code(0)
        .stdout()
        .lines()
        .count();
    assert_eq!(warnings.len(), failed, "{stderr}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("clip_00000.mp4") && w.contains("connect")),
        "{stderr}"
    );

    // A worker's failed attempts, the same way.
    caption(&dir, &config, "q", &["--enqueue-only"]).expect_code(0);
    let worker = dir
        .wolf(&[
            "worker",
            "--exit-when-idle",
            "--poll-secs",
            "0.05",
            "--max-attempts",
            "1",
            "--no-preflight",
        ])
        .expect_code(1);
    assert!(
        worker
            .stdout()
            .contains("is the server up? (`wolf model check img`)"),
        "{}",
        worker.stdout()
    );

    let server = crate::util::serve(Script::always(answering()));
    let good = ModelsToml::new(server.base_url()).write(&dir, "good.toml");
    let stdout = caption(&dir, &good, "g", &[]).expect_code(0).stdout();
    assert!(!stdout.contains("Why stages failed"), "{stdout}");
    for next in [
        "wolf score --run g",
        "wolf export --run g",
        "wolf leaderboard build --out site",
    ] {
        assert!(stdout.contains(next), "{next}: {stdout}");
    }
}
