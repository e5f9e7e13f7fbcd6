//! `wolf recaption` end to end (the VILA² loop): synthetic-world frames packed as
//! WebDataset tar shards and recaptioned by the real fixture captioner in a loop that
//! saturates, its caption files read back by a Python reader that mirrors VILA's
//! loader; a round killed with SIGKILL and resumed (a scripted captioner, so that the
//! kill lands mid-round); and bad input skipped with its reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wolf_pipeline::hash::fnv1a;
use wolf_pipeline::models::scripted::{Behaviour, Script, ScriptedServer};

use crate::util::Dir;

/// `wolf recaption round` over `shards/` into `rc/` with `recaption.toml`.
const ROUND: [&str; 8] = [
    "recaption",
    "round",
    "--input",
    "shards",
    "--out",
    "rc",
    "--config",
    "recaption.toml",
];

/// One WebDataset sample: its key and its members (extension, bytes), in order.
struct Sample {
    key: String,
    members: Vec<(&'static str, Vec<u8>)>,
}

impl Sample {
    /// An image with its original caption.
    fn captioned(key: &str, png: Vec<u8>, caption: &str) -> Self {
        Self {
            key: key.to_owned(),
            members: vec![("png", png), ("txt", caption.as_bytes().to_vec())],
        }
    }
}

/// A tar shard's bytes, and where each member's data starts (by `key.extension`).
fn tar_bytes(samples: &[Sample]) -> (Vec<u8>, BTreeMap<String, usize>) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut offsets = BTreeMap::new();
    for sample in samples {
        for (extension, bytes) in &sample.members {
            let name = format!("{}.{extension}", sample.key);
            // The data follows the member's 512-byte header.
            offsets.insert(name.clone(), builder.get_ref().len() + 512);
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, &name, bytes.as_slice())
                .unwrap();
        }
    }
    (builder.into_inner().unwrap(), offsets)
}

fn write_shard(path: &Path, samples: &[Sample]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, tar_bytes(samples).0).unwrap();
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

/// The records of a round's log.
fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Frames of the synthetic world as samples: `clips` clips rendered and registered as
/// dataset `ds`, 3 PNG frames of each taken by `wolf frames`, keyed
/// `clip_0000N_fI`, with the clip's reference caption as the original caption.
fn world_samples(dir: &Dir, clips: usize) -> Vec<(Sample, String)> {
    let references = dir.synthetic_dataset(clips, 5);
    let mut samples = Vec::new();
    for (i, (video, reference)) in references.iter().enumerate() {
        let out = format!("frames{i}");
        dir.wolf(&[
            "frames",
            &format!("world/{video}"),
            "--count",
            "3",
            "--format",
            "png",
            "--out",
            &out,
        ])
        .expect_code(0);
        let index = read_json(&dir.join(&out).join("frames.json"));
        let frames = index["frames"].as_array().unwrap();
        assert_eq!(frames.len(), 3, "{index}");
        let stem = video.trim_end_matches(".mp4");
        for (f, frame) in frames.iter().enumerate() {
            let file = dir.join(&out).join(frame["file"].as_str().unwrap());
            let png = std::fs::read(&file).unwrap();
            let key = format!("{stem}_f{f}");
            samples.push((Sample::captioned(&key, png, reference), reference.clone()));
        }
    }
    samples
}

/// `wolf recaption loop` over `shards/` into `rc/` with the frame captioner, the
/// held-out dataset `ds`, `min_gain` 0.01, at most 3 rounds and `train_cmd` (a TOML
/// string, quoted).
fn held_out_loop(dir: &Dir, train_cmd: &str) -> crate::util::Run {
    let config = format!(
        "[recaption]\ncaptioner = \"frame-captioner\"\ntrain_cmd = {train_cmd}\nheldout = \"ds\"\nmin_gain = 0.01\nrounds = 3\n"
    );
    std::fs::write(dir.join("recaption.toml"), config).unwrap();
    dir.wolf(&[&["recaption", "loop"][..], &ROUND[2..]].concat())
        .expect_code(0)
}

/// A distinct 32×32 PNG for item `i`.
fn small_png(i: usize) -> Vec<u8> {
    let image = image::RgbImage::from_fn(32, 32, |x, y| {
        image::Rgb([(i * 37 % 256) as u8, (x * 8) as u8, (y * 8) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// How many times `"key":` appears in a caption file: a JSON reader would silently
/// take the last of two.
fn occurrences(text: &str, key: &str) -> usize {
    text.matches(&format!("\"{key}\":")).count()
}

#[test]
fn a_loop_whose_trainer_returns_the_same_model_saturates_and_vila_reads_its_captions() {
    let dir = Dir::new();
    let samples = world_samples(&dir, 4);
    assert_eq!(samples.len(), 12);
    let mut expected = Vec::new();
    let mut shards: [Vec<Sample>; 2] = Default::default();
    for (i, (sample, reference)) in samples.into_iter().enumerate() {
        let shard = i / 6;
        expected.push((format!("part-00{shard}.tar:{}", sample.key), reference));
        shards[shard].push(sample);
    }
    for (i, shard) in shards.iter().enumerate() {
        write_shard(&dir.join(&format!("shards/part-00{i}.tar")), shard);
    }
    let run = held_out_loop(&dir, "\"echo frame-captioner\"");

    let summary = read_json(&dir.join("rc/loop.json"));
    let stopped = summary["stopped"].as_str().unwrap();
    assert!(stopped.starts_with("saturated"), "{summary:#}");
    assert!(run.stdout().contains(stopped), "{}", run.stdout());
    let rounds = summary["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{summary:#}");
    for (i, round) in rounds.iter().enumerate() {
        assert_eq!(round["round"], i + 1, "{summary:#}");
        assert_eq!(round["captioner"], "frame-captioner", "{summary:#}");
        let score = round["heldout_score"].as_f64().unwrap();
        assert!(
            score.is_finite() && (-1.0..=1.0).contains(&score),
            "{summary:#}"
        );
        assert_eq!(round["stats"]["captions"], 12, "{summary:#}");
        assert_eq!(round["stats"]["failed"], 0, "{summary:#}");
    }
    assert!(rounds[0]["gain"].is_null(), "{summary:#}");
    // The same model on the same held-out set: no gain.
    let gain = rounds[1]["gain"].as_f64().unwrap();
    assert!(gain < 0.01, "{summary:#}");
    assert!(!dir.join("rc/round-3").exists(), "a third round ran");

    let log = records(&dir.join("rc/round-2/round.jsonl"));
    assert_eq!(log.len(), 12);
    for record in &log {
        assert_eq!(record["status"], "done", "{record}");
        assert!(
            record["prompt_version"]
                .as_str()
                .is_some_and(|v| v.starts_with("recaption-")),
            "{record}"
        );
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vila_reader.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir.join("rc/round-2/captions"))
        .args(expected.iter().map(|(wanted, _)| wanted))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read["missing"], serde_json::json!([]), "{read:#}");
    assert_eq!(read["found"], 12, "{read:#}");
    assert_eq!(read["files"], 2, "{read:#}");
    for (wanted, reference) in &expected {
        let caption = read["captions"][wanted].as_str().unwrap();
        let short = format!("### Short description:\n{reference}\n\n### Long description:\n");
        assert!(caption.starts_with(&short), "{wanted}: {caption}");
        assert!(caption.len() > short.len(), "{wanted}: an empty recaption");
    }

    let stats = dir
        .wolf(&["recaption", "stats", "--out", "rc"])
        .expect_code(0);
    let table = stats.stdout();
    assert!(table.lines().count() >= 3, "{table}");
}

#[test]
fn a_round_killed_midway_resumes_without_losing_or_repeating_an_item() {
    const ITEMS: usize = 40;
    let dir = Dir::new();
    let server = ScriptedServer::start(
        Script::always(Behaviour::with(|request: &Value| {
            let hash = fnv1a(request["messages"].to_string().as_bytes());
            format!("A square of colour {hash:016x}.")
        }))
        .with_latency(Duration::from_millis(100)),
    )
    .unwrap();
    let keys: Vec<String> = (0..ITEMS).map(|i| format!("img_{i:03}")).collect();
    for (s, chunk) in keys.chunks(ITEMS / 2).enumerate() {
        let samples: Vec<Sample> = chunk
            .iter()
            .enumerate()
            .map(|(j, key)| {
                let i = s * ITEMS / 2 + j;
                Sample::captioned(key, small_png(i), &format!("Picture {i}."))
            })
            .collect();
        write_shard(&dir.join(&format!("shards/part-00{s}.tar")), &samples);
    }
    std::fs::write(
        dir.join("recaption.toml"),
        format!(
            "[models.scripted]\nbackend = \"openai\"\nbase_url = \"{}\"\nmodel = \"scripted\"\nmax_concurrency = 2\n\n[recaption]\ncaptioner = \"scripted\"\nconcurrency = 4\n",
            server.base_url()
        ),
    )
    .unwrap();

    let mut child = dir
        .command(&ROUND)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wolf starts");
    let log = dir.join("rc/round-1/round.jsonl");
    let lines = || {
        std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let started = Instant::now();
    while lines() < 5 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the round ended ({status}) before it could be killed");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress in the round's log"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = lines();
    assert!(
        before < ITEMS,
        "{before} records: the round was not cut short"
    );

    let run = dir.wolf(&ROUND).expect_code(0);
    let log = records(&log);
    let mut done: BTreeMap<String, usize> = BTreeMap::new();
    for record in &log {
        assert_eq!(record["status"], "done", "{record}");
        *done
            .entry(record["key"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let twice: Vec<_> = done.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "done twice: {twice:?}");
    assert_eq!(
        done.keys().cloned().collect::<Vec<_>>(),
        keys,
        "{}",
        run.stdout()
    );

    for (s, chunk) in keys.chunks(ITEMS / 2).enumerate() {
        let path = dir.join(&format!("rc/round-1/captions/part-00{s}.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        let captions: BTreeMap<String, Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(
            captions.keys().collect::<Vec<_>>(),
            chunk.iter().collect::<Vec<_>>()
        );
        for key in chunk {
            assert_eq!(occurrences(&text, key), 1, "{key} in {}", path.display());
            let caption = captions[key]["output"].as_str().unwrap();
            assert!(caption.contains("A square of colour"), "{caption}");
        }
    }
    let requests = server.requests();
    assert!(
        (ITEMS..2 * ITEMS).contains(&requests),
        "{requests} captioner requests for {ITEMS} items"
    );
}

#[test]
fn bad_input_is_skipped_with_its_reason_counted_and_the_round_completes() {
    let dir = Dir::new();
    let mut frames: Vec<Sample> = world_samples(&dir, 2).into_iter().map(|(s, _)| s).collect();
    let mut cut = frames.pop().unwrap();
    cut.key = "cut".into();
    let good: Vec<String> = frames.iter().map(|s| s.key.clone()).collect();
    assert_eq!(good.len(), 5);
    let mut frames = frames.into_iter();
    let mut next_good = || frames.next().unwrap();

    // Shard 0: good samples around a corrupt image, an image without its caption and
    // a sample whose only member is neither an image nor a caption.
    let first = vec![
        next_good(),
        next_good(),
        Sample::captioned("corrupt", b"these bytes are not a PNG".to_vec(), "A cat."),
        Sample {
            key: "uncaptioned".into(),
            members: vec![("png", small_png(1))],
        },
        Sample {
            key: "binary".into(),
            members: vec![("bin", vec![0, 1, 2, 3])],
        },
        next_good(),
    ];
    write_shard(&dir.join("shards/part-000.tar"), &first);

    // Shard 1: two good samples, then one cut off in the middle of its image.
    let second = vec![next_good(), next_good(), cut];
    let (bytes, offsets) = tar_bytes(&second);
    let image_len = second[2].members[0].1.len();
    let end = offsets["cut.png"] + image_len / 2;
    std::fs::write(dir.join("shards/part-001.tar"), &bytes[..end]).unwrap();

    std::fs::write(
        dir.join("recaption.toml"),
        "[recaption]\ncaptioner = \"frame-captioner\"\ntemplate = \"short_long\"\n",
    )
    .unwrap();
    let run = dir
        .wolf(&[&ROUND[..], &["--write-shards", "written"]].concat())
        .expect_code(1);

    let log = records(&dir.join("rc/round-1/round.jsonl"));
    let mut done = BTreeSet::new();
    let mut failed = BTreeMap::new();
    for record in &log {
        let key = record["key"].as_str().unwrap_or("-").to_owned();
        match record["status"].as_str() {
            Some("done") => assert!(done.insert(key), "{record}"),
            Some("failed") => {
                assert!(
                    !record["message"].as_str().unwrap_or("").is_empty(),
                    "{record}"
                );
                let problem = record["problem"].as_str().unwrap().to_owned();
                assert!(failed.insert(key, problem).is_none(), "{record}");
            }
            _ => panic!("{record}"),
        }
    }
    assert_eq!(done, good.iter().cloned().collect(), "{}", run.stdout());
    let expected_failures = BTreeMap::from([
        ("binary".to_owned(), "no_media".to_owned()),
        ("corrupt".to_owned(), "corrupt_member".to_owned()),
        ("cut".to_owned(), "truncated_shard".to_owned()),
        ("uncaptioned".to_owned(), "missing_caption".to_owned()),
    ]);
    assert_eq!(failed, expected_failures);

    let stats = read_json(&dir.join("rc/round-1/stats.json"));
    assert_eq!(stats["captions"], 5, "{stats:#}");
    assert_eq!(stats["failed"], 4, "{stats:#}");
    assert_eq!(
        stats["failures"],
        serde_json::json!({
            "corrupt_member": 1,
            "missing_caption": 1,
            "no_media": 1,
            "truncated_shard": 1,
        }),
        "{stats:#}"
    );
    assert!(run.stdout().contains("truncated_shard"), "{}", run.stdout());

    // The good items of both shards are in the caption files, the bad ones are not.
    let mut captioned = BTreeSet::new();
    for shard in ["part-000", "part-001"] {
        let captions = read_json(&dir.join(&format!("rc/round-1/captions/{shard}.json")));
        for (key, value) in captions.as_object().unwrap() {
            let caption = value["output"].as_str().unwrap();
            assert!(caption.starts_with("### Short description:\n"), "{caption}");
            captioned.insert(key.clone());
        }
    }
    assert_eq!(captioned, done);

    // `--write-shards`: every sample as it was, the captioned ones with their
    // recaption and merged caption; the cut sample is not written.
    let mut members: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for shard in ["part-000", "part-001"] {
        let file = std::fs::File::open(dir.join(&format!("written/{shard}.tar"))).unwrap();
        for entry in tar::Archive::new(file).entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            members.insert(name, bytes);
        }
    }
    for record in log.iter().filter(|r| r["status"] == "done") {
        let key = record["key"].as_str().unwrap();
        let recaption = &members[&format!("{key}.recaption.txt")];
        assert_eq!(recaption, record["recaption"].as_str().unwrap().as_bytes());
        let json: Value = serde_json::from_slice(&members[&format!("{key}.json")]).unwrap();
        assert_eq!(json["merged_caption"], record["caption"], "{json}");
        assert!(members.contains_key(&format!("{key}.png")));
        assert!(members.contains_key(&format!("{key}.txt")));
    }
    assert_eq!(members["corrupt.png"], b"these bytes are not a PNG");
    assert!(members.contains_key("binary.bin"));
    assert!(
        !members.keys().any(|k| k.starts_with("cut.")),
        "{:?}",
        members.keys()
    );
    assert!(!members.contains_key("corrupt.recaption.txt"));
    assert!(
        run.stdout()
            .contains("Wrote 2 shards (5 samples recaptioned)"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stderr()
            .contains("part-001.tar`: the shard ends inside member"),
        "{}",
        run.stderr()
    );
}

/// `--captioner` replaces `[recaption] captioner` before the config is checked: a file
/// whose only entry is `cap` (no defaults beneath, no `[recaption]`) runs a round.
#[test]
fn the_captioner_flag_is_applied_before_the_config_is_checked() {
    let dir = Dir::new();
    let samples: Vec<Sample> = world_samples(&dir, 1).into_iter().map(|(s, _)| s).collect();
    let count = samples.len();
    write_shard(&dir.join("shards/part-000.tar"), &samples);
    let folder = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/models/frame-captioner"
    );
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "[models]\ndefaults = false\n\n[models.cap]\nbackend = \"onnx\"\npath = \"{folder}\"\n"
        ),
    )
    .unwrap();
    let round = |extra: &[&str]| {
        let mut args = ROUND[..7].to_vec();
        args.push("c.toml");
        args.extend_from_slice(extra);
        dir.wolf(&args)
    };
    // Without the flag, the default captioner is named and the file lacks it.
    let refused = round(&[]).expect_code(2);
    assert!(
        refused.stderr().contains("frame-captioner"),
        "{}",
        refused.stderr()
    );
    round(&["--captioner", "cap"]).expect_code(0);
    let stats = read_json(&dir.join("rc/round-1/stats.json"));
    assert_eq!(stats["captions"], count, "{stats:#}");
}

/// `train_cmd` that writes a new model entry into the round's `model.toml` (a stand-in
/// for a trainer: the same fixture captioner, configured otherwise, behind a link in
/// the round's folder) and prints its name: the next round captions with it, and the
/// held-out score is `truth_f1` (the held-out world has truth) with `embed_sim` beside.
#[test]
fn a_trainer_that_writes_a_new_entry_gives_the_next_round_its_captioner() {
    let dir = Dir::new();
    let samples: Vec<Sample> = world_samples(&dir, 2).into_iter().map(|(s, _)| s).collect();
    write_shard(&dir.join("shards/part-000.tar"), &samples);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/frame-captioner");
    let trainer = format!(
        "ln -s '{}' \"$1/model\"\nname=captioner-after-$(basename \"$1\")\nprintf '[models.%s]\\nbackend = \"onnx\"\\npath = \"model\"\\nbatch = 2\\n' \"$name\" > \"$1/model.toml\"\necho \"$name\"\n",
        fixture.display()
    );
    std::fs::write(dir.join("trainer.sh"), trainer).unwrap();
    let run = held_out_loop(&dir, "'sh trainer.sh \"$1\"'");
    let summary = read_json(&dir.join("rc/loop.json"));
    let rounds = summary["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{summary:#}\n{}", run.stdout());
    assert_eq!(rounds[0]["captioner"], "frame-captioner");
    assert_eq!(
        rounds[1]["captioner"], "captioner-after-round-1",
        "{summary:#}"
    );
    assert_eq!(rounds[1]["stats"]["captions"], 6, "{summary:#}");
    for round in rounds {
        assert_eq!(round["heldout_metric"], "truth_f1", "{summary:#}");
        let (f1, sim) = (
            round["heldout_score"].as_f64().unwrap(),
            round["heldout_embed_sim"].as_f64().unwrap(),
        );
        assert!(
            (0.0..=1.0).contains(&f1) && (-1.0..=1.0).contains(&sim),
            "{summary:#}"
        );
    }
    // The same weights, batched otherwise: the same held-out captions, so no gain.
    assert!(
        rounds[1]["gain"].as_f64().unwrap().abs() < 1e-9,
        "{summary:#}"
    );
    assert!(
        run.stdout().contains("captioner `captioner-after-round-1`"),
        "{}",
        run.stdout()
    );
}

/// `--write-sidecars` on a folder of images: each captioned file gains its merged
/// caption and its recaption beside it, and a second round reads the folder as before.
#[test]
fn sidecars_are_written_beside_a_folders_files() {
    let dir = Dir::new();
    std::fs::create_dir_all(dir.join("pics/sub")).unwrap();
    for (i, name) in ["pics/a.png", "pics/sub/b.png"].iter().enumerate() {
        std::fs::write(dir.join(name), small_png(i)).unwrap();
        let caption = dir.join(name).with_extension("txt");
        std::fs::write(caption, format!("Picture {i}.")).unwrap();
    }
    let round = |n: &str| {
        dir.wolf(&[
            "recaption",
            "round",
            "--input",
            "pics",
            "--out",
            "rc",
            "--round",
            n,
            "--captioner",
            "frame-captioner",
            "--write-sidecars",
        ])
        .expect_code(0)
    };
    let run = round("1");
    assert!(
        run.stdout().contains("Wrote 4 sidecar captions"),
        "{}",
        run.stdout()
    );
    let log = records(&dir.join("rc/round-1/round.jsonl"));
    for record in &log {
        let key = record["key"].as_str().unwrap();
        let merged = std::fs::read_to_string(dir.join(&format!("pics/{key}.merged.txt"))).unwrap();
        assert_eq!(merged, record["caption"].as_str().unwrap());
        let recaption =
            std::fs::read_to_string(dir.join(&format!("pics/{key}.recaption.txt"))).unwrap();
        assert_eq!(recaption, record["recaption"].as_str().unwrap());
    }
    assert_eq!(log.len(), 2);
    // The sidecars are neither items nor captions of the next round.
    round("2");
    let second = records(&dir.join("rc/round-2/round.jsonl"));
    assert_eq!(second.len(), 2);
    assert!(
        second
            .iter()
            .all(|r| r["original"].as_str().unwrap().starts_with("Picture"))
    );
}

/// `[recaption] specialist_captioner` answers the specialists' prompts, while the
/// round's captioner writes the recaption (two scripted servers that sign their
/// replies); the merged caption holds both.
#[test]
fn the_specialist_captioner_answers_the_specialists() {
    let dir = Dir::new();
    let captioner = ScriptedServer::start(Script::always(Behaviour::Text(
        "The captioner's recaption.".into(),
    )))
    .unwrap();
    let specialist = ScriptedServer::start(Script::always(Behaviour::Text(
        "The specialist's answer.".into(),
    )))
    .unwrap();
    let samples: Vec<Sample> = (0..3)
        .map(|i| Sample::captioned(&format!("img_{i}"), small_png(i), "Short."))
        .collect();
    write_shard(&dir.join("shards/part-000.tar"), &samples);
    std::fs::write(
        dir.join("recaption.toml"),
        format!(
            "[models.general]\nbackend = \"openai\"\nbase_url = \"{}\"\nmodel = \"scripted\"\n\n\
             [models.grounder]\nbackend = \"openai\"\nbase_url = \"{}\"\nmodel = \"scripted\"\n\n\
             [recaption]\ncaptioner = \"general\"\nspecialists = [\"grounding\"]\nspecialist_captioner = \"grounder\"\n",
            captioner.base_url(),
            specialist.base_url()
        ),
    )
    .unwrap();
    dir.wolf(&ROUND).expect_code(0);
    let log = records(&dir.join("rc/round-1/round.jsonl"));
    assert_eq!(log.len(), 3);
    for record in &log {
        assert_eq!(
            record["recaption"], "The captioner's recaption.",
            "{record}"
        );
        assert_eq!(record["answers"][0]["specialist"], "grounding", "{record}");
        assert_eq!(
            record["answers"][0]["answer"], "The specialist's answer.",
            "{record}"
        );
        let caption = record["caption"].as_str().unwrap();
        assert!(caption.contains("### Long description:\nThe captioner's recaption."));
        assert!(
            caption.contains("### Answer: The specialist's answer."),
            "{caption}"
        );
    }

    // An entry that is not there is refused before the round starts.
    std::fs::write(
        dir.join("recaption.toml"),
        format!(
            "[models.general]\nbackend = \"openai\"\nbase_url = \"{}\"\nmodel = \"scripted\"\n\n\
             [recaption]\ncaptioner = \"general\"\nspecialists = [\"grounding\"]\nspecialist_captioner = \"nobody\"\n",
            captioner.base_url()
        ),
    )
    .unwrap();
    let into = |out: &'static str| [&ROUND[..5], &[out], &ROUND[6..]].concat();
    let refused = dir.wolf(&into("rc2"));
    assert!(
        refused.stderr().contains("no model `nobody`"),
        "{}",
        refused.stderr()
    );
    assert!(!dir.join("rc2/round-1/round.jsonl").exists());

    // Without specialists the entry is not used, and not checked.
    let unused = std::fs::read_to_string(dir.join("recaption.toml"))
        .unwrap()
        .replace("specialists = [\"grounding\"]\n", "");
    std::fs::write(dir.join("recaption.toml"), unused).unwrap();
    dir.wolf(&into("rc3")).expect_code(0);
}
