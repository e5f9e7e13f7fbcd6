//! WebDataset shards as a dataset (`wolf dataset add NAME shards/`): shards shaped like
//! video2dataset's output, made by `tools/make_shards.py` from real clips, read in
//! place, gzipped ones through the cache, and shards with faults.

use std::path::Path;

use serde_json::Value;
use wolf_pipeline::models::scripted::{Script, ScriptedServer};

use crate::caption::{ModelsToml, answering, caption_args};
use crate::util::{Dir, serve};

/// Four clips (`clips/c0.mp4` … with their captions beside them) made into shards of
/// two samples each under `out`, gzipped when asked.
fn shards(dir: &Dir, out: &str, gzip: bool) {
    if !dir.join("clips").is_dir() {
        std::fs::create_dir_all(dir.join("clips")).unwrap();
        for i in 0..4 {
            dir.clip(&format!("clips/c{i}.mp4"), "64x48", 10, 1.0, &[]);
            std::fs::write(
                dir.join(&format!("clips/c{i}.txt")[..]),
                format!("Clip {i}."),
            )
            .unwrap();
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/make_shards.py");
    let mut command = std::process::Command::new("python3");
    command
        .arg(script)
        .args(["--clips", "clips", "--out", out, "--per-shard", "2"])
        .current_dir(dir.path());
    if gzip {
        command.arg("--gzip");
    }
    let made = command.output().unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// The problems of dataset `name` as (kind, location).
fn problems(dir: &Dir, name: &str) -> Vec<(String, String)> {
    let shown = dir
        .wolf(&["dataset", "show", name, "--format", "json"])
        .expect_code(0)
        .json();
    shown["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let text = |f: &str| p[f].as_str().unwrap().to_owned();
            (text("kind"), text("location"))
        })
        .collect()
}

const KEYS: [&str; 4] = ["000000000", "000000001", "000010000", "000010001"];

/// A folder of uncompressed shards: every sample is a video read in place (its path
/// names its byte range of the shard), with its `.txt` as the reference and its
/// `.json` as metadata; a brace pattern names the same shards; an unchanged shard is
/// not read again; a caption run samples frames from the shards and exports paths
/// relative to the shards' folder.
#[test]
fn video2dataset_shards_are_a_dataset_read_in_place() {
    let dir = Dir::new();
    shards(&dir, "shards", false);
    let added = dir
        .wolf(&["dataset", "add", "world", "shards"])
        .expect_code(0)
        .stdout();
    assert!(added.contains("4 videos ok (0 unchanged"), "{added}");
    let db = dir.videos("world");
    assert_eq!(db.keys().collect::<Vec<_>>(), KEYS);
    let first = &db["000000000"];
    assert_eq!(first["status"], "ok", "{first}");
    assert_eq!(first["codec"], "h264");
    assert_eq!(first["frame_count"], 10);
    assert_eq!(first["reference"], "Clip 0.");
    assert_eq!(db["000010001"]["reference"], "Clip 3.");
    assert_eq!(first["metadata"]["status"], "success", "{first}");
    assert_eq!(first["metadata"]["width"], 64, "{first}");
    let path = first["path"].as_str().unwrap();
    assert!(path.contains("/shards/00000.tar#000000000.mp4@"), "{path}");
    // The same bytes as the clip: the hash is the clip file's.
    let clip = std::fs::read(dir.join("clips/c0.mp4")).unwrap();
    assert_eq!(first["sha256"], wolf_pipeline::hash::sha256_bytes(&clip));
    assert_eq!(first["size_bytes"], clip.len());

    let braced = dir
        .wolf(&["dataset", "add", "braced", "shards/{00000..00001}.tar"])
        .expect_code(0)
        .stdout();
    assert!(braced.contains("4 videos ok"), "{braced}");
    let none = dir
        .wolf(&["dataset", "add", "none", "shards/{00007..00009}.tar"])
        .expect_code(2);
    assert!(
        none.stderr()
            .contains("no shard matches `shards/{00007..00009}.tar` (3 paths tried"),
        "{}",
        none.stderr()
    );

    // A caption run reads its frames from the shards in place.
    let server: ScriptedServer = serve(Script::always(answering()));
    let config = ModelsToml::new(server.base_url()).write(&dir, "c.toml");
    dir.wolf(&caption_args(&config, "r", &[])).expect_code(0);
    let exported = dir
        .wolf(&["export", "--run", "r", "--source", "wolf"])
        .expect_code(0)
        .stdout();
    let rows: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    let relative = rows[0]["path"].as_str().unwrap();
    assert!(
        relative.starts_with("00000.tar#000000000.mp4@"),
        "{relative}"
    );
    let absolute = dir
        .wolf(&[
            "export",
            "--run",
            "r",
            "--source",
            "wolf",
            "--absolute-paths",
        ])
        .expect_code(0)
        .stdout();
    let first: Value = serde_json::from_str(absolute.lines().next().unwrap()).unwrap();
    let root = dir.path().canonicalize().unwrap().join("shards");
    let expected = format!("{}/{relative}", root.display());
    assert_eq!(first["path"], expected.as_str());

    // Unchanged size and time: the index answers, and the shard is not read (its bytes
    // are zeros now, which would read as an empty shard).
    for shard in ["shards/00000.tar", "shards/00001.tar"] {
        let path = dir.join(shard);
        let meta = std::fs::metadata(&path).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(0).unwrap();
        file.set_len(meta.len()).unwrap();
        file.set_modified(meta.modified().unwrap()).unwrap();
    }
    let again = dir
        .wolf(&["dataset", "add", "world", "shards"])
        .expect_code(0)
        .stdout();
    assert!(again.contains("4 videos ok (4 unchanged"), "{again}");
}

/// Gzipped shards are extracted once into the cache beside the database, named by the
/// shard's hash, and read from there.
#[test]
fn gzipped_shards_are_extracted_once_into_the_cache() {
    let dir = Dir::new();
    shards(&dir, "gz", true);
    let added = dir
        .wolf(&["dataset", "add", "gz", "gz"])
        .expect_code(0)
        .stdout();
    assert!(added.contains("4 videos ok"), "{added}");
    let db = dir.videos("gz");
    assert_eq!(db.keys().collect::<Vec<_>>(), KEYS);
    let path = Path::new(db["000000001"]["path"].as_str().unwrap());
    assert!(path.is_file(), "{}", path.display());
    let extracted = dir
        .path()
        .canonicalize()
        .unwrap()
        .join("shard-cache/extracted");
    assert!(path.starts_with(&extracted), "{}", path.display());
    assert_eq!(
        std::fs::read(path).unwrap(),
        std::fs::read(dir.join("clips/c1.mp4")).unwrap()
    );
    assert_eq!(db["000000001"]["reference"], "Clip 1.");
    let folders = std::fs::read_dir(&extracted).unwrap().count();
    assert_eq!(folders, 2, "one folder per shard, no partial one left");
    let again = dir
        .wolf(&["dataset", "add", "gz", "gz"])
        .expect_code(0)
        .stdout();
    assert!(again.contains("4 videos ok (4 unchanged"), "{again}");
}

/// Shards with faults: a key met again keeps the first sample, a sample without a video
/// is a problem with its key, a broken video member is a failed video with its reason,
/// and a truncated shard keeps the samples before the break.
#[test]
fn shard_faults_are_recorded_and_the_rest_is_read() {
    let dir = Dir::new();
    shards(&dir, "good", false);
    std::fs::create_dir_all(dir.join("bad")).unwrap();
    std::fs::copy(dir.join("good/00000.tar"), dir.join("bad/00000.tar")).unwrap();
    let made = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import io, tarfile
def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
with tarfile.open("bad/00001.tar", "w") as tar:
    add(tar, "000000000.mp4", open("clips/c2.mp4", "rb").read())
    add(tar, "novideo.txt", b"A caption alone.")
    add(tar, "broken.mp4", bytes((i * 7919) % 251 for i in range(20000)))
    add(tar, "broken.txt", b"Not a video.")
# Cut inside the second sample's video.
cut = tarfile.open("good/00001.tar").getmember("000010001.mp4").offset_data + 100
data = open("good/00001.tar", "rb").read()
open("bad/00002.tar", "wb").write(data[:cut])
"#,
        )
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let added = dir.wolf(&["dataset", "add", "bad", "bad"]).expect_code(1);
    let db = dir.videos("bad");
    assert_eq!(
        db.keys().collect::<Vec<_>>(),
        ["000000000", "000000001", "000010000", "broken"],
        "{}",
        added.stdout()
    );
    // The first `000000000` is kept: clip 0, not clip 2.
    let clip = std::fs::read(dir.join("clips/c0.mp4")).unwrap();
    assert_eq!(
        db["000000000"]["sha256"],
        wolf_pipeline::hash::sha256_bytes(&clip)
    );
    assert_eq!(db["broken"]["status"], "failed");
    assert_eq!(
        db["broken"]["error_kind"], "invalid_data",
        "{}",
        db["broken"]
    );
    assert_eq!(db["000010000"]["status"], "ok");
    let kinds: Vec<(String, String)> = problems(&dir, "bad");
    let has = |kind: &str, ending: &str| {
        kinds
            .iter()
            .any(|(k, location)| k == kind && location.ends_with(ending))
    };
    assert!(has("duplicate_key", "00001.tar:000000000"), "{kinds:?}");
    assert!(has("no_media", "00001.tar:novideo"), "{kinds:?}");
    assert!(has("truncated_shard", "00002.tar:000010001"), "{kinds:?}");

    // A shard named in capitals is read in place too.
    std::fs::create_dir_all(dir.join("upper")).unwrap();
    std::fs::copy(dir.join("good/00000.tar"), dir.join("upper/00000.TAR")).unwrap();
    let added = dir
        .wolf(&["dataset", "add", "upper", "upper"])
        .expect_code(0)
        .stdout();
    assert!(added.contains("2 videos ok"), "{added}");
}
