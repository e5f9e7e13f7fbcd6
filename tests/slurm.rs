//! Slurm for real: a single-node cluster from Debian's packages (munged, slurmctld and
//! slurmd, started by `tools/slurm_cluster.sh` in the test's folder, on loopback) runs
//! `examples/scaling/slurm-array.sh` as a job array of 4 workers on a queued PostgreSQL
//! run. One array task is cancelled with `scancel` in the middle; the run still
//! completes, each video committed once, with the captions of one uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::worker::{count, drained_once_as_uninterrupted, queued, wait_for};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A cluster started in `dir`; dropping it stops its daemons (and their jobs).
struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn start(dir: PathBuf) -> Self {
        let started = Command::new(repo().join("tools/slurm_cluster.sh"))
            .arg("start")
            .arg(&dir)
            // Four 1-CPU workers at once on a 2-core machine.
            .env("SLURM_CLUSTER_CPUS", "4")
            .output()
            .expect("tools/slurm_cluster.sh runs");
        assert!(
            started.status.success(),
            "the Slurm cluster did not start (`make test` installs slurm-wlm and munge): {}",
            said(&started)
        );
        Self { dir }
    }

    /// A Slurm client command (`sbatch`, `squeue`, `scancel`) on this cluster.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("SLURM_CONF", self.dir.join("slurm.conf"));
        command
    }

    fn run(&self, program: &str, args: &[&str]) -> String {
        let output = self.command(program).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}",
            said(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("tools/slurm_cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_slurm_job_array_drains_a_run_with_one_task_cancelled() {
    const CLIPS: usize = 48;
    let Some(q) = queued(CLIPS, 400, |_| String::new()) else {
        return;
    };
    let dir = &q.dir;
    let cluster = Cluster::start(dir.join("slurm"));
    let submitted = cluster
        .command("sbatch")
        .current_dir(dir.path())
        // What the script reads: the database, the binary and this node's models.
        .env("WOLF_DB", dir.db())
        .env("WOLF", env!("CARGO_BIN_EXE_wolf"))
        .env("WOLF_MODELS", dir.join("c.toml"))
        // The script's GPU request, dropped by Slurm's own variable: no GPU here.
        .env("SBATCH_GRES", "none")
        .args(["--parsable", "--array=0-3", "--cpus-per-task=1", "--mem=1G"])
        .arg(repo().join("examples/scaling/slurm-array.sh"))
        // Passed on to `wolf worker`.
        .args(["--run", "r", "--lease-secs", "3", "--poll-secs", "0.1"])
        .args(["--backoff-secs", "0.1"])
        .output()
        .unwrap();
    assert!(submitted.status.success(), "sbatch: {}", said(&submitted));
    let stdout = String::from_utf8_lossy(&submitted.stdout);
    let job = stdout.trim().split(';').next().unwrap().to_owned();

    // Cancel task 2 while it holds leases, once some videos are done.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let owner = format!("{}:2", host.trim());
    let before = wait_for(dir, "array task 2 to hold a lease", |s| {
        count(s, "done") >= 2
            && s["owners"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["owner"] == owner.as_str())
    });
    cluster.run("scancel", &[&format!("{job}_2")]);
    assert!(
        count(&before, "done") < CLIPS as i64,
        "task 2 was cancelled too late: {before}"
    );

    // The other tasks drain the run and exit.
    let started = Instant::now();
    while !cluster.run("squeue", &["-h", "-j", &job]).trim().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the job array did not end: {}",
            cluster.run("squeue", &["-j", &job])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drained_once_as_uninterrupted(dir, CLIPS);

    // Task 2 stopped on Slurm's SIGTERM; the others ended with their summaries.
    let log = |task: usize| {
        std::fs::read_to_string(dir.join(&format!("wolf-worker-{job}_{task}.log")))
            .unwrap_or_default()
    };
    assert!(log(2).contains("Stopping"), "task 2's log: {}", log(2));
    let finished = (0..4)
        .filter(|&t| t != 2 && log(t).contains("videos done"))
        .count();
    assert_eq!(finished, 3, "{}\n{}\n{}", log(0), log(1), log(3));

    drop(cluster);
    drop(q.server);
}
