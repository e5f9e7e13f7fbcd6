//! Data formats (issue 19): WebDataset shards against loose files at intake, and a
//! million per-video score rows written as Parquet against JSONL.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::bail;
use wolf_datasets::tables::{TableFormat, write_table};
use wolf_pipeline::store::{VIDEO_SCORE_COLUMNS, VideoScore};

use crate::{Row, grouped, run_logged, run_ok};

/// Distinct clips the samples repeat.
const CLIPS: usize = 100;
/// Samples per shard.
const PER_SHARD: usize = 100;

pub(crate) fn formats(exe: &Path, work: &Path, shards: usize) -> anyhow::Result<Vec<Row>> {
    let folder = work.join("formats");
    std::fs::create_dir_all(&folder)?;
    let clips = folder.join("clips");
    if !clips.join(format!("c{:03}.mp4", CLIPS - 1)).exists() {
        eprintln!("Making {CLIPS} clips for the shard benchmark ...");
        std::fs::create_dir_all(&clips)?;
        for i in 0..CLIPS {
            // One second of a moving test pattern, each clip its own start.
            let source = format!("testsrc=size=64x48:rate=10,trim=start={}", i % 50);
            run_ok(
                Command::new("ffmpeg")
                    .args(["-y", "-v", "error", "-f", "lavfi", "-i"])
                    .arg(&source)
                    .args([
                        "-t",
                        "1",
                        "-c:v",
                        "libx264",
                        "-preset",
                        "ultrafast",
                        "-pix_fmt",
                        "yuv420p",
                    ])
                    .arg(clips.join(format!("c{i:03}.mp4"))),
            )?;
        }
    }
    let mut rows = Vec::new();
    let small = (shards / 10).max(1);
    let mut measured = Vec::new();
    for count in [small, shards] {
        let samples = count * PER_SHARD;
        let (sharded, loose) = inputs(&folder, &clips, samples)?;
        // Alternated, three of each: the medians of the times, the largest peaks.
        let mut runs = (Vec::new(), Vec::new());
        for _ in 0..3 {
            runs.0.push(intake(exe, &folder, &sharded, "shards")?);
            runs.1.push(intake(exe, &folder, &loose, "loose")?);
        }
        measured.push((samples, summary(&runs.0), summary(&runs.1)));
    }
    let (small_samples, small_shards, small_loose) = measured[0];
    let (samples, (shard_s, shard_kib), (loose_s, loose_kib)) = measured[1];
    let rate = |s: f64| samples as f64 / s;
    rows.push(Row {
        benchmark: format!(
            "intake of {shards} WebDataset shards of {PER_SHARD} clips (64x48, 1 s), read in place"
        ),
        wolf: format!("{:.0} clips/s", rate(shard_s)),
        anchor: format!("{:.0} clips/s (the same clips as loose files)", rate(loose_s)),
        ratio: format!("{:.2}x", loose_s / shard_s),
        goal: ">= 0.9x, flat memory".into(),
        note: format!(
            "medians of 3 alternated runs, fresh database and shard index each: {:.2} s against {:.2} s; peak RSS {:.0} MiB for {} clips in shards against {:.0} MiB for {} ({:.2}x for 10x the clips); loose files {:.0} MiB against {:.0} MiB",
            shard_s,
            loose_s,
            shard_kib as f64 / 1024.0,
            grouped(samples),
            small_shards.1 as f64 / 1024.0,
            grouped(small_samples),
            shard_kib as f64 / small_shards.1.max(1) as f64,
            loose_kib as f64 / 1024.0,
            small_loose.1 as f64 / 1024.0,
        ),
    });
    rows.push(parquet_export(1_000_000)?);
    Ok(rows)
}

/// The median time and the largest peak of runs.
fn summary(runs: &[(f64, i64)]) -> (f64, i64) {
    let mut times: Vec<f64> = runs.iter().map(|r| r.0).collect();
    times.sort_by(f64::total_cmp);
    let peak = runs.iter().map(|r| r.1).max().unwrap_or(0);
    (times[times.len() / 2], peak)
}

/// The same `samples` clips as shards (by `tools/make_shards.py`) and as loose files
/// (hard links, a folder per hundred), made once.
fn inputs(
    folder: &Path,
    clips: &Path,
    samples: usize,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let sharded = folder.join(format!("shards_{samples}"));
    if !sharded.join("done").exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/make_shards.py");
        run_ok(
            Command::new("python3")
                .arg(script)
                .arg("--clips")
                .arg(clips)
                .arg("--out")
                .arg(&sharded)
                .args(["--per-shard", &PER_SHARD.to_string()])
                .args(["--samples", &samples.to_string()]),
        )?;
        std::fs::write(sharded.join("done"), "")?;
    }
    let loose = folder.join(format!("loose_{samples}"));
    if !loose.join("done").exists() {
        for n in 0..samples {
            let dir = loose.join(format!("{:05}", n / PER_SHARD));
            std::fs::create_dir_all(&dir)?;
            let target = dir.join(format!("{n:09}.mp4"));
            if !target.exists() {
                std::fs::hard_link(clips.join(format!("c{:03}.mp4", n % CLIPS)), target)?;
            }
        }
        std::fs::write(loose.join("done"), "")?;
    }
    Ok((sharded, loose))
}

/// `wolf dataset add` of `source` into a fresh database (and so a fresh shard index):
/// seconds and peak RSS in KiB.
fn intake(exe: &Path, folder: &Path, source: &Path, what: &str) -> anyhow::Result<(f64, i64)> {
    let run = folder.join(format!("run-{what}"));
    let _ = std::fs::remove_dir_all(&run);
    std::fs::create_dir_all(&run)?;
    let mut command = Command::new(exe);
    command
        .args(["--no-progress", "--db"])
        .arg(run.join("wolf.db"))
        .args(["dataset", "add", what])
        .arg(source);
    let (wall, peak) = run_logged(command, &run.join("log.txt"), "wolf dataset add")?;
    let log = std::fs::read_to_string(run.join("log.txt"))?;
    if !log.contains(" 0 failed, 0 source problems") {
        bail!("the {what} intake had failures: {log}");
    }
    Ok((wall.as_secs_f64(), peak))
}

/// `rows` per-video score rows written as Parquet and as JSONL (the writer of `wolf
/// report --per-video`), in this process: seconds, and the growth of peak RSS while
/// writing (the peak is reset before each).
fn parquet_export(rows: usize) -> anyhow::Result<Row> {
    let scores: Vec<VideoScore> = (0..rows)
        .map(|i| VideoScore {
            dataset: "world".into(),
            run: format!("run-{}", i % 7),
            source: ["wolf", "motion", "frame-captioner:summary"][i % 3].into(),
            video: format!("clip_{:07}.mp4", i / 6),
            reference: Some(format!("A red square moves left past a blue circle, {i}.")),
            caption: format!("A red square slides to the left of a blue circle ({i})."),
            metric: ["truth_f1", "embed_sim"][i % 2].into(),
            judge: String::new(),
            value: Some((i % 1000) as f64 / 1000.0),
            samples: 1,
            failed: 0,
        })
        .collect();
    let mut timed = Vec::new();
    for format in [TableFormat::Parquet, TableFormat::Jsonl] {
        let path = std::env::temp_dir().join(format!("wolf-bench-rows-{}", std::process::id()));
        let before = reset_peak()?;
        let started = Instant::now();
        let file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        write_table(&scores, &VIDEO_SCORE_COLUMNS, format, file)?;
        let seconds = started.elapsed().as_secs_f64();
        let grown = peak_kib()? - before;
        let bytes = std::fs::metadata(&path)?.len();
        std::fs::remove_file(&path)?;
        timed.push((seconds, grown, bytes));
    }
    let [
        (parquet_s, parquet_kib, parquet_bytes),
        (jsonl_s, jsonl_kib, jsonl_bytes),
    ] = timed[..]
    else {
        unreachable!("two formats were timed")
    };
    Ok(Row {
        benchmark: format!("{} per-video score rows written as Parquet", grouped(rows)),
        wolf: format!("{parquet_s:.2} s"),
        anchor: format!("{jsonl_s:.2} s (JSONL)"),
        ratio: format!("{:.2}x", jsonl_s / parquet_s),
        goal: "report".into(),
        note: format!(
            "peak RSS grew {:.0} MiB writing Parquet, {:.0} MiB writing JSONL; files {:.1} MiB against {:.1} MiB",
            parquet_kib as f64 / 1024.0,
            jsonl_kib as f64 / 1024.0,
            parquet_bytes as f64 / 1048576.0,
            jsonl_bytes as f64 / 1048576.0
        ),
    })
}

/// Resets this process's peak RSS to its current RSS (Linux's `clear_refs` 5) and
/// returns it, in KiB.
fn reset_peak() -> anyhow::Result<i64> {
    std::fs::write("/proc/self/clear_refs", "5")?;
    peak_kib()
}

/// This process's peak RSS (`VmHWM`), in KiB.
fn peak_kib() -> anyhow::Result<i64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/self/status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}
