//! The work queue (the several-machines issue), on a fresh database of the loopback
//! PostgreSQL server for each measurement:
//! - **scaling**: 1, 2, 4 and 8 `wolf worker` processes (2 videos in flight each) on one
//!   queued run of 64 synthetic clips whose models are scripted servers of fixed
//!   latency (200 ms for the captioners, 400 ms for the LLM: the work is model-bound,
//!   so that the 2 cores do not cap it), timed from the workers' spawn to the last
//!   one's exit;
//! - **pickup latency**: one idle worker (default `--poll-secs 1`) and videos queued
//!   one at a time, each at a random moment of its poll interval: the time from the
//!   enqueue to the claim;
//! - **ceiling**: the queue alone (claim in batches of 16, commit each item with one
//!   caption) by 8 tasks of this process over 20,000 items, no model at all.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use wolf_pipeline::store::{
    JobCommit, NewDataset, QueueSettings, StageWrite, Store, StoredResult, VideoMeta, VideoRecord,
};

use super::pipeline::{clips, manifest, world, write_config};
use super::{Row, ServerChild, run_ok};

const VIDEOS: usize = 64;
const WORKERS: [usize; 4] = [1, 2, 4, 8];
const IN_FLIGHT: usize = 2;
const CAPTIONER_LATENCY_MS: u64 = 200;
const LLM_LATENCY_MS: u64 = 400;
const PICKUPS: usize = 20;
const CEILING_ITEMS: usize = 20_000;
const CEILING_TASKS: usize = 8;
const CEILING_BATCH: usize = 16;

pub(super) async fn queue(exe: &Path, work: &Path) -> anyhow::Result<Vec<Row>> {
    if let Err(e) = wolf_pipeline::store::testing::fresh_postgres().await {
        bail!("the queue benchmarks need the loopback PostgreSQL server: {e}");
    }
    let world = world(work).await?;
    let clips = clips(&world)?;
    let source = manifest(work, &clips, VIDEOS)?;
    let captioners = ServerChild::scripted(CAPTIONER_LATENCY_MS, "grounded")?;
    let llm = ServerChild::scripted(LLM_LATENCY_MS, "fixed")?;
    let config = work.join("queue.toml");
    write_config(&config, &captioners.base_url, &llm.base_url)?;
    let mut rows = scaling(exe, work, &source, &config).await?;
    rows.push(pickup(exe, work, &config, false).await?);
    rows.push(pickup(exe, work, &config, true).await?);
    rows.push(ceiling().await?);
    Ok(rows)
}

/// A fresh database with dataset `q` from `source` and run `r` queued on it.
async fn queued(exe: &Path, source: &Path, config: &Path) -> anyhow::Result<String> {
    let db = wolf_pipeline::store::testing::fresh_postgres()
        .await
        .map_err(anyhow::Error::msg)?;
    let wolf = |args: &[&str]| {
        let mut command = Command::new(exe);
        command
            .args(["--no-progress", "--db", &db])
            .args(args)
            .stdin(Stdio::null());
        command
    };
    let source = source.display().to_string();
    let config = config.display().to_string();
    tokio::task::block_in_place(|| {
        run_ok(&mut wolf(&["dataset", "add", "q", &source]))?;
        run_ok(&mut wolf(&[
            "caption",
            "--dataset",
            "q",
            "--config",
            &config,
            "--run",
            "r",
            "--enqueue-only",
        ]))
    })?;
    Ok(db)
}

async fn scaling(
    exe: &Path,
    work: &Path,
    source: &Path,
    config: &Path,
) -> anyhow::Result<Vec<Row>> {
    let mut walls = Vec::new();
    for workers in WORKERS {
        let db = queued(exe, source, config).await?;
        let wall = tokio::task::block_in_place(|| -> anyhow::Result<Duration> {
            let started = Instant::now();
            let children = (0..workers)
                .map(|i| {
                    let log = std::fs::File::create(
                        work.join(format!("queue-worker-{workers}-{i}.log")),
                    )?;
                    Command::new(exe)
                        .args(["--no-progress", "--db", &db, "worker", "--exit-when-idle"])
                        .args(["--concurrency", &IN_FLIGHT.to_string()])
                        .args(["--name", &format!("bench:{i}")])
                        .stdin(Stdio::null())
                        .stdout(log.try_clone()?)
                        .stderr(log)
                        .spawn()
                        .context("cannot start `wolf worker`")
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            for mut child in children {
                let status = child.wait()?;
                if !status.success() {
                    bail!("a worker failed ({status}); see `{}`", work.display());
                }
            }
            Ok(started.elapsed())
        })?;
        let store = Store::open(&db).await?;
        let status = store.queue_status("r").await?;
        if status.count.done != VIDEOS as i64 || status.commits != VIDEOS as i64 {
            bail!("{workers} workers left the queue at {status:?}");
        }
        walls.push((workers, wall));
    }
    let one = walls[0].1.as_secs_f64();
    let ideal_one = VIDEOS as f64 / IN_FLIGHT as f64
        * (4 * CAPTIONER_LATENCY_MS + 2 * LLM_LATENCY_MS) as f64
        / 1000.0;
    Ok(walls
        .iter()
        .map(|(workers, wall)| {
            let speedup = one / wall.as_secs_f64();
            Row {
                benchmark: format!("queue: {workers} worker(s) on {VIDEOS} videos"),
                wolf: format!(
                    "{:.1} s ({:.2} videos/s)",
                    wall.as_secs_f64(),
                    VIDEOS as f64 / wall.as_secs_f64()
                ),
                anchor: format!("1 worker: {one:.1} s"),
                ratio: format!("{speedup:.2}× faster"),
                goal: match workers {
                    4 => "≥ 3.6×".to_owned(),
                    1 => "—".to_owned(),
                    n => format!("near {n}×"),
                },
                note: format!(
                    "{IN_FLIGHT} videos in flight per worker; scripted models {CAPTIONER_LATENCY_MS} / {LLM_LATENCY_MS} ms (critical path of a video about {:.1} s; one worker's model-bound ideal {ideal_one:.1} s); spawn to last exit, start-up included",
                    (4 * CAPTIONER_LATENCY_MS + 2 * LLM_LATENCY_MS) as f64 / 1000.0
                ),
            }
        })
        .collect())
}

/// Enqueue-to-claim times of an idle worker polling at its default interval, and woken
/// by the enqueue's notification where it `listen`s (PostgreSQL's LISTEN/NOTIFY).
async fn pickup(exe: &Path, work: &Path, config: &Path, listen: bool) -> anyhow::Result<Row> {
    let db = wolf_pipeline::store::testing::fresh_postgres()
        .await
        .map_err(anyhow::Error::msg)?;
    let store = Store::open(&db).await?;
    let clip = manifest(work, &clips(&work.join("pipeline-world"))?, 1)?;
    tokio::task::block_in_place(|| {
        run_ok(
            Command::new(exe)
                .args(["--no-progress", "--db", &db, "dataset", "add", "q"])
                .arg(&clip)
                .stdin(Stdio::null()),
        )
    })?;
    let dataset = store.dataset("q").await?;
    let text = std::fs::read_to_string(config)?;
    let log = std::fs::File::create(work.join("queue-pickup-worker.log"))?;
    let mut worker = Command::new(exe);
    worker.args(["--no-progress", "--db", &db, "worker", "--name", "idle"]);
    if !listen {
        worker.arg("--no-listen");
    }
    let mut worker = worker
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start `wolf worker`")?;
    let mut waits = Vec::new();
    let result = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        for i in 0..PICKUPS {
            let name = format!("p{i}");
            let run = store.open_run(&name, dataset.id, &text, "h").await?;
            // At a random moment of the worker's poll interval (it polls again right
            // after finishing the previous video).
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..1_000))).await;
            let queued = Instant::now();
            store.enqueue(run.id, dataset.id).await?;
            loop {
                let status = store.queue_status(&name).await?;
                if status.count.pending == 0 {
                    waits.push(queued.elapsed());
                    break;
                }
                if queued.elapsed() > Duration::from_secs(30) {
                    bail!("the idle worker did not claim run `{name}` in 30 s");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            // Let it finish before the next one, so that it is idle again.
            while store.queue_status(&name).await?.count.done == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }
    .await;
    let _ = worker.kill();
    let _ = worker.wait();
    result?;
    waits.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p50 = ms(waits[waits.len() / 2]);
    let max = ms(*waits.last().expect("samples"));
    let mean = waits.iter().map(|w| ms(*w)).sum::<f64>() / waits.len() as f64;
    let (how, goal) = if listen {
        ("woken by LISTEN/NOTIFY", "p50 ≤ 50 ms")
    } else {
        ("polling only (`--no-listen`)", "max within one poll")
    };
    Ok(Row {
        benchmark: format!("queue: enqueue-to-claim latency of an idle worker, {how}"),
        wolf: format!("mean {mean:.0} ms, p50 {p50:.0} ms, max {max:.0} ms"),
        anchor: "poll interval 1,000 ms (mean wait of a random moment: 500 ms)".into(),
        ratio: format!("{:.2} of the interval (max)", max / 1000.0),
        goal: goal.into(),
        note: format!(
            "{PICKUPS} videos queued one at a time (a new run each, whose config the worker loads on sight); `--poll-secs` sets the interval"
        ),
    })
}

/// The queue's own items/s: claim, then commit with one caption, no model.
async fn ceiling() -> anyhow::Result<Row> {
    let db = wolf_pipeline::store::testing::fresh_postgres()
        .await
        .map_err(anyhow::Error::msg)?;
    let store = Store::open(&db).await?;
    let dataset = store
        .begin_intake(&NewDataset {
            name: "c".into(),
            source: "bench".into(),
            source_kind: "folder".into(),
            root: None,
        })
        .await?;
    let records: Vec<VideoRecord> = (0..CEILING_ITEMS)
        .map(|i| VideoRecord {
            key: format!("v{i:06}"),
            path: format!("/bench/v{i:06}.mp4"),
            reference: None,
            tags: Vec::new(),
            metadata: None,
            outcome: Ok(VideoMeta {
                sha256: format!("{i:064x}"),
                size_bytes: 1,
                mtime_ns: 1,
                probe: wolf_pipeline::media::Probe {
                    duration_s: 4.0,
                    fps: 12.0,
                    width: 96,
                    height: 72,
                    rotation: 0,
                    codec: "h264".into(),
                    frame_count: 48,
                    keyframe_count: 1,
                    has_audio: false,
                },
            }),
        })
        .collect();
    for chunk in records.chunks(1_000) {
        store.put_videos(dataset, chunk).await?;
    }
    let run = store.open_run("c", dataset, "", "h").await?;
    store.enqueue(run.id, dataset).await?;
    let settings = QueueSettings::default();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..CEILING_TASKS {
        let store = store.clone();
        tasks.spawn(async move {
            let owner = format!("ceiling:{t}");
            let mut done = 0usize;
            loop {
                let claims = store
                    .claim(&owner, &[run.id], CEILING_BATCH, &settings)
                    .await?;
                if claims.is_empty() {
                    return Ok::<usize, anyhow::Error>(done);
                }
                for claim in &claims {
                    let write = StageWrite::Caption {
                        stage: "fusion".into(),
                        source: "wolf".into(),
                        caption: format!("A caption of video {}.", claim.video_id),
                        result_key: format!("k{}", claim.video_id),
                        result: StoredResult::bare("{}"),
                    };
                    if !store
                        .finish_claim(claim, &owner, &[write], &JobCommit::Done, &settings)
                        .await?
                    {
                        bail!("a lease was lost in the ceiling benchmark");
                    }
                    done += 1;
                }
            }
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done??;
    }
    let wall = started.elapsed().as_secs_f64();
    let status = store.queue_status("c").await?;
    if total != CEILING_ITEMS || status.commits != CEILING_ITEMS as i64 {
        bail!("the ceiling run committed {total} items: {status:?}");
    }
    let rate = CEILING_ITEMS as f64 / wall;
    Ok(Row {
        benchmark: format!(
            "queue: ceiling, {} items, no model",
            super::grouped(CEILING_ITEMS)
        ),
        wolf: format!("{rate:.0} items/s ({wall:.1} s)"),
        anchor: "—".into(),
        ratio: "—".into(),
        goal: "far above the workers' rate".into(),
        note: format!(
            "{CEILING_TASKS} tasks in one process, claims of {CEILING_BATCH}, each item committed with one caption in its own transaction; PostgreSQL on the same 2 cores"
        ),
    })
}
