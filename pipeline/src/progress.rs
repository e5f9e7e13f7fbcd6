//! Progress counters: plain data that a library bumps and the binary draws.
//!
//! Libraries never draw; they count (meilisearch's `Progress`). The binary reads the
//! counters from another thread and renders bars, or nothing when stderr is not a
//! terminal.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of one task: how many items there are, how many are done and how many failed.
#[derive(Debug, Default)]
pub struct Progress {
    total: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
}

impl Progress {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    /// Counts one finished item; `ok = false` counts it as failed too.
    pub fn finish_one(&self, ok: bool) {
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}
