//! A run's captions as text, the way `wolf export` writes them: JSONL (every source,
//! one caption a line, with the guard's path where there is one), Wolf JSON (one
//! source, `{video: caption}` or `{video: {"output": caption}}`), dense captions
//! (ActivityNet's JSON, or JSONL a segment a line), or the failed stages with their
//! reasons (JSONL). The binary writes the text; nothing here prints.

use crate::store::{CaptionRow, Store, StoreError, TimedCaption};

use super::WOLF_SOURCE;

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// Every caption of the run, or of one source; paths relative to each video's
    /// dataset root unless `absolute`.
    Jsonl {
        source: Option<String>,
        absolute: bool,
    },
    /// One source (default `wolf`) as Wolf's JSON map.
    WolfJson {
        source: Option<String>,
        nested: bool,
    },
    /// The failed stages, one work item a line.
    Failed,
    /// One source (default `wolf`) as ActivityNet Captions' JSON, what dense-captioning
    /// evaluators read: `{video: {"duration", "timestamps": [[start, end], ...],
    /// "sentences": [...]}}`; a video that was not cut is one segment.
    Dense { source: Option<String> },
    /// Every segment's caption, one a line: video, start, end, caption, source.
    DenseJsonl { source: Option<String> },
}

/// An export that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run `{run}` has no captions of source `{wanted}`")]
    NoCaptions { run: String, wanted: String },
    #[error("cannot encode the export: {0}")]
    Json(#[from] serde_json::Error),
}

/// The fields of a caption's row ([`caption_rows`]) in order: the columns of `wolf export
/// --format csv|parquet`.
pub const CAPTION_COLUMNS: [&str; 7] = [
    "video",
    "path",
    "source",
    "caption",
    "model",
    "prompt_version",
    "guard",
];

/// Every caption of run `run_id` (or of one source) as a JSON object: video, path
/// (relative to the video's dataset root unless `absolute`), source, caption, model,
/// prompt_version, and the guard's path where there is one.
pub async fn caption_rows(
    store: &Store,
    run_id: i64,
    source: Option<&str>,
    absolute: bool,
) -> Result<Vec<serde_json::Value>, ExportError> {
    let captions = store.captions(run_id, source).await?;
    Ok(captions
        .into_iter()
        .map(|c| {
            let path = match absolute {
                true => c.path,
                false => crate::media::relative_to(&c.path, c.root.as_deref()),
            };
            let mut line = serde_json::json!({
                "video": c.video,
                "path": path,
                "source": c.source,
                "caption": c.caption,
                "model": c.model,
                "prompt_version": c.prompt_version,
            });
            if let Some(path) = c.guard {
                line["guard"] = path.into();
            }
            line
        })
        .collect())
}

/// The text of `what` for run `run`, ending with a newline unless empty.
pub async fn export(store: &Store, run: &str, what: &Export) -> Result<String, ExportError> {
    let run_id = store.run(run).await?.id;
    let mut out = String::new();
    match what {
        Export::Failed => {
            for item in store.work_items(run_id).await? {
                if item.status == "failed" {
                    out.push_str(&serde_json::to_string(&item)?);
                    out.push('\n');
                }
            }
        }
        Export::Jsonl { source, absolute } => {
            for line in caption_rows(store, run_id, source.as_deref(), *absolute).await? {
                out.push_str(&line.to_string());
                out.push('\n');
            }
        }
        Export::Dense { source } => {
            let map: serde_json::Map<String, serde_json::Value> = one_source(
                store, run_id, run, source,
            )
            .await?
            .into_iter()
            .map(|c| {
                let duration = c.duration_s.unwrap_or_default();
                let segments = timed(c.segments, c.caption, duration);
                let value = serde_json::json!({
                    "duration": duration,
                    "timestamps": segments.iter().map(|s| [s.start_s, s.end_s]).collect::<Vec<_>>(),
                    "sentences": segments.iter().map(|s| s.caption.as_str()).collect::<Vec<_>>(),
                });
                (c.video, value)
            })
            .collect();
            out = serde_json::to_string_pretty(&serde_json::Value::Object(map))? + "\n";
        }
        Export::DenseJsonl { source } => {
            for c in store.captions(run_id, source.as_deref()).await? {
                let duration = c.duration_s.unwrap_or_default();
                for s in timed(c.segments, c.caption, duration) {
                    let line = serde_json::json!({
                        "video": c.video,
                        "start": s.start_s,
                        "end": s.end_s,
                        "caption": s.caption,
                        "source": c.source,
                    });
                    out.push_str(&line.to_string());
                    out.push('\n');
                }
            }
        }
        Export::WolfJson { source, nested } => {
            let map: serde_json::Map<String, serde_json::Value> =
                one_source(store, run_id, run, source)
                    .await?
                    .into_iter()
                    .map(|c| {
                        let value = if *nested {
                            serde_json::json!({ "output": c.caption })
                        } else {
                            serde_json::Value::String(c.caption)
                        };
                        (c.video, value)
                    })
                    .collect();
            out = serde_json::to_string_pretty(&serde_json::Value::Object(map))? + "\n";
        }
    }
    Ok(out)
}

/// The captions of one source (default `wolf`) of run `run`; none is an error.
async fn one_source(
    store: &Store,
    run_id: i64,
    run: &str,
    source: &Option<String>,
) -> Result<Vec<CaptionRow>, ExportError> {
    let source = source.as_deref().unwrap_or(WOLF_SOURCE);
    let captions = store.captions(run_id, Some(source)).await?;
    if captions.is_empty() {
        return Err(ExportError::NoCaptions {
            run: run.to_owned(),
            wanted: source.to_owned(),
        });
    }
    Ok(captions)
}

/// A caption's segments: a long video's own, else the whole video as one.
fn timed(
    segments: Option<Vec<TimedCaption>>,
    caption: String,
    duration_s: f64,
) -> Vec<TimedCaption> {
    segments.unwrap_or_else(|| {
        vec![TimedCaption {
            start_s: 0.0,
            end_s: duration_s,
            caption,
        }]
    })
}
