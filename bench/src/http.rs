//! The HTTP benchmark: wolf's `openai` client against a server that answers every chat
//! request after a fixed 50 ms, with 256 requests in flight, over 5,120 requests (20
//! full rounds: no half-empty last round).
//!
//! Anchors: the ideal throughput (in flight / the server's measured round trip: its
//! timer rounds each sleep up to the next millisecond, which no client can win back;
//! the nominal in flight / 50 ms = 5,120 requests/s is in the note) and Python's
//! `openai.AsyncOpenAI` (`bench/openai_client.py`, run with `.wolf/venv/bin/python`)
//! with the same concurrency on the same server. The server (`wolf scripted-server`)
//! and each client (`wolf http-load`, the Python script) run in processes of their
//! own, so that each client's CPU time is its own; each client measures its CPU over
//! the timed requests only (after a warm-up), leaving interpreter start-up out.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use super::{Row, ServerChild, median_f, run_ok};

const LATENCY_MS: u64 = 50;
const IN_FLIGHT: usize = 256;
const REQUESTS: usize = 5120;
/// Runs of each client, alternated.
const REPEATS: usize = 3;
/// Sequential requests that measure a lone request's round trip.
const LONE: usize = 40;

/// What one client run printed.
#[derive(Debug, Deserialize)]
struct Load {
    seconds: f64,
    ok: usize,
    cpu_s: f64,
    #[serde(default)]
    openai: Option<String>,
}

fn run_load(command: &mut Command) -> anyhow::Result<Load> {
    let text = run_ok(command.stdin(Stdio::null()))?;
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str(line)
        .with_context(|| format!("{command:?} printed `{line}`, not its JSON"))
}

fn python() -> anyhow::Result<(PathBuf, PathBuf)> {
    let home = wolf_pipeline::home::Home::locate()
        .context("no `.wolf/` folder: run `make bench` from the checkout")?;
    let python = home.root().join("venv/bin/python");
    let script = home
        .root()
        .parent()
        .context("`.wolf/` has a parent")?
        .join("bench/openai_client.py");
    if !python.exists() {
        bail!(
            "`{}` is missing: run `make venv` (or `make bench`)",
            python.display()
        );
    }
    if !script.exists() {
        bail!("`{}` is missing", script.display());
    }
    run_ok(Command::new(&python).args(["-c", "import openai"]))
        .context("the venv has no `openai` package: run `make venv`")?;
    Ok((python, script))
}

pub(super) async fn http(_work: &Path) -> anyhow::Result<Vec<Row>> {
    let exe = std::env::current_exe()?;
    let (python, script) = python()?;
    let server = ServerChild::scripted(LATENCY_MS, "fixed")?;
    let (requests, in_flight) = (REQUESTS.to_string(), IN_FLIGHT.to_string());
    let ours = || {
        let mut c = Command::new(&exe);
        c.args(["http-load", "--base-url", &server.base_url]).args([
            "--requests",
            &requests,
            "--in-flight",
            &in_flight,
        ]);
        c
    };
    let theirs = || {
        let mut c = Command::new(&python);
        c.arg(&script).args(["--base-url", &server.base_url]).args([
            "--requests",
            &requests,
            "--in-flight",
            &in_flight,
        ]);
        c
    };
    eprintln!(
        "HTTP benchmark: {REQUESTS} requests, {IN_FLIGHT} in flight, {LATENCY_MS} ms latency ..."
    );
    // A lone request's round trip: the latency the server really gives (its timer
    // rounds sleeps up to the next millisecond), for the note.
    let lone = run_load(
        Command::new(&exe)
            .args(["http-load", "--base-url", &server.base_url])
            .args(["--requests", &LONE.to_string(), "--in-flight", "1"]),
    )?;
    let round_trip = lone.seconds / LONE as f64;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        a.push(run_load(&mut ours())?);
        b.push(run_load(&mut theirs())?);
    }
    for (who, runs) in [("wolf", &a), ("openai", &b)] {
        if let Some(bad) = runs.iter().find(|l| l.ok != REQUESTS) {
            bail!("the {who} client got {} of {REQUESTS} replies", bad.ok);
        }
    }
    drop(server);
    let version = b.iter().find_map(|l| l.openai.clone()).unwrap_or_default();
    let per_s = |runs: &[Load]| REQUESTS as f64 / median_f(runs.iter().map(|l| l.seconds));
    let cpu_k = |runs: &[Load]| median_f(runs.iter().map(|l| l.cpu_s)) * 1000.0 / REQUESTS as f64;
    let (ours_rps, theirs_rps) = (per_s(&a), per_s(&b));
    let (ours_cpu, theirs_cpu) = (cpu_k(&a), cpu_k(&b));
    let nominal = IN_FLIGHT as f64 * 1000.0 / LATENCY_MS as f64;
    let ideal = IN_FLIGHT as f64 / round_trip;
    let setting =
        format!("{REQUESTS} chat requests, {IN_FLIGHT} in flight, server latency {LATENCY_MS} ms");
    Ok(vec![
        Row {
            benchmark: format!("HTTP client throughput vs ideal ({setting})"),
            wolf: format!("{ours_rps:.0} req/s"),
            anchor: format!(
                "{ideal:.0} req/s (in flight / a lone request's round trip, {:.1} ms)",
                round_trip * 1000.0
            ),
            ratio: format!("{:.3}", ours_rps / ideal),
            goal: "≥ 0.95".into(),
            note: format!(
                "median of {REPEATS}; server in its own process; the round trip is the mean \
                 of {LONE} requests one at a time through the same client; against the \
                 nominal ideal (in flight / {LATENCY_MS} ms = {nominal:.0} req/s) the ratio \
                 is {:.3}",
                ours_rps / nominal
            ),
        },
        Row {
            benchmark: format!("HTTP client throughput vs Python openai ({setting})"),
            wolf: format!("{ours_rps:.0} req/s"),
            anchor: format!("{theirs_rps:.0} req/s (AsyncOpenAI, openai {version})"),
            ratio: format!("{:.2}", ours_rps / theirs_rps),
            goal: "≥ 1.0".into(),
            note: format!(
                "alternated, median of {REPEATS}; both keep {IN_FLIGHT} connections alive"
            ),
        },
        Row {
            benchmark: "HTTP client CPU per 1,000 requests".into(),
            wolf: format!("{ours_cpu:.3} s"),
            anchor: format!("{theirs_cpu:.3} s (AsyncOpenAI)"),
            ratio: format!("{:.3}", ours_cpu / theirs_cpu),
            goal: "≤ 0.2".into(),
            note: "user + system CPU of the client process over the timed requests".into(),
        },
    ])
}
