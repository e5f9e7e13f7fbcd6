//! `wolf-bench` (`make bench`): measure wolf against its anchors, in one run on one
//! machine, and write the ratios to `bench/results.md` (and `.json`). These machines are
//! shared and noisy: each comparison alternates the two sides and reports medians.
//!
//! It runs the `wolf` binary beside it (`target/release/wolf`) as a child for every
//! command it times, and itself, through two hidden subcommands, as the scripted model
//! server and the HTTP load generator ([`scripted`]): the only code outside the tests
//! that uses `wolf-pipeline`'s `test-support`, so that the product ships none of it.
//!
//! Anchors (the Foundation issue):
//! - sampling 16 frames at 384×384 from a 60 s 1280×720 H.264 clip against the `ffmpeg`
//!   command line producing the same 16 frames (goal: ratio ≤ 0.5), for two GOP lengths;
//! - full decode against `ffmpeg -i clip -f null -` (goal ≥ 1.0×);
//! - intake (hash and probe) of 1,000 small clips: clips/s and peak memory.
//!
//! And the model issues': GGUF and HTTP ([`gguf`], [`http`]), ONNX captioners, KV
//! cache and embedder ([`onnx`]).
//! And the Pipeline issue's: overhead and memory growth ([`pipeline`]).
//! And the method's (issue 15): the demo's per-source table on its world and a fresh
//! one, whether the fused caption beats every source, the motion caption's object
//! counts, the guard's paths and embedding calls, and the demo by stage ([`method`]).
//! And the Leaderboard issue's: the static build's time and size, and the server's
//! latency under 50 clients ([`leaderboard`]).
//! And the VILA² recaption issue's: items/s of a round against the ideal and its peak
//! memory for 10,000 against 100,000 items ([`recaption`]).
//! And the long-video issue's (16): shot boundaries against PySceneDetect, F1 and
//! frames/s ([`shots`]).
//! And the data formats issue's (19): WebDataset shards against loose files at intake,
//! and a million score rows as Parquet against JSONL ([`formats`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

mod batching;
mod formats;
mod gguf;
mod http;
mod leaderboard;
mod long;
mod media;
mod method;
mod onnx;
mod pipeline;
mod queue;
mod recaption;
mod score;
mod scripted;
mod shots;

/// Measure wolf against its anchors and write the results table.
#[derive(Debug, Parser)]
#[command(
    name = "wolf-bench",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
    #[command(subcommand)]
    helper: Option<Helper>,
}

/// The bench's own children.
#[derive(Debug, Subcommand)]
enum Helper {
    /// Serve a scripted OpenAI-compatible server.
    #[command(hide = true)]
    ScriptedServer(scripted::ScriptedServerArgs),
    /// Load an OpenAI-compatible server with wolf's client.
    #[command(hide = true)]
    HttpLoad(scripted::HttpLoadArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WOLF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    let done = runtime.block_on(async {
        match cli.helper {
            Some(Helper::ScriptedServer(args)) => scripted::serve(args).await,
            Some(Helper::HttpLoad(args)) => scripted::load(args).await,
            None => run(cli.bench).await,
        }
    });
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Folder for the results; its `work/` subfolder holds the inputs (kept for reruns).
    #[arg(long, default_value = "bench")]
    out: PathBuf,
    /// Repetitions of each timed command.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Clips in the intake benchmark.
    #[arg(long, default_value_t = 1000)]
    intake_clips: usize,
    /// Shards of 100 clips in the formats benchmark.
    #[arg(long, default_value_t = 100)]
    shards: usize,
    /// Run only these groups (repeatable): media, gguf, batching, onnx, http, pipeline,
    /// method, score, leaderboard, recaption, queue, shots, long, formats. Default: all.
    #[arg(
        long,
        value_parser = ["media", "gguf", "batching", "onnx", "http", "pipeline", "method", "score", "leaderboard", "recaption", "queue", "shots", "long", "formats"]
    )]
    only: Vec<String>,
}

#[derive(Debug, Serialize, serde::Deserialize)]
pub(crate) struct Row {
    pub benchmark: String,
    pub wolf: String,
    pub anchor: String,
    pub ratio: String,
    pub goal: String,
    pub note: String,
}

async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let work = args.out.join("work");
    std::fs::create_dir_all(&work)?;
    let exe = wolf_exe()?;
    let wanted = |group: &str| args.only.is_empty() || args.only.iter().any(|g| g == group);
    let mut rows = Vec::new();
    if wanted("media") {
        for gop in [250, 60] {
            let clip = media::make_clip(&work, gop)?;
            rows.push(media::sampling(&exe, &clip, &work, gop, args.repeats)?);
            if gop == 250 {
                rows.push(media::full_decode(&clip, args.repeats)?);
            }
        }
        rows.push(media::intake(&exe, &work, args.intake_clips).await?);
    }
    if wanted("gguf") {
        rows.extend(gguf::gguf(&work).await?);
    }
    if wanted("batching") {
        rows.extend(batching::batching(&work).await?);
    }
    if wanted("onnx") {
        rows.extend(onnx::onnx(&work).await?);
    }
    if wanted("http") {
        rows.extend(http::http(&work).await?);
    }
    if wanted("pipeline") {
        rows.extend(pipeline::pipeline(&exe, &work).await?);
    }
    if wanted("method") {
        rows.extend(method::method(&exe, &work).await?);
    }
    if wanted("score") {
        rows.extend(score::score(&exe, &work).await?);
    }
    if wanted("leaderboard") {
        rows.extend(leaderboard::leaderboard(&exe, &work).await?);
    }
    if wanted("recaption") {
        rows.extend(recaption::recaption(&exe, &work).await?);
    }
    if wanted("queue") {
        rows.extend(queue::queue(&exe, &work).await?);
    }
    if wanted("shots") {
        rows.extend(shots::shots(&exe, &work)?);
    }
    if wanted("long") {
        rows.extend(long::long(&exe, &work)?);
    }
    if wanted("formats") {
        rows.extend(formats::formats(&exe, &work, args.shards)?);
    }
    if !args.only.is_empty() {
        rows = merge_with_previous(&args.out, rows);
    }
    write_results(&args.out, &rows)?;
    Ok(())
}

/// The `wolf` binary beside this one, which every timed command runs.
fn wolf_exe() -> anyhow::Result<PathBuf> {
    let exe = bench_exe()?.with_file_name("wolf");
    if !exe.is_file() {
        bail!(
            "`{}` is missing: build it first (`cargo build --release -p wolf`)",
            exe.display()
        );
    }
    Ok(exe)
}

/// This binary, for the scripted server and the load generator.
pub(crate) fn bench_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the bench's own binary")
}

/// Renders the synthetic world (the library's own renderer, on blocking threads).
pub(crate) async fn render_world(
    out: &Path,
    count: usize,
    seed: u64,
) -> anyhow::Result<wolf_datasets::synth::SynthSummary> {
    let settings = wolf_datasets::synth::SynthSettings::new(count, seed);
    let out = out.to_owned();
    let counts = wolf_pipeline::progress::Progress::new();
    let summary = tokio::task::spawn_blocking(move || {
        wolf_datasets::synth::generate(&out, &settings, &counts)
    })
    .await?;
    Ok(summary?)
}

/// Renders a synthetic world into `world` with `wolf synth`'s `args` (`--count`,
/// `--seed`, ...), unless its `annotations.json` is there from an earlier run.
pub(crate) fn synth_once(exe: &Path, world: &Path, args: &[String]) -> anyhow::Result<()> {
    if world.join(wolf_datasets::synth::ANNOTATIONS_FILE).exists() {
        return Ok(());
    }
    eprintln!("Rendering {} ...", world.display());
    run_ok(
        Command::new(exe)
            .args(["--no-progress", "synth", "--out"])
            .arg(world)
            .args(args),
    )?;
    Ok(())
}

/// A count with thousands separated: `10,000`.
pub(crate) fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs a `wolf` child with its output in `log`; returns its wall time and peak memory
/// (KiB), or an error naming `what` and the log when it fails.
pub(crate) fn run_logged(
    mut command: Command,
    log: &Path,
    what: &str,
) -> anyhow::Result<(Duration, i64)> {
    use std::process::Stdio;
    let log_file = std::fs::File::create(log)?;
    let started = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot start `{what}`"))?;
    let (status, peak_kib, _) = wait_with_usage(child)?;
    let wall = started.elapsed();
    if !status.success() {
        bail!("`{what}` failed ({status}); its log is `{}`", log.display());
    }
    Ok((wall, peak_kib))
}

/// Waits for a child and returns its exit status, peak resident memory in KiB and CPU
/// time (user + system) in seconds.
///
/// The peak is the child's own `VmHWM` (`/proc/PID/status`), read every 20 ms while it
/// runs: `wait4`'s `ru_maxrss` also counts the pages the child shared with this process
/// before `exec`, so a bench process that has grown (after the model groups) would
/// stamp its own size on every child.
pub(crate) fn wait_with_usage(
    child: std::process::Child,
) -> anyhow::Result<(std::process::ExitStatus, i64, f64)> {
    use std::os::unix::process::ExitStatusExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    let pid = child.id() as libc::pid_t;
    let peak = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    // Until the child has called exec, its `/proc` entry shows this process's memory
    // (the spawn shares it): those samples are not the child's. Its own peak starts
    // afresh at exec.
    let own_exe = std::fs::read_link("/proc/self/exe").ok();
    let poller = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            let path = format!("/proc/{pid}/status");
            let exe = format!("/proc/{pid}/exe");
            while !done.load(Ordering::Relaxed) {
                if std::fs::read_link(&exe).ok() == own_exe {
                    // Exec comes within microseconds: a child that exits soon after is
                    // still sampled once.
                    std::thread::yield_now();
                    continue;
                }
                let hwm = std::fs::read_to_string(&path).ok().and_then(|status| {
                    status
                        .lines()
                        .find(|l| l.starts_with("VmHWM:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse::<i64>().ok())
                });
                if let Some(kib) = hwm {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for a child this process spawned and has not reaped.
    let ret = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    done.store(true, Ordering::Relaxed);
    let _ = poller.join();
    if ret < 0 {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    // Reaped: the handle must not wait (or kill) again.
    std::mem::forget(child);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    // A child too short-lived to be read once falls back to `ru_maxrss`, which after a
    // shared-memory spawn may hold this process's own peak (exec folds it in).
    let polled = peak.load(Ordering::Relaxed);
    Ok((
        std::process::ExitStatus::from_raw(status),
        if polled > 0 { polled } else { usage.ru_maxrss },
        secs(usage.ru_utime) + secs(usage.ru_stime),
    ))
}

/// A server in a child process of its own that prints its URL on stdout (`wolf
/// scripted-server`, `wolf leaderboard serve`), killed on drop.
pub(crate) struct ServerChild {
    child: std::process::Child,
    pub base_url: String,
}

impl ServerChild {
    /// Starts `wolf-bench scripted-server` (a server of fixed latency on loopback, in a
    /// process of its own so that its CPU counts against no side) with `latency_ms` and
    /// `reply` (`fixed` or `grounded`).
    pub fn scripted(latency_ms: u64, reply: &str) -> anyhow::Result<Self> {
        let mut command = Command::new(bench_exe()?);
        command
            .args(["scripted-server", "--latency-ms"])
            .arg(latency_ms.to_string())
            .args(["--reply", reply]);
        Self::spawn(command, |line| {
            line.starts_with("http://").then(|| line.to_owned())
        })
    }

    /// Spawns `command` (stdin closed, stdout piped) and waits up to a minute for the
    /// first stdout line from which `url` takes the base URL (without a trailing `/`).
    /// The rest of stdout is drained on a thread of its own: a server that prints more
    /// never writes into a closed pipe.
    pub fn spawn(
        mut command: Command,
        url: impl Fn(&str) -> Option<String> + Send + 'static,
    ) -> anyhow::Result<Self> {
        use std::io::{BufRead as _, BufReader};
        use std::process::Stdio;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {command:?}"))?;
        let stdout = child
            .stdout
            .take()
            .context("the server's stdout is piped")?;
        let (found, found_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(tx) = &found
                    && let Some(base) = url(line.trim())
                {
                    let _ = tx.send(base);
                    found = None;
                }
            }
        });
        let mut server = Self {
            child,
            base_url: String::new(),
        };
        match found_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => server.base_url = base.trim_end_matches('/').to_owned(),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                bail!("{command:?} printed no URL within 60 s")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                bail!("{command:?} exited without printing its URL")
            }
        }
        Ok(server)
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs two commands alternately `repeats` times; returns their median wall times.
pub(crate) fn alternate(
    repeats: usize,
    mut ours: impl FnMut() -> Command,
    mut theirs: impl FnMut() -> Command,
) -> anyhow::Result<(Duration, Duration)> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        a.push(time(&mut ours())?);
        b.push(time(&mut theirs())?);
    }
    Ok((median(a), median(b)))
}

pub(crate) fn time(command: &mut Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    run_ok(command)?;
    Ok(start.elapsed())
}

/// Runs a command to completion; fails with its stderr unless it succeeds. Returns its
/// stdout.
pub(crate) fn run_ok(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// Removes a SQLite database and its side files.
pub(crate) fn remove_db(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

/// A file or folder of the checkout (the bench crate is one of its folders).
pub(crate) fn checkout_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

pub(crate) fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The median of positive values (seconds, rates), by [`median`].
pub(crate) fn median_f(values: impl Iterator<Item = f64>) -> f64 {
    median(values.map(Duration::from_secs_f64).collect()).as_secs_f64()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    format!(
        "{cpu}, {} cores, {:.0} GiB",
        wolf_pipeline::process::cores(),
        memory as f64 / 1024.0 / 1024.0
    )
}

/// The previous results with the rows just measured in place of theirs (a partial run,
/// `--only`); new rows go last.
fn merge_with_previous(out: &Path, rows: Vec<Row>) -> Vec<Row> {
    let previous: Vec<Row> = std::fs::read_to_string(out.join("results.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    let mut fresh: Vec<Option<Row>> = rows.into_iter().map(Some).collect();
    let mut merged: Vec<Row> = previous
        .into_iter()
        .map(|old| {
            fresh
                .iter_mut()
                .find(|new| new.as_ref().is_some_and(|n| n.benchmark == old.benchmark))
                .and_then(Option::take)
                .unwrap_or(old)
        })
        .collect();
    merged.extend(fresh.into_iter().flatten());
    merged
}

fn write_results(out: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let date = String::from_utf8(
        Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()?
            .stdout,
    )?;
    let ffmpeg_version =
        String::from_utf8(Command::new("ffmpeg").arg("-version").output()?.stdout)?
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
    let mut md = format!(
        "# wolf benchmarks\n\nMeasured by `make bench` on {}; machine: {}; {}.\n\n| benchmark | wolf | anchor | ratio | goal | note |\n|---|---|---|---|---|---|\n",
        date.trim(),
        machine(),
        ffmpeg_version
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.benchmark, r.wolf, r.anchor, r.ratio, r.goal, r.note
        ));
    }
    std::fs::write(out.join("results.md"), &md)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(rows)?,
    )?;
    print!("{md}");
    Ok(())
}
