//! A run as a Hugging Face dataset folder (`wolf export --format hf --out DIR`), which
//! `datasets.load_dataset(DIR)` loads as is:
//! - `data/captions.parquet`: the rows of `wolf export` (video, path relative to the
//!   dataset's folder, source, caption, model, prompt version, guard), one split,
//!   `train`;
//! - `README.md`: a dataset card whose YAML header names that file as the `default`
//!   config, then the run's models, prompts (version and text), its configuration
//!   (sampling included) and its scores with their 95 % intervals.
//!
//! The folder is written under a temporary name beside `DIR` and renamed into place:
//! it is whole or absent. An existing `DIR` is not replaced.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use wolf_pipeline::store::{Store, StoreError};
use wolf_pipeline::wolf::export::{CAPTION_COLUMNS, ExportError, caption_rows};
use wolf_pipeline::wolf::prompts;
use wolf_scorer::report::{ReportLine, report_lines};

use crate::tables::{TableError, TableFormat, write_table};

/// The data file inside the folder.
pub const DATA_FILE: &str = "data/captions.parquet";

/// Why the folder could not be written.
#[derive(Debug, thiserror::Error)]
pub enum HfError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("`{0}` exists already; name a new folder")]
    Exists(PathBuf),
    #[error("cannot write `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfExport {
    pub rows: usize,
    pub folder: PathBuf,
}

/// Writes run `run` into the new folder `out`.
pub async fn export_hf(
    store: &Store,
    run: &str,
    out: &Path,
    absolute: bool,
) -> Result<HfExport, HfError> {
    if out.exists() {
        return Err(HfError::Exists(out.to_owned()));
    }
    let run_row = store.run(run).await?;
    let rows = caption_rows(store, run_row.id, None, absolute).await?;
    let mut data = Vec::new();
    write_table(&rows, &CAPTION_COLUMNS, TableFormat::Parquet, &mut data)?;
    let dataset = store
        .datasets()
        .await?
        .into_iter()
        .find(|d| d.id == run_row.dataset_id)
        .map_or_else(String::new, |d| d.name);
    let entries: Vec<_> = store
        .entries(run_row.dataset_id)
        .await?
        .into_iter()
        .filter(|e| e.run == run)
        .collect();
    let scores = store.scores(Some(&dataset)).await?;
    let lines: Vec<ReportLine> = report_lines(&scores)
        .into_iter()
        .filter(|l| l.run == run)
        .collect();
    let card = card(run, &dataset, rows.len(), &entries, &lines);

    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| HfError::Io { path, source }
    };
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let partial = tempfile::Builder::new()
        .prefix(".hf-partial-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let data_path = partial.path().join(DATA_FILE);
    std::fs::create_dir_all(data_path.parent().expect("in data/")).map_err(io(&data_path))?;
    std::fs::write(&data_path, &data).map_err(io(&data_path))?;
    let readme = partial.path().join("README.md");
    std::fs::write(&readme, card).map_err(io(&readme))?;
    let kept = partial.keep();
    std::fs::rename(&kept, out).map_err(|source| {
        let _ = std::fs::remove_dir_all(&kept);
        HfError::Io {
            path: out.to_owned(),
            source,
        }
    })?;
    Ok(HfExport {
        rows: rows.len(),
        folder: out.to_owned(),
    })
}

/// The dataset card.
fn card(
    run: &str,
    dataset: &str,
    rows: usize,
    entries: &[wolf_pipeline::store::EntryRow],
    lines: &[ReportLine],
) -> String {
    let mut out = String::new();
    // The YAML header: the one config and its split (what `load_dataset` reads).
    let _ = writeln!(out, "---");
    let _ = writeln!(
        out,
        "pretty_name: {}",
        yaml_string(&format!("wolf captions of run {run}"))
    );
    let _ = writeln!(out, "tags:\n- video-captioning\n- wolf");
    let _ = writeln!(out, "configs:\n- config_name: default\n  data_files:");
    let _ = writeln!(out, "  - split: train\n    path: {DATA_FILE}");
    let _ = writeln!(out, "---\n");
    let _ = writeln!(out, "# Captions of run `{run}`\n");
    let _ = writeln!(
        out,
        "{rows} captions of the videos of dataset `{dataset}`, made by wolf's Wolf pipeline. \
         `{DATA_FILE}` holds one row per (video, source): `video` (the key), `path` (relative \
         to the dataset's folder), `source` (`wolf` is the fused caption), `caption`, `model`, \
         `prompt_version` and `guard` (how the fusion guard passed it).\n"
    );
    let _ = writeln!(
        out,
        "## Models\n\n| source | models | prompt versions |\n|---|---|---|"
    );
    for e in entries {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            e.source,
            e.models.join(", "),
            e.prompt_versions.join(", ")
        );
    }
    let mut versions: Vec<&str> = entries
        .iter()
        .flat_map(|e| e.prompt_versions.iter().map(String::as_str))
        .collect();
    versions.sort_unstable();
    versions.dedup();
    let _ = writeln!(out, "\n## Prompts\n");
    for version in versions {
        match prompts::by_version(version) {
            Some(prompt) => {
                let _ = writeln!(
                    out,
                    "- `{version}`:\n\n  ```text\n  {}\n  ```",
                    prompt.text.replace('\n', "\n  ")
                );
            }
            None => {
                let _ = writeln!(out, "- `{version}`");
            }
        }
    }
    let _ = writeln!(out, "\n## Scores\n");
    if lines.is_empty() {
        let _ = writeln!(out, "Not scored (`wolf score --run {run}` scores it).");
    } else {
        let _ = writeln!(
            out,
            "| source | metric | judge | mean | 95% interval | videos |\n|---|---|---|---|---|---|"
        );
        let f = |v: Option<f64>| v.map_or("-".to_owned(), |x| format!("{x:.3}"));
        for l in lines {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | [{}, {}] | {} |",
                l.source,
                l.metric,
                l.judge,
                f(l.mean),
                f(l.low),
                f(l.high),
                l.count
            );
        }
    }
    if let Some(config) = entries.first().map(|e| e.config.as_str()) {
        let _ = writeln!(
            out,
            "\n## Configuration\n\nThe run's configuration (models, sampling, stages):\n\n```toml\n{}\n```",
            config.trim_end()
        );
    }
    out
}

/// A YAML double-quoted string.
fn yaml_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}
