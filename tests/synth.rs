//! `wolf synth`: the same seed gives the same bytes; the world ingests as a dataset.

use crate::util::Dir;

#[test]
fn the_same_seed_gives_the_same_bytes_and_the_world_ingests() {
    let dir = Dir::new();
    dir.wolf(&[
        "synth",
        "--out",
        "a",
        "--count",
        "3",
        "--seed",
        "5",
        "--threads",
        "1",
    ])
    .expect_code(0);
    dir.wolf(&[
        "synth",
        "--out",
        "b",
        "--count",
        "3",
        "--seed",
        "5",
        "--threads",
        "2",
    ])
    .expect_code(0);
    for name in [
        "clip_00000.mp4",
        "clip_00001.mp4",
        "clip_00002.mp4",
        "annotations.json",
        "boxes.json",
    ] {
        let (a, b) = (
            std::fs::read(dir.join("a").join(name)).unwrap(),
            std::fs::read(dir.join("b").join(name)).unwrap(),
        );
        assert!(a == b, "{name} differs between two runs with the same seed");
    }
    let annotations: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("a/annotations.json")).unwrap()).unwrap();
    let caption = annotations["clip_00000.mp4"]["output"].as_str().unwrap();
    assert!(
        caption.starts_with('A') && caption.ends_with('.'),
        "{caption}"
    );

    dir.wolf(&[
        "dataset",
        "add",
        "world",
        "a",
        "--annotations",
        "a/annotations.json",
    ])
    .expect_code(0);
    let shown = dir
        .wolf(&["dataset", "show", "world", "--format", "json", "--videos"])
        .json();
    assert_eq!(shown["dataset"]["videos"], 3);
    assert_eq!(shown["dataset"]["with_reference"], 3);
    let video = &shown["videos"][0];
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert_eq!(video["reference"].as_str().unwrap(), caption);
}
