//! The motion stage on the fixture frame captioner's real grounded captions: tracks
//! that match the truth. A fresh world (seed 23: not the demo's 7, nor a fixture's
//! training or measurement seed), captioned with the demo's sampling and captioners;
//! the LLM is a scripted server with the guard off, since only the motion caption (a
//! fixed sentence from the tracks) is read.

use std::collections::BTreeMap;

use serde_json::Value;
use wolf_pipeline::models::scripted::Script;
use wolf_scorer::truth::{Fact, WorldTruth, facts};

use crate::caption::answering;
use crate::util::{Dir, serve};

/// Clips of the world, and how many of them must name the true number of objects
/// (measured: 28; before the tracker's colour-first association, majority labels and
/// short-track filter, about a third of the clips).
const CLIPS: usize = 32;
const RIGHT_AT_LEAST: usize = 27;

fn config(dir: &Dir, llm_url: &str) -> String {
    let fixture = |name: &str| format!("{}/fixtures/models/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = format!(
        "[sampling]\nfps = 2.0\nmin_frames = 4\nmax_frames = 8\nformat = \"jpeg\"\njpeg_quality = 90\n\n\
         [models.frame-captioner]\nbackend = \"onnx\"\npath = \"{}\"\nbatch = 8\n\n\
         [models.storyboard-captioner]\nbackend = \"onnx\"\npath = \"{}\"\nbatch = 8\n\n\
         [models.llm]\nbackend = \"openai\"\nbase_url = \"{llm_url}\"\nmodel = \"llm\"\n\n\
         [wolf]\nimage_models = [\"frame-captioner\"]\nvideo_models = [\"storyboard-captioner\"]\n\
         llm = \"llm\"\nmotion = \"captions\"\nmotion_llm = false\nguard = \"off\"\n",
        fixture("frame-captioner"),
        fixture("storyboard-captioner"),
    );
    let path = dir.join("motion.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn objects(facts: impl IntoIterator<Item = Fact>) -> usize {
    facts
        .into_iter()
        .filter(|f| matches!(f, Fact::Object { .. }))
        .count()
}

#[test]
fn the_motion_caption_names_the_true_number_of_objects() {
    let dir = Dir::new();
    dir.synthetic_dataset(CLIPS, 23);
    let server = serve(Script::always(answering()));
    let config = config(&dir, server.base_url());
    dir.wolf(&[
        "caption",
        "--config",
        &config,
        "--dataset",
        "ds",
        "--run",
        "m",
    ])
    .expect_code(0);
    let truth = WorldTruth::read_folder(&dir.join("world")).unwrap();
    let export = dir
        .wolf(&["export", "--run", "m", "--source", "motion"])
        .expect_code(0)
        .stdout();
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (key, clip) in truth.clips() {
        counts.insert(key.to_owned(), (objects(clip.facts.iter().cloned()), 0));
    }
    for line in export.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        let key = row["video"].as_str().unwrap();
        let named = objects(facts(row["caption"].as_str().unwrap()));
        counts.get_mut(key).expect("a clip of the world").1 = named;
    }
    let right = counts.values().filter(|(t, n)| t == n).count();
    assert!(
        right >= RIGHT_AT_LEAST,
        "{right} of {CLIPS} motion captions name the true number of objects \
         (truth, named): {counts:?}"
    );
}
