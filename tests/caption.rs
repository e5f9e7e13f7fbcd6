//! `wolf caption` and `wolf export` end to end: the real binary on synthetic clips, its
//! models served by a scripted OpenAI-compatible server on loopback whose replies are
//! deterministic functions of the request, so that two runs can be compared caption by
//! caption.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use wolf_pipeline::hash::{SplitMix64, fnv1a};
use wolf_pipeline::models::scripted::{Behaviour, Script, ScriptedServer};

use crate::util::{Dir, Run, serve};

/// The sources of one video under [`ModelsToml`]'s `[wolf]` section.
pub(crate) const SOURCES: [&str; 5] = ["img:middle", "img:summary", "motion", "vid", "wolf"];

/// Image-model requests of one video with `[sampling] count = 4` and the cascade on:
/// four cascaded frames, and the middle frame once more without history. (Besides:
/// one video request, and two LLM requests for the summary and the fusion.)
const IMAGE_REQUESTS_PER_VIDEO: usize = 5;

/// The scripted reply: the model's name, a grounded box (so that the motion stage has a
/// track to describe) and a hash of the messages, so that each distinct request gets its
/// own text and the same request always the same text. Only `messages` and `model` are
/// read: the rest of the body may vary from run to run.
pub(crate) fn reply(request: &Value) -> String {
    let model = request["model"].as_str().unwrap_or("?");
    let hash = fnv1a(request["messages"].to_string().as_bytes());
    format!("a red circle [100, 100, 200, 200] moves, says {model} {hash:016x}")
}

pub(crate) fn answering() -> Behaviour {
    Behaviour::with(reply)
}

/// A config of three `openai` entries on one server: image model `img`, video model
/// `vid` and the LLM `llm`, with the motion caption as a fixed sentence.
pub(crate) struct ModelsToml<'a> {
    base_url: &'a str,
    /// The name the server sees for the video model.
    vid_model: &'a str,
    /// Another server for the video model.
    vid_url: Option<&'a str>,
    max_retries: u32,
    timeout_s: f64,
    /// `[wolf] guard`; with `consensus`, the pack's MiniLM is added as the embedder.
    guard: &'a str,
    /// Every entry's `api_key_env`.
    api_key_env: Option<&'a str>,
}

impl<'a> ModelsToml<'a> {
    pub(crate) fn new(base_url: &'a str) -> Self {
        Self {
            base_url,
            vid_model: "vid",
            vid_url: None,
            max_retries: 4,
            timeout_s: 2.0,
            guard: "off",
            api_key_env: None,
        }
    }

    /// Writes the config as `dir/name` and returns its path.
    pub(crate) fn write(&self, dir: &Dir, name: &str) -> String {
        let entry = |entry: &str, url: &str, model: &str| {
            format!(
                "[models.{entry}]\nbackend = \"openai\"\nbase_url = \"{url}\"\nmodel = \"{model}\"\n\
                 max_retries = {}\nmax_backoff_s = 0.05\ntimeout_s = {:?}\nmax_concurrency = 8\n{}\n",
                self.max_retries,
                self.timeout_s,
                self.api_key_env
                    .map_or_else(String::new, |var| format!("api_key_env = \"{var}\"\n")),
            )
        };
        let text = format!(
            "[sampling]\ncount = 4\nsize = \"96x72\"\n\n{}{}{}\
             [wolf]\nimage_models = [\"img\"]\nvideo_models = [\"vid\"]\nllm = \"llm\"\nmotion_llm = false\n\
             guard = \"{}\"\n{}",
            entry("img", self.base_url, "img"),
            entry("vid", self.vid_url.unwrap_or(self.base_url), self.vid_model),
            entry("llm", self.base_url, "llm"),
            self.guard,
            if self.guard == "consensus" {
                "\n[models.minilm]\nbackend = \"onnx\"\nthreads = 1\n"
            } else {
                ""
            },
        );
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

/// Renders `count` clips into `dir/world` and registers them as dataset `world`.
pub(crate) fn world(dir: &Dir, count: usize) {
    let count = count.to_string();
    dir.wolf(&[
        "synth",
        "--out",
        "world",
        "--count",
        &count,
        "--seed",
        "11",
        "--threads",
        "2",
    ])
    .expect_code(0);
    add_world(dir, &dir.join("world"));
}

/// Registers the clips of `folder` (absolute, possibly another test folder's) as
/// dataset `world` of `dir`'s database.
pub(crate) fn add_world(dir: &Dir, folder: &Path) {
    let folder = folder.display().to_string();
    let annotations = format!("{folder}/annotations.json");
    dir.wolf(&[
        "dataset",
        "add",
        "world",
        &folder,
        "--annotations",
        &annotations,
    ])
    .expect_code(0);
}

/// `wolf caption` of dataset `world` with `config` as run `run`, then `extra`.
pub(crate) fn caption_args<'a>(config: &'a str, run: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "caption",
        "--dataset",
        "world",
        "--config",
        config,
        "--run",
        run,
    ];
    args.extend_from_slice(extra);
    args
}

/// A world of `clips` clips, a scripted server that answers every request, and a config
/// for it written to `file`: the server (it stops when dropped) and the config's path.
pub(crate) fn answered_world(dir: &Dir, clips: usize, file: &str) -> (ScriptedServer, String) {
    world(dir, clips);
    let server = serve(Script::always(answering()));
    let config = ModelsToml::new(server.base_url()).write(dir, file);
    (server, config)
}

pub(crate) fn caption(dir: &Dir, config: &str, run: &str, extra: &[&str]) -> Run {
    dir.wolf(&caption_args(config, run, extra))
}

/// The numbers of the summary line `run `R`: V videos, D done now, S skipped (...), F
/// failed stages, M model requests, T s`.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    videos: u64,
    done: u64,
    skipped: u64,
    failed: u64,
    requests: u64,
}

fn summary(run: &Run) -> Summary {
    let stdout = run.stdout();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("run `"))
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"));
    let after = &line[line.find("`: ").expect("the run's name in backticks") + 3..];
    let numbers: Vec<u64> = after
        .split(", ")
        .filter_map(|part| part.split(' ').next()?.parse().ok())
        .collect();
    assert!(numbers.len() >= 5, "cannot read the summary line `{line}`");
    Summary {
        videos: numbers[0],
        done: numbers[1],
        skipped: numbers[2],
        failed: numbers[3],
        requests: numbers[4],
    }
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// `wolf export --run R` (JSONL) as rows.
pub(crate) fn export(dir: &Dir, run: &str) -> Vec<Value> {
    json_lines(&dir.wolf(&["export", "--run", run]).expect_code(0).stdout())
}

/// `wolf export --run R --failed` as rows.
fn failed_items(dir: &Dir, run: &str) -> Vec<Value> {
    json_lines(
        &dir.wolf(&["export", "--run", run, "--failed"])
            .expect_code(0)
            .stdout(),
    )
}

/// (video, source) → caption, asserting that no pair comes twice.
pub(crate) fn captions_by_pair(rows: &[Value]) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for row in rows {
        let pair = (
            row["video"].as_str().unwrap().to_owned(),
            row["source"].as_str().unwrap().to_owned(),
        );
        let caption = row["caption"].as_str().unwrap().to_owned();
        assert!(!caption.trim().is_empty(), "a blank caption: {row}");
        if let Some(before) = out.insert(pair.clone(), caption) {
            panic!("{pair:?} exported twice (first {before:?}): {row}");
        }
    }
    out
}

/// Every (video, source) of `videos` × [`SOURCES`].
fn all_pairs(videos: &BTreeSet<String>) -> BTreeSet<(String, String)> {
    videos
        .iter()
        .flat_map(|v| SOURCES.iter().map(move |s| (v.clone(), (*s).to_owned())))
        .collect()
}

/// The clip names of a synthetic world of `count` clips.
fn clip_names(count: usize) -> BTreeSet<String> {
    (0..count).map(|i| format!("clip_{i:05}.mp4")).collect()
}

/// Requests received so far, by the `model` the body names.
fn requests_by_model(server: &ScriptedServer) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in server.received() {
        let model = r.body["model"].as_str().unwrap_or("?").to_owned();
        *out.entry(model).or_default() += 1;
    }
    out
}

fn delta(
    after: &BTreeMap<String, usize>,
    before: &BTreeMap<String, usize>,
) -> BTreeMap<String, usize> {
    after
        .iter()
        .map(|(m, n)| (m.clone(), n - before.get(m).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The source a stage's caption is stored under, if it has one.
fn source_of_stage(stage: &str) -> Option<String> {
    match stage.split_once(':') {
        Some(("middle", m)) => Some(format!("{m}:middle")),
        Some(("summary", m)) => Some(format!("{m}:summary")),
        Some(("video", v)) => Some(v.to_owned()),
        Some(_) => None,
        None => match stage {
            "motion" => Some("motion".into()),
            "fusion" => Some("wolf".into()),
            _ => None,
        },
    }
}

#[test]
fn a_second_run_makes_no_model_call() {
    let dir = Dir::new();
    let (server, config) = answered_world(&dir, 6, "a.toml");

    let first = caption(&dir, &config, "r", &[]).expect_code(0);
    let videos = clip_names(6);
    let counted = requests_by_model(&server);
    let expected: BTreeMap<String, usize> = [
        ("img".to_owned(), 6 * IMAGE_REQUESTS_PER_VIDEO),
        ("llm".to_owned(), 6 * 2),
        ("vid".to_owned(), 6),
    ]
    .into();
    assert_eq!(counted, expected, "requests by model of the first run");
    assert_eq!(
        summary(&first),
        Summary {
            videos: 6,
            done: 6,
            skipped: 0,
            failed: 0,
            requests: server.requests() as u64
        }
    );
    let rows = export(&dir, "r");
    let before = captions_by_pair(&rows);
    assert_eq!(
        before.keys().cloned().collect::<BTreeSet<_>>(),
        all_pairs(&videos)
    );
    for ((_, source), text) in &before {
        match source.as_str() {
            "motion" => assert_eq!(text, "The red circle stays in the top left corner."),
            "img:middle" => assert!(text.contains("says img "), "{source}: {text}"),
            "vid" => assert!(text.contains("says vid "), "{source}: {text}"),
            _ => assert!(text.contains("says llm "), "{source}: {text}"),
        }
    }
    assert!(failed_items(&dir, "r").is_empty());

    // The same run again: everything is done with today's keys.
    let requests = server.requests();
    let again = caption(&dir, &config, "r", &[]).expect_code(0);
    assert_eq!(server.requests(), requests, "the second run called a model");
    assert_eq!(
        summary(&again),
        Summary {
            videos: 6,
            done: 0,
            skipped: 6,
            failed: 0,
            requests: 0
        }
    );
    assert_eq!(captions_by_pair(&export(&dir, "r")), before);

    // Another video model: only the video captions and the fusion are redone.
    let config = ModelsToml {
        vid_model: "vid2",
        ..ModelsToml::new(server.base_url())
    }
    .write(&dir, "b.toml");
    let counted = requests_by_model(&server);
    let changed = caption(&dir, &config, "r", &[]).expect_code(0);
    let made = delta(&requests_by_model(&server), &counted);
    let expected: BTreeMap<String, usize> = [("llm".to_owned(), 6), ("vid2".to_owned(), 6)].into();
    assert_eq!(
        made, expected,
        "requests by model after the video model changed"
    );
    assert_eq!(summary(&changed).requests, 12);
    let after = captions_by_pair(&export(&dir, "r"));
    assert_eq!(
        after.keys().cloned().collect::<BTreeSet<_>>(),
        all_pairs(&videos)
    );
    for (pair, text) in &after {
        let old = &before[pair];
        match pair.1.as_str() {
            "vid" => assert!(
                text.contains("says vid2 ") && text != old,
                "{pair:?}: {text}"
            ),
            "wolf" => assert_ne!(text, old, "{pair:?}: the fusion was not redone"),
            _ => assert_eq!(text, old, "{pair:?} changed with the video model"),
        }
    }
}

/// Guards the promise of `wolf::runner`'s module doc and of the `captions` table ("a failed
/// stage never lands here") across runs: a stage that had a caption under an earlier
/// config and fails under today's must not keep exporting the old caption.
#[test]
fn a_stage_that_fails_on_a_rerun_keeps_no_old_caption() {
    let dir = Dir::new();
    let (server, config) = answered_world(&dir, 2, "a.toml");
    caption(&dir, &config, "r", &[]).expect_code(0);
    assert_eq!(export(&dir, "r").len(), 2 * SOURCES.len());

    let broken = serve(Script::always(Behaviour::ServerError));
    let config = ModelsToml {
        vid_url: Some(broken.base_url()),
        max_retries: 0,
        ..ModelsToml::new(server.base_url())
    }
    .write(&dir, "b.toml");
    caption(&dir, &config, "r", &[]).expect_code(1);
    let failed: BTreeSet<(String, String)> = failed_items(&dir, "r")
        .iter()
        .map(|i| {
            (
                i["video"].as_str().unwrap().to_owned(),
                i["stage"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let videos = clip_names(2);
    let expected: BTreeSet<(String, String)> = videos
        .iter()
        .flat_map(|v| {
            [
                (v.clone(), "video:vid".into()),
                (v.clone(), "fusion".into()),
            ]
        })
        .collect();
    assert_eq!(failed, expected);
    let sources: BTreeSet<(String, String)> =
        captions_by_pair(&export(&dir, "r")).into_keys().collect();
    let kept: BTreeSet<(String, String)> = all_pairs(&videos)
        .into_iter()
        .filter(|(_, s)| s != "vid" && s != "wolf")
        .collect();
    assert_eq!(
        sources, kept,
        "the failed stages' old captions are still exported"
    );
}

/// A rerun that does not retry the failed stages it finds (no `--retry-failed`) leaves
/// the run incomplete: it exits 1 and says how many remain and what redoes them.
#[test]
fn a_rerun_that_leaves_failed_stages_exits_1() {
    let dir = Dir::new();
    world(&dir, 2);
    let server = serve(Script::always(answering()));
    let broken = serve(Script::always(Behaviour::ServerError));
    let config = ModelsToml {
        vid_url: Some(broken.base_url()),
        max_retries: 0,
        ..ModelsToml::new(server.base_url())
    }
    .write(&dir, "b.toml");
    // Per video, the video caption fails and the fusion with it.
    let remain = "4 failed stages remain";
    let first = caption(&dir, &config, "r", &[]).expect_code(1);
    assert_eq!(summary(&first).failed, 4);
    assert!(first.stdout().contains(remain), "{}", first.stdout());
    let requests = broken.requests();

    let again = caption(&dir, &config, "r", &[]).expect_code(1);
    assert_eq!(summary(&again).failed, 0, "{}", again.stdout());
    assert_eq!(
        broken.requests(),
        requests,
        "the rerun retried a failed stage"
    );
    assert!(
        again.stdout().contains(remain) && again.stdout().contains("--retry-failed"),
        "{}",
        again.stdout()
    );

    caption(&dir, &config, "r", &["--retry-failed"]).expect_code(1);
    assert!(
        broken.requests() > requests,
        "--retry-failed retried nothing"
    );
}

/// A server that quotes the API key back in its error bodies does not get it stored
/// with the failed stage (and so printed by `wolf export --failed`).
#[test]
fn a_key_the_server_echoes_is_not_stored() {
    const KEY: &str = "sk-first-hour-0123456789";
    let dir = Dir::new();
    world(&dir, 1);
    let server = serve(Script::always(answering()));
    let echo = serve(Script::always(Behaviour::EchoAuthorization(500)));
    let config = ModelsToml {
        vid_url: Some(echo.base_url()),
        max_retries: 0,
        api_key_env: Some("WOLF_TEST_KEY"),
        ..ModelsToml::new(server.base_url())
    }
    .write(&dir, "k.toml");
    let output = dir
        .command(&caption_args(&config, "r", &[]))
        .env("WOLF_TEST_KEY", KEY)
        .output()
        .unwrap();
    Run { output }.expect_code(1);
    assert_eq!(
        echo.received()[0].authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    let failed = dir
        .wolf(&["export", "--run", "r", "--failed"])
        .expect_code(0)
        .stdout();
    assert!(failed.contains("Bearer <redacted>"), "{failed}");
    assert!(!failed.contains(KEY), "{failed}");
}

/// Spawns `wolf caption` on `dir`'s database with its output discarded, or its log
/// written to `dir/log` when one is given.
pub(crate) fn spawn_caption(
    dir: &Dir,
    config: &str,
    run: &str,
    log: Option<&str>,
) -> std::process::Child {
    let stderr = match log {
        Some(name) => Stdio::from(std::fs::File::create(dir.join(name)).expect("log file")),
        None => Stdio::null(),
    };
    dir.command(&caption_args(config, run, &[]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("wolf starts")
}

/// Sorted JSONL export lines.
pub(crate) fn sorted_export(dir: &Dir, run: &str) -> Vec<String> {
    let stdout = dir.wolf(&["export", "--run", run]).expect_code(0).stdout();
    let mut lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// One captioning path: two `wolf caption` processes on one run share its queue, so
/// that together they make no more model requests than one process alone, and every
/// (video, source) is exported once.
#[test]
fn two_concurrent_captions_on_one_run_share_the_work() {
    const CLIPS: usize = 12;
    let dir = Dir::new();
    world(&dir, CLIPS);
    // A little latency, so that both processes are busy at the same time.
    let server = serve(Script::always(answering()).with_latency(Duration::from_millis(20)));
    let config = ModelsToml::new(server.base_url()).write(&dir, "a.toml");
    let alone = CLIPS * (IMAGE_REQUESTS_PER_VIDEO + 1 + 2);

    let logs = ["first.log", "second.log"];
    let children = logs.map(|log| spawn_caption(&dir, &config, "r", Some(log)));
    for (mut child, log) in children.into_iter().zip(logs) {
        let status = child.wait().unwrap();
        let text = std::fs::read_to_string(dir.join(log)).unwrap_or_default();
        assert!(
            status.success(),
            "a `wolf caption` failed ({status}):\n{text}"
        );
    }
    assert!(
        server.requests() <= alone,
        "two processes made {} model requests; one alone makes {alone}",
        server.requests()
    );
    let exported = captions_by_pair(&export(&dir, "r"));
    let pairs: BTreeSet<(String, String)> = exported.keys().cloned().collect();
    assert_eq!(pairs, all_pairs(&clip_names(CLIPS)), "every caption once");
}

#[test]
fn sigkill_at_random_moments_then_rerun_loses_and_duplicates_nothing() {
    const CLIPS: usize = 60;
    let dir = Dir::new();
    world(&dir, CLIPS);
    let reference = Dir::new();
    add_world(&reference, &dir.join("world"));
    let server = serve(
        Script::always(answering())
            .with_latency(Duration::from_millis(8))
            .with_recording(false),
    );
    let config = ModelsToml::new(server.base_url()).write(&dir, "c.toml");

    // The reference: one run that is never interrupted, in a database of its own.
    let started = Instant::now();
    caption(&reference, &config, "r", &[]).expect_code(0);
    let whole = started.elapsed();
    let expected = sorted_export(&reference, "r");
    assert_eq!(expected.len(), CLIPS * SOURCES.len());
    let requests = server.requests();

    // Killed at random moments, then run until it finishes.
    let mut rng = SplitMix64::new(0x5eed);
    let mut killed = 0;
    // Rows exported after each kill (none while the run is not yet opened).
    let mut partial = Vec::new();
    for _ in 0..3 {
        let delay = whole.mul_f64(0.1 + 0.5 * rng.next_f64());
        let mut child = spawn_caption(&dir, &config, "r", None);
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        let export = dir.wolf(&["export", "--run", "r"]);
        partial.push(if export.code() == 0 {
            export.stdout().lines().count()
        } else {
            0
        });
    }
    assert!(killed > 0, "no run was killed: the delays are too long");
    assert!(
        partial.iter().any(|n| (1..expected.len()).contains(n)),
        "no kill fell inside the work: rows after each kill {partial:?}"
    );
    let mut reruns = 0;
    loop {
        let run = caption(&dir, &config, "r", &[]);
        reruns += 1;
        if run.code() == 0 {
            break;
        }
        assert!(
            reruns < 3,
            "still not done after {reruns} reruns:\n{}\n{}",
            run.stdout(),
            run.stderr()
        );
    }

    let got = sorted_export(&dir, "r");
    let rows: Vec<Value> = got
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        captions_by_pair(&rows)
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        all_pairs(&clip_names(CLIPS)),
    );
    assert_eq!(
        got, expected,
        "the resumed run differs from the uninterrupted one"
    );
    assert!(failed_items(&dir, "r").is_empty());
    // Killed requests are made again, but a stored one is not: about the in-flight
    // requests of each kill (three models of eight at once) are repeated, with slack
    // for replies received but not yet stored.
    let repeated = server.requests() - 2 * requests;
    assert!(
        repeated <= killed * 2 * 3 * 8,
        "{repeated} requests repeated over {killed} kills"
    );
    // And a last run finds nothing to do.
    let last = caption(&dir, &config, "r", &[]).expect_code(0);
    assert_eq!(summary(&last).requests, 0);
}

#[test]
fn good_clips_complete_beside_bad_inputs() {
    let dir = Dir::new();
    dir.wolf(&[
        "synth",
        "--out",
        "world",
        "--count",
        "5",
        "--seed",
        "3",
        "--threads",
        "2",
    ])
    .expect_code(0);
    let world = dir.join("world");
    std::fs::remove_file(world.join("annotations.json")).unwrap();
    std::fs::remove_file(world.join("boxes.json")).unwrap();
    std::fs::write(world.join("empty.mp4"), b"").unwrap();
    std::fs::write(world.join("text.mp4"), "this is not a video\n".repeat(50)).unwrap();
    let truncate = |from: &str, to: &str| {
        let bytes = std::fs::read(world.join(from)).unwrap();
        std::fs::write(world.join(to), &bytes[..bytes.len() * 3 / 10]).unwrap();
    };
    truncate("clip_00000.mp4", "truncated.mp4");
    let good = clip_names(4);

    dir.wolf(&["dataset", "add", "world", "world"])
        .expect_code(1);
    let shown = dir
        .wolf(&["dataset", "show", "world", "--format", "json"])
        .expect_code(0)
        .json();
    let failed_at_intake: BTreeSet<String> = shown["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        failed_at_intake.contains("empty.mp4") && failed_at_intake.contains("text.mp4"),
        "{shown:#}"
    );
    assert!(failed_at_intake.is_disjoint(&good), "{shown:#}");
    // A clip that was whole at intake and is truncated on disk before the run: it can
    // only fail when its frames are sampled.
    truncate("clip_00004.mp4", "clip_00004.mp4");
    let mut broken: BTreeSet<String> = ["clip_00004.mp4".to_owned()].into();
    if !failed_at_intake.contains("truncated.mp4") {
        broken.insert("truncated.mp4".into());
    }

    let server = serve(Script::always(answering()));
    let config = ModelsToml::new(server.base_url()).write(&dir, "c.toml");
    let run = caption(&dir, &config, "r", &[]).expect_code(1);
    let counts = summary(&run);
    assert_eq!(counts.videos, 4 + broken.len() as u64);
    assert_eq!(counts.done, 4);
    let captions = captions_by_pair(&export(&dir, "r"));
    let failed = failed_items(&dir, "r");
    assert_eq!(counts.failed, failed.len() as u64);
    let captioned: BTreeSet<String> = captions.keys().map(|(v, _)| v.clone()).collect();
    assert_eq!(captioned, good, "failed: {failed:?}");
    assert_eq!(
        captions.keys().cloned().collect::<BTreeSet<_>>(),
        all_pairs(&good)
    );

    // Every stage of a broken clip fails, with a media error or as the dependent of
    // one; a good clip fails none.
    let media = ["truncated", "invalid_data", "undecodable", "no_frames"];
    let mut stages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for item in &failed {
        let video = item["video"].as_str().unwrap();
        assert!(broken.contains(video), "a good clip failed: {item}");
        let kind = item["error_kind"].as_str().unwrap();
        let stage = item["stage"].as_str().unwrap();
        if ["cascade:img", "middle:img", "video:vid"].contains(&stage) {
            assert!(media.contains(&kind), "not a media error: {item}");
        } else {
            assert_eq!(kind, "dependency", "{item}");
        }
        stages
            .entry(video.to_owned())
            .or_default()
            .insert(stage.to_owned());
    }
    let every_stage: BTreeSet<String> = [
        "cascade:img",
        "middle:img",
        "summary:img",
        "motion",
        "video:vid",
        "fusion",
    ]
    .map(str::to_owned)
    .into();
    for video in &broken {
        assert_eq!(stages.get(video), Some(&every_stage), "{video}: {failed:?}");
    }
}

/// A script that answers 65 % of requests, fails 30 % with HTTP 500 and leaves 5 %
/// hanging.
fn flaky(seed: u64) -> Script {
    Script::random(
        seed,
        vec![
            (0.65, answering()),
            (0.30, Behaviour::ServerError),
            (0.05, Behaviour::Hang),
        ],
    )
}

#[test]
fn a_flaky_server_is_survived_through_retries() {
    let dir = Dir::new();
    world(&dir, 10);
    let all = all_pairs(&clip_names(10));

    // Enough retries: a request fails for good with probability 0.35^11, about 1e-5.
    let server = serve(flaky(1));
    let patient = ModelsToml {
        max_retries: 10,
        timeout_s: 0.5,
        ..ModelsToml::new(server.base_url())
    }
    .write(&dir, "patient.toml");
    caption(&dir, &patient, "patient", &[]).expect_code(0);
    assert_eq!(
        captions_by_pair(&export(&dir, "patient"))
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        all
    );
    assert!(failed_items(&dir, "patient").is_empty());

    // No retries, on another server (another model identity, so nothing is cached):
    // failures are stored as failed stages, never as captions.
    let server = serve(flaky(2));
    let hasty = ModelsToml {
        max_retries: 0,
        timeout_s: 0.5,
        ..ModelsToml::new(server.base_url())
    };
    let config = hasty.write(&dir, "hasty.toml");
    let run = caption(&dir, &config, "hasty", &[]).expect_code(1);
    let failed = failed_items(&dir, "hasty");
    assert!(!failed.is_empty());
    assert_eq!(
        summary(&run).failed,
        failed.len() as u64,
        "{}",
        run.stdout()
    );
    let captions = captions_by_pair(&export(&dir, "hasty"));
    let mut failed_pairs = BTreeSet::new();
    for item in &failed {
        let kind = item["error_kind"].as_str().unwrap();
        assert!(
            ["server_error", "timeout", "dependency"].contains(&kind),
            "{item}"
        );
        if let Some(source) = source_of_stage(item["stage"].as_str().unwrap()) {
            let pair = (item["video"].as_str().unwrap().to_owned(), source);
            assert!(
                !captions.contains_key(&pair),
                "{pair:?} failed but has a caption"
            );
            failed_pairs.insert(pair);
        }
    }
    assert!(
        failed.iter().any(|i| i["error_kind"] == "dependency"),
        "{failed:?}"
    );
    // Every (video, source) has a caption or a failed stage, and failing videos keep
    // their other sources.
    let captioned: BTreeSet<(String, String)> = captions.keys().cloned().collect();
    assert_eq!(
        captioned
            .union(&failed_pairs)
            .cloned()
            .collect::<BTreeSet<_>>(),
        all
    );
    assert!(
        captioned
            .iter()
            .any(|(v, _)| failed_pairs.iter().any(|(f, _)| f == v)),
        "no failing video kept a caption"
    );

    // Retrying the failed stages with retries finishes the run and keeps what was done.
    let config = ModelsToml {
        max_retries: 10,
        ..hasty
    }
    .write(&dir, "hasty.toml");
    let retried = caption(&dir, &config, "hasty", &["--retry-failed"]).expect_code(0);
    let failing: BTreeSet<&str> = failed.iter().filter_map(|i| i["video"].as_str()).collect();
    assert_eq!(summary(&retried).skipped, 10 - failing.len() as u64);
    let finished = captions_by_pair(&export(&dir, "hasty"));
    assert_eq!(finished.keys().cloned().collect::<BTreeSet<_>>(), all);
    for (pair, text) in &captions {
        assert_eq!(&finished[pair], text, "{pair:?} changed on retry");
    }
    assert!(failed_items(&dir, "hasty").is_empty());
}

#[test]
fn export_formats() {
    let dir = Dir::new();
    let (_server, config) = answered_world(&dir, 2, "c.toml");
    caption(&dir, &config, "r", &[]).expect_code(0);
    let rows = export(&dir, "r");
    let by_pair = captions_by_pair(&rows);
    let absolute = json_lines(
        &dir.wolf(&["export", "--run", "r", "--absolute-paths"])
            .expect_code(0)
            .stdout(),
    );
    for (row, full) in rows.iter().zip(&absolute) {
        // Relative to the dataset's folder, whose keys are those paths; absolute only
        // when asked.
        assert_eq!(row["path"], row["video"], "{row}");
        let full = Path::new(full["path"].as_str().unwrap());
        assert!(full.is_absolute() && full.is_file(), "{}", full.display());
        assert!(full.ends_with(row["video"].as_str().unwrap()));
        assert!(
            row["model"].is_string() || row["source"] == "motion",
            "{row}"
        );
        assert!(row["prompt_version"].is_string(), "{row}");
    }
    let of_source = |source: &str| -> serde_json::Map<String, Value> {
        by_pair
            .iter()
            .filter(|((_, s), _)| s == source)
            .map(|((v, _), c)| (v.clone(), Value::String(c.clone())))
            .collect()
    };

    let flat = dir
        .wolf(&["export", "--run", "r", "--format", "wolf-json"])
        .expect_code(0)
        .json();
    assert_eq!(flat, Value::Object(of_source("wolf")));
    assert_eq!(flat.as_object().unwrap().len(), 2);

    let nested = dir
        .wolf(&["export", "--run", "r", "--format", "wolf-json", "--nested"])
        .expect_code(0)
        .json();
    let expected: serde_json::Map<String, Value> = of_source("wolf")
        .into_iter()
        .map(|(v, c)| (v, serde_json::json!({ "output": c })))
        .collect();
    assert_eq!(nested, Value::Object(expected));

    let vid = dir
        .wolf(&[
            "export",
            "--run",
            "r",
            "--format",
            "wolf-json",
            "--source",
            "vid",
        ])
        .expect_code(0)
        .json();
    assert_eq!(vid, Value::Object(of_source("vid")));

    let only_motion = json_lines(
        &dir.wolf(&["export", "--run", "r", "--source", "motion"])
            .expect_code(0)
            .stdout(),
    );
    assert_eq!(only_motion.len(), 2);
    assert!(only_motion.iter().all(|r| r["source"] == "motion"));

    // `--out` writes what stdout would have had.
    let out = dir.join("wolf.json");
    dir.wolf(&[
        "export",
        "--run",
        "r",
        "--format",
        "wolf-json",
        "--out",
        out.to_str().unwrap(),
    ])
    .expect_code(0);
    let written: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(written, flat);

    // A Hugging Face folder: `datasets.load_dataset` loads the same rows, offline, and
    // the card names the models, the prompts and the configuration.
    dir.wolf(&["export", "--run", "r", "--format", "hf", "--out", "hf"])
        .expect_code(0);
    crate::intake::testenv_python(
        &dir,
        r#"
import json, os
os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=os.path.abspath("hf-home"))
import datasets
train = datasets.load_dataset("hf")["train"]
rows = [{k: v for k, v in r.items() if v is not None} for r in train]
json.dump(rows, open("hf-rows.json", "w"))
"#,
    );
    let loaded: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.join("hf-rows.json")).unwrap()).unwrap();
    // Both without their nulls (Parquet has a value for every column).
    let without_nulls = |row: &Value| -> Value {
        let object = row.as_object().unwrap();
        Value::Object(
            object
                .clone()
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .collect(),
        )
    };
    let expected: Vec<Value> = rows.iter().map(without_nulls).collect();
    assert_eq!(loaded, expected);
    let card = std::fs::read_to_string(dir.join("hf/README.md")).unwrap();
    for part in [
        "## Models",
        "frame-v1",
        "describe the visual",
        "## Configuration",
    ] {
        assert!(card.contains(part), "{part}: {card}");
    }
    let again = dir
        .wolf(&["export", "--run", "r", "--format", "hf", "--out", "hf"])
        .expect_code(2);
    assert!(
        again.stderr().contains("exists already"),
        "{}",
        again.stderr()
    );

    let unknown = dir.wolf(&["export", "--run", "nope"]).expect_code(2);
    assert!(unknown.stderr().contains("nope"), "{}", unknown.stderr());
    dir.wolf(&[
        "export",
        "--run",
        "r",
        "--format",
        "wolf-json",
        "--source",
        "nope",
    ])
    .expect_code(2);
}

/// The fusion guard end to end. The scripted LLM answers with a box (machine syntax), the
/// same for the greedy request and the seeded retry: with `guard = "consensus"` every
/// summary and fusion becomes the consensus pick of its inputs, after two requests, and
/// no stored caption holds a box; with `guard = "retry"` the stages fail with kind
/// `guard` and nothing is stored for them.
#[test]
fn the_guard_retries_then_picks_the_consensus_or_fails() {
    const CLIPS: usize = 2;
    let dir = Dir::new();
    world(&dir, CLIPS);
    let server = serve(Script::always(answering()));
    let consensus = ModelsToml {
        guard: "consensus",
        ..ModelsToml::new(server.base_url())
    }
    .write(&dir, "c.toml");
    let run = caption(&dir, &consensus, "c", &[]).expect_code(0);
    // Per video: 5 image requests, 1 video request, 2 summary and 2 fusion attempts.
    let requests = summary(&run).requests;
    assert_eq!(
        requests,
        (CLIPS * (IMAGE_REQUESTS_PER_VIDEO + 1 + 4)) as u64
    );
    let stdout = run.stdout();
    assert!(
        stdout.contains("fused captions by guard path: consensus:"),
        "{stdout}"
    );
    let rows = export(&dir, "c");
    for row in &rows {
        let source = row["source"].as_str().unwrap();
        let caption = row["caption"].as_str().unwrap();
        if source == "wolf" || source == "img:summary" {
            let path = row["guard"].as_str().unwrap_or_default();
            assert!(path.starts_with("consensus:"), "{row}");
            assert!(!caption.contains('['), "a box was stored: {row}");
        } else {
            assert!(row.get("guard").is_none(), "{row}");
        }
    }

    // The leaderboard's entry page of the fused source counts the paths.
    let site = dir.join("site");
    dir.wolf(&[
        "leaderboard",
        "build",
        "--out",
        site.to_str().unwrap(),
        "--no-thumbnails",
    ])
    .expect_code(0);
    let page = std::fs::read_dir(&site)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-c-wolf.html"))
        .expect("the fused source's entry page");
    let html = std::fs::read_to_string(page).unwrap();
    assert!(
        html.contains("<dt>Fusion guard</dt><dd>consensus:"),
        "no guard paths on the entry page"
    );

    let retry = ModelsToml {
        guard: "retry",
        ..ModelsToml::new(server.base_url())
    }
    .write(&dir, "r.toml");
    caption(&dir, &retry, "r", &[]).expect_code(1);
    let failed = failed_items(&dir, "r");
    let guard_failures: Vec<&Value> = failed
        .iter()
        .filter(|i| i["error_kind"] == "guard")
        .collect();
    // The summaries fail the check; the fusion then lacks its input.
    assert_eq!(guard_failures.len(), CLIPS, "{failed:?}");
    let sources: BTreeSet<String> = export(&dir, "r")
        .iter()
        .map(|r| r["source"].as_str().unwrap().to_owned())
        .collect();
    assert!(!sources.contains("wolf") && !sources.contains("img:summary"));
}

/// Generation controls reach the wire: an `openai` entry's `generation` and
/// `extra_body`, then a stage's `[wolf.generation.STAGE]` over them, key by key.
#[test]
fn generation_settings_of_the_entry_and_the_stage_are_sent() {
    let dir = Dir::new();
    world(&dir, 1);
    let server = serve(Script::always(answering()));
    let base = ModelsToml::new(server.base_url()).write(&dir, "base.toml");
    let mut text = std::fs::read_to_string(&base).unwrap();
    text = text.replace(
        "[wolf]\n",
        "[models.llm.generation]\nfrequency_penalty = 0.5\n\n\
         [models.llm.extra_body]\ntop_k = 5\n\n[wolf]\n",
    );
    text.push_str(
        "\n[wolf.generation.fusion]\nrepeat_penalty = 1.2\nmax_tokens = 33\nstop = [\"\\n\\n\"]\n",
    );
    let config = dir.join("generation.toml");
    std::fs::write(&config, text).unwrap();
    caption(&dir, config.to_str().unwrap(), "g", &[]).expect_code(0);
    let bodies: Vec<Value> = server
        .received()
        .into_iter()
        .map(|r| r.body)
        .filter(|b| b["model"] == "llm")
        .collect();
    assert_eq!(bodies.len(), 2, "a summary and a fusion");
    let fusion = bodies
        .iter()
        .find(|b| b["max_tokens"] == 33)
        .expect("the fusion's own max_tokens");
    assert_eq!(fusion["repetition_penalty"], 1.2);
    assert_eq!(fusion["stop"], serde_json::json!(["\n\n"]));
    for body in &bodies {
        assert_eq!(body["frequency_penalty"], 0.5, "{body}");
        assert_eq!(body["top_k"], 5, "{body}");
    }
    let summary = bodies.iter().find(|b| b["max_tokens"] != 33).unwrap();
    assert!(summary.get("repetition_penalty").is_none(), "{summary}");

    // A stage that is not an LLM stage is named.
    std::fs::write(
        dir.join("bad.toml"),
        std::fs::read_to_string(&base).unwrap()
            + "\n[wolf.generation.cascade]\ntemperature = 0.5\n",
    )
    .unwrap();
    let out = dir
        .wolf(&["config", "check", dir.join("bad.toml").to_str().unwrap()])
        .expect_code(2);
    assert!(out.stderr().contains("`cascade`"), "{}", out.stderr());
}
