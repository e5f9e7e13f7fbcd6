//! What the process is given: its cores, and the signals that stop it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The cores this process may use, for bounding blocking work and default thread counts.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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
