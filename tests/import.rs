//! `wolf import`: Wolf JSON (both shapes) and JSONL become entries; every invalid file
//! exits 2, names its problem and leaves the store as it was.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::util::Dir;

const KEYS: [&str; 4] = [
    "clip_00000.mp4",
    "clip_00001.mp4",
    "clip_00002.mp4",
    "clip_00003.mp4",
];

/// An entry's captions by video key (its Wolf JSON export).
fn entry(dir: &Dir, name: &str) -> BTreeMap<String, String> {
    let run = dir
        .wolf(&[
            "export",
            "--run",
            name,
            "--format",
            "wolf-json",
            "--source",
            name,
        ])
        .expect_code(0);
    serde_json::from_value(run.json()).unwrap()
}

fn import(dir: &Dir, name: &str, file: &str, extra: &[&str]) -> crate::util::Run {
    let mut args = vec!["import", "--dataset", "ds", "--name", name];
    args.extend_from_slice(extra);
    args.push(file);
    dir.wolf(&args)
}

fn jsonl(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn wolf_json_of_both_shapes_and_exported_jsonl_become_entries() {
    let dir = Dir::new();
    let refs = dir.synthetic_dataset(4, 3);

    // `{video: caption}`.
    std::fs::write(dir.join("flat.json"), serde_json::to_string(&refs).unwrap()).unwrap();
    let run = import(&dir, "flat", "flat.json", &[]).expect_code(0);
    assert_eq!(
        run.stdout().trim(),
        "imported 4 captions of dataset ds as entry flat"
    );
    assert_eq!(entry(&dir, "flat"), refs);

    // `{video: {"output": caption, ...}}`: Wolf's own annotation file, tags and all.
    import(&dir, "nested", "world/annotations.json", &[]).expect_code(0);
    assert_eq!(entry(&dir, "nested"), refs);
    let lines = dir.wolf(&["export", "--run", "nested"]).expect_code(0);
    let sources: Vec<Value> = lines
        .stdout()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["source"].clone())
        .collect();
    assert_eq!(sources, vec![json!("nested"); 4]);

    // Lines as `wolf export` writes them, with several sources per video: only `wolf`
    // is taken unless `--source` says otherwise.
    let mut lines = Vec::new();
    for (i, key) in KEYS.iter().enumerate() {
        for source in ["motion", "wolf"] {
            lines.push(json!({
                "video": key,
                "path": format!("world/{key}"),
                "source": source,
                "caption": format!("{source} caption {i}."),
                "model": null,
                "prompt_version": null,
            }));
        }
    }
    std::fs::write(dir.join("run.jsonl"), jsonl(&lines)).unwrap();
    let run = import(&dir, "theirs", "run.jsonl", &[]).expect_code(0);
    assert_eq!(
        run.stdout().trim(),
        "imported 4 captions of dataset ds as entry theirs"
    );
    let want: BTreeMap<String, String> = KEYS
        .iter()
        .enumerate()
        .map(|(i, k)| (k.to_string(), format!("wolf caption {i}.")))
        .collect();
    assert_eq!(entry(&dir, "theirs"), want);
    import(&dir, "motion", "run.jsonl", &["--source", "motion"]).expect_code(0);
    assert!(
        entry(&dir, "motion")
            .values()
            .all(|c| c.starts_with("motion caption"))
    );

    // A one-line JSONL file is one JSON object too; it is still read as JSONL.
    std::fs::write(
        dir.join("one.jsonl"),
        json!({"video": KEYS[1], "caption": "One."}).to_string(),
    )
    .unwrap();
    import(&dir, "one", "one.jsonl", &[]).expect_code(0);
    assert_eq!(
        entry(&dir, "one"),
        BTreeMap::from([(KEYS[1].to_owned(), "One.".to_owned())])
    );

    // A round trip through `wolf export`, and a re-import that replaces the captions.
    let exported = dir.wolf(&["export", "--run", "flat"]).expect_code(0);
    std::fs::write(dir.join("flat.jsonl"), exported.stdout()).unwrap();
    import(&dir, "again", "flat.jsonl", &["--source", "flat"]).expect_code(0);
    assert_eq!(entry(&dir, "again"), refs);
    std::fs::write(
        dir.join("two.json"),
        json!({KEYS[0]: "Zero.", KEYS[2]: "Two."}).to_string(),
    )
    .unwrap();
    import(&dir, "flat", "two.json", &[]).expect_code(0);
    assert_eq!(
        entry(&dir, "flat"),
        BTreeMap::from([
            (KEYS[0].to_owned(), "Zero.".to_owned()),
            (KEYS[2].to_owned(), "Two.".to_owned()),
        ])
    );
}

#[test]
fn each_invalid_file_exits_2_names_its_problems_and_writes_nothing() {
    let dir = Dir::new();
    dir.synthetic_dataset(4, 3);
    std::fs::write(dir.join("good.json"), json!({KEYS[0]: "Good."}).to_string()).unwrap();
    import(&dir, "good", "good.json", &[]).expect_code(0);
    let before = dir
        .wolf(&["export", "--run", "good"])
        .expect_code(0)
        .stdout();
    let unchanged = |case: &str| {
        let run = dir.wolf(&["export", "--run", "bad"]).expect_code(2);
        assert!(
            run.stderr().contains("no run `bad`; runs: good ("),
            "{case}: {}",
            run.stderr()
        );
        let after = dir
            .wolf(&["export", "--run", "good"])
            .expect_code(0)
            .stdout();
        assert_eq!(after, before, "{case} changed entry `good`");
    };

    let many: serde_json::Map<String, Value> = (0..25)
        .map(|i| (format!("nope_{i:02}.mp4"), json!("A caption.")))
        .collect();
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "unknown.json",
            json!({KEYS[0]: "A.", "nope.mp4": "B."}).to_string().into(),
            vec![r#"key "nope.mp4""#, "not in dataset `ds`"],
        ),
        (
            "duplicate.jsonl",
            jsonl(&[
                json!({"video": KEYS[0], "caption": "A."}),
                json!({"video": KEYS[1], "caption": "B."}),
                json!({"video": KEYS[0], "caption": "C."}),
            ])
            .into(),
            vec!["line 3", "already given at line 1"],
        ),
        (
            "duplicate.json",
            format!(r#"{{"{0}": "A.", "{0}": "B."}}"#, KEYS[0]).into(),
            vec![r#"key "clip_00000.mp4""#, "more than once"],
        ),
        (
            "empty_caption.jsonl",
            jsonl(&[
                json!({"video": KEYS[0], "caption": "A."}),
                json!({"video": KEYS[1], "caption": "  \n "}),
            ])
            .into(),
            vec!["line 2", "caption of `clip_00001.mp4` is empty"],
        ),
        (
            "number.json",
            json!({KEYS[0]: "A.", KEYS[1]: 5}).to_string().into(),
            vec![r#"key "clip_00001.mp4""#, "a number"],
        ),
        (
            "number.jsonl",
            jsonl(&[json!({"video": KEYS[0], "caption": 5})]).into(),
            vec!["line 1", "`caption` is a number, not a string"],
        ),
        (
            "mixed_shapes.json",
            json!({KEYS[0]: "A.", KEYS[1]: {"output": "B."}})
                .to_string()
                .into(),
            vec![r#"key "clip_00001.mp4""#, "one shape"],
        ),
        (
            "latin1.jsonl",
            [
                jsonl(&[json!({"video": KEYS[0], "caption": "A."})]).into_bytes(),
                b"{\"video\": \"clip_00001.mp4\", \"caption\": \"caf\xe9.\"}\n".to_vec(),
            ]
            .concat(),
            vec!["line 2", "not UTF-8"],
        ),
        (
            "malformed.json",
            format!("{{\n  \"{}\": \"A.\",\n  \"{}\": \n}}\n", KEYS[0], KEYS[1]).into(),
            vec!["line 4", "not valid JSON"],
        ),
        (
            "malformed.jsonl",
            format!(
                "{}{{\"video\": \"{}\", \"caption\": }}\n",
                jsonl(&[json!({"video": KEYS[0], "caption": "A."})]),
                KEYS[1]
            )
            .into(),
            vec!["line 2", "not valid JSON"],
        ),
        (
            "not_an_object.jsonl",
            "[1, 2]\n".into(),
            vec!["line 1", "not a JSON object"],
        ),
        ("empty.jsonl", Vec::new(), vec!["no captions"]),
        ("empty.json", b"{}".to_vec(), vec!["no captions"]),
        (
            "other_source.jsonl",
            jsonl(&[json!({"video": KEYS[0], "source": "motion", "caption": "A."})]).into(),
            vec!["no line has the source `wolf`", "`motion` (1)"],
        ),
        (
            "many.json",
            serde_json::to_vec(&many).unwrap(),
            vec![
                "25 problems, the first 20",
                r#"key "nope_19.mp4""#,
                "and 5 more",
            ],
        ),
    ];
    for (file, bytes, wanted) in &cases {
        std::fs::write(dir.join(file), bytes).unwrap();
        let run = import(&dir, "bad", file, &[]).expect_code(2);
        let stderr = run.stderr();
        assert!(stderr.contains("nothing was written"), "{file}: {stderr}");
        for w in wanted {
            assert!(stderr.contains(w), "{file}: `{w}` missing from:\n{stderr}");
        }
        assert!(run.stdout().is_empty(), "{file}: {}", run.stdout());
        unchanged(file);
    }

    // Over 64 MiB: refused by its size, before a byte is read (the file is sparse).
    let large = std::fs::File::create(dir.join("large.jsonl")).unwrap();
    large.set_len(64 * 1024 * 1024 + 1).unwrap();
    drop(large);
    let run = import(&dir, "bad", "large.jsonl", &[]).expect_code(2);
    assert!(
        run.stderr()
            .contains("more than the limit of 67108864 bytes"),
        "{}",
        run.stderr()
    );
    unchanged("large.jsonl");

    // A bad file under an existing entry's name keeps the entry as it was.
    let run = import(&dir, "good", "unknown.json", &[]).expect_code(2);
    assert!(run.stderr().contains("nope.mp4"), "{}", run.stderr());
    unchanged("re-import of `good`");

    // A name taken by a run of another dataset.
    dir.wolf(&[
        "dataset",
        "add",
        "other",
        "world",
        "--annotations",
        "world/annotations.json",
    ])
    .expect_code(0);
    let run = dir
        .wolf(&[
            "import",
            "--dataset",
            "other",
            "--name",
            "good",
            "good.json",
        ])
        .expect_code(2);
    assert!(
        run.stderr()
            .contains("`good` already exists as a run of dataset `ds`"),
        "{}",
        run.stderr()
    );
    unchanged("a name of another dataset");

    // `--source` is for JSONL.
    let run = import(&dir, "bad", "good.json", &["--source", "x"]).expect_code(2);
    assert!(run.stderr().contains("--source"), "{}", run.stderr());
    unchanged("--source with Wolf JSON");
}

/// One caption over the limit (16 KiB by default) refuses the whole file, naming the
/// video and the sizes; `--max-caption-bytes` raises the limit.
#[test]
fn a_caption_over_the_size_limit_refuses_the_file() {
    let dir = Dir::new();
    dir.synthetic_dataset(4, 3);
    let mut captions: BTreeMap<&str, String> = KEYS
        .iter()
        .map(|k| (*k, "a red circle".to_owned()))
        .collect();
    captions.insert(KEYS[2], "a red circle ".repeat(1400));
    std::fs::write(
        dir.join("big.json"),
        serde_json::to_string(&captions).unwrap(),
    )
    .unwrap();
    let refused = import(&dir, "big", "big.json", &[]).expect_code(2);
    let err = refused.stderr();
    assert!(
        err.contains(KEYS[2]) && err.contains("18200 bytes") && err.contains("16384"),
        "{err}"
    );
    dir.wolf(&["run", "status", "big"]).expect_code(2);
    import(&dir, "big", "big.json", &["--max-caption-bytes", "20000"]).expect_code(0);
    assert_eq!(entry(&dir, "big")[KEYS[2]].len(), 18200);
}

/// Caption files of other tools, through the column mapping: a Data-Juicer JSONL
/// (`videos`: a list of one path, `text`), a Cosmos-Curate-like one keyed by another
/// field, and ActivityNet's submission (`results`); a mapped field a line lacks
/// refuses the file.
#[test]
fn caption_files_of_other_tools_are_read_through_the_mapping() {
    let dir = Dir::new();
    let refs = dir.synthetic_dataset(4, 3);
    let juicer: Vec<Value> = refs
        .iter()
        .enumerate()
        .map(|(i, (key, caption))| {
            // Paths as stored, relative to the dataset's folder, or `./`-led.
            let path = match i % 3 {
                0 => dir.join(&format!("world/{key}")).display().to_string(),
                1 => format!("world/{key}"),
                _ => format!("./world/{key}"),
            };
            json!({"videos": [path], "text": caption, "__dj__stats__": {"len": 3}})
        })
        .collect();
    std::fs::write(dir.join("dj.jsonl"), jsonl(&juicer)).unwrap();
    let mapped = ["--path-column", "videos", "--caption-column", "text"];
    import(&dir, "dj", "dj.jsonl", &mapped).expect_code(0);
    assert_eq!(entry(&dir, "dj"), refs);

    let curated: Vec<Value> = refs
        .iter()
        .map(|(key, caption)| json!({"clip_id": key, "window_caption": caption}))
        .collect();
    std::fs::write(dir.join("cc.jsonl"), jsonl(&curated)).unwrap();
    let keyed = [
        "--key-column",
        "clip_id",
        "--caption-column",
        "window_caption",
    ];
    import(&dir, "cc", "cc.jsonl", &keyed).expect_code(0);
    assert_eq!(entry(&dir, "cc"), refs);
    // Without the mapping the same file is refused, by line.
    let refused = import(&dir, "cc2", "cc.jsonl", &[]).expect_code(2);
    assert!(refused.stderr().contains("line 1"), "{}", refused.stderr());

    let results: serde_json::Map<String, Value> = refs
        .iter()
        .map(|(key, caption)| {
            (
                key.clone(),
                json!([{"sentence": caption, "timestamp": [0.0, 1.0]}]),
            )
        })
        .collect();
    let submission = json!({"version": "VERSION 1.0", "results": results, "external_data": {}});
    std::fs::write(dir.join("anet.json"), submission.to_string()).unwrap();
    import(&dir, "anet", "anet.json", &[]).expect_code(0);
    assert_eq!(entry(&dir, "anet"), refs);
    let dense = dir
        .wolf(&[
            "export", "--run", "anet", "--format", "dense", "--source", "anet",
        ])
        .expect_code(0)
        .json();
    let first = refs.keys().next().unwrap();
    assert_eq!(dense[first]["timestamps"], json!([[0.0, 1.0]]), "{dense}");

    let wrong = [json!({"videos": ["world/nope.mp4"], "text": "x"})];
    std::fs::write(dir.join("wrong.jsonl"), jsonl(&wrong)).unwrap();
    let refused = import(&dir, "wrong", "wrong.jsonl", &mapped).expect_code(2);
    assert!(
        refused
            .stderr()
            .contains("`world/nope.mp4` is the path of no video"),
        "{}",
        refused.stderr()
    );
}
