//! Progress bars: the libraries count, this draws (STYLE.md "Logs and progress").
//!
//! A command's bars are one `MultiProgress` on stderr, drawn by one thread from the
//! libraries' counters: a counter shows once it has counted something (never `0/0`), as
//! a bar when its total is known and as a spinner with its count when not; a status
//! line (`loading models`) shows while the library is in a phase without counts. Log
//! lines are written above the bars ([`LogWriter`] suspends them while it writes), and
//! every line of them is cleared when they end, so nothing stale stays on screen.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use wolf_pipeline::progress::Progress;

/// The bars on screen, if any: where log lines must not overwrite them.
static ACTIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// A status line's text now, or None when it has none.
type StatusFn = Box<dyn Fn() -> Option<&'static str> + Send>;

/// What a command draws: counters by label and a status line.
#[derive(Default)]
pub(crate) struct Board {
    counters: Vec<(&'static str, Arc<Progress>)>,
    status: Option<StatusFn>,
}

impl Board {
    pub(crate) fn counter(mut self, label: &'static str, progress: Arc<Progress>) -> Self {
        self.counters.push((label, progress));
        self
    }

    /// A spinner line above the counters, shown while `status` says something.
    pub(crate) fn status(
        mut self,
        status: impl Fn() -> Option<&'static str> + Send + 'static,
    ) -> Self {
        self.status = Some(Box::new(status));
        self
    }

    /// Draws the board on its own thread until the returned value is dropped, or nothing
    /// when `show` is false.
    pub(crate) fn draw(self, show: bool) -> Bars {
        let stop = Arc::new(AtomicBool::new(false));
        if !show {
            return Bars { stop, thread: None };
        }
        let flag = stop.clone();
        let thread = std::thread::spawn(move || self.run(&flag));
        Bars {
            stop,
            thread: Some(thread),
        }
    }

    fn run(self, stop: &AtomicBool) {
        let multi = MultiProgress::new();
        *active() = Some(multi.clone());
        let mut status: Option<ProgressBar> = None;
        // Each counter's bar once it has counted something, and whether its total is
        // known (a bar) or not (a spinner).
        let mut bars: Vec<Option<(ProgressBar, bool)>> = vec![None; self.counters.len()];
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            match (self.status.as_ref().and_then(|f| f()), &status) {
                (Some(text), Some(bar)) => {
                    bar.set_message(text);
                    bar.tick();
                }
                (Some(text), None) => {
                    let bar = multi.insert(0, ProgressBar::new_spinner());
                    bar.set_style(style("{spinner} {msg}"));
                    bar.set_message(text);
                    status = Some(bar);
                }
                (None, Some(bar)) => {
                    bar.finish_and_clear();
                    multi.remove(bar);
                    status = None;
                }
                (None, None) => {}
            }
            for ((label, progress), slot) in self.counters.iter().zip(&mut bars) {
                let (total, done) = (progress.total(), progress.done());
                if slot.is_none() {
                    if total == 0 && done == 0 {
                        continue;
                    }
                    let bar = multi.add(ProgressBar::no_length().with_prefix(*label));
                    bar.set_style(style("{prefix:>8} {spinner} {pos} {msg} {per_sec}"));
                    *slot = Some((bar, false));
                }
                let (bar, known) = slot.as_mut().expect("set above");
                if total > 0 {
                    if !*known {
                        bar.set_style(
                            style("{prefix:>8} [{bar:30}] {pos}/{len} {msg} {per_sec} eta {eta}")
                                .progress_chars("=> "),
                        );
                        *known = true;
                    }
                    bar.set_length(total);
                } else {
                    bar.tick();
                }
                bar.set_position(done);
                let failed = progress.failed();
                if failed > 0 {
                    bar.set_message(format!("({failed} failed)"));
                }
            }
            if stopping {
                for bar in status
                    .iter()
                    .chain(bars.iter().flatten().map(|(bar, _)| bar))
                {
                    bar.finish_and_clear();
                }
                let _ = multi.clear();
                *active() = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("the template is valid; this is a bug")
}

fn active() -> std::sync::MutexGuard<'static, Option<MultiProgress>> {
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A board drawn until dropped: then its lines are cleared.
pub(crate) struct Bars {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Draws one counter under `label`, or nothing when `show` is false.
pub(crate) fn draw(progress: Arc<Progress>, label: &'static str, show: bool) -> Bars {
    Board::default().counter(label, progress).draw(show)
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The log's stderr: while bars are drawn, a line is written with the bars taken off the
/// screen and drawn again below it, so that neither overwrites the other.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        suspend(|| std::io::stderr().write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Runs `write` with the bars (if any; cloned out, so that the lock is not held while
/// they redraw) taken off the screen, then draws them again below
/// what it wrote: how a command's own output lines reach a terminal while bars show.
pub(crate) fn suspend<R>(write: impl FnOnce() -> R) -> R {
    let bars = active().clone();
    match bars {
        Some(multi) => multi.suspend(write),
        None => write(),
    }
}

/// Writes a line to stderr above the bars (a message that is not a log event).
pub(crate) fn eprintln(text: std::fmt::Arguments<'_>) {
    let _ = LogWriter.write_all(format!("{text}\n").as_bytes());
}
