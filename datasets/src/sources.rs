//! Reading dataset sources into entries: a folder of videos, a JSONL, CSV or Parquet
//! manifest, WebDataset shards ([`crate::shards`]), or Wolf's annotation JSON
//! (METHOD.md 4) joined with a folder.
//!
//! A problem with one line or key of a source (a missing path, a duplicate key, a value
//! of the wrong type) becomes an [`IntakeProblem`] naming where it is, and the rest of
//! the source is read. Only a source that cannot be read at all is an error.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use wolf_pipeline::store::IntakeProblem;

use crate::files;
pub use crate::files::SourceError;

/// What kind of source a dataset came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Folder,
    Jsonl,
    Csv,
    Parquet,
    Shards,
    WolfJson,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Folder => "folder",
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
            Self::Parquet => "parquet",
            Self::Shards => "webdataset",
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
    /// A manifest row's other columns, if it had any: a JSON object's text (compact:
    /// a parsed map costs several times its text, per video).
    pub metadata: Option<String>,
}

/// A source read into entries and problems.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub kind: SourceKind,
    /// The folder the entries' paths are relative to in exports: the folder read, a
    /// manifest's folder, the shards' folder.
    pub root: PathBuf,
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
///
/// Shards (a `.tar`, `.tar.gz` or `.tgz`, a brace pattern of them, or a folder that
/// holds shards and no loose video) use `shard_cache` ([`crate::shards`]).
pub fn read_source(
    source: &Path,
    annotations: Option<&Path>,
    columns: &Columns,
    shard_cache: &Path,
) -> Result<Source, SourceError> {
    // A folder of loose videos is a folder dataset, whatever else it holds.
    let loose = (source.is_dir() && annotations.is_none()).then(|| videos_in(source));
    if annotations.is_none()
        && loose.as_ref().is_none_or(|(videos, _)| videos.is_empty())
        && let Some((root, shards)) = crate::shards::named_shards(source)?
    {
        return Ok(crate::shards::read_shards(root, &shards, shard_cache));
    }
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
        return match (annotations, loose) {
            (Some(file), _) => read_wolf_json(file, source),
            (None, Some(loose)) => Ok(read_folder(source, loose)),
            (None, None) => Ok(read_folder(source, videos_in(source))),
        };
    }
    let extension = files::lower_extension(source);
    match extension.as_deref() {
        Some("jsonl" | "ndjson") => read_jsonl(source, columns),
        Some("csv") => read_csv(source, columns),
        Some("parquet") => read_parquet(source, columns),
        Some("json") => {
            let folder = source.parent().unwrap_or(Path::new("."));
            read_wolf_json(source, folder)
        }
        _ => Err(SourceError::UnknownKind {
            path: source.to_owned(),
            expected: "a folder, a .jsonl/.csv/.parquet manifest, a .tar/.tar.gz/.tgz shard or a .json annotation file",
        }),
    }
}

/// The videos of a folder by key, and the problems met finding them.
type FoundVideos = (Vec<(String, PathBuf)>, Vec<IntakeProblem>);

/// Video files under a folder, recursively, sorted by key; unreadable sub-folders
/// become problems.
fn videos_in(root: &Path) -> FoundVideos {
    let mut videos = Vec::new();
    let mut problems = Vec::new();
    let mut shards = 0usize;
    for item in files::walk(root) {
        match item {
            Ok(item) if !item.file_type().is_dir() && files::is_video(item.path()) => {
                videos.push((
                    files::relative_key(root, item.path()),
                    item.path().to_owned(),
                ));
            }
            Ok(item) if !item.file_type().is_dir() && files::shard_stem(item.path()).is_some() => {
                shards += 1;
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
    // A folder of loose videos is read as one; shards beside them are said, not read.
    if shards > 0 && !videos.is_empty() {
        problems.push(IntakeProblem {
            location: root.display().to_string(),
            kind: "shards_not_read".into(),
            message: format!(
                "the folder holds {shards} shards beside its {} loose videos, which make it a folder dataset; add the shards on their own (a folder of shards only, or a brace pattern)",
                videos.len()
            ),
        });
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
    let hint = format!(
        "; videos are found by their extension: {}, and shards by theirs: {}",
        files::VIDEO_EXTENSIONS.join(", "),
        files::SHARD_ENDINGS.join(", ")
    );
    IntakeProblem {
        location: root.display().to_string(),
        kind: NO_VIDEOS.into(),
        message: format!("no videos found in `{}` ({what}{hint})", root.display()),
    }
}

/// A folder's videos ([`videos_in`]) as a source.
fn read_folder(root: &Path, (files, mut problems): FoundVideos) -> Source {
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
            metadata: None,
        })
        .collect();
    Source {
        kind: SourceKind::Folder,
        root: root.to_owned(),
        entries,
        problems,
    }
}

/// A value of Wolf's annotation files: a caption, or `{"output": caption, "tags": [...]}`.
#[derive(serde::Deserialize)]
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
            metadata: None,
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
        root: folder.to_owned(),
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

/// Which manifest columns (JSONL fields, CSV columns) hold a video's path, key,
/// reference caption and tags (`wolf dataset add --path-column …`). A name given here
/// must be in the manifest, or the manifest is refused naming it. Unset, the defaults:
/// the path is `path`, else `video`, else `url` (a local path or a `file://` URL), then
/// `key` (default: the path as written), `caption` and `tags` (a list, or `a|b`). Every
/// other column is kept as the video's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    pub path: Option<String>,
    pub key: Option<String>,
    pub caption: Option<String>,
    pub tags: Option<String>,
}

/// The path column's default names, in order of preference.
const PATH_COLUMNS: [&str; 3] = ["path", "video", "url"];

/// The column of each role in one manifest.
struct Resolved {
    /// None: each row's first of [`PATH_COLUMNS`] (a manifest may mix them).
    path: Option<String>,
    key: String,
    caption: String,
    tags: String,
}

impl Resolved {
    /// Row `row`'s path column.
    fn path_of<'a>(&'a self, row: &Row) -> &'a str {
        match &self.path {
            Some(path) => path,
            None => PATH_COLUMNS
                .iter()
                .find(|c| row.contains_key(**c))
                .unwrap_or(&PATH_COLUMNS[0]),
        }
    }

    /// Whether some column of `present` can hold the path.
    fn has_path(&self, present: &[String]) -> bool {
        present.iter().any(|c| match &self.path {
            Some(path) => c == path,
            None => PATH_COLUMNS.contains(&c.as_str()),
        })
    }
}

impl Columns {
    /// Each role's column among the manifest's `present` columns; a name given that is
    /// not there is an error.
    fn resolve(&self, present: &[String], manifest: &Path) -> Result<Resolved, SourceError> {
        let has = |name: &str| present.iter().any(|c| c == name);
        for (option, given) in [
            ("--path-column", &self.path),
            ("--key-column", &self.key),
            ("--caption-column", &self.caption),
            ("--tags-column", &self.tags),
        ] {
            if let Some(name) = given.as_deref().filter(|n| !has(n)) {
                return Err(SourceError::MissingColumn {
                    path: manifest.to_owned(),
                    column: name.to_owned(),
                    option,
                    present: present.join(", "),
                });
            }
        }
        Ok(Resolved {
            path: self.path.clone(),
            key: self.key.clone().unwrap_or_else(|| "key".into()),
            caption: self.caption.clone().unwrap_or_else(|| "caption".into()),
            tags: self.tags.clone().unwrap_or_else(|| "tags".into()),
        })
    }
}

/// Problems for columns that look like a misspelt role (`captoin`): kept as metadata, as
/// every column no role names, but said, since the user most likely meant the role.
fn misspelt_columns(present: &[String], columns: &Resolved, manifest: &Path) -> Vec<IntakeProblem> {
    let roles = [
        ("path", columns.path.as_deref(), "--path-column"),
        ("key", Some(columns.key.as_str()), "--key-column"),
        (
            "caption",
            Some(columns.caption.as_str()),
            "--caption-column",
        ),
        ("tags", Some(columns.tags.as_str()), "--tags-column"),
    ];
    let is_role = |c: &str| {
        roles.iter().any(|(_, column, _)| *column == Some(c))
            || (columns.path.is_none() && PATH_COLUMNS.contains(&c))
    };
    let mut problems = Vec::new();
    for column in present.iter().filter(|c| !is_role(c)) {
        for (role, _, option) in roles {
            // One edit (two for `caption`): `stats` is not `tags`.
            let edits = if role.len() >= 6 { 2 } else { 1 };
            if strsim::damerau_levenshtein(&column.to_lowercase(), role) <= edits {
                problems.push(IntakeProblem {
                    location: manifest.display().to_string(),
                    kind: "misspelt_column".into(),
                    message: format!(
                        "column `{column}` is kept as metadata; if it holds the {role}, add with \
                         `{option} {column}`"
                    ),
                });
            }
        }
    }
    problems
}

/// One manifest row's values by column (JSON values; a CSV's cells are strings).
type Row = serde_json::Map<String, serde_json::Value>;

/// Collects manifest rows into entries, with problems for missing paths and
/// duplicate keys. Relative paths are resolved against the manifest's folder.
struct ManifestReader<'a> {
    manifest: &'a Path,
    base: PathBuf,
    columns: Resolved,
    seen: HashMap<String, String>,
    entries: Vec<Entry>,
    problems: Vec<IntakeProblem>,
}

impl<'a> ManifestReader<'a> {
    /// A reader of `manifest`, whose columns are `present`, mapped by `columns`.
    fn new(manifest: &'a Path, columns: &Columns, present: &[String]) -> Result<Self, SourceError> {
        let base = manifest.parent().map(Path::to_owned).unwrap_or_default();
        let columns = columns.resolve(present, manifest)?;
        let problems = misspelt_columns(present, &columns, manifest);
        Ok(Self {
            manifest,
            base,
            columns,
            seen: HashMap::new(),
            entries: Vec::new(),
            problems,
        })
    }

    /// The reader of a manifest whose columns are its header (CSV, Parquet): one of them
    /// must hold the path. (JSONL's rows name their own.)
    fn needing_path(self, present: &[String]) -> Result<Self, SourceError> {
        if self.columns.has_path(present) {
            return Ok(self);
        }
        Err(SourceError::NoPathColumn {
            path: self.manifest.to_owned(),
            present: present.join(", "),
        })
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

    /// Column `name`'s value as text: a string, or a number; None when absent, null or
    /// empty; an `invalid_value` problem for anything else.
    fn text(&mut self, line: usize, row: &Row, name: &str) -> Result<Option<String>, ()> {
        match row.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone()).filter(|s| !s.is_empty())),
            Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => {
                let message = format!("column `{name}` holds {other}, not text");
                self.problem(line, "invalid_value", message);
                Err(())
            }
        }
    }

    fn add(&mut self, line: usize, mut row: Row) {
        let columns = [
            self.columns.path_of(&row).to_owned(),
            self.columns.key.clone(),
            self.columns.caption.clone(),
        ];
        let [Ok(path), Ok(key), Ok(caption)] = columns.each_ref().map(|c| self.text(line, &row, c))
        else {
            return;
        };
        if row
            .get(&columns[0])
            .is_some_and(serde_json::Value::is_number)
        {
            let message = format!("column `{}` holds a number, not a path", columns[0]);
            self.problem(line, "invalid_value", message);
            return;
        }
        let Some(path) = path.filter(|p| !p.trim().is_empty()) else {
            let message = format!("the row has no `{}`", columns[0]);
            self.problem(line, "missing_path", message);
            return;
        };
        let local = match path.split_once("://") {
            None => path.clone(),
            Some(("file", rest)) => rest.to_owned(),
            Some(_) => {
                let message = format!(
                    "`{path}` is not a local file: wolf reads local videos only (download them first)"
                );
                self.problem(line, "remote_path", message);
                return;
            }
        };
        let key = key.filter(|k| !k.trim().is_empty()).unwrap_or(path);
        if let Some(first) = self.seen.get(&key) {
            let message = format!("key `{key}` was already given at {first}; this row is left out");
            self.problem(line, "duplicate_key", message);
            return;
        }
        let tags = match row.remove(&self.columns.tags) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(joined)) => {
                joined.split('|').map(str::to_owned).collect()
            }
            Some(serde_json::Value::Array(list)) if list.iter().all(|t| t.is_string()) => list
                .into_iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
            Some(other) => {
                let message = format!(
                    "column `{}` holds {other}, not a list of tags",
                    self.columns.tags
                );
                self.problem(line, "invalid_value", message);
                return;
            }
        };
        self.seen.insert(key.clone(), self.location(line));
        let location = self.location(line);
        let reference = caption.and_then(|c| non_empty_caption(c, &location, &mut self.problems));
        let tags = tags
            .into_iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        for column in columns {
            row.remove(&column);
        }
        self.entries.push(Entry {
            key,
            path: self.base.join(local),
            reference,
            tags,
            metadata: (!row.is_empty()).then(|| serde_json::Value::Object(row).to_string()),
        });
    }

    fn finish(self, kind: SourceKind) -> Source {
        Source {
            kind,
            root: self.base,
            entries: self.entries,
            problems: self.problems,
        }
    }
}

fn read_jsonl(manifest: &Path, columns: &Columns) -> Result<Source, SourceError> {
    let text = std::fs::read(manifest).map_err(|source| SourceError::Io {
        path: manifest.to_owned(),
        source,
    })?;
    // Every row first: the columns present are those of any row.
    let mut rows = Vec::new();
    let mut present: Vec<String> = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let row = match std::str::from_utf8(line) {
            Err(_) => Err("the line is not UTF-8".to_owned()),
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => match serde_json::from_str::<serde_json::Value>(line) {
                Ok(serde_json::Value::Object(row)) => Ok(row),
                Ok(other) => Err(format!("not a manifest row (a JSON object): {other}")),
                Err(e) => Err(format!("not a manifest row: {e}")),
            },
        };
        if let Ok(row) = &row {
            for column in row.keys() {
                if !present.contains(column) {
                    present.push(column.clone());
                }
            }
        }
        rows.push((i + 1, row));
    }
    let mut reader = ManifestReader::new(manifest, columns, &present)?;
    for (line, row) in rows {
        match row {
            Ok(row) => reader.add(line, row),
            Err(message) => reader.problem(line, "invalid_line", message),
        }
    }
    Ok(reader.finish(SourceKind::Jsonl))
}

fn read_csv(manifest: &Path, columns: &Columns) -> Result<Source, SourceError> {
    let invalid = |source| SourceError::Csv {
        path: manifest.to_owned(),
        source,
    };
    let mut csv = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(manifest)
        .map_err(invalid)?;
    let headers: Vec<String> = csv
        .headers()
        .map_err(invalid)?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut reader = ManifestReader::new(manifest, columns, &headers)?.needing_path(&headers)?;
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
        let row: Row = headers
            .iter()
            .zip(record.iter())
            .filter(|(_, cell)| !cell.is_empty())
            .map(|(h, cell)| (h.clone(), serde_json::Value::String(cell.to_owned())))
            .collect();
        reader.add(line, row);
    }
    Ok(reader.finish(SourceKind::Csv))
}

/// A Parquet manifest (video2dataset's metadata, a Hugging Face export): its rows read
/// one by one with the columns of its schema; a row that cannot be read ends the file
/// there, with a problem naming it, and the rows before stay.
fn read_parquet(manifest: &Path, columns: &Columns) -> Result<Source, SourceError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let invalid = |e: parquet::errors::ParquetError| SourceError::Parquet {
        path: manifest.to_owned(),
        message: e.to_string(),
    };
    let file = std::fs::File::open(manifest).map_err(|source| SourceError::Io {
        path: manifest.to_owned(),
        source,
    })?;
    let parquet = SerializedFileReader::new(file).map_err(invalid)?;
    let present: Vec<String> = parquet
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|field| field.name().to_owned())
        .collect();
    let mut reader = ManifestReader::new(manifest, columns, &present)?.needing_path(&present)?;
    for (i, row) in parquet.get_row_iter(None).map_err(invalid)?.enumerate() {
        match row {
            Ok(row) => {
                let row: Row = row
                    .into_columns()
                    .into_iter()
                    .map(|(column, field)| (column, field.to_json_value()))
                    .collect();
                reader.add(i + 1, row);
            }
            // Not even the first row: a codec this build lacks (zstd), say. Refused whole.
            Err(e) if i == 0 => return Err(invalid(e)),
            Err(e) => {
                let message = format!("the row cannot be read: {e}");
                reader.problem(i + 1, "invalid_line", message);
                break;
            }
        }
    }
    Ok(reader.finish(SourceKind::Parquet))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry's metadata, parsed.
    fn metadata(entry: &Entry) -> Option<serde_json::Value> {
        entry
            .metadata
            .as_deref()
            .map(|m| serde_json::from_str(m).unwrap())
    }

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
        let source =
            read_source(dir.path(), None, &Columns::default(), &std::env::temp_dir()).unwrap();
        let keys: Vec<_> = source.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a.mkv", "b/clip.MP4"]);
        assert_eq!(source.kind, SourceKind::Folder);
    }

    #[test]
    fn a_folder_without_videos_says_what_it_holds() {
        let message = |dir: &Path| {
            let source =
                read_source(dir, None, &Columns::default(), &std::env::temp_dir()).unwrap();
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
                "no videos found in `{shown}` (it is empty; videos are found by their extension: mp4, m4v, mov, mkv, webm, avi, mpg, mpeg, ts, wmv, flv, 3gp, and shards by theirs: .tar, .tar.gz, .tgz)"
            )
        );
        for name in [
            "a.txt",
            "b.txt",
            "c.json",
            "README",
            "d.png",
            "e.gz",
            ".hidden.mp4",
        ] {
            write(dir.path(), name, "x");
        }
        let text = message(dir.path());
        assert!(
            text.contains("(found 2 .txt files, 1 .gz file, 1 .json file and 2 other files;"),
            "{text}"
        );
        // A folder of shards is read as shards (these are not tars: problems of each).
        for name in ["00000.tar", "b/00001.TAR"] {
            write(dir.path(), name, "x");
        }
        let cache = tempfile::tempdir().unwrap();
        let source = read_source(dir.path(), None, &Columns::default(), cache.path()).unwrap();
        assert_eq!(source.kind, SourceKind::Shards);
        let kinds: Vec<_> = source.problems.iter().map(|p| p.kind.as_str()).collect();
        assert_eq!(kinds, ["truncated_shard", "truncated_shard"]);
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
        let source =
            read_source(&manifest, None, &Columns::default(), &std::env::temp_dir()).unwrap();
        let keys: Vec<_> = source.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a.mp4", "c.mp4", "d.mp4"]);
        assert_eq!(source.entries[0].path, dir.path().join("a.mp4"));
        assert_eq!(source.entries[0].reference.as_deref(), Some("A cat."));
        assert_eq!(source.entries[0].tags, ["pets"]);
        assert_eq!(metadata(&source.entries[0]), None);
        // A column no role names is kept; one that looks like a misspelt role is said.
        assert_eq!(
            metadata(&source.entries[1]),
            Some(serde_json::json!({"captoin": "typo"}))
        );
        assert_eq!(source.entries[2].reference, None);
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
        let whole = manifest.display().to_string();
        assert_eq!(
            problems,
            [
                (whole, "misspelt_column"),
                ("2".to_owned(), "missing_path"),
                ("4".to_owned(), "duplicate_key"),
                ("6".to_owned(), "invalid_line"),
                ("7".to_owned(), "empty_caption"),
            ]
        );
        assert!(
            source.problems[0]
                .message
                .contains("--caption-column captoin"),
            "{:?}",
            source.problems[0]
        );
    }

    /// video2dataset's and Hugging Face's rows: `video` or `url` as the path, a `file://`
    /// URL, an integer key, other fields kept; a mapping names other columns, and a name
    /// it gives that the manifest lacks refuses the manifest, naming it.
    #[test]
    fn manifests_of_other_tools_map_their_columns_and_keep_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("v/b.mp4");
        let manifest = write(
            dir.path(),
            "hf.jsonl",
            &format!(
                concat!(
                    "{{\"video\": \"v/a.mp4\", \"key\": 7, \"caption\": \"A cat.\", \"width\": 640, \"status\": \"success\"}}\n",
                    "{{\"url\": \"file://{}\", \"caption\": \"A dog.\"}}\n",
                    "{{\"url\": \"https://example.invalid/c.mp4\"}}\n",
                ),
                clip.display()
            ),
        );
        let source =
            read_source(&manifest, None, &Columns::default(), &std::env::temp_dir()).unwrap();
        let keys: Vec<_> = source.entries.iter().map(|e| e.key.as_str()).collect();
        let url = format!("file://{}", clip.display());
        assert_eq!(keys, ["7", url.as_str()]);
        assert_eq!(source.entries[0].path, dir.path().join("v/a.mp4"));
        assert_eq!(source.entries[1].path, clip);
        assert_eq!(
            metadata(&source.entries[0]),
            Some(serde_json::json!({"width": 640, "status": "success"}))
        );
        assert_eq!(source.problems.len(), 1, "{:?}", source.problems);
        assert_eq!(source.problems[0].kind, "remote_path");

        // Cosmos-Curate's and Data-Juicer's names, mapped.
        let mapped = write(
            dir.path(),
            "dj.jsonl",
            "{\"videos\": \"v/a.mp4\", \"text\": \"A cat.\", \"labels\": [\"pets\"]}\n",
        );
        let columns = Columns {
            path: Some("videos".into()),
            caption: Some("text".into()),
            tags: Some("labels".into()),
            ..Columns::default()
        };
        let source = read_source(&mapped, None, &columns, &std::env::temp_dir()).unwrap();
        assert_eq!(source.entries[0].reference.as_deref(), Some("A cat."));
        assert_eq!(source.entries[0].tags, ["pets"]);
        assert_eq!(metadata(&source.entries[0]), None);
        assert!(source.problems.is_empty(), "{:?}", source.problems);
        let wrong = Columns {
            caption: Some("caption_text".into()),
            ..columns
        };
        let err = read_source(&mapped, None, &wrong, &std::env::temp_dir()).unwrap_err();
        let said = err.to_string();
        assert!(
            said.contains("`caption_text`") && said.contains("--caption-column"),
            "{said}"
        );
    }

    #[test]
    fn csv_manifests_read_tags_keep_other_columns_and_need_a_path_column() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = write(
            dir.path(),
            "m.csv",
            "video,caption,tags,source\na.mp4,\"A dog, running.\",pets|outdoor,web\n,missing,,\n",
        );
        let source =
            read_source(&manifest, None, &Columns::default(), &std::env::temp_dir()).unwrap();
        assert_eq!(source.entries.len(), 1);
        assert_eq!(
            source.entries[0].reference.as_deref(),
            Some("A dog, running.")
        );
        assert_eq!(source.entries[0].tags, ["pets", "outdoor"]);
        assert_eq!(
            metadata(&source.entries[0]),
            Some(serde_json::json!({"source": "web"}))
        );
        assert_eq!(source.problems[0].kind, "missing_path");
        assert!(
            source.problems[0].location.ends_with(":3"),
            "{:?}",
            source.problems[0]
        );

        let bad = write(dir.path(), "bad.csv", "file,caption\na.mp4,x\n");
        let err = read_source(&bad, None, &Columns::default(), &std::env::temp_dir()).unwrap_err();
        assert!(err.to_string().contains("no path column"), "{err}");
        assert!(err.to_string().contains("file, caption"), "{err}");
        let columns = Columns {
            path: Some("file".into()),
            ..Columns::default()
        };
        let source = read_source(&bad, None, &columns, &std::env::temp_dir()).unwrap();
        assert_eq!(source.entries[0].path, dir.path().join("a.mp4"));
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
        let source = read_source(
            &dir.path().join("v"),
            Some(&plain),
            &Columns::default(),
            &std::env::temp_dir(),
        )
        .unwrap();
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
        let source = read_source(
            &dir.path().join("v"),
            Some(&detailed),
            &Columns::default(),
            &std::env::temp_dir(),
        )
        .unwrap();
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
            read_source(
                &dir.path().join("v"),
                Some(&broken),
                &Columns::default(),
                &std::env::temp_dir()
            )
            .unwrap_err()
            .kind(),
            "annotations_invalid"
        );
    }

    #[test]
    fn a_missing_source_is_an_error() {
        let err = read_source(
            Path::new("/definitely/not/here"),
            None,
            &Columns::default(),
            &std::env::temp_dir(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), "source_not_found");
    }
}
