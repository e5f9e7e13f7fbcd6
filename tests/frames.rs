//! `wolf frames`: the frames picked are exactly the ones shown at the segment centres,
//! whatever path the decoder took to reach them (seeking, decoding on, skipping).

use std::path::Path;

use crate::util::Dir;

/// Runs `wolf frames` and returns frames.json.
fn frames(dir: &Dir, video: &Path, args: &[&str]) -> serde_json::Value {
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    let mut all = vec![
        "frames",
        video.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    dir.wolf(&all).expect_code(0);
    serde_json::from_slice(&std::fs::read(out.join("frames.json")).unwrap()).unwrap()
}

/// Checks that frames.json holds, for each of `n` equal segments, the last frame
/// shown at or before the segment's centre (by ffprobe's list of frame times), and
/// that each listed file exists with the listed size.
fn assert_uniform_picks(dir: &Dir, video: &Path, index: &serde_json::Value, n: usize) {
    let times = dir.frame_times(video);
    let start = times[0];
    let duration = index["duration"].as_f64().unwrap();
    let mut expected: Vec<f64> = Vec::new();
    for i in 0..n {
        let target = start + (i as f64 + 0.5) * duration / n as f64;
        let pick = times
            .iter()
            .copied()
            .rfind(|t| *t <= target + 1e-4)
            .unwrap_or(start);
        if expected.last() != Some(&pick) {
            expected.push(pick);
        }
    }
    let got: Vec<f64> = index["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["time"].as_f64().unwrap() + start)
        .collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "got {got:?}, expected {expected:?}"
    );
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 1e-3, "got {got:?}, expected {expected:?}");
    }
    let out = dir.join("out");
    for f in index["frames"].as_array().unwrap() {
        let img = image::open(out.join(f["file"].as_str().unwrap())).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (
                index["width"].as_u64().unwrap() as u32,
                index["height"].as_u64().unwrap() as u32
            )
        );
    }
}

#[test]
fn picks_match_the_stream_with_long_gops_and_b_frames() {
    let dir = Dir::new();
    let clip = dir.clip(
        "long_gop.mp4",
        "320x240",
        25,
        12.0,
        &["-preset", "veryfast", "-g", "100", "-bf", "3"],
    );
    let index = frames(
        &dir,
        &clip,
        &["--count", "16", "--size", "96x64", "--resize", "stretch"],
    );
    assert_eq!(
        (index["width"].as_u64(), index["height"].as_u64()),
        (Some(96), Some(64))
    );
    assert_uniform_picks(&dir, &clip, &index, 16);
}

#[test]
fn picks_match_the_stream_with_short_gops() {
    let dir = Dir::new();
    let clip = dir.clip(
        "short_gop.mp4",
        "320x240",
        25,
        8.0,
        &["-preset", "veryfast", "-g", "12", "-bf", "2"],
    );
    let index = frames(&dir, &clip, &["--count", "7"]);
    assert_eq!(index["width"], 320);
    assert_uniform_picks(&dir, &clip, &index, 7);
}

#[test]
fn timestamps_come_from_the_stream_for_variable_frame_rate() {
    let dir = Dir::new();
    // 20 frames 0.04 s apart, then 80 frames 0.3 s apart.
    let clip = dir.clip(
        "vfr.mp4",
        "160x120",
        25,
        60.0,
        &[
            "-vf",
            "setpts='if(lt(N,20),N*0.04,0.8+(N-20)*0.3)/TB'",
            "-fps_mode",
            "vfr",
            "-frames:v",
            "100",
            "-video_track_timescale",
            "1000",
        ],
    );
    let index = frames(&dir, &clip, &["--fps", "1", "--max-frames", "64"]);
    let n = (index["duration"].as_f64().unwrap()).round() as usize;
    assert!(n > 20, "duration {}", index["duration"]);
    assert_uniform_picks(&dir, &clip, &index, n);
}

#[test]
fn rotation_metadata_turns_the_frames_upright_as_ffmpeg_does() {
    let dir = Dir::new();
    dir.clip("plain.mp4", "64x32", 10, 1.0, &[]);
    // FFmpeg 5.1 writes the display matrix from the `rotate` tag when copying a stream.
    dir.ffmpeg(&[
        "-i",
        "plain.mp4",
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        "rotated.mp4",
    ]);
    let index = frames(
        &dir,
        &dir.join("rotated.mp4"),
        &["--count", "1", "--format", "png"],
    );
    assert_eq!(
        (index["width"].as_u64(), index["height"].as_u64()),
        (Some(32), Some(64))
    );
    // The ffmpeg command line rotates on decoding: the same frame, the same way up.
    let time = index["frames"][0]["time"].as_f64().unwrap().to_string();
    dir.ffmpeg(&[
        "-ss",
        &time,
        "-i",
        "rotated.mp4",
        "-frames:v",
        "1",
        "theirs.png",
    ]);
    let ours = image::open(dir.join("out/frame_0000.png"))
        .unwrap()
        .to_rgb8();
    let theirs = image::open(dir.join("theirs.png")).unwrap().to_rgb8();
    assert_eq!(ours.dimensions(), theirs.dimensions());
    let diff: u64 = ours
        .as_raw()
        .iter()
        .zip(theirs.as_raw())
        .map(|(a, b)| a.abs_diff(*b) as u64)
        .sum();
    let mean = diff as f64 / ours.as_raw().len() as f64;
    assert!(
        mean < 12.0,
        "mean difference {mean} from ffmpeg's rotated frame"
    );
}

#[test]
fn single_frames_odd_sizes_and_padding() {
    let dir = Dir::new();
    let single = dir.clip("single.mp4", "160x120", 10, 1.0, &["-frames:v", "1"]);
    let index = frames(&dir, &single, &["--count", "4", "--format", "png"]);
    assert_eq!(index["frames"].as_array().unwrap().len(), 1);
    assert!(
        index["frames"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with(".png")
    );

    let odd = dir.clip("odd.mp4", "161x121", 10, 1.0, &["-pix_fmt", "yuv444p"]);
    let index = frames(&dir, &odd, &["--count", "3", "--size", "100"]);
    assert_eq!(
        (index["width"].as_u64(), index["height"].as_u64()),
        (Some(100), Some(100))
    );
    let img = image::open(dir.join("out/frame_0000.jpg"))
        .unwrap()
        .to_rgb8();
    // Padding: the aspect ratio is kept, so the top rows are black.
    assert!(
        img.get_pixel(50, 2).0.iter().all(|&c| c < 16),
        "{:?}",
        img.get_pixel(50, 2)
    );
    assert!(img.get_pixel(50, 50).0.iter().any(|&c| c > 16));
}

#[test]
fn a_broken_video_is_a_clear_error() {
    let dir = Dir::new();
    std::fs::write(dir.join("broken.mp4"), b"not a video at all").unwrap();
    let run = dir
        .wolf(&["frames", "broken.mp4", "--out", "o"])
        .expect_code(2);
    assert!(run.stderr().contains("broken.mp4"), "{}", run.stderr());
    let run = dir
        .wolf(&["frames", "missing.mp4", "--out", "o"])
        .expect_code(2);
    assert!(
        run.stderr().contains("`missing.mp4` does not exist"),
        "{}",
        run.stderr()
    );
}
