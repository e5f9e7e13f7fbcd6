//! Reading dataset sources into entries: a folder of videos, a JSONL or CSV manifest,
//! or Wolf's annotation JSON (METHOD.md 4) joined with a folder.
//!
//! A problem with one line or key of a source (a missing path, a duplicate key, a value
//! of the wrong type) becomes an [`IntakeProblem`] naming where it is, and the rest of
//! the source is read. Only a source that cannot be read at all is an error.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use wolf_pipeline::store::IntakeProblem;

use crate::files;
pub use crate::files::SourceError;

/// What kind of source a dataset came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Folder,
    Jsonl,
    Csv,
    WolfJson,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Folder => "folder",
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
            Self::WolfJson => "wolf_json",
        }
    }
}

/// One video named by a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The video's key in the dataset: its path relative to the folder, the manifest's
    /// `key` (default: its `path` as written) or the annotation key.
    pub key: String,
    pub path: PathBuf,
    pub reference: Option<String>,
    pub tags: Vec<String>,
}

/// A source read into entries and problems.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub kind: SourceKind,
    pub entries: Vec<Entry>,
    pub problems: Vec<IntakeProblem>,
}

/// Reads a source: a folder (with `annotations`, Wolf's annotation JSON joined with
/// it), a `.jsonl`/`.ndjson` or `.csv` manifest, or a `.json` annotation file whose
/// videos sit beside it.
///
/// The timed references (`dense.json`) of the folder, or of a file's folder, are
/// checked here, so that a dataset whose dense scores cannot be computed is
/// refused when it is added, with the line at fault.
pub fn read_source(source: &Path, annotations: Option<&Path>) -> Result<Source, SourceError> {
    let meta = files::metadata(source)?;
    let folder = if meta.is_dir() {
        Some(source)
    } else {
        source.parent()
    };
    let dense = folder.map(|f| f.join(wolf_scorer::dense::DENSE_FILE));
    if let Some(dense) = dense.filter(|d| d.is_file()) {
        wolf_scorer::dense::read_references(&dense)?;
    }
    if meta.is_dir() {
        return match annotations {
            Some(file) => read_wolf_json(file, source),
            None => read_folder(source),
        };
    }
    let extension = files::lower_extension(source);
    match extension.as_deref() {
        Some("jsonl" | "ndjson") => read_jsonl(source),
        Some("csv") => read_csv(source),
        Some("json") => {
            let folder = source.parent().unwrap_or(Path::new("."));
            read_wolf_json(source, folder)
        }
        _ => Err(SourceError::UnknownKind {
            path: source.to_owned(),
            expected: "a folder, a .jsonl/.csv manifest or a .json annotation file",
        }),
    }
}

/// Video files under a folder, recursively, sorted by key; unreadable sub-folders
/// become problems.
fn videos_in(root: &Path) -> (Vec<(String, PathBuf)>, Vec<IntakeProblem>) {
    let mut videos = Vec::new();
    let mut problems = Vec::new();
    for item in files::walk(root) {
        match item {
            Ok(item) if !item.file_type().is_dir() && files::is_video(item.path()) => {
                videos.push((
                    files::relative_key(root, item.path()),
                    item.path().to_owned(),
                ));
            }
            Ok(_) => {}
            Err(e) => {
                // A dangling link is still a video the user named: keep it, so that it
                // is stored as failed with its reason.
                if let Some(path) = e.path().filter(|p| p.is_symlink() && files::is_video(p)) {
                    videos.push((files::relative_key(root, path), path.to_owned()));
                    continue;
                }
                problems.push(IntakeProblem {
                    location: e
                        .path()
                        .map_or_else(|| root.display().to_string(), |p| p.display().to_string()),
                    kind: "unreadable".into(),
                    message: e.to_string(),
                });
            }
        }
    }
    videos.sort();
    (videos, problems)
}

/// The kind of the source problem of a folder that holds no video.
pub const NO_VIDEOS: &str = "no_videos";

/// The problem of a folder without a video, saying what it holds instead: a user who
/// pointed `wolf dataset add` at the wrong folder, or at WebDataset shards, learns
/// why nothing was added.
fn no_videos(root: &Path) -> IntakeProblem {
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for item in files::walk(root).flatten() {
        if !item.file_type().is_dir() {
            let kind = files::lower_extension(item.path())
                .map_or_else(|| "extension-less".to_owned(), |e| format!(".{e}"));
            *found.entry(kind).or_default() += 1;
        }
    }
    let shards = found.contains_key(".tar");
    let mut kinds: Vec<(String, usize)> = found.into_iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let counted = |(kind, n): &(String, usize)| {
        format!("{n} {kind} {}", if *n == 1 { "file" } else { "files" })
    };
    let mut listed: Vec<String> = kinds.iter().take(3).map(counted).collect();
    let others: usize = kinds.iter().skip(3).map(|(_, n)| n).sum();
    if others > 0 {
        listed.push(format!("{others} other files"));
    }
    let what = match listed.split_last() {
        None => "it is empty".to_owned(),
        Some((last, [])) => format!("found {last}"),
        Some((last, rest)) => format!("found {} and {last}", rest.join(", ")),
    };
    let hint = if shards {
        ": shards are not read by `dataset add` yet; `wolf recaption` reads them".to_owned()
    } else {
        format!(
            "; videos are found by their extension: {}",
            files::VIDEO_EXTENSIONS.join(", ")
        )
    };
    IntakeProblem {
        location: root.display().to_string(),
        kind: NO_VIDEOS.into(),
        message: format!("no videos found in `{}` ({what}{hint})", root.display()),
    }
}

fn read_folder(root: &Path) -> Result<Source, SourceError> {
    let (files, mut problems) = videos_in(root);
    if files.is_empty() {
        problems.push(no_videos(root));
    }
    let entries = files
        .into_iter()
        .map(|(key, path)| Entry {
            key,
            path,
            reference: None,
            tags: Vec::new(),
        })
        .collect();
    Ok(Source {
        kind: SourceKind::Folder,
        entries,
        problems,
    })
}

/// A value of Wolf's annotation files: a caption, or `{"output": caption, "tags": [...]}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Annotation {
    Caption(String),
    Detailed {
        output: String,
        #[serde(default)]
        tags: Vec<String>,
    },
}

fn read_wolf_json(file: &Path, folder: &Path) -> Result<Source, SourceError> {
    let text = std::fs::read_to_string(file).map_err(|source| SourceError::Io {
        path: file.to_owned(),
        source,
    })?;
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|source| SourceError::Annotations {
            path: file.to_owned(),
            source,
        })?;
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for (key, value) in raw {
        let location = format!("{}: `{key}`", file.display());
        let annotation = match serde_json::from_value::<Annotation>(value) {
            Ok(a) => a,
            Err(_) => {
                problems.push(IntakeProblem {
                    location,
                    kind: "invalid_annotation".into(),
                    message: "the value is neither a caption nor an object with a string `output` and string `tags`".into(),
                });
                continue;
            }
        };
        let (caption, tags) = match annotation {
            Annotation::Caption(c) => (c, Vec::new()),
            Annotation::Detailed { output, tags } => (output, tags),
        };
        let reference = non_empty_caption(caption, &location, &mut problems);
        entries.push(Entry {
            path: folder.join(&key),
            key,
            reference,
            tags,
        });
    }
    let annotated: std::collections::HashSet<&str> =
        entries.iter().map(|e| e.key.as_str()).collect();
    let (files, walk_problems) = videos_in(folder);
    problems.extend(walk_problems);
    let left_out: Vec<&str> = files
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !annotated.contains(k))
        .collect();
    if let Some(first) = left_out.first() {
        problems.push(IntakeProblem {
            location: folder.display().to_string(),
            kind: "not_annotated".into(),
            message: format!("{} videos in the folder have no annotation and were left out (the first is `{first}`)", left_out.len()),
        });
    }
    Ok(Source {
        kind: SourceKind::WolfJson,
        entries,
        problems,
    })
}

/// A caption that is only white space is no reference: recorded as a problem.
fn non_empty_caption(
    caption: String,
    location: &str,
    problems: &mut Vec<IntakeProblem>,
) -> Option<String> {
    if caption.trim().is_empty() {
        problems.push(IntakeProblem {
            location: location.to_owned(),
            kind: "empty_caption".into(),
            message: "the reference caption is empty; the video is kept without one".into(),
        });
        return None;
    }
    Some(caption)
}

/// One manifest row, from JSONL or CSV.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestRow {
    path: Option<String>,
    key: Option<String>,
    caption: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

/// Collects manifest rows into entries, with problems for missing paths and
/// duplicate keys. Relative paths are resolved against the manifest's folder.
struct ManifestReader<'a> {
    manifest: &'a Path,
    base: PathBuf,
    seen: HashMap<String, String>,
    entries: Vec<Entry>,
    problems: Vec<IntakeProblem>,
}

impl<'a> ManifestReader<'a> {
    fn new(manifest: &'a Path) -> Self {
        let base = manifest.parent().map(Path::to_owned).unwrap_or_default();
        Self {
            manifest,
            base,
            seen: HashMap::new(),
            entries: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn location(&self, line: usize) -> String {
        format!("{}:{line}", self.manifest.display())
    }

    fn problem(&mut self, line: usize, kind: &str, message: String) {
        let location = self.location(line);
        self.problems.push(IntakeProblem {
            location,
            kind: kind.into(),
            message,
        });
    }

    fn add(&mut self, line: usize, row: ManifestRow) {
        let Some(path) = row.path.filter(|p| !p.trim().is_empty()) else {
            self.problem(line, "missing_path", "the row has no `path`".into());
            return;
        };
        let key = row
            .key
            .filter(|k| !k.trim().is_empty())
            .unwrap_or_else(|| path.clone());
        if let Some(first) = self.seen.get(&key) {
            let message = format!("key `{key}` was already given at {first}; this row is left out");
            self.problem(line, "duplicate_key", message);
            return;
        }
        self.seen.insert(key.clone(), self.location(line));
        let location = self.location(line);
        let reference = row
            .caption
            .and_then(|c| non_empty_caption(c, &location, &mut self.problems));
        let tags = row
            .tags
            .into_iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        self.entries.push(Entry {
            key,
            path: self.base.join(path),
            reference,
            tags,
        });
    }

    fn finish(self, kind: SourceKind) -> Source {
        Source {
            kind,
            entries: self.entries,
            problems: self.problems,
        }
    }
}

fn read_jsonl(manifest: &Path) -> Result<Source, SourceError> {
    let text = std::fs::read(manifest).map_err(|source| SourceError::Io {
        path: manifest.to_owned(),
        source,
    })?;
    let mut reader = ManifestReader::new(manifest);
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let Ok(line) = std::str::from_utf8(line) else {
            reader.problem(line_no, "invalid_line", "the line is not UTF-8".into());
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ManifestRow>(line) {
            Ok(row) => reader.add(line_no, row),
            Err(e) => reader.problem(line_no, "invalid_line", format!("not a manifest row: {e}")),
        }
    }
    Ok(reader.finish(SourceKind::Jsonl))
}

fn read_csv(manifest: &Path) -> Result<Source, SourceError> {
    let invalid = |source| SourceError::Csv {
        path: manifest.to_owned(),
        source,
    };
    let mut csv = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(manifest)
        .map_err(invalid)?;
    let headers = csv.headers().map_err(invalid)?.clone();
    const COLUMNS: &[&str] = &["path", "key", "caption", "tags"];
    if let Some(unknown) = headers.iter().find(|h| !COLUMNS.contains(&h.trim())) {
        return Err(SourceError::UnknownColumn {
            path: manifest.to_owned(),
            column: unknown.to_owned(),
        });
    }
    if !headers.iter().any(|h| h.trim() == "path") {
        return Err(SourceError::NoPathColumn {
            path: manifest.to_owned(),
        });
    }
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (path_col, key_col, caption_col, tags_col) = (
        column("path"),
        column("key"),
        column("caption"),
        column("tags"),
    );
    let mut reader = ManifestReader::new(manifest);
    for record in csv.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                reader.problem(line, "invalid_line", e.to_string());
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        let cell = |col: Option<usize>| {
            col.and_then(|c| record.get(c))
                .map(str::to_owned)
                .filter(|v| !v.is_empty())
        };
        let row = ManifestRow {
            path: cell(path_col),
            key: cell(key_col),
            caption: cell(caption_col),
            tags: cell(tags_col)
                .map(|t| t.split('|').map(str::to_owned).collect())
                .unwrap_or_default(),
        };
        reader.add(line, row);
    }
    Ok(reader.finish(SourceKind::Csv))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_folder_is_read_recursively_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b/clip.MP4", "x");
        write(dir.path(), "a.mkv", "x");
        write(dir.path(), "notes.txt", "x");
        let source = read_source(dir.path(), None).unwrap();
        let keys: Vec<_> = source.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a.mkv", "b/clip.MP4"]);
        assert_eq!(source.kind, SourceKind::Folder);
    }

    #[test]
    fn a_folder_without_videos_says_what_it_holds() {
        let message = |dir: &Path| {
            let source = read_source(dir, None).unwrap();
            assert!(source.entries.is_empty());
            assert_eq!(source.problems.len(), 1, "{:?}", source.problems);
            assert_eq!(source.problems[0].kind, NO_VIDEOS);
            source.problems[0].message.clone()
        };
        let dir = tempfile::tempdir().unwrap();
        let shown = dir.path().display().to_string();
        assert_eq!(
            message(dir.path()),
            format!(
                "no videos found in `{shown}` (it is empty; videos are found by their extension: mp4, m4v, mov, mkv, webm, avi, mpg, mpeg, ts, wmv, flv, 3gp)"
            )
        );
        for name in ["00000.tar", "00001.tar", "b/00002.TAR", ".hidden.mp4"] {
            write(dir.path(), name, "x");
        }
        assert_eq!(
            message(dir.path()),
            format!(
                "no videos found in `{shown}` (found 3 .tar files: shards are not read by `dataset add` yet; `wolf recaption` reads them)"
            )
        );
        for name in ["a.txt", "b.txt", "c.json", "README", "d.png"] {
            write(dir.path(), name, "x");
        }
        let text = message(dir.path());
        assert!(
            text.contains(
                "(found 3 .tar files, 2 .txt files, 1 .json file and 2 other files: shards"
            ),
            "{text}"
        );
    }

    #[test]
    fn jsonl_rows_with_missing_paths_or_duplicate_keys_become_problems() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = write(
            dir.path(),
            "m.jsonl",
            concat!(
                "{\"path\": \"a.mp4\", \"caption\": \"A cat.\", \"tags\": [\"pets\"]}\n",
                "{\"caption\": \"no path\"}\n",
                "\n",
                "{\"path\": \"b.mp4\", \"key\": \"a.mp4\"}\n",
                "{\"path\": \"c.mp4\", \"captoin\": \"typo\"}\n",
                "not json\n",
                "{\"path\": \"d.mp4\", \"caption\": \"  \"}\n",
            ),
        );
        let source = read_source(&manifest, None).unwrap();
        let keys: Vec<_> = source.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a.mp4", "d.mp4"]);
        assert_eq!(source.entries[0].path, dir.path().join("a.mp4"));
        assert_eq!(source.entries[0].reference.as_deref(), Some("A cat."));
        assert_eq!(source.entries[0].tags, ["pets"]);
        assert_eq!(source.entries[1].reference, None);
        let problems: Vec<_> = source
            .problems
            .iter()
            .map(|p| {
                (
                    p.location.rsplit(':').next().unwrap().to_owned(),
                    p.kind.as_str(),
                )
            })
            .collect();
        assert_eq!(
            problems,
            [
                ("2".to_owned(), "missing_path"),
                ("4".to_owned(), "duplicate_key"),
                ("5".to_owned(), "invalid_line"),
                ("6".to_owned(), "invalid_line"),
                ("7".to_owned(), "empty_caption"),
            ]
        );
        assert!(source.problems[2].message.contains("captoin"));
    }

    #[test]
    fn csv_manifests_read_tags_and_refuse_unknown_columns() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = write(
            dir.path(),
            "m.csv",
            "path,caption,tags\na.mp4,\"A dog, running.\",pets|outdoor\n,missing,\n",
        );
        let source = read_source(&manifest, None).unwrap();
        assert_eq!(source.entries.len(), 1);
        assert_eq!(
            source.entries[0].reference.as_deref(),
            Some("A dog, running.")
        );
        assert_eq!(source.entries[0].tags, ["pets", "outdoor"]);
        assert_eq!(source.problems[0].kind, "missing_path");
        assert!(
            source.problems[0].location.ends_with(":3"),
            "{:?}",
            source.problems[0]
        );

        let bad = write(dir.path(), "bad.csv", "path,captoin\na.mp4,x\n");
        let err = read_source(&bad, None).unwrap_err();
        assert!(err.to_string().contains("captoin"), "{err}");
    }

    #[test]
    fn both_wolf_json_shapes_join_with_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "v/a.mp4", "x");
        write(dir.path(), "v/b.mp4", "x");
        write(dir.path(), "v/extra.mp4", "x");
        let plain = write(
            dir.path(),
            "plain.json",
            r#"{"a.mp4": "A car turns left.", "missing.mp4": "Gone."}"#,
        );
        let source = read_source(&dir.path().join("v"), Some(&plain)).unwrap();
        assert_eq!(source.kind, SourceKind::WolfJson);
        assert_eq!(source.entries.len(), 2);
        assert_eq!(source.entries[1].path, dir.path().join("v/missing.mp4"));
        assert!(
            source
                .problems
                .iter()
                .any(|p| p.kind == "not_annotated" && p.message.starts_with("2 videos"))
        );

        let detailed = write(
            dir.path(),
            "detailed.json",
            r#"{"a.mp4": {"output": "A beach.", "tags": ["Travel & Events"]}, "b.mp4": 7}"#,
        );
        let source = read_source(&dir.path().join("v"), Some(&detailed)).unwrap();
        assert_eq!(source.entries.len(), 1);
        assert_eq!(source.entries[0].tags, ["Travel & Events"]);
        assert!(
            source
                .problems
                .iter()
                .any(|p| p.kind == "invalid_annotation" && p.location.contains("b.mp4"))
        );

        let broken = write(dir.path(), "broken.json", "[1, 2]");
        assert_eq!(
            read_source(&dir.path().join("v"), Some(&broken))
                .unwrap_err()
                .kind(),
            "annotations_invalid"
        );
    }

    #[test]
    fn a_missing_source_is_an_error() {
        let err = read_source(Path::new("/definitely/not/here"), None).unwrap_err();
        assert_eq!(err.kind(), "source_not_found");
    }
}
