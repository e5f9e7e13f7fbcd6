//! What a worker has done, for an operator to watch: counters, a gauge and histograms
//! that [`crate::wolf::worker`] and the stages bump, rendered in Prometheus's text
//! format ([`Metrics::render`]) and served over HTTP by [`serve`] (`wolf worker
//! --metrics-addr`).
//!
//! The names follow Prometheus's conventions: `_total` counters, `_seconds` histograms,
//! one metric a quantity and labels for its kinds:
//!
//! - `wolf_items_total{state}`: queue items claimed, and how each ended (`done`,
//!   `failed` attempts, `quarantined`, `released` unfinished, `lost` leases);
//! - `wolf_videos_in_flight`: videos claimed and not yet ended;
//! - `wolf_stage_duration_seconds{stage,model}`: each model request's time, by the stage
//!   that asked and the model entry asked (decoding, with no model, as `frames`);
//! - `wolf_model_requests_total{model}` and `wolf_model_errors_total{model,kind}`, the
//!   kind being the error's (`timeout`, `server_error`, `context_overflow`, …).
//!
//! Threads: every method takes `&self` and is cheap; the server runs on the caller's
//! tokio runtime.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How a claimed queue item ended (or that it was claimed): `wolf_items_total`'s states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    Claimed,
    Done,
    /// An attempt that failed; the item is retried or quarantined.
    Failed,
    /// The last attempt failed (counted under `failed` too).
    Quarantined,
    /// Given back unfinished (a stop, the database away).
    Released,
    /// Its lease was lost before its commit.
    Lost,
}

impl ItemState {
    const ALL: [Self; 6] = [
        Self::Claimed,
        Self::Done,
        Self::Failed,
        Self::Quarantined,
        Self::Released,
        Self::Lost,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Claimed => "claimed",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Quarantined => "quarantined",
            Self::Released => "released",
            Self::Lost => "lost",
        }
    }
}

/// Upper bounds of the latency histograms' buckets, in seconds: a cached frame caption
/// to a long video's story.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Observations at or under each bound of [`BUCKETS`] (not cumulative here).
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|&bound| seconds <= bound) {
            self.buckets[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// The labelled series, behind one lock.
#[derive(Debug, Default)]
struct Labelled {
    /// By (stage, model).
    stages: BTreeMap<(String, String), Histogram>,
    /// By model.
    requests: BTreeMap<String, u64>,
    /// By (model, kind).
    errors: BTreeMap<(String, String), u64>,
}

/// One process's metrics (see the module's documentation for the names).
#[derive(Debug, Default)]
pub struct Metrics {
    items: [AtomicU64; ItemState::ALL.len()],
    in_flight: AtomicI64,
    labelled: Mutex<Labelled>,
}

/// A video in flight, counted in `wolf_videos_in_flight` until dropped.
pub struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn item(&self, state: ItemState) {
        let i = ItemState::ALL.iter().position(|&s| s == state).unwrap_or(0);
        self.items[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a video in flight for as long as the guard lives.
    pub fn in_flight(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// A stage's step that took `took`: a request to `model` (with its error's kind when
    /// it failed), or work with no model (`model` None: not a request).
    pub fn stage(&self, stage: &str, model: Option<&str>, took: Duration, error: Option<&str>) {
        let mut labelled = self.labelled.lock().unwrap_or_else(PoisonError::into_inner);
        labelled
            .stages
            .entry((stage.to_owned(), model.unwrap_or_default().to_owned()))
            .or_default()
            .observe(took.as_secs_f64());
        let Some(model) = model else {
            return;
        };
        *labelled.requests.entry(model.to_owned()).or_default() += 1;
        if let Some(kind) = error {
            *labelled
                .errors
                .entry((model.to_owned(), kind.to_owned()))
                .or_default() += 1;
        }
    }

    /// Everything in Prometheus's text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        header(
            &mut out,
            "wolf_items_total",
            "counter",
            "Queue items claimed by this worker, and how each ended.",
        );
        for (state, count) in ItemState::ALL.iter().zip(&self.items) {
            let count = count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "wolf_items_total{{state=\"{}\"}} {count}",
                state.label()
            );
        }
        header(
            &mut out,
            "wolf_videos_in_flight",
            "gauge",
            "Videos claimed and not yet ended.",
        );
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        let _ = writeln!(out, "wolf_videos_in_flight {in_flight}");

        let labelled = self.labelled.lock().unwrap_or_else(PoisonError::into_inner);
        header(
            &mut out,
            "wolf_stage_duration_seconds",
            "histogram",
            "Time of each model request by stage and model entry (decoding: no model).",
        );
        for ((stage, model), histogram) in &labelled.stages {
            let labels = format!("stage=\"{}\",model=\"{}\"", escape(stage), escape(model));
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(histogram.buckets) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "wolf_stage_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let (sum, count) = (histogram.sum, histogram.count);
            let _ = writeln!(
                out,
                "wolf_stage_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "wolf_stage_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "wolf_stage_duration_seconds_count{{{labels}}} {count}");
        }
        header(
            &mut out,
            "wolf_model_requests_total",
            "counter",
            "Model requests made (cache hits are not requests).",
        );
        for (model, count) in &labelled.requests {
            let _ = writeln!(
                out,
                "wolf_model_requests_total{{model=\"{}\"}} {count}",
                escape(model)
            );
        }
        header(
            &mut out,
            "wolf_model_errors_total",
            "counter",
            "Model requests that failed, by the error's kind.",
        );
        for ((model, kind), count) in &labelled.errors {
            let _ = writeln!(
                out,
                "wolf_model_errors_total{{model=\"{}\",kind=\"{}\"}} {count}",
                escape(model),
                escape(kind)
            );
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and line feeds escaped, as the text format asks.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics server: it serves until dropped.
pub struct Serving(tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Binds `addr` (port 0 picks a free one) and serves `GET /metrics` until the returned
/// [`Serving`] is dropped; returns the bound address too. A bind error comes back at
/// once, before the worker claims anything.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> std::io::Result<(SocketAddr, Serving)> {
    use axum::http::header::CONTENT_TYPE;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                    metrics.render(),
                )
            }
        }),
    );
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "The metrics server stopped.");
        }
    });
    Ok((bound, Serving(task)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_cumulative_buckets_escaped_labels_and_every_state() {
        let metrics = Arc::new(Metrics::default());
        metrics.item(ItemState::Claimed);
        metrics.item(ItemState::Claimed);
        metrics.item(ItemState::Done);
        let flying = metrics.in_flight();
        let ms = Duration::from_millis;
        metrics.stage("summary", Some("l\"lm"), ms(20), None);
        metrics.stage("summary", Some("l\"lm"), ms(700), Some("timeout"));
        metrics.stage("frames", None, ms(3), None);
        let text = metrics.render();
        for line in [
            "wolf_items_total{state=\"claimed\"} 2",
            "wolf_items_total{state=\"done\"} 1",
            "wolf_items_total{state=\"lost\"} 0",
            "wolf_videos_in_flight 1",
            "wolf_stage_duration_seconds_bucket{stage=\"summary\",model=\"l\\\"lm\",le=\"0.01\"} 0",
            "wolf_stage_duration_seconds_bucket{stage=\"summary\",model=\"l\\\"lm\",le=\"0.025\"} 1",
            "wolf_stage_duration_seconds_bucket{stage=\"summary\",model=\"l\\\"lm\",le=\"1\"} 2",
            "wolf_stage_duration_seconds_bucket{stage=\"summary\",model=\"l\\\"lm\",le=\"+Inf\"} 2",
            "wolf_stage_duration_seconds_count{stage=\"summary\",model=\"l\\\"lm\"} 2",
            "wolf_stage_duration_seconds_count{stage=\"frames\",model=\"\"} 1",
            "wolf_model_requests_total{model=\"l\\\"lm\"} 2",
            "wolf_model_errors_total{model=\"l\\\"lm\",kind=\"timeout\"} 1",
            "# TYPE wolf_stage_duration_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        drop(flying);
        assert!(metrics.render().contains("wolf_videos_in_flight 0\n"));
    }
}
