//! `wolf caption --enqueue-only`, `wolf worker` and `wolf run status` on a loopback
//! PostgreSQL server: several real worker processes on one run, one killed, one
//! frozen past its lease, a poison video, a database that goes away for a while.
//!
//! Each test takes a fresh database on the server at 127.0.0.1:5432
//! (`WOLF_TEST_POSTGRES` names another); where none answers, the tests say so loudly
//! and pass without running.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wolf_pipeline::models::scripted::{Script, ScriptedServer};

use crate::caption::{ModelsToml, SOURCES, add_world, answering, caption, sorted_export, world};
use crate::util::{Dir, serve};

/// A fresh PostgreSQL database's URL, or None (with a loud message) without a server.
fn fresh_postgres() -> Option<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(wolf_pipeline::store::testing::fresh_postgres()) {
        Ok(url) => Some(url),
        Err(e) => {
            eprintln!("\n*** SKIPPING this PostgreSQL test: {e} ***\n");
            None
        }
    }
}

/// `wolf worker` on run `r`, with short leases and backoffs.
fn spawn_worker(dir: &Dir, db: &str, name: &str, extra: &[&str]) -> Child {
    let mut args = vec![
        "worker",
        "--name",
        name,
        "--concurrency",
        "2",
        "--exit-when-idle",
        "--poll-secs",
        "0.1",
        "--backoff-secs",
        "0.1",
    ];
    args.extend_from_slice(extra);
    dir.command_with_db(db, &args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wolf worker starts")
}

/// Waits for a worker; returns (exit code, stdout, stderr).
fn finish(child: Child) -> (i32, String, String) {
    let output = child.wait_with_output().expect("the worker ends");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub(crate) fn status(dir: &Dir) -> Value {
    dir.wolf(&["run", "status", "r", "--format", "json"])
        .expect_code(0)
        .json()
}

/// Polls `wolf run status` until `done` holds (or panics after a minute).
pub(crate) fn wait_for(dir: &Dir, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let s = status(dir);
        if done(&s) {
            return s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}: {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn count(s: &Value, key: &str) -> i64 {
    s["count"][key].as_i64().unwrap()
}

/// The world, the scripted models and the queued run `r` in a fresh database.
pub(crate) struct Queued {
    pub(crate) dir: Dir,
    pub(crate) server: ScriptedServer,
}

/// `wolf_extra` gives lines for the config's `[wolf]` section, once the world is there.
pub(crate) fn queued(
    clips: usize,
    latency_ms: u64,
    wolf_extra: impl FnOnce(&Dir) -> String,
) -> Option<Queued> {
    let db = fresh_postgres()?;
    let dir = Dir::with_db(&db);
    world(&dir, clips);
    let wolf_extra = wolf_extra(&dir);
    let server = serve(
        Script::always(answering())
            .with_latency(Duration::from_millis(latency_ms))
            .with_recording(false),
    );
    let config = ModelsToml::new(server.base_url()).write(&dir, "c.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&wolf_extra);
    std::fs::write(&config, text).unwrap();
    let out = caption(&dir, &config, "r", &["--enqueue-only"])
        .expect_code(0)
        .stdout();
    assert!(out.contains(&format!("{clips} videos queued")), "{out}");
    Some(Queued { dir, server })
}

#[test]
fn four_workers_one_killed_mid_lease_lose_and_duplicate_nothing() {
    const CLIPS: usize = 24;
    let Some(q) = queued(CLIPS, 40, |_| String::new()) else {
        return;
    };
    let dir = &q.dir;
    let db = dir.db().to_owned();
    let lease = ["--lease-secs", "2"];
    let mut workers: Vec<Child> = (0..4)
        .map(|i| spawn_worker(dir, &db, &format!("w{i}"), &lease))
        .collect();
    // Kill w0 while it holds leases, once some videos are done.
    let before = wait_for(dir, "w0 to hold a lease", |s| {
        count(s, "done") >= 2
            && s["owners"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["owner"] == "w0")
    });
    workers[0].kill().unwrap();
    workers[0].wait().unwrap();
    assert!(
        count(&before, "done") < CLIPS as i64,
        "w0 was killed too late"
    );
    let mut outputs = Vec::new();
    for w in workers.drain(1..) {
        outputs.push(finish(w));
    }
    for (code, stdout, stderr) in &outputs {
        assert_eq!(*code, 0, "{stdout}\n{stderr}");
    }
    // Every video committed once: the killed worker's leases were reaped and redone.
    drained_once_as_uninterrupted(dir, CLIPS);
    drop(q.server);
}

/// Run `r` of `clips` is drained, each video committed once with no failed stage, and
/// its captions are those of one uninterrupted `wolf caption` in a database of its own.
pub(crate) fn drained_once_as_uninterrupted(dir: &Dir, clips: usize) {
    let s = status(dir);
    assert_eq!(count(&s, "done"), clips as i64, "{s}");
    assert_eq!(
        (
            count(&s, "pending"),
            count(&s, "running"),
            count(&s, "quarantined")
        ),
        (0, 0, 0),
        "{s}"
    );
    assert_eq!(
        s["commits"], clips as i64,
        "a video was committed twice: {s}"
    );
    assert_eq!(s["failed_stages"], 0, "{s}");
    let reference = Dir::new();
    add_world(&reference, &dir.join("world"));
    let config = dir.join("c.toml").display().to_string();
    caption(&reference, &config, "r", &[]).expect_code(0);
    let expected = sorted_export(&reference, "r");
    assert_eq!(expected.len(), clips * SOURCES.len());
    assert_eq!(sorted_export(dir, "r"), expected);
}

/// A queued run of `clips` on slow models (300 ms) and worker `name` holding two of its
/// videos in the middle of their stages.
fn in_the_middle(clips: usize, name: &str, extra: &[&str]) -> Option<(Queued, Child)> {
    let q = queued(clips, 300, |_| String::new())?;
    let worker = spawn_worker(&q.dir, q.dir.db(), name, extra);
    wait_for(&q.dir, "the worker to hold leases", |s| {
        count(s, "running") >= 2
    });
    Some((q, worker))
}

#[test]
fn a_worker_frozen_past_its_lease_cannot_commit_what_another_redid() {
    const CLIPS: usize = 6;
    let lease = ["--lease-secs", "1"];
    let Some((q, frozen)) = in_the_middle(CLIPS, "frozen", &lease) else {
        return;
    };
    let dir = &q.dir;
    let db = dir.db().to_owned();
    let pid = frozen.id() as i32;
    // SAFETY: signals to our own child process.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let other = spawn_worker(dir, &db, "other", &lease);
    let (code, stdout, stderr) = finish(other);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let s = status(dir);
    assert_eq!(count(&s, "done"), CLIPS as i64, "{s}");
    // The frozen worker wakes up with results for videos that are no longer its own.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let (code, stdout, stderr) = finish(frozen);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        !stdout.contains(" 0 leases lost"),
        "the frozen worker committed after losing its leases: {stdout}"
    );
    let s = status(dir);
    assert_eq!(
        s["commits"], CLIPS as i64,
        "a video was committed twice: {s}"
    );
    assert_eq!(count(&s, "done"), CLIPS as i64, "{s}");
    drop(q.server);
}

#[test]
fn a_poison_video_is_quarantined_while_the_others_complete() {
    const CLIPS: usize = 5;
    // Motion from the world's boxes, with one clip's boxes removed: that clip's motion
    // stage fails on every attempt.
    let poison = std::cell::RefCell::new(String::new());
    let Some(q) = queued(CLIPS, 5, |dir| {
        let text = std::fs::read_to_string(dir.join("world/boxes.json")).unwrap();
        let mut boxes: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
        let key = boxes.keys().next().unwrap().clone();
        boxes.remove(&key);
        *poison.borrow_mut() = key;
        let path = dir.join("boxes-without-one.json");
        std::fs::write(&path, Value::Object(boxes).to_string()).unwrap();
        format!(
            "motion = \"dataset\"\nboxes_file = \"{}\"\n",
            path.display()
        )
    }) else {
        return;
    };
    let poison = poison.into_inner();
    let dir = &q.dir;
    let db = dir.db().to_owned();
    let workers: Vec<Child> = (0..2)
        .map(|i| {
            spawn_worker(
                dir,
                &db,
                &format!("w{i}"),
                &["--lease-secs", "5", "--max-attempts", "3"],
            )
        })
        .collect();
    let outputs: Vec<_> = workers.into_iter().map(finish).collect();
    // A worker that quarantined the video says so with exit status 1.
    let codes: Vec<i32> = outputs.iter().map(|o| o.0).collect();
    assert!(
        codes.contains(&1) && codes.iter().all(|c| [0, 1].contains(c)),
        "{outputs:?}"
    );
    let s = status(dir);
    assert_eq!(count(&s, "done"), CLIPS as i64 - 1, "{s}");
    assert_eq!(count(&s, "quarantined"), 1, "{s}");
    let quarantined = &s["quarantined"][0];
    assert_eq!(quarantined["attempts"], 3, "{s}");
    assert_eq!(quarantined["error_kind"], "no_boxes", "{s}");
    let key = poison.trim_end_matches(".mp4");
    assert!(
        quarantined["video"].as_str().unwrap().contains(key),
        "{s} (poison {poison})"
    );
    // Its reason is stored with the stage; no caption of the failed stages exists.
    let table = dir.wolf(&["run", "status", "r"]).expect_code(0).stdout();
    assert!(
        table.contains("1 quarantined") && table.contains("no_boxes"),
        "{table}"
    );
    let failed = dir
        .wolf(&["export", "--run", "r", "--failed"])
        .expect_code(0)
        .stdout();
    assert!(failed.contains("no_boxes"), "{failed}");
    drop(q.server);
}

/// A TCP relay to the database that can drop every connection and refuse new ones for
/// a while: the database "goes away" without stopping the server.
struct Relay {
    port: u16,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (d, o) = (down.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut list = o.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                pump(client.try_clone().unwrap(), server.try_clone().unwrap());
                pump(server, client);
            }
        });
        Self { port, down, open }
    }

    /// Drops every connection and refuses new ones until [`Relay::up`].
    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[test]
fn workers_that_lose_the_database_for_a_while_resume_without_duplicating() {
    const CLIPS: usize = 16;
    let Some(q) = queued(CLIPS, 60, |_| String::new()) else {
        return;
    };
    let dir = &q.dir;
    // The workers reach the database through the relay; `run status` goes direct.
    let url = dir.db().to_owned();
    let (head, tail) = url.rsplit_once('/').unwrap();
    let (host, port) = head.rsplit_once(':').unwrap();
    let relay = Relay::start(port.parse().unwrap());
    let relayed = format!("{host}:{}/{tail}", relay.port);
    let lease = ["--lease-secs", "20"];
    let workers: Vec<Child> = (0..2)
        .map(|i| spawn_worker(dir, &relayed, &format!("w{i}"), &lease))
        .collect();
    wait_for(dir, "some videos done", |s| count(s, "done") >= 3);
    relay.cut();
    std::thread::sleep(Duration::from_secs(3));
    let during = status(dir);
    relay.up();
    assert!(
        count(&during, "done") < CLIPS as i64,
        "cut too late: {during}"
    );
    let outputs: Vec<_> = workers.into_iter().map(finish).collect();
    for (code, stdout, stderr) in &outputs {
        assert_eq!(*code, 0, "{stdout}\n{stderr}");
    }
    assert!(
        outputs.iter().any(|o| o.2.contains("retrying")),
        "no worker noticed the cut: {outputs:?}"
    );
    let s = status(dir);
    assert_eq!(count(&s, "done"), CLIPS as i64, "{s}");
    assert_eq!(s["commits"], CLIPS as i64, "{s}");
    assert_eq!(count(&s, "quarantined"), 0, "{s}");
    let rows = sorted_export(dir, "r");
    assert_eq!(rows.len(), CLIPS * SOURCES.len());
    drop(q.server);
}

#[test]
fn ctrl_c_releases_the_videos_in_flight_and_another_worker_finishes_them() {
    const CLIPS: usize = 6;
    let Some((q, first)) = in_the_middle(CLIPS, "first", &[]) else {
        return;
    };
    let dir = &q.dir;
    let db = dir.db().to_owned();
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(first.id() as i32, libc::SIGINT) };
    let (code, stdout, stderr) = finish(first);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains("Stopping"), "{stderr}");
    let s = status(dir);
    // Nothing is left leased to a worker that is gone.
    assert_eq!(count(&s, "running"), 0, "{s}");
    assert!(count(&s, "done") < CLIPS as i64, "stopped too late: {s}");
    assert!(!stdout.contains(" 0 released"), "{stdout}");
    let (code, stdout, stderr) = finish(spawn_worker(dir, &db, "second", &[]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let s = status(dir);
    assert_eq!(
        (count(&s, "done"), s["commits"].as_i64()),
        (CLIPS as i64, Some(CLIPS as i64)),
        "{s}"
    );
    drop(q.server);
}

/// The Kubernetes manifests of `examples/scaling` validate against the Kubernetes API's
/// schemas, strictly (an unknown field is an error), with `kubernetes-validate` from
/// `make test`'s `.wolf/testenv`; a manifest with a misspelt field fails the same check.
/// No cluster runs here: what a real one would do with them is not tested.
#[test]
fn the_kubernetes_manifests_validate_against_the_api_schemas() {
    let tool = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".wolf/testenv/bin/kubernetes-validate");
    assert!(
        tool.exists(),
        "{} is missing: `make test` installs it (tools/setup.sh --browser)",
        tool.display()
    );
    let validate = |path: &std::path::Path| {
        std::process::Command::new(&tool)
            .arg("--strict")
            .arg(path)
            .output()
            .unwrap()
    };
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scaling");
    for name in ["k8s-deployment.yaml", "k8s-indexed-job.yaml"] {
        let checked = validate(&examples.join(name));
        let said = String::from_utf8_lossy(&checked.stdout).into_owned()
            + &String::from_utf8_lossy(&checked.stderr);
        assert!(checked.status.success(), "{name}: {said}");
        assert!(said.contains("passed for resource"), "{name}: {said}");
    }
    let dir = Dir::new();
    let text = std::fs::read_to_string(examples.join("k8s-indexed-job.yaml")).unwrap();
    let broken = dir.join("broken.yaml");
    std::fs::write(&broken, text.replacen("completions:", "completion:", 1)).unwrap();
    let checked = validate(&broken);
    assert!(
        !checked.status.success()
            && String::from_utf8_lossy(&checked.stdout).contains("completion"),
        "a misspelt field passed: {}",
        String::from_utf8_lossy(&checked.stdout)
    );
}

/// The systemd unit template of `examples/scaling` passes `systemd-analyze verify`, its
/// `ExecStart` pointed at the built binary (the unit names the installed one). Where
/// `systemd-analyze` is missing the test says so loudly and passes without running.
#[test]
fn the_systemd_unit_template_verifies() {
    let Ok(found) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("SKIPPED: no `systemd-analyze` on this machine");
        return;
    };
    assert!(found.status.success());
    let dir = Dir::new();
    let unit = include_str!("../examples/scaling/wolf-worker@.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/wolf "), "{unit}");
    let unit = unit.replace("/usr/local/bin/wolf", env!("CARGO_BIN_EXE_wolf"));
    // An instance of the template: `%i` is `1`.
    let path = dir.join("wolf-worker@1.service");
    std::fs::write(&path, unit).unwrap();
    let verified = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        verified.status.success() && verified.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

/// Enqueueing wakes an idle worker at once (PostgreSQL's LISTEN/NOTIFY): a worker that
/// looks at an empty queue only every 30 s finishes a run enqueued after it went idle in
/// a few seconds.
#[test]
fn an_idle_worker_claims_an_enqueued_run_at_once() {
    let Some(db) = fresh_postgres() else {
        return;
    };
    let dir = Dir::with_db(&db);
    world(&dir, 2);
    let server = serve(Script::always(answering()).with_recording(false));
    let config = ModelsToml::new(server.base_url()).write(&dir, "c.toml");
    let worker = dir
        .command_with_db(&db, &["worker", "--name", "idle", "--poll-secs", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wolf worker starts");
    let mut worker = KillOnDrop(worker);
    // Long enough to start and find the queue empty: its next look is 30 s away.
    std::thread::sleep(Duration::from_secs(3));
    assert!(worker.0.try_wait().unwrap().is_none(), "the worker exited");
    let enqueued = Instant::now();
    caption(&dir, &config, "r", &["--enqueue-only"]).expect_code(0);
    wait_for(&dir, "the run, done", |s| count(s, "done") == 2);
    let took = enqueued.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "an idle worker waited {took:?} for an enqueued run"
    );
}

/// A child killed when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `wolf worker --metrics-addr`: scraped while videos are in flight, and once the run is
/// drained, where the counters agree with the run's status, the model server's own
/// count of requests and the worker's summary.
#[test]
fn the_metrics_endpoint_counts_what_the_worker_did() {
    const CLIPS: usize = 6;
    let Some(q) = queued(CLIPS, 150, |_| String::new()) else {
        return;
    };
    let dir = &q.dir;
    // No --exit-when-idle: the worker stays to be scraped once the run is drained.
    let args = [
        "worker",
        "--name",
        "watched",
        "--concurrency",
        "2",
        "--poll-secs",
        "0.1",
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    let mut worker = KillOnDrop(
        dir.command_with_db(dir.db(), &args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wolf worker starts"),
    );
    let stderr = worker.0.stderr.take().unwrap();
    let (found, address) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let line = line.unwrap_or_default();
            if let Some(rest) = line.strip_prefix("metrics: http://") {
                let _ = found.send(rest.trim_end_matches("/metrics").to_owned());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let addr = address
        .recv_timeout(Duration::from_secs(60))
        .expect("the worker prints where its metrics are");

    wait_for(dir, "videos in flight", |s| {
        count(s, "running") >= 1 && count(s, "done") >= 1
    });
    let mid = scrape(&addr);
    assert!(metric(&mid, "wolf_videos_in_flight") >= 1.0, "{mid}");
    assert!(
        metric(&mid, "wolf_items_total{state=\"claimed\"}")
            >= metric(&mid, "wolf_items_total{state=\"done\"}") + 1.0,
        "{mid}"
    );
    assert!(
        mid.contains("# TYPE wolf_stage_duration_seconds histogram"),
        "{mid}"
    );

    wait_for(dir, "the run, drained", |s| {
        count(s, "done") == CLIPS as i64
    });
    // The commit is visible before the video's task counts it: a moment later.
    let started = Instant::now();
    let end = loop {
        let end = scrape(&addr);
        if metric(&end, "wolf_items_total{state=\"done\"}") == CLIPS as f64
            || started.elapsed() > Duration::from_secs(10)
        {
            break end;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for (series, value) in [
        ("wolf_items_total{state=\"claimed\"}", CLIPS),
        ("wolf_items_total{state=\"done\"}", CLIPS),
        ("wolf_items_total{state=\"failed\"}", 0),
        ("wolf_items_total{state=\"lost\"}", 0),
        ("wolf_videos_in_flight", 0),
    ] {
        assert_eq!(metric(&end, series), value as f64, "{series} in\n{end}");
    }
    // Every request the server answered was counted once, under its model and stage.
    let requests = sum(&end, "wolf_model_requests_total{");
    assert_eq!(requests, q.server.requests() as f64, "{end}");
    let timed = end
        .lines()
        .filter(|l| {
            l.starts_with("wolf_stage_duration_seconds_count{") && !l.contains("model=\"\"")
        })
        .map(value_of)
        .sum::<f64>();
    assert_eq!(timed, requests, "{end}");
    assert_eq!(sum(&end, "wolf_model_errors_total{"), 0.0, "{end}");

    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(worker.0.id() as i32, libc::SIGTERM) };
    let stdout = {
        let mut out = String::new();
        worker
            .0
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    };
    let code = worker.0.wait().unwrap().code();
    let stderr = reader.join().unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let summary = format!(
        "{CLIPS} videos done (0 already done), 0 failed attempts, 0 quarantined, 0 released, 0 leases lost"
    );
    assert!(stdout.contains(&summary), "{stdout}");
    drop(q.server);
}

/// `GET /metrics` at `addr`: the body.
fn scrape(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("the metrics endpoint answers");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_owned()
}

fn value_of(line: &str) -> f64 {
    let (_, value) = line.rsplit_once(' ').expect("a sample line");
    value.parse().expect("a number")
}

/// The value of one series (its name and labels as written).
fn metric(text: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .map(value_of)
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// The sum of the series whose lines start with `prefix`.
fn sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(value_of)
        .sum()
}
