//! The media benchmarks: frame sampling and full decoding against the `ffmpeg` command
//! line, and intake's speed and memory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use wolf_pipeline::media;

use super::{Row, alternate, median, run_ok, wait_with_usage};
use crate::render_world;

/// A 60 s 1280×720 30 fps H.264 clip of FFmpeg's moving test pattern, with x264's
/// default B-frames and the given keyframe interval.
pub(super) fn make_clip(work: &Path, gop: u32) -> anyhow::Result<PathBuf> {
    let clip = work.join(format!("clip_720p_60s_gop{gop}.mp4"));
    if !clip.exists() {
        eprintln!("Making {} ...", clip.display());
        let tmp = clip.with_extension("tmp.mp4");
        run_ok(
            Command::new("ffmpeg")
                .args(["-y", "-v", "error", "-f", "lavfi", "-i"])
                .arg("testsrc2=size=1280x720:rate=30")
                .args([
                    "-t", "60", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                    "-g",
                ])
                .arg(gop.to_string())
                .arg(&tmp),
        )?;
        std::fs::rename(&tmp, &clip)?;
    }
    Ok(clip)
}

pub(super) fn sampling(
    exe: &Path,
    clip: &Path,
    work: &Path,
    gop: u32,
    repeats: usize,
) -> anyhow::Result<Row> {
    let ours = work.join("frames_wolf");
    let theirs = work.join("frames_ffmpeg");
    let wolf_cmd = || {
        let mut c = Command::new(exe);
        c.args(["--no-progress", "frames"])
            .arg(clip)
            .args([
                "--count",
                "16",
                "--size",
                "384x384",
                "--resize",
                "stretch",
                "--quality",
                "90",
                "--out",
            ])
            .arg(&ours);
        c
    };
    run_ok(&mut wolf_cmd())?;
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ours.join("frames.json"))?)?;
    let numbers: Vec<i64> = index["frames"]
        .as_array()
        .context("frames.json has frames")?
        .iter()
        .map(|f| (f["time"].as_f64().unwrap_or(0.0) * 30.0).round() as i64)
        .collect();
    let select = numbers
        .iter()
        .map(|n| format!("eq(n\\,{n})"))
        .collect::<Vec<_>>()
        .join("+");
    let ffmpeg_cmd = || {
        let _ = std::fs::remove_dir_all(&theirs);
        let _ = std::fs::create_dir_all(&theirs);
        let mut c = Command::new("ffmpeg");
        c.args(["-y", "-v", "error", "-i"])
            .arg(clip)
            .arg("-vf")
            .arg(format!("select='{select}',scale=384:384"))
            .args(["-fps_mode", "passthrough", "-q:v", "2"])
            .arg(theirs.join("f_%04d.jpg"));
        c
    };
    let (ours_t, theirs_t) = alternate(repeats, wolf_cmd, ffmpeg_cmd)?;
    let difference = frame_difference(&ours, &theirs, numbers.len())?;
    let ratio = ours_t.as_secs_f64() / theirs_t.as_secs_f64();
    Ok(Row {
        benchmark: format!("sample 16 frames at 384x384, 60 s 720p H.264, GOP {gop}"),
        wolf: format!("{:.3} s", ours_t.as_secs_f64()),
        anchor: format!("{:.3} s (ffmpeg select+scale)", theirs_t.as_secs_f64()),
        ratio: format!("{ratio:.2}"),
        goal: "<= 0.5".into(),
        note: format!(
            "median of {repeats}, both as processes; same frames: mean abs pixel difference {difference:.2}/255 (JPEG and scaler differences)"
        ),
    })
}

pub(super) fn full_decode(clip: &Path, repeats: usize) -> anyhow::Result<Row> {
    let frames = media::decode_all(clip)?;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..repeats {
        let start = Instant::now();
        media::decode_all(clip)?;
        ours.push(start.elapsed());
        let start = Instant::now();
        run_ok(
            Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(clip)
                .args(["-f", "null", "-"]),
        )?;
        theirs.push(start.elapsed());
    }
    let (ours, theirs) = (median(ours), median(theirs));
    let ours_fps = frames as f64 / ours.as_secs_f64();
    let theirs_fps = frames as f64 / theirs.as_secs_f64();
    Ok(Row {
        benchmark: format!("full decode, {frames} frames of 720p H.264"),
        wolf: format!("{ours_fps:.0} frames/s"),
        anchor: format!("{theirs_fps:.0} frames/s (ffmpeg -f null)"),
        ratio: format!("{:.2}x", ours_fps / theirs_fps),
        goal: ">= 1.0x".into(),
        note: format!(
            "median of {repeats}; wolf in process, ffmpeg as a process (its start-up, about 0.03 s, counts against it)"
        ),
    })
}

/// Intake of `clips` clips and, for the growth of memory, of a tenth as many.
pub(super) async fn intake(exe: &Path, work: &Path, clips: usize) -> anyhow::Result<Row> {
    let small = (clips / 10).max(1);
    let (_, small_peak) = intake_once(exe, work, small).await?;
    let (elapsed, peak) = intake_once(exe, work, clips).await?;
    Ok(Row {
        benchmark: format!("intake (sha256 + probe) of {clips} clips, 320x240, 4-8 s"),
        wolf: format!("{:.0} clips/s", clips as f64 / elapsed.as_secs_f64()),
        anchor: "-".into(),
        ratio: "-".into(),
        goal: "report".into(),
        note: format!(
            "{:.1} s in all into a fresh database; peak RSS {:.0} MiB, against {:.0} MiB for {small} clips ({:.2}x for 10x the clips)",
            elapsed.as_secs_f64(),
            peak as f64 / 1024.0,
            small_peak as f64 / 1024.0,
            peak as f64 / small_peak.max(1) as f64
        ),
    })
}

/// Renders (once) and ingests a world of `clips` clips; returns the wall time and the
/// peak RSS in KiB of the `wolf dataset add` process.
async fn intake_once(exe: &Path, work: &Path, clips: usize) -> anyhow::Result<(Duration, i64)> {
    let world = work.join(format!("world_{clips}"));
    let annotations = world.join("annotations.json");
    if !annotations.exists() {
        eprintln!("Rendering {clips} clips for the intake benchmark ...");
        render_world(&world, clips, 11).await?;
    }
    let db = work.join("intake.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let start = Instant::now();
    let child = Command::new(exe)
        .args(["--no-progress", "--db"])
        .arg(&db)
        .args(["dataset", "add", "bench-intake"])
        .arg(&world)
        .arg("--annotations")
        .arg(&annotations)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let (status, peak_kib, _) = wait_with_usage(child)?;
    let elapsed = start.elapsed();
    if !status.success() {
        bail!("the intake benchmark's `wolf dataset add` failed: {status}");
    }
    Ok((elapsed, peak_kib))
}

/// Mean absolute difference per channel between our frames and ffmpeg's, in 0–255:
/// small when both picked the same frames.
fn frame_difference(ours: &Path, theirs: &Path, count: usize) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for i in 0..count {
        let a = image::open(ours.join(format!("frame_{i:04}.jpg")))?.to_rgb8();
        let b = image::open(theirs.join(format!("f_{:04}.jpg", i + 1)))?.to_rgb8();
        if a.dimensions() != b.dimensions() {
            bail!("frame {i} differs in size");
        }
        let sum: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y) as u64)
            .sum();
        total += sum as f64 / a.as_raw().len() as f64;
    }
    Ok(total / count.max(1) as f64)
}
