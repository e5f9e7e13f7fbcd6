//! The test harness's helpers: a temporary folder per test, a runner for the real
//! `wolf` binary with its own database, and test videos made by the real `ffmpeg`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A test's folder and database.
pub struct Dir {
    pub tmp: tempfile::TempDir,
    /// `--db`: the folder's `wolf.db`, or a PostgreSQL URL.
    db: String,
}

impl Dir {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let db = tmp.path().join("wolf.db").display().to_string();
        Self { tmp, db }
    }

    /// A folder whose commands use the database at `db` (a PostgreSQL URL).
    pub fn with_db(db: &str) -> Self {
        Self {
            db: db.to_owned(),
            ..Self::new()
        }
    }

    pub fn db(&self) -> &str {
        &self.db
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A `wolf` command with this folder's database and no progress bars, to run or
    /// to spawn.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_with_db(&self.db, args)
    }

    /// A `wolf` command in this folder on another database (the same one reached
    /// another way, say).
    pub fn command_with_db(&self, db: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wolf"));
        command
            .arg("--no-progress")
            .arg("--db")
            .arg(db)
            .args(args)
            .current_dir(self.path())
            .env_remove("WOLF_DB");
        command
    }

    /// Runs `wolf` with this folder's database and no progress bars.
    pub fn wolf(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("wolf runs");
        Run { output }
    }

    /// Runs `wolf` like [`Dir::wolf`], for a command that must not hang: past `limit`
    /// it is killed and the test fails.
    pub fn wolf_within(&self, args: &[&str], limit: Duration) -> Run {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wolf runs");
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait_with_output()));
        match rx.recv_timeout(limit) {
            Ok(output) => Run {
                output: output.expect("wolf's output is read"),
            },
            Err(_) => {
                // SAFETY: a signal to the child this test started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("`wolf {}` still ran after {limit:?}", args.join(" "));
            }
        }
    }

    /// Makes a FIFO (a named pipe) at `name`.
    pub fn fifo(&self, name: &str) -> PathBuf {
        let path = self.join(name);
        let made = Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo runs");
        assert!(made.success(), "mkfifo {}", path.display());
        path
    }

    /// Renders the synthetic world (`count` clips from `seed`) into `world/` and
    /// registers it as dataset `ds`; returns its reference captions by video key.
    pub fn synthetic_dataset(&self, count: usize, seed: u64) -> BTreeMap<String, String> {
        let (count, seed) = (count.to_string(), seed.to_string());
        self.wolf(&[
            "synth", "--out", "world", "--count", &count, "--seed", &seed,
        ])
        .expect_code(0);
        self.wolf(&[
            "dataset",
            "add",
            "ds",
            "world",
            "--annotations",
            "world/annotations.json",
        ])
        .expect_code(0);
        let annotations: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.join("world/annotations.json")).unwrap())
                .unwrap();
        annotations
            .as_object()
            .expect("annotations are an object")
            .iter()
            .map(|(k, v)| (k.clone(), v["output"].as_str().unwrap().to_owned()))
            .collect()
    }

    /// The videos of dataset `name` by key, from `wolf dataset show --videos`.
    pub fn videos(&self, name: &str) -> BTreeMap<String, serde_json::Value> {
        let out = self
            .wolf(&["dataset", "show", name, "--format", "json", "--videos"])
            .expect_code(0)
            .json();
        out["videos"]
            .as_array()
            .expect("a list of videos")
            .iter()
            .map(|v| (v["key"].as_str().unwrap().to_owned(), v.clone()))
            .collect()
    }

    /// Runs `ffmpeg` (quiet, overwriting) and panics when it fails.
    pub fn ffmpeg(&self, args: &[&str]) {
        let out = Command::new("ffmpeg")
            .args(["-y", "-v", "error"])
            .args(args)
            .current_dir(self.path())
            .output()
            .expect("ffmpeg runs");
        assert!(
            out.status.success(),
            "ffmpeg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A small H.264 clip of FFmpeg's test pattern (`testsrc`, which keeps odd sizes).
    pub fn clip(&self, name: &str, size: &str, rate: u32, seconds: f64, extra: &[&str]) -> PathBuf {
        let source = format!("testsrc=size={size}:rate={rate}");
        let duration = seconds.to_string();
        let mut args = vec![
            "-f",
            "lavfi",
            "-i",
            &source,
            "-t",
            &duration,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ];
        if !extra.contains(&"-pix_fmt") {
            args.extend(["-pix_fmt", "yuv420p"]);
        }
        args.extend_from_slice(extra);
        args.push(name);
        self.ffmpeg(&args);
        self.join(name)
    }

    /// Presentation times (seconds) of every frame of a video, from `ffprobe`.
    pub fn frame_times(&self, video: &Path) -> Vec<f64> {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "frame=pts_time",
                "-of",
                "csv=p=0",
            ])
            .arg(video)
            .output()
            .expect("ffprobe runs");
        assert!(out.status.success());
        let mut times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
            .collect();
        times.sort_by(f64::total_cmp);
        times
    }
}

/// The result of one `wolf` run.
pub struct Run {
    pub output: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts the exit status, showing both streams when it differs.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout()))
    }
}

/// The model names the tests' configs give their `openai` entries.
pub const SCRIPTED_MODELS: [&str; 5] = ["img", "vid", "vid2", "llm", "judge"];

/// A scripted server whose `/v1/models` lists [`SCRIPTED_MODELS`], so that the
/// preflight of `wolf caption`, `wolf worker` and `wolf score` finds the models.
pub fn serve(
    script: wolf_pipeline::models::scripted::Script,
) -> wolf_pipeline::models::scripted::ScriptedServer {
    wolf_pipeline::models::scripted::ScriptedServer::start(script.with_models(SCRIPTED_MODELS))
        .expect("the scripted server starts")
}
