//! `wolf dataset add|list|show` on good and bad inputs (the Foundation issue's list).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::util::Dir;

/// Makes every bad input of the issue's list next to good clips, in `dir/v/`.
fn bad_inputs(dir: &Dir) {
    std::fs::create_dir_all(dir.join("v")).unwrap();
    dir.clip("v/good.mp4", "160x120", 10, 2.0, &[]);
    dir.clip(
        "v/single_frame.mp4",
        "160x120",
        10,
        1.0,
        &["-frames:v", "1"],
    );
    dir.clip(
        "v/odd_width.mp4",
        "161x121",
        10,
        1.0,
        &["-pix_fmt", "yuv444p"],
    );
    std::fs::write(dir.join("v/empty.mp4"), b"").unwrap();
    let noise: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("v/random.mp4"), noise).unwrap();

    // Truncated, index at the end (FFmpeg's default for MP4) and at the front.
    let end = dir.clip("index_end.mp4", "320x240", 25, 3.0, &[]);
    let front = dir.clip(
        "index_front.mp4",
        "320x240",
        25,
        3.0,
        &["-movflags", "+faststart"],
    );
    for (from, to) in [
        (end, "v/trunc_index_end.mp4"),
        (front, "v/trunc_index_front.mp4"),
    ] {
        let bytes = std::fs::read(from).unwrap();
        std::fs::write(dir.join(to), &bytes[..bytes.len() / 2]).unwrap();
    }

    dir.ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1",
        "-c:a",
        "aac",
        "v/audio_only.mp4",
    ]);

    // A codec FFmpeg does not know: the sample entry's fourcc is rewritten.
    let mut bytes = std::fs::read(dir.join("v/good.mp4")).unwrap();
    let stsd = bytes
        .windows(4)
        .position(|w| w == b"stsd")
        .expect("a sample description box");
    let at = stsd
        + bytes[stsd..]
            .windows(4)
            .position(|w| w == b"avc1")
            .expect("an avc1 sample entry");
    bytes[at..at + 4].copy_from_slice(b"zzzz");
    std::fs::write(dir.join("v/unsupported_codec.mp4"), bytes).unwrap();

    // A path that cannot be read as a file.
    std::fs::create_dir_all(dir.join("v/folder.mp4")).unwrap();
}

#[test]
fn each_bad_input_is_recorded_with_its_reason_and_the_rest_is_ingested() {
    let dir = Dir::new();
    bad_inputs(&dir);
    let mut manifest = String::new();
    for name in [
        "good",
        "single_frame",
        "odd_width",
        "empty",
        "random",
        "trunc_index_end",
        "trunc_index_front",
        "audio_only",
        "unsupported_codec",
        "folder",
    ] {
        manifest.push_str(&format!(
            "{{\"path\": \"v/{name}.mp4\", \"caption\": \"About {name}.\"}}\n"
        ));
    }
    manifest.push_str("{\"path\": \"v/does_not_exist.mp4\"}\n");
    manifest.push_str("{\"caption\": \"a row without a path\"}\n");
    manifest.push_str("{\"path\": \"v/good.mp4\", \"caption\": \"the same key again\"}\n");
    std::fs::write(dir.join("manifest.jsonl"), manifest).unwrap();

    let run = dir
        .wolf(&["dataset", "add", "bad", "manifest.jsonl"])
        .expect_code(1);
    assert!(run.stdout().contains("3 videos ok"), "{}", run.stdout());
    assert!(!run.stderr().contains("panicked"), "{}", run.stderr());

    let shown = dir
        .wolf(&["dataset", "show", "bad", "--format", "json"])
        .expect_code(0)
        .json();
    let failed: BTreeMap<String, String> = shown["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap().to_owned(),
                f["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = [
        ("v/empty.mp4", "empty_file"),
        ("v/random.mp4", "invalid_data"),
        ("v/trunc_index_end.mp4", "invalid_data"),
        ("v/trunc_index_front.mp4", "truncated"),
        ("v/audio_only.mp4", "no_video_stream"),
        ("v/unsupported_codec.mp4", "unsupported_codec"),
        ("v/folder.mp4", "not_a_file"),
        ("v/does_not_exist.mp4", "not_found"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(failed, expected);
    for f in shown["failed"].as_array().unwrap() {
        let message = f["message"].as_str().unwrap();
        assert!(
            message.contains(f["key"].as_str().unwrap().trim_start_matches("v/")),
            "{message}"
        );
    }
    let unsupported = shown["failed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "unsupported_codec")
        .unwrap();
    assert!(unsupported["message"].as_str().unwrap().contains("zzzz"));

    let problems: Vec<&str> = shown["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(problems, ["missing_path", "duplicate_key"]);
    assert_eq!(shown["dataset"]["videos"], 11);
    assert_eq!(shown["dataset"]["failed"], 8);

    // The table form names each failed file with its reason.
    let table = dir
        .wolf(&["dataset", "show", "bad"])
        .expect_code(0)
        .stdout();
    assert!(
        table.contains("v/trunc_index_front.mp4  [truncated]"),
        "{table}"
    );
}

#[test]
fn good_videos_are_measured() {
    let dir = Dir::new();
    bad_inputs(&dir);
    std::fs::write(
        dir.join("m.csv"),
        "path,key,caption,tags\nv/good.mp4,g,A test pattern.,pattern|colour\nv/single_frame.mp4,s,,\nv/odd_width.mp4,o,,\n",
    )
    .unwrap();
    dir.wolf(&["dataset", "add", "good", "m.csv"])
        .expect_code(0);
    let db = videos_by_key(&dir);
    let good = &db["g"];
    assert_eq!(good["codec"], "h264");
    assert_eq!(
        (good["width"].as_i64(), good["height"].as_i64()),
        (Some(160), Some(120))
    );
    assert_eq!(good["frame_count"], 20);
    assert!(
        (good["duration_s"].as_f64().unwrap() - 2.0).abs() < 0.01,
        "{good}"
    );
    assert!((good["fps"].as_f64().unwrap() - 10.0).abs() < 0.01);
    assert_eq!(good["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(good["tags"], serde_json::json!(["pattern", "colour"]));
    assert_eq!(db["s"]["frame_count"], 1);
    assert_eq!(db["o"]["width"], 161);
}

/// A Data-Juicer-shaped JSONL (`videos`, `text`, fields of its own) added with a column
/// mapping: the mapped columns fill the roles and every other field is kept as the
/// video's metadata; a mapped column the manifest lacks is refused, naming it, with
/// nothing stored.
#[test]
fn a_mapped_manifest_keeps_its_other_fields_as_metadata() {
    let dir = Dir::new();
    bad_inputs(&dir);
    std::fs::write(
        dir.join("dj.jsonl"),
        concat!(
            "{\"videos\": \"v/good.mp4\", \"id\": 12, \"text\": \"A test pattern.\", \"stats\": {\"aesthetic\": 5.5}}\n",
            "{\"videos\": \"v/single_frame.mp4\", \"id\": 13, \"text\": \"One frame.\", \"stats\": {\"aesthetic\": 4.0}}\n",
        ),
    )
    .unwrap();
    let refused = dir.wolf(&[
        "dataset",
        "add",
        "good",
        "dj.jsonl",
        "--path-column",
        "videos",
        "--caption-column",
        "caption_en",
    ]);
    assert_eq!(refused.code(), 2, "{}", refused.stderr());
    assert!(
        refused.stderr().contains("`caption_en`"),
        "{}",
        refused.stderr()
    );
    dir.wolf(&[
        "dataset",
        "add",
        "good",
        "dj.jsonl",
        "--path-column",
        "videos",
        "--key-column",
        "id",
        "--caption-column",
        "text",
    ])
    .expect_code(0);
    let db = videos_by_key(&dir);
    assert_eq!(db.keys().collect::<Vec<_>>(), ["12", "13"]);
    assert_eq!(db["12"]["reference"], "A test pattern.");
    assert_eq!(
        db["12"]["metadata"],
        serde_json::json!({"stats": {"aesthetic": 5.5}})
    );
    assert_eq!(db["13"]["frame_count"], 1);
}

/// Runs a Python script in `make test`'s `.wolf/testenv` (pyarrow) in `dir`.
pub(crate) fn testenv_python(dir: &Dir, script: &str) {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".wolf/testenv/bin/python");
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (`make test` installs it)", python.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// video2dataset's Parquet metadata, written by pyarrow (snappy, as it writes it): the
/// `url` column is the path, `key` the key, the rest metadata; a Parquet manifest whose
/// path column holds numbers has a problem for each row, with its number.
#[test]
fn a_video2dataset_parquet_manifest_is_read_with_its_metadata() {
    let dir = Dir::new();
    bad_inputs(&dir);
    testenv_python(
        &dir,
        r#"
import pyarrow as pa, pyarrow.parquet as pq
pq.write_table(pa.table({
    "key": ["000000000", "000000001", "000000002"],
    "url": ["v/good.mp4", "v/single_frame.mp4", None],
    "caption": ["A test pattern.", None, "No video."],
    "width": [160, 160, 0],
    "status": ["success", "success", "failed_to_download"],
}), "v2d.parquet", compression="snappy")
pq.write_table(pa.table({"path": [1, 2]}), "numbers.parquet")
"#,
    );
    let added = dir.wolf(&["dataset", "add", "good", "v2d.parquet"]);
    assert_eq!(added.code(), 1, "{}", added.stdout());
    let db = videos_by_key(&dir);
    assert_eq!(db.keys().collect::<Vec<_>>(), ["000000000", "000000001"]);
    assert_eq!(db["000000000"]["reference"], "A test pattern.");
    assert_eq!(db["000000000"]["codec"], "h264");
    assert_eq!(
        db["000000001"]["metadata"],
        serde_json::json!({"width": 160, "status": "success"})
    );
    let shown = dir
        .wolf(&["dataset", "show", "good", "--format", "json"])
        .json();
    let problem = &shown["problems"][0];
    assert_eq!(problem["kind"], "missing_path", "{shown}");
    assert!(
        problem["location"]
            .as_str()
            .unwrap()
            .ends_with("v2d.parquet:3"),
        "{shown}"
    );

    dir.wolf(&["dataset", "add", "numbers", "numbers.parquet"])
        .expect_code(1);
    let shown = dir
        .wolf(&["dataset", "show", "numbers", "--format", "json"])
        .json();
    let problems = shown["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{shown}");
    assert!(
        problems[1]["location"]
            .as_str()
            .unwrap()
            .ends_with("numbers.parquet:2")
    );
    assert!(
        problems[1]["message"]
            .as_str()
            .unwrap()
            .contains("not a path"),
        "{shown}"
    );

    // A file cut short is no Parquet file: refused whole, nothing stored.
    let bytes = std::fs::read(dir.join("v2d.parquet")).unwrap();
    std::fs::write(dir.join("cut.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    let refused = dir
        .wolf(&["dataset", "add", "cut", "cut.parquet"])
        .expect_code(2);
    assert!(
        refused.stderr().contains("not a readable Parquet file"),
        "{}",
        refused.stderr()
    );
}

/// A FIFO named like a video: opening it would wait for a writer forever, so it is
/// refused by its metadata, found in a folder or named by a manifest, and by
/// `wolf frames`.
#[test]
fn a_fifo_named_like_a_video_is_refused_without_waiting() {
    let dir = Dir::new();
    std::fs::create_dir_all(dir.join("v")).unwrap();
    dir.clip("v/good.mp4", "64x48", 10, 1.0, &[]);
    dir.fifo("v/x.mp4");
    std::fs::write(
        dir.join("m.jsonl"),
        "{\"path\": \"v/good.mp4\"}\n{\"path\": \"v/x.mp4\"}\n",
    )
    .unwrap();
    let limit = Duration::from_secs(60);
    for (name, source, key) in [("folder", "v", "x.mp4"), ("manifest", "m.jsonl", "v/x.mp4")] {
        let run = dir
            .wolf_within(&["dataset", "add", name, source], limit)
            .expect_code(1);
        assert!(run.stdout().contains("1 videos ok"), "{}", run.stdout());
        let shown = dir
            .wolf(&["dataset", "show", name, "--format", "json"])
            .expect_code(0)
            .json();
        assert_eq!(shown["failed"][0]["key"], key, "{shown:#}");
        assert_eq!(shown["failed"][0]["kind"], "not_a_file", "{shown:#}");
        assert!(
            shown["failed"][0]["message"]
                .as_str()
                .unwrap()
                .contains("a FIFO"),
            "{shown:#}"
        );
    }
    let run = dir
        .wolf_within(&["frames", "v/x.mp4", "--out", "frames"], limit)
        .expect_code(2);
    assert!(
        run.stderr().contains("not a regular file"),
        "{}",
        run.stderr()
    );
}

/// A folder without a video adds nothing: the command exits 1 with a warning that says
/// what the folder holds. A folder of files named like shards is read as shards, each
/// a problem of its own when it is not a tar.
#[test]
fn a_folder_without_videos_is_a_warning_that_says_what_it_holds() {
    let dir = Dir::new();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let run = dir.wolf(&["dataset", "add", "e", "empty"]).expect_code(1);
    assert!(
        run.stderr()
            .contains("warning: no videos found in `empty` (it is empty;"),
        "{}",
        run.stderr()
    );
    assert!(run.stdout().contains("0 videos ok"), "{}", run.stdout());
    let shown = dir
        .wolf(&["dataset", "show", "e", "--format", "json"])
        .expect_code(0)
        .json();
    assert_eq!(shown["problems"][0]["kind"], "no_videos", "{shown:#}");

    std::fs::create_dir_all(dir.join("shards")).unwrap();
    for n in 0..3 {
        std::fs::write(dir.join(&format!("shards/{n:05}.tar")), b"x").unwrap();
    }
    let run = dir.wolf(&["dataset", "add", "s", "shards"]).expect_code(1);
    assert!(run.stdout().contains("0 videos ok"), "{}", run.stdout());
    assert!(
        run.stdout().contains("3 source problems"),
        "{}",
        run.stdout()
    );
    let shown = dir
        .wolf(&["dataset", "show", "s", "--format", "json"])
        .expect_code(0)
        .json();
    assert_eq!(shown["problems"][0]["kind"], "truncated_shard", "{shown:#}");
}

/// The videos of dataset `good` by key.
fn videos_by_key(dir: &Dir) -> BTreeMap<String, serde_json::Value> {
    dir.videos("good")
}

#[test]
fn adding_a_dataset_twice_is_idempotent_and_skips_unchanged_files() {
    let dir = Dir::new();
    std::fs::create_dir_all(dir.join("v/sub")).unwrap();
    dir.clip("v/a.mp4", "64x48", 10, 1.0, &[]);
    dir.clip("v/sub/b.mkv", "64x48", 10, 1.0, &[]);
    std::fs::write(dir.join("v/readme.txt"), "not a video").unwrap();
    let first = dir
        .wolf(&["dataset", "add", "f", "v"])
        .expect_code(0)
        .stdout();
    assert!(first.contains("2 videos ok (0 unchanged"), "{first}");
    let second = dir
        .wolf(&["dataset", "add", "f", "v"])
        .expect_code(0)
        .stdout();
    assert!(second.contains("2 videos ok (2 unchanged"), "{second}");
    let list = dir
        .wolf(&["dataset", "list", "--format", "json"])
        .expect_code(0)
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["videos"], 2);
    let keys: Vec<String> = dir
        .wolf(&["dataset", "show", "f", "--format", "json", "--videos"])
        .json()["videos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["a.mp4", "sub/b.mkv"]);
}

#[test]
fn wolf_json_keys_without_a_video_fail_by_name() {
    let dir = Dir::new();
    std::fs::create_dir_all(dir.join("v")).unwrap();
    dir.clip("v/a.mp4", "64x48", 10, 1.0, &[]);
    std::fs::write(
        dir.join("ann.json"),
        r#"{"a.mp4": "A pattern.", "ghost.mp4": "Nothing."}"#,
    )
    .unwrap();
    let run = dir
        .wolf(&["dataset", "add", "w", "v", "--annotations", "ann.json"])
        .expect_code(1);
    assert!(run.stdout().contains("1 videos ok"), "{}", run.stdout());
    let shown = dir
        .wolf(&["dataset", "show", "w", "--format", "json"])
        .json();
    assert_eq!(shown["failed"][0]["key"], "ghost.mp4");
    assert_eq!(shown["failed"][0]["kind"], "not_found");
    assert_eq!(shown["dataset"]["with_reference"], 2);
}

#[test]
fn a_missing_source_or_dataset_is_a_fatal_error() {
    let dir = Dir::new();
    let run = dir.wolf(&["dataset", "add", "x", "nowhere"]).expect_code(2);
    assert!(
        run.stderr().contains("`nowhere` does not exist"),
        "{}",
        run.stderr()
    );
    let run = dir.wolf(&["dataset", "show", "nope"]).expect_code(2);
    assert!(
        run.stderr().contains(
            "no dataset `nope`; datasets: none yet (`wolf dataset add NAME FOLDER` adds one)"
        ),
        "{}",
        run.stderr()
    );
    // An unknown name lists those that exist, and so does an unknown run.
    dir.synthetic_dataset(1, 3);
    let run = dir.wolf(&["dataset", "show", "nope"]).expect_code(2);
    assert!(
        run.stderr().contains("no dataset `nope`; datasets: ds ("),
        "{}",
        run.stderr()
    );
    let run = dir.wolf(&["export", "--run", "nope"]).expect_code(2);
    assert!(
        run.stderr()
            .contains("no run `nope`; runs: none yet (`wolf caption"),
        "{}",
        run.stderr()
    );
}
