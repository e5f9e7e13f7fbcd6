//! What the process is given: its cores, its allocator's arenas, and the signals that
//! stop it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The cores this process may use, for bounding blocking work and default thread counts.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Bounds glibc's malloc arenas to one a core (glibc's default is eight a core). A thread
/// that allocates while others do gets an arena of its own, and what is freed in an arena
/// stays with the process: with the default, the peak memory of `wolf caption` grew 1.45x
/// from a 5-minute video to a 60-minute one, whose segments are decoded on blocking
/// threads one after another; with two arenas on two cores, 1.16x (docs/DECISIONS.md).
/// Call it before threads start. Without glibc it does nothing.
pub fn bound_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let arenas = i32::try_from(cores()).unwrap_or(i32::MAX);
        // SAFETY: `mallopt` only sets a parameter of glibc's allocator; no thread of
        // this process has started yet when it is called as documented.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// Returns the memory freed in every arena to the system (glibc's `malloc_trim`), which
/// glibc otherwise keeps for reuse: a long video's segments free their frames one after
/// another. Without glibc it does nothing.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes glibc's allocator locks itself; it frees nothing in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Completes on Ctrl-C or SIGTERM (Ctrl-C alone where SIGTERM cannot be watched).
pub async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match term.as_mut() {
            Some(term) => drop(term.recv().await),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminated => {}
    }
}

/// A stop flag that Ctrl-C or SIGTERM sets (after calling `on_signal`), and the task
/// that waits for it.
pub fn stop_on_signal(
    on_signal: impl FnOnce() + Send + 'static,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let set = stop.clone();
    let watcher = tokio::spawn(async move {
        interrupted().await;
        on_signal();
        set.store(true, Ordering::Relaxed);
    });
    (stop, watcher)
}
