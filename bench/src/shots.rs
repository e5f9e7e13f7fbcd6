//! Shot detection (issue 16): `wolf shots` (TransNetV2 in ONNX Runtime) against
//! PySceneDetect's `ContentDetector` (the `scenedetect` command line of `.wolf/venv`) on
//! the same synthetic videos, whose transitions are known: boundary F1 (tolerance 2
//! frames) and frames a second of the whole process, spawn to exit.
//!
//! The videos are FFmpeg's lavfi sources, one scene each, 640×360 at 25 fps: 12 shots of
//! 60 frames joined by hard cuts, and 12 shots of 3 s joined by 1 s dissolves (`xfade`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use wolf_scorer::dense::{BoundaryScores, boundary_scores, read_transitions, transitions};

use super::{Row, alternate, run_ok};

const SIZE: &str = "640x360";
const FPS: u64 = 25;
const SHOTS: u64 = 12;
/// Frames of a shot in the cuts video.
const CUT_SHOT: u64 = 60;
/// Seconds of a shot and of a dissolve in the dissolves video.
const DISSOLVE_SHOT: u64 = 3;
const DISSOLVE: u64 = 1;
const TOLERANCE: u64 = wolf_scorer::dense::BOUNDARY_TOLERANCE;
const REPEATS: usize = 3;

/// The scenes, in order: each a lavfi source distinct from its neighbours.
const SCENES: [&str; SHOTS as usize] = [
    "testsrc2",
    "mandelbrot",
    "life=seed=3:ratio=0.3:mold=10",
    "gradients=seed=5:speed=0.02",
    "smptehdbars",
    "cellauto=rule=110",
    "rgbtestsrc",
    "gradients=seed=9:speed=0.03:type=radial",
    "life=seed=11:ratio=0.6",
    "pal100bars",
    "mandelbrot=start_scale=1.5",
    "cellauto=rule=30",
];

/// One test video and its true transitions (inclusive frame spans).
struct Video {
    name: &'static str,
    path: PathBuf,
    frames: u64,
    truth: Vec<(u64, u64)>,
}

fn make_video(work: &Path, dissolves: bool) -> anyhow::Result<Video> {
    let name = if dissolves { "dissolves" } else { "cuts" };
    let path = work.join(format!("shots_{name}.mp4"));
    let shot_s = if dissolves {
        DISSOLVE_SHOT as f64
    } else {
        CUT_SHOT as f64 / FPS as f64
    };
    let (frames, truth) = if dissolves {
        let (shot, fade) = (DISSOLVE_SHOT * FPS, DISSOLVE * FPS);
        let truth = (1..SHOTS)
            .map(|i| (i * (shot - fade), i * (shot - fade) + fade - 1))
            .collect();
        (SHOTS * shot - (SHOTS - 1) * fade, truth)
    } else {
        let truth = (1..SHOTS)
            .map(|i| (i * CUT_SHOT - 1, i * CUT_SHOT))
            .collect();
        (SHOTS * CUT_SHOT, truth)
    };
    if !path.exists() {
        eprintln!("Making {} ...", path.display());
        let mut command = Command::new("ffmpeg");
        command.args(["-y", "-v", "error"]);
        let mut chains = Vec::new();
        for (i, scene) in SCENES.iter().enumerate() {
            let sep = if scene.contains('=') { ":" } else { "=" };
            command
                .args(["-f", "lavfi", "-i"])
                .arg(format!("{scene}{sep}size={SIZE}:rate={FPS}"));
            chains.push(format!(
                "[{i}]trim=duration={shot_s},setpts=PTS-STARTPTS,format=yuv420p[s{i}]"
            ));
        }
        if dissolves {
            let mut last = "s0".to_owned();
            for i in 1..SHOTS {
                let out = if i == SHOTS - 1 {
                    "v".to_owned()
                } else {
                    format!("x{i}")
                };
                let offset = i * (DISSOLVE_SHOT - DISSOLVE);
                chains.push(format!(
                    "[{last}][s{i}]xfade=transition=fade:duration={DISSOLVE}:offset={offset}[{out}]"
                ));
                last = out;
            }
        } else {
            let inputs: String = (0..SHOTS).map(|i| format!("[s{i}]")).collect();
            chains.push(format!("{inputs}concat=n={SHOTS}:v=1:a=0[v]"));
        }
        let tmp = path.with_extension("tmp.mp4");
        run_ok(
            command
                .arg("-filter_complex")
                .arg(chains.join(";"))
                .args(["-map", "[v]", "-c:v", "libx264", "-preset", "veryfast"])
                .args(["-pix_fmt", "yuv420p"])
                .arg(&tmp),
        )?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(Video {
        name,
        path,
        frames,
        truth,
    })
}

fn wolf_shots(exe: &Path, video: &Path) -> anyhow::Result<(u64, Vec<(u64, u64)>)> {
    let text = run_ok(
        Command::new(exe)
            .args(["--no-progress", "shots", "--format", "json"])
            .arg(video),
    )?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let shots = json["shots"]
        .as_array()
        .context("`wolf shots` printed no shots")?
        .iter()
        .map(|s| Some((s["first"].as_u64()?, s["last"].as_u64()?)))
        .collect::<Option<Vec<_>>>()
        .context("a shot without frames")?;
    Ok((json["frames"].as_u64().unwrap_or(0), shots))
}

/// PySceneDetect's shots: its CSV's start and end frames are 1-based and inclusive.
fn scenedetect_shots(csv: &Path) -> anyhow::Result<Vec<(u64, u64)>> {
    let text = std::fs::read_to_string(csv)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("an empty CSV")?.split(',').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| format!("no `{name}` column in {}", csv.display()))
    };
    let (start, end) = (column("Start Frame")?, column("End Frame")?);
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let number = |i: usize| -> anyhow::Result<u64> {
                Ok(cells.get(i).context("a short row")?.trim().parse::<u64>()?)
            };
            Ok((number(start)? - 1, number(end)? - 1))
        })
        .collect()
}

fn scenedetect() -> anyhow::Result<PathBuf> {
    let home = wolf_pipeline::home::Home::locate()
        .context("no `.wolf/` folder: run `make bench` from the checkout")?;
    let exe = home.root().join("venv/bin/scenedetect");
    if !exe.is_file() {
        bail!(
            "`{}` is missing: run `make venv` (or `make bench`)",
            exe.display()
        );
    }
    Ok(exe)
}

/// PySceneDetect's command line on `video`, writing `out/scenes.csv`.
fn scenedetect_command(exe: &Path, video: &Path, out: &Path) -> Command {
    let mut c = Command::new(exe);
    c.arg("-q").arg("-i").arg(video).arg("-o").arg(out).args([
        "detect-content",
        "list-scenes",
        "-s",
        "-f",
        "scenes.csv",
    ]);
    c
}

/// The synthetic world with 4 shots a clip (`wolf synth --shots 4`, seed 901, 20 clips):
/// both detectors' boundary F1 against its `shots.json`, pooled over the clips.
fn world_row(exe: &Path, work: &Path, pyscenedetect: &Path) -> anyhow::Result<Row> {
    let (seed, clips, shots) = (901, 20, 4);
    let world = work.join("shots_world");
    let args = [("--count", clips), ("--shots", shots), ("--seed", seed)];
    super::synth_once(exe, &world, &args.map(|(k, v)| format!("{k}={v}")))?;
    let truth = read_transitions(&world.join(wolf_datasets::synth::SHOTS_FILE))?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for index in 0..clips {
        let name = wolf_datasets::synth::clip_name(index);
        let video = world.join(&name);
        let spans = truth
            .get(&name)
            .context("shots.json lists the clip's transitions")?;
        let (_, found) = wolf_shots(exe, &video)?;
        ours.push(boundary_scores(&transitions(&found), spans, TOLERANCE));
        let out = work.join(format!("scenedetect_world_{index}"));
        std::fs::create_dir_all(&out)?;
        run_ok(&mut scenedetect_command(pyscenedetect, &video, &out))?;
        let found = scenedetect_shots(&out.join("scenes.csv"))?;
        theirs.push(boundary_scores(&transitions(&found), spans, TOLERANCE));
    }
    let (ours, theirs) = (
        BoundaryScores::pooled(&ours),
        BoundaryScores::pooled(&theirs),
    );
    let what = format!(
        "the synthetic world with {shots} shots a clip (`wolf synth --shots {shots}`, seed {seed}, {clips} clips, cuts and 8-frame dissolves)"
    );
    let mut row = f1_row(&what, &ours, &theirs, "report");
    row.note = format!(
        "pooled over the clips; {}; TransNetV2 misses transitions between scenes of the same background colour (docs/DECISIONS.md)",
        row.note
    );
    Ok(row)
}

/// A row of boundary F1, wolf against PySceneDetect, on `what`.
fn f1_row(what: &str, ours: &BoundaryScores, theirs: &BoundaryScores, goal: &str) -> Row {
    Row {
        benchmark: format!(
            "shots, {what}: boundary F1 at ±{TOLERANCE} frames, wolf (TransNetV2) against PySceneDetect's ContentDetector"
        ),
        wolf: format!("{:.3}", ours.f1),
        anchor: format!("{:.3}", theirs.f1),
        ratio: if theirs.f1 > 0.0 {
            format!("{:.2}", ours.f1 / theirs.f1)
        } else {
            "-".into()
        },
        goal: goal.into(),
        note: format!(
            "wolf: {}; PySceneDetect (default threshold): {}",
            describe(ours),
            describe(theirs)
        ),
    }
}

fn describe(s: &BoundaryScores) -> String {
    format!(
        "F1 {:.3} (P {:.3}, R {:.3}: {} of {} found, {} predicted)",
        s.f1, s.precision, s.recall, s.matched, s.truth, s.predicted
    )
}

pub(super) fn shots(exe: &Path, work: &Path) -> anyhow::Result<Vec<Row>> {
    let pyscenedetect = scenedetect()?;
    let mut rows = Vec::new();
    for dissolves in [false, true] {
        let video = make_video(work, dissolves)?;
        let out = work.join(format!("scenedetect_{}", video.name));
        std::fs::create_dir_all(&out)?;
        let csv = out.join("scenes.csv");
        let theirs = || scenedetect_command(&pyscenedetect, &video.path, &out);
        let ours = || {
            let mut c = Command::new(exe);
            c.args(["--no-progress", "shots", "--format", "json"])
                .arg(&video.path);
            c
        };
        let (t_ours, t_theirs) = alternate(REPEATS, ours, theirs)?;
        let (frames, our_shots) = wolf_shots(exe, &video.path)?;
        if frames != video.frames {
            bail!(
                "`wolf shots` decoded {frames} frames of {}, not {}",
                video.name,
                video.frames
            );
        }
        let ours_f1 = boundary_scores(&transitions(&our_shots), &video.truth, TOLERANCE);
        let theirs_f1 = boundary_scores(
            &transitions(&scenedetect_shots(&csv)?),
            &video.truth,
            TOLERANCE,
        );
        let (fps_ours, fps_theirs) = (
            video.frames as f64 / t_ours.as_secs_f64(),
            video.frames as f64 / t_theirs.as_secs_f64(),
        );
        let kind = if dissolves {
            "1 s dissolves"
        } else {
            "hard cuts"
        };
        let what = format!("{kind} ({SHOTS} shots, {} frames at {SIZE})", video.frames);
        rows.push(f1_row(&what, &ours_f1, &theirs_f1, "wolf >= PySceneDetect"));
        rows.push(Row {
            benchmark: format!(
                "shots, {}: frames a second of the whole process, wolf against PySceneDetect",
                if dissolves { "1 s dissolves" } else { "hard cuts" },
            ),
            wolf: format!("{fps_ours:.0} frames/s"),
            anchor: format!("{fps_theirs:.0} frames/s"),
            ratio: format!("{:.2}", fps_ours / fps_theirs),
            goal: ">= 2".into(),
            note: format!(
                "medians of {REPEATS} alternated runs, spawn to exit (model load and decode included): {:.2} s against {:.2} s",
                t_ours.as_secs_f64(),
                t_theirs.as_secs_f64()
            ),
        });
    }
    rows.push(world_row(exe, work, &pyscenedetect)?);
    Ok(rows)
}
