//! Progress bars: the libraries count, this draws (STYLE.md "Logs and progress").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use wolf_pipeline::progress::Progress;

/// A bar drawn from a [`Progress`] on its own thread until dropped.
pub(crate) struct Bar {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Draws `progress` under `label`, or nothing when `show` is false.
pub(crate) fn draw(progress: Arc<Progress>, label: &'static str, show: bool) -> Bar {
    let stop = Arc::new(AtomicBool::new(false));
    if !show {
        return Bar { stop, thread: None };
    }
    let bar = ProgressBar::new(0).with_prefix(label);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {pos}/{len} {msg} {per_sec} eta {eta}",
        )
        .expect("the template is valid; this is a bug")
        .progress_chars("=> "),
    );
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        loop {
            let done = flag.load(Ordering::Relaxed);
            bar.set_length(progress.total());
            bar.set_position(progress.done());
            let failed = progress.failed();
            if failed > 0 {
                bar.set_message(format!("({failed} failed)"));
            }
            if done {
                bar.finish_and_clear();
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    Bar {
        stop,
        thread: Some(thread),
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
