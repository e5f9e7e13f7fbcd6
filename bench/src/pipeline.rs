//! The pipeline benchmarks (the Pipeline issue): `wolf caption` over 500 synthetic clips
//! with scripted models of fixed latency against the model-bound ideal; and the peak
//! memory of `wolf caption` on 1,000 against 10,000 videos. (The demo's wall time by
//! stage is in [`crate::method`].)
//!
//! Every wolf under test runs as a child process, timed from spawn to exit, so its
//! start-up counts against it. The models are `wolf scripted-server` processes (an
//! OpenAI-compatible server answering after a fixed latency): the 20 ms one serves the
//! image and the video model, the 50 ms one the LLM. The image server answers with a
//! grounded caption (`--reply grounded`) so that the motion stage has boxes to track.

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::{Row, ServerChild, remove_db, run_ok, wait_with_usage};
use wolf_pipeline::store::Store;

use crate::{bench_exe, render_world};

/// Clips of the synthetic world the benchmarks run on.
const CLIPS: usize = 500;
const SEED: u64 = 5;
/// Frames sampled per clip (`[sampling] count`).
const FRAMES: usize = 4;
const CAPTIONER_LATENCY_MS: u64 = 20;
const LLM_LATENCY_MS: u64 = 50;
/// `max_concurrency` of the image and the video model each.
const CAPTIONER_CONCURRENCY: usize = 8;
const LLM_CONCURRENCY: usize = 4;
/// Timed runs of the overhead benchmark.
const REPEATS: usize = 3;
/// Sequential requests that measure a server's real round trip.
const LONE: usize = 40;
/// Videos in the memory benchmark: the small and the large dataset.
const MEMORY_VIDEOS: [usize; 2] = [1_000, 10_000];

/// The mean round trip of a lone chat request, in milliseconds (the server's timer
/// rounds its sleep up to the next millisecond, and the request itself costs a bit).
fn round_trip_ms(server: &ServerChild) -> anyhow::Result<f64> {
    let text = run_ok(
        Command::new(bench_exe()?)
            .args(["http-load", "--base-url", &server.base_url])
            .args(["--requests", &LONE.to_string(), "--in-flight", "1"])
            .stdin(Stdio::null()),
    )?;
    let line = text.lines().last().unwrap_or("");
    let load: serde_json::Value = serde_json::from_str(line)
        .with_context(|| format!("`wolf http-load` printed `{line}`, not its JSON"))?;
    let seconds = load["seconds"]
        .as_f64()
        .context("`wolf http-load` printed no `seconds`")?;
    Ok(seconds * 1000.0 / LONE as f64)
}

/// The model entries and `[wolf]` of the benchmark's config.
pub(super) fn write_config(path: &Path, captioners: &str, llm: &str) -> anyhow::Result<()> {
    let text = format!(
        r#"# Written by `wolf bench` (pipeline): scripted models of fixed latency.
[sampling]
count = {FRAMES}

[models.img]
backend = "openai"
base_url = "{captioners}"
model = "img"
max_concurrency = {CAPTIONER_CONCURRENCY}

[models.vid]
backend = "openai"
base_url = "{captioners}"
model = "vid"
max_concurrency = {CAPTIONER_CONCURRENCY}

[models.llm]
backend = "openai"
base_url = "{llm}"
model = "llm"
max_concurrency = {LLM_CONCURRENCY}

[wolf]
image_models = ["img"]
video_models = ["vid"]
llm = "llm"
cascade = true
motion_llm = false
# Scripted replies are not captions: the guard would reject them all.
guard = "off"
"#
    );
    std::fs::write(path, text).with_context(|| format!("cannot write `{}`", path.display()))
}

/// What one `wolf caption` child did: its wall time (spawn to exit), peak RSS, CPU, and
/// its report's request count and per-stage times.
#[derive(Debug)]
pub(super) struct CaptionRun {
    pub wall: Duration,
    pub peak_kib: i64,
    cpu_s: f64,
    pub requests: u64,
    stages: Vec<(String, f64)>,
}

/// Registers `source` as dataset `pipeline` in a fresh database at `db` (not timed).
pub(super) fn fresh_dataset(exe: &Path, db: &Path, source: &Path) -> anyhow::Result<()> {
    remove_db(db);
    run_ok(
        Command::new(exe)
            .args(["--no-progress", "--db"])
            .arg(db)
            .args(["dataset", "add", "pipeline"])
            .arg(source)
            .stdin(Stdio::null()),
    )?;
    Ok(())
}

/// Runs `wolf caption` over dataset `pipeline` as a child and measures it; fails unless
/// every stage of every video is done.
pub(super) fn caption(
    exe: &Path,
    db: &Path,
    config: &Path,
    log: &Path,
) -> anyhow::Result<CaptionRun> {
    let start = Instant::now();
    let mut child = Command::new(exe)
        .args(["--no-progress", "--db"])
        .arg(db)
        .args(["caption", "--dataset", "pipeline", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(log)?)
        .spawn()
        .context("cannot start `wolf caption`")?;
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .context("the child's stdout is piped")?
        .read_to_string(&mut stdout)?;
    let (status, peak_kib, cpu_s) = wait_with_usage(child)?;
    let wall = start.elapsed();
    if !status.success() {
        bail!(
            "`wolf caption` failed ({status}); its log is `{}`:\n{stdout}",
            log.display()
        );
    }
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("run `"))
        .with_context(|| format!("`wolf caption` printed no summary:\n{stdout}"))?;
    if !summary.contains(" 0 failed stages") {
        bail!("`wolf caption` had failed stages: {summary}");
    }
    Ok(CaptionRun {
        wall,
        peak_kib,
        cpu_s,
        requests: number_before(summary, " model requests")
            .with_context(|| format!("no request count in `{summary}`"))? as u64,
        stages: stage_lines(&stdout),
    })
}

/// The number just before `marker` in `line`: `12` in `..., 12 model requests`.
pub(crate) fn number_before(line: &str, marker: &str) -> Option<f64> {
    let head = &line[..line.find(marker)?];
    head.rsplit([' ', ',', '('])
        .find(|w| !w.is_empty())?
        .parse()
        .ok()
}

/// The time of a demo step: `2.0` in `1/4 ... in 2.0 s -> ...`.
pub(crate) fn seconds_after_in(line: &str) -> Option<f64> {
    let tail = &line[line.rfind(" in ")? + 4..];
    tail.split_whitespace().next()?.parse().ok()
}

/// The `  STAGE   N.N s (summed over videos in flight)` lines of a run's report.
pub(crate) fn stage_lines(stdout: &str) -> Vec<(String, f64)> {
    stdout
        .lines()
        .filter(|l| l.ends_with("s (summed over videos in flight)"))
        .filter_map(|l| {
            let head = l[..l.find(" s (summed")?].trim();
            let (stage, seconds) = head.rsplit_once(' ')?;
            Some((stage.trim().to_owned(), seconds.parse().ok()?))
        })
        .collect()
}

/// The 500-clip world, rendered once.
pub(super) async fn world(work: &Path) -> anyhow::Result<PathBuf> {
    let world = work.join("pipeline-world");
    let annotations = world.join("annotations.json");
    let complete = std::fs::read_to_string(&annotations)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&t).ok())
        .is_some_and(|m| m.len() == CLIPS);
    if !complete {
        eprintln!("Rendering {CLIPS} clips for the pipeline benchmark ...");
        let _ = std::fs::remove_dir_all(&world);
        render_world(&world, CLIPS, SEED).await?;
    }
    Ok(world)
}

/// The world's clip files, in name order.
pub(super) fn clips(world: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut clips: Vec<PathBuf> = std::fs::read_dir(world)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    clips.retain(|p| p.extension().is_some_and(|e| e == "mp4"));
    clips.sort();
    if clips.len() != CLIPS {
        bail!(
            "`{}` has {} clips, not {CLIPS}: delete it to render it again",
            world.display(),
            clips.len()
        );
    }
    Ok(clips)
}

/// A JSONL manifest of `videos` entries: the clips over and over, each time under new
/// keys (`r00/clip_00000.mp4`, ...; repetition `r` after the whole of `r - 1`).
pub(super) fn manifest(work: &Path, clips: &[PathBuf], videos: usize) -> anyhow::Result<PathBuf> {
    let path = work.join(format!("pipeline-manifest-{videos}.jsonl"));
    let mut text = String::new();
    for i in 0..videos {
        let clip = &clips[i % clips.len()];
        let name = clip.file_name().context("a clip has a name")?;
        let row = serde_json::json!({
            "path": clip.canonicalize()?,
            "key": format!("r{:02}/{}", i / clips.len(), name.to_string_lossy()),
        });
        text.push_str(&row.to_string());
        text.push('\n');
    }
    std::fs::write(&path, text)?;
    Ok(path)
}

pub(super) async fn pipeline(exe: &Path, work: &Path) -> anyhow::Result<Vec<Row>> {
    let world = world(work).await?;
    let clips = clips(&world)?;
    Ok(vec![
        overhead(exe, work, &world).await?,
        memory(exe, work, &clips)?,
    ])
}

/// Seconds each model's slots were held in run `run` of the database at `db`: the sum
/// of the stored latencies (HTTP exchanges, whole milliseconds rounded down) of the
/// results behind its captions, over the model's concurrency. Frame captions inside
/// the cascade are not captions, so the image model is left out.
async fn held_seconds(db: &Path, run: &str) -> anyhow::Result<(f64, f64)> {
    let store = Store::open(&db.display().to_string()).await?;
    let run = store.run(run).await?;
    let (mut llm_ms, mut video_ms) = (0i64, 0i64);
    for caption in store.captions(run.id, None).await? {
        let Some(result) = store.result(&caption.result_key).await? else {
            continue;
        };
        match result.model.as_deref() {
            Some("llm") => llm_ms += result.latency_ms.unwrap_or(0),
            Some("vid") => video_ms += result.latency_ms.unwrap_or(0),
            _ => {}
        }
    }
    Ok((
        llm_ms as f64 / 1000.0 / LLM_CONCURRENCY as f64,
        video_ms as f64 / 1000.0 / CAPTIONER_CONCURRENCY as f64,
    ))
}

/// Wall time of `wolf caption` on the 500 clips against the busiest model's busy time.
async fn overhead(exe: &Path, work: &Path, world: &Path) -> anyhow::Result<Row> {
    let captioners = ServerChild::scripted(CAPTIONER_LATENCY_MS, "grounded")?;
    let llm = ServerChild::scripted(LLM_LATENCY_MS, "fixed")?;
    let config = work.join("pipeline.toml");
    write_config(&config, &captioners.base_url, &llm.base_url)?;
    let (captioner_rt, llm_rt) = (round_trip_ms(&captioners)?, round_trip_ms(&llm)?);
    // Requests per clip: the cascade's frames and the middle frame alone (image model),
    // one clip caption (video model), the summary and the fusion (LLM; the motion is a
    // fixed sentence).
    let image = CLIPS * (FRAMES + 1);
    let video = CLIPS;
    let chat = CLIPS * 2;
    let busy = |requests: usize, latency_ms: f64, concurrency: usize| {
        requests as f64 * latency_ms / 1000.0 / concurrency as f64
    };
    let nominal = [
        busy(image, CAPTIONER_LATENCY_MS as f64, CAPTIONER_CONCURRENCY),
        busy(video, CAPTIONER_LATENCY_MS as f64, CAPTIONER_CONCURRENCY),
        busy(chat, LLM_LATENCY_MS as f64, LLM_CONCURRENCY),
    ];
    let ideal = nominal.iter().copied().fold(0.0, f64::max);
    let ideal_measured = [
        busy(image, captioner_rt, CAPTIONER_CONCURRENCY),
        busy(video, captioner_rt, CAPTIONER_CONCURRENCY),
        busy(chat, llm_rt, LLM_CONCURRENCY),
    ]
    .into_iter()
    .fold(0.0, f64::max);
    eprintln!(
        "Pipeline overhead: {CLIPS} clips, {CAPTIONER_LATENCY_MS} ms captioners, \
         {LLM_LATENCY_MS} ms LLM, ideal {ideal:.2} s ..."
    );
    let db = work.join("pipeline.db");
    let log = work.join("pipeline-caption.log");
    let run_name = wolf_pipeline::wolf::default_run_name("pipeline", &config);
    let mut runs = Vec::new();
    for _ in 0..REPEATS {
        fresh_dataset(exe, &db, world)?;
        let run = caption(exe, &db, &config, &log)?;
        if run.requests != (image + video + chat) as u64 {
            bail!(
                "`wolf caption` made {} model requests, not the {} this benchmark's ideal \
                 assumes ({image} image, {video} video, {chat} LLM): update the ideal",
                run.requests,
                image + video + chat
            );
        }
        let held = held_seconds(&db, &run_name).await?;
        runs.push((run, held));
    }
    remove_db(&db);
    runs.sort_by_key(|(r, _)| r.wall);
    let (run, (llm_held, video_held)) = &runs[runs.len() / 2];
    let wall = run.wall.as_secs_f64();
    let stage = |name: &str| {
        run.stages
            .iter()
            .find(|(s, _)| s == name)
            .map_or(0.0, |(_, t)| *t)
    };
    let cores = wolf_pipeline::process::cores() as f64;
    let all = runs
        .iter()
        .map(|(r, _)| format!("{:.2}", r.wall.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Row {
        benchmark: format!(
            "pipeline overhead: `wolf caption` of {CLIPS} clips, scripted models \
             ({CAPTIONER_LATENCY_MS} ms image/video, {LLM_LATENCY_MS} ms LLM)"
        ),
        wolf: format!("{wall:.2} s"),
        anchor: format!(
            "{ideal_measured:.2} s (model-bound ideal: {chat} LLM requests x {llm_rt:.1} ms \
             / {LLM_CONCURRENCY})"
        ),
        ratio: format!("{:.3}", wall / ideal_measured),
        goal: "≤ 1.05".into(),
        note: format!(
            "median of {REPEATS} (all: {all}); child process, spawn to exit, fresh database \
             each; {} requests ({image} image, {video} video, {chat} LLM; at most \
             {CAPTIONER_CONCURRENCY}, {CAPTIONER_CONCURRENCY} and {LLM_CONCURRENCY} in \
             flight) checked against the run's summary; ideal = max over models of \
             requests x round trip / concurrency, with each server's round trip measured \
             one request at a time ({captioner_rt:.1} ms and {llm_rt:.1} ms: the timer \
             rounds each sleep up to the next millisecond); at the nominal {CAPTIONER_LATENCY_MS} \
             and {LLM_LATENCY_MS} ms: image {:.2} s, video {:.2} s, LLM {:.2} s, ideal \
             {ideal:.2} s (ratio {:.3}); the run held the LLM's \
             slots {llm_held:.2} s and the video model's {video_held:.2} s (stored \
             latencies, whole ms); decode {:.1} s summed over videos = {:.0}% of the \
             wall's {cores:.0}-core time; CPU of the caption process {:.1} s",
            run.requests,
            nominal[0],
            nominal[1],
            nominal[2],
            wall / ideal,
            stage("frames"),
            100.0 * stage("frames") / (wall * cores),
            run.cpu_s,
        ),
    })
}

/// Peak RSS of `wolf caption` on 1,000 and on 10,000 videos (the world's clips under
/// repeated keys), with servers that answer at once.
fn memory(exe: &Path, work: &Path, clips: &[PathBuf]) -> anyhow::Result<Row> {
    let captioners = ServerChild::scripted(0, "grounded")?;
    let llm = ServerChild::scripted(0, "fixed")?;
    let config = work.join("pipeline-memory.toml");
    write_config(&config, &captioners.base_url, &llm.base_url)?;
    let db = work.join("pipeline-memory.db");
    let log = work.join("pipeline-memory.log");
    let mut runs = Vec::new();
    for videos in MEMORY_VIDEOS {
        eprintln!("Pipeline memory: `wolf caption` of {videos} videos ...");
        let manifest = manifest(work, clips, videos)?;
        fresh_dataset(exe, &db, &manifest)?;
        runs.push(caption(exe, &db, &config, &log)?);
    }
    remove_db(&db);
    let [small, large] = [&runs[0], &runs[1]];
    let [few, many] = MEMORY_VIDEOS;
    let mib = |kib: i64| kib as f64 / 1024.0;
    Ok(Row {
        benchmark: format!(
            "pipeline memory: peak RSS of `wolf caption`, {many} against {few} videos"
        ),
        wolf: format!("{:.0} MiB", mib(large.peak_kib)),
        anchor: format!("{:.0} MiB ({few} videos)", mib(small.peak_kib)),
        ratio: format!(
            "{:.2}",
            large.peak_kib as f64 / small.peak_kib.max(1) as f64
        ),
        goal: "≤ 1.2".into(),
        note: format!(
            "{many} videos = {} distinct clips x {} keys ({few} = x {}); results of repeated \
             content come from the cache: this measures the runner's per-video memory, not \
             {many} distinct model calls ({} and {} model requests made); scripted servers \
             answering at once; runs of {:.1} s and {:.1} s",
            clips.len(),
            many / clips.len(),
            few / clips.len(),
            small.requests,
            large.requests,
            small.wall.as_secs_f64(),
            large.wall.as_secs_f64(),
        ),
    })
}
