//! Import: captions made elsewhere (`wolf import`, a leaderboard upload) become a leaderboard entry, a run whose
//! captions carry the entry's name as their source, so that `wolf score --run NAME`
//! and `wolf report` treat it like a run of `wolf caption`.
//!
//! Dense captions are taken too, in the shapes `wolf export` writes them: ActivityNet
//! Captions' JSON (`{video: {"duration", "timestamps", "sentences"}}`) and JSONL a
//! segment a line (`video, start, end, caption`). Their segments are checked as a
//! dataset's `dense.json` is; the video's caption is its sentences in order.
//!
//! The file is read and validated whole before anything is written: every problem
//! (an unknown video, a duplicate, an empty caption, a value of the wrong type, bytes
//! that are not UTF-8, a file over the size limit) is collected with where it is, and
//! any problem means an error listing the first of them and an untouched store. A valid
//! file is stored in one transaction.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use wolf_pipeline::hash::sha256_bytes;
use wolf_pipeline::store::{ImportCaption, NewEntry, Store, StoreError, TimedCaption};
use wolf_pipeline::wolf::WOLF_SOURCE;

/// An import that wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file or upload is invalid: the message lists its problems.
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{0}` is not a file")]
    NotAFile(PathBuf),
}

impl ImportError {
    /// A stable label of the error's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Store(e) => e.kind(),
            Self::Invalid(_) => "invalid",
            Self::Read { .. } => "read",
            Self::NotAFile(_) => "not_a_file",
        }
    }
}

/// Files larger than this are refused before they are read.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The default longest caption an import takes, in bytes (16 KiB: a dense caption of a
/// long video is a few KiB; a 50 MB "caption" cost 39 s and 1.4 GB to score).
pub const MAX_CAPTION_BYTES: usize = 16 * 1024;

/// Problems listed in the error; the rest are counted.
const SHOWN_PROBLEMS: usize = 20;

/// What an imported run's config starts with (how an import tells its own runs apart).
const IMPORTED_FROM: &str = "imported from ";

/// The keys of an entry's metadata (`wolf import --meta key=value`, the submission
/// form's optional fields), with the labels the leaderboard shows.
pub const META_KEYS: [(&str, &str); 5] = [
    ("model", "Model"),
    ("size", "Size"),
    ("submitter", "Submitted by"),
    ("link", "Code or paper"),
    ("license", "Licence"),
];

/// The longest metadata value, in characters.
pub const MAX_META_CHARS: usize = 200;

/// `key=value`, as `--meta` takes it (checked with the rest of the import).
pub fn parse_meta(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not key=value"))?;
    Ok((key.trim().to_owned(), value.trim().to_owned()))
}

/// Checks metadata: known keys, each once, short printable values, a web link.
fn check_meta(meta: &[(String, String)], problems: &mut Problems) {
    let mut seen = std::collections::HashSet::new();
    for (key, value) in meta {
        let at = format!("meta `{key}`");
        if !META_KEYS.iter().any(|(k, _)| k == key) {
            let known: Vec<&str> = META_KEYS.iter().map(|(k, _)| *k).collect();
            problems.push(at, format!("unknown key; use one of {}", known.join(", ")));
        } else if !seen.insert(key) {
            problems.push(at, "given twice".into());
        } else if value.is_empty() || value.chars().count() > MAX_META_CHARS {
            problems.push(at, format!("must have 1 to {MAX_META_CHARS} characters"));
        } else if value.chars().any(char::is_control) {
            problems.push(at, "holds a control character".into());
        } else if key == "link" && !(value.starts_with("https://") || value.starts_with("http://"))
        {
            problems.push(at, "must be an http:// or https:// address".into());
        }
    }
}

/// An import to validate and store: `wolf import`'s file or a leaderboard upload.
pub struct Import<'a> {
    pub dataset: &'a str,
    pub name: &'a str,
    /// JSONL only: the `source` whose lines are taken (default `wolf`).
    pub source: Option<&'a str>,
    /// Where the bytes came from (a path, or an upload's description).
    pub origin: &'a str,
    /// Whether an earlier imported entry of that name may be replaced (`wolf import`:
    /// yes; an upload, which anyone may send: no).
    pub replace: bool,
    /// The longest caption taken, in bytes ([`MAX_CAPTION_BYTES`] by default); a longer
    /// one is a problem of the file.
    pub max_caption_bytes: usize,
    /// The entry's metadata, checked with the file ([`META_KEYS`]).
    pub meta: &'a [(String, String)],
    /// JSONL only: the fields of the video (`key`: its key, default `video`; or `path`:
    /// its path, or a list of one path, as Data-Juicer writes) and of the caption
    /// (default `caption`). Tags are not imported.
    pub columns: &'a crate::sources::Columns,
}

/// What an import stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    pub run_id: i64,
    pub captions: usize,
    /// Videos of the dataset without a caption in the file.
    pub missing: usize,
}

impl Import<'_> {
    fn refusal(&self, problems: &Problems) -> String {
        format!(
            "cannot import `{}` as entry `{}` of dataset `{}`; nothing was written. {problems}",
            self.origin, self.name, self.dataset
        )
    }
}

/// Validates `bytes` whole and stores them as an entry in one transaction, or returns
/// an error listing the problems with nothing written.
pub async fn import(
    store: &Store,
    request: &Import<'_>,
    bytes: &[u8],
) -> Result<Imported, ImportError> {
    let dataset = store.dataset(request.dataset).await?;
    let rows = store.videos(dataset.id).await?;
    let durations: HashMap<String, f64> = rows
        .iter()
        .filter_map(|v| Some((v.key.clone(), v.duration_s?)))
        .collect();
    // A mapped path column names videos by their path: as stored, relative to the
    // dataset's folder, or the same file (canonical paths).
    let mut by_path: HashMap<String, String> = HashMap::new();
    if request.columns.path.is_some() {
        for v in &rows {
            let relative = wolf_pipeline::media::relative_to(&v.path, dataset.root.as_deref());
            let canonical = std::fs::canonicalize(&v.path).ok();
            let forms = [
                Some(v.path.clone()),
                Some(relative),
                canonical.map(|c| c.display().to_string()),
            ];
            for form in forms.into_iter().flatten() {
                by_path.entry(form).or_insert_with(|| v.key.clone());
            }
        }
    }
    let videos: HashMap<String, i64> = rows.into_iter().map(|v| (v.key, v.id)).collect();
    let mut problems = Problems::default();
    let name = request.name;
    if name.trim().is_empty() {
        problems.push("--name", "the entry's name is empty".into());
    } else if let Some(run) = store.run_origin(name).await? {
        if run.dataset_id != dataset.id {
            problems.push(
                "--name",
                format!(
                    "`{name}` already exists as a run of dataset `{}`; choose another name",
                    run.dataset
                ),
            );
        } else if !run.config.starts_with(IMPORTED_FROM) {
            problems.push(
                "--name",
                format!(
                    "`{name}` is a run of `wolf caption`, not an imported entry; importing would replace its captions: choose another name"
                ),
            );
        } else if !request.replace {
            problems.push(
                "name",
                format!("an entry named `{name}` exists already; choose another name"),
            );
        }
    }
    let settings = ParseSettings {
        dataset: request.dataset,
        videos: &videos,
        durations: &durations,
        source: request.source,
        max_caption_bytes: request.max_caption_bytes,
        key_field: request.columns.key.as_deref().unwrap_or("video"),
        caption_field: request.columns.caption.as_deref().unwrap_or("caption"),
        path_field: request.columns.path.as_deref(),
        by_path: &by_path,
    };
    let captions = parse(bytes, &settings, &mut problems);
    check_meta(request.meta, &mut problems);
    if problems.total > 0 {
        return Err(ImportError::Invalid(request.refusal(&problems)));
    }
    let config = format!(
        "{IMPORTED_FROM}{} (sha256 {})",
        request.origin,
        sha256_bytes(bytes)
    );
    let captions: Vec<ImportCaption> = captions
        .into_iter()
        .map(|read| {
            let value = read.segments.map(|segments| {
                serde_json::json!({ "caption": read.caption, "segments": segments }).to_string()
            });
            ImportCaption {
                video_id: videos[&read.video],
                result_key: sha256_bytes(value.as_deref().unwrap_or(&read.caption).as_bytes()),
                caption: read.caption,
                value,
            }
        })
        .collect();
    let run_id = store
        .import_entry(&NewEntry {
            name,
            dataset_id: dataset.id,
            config: &config,
            config_hash: &sha256_bytes(config.as_bytes()),
            captions: &captions,
            meta: request.meta,
        })
        .await?;
    Ok(Imported {
        run_id,
        captions: captions.len(),
        missing: videos.len() - captions.len(),
    })
}

/// The bytes of `request`'s file `path`: an error when it cannot be read or is over
/// [`MAX_BYTES`] (measured before reading, and again while reading in case it grows).
pub fn read_file(path: &Path, request: &Import<'_>) -> Result<Vec<u8>, ImportError> {
    let cannot_read = |source| ImportError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(cannot_read)?;
    if !meta.is_file() {
        return Err(ImportError::NotAFile(path.to_owned()));
    }
    let too_large = |size: u64| {
        let mut problems = Problems::default();
        problems.push(
            "file",
            format!(
                "{} bytes is more than the limit of {MAX_BYTES} bytes (64 MiB); split the entry or shorten its captions",
                size
            ),
        );
        ImportError::Invalid(request.refusal(&problems))
    };
    if meta.len() > MAX_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_BYTES + 1).read_to_end(&mut bytes))
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Problems found so far: the first [`SHOWN_PROBLEMS`] with where they are, and a count.
#[derive(Debug, Default)]
struct Problems {
    shown: Vec<(String, String)>,
    total: usize,
}

impl Problems {
    fn push(&mut self, location: impl Into<String>, message: String) {
        self.total += 1;
        if self.shown.len() < SHOWN_PROBLEMS {
            self.shown.push((location.into(), message));
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.total {
            1 => write!(f, "1 problem:")?,
            n if n > self.shown.len() => {
                write!(f, "{n} problems, the first {}:", self.shown.len())?
            }
            n => write!(f, "{n} problems:")?,
        }
        for (location, message) in &self.shown {
            write!(f, "\n  {location}: {message}")?;
        }
        if self.total > self.shown.len() {
            write!(f, "\n  … and {} more", self.total - self.shown.len())?;
        }
        Ok(())
    }
}

/// What a file is checked against.
struct ParseSettings<'a> {
    dataset: &'a str,
    /// The dataset's video keys and ids.
    videos: &'a HashMap<String, i64>,
    /// The dataset's videos' durations in seconds, where known (dense JSONL's bound).
    durations: &'a HashMap<String, f64>,
    /// `--source`, for JSONL.
    source: Option<&'a str>,
    max_caption_bytes: usize,
    /// JSONL's field of the video's key, of its caption, and of its path when mapped.
    key_field: &'a str,
    caption_field: &'a str,
    path_field: Option<&'a str>,
    /// A mapped path column's paths (as stored, relative, canonical) → video key.
    by_path: &'a HashMap<String, String>,
}

/// A dense JSONL line's span and sentence.
type TimedLine = ([f64; 2], String);

/// One video's caption as read, with its segments for dense captions.
struct Read {
    video: String,
    caption: String,
    segments: Option<Vec<TimedCaption>>,
}

/// The captions of a file, in file order; every problem is pushed.
fn parse(bytes: &[u8], settings: &ParseSettings<'_>, problems: &mut Problems) -> Vec<Read> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => {
            for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if let Err(e) = std::str::from_utf8(line) {
                    problems.push(
                        format!("line {}", i + 1),
                        format!("not UTF-8 (from byte {} of the line)", e.valid_up_to() + 1),
                    );
                }
            }
            return Vec::new();
        }
    };
    // A byte-order mark is not part of the JSON.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader {
        settings,
        before: problems.total,
        problems,
        captions: Vec::new(),
        seen: HashMap::new(),
        segments: BTreeMap::new(),
    };
    if text.trim_start().starts_with('{') {
        match serde_json::from_str::<Fields>(text) {
            // One line of JSONL is one JSON object too: an object with a string
            // `video` and a `caption`, when the dataset has no video called `video`, is
            // taken as that.
            Ok(fields) if fields.is_jsonl_record(settings) => {
                let line = text.lines().position(|l| !l.trim().is_empty()).unwrap_or(0) + 1;
                let mut skipped = BTreeMap::new();
                reader.jsonl_record(format!("line {line}"), fields, &mut skipped);
                reader.finish_jsonl(&skipped);
                return reader.captions;
            }
            // ActivityNet's submission file: `{"version", "results": {video: [{"sentence",
            // "timestamp": [start, end]}]}, "external_data"}`.
            Ok(fields)
                if matches!(fields.get("results"), Some(Value::Object(_)))
                    && !settings.videos.contains_key("results") =>
            {
                reader.wolf_json(activitynet_results(fields, settings.durations));
                return reader.captions;
            }
            Ok(fields) => {
                if settings.source.is_some() {
                    reader.problems.push(
                        "--source",
                        "`--source` chooses lines of JSONL, and this file is Wolf JSON".into(),
                    );
                }
                reader.wolf_json(fields);
                return reader.captions;
            }
            Err(e) => {
                // A first line that is no JSON value either: a broken Wolf JSON object,
                // best reported as one error where the parser stopped.
                let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                if serde_json::from_str::<serde::de::IgnoredAny>(first).is_err() {
                    reader.problems.push(
                        format!("line {}", e.line()),
                        format!("not valid JSON: {} (column {})", json_error(&e), e.column()),
                    );
                    return Vec::new();
                }
            }
        }
    }
    reader.jsonl(text);
    reader.captions
}

/// The `results` of an ActivityNet submission as dense entries, each video's duration
/// the dataset's (else its last segment's end); a video whose value is not a list of
/// `{"sentence", "timestamp"}` keeps its value, for its problem to be reported.
fn activitynet_results(fields: Fields, durations: &HashMap<String, f64>) -> Fields {
    #[derive(serde::Deserialize)]
    struct Segment {
        sentence: String,
        timestamp: [f64; 2],
    }
    let Some((_, Value::Object(results))) = fields.0.into_iter().find(|(n, _)| n == "results")
    else {
        return Fields(Vec::new());
    };
    let entries = results.into_iter().map(|(video, value)| {
        let Ok(segments) = serde_json::from_value::<Vec<Segment>>(value.clone()) else {
            return (video, value);
        };
        let last_end = segments.iter().map(|s| s.timestamp[1]).fold(0.0, f64::max);
        let duration = durations.get(&video).copied().unwrap_or(last_end);
        let (timestamps, sentences): (Vec<_>, Vec<_>) = segments
            .into_iter()
            .map(|s| (s.timestamp, s.sentence))
            .unzip();
        let entry = serde_json::json!({
            "duration": duration, "timestamps": timestamps, "sentences": sentences,
        });
        (video, entry)
    });
    Fields(entries.collect())
}

/// A dense entry `{"duration", "timestamps", "sentences"}` as a caption (its sentences in
/// order) and its segments; the error says what is wrong with it.
fn dense_entry(value: Value) -> Result<(String, Vec<TimedCaption>), String> {
    #[derive(serde::Deserialize)]
    struct Entry {
        duration: f64,
        timestamps: Vec<[f64; 2]>,
        sentences: Vec<String>,
    }
    let entry: Entry = serde_json::from_value(value).map_err(|e| {
        format!("not a dense entry {{\"duration\", \"timestamps\", \"sentences\"}}: {e}")
    })?;
    timed_caption(entry.duration, entry.timestamps, entry.sentences)
}

/// Timed sentences checked as a dataset's `dense.json` is, in time order, none empty: the
/// caption (the sentences in order) and the segments.
fn timed_caption(
    duration: f64,
    timestamps: Vec<[f64; 2]>,
    sentences: Vec<String>,
) -> Result<(String, Vec<TimedCaption>), String> {
    if let Some(i) = sentences.iter().position(|s| s.trim().is_empty()) {
        return Err(format!("sentence {} is empty", i + 1));
    }
    let mut segments = wolf_scorer::dense::checked_segments(duration, timestamps, sentences)?;
    if segments.is_empty() {
        return Err("no segments".into());
    }
    segments.sort_by(|a, b| a.start.total_cmp(&b.start));
    let caption: Vec<&str> = segments.iter().map(|s| s.sentence.trim()).collect();
    let caption = caption.join(" ");
    let segments = segments
        .into_iter()
        .map(|s| TimedCaption {
            start_s: s.start,
            end_s: s.end,
            caption: s.sentence,
        })
        .collect();
    Ok((caption, segments))
}

/// A serde_json error's message without its position (given separately).
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&position).unwrap_or(&text).to_owned()
}

/// A JSON value's type, for messages.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A key as a location: JSON-quoted, so that odd characters show.
fn key_location(key: &str) -> String {
    format!(
        "key {}",
        serde_json::to_string(key).expect("strings serialise; this is a bug")
    )
}

/// A JSON object's fields in file order, repeated names kept (serde_json's `Map`
/// keeps only the last of a repeated name, which would hide a duplicate video).
struct Fields(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some(field) = map.next_entry::<String, Value>()? {
                    fields.push(field);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

impl Fields {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    fn is_jsonl_record(&self, settings: &ParseSettings<'_>) -> bool {
        let video = settings.path_field.unwrap_or(settings.key_field);
        self.get(settings.caption_field).is_some()
            && matches!(self.get(video), Some(Value::String(_) | Value::Array(_)))
            && !settings.videos.contains_key(video)
    }
}

/// Whether a Wolf JSON value was a caption or `{"output": caption}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Caption,
    Output,
    /// ActivityNet Captions' `{"duration", "timestamps", "sentences"}`.
    Dense,
}

/// Checks entries one by one, keeping the valid ones.
struct Reader<'a, 'p> {
    settings: &'a ParseSettings<'a>,
    problems: &'p mut Problems,
    /// Problems found before the file was read (of `--name`).
    before: usize,
    captions: Vec<Read>,
    /// Video key → where it was first given.
    seen: HashMap<String, String>,
    /// Dense JSONL: video key → where its first segment is, and its segments.
    segments: BTreeMap<String, (String, Vec<TimedLine>)>,
}

impl Reader<'_, '_> {
    /// Checks a video and its caption and keeps them; false after a problem.
    fn take(&mut self, location: &str, video: &str, caption: &str) -> bool {
        self.take_timed(location, video, caption, None)
    }

    /// [`Self::take`] with a dense caption's segments.
    fn take_timed(
        &mut self,
        location: &str,
        video: &str,
        caption: &str,
        segments: Option<Vec<TimedCaption>>,
    ) -> bool {
        if let Some(first) = self.seen.get(video) {
            let message = if first == location {
                format!("the object gives video `{video}` more than once")
            } else {
                format!("video `{video}` was already given at {first}")
            };
            self.problems.push(location, message);
            return false;
        }
        self.seen.insert(video.to_owned(), location.to_owned());
        if !self.settings.videos.contains_key(video) {
            let message = format!(
                "video `{video}` is not in dataset `{}`",
                self.settings.dataset
            );
            self.problems.push(location, message);
            return false;
        }
        if caption.trim().is_empty() {
            self.problems
                .push(location, format!("the caption of `{video}` is empty"));
            return false;
        }
        if caption.len() > self.settings.max_caption_bytes {
            let message = format!(
                "the caption of `{video}` has {} bytes, more than the limit of {} per caption",
                caption.len(),
                self.settings.max_caption_bytes
            );
            self.problems.push(location, message);
            return false;
        }
        self.captions.push(Read {
            video: video.to_owned(),
            caption: caption.to_owned(),
            segments,
        });
        true
    }

    fn wolf_json(&mut self, fields: Fields) {
        let mut shape: Option<(Shape, String)> = None;
        for (key, value) in fields.0 {
            let location = key_location(&key);
            let (this, caption, segments) = match value {
                Value::String(caption) => (Shape::Caption, caption, None),
                Value::Object(object) if object.contains_key("timestamps") => {
                    match dense_entry(Value::Object(object)) {
                        Ok((caption, segments)) => (Shape::Dense, caption, Some(segments)),
                        Err(message) => {
                            self.problems.push(location, message);
                            continue;
                        }
                    }
                }
                Value::Object(mut object) => match object.remove("output") {
                    Some(Value::String(caption)) => (Shape::Output, caption, None),
                    Some(other) => {
                        let message = format!("`output` is {}, not a string", type_name(&other));
                        self.problems.push(location, message);
                        continue;
                    }
                    None => {
                        let message = "the object has no `output` (the caption)".into();
                        self.problems.push(location, message);
                        continue;
                    }
                },
                other => {
                    let message = format!(
                        "the value is {}, not a caption string or {{\"output\": caption}}",
                        type_name(&other)
                    );
                    self.problems.push(location, message);
                    continue;
                }
            };
            match &shape {
                None => shape = Some((this, location.clone())),
                Some((first, at)) if *first != this => {
                    let message = format!(
                        "the value is {}, but the value at {at} is {}; all values must have one shape",
                        describe(this),
                        describe(*first)
                    );
                    self.problems.push(location, message);
                    continue;
                }
                Some(_) => {}
            }
            self.take_timed(&location, &key, &caption, segments);
        }
        if self.problems.total == self.before && self.captions.is_empty() {
            self.problems
                .push("file", "the Wolf JSON object has no captions".into());
        }

        fn describe(shape: Shape) -> &'static str {
            match shape {
                Shape::Caption => "a caption string",
                Shape::Output => "an {\"output\": caption} object",
                Shape::Dense => "a dense entry {\"duration\", \"timestamps\", \"sentences\"}",
            }
        }
    }

    fn jsonl(&mut self, text: &str) {
        // Lines left out for their `source`: source → count.
        let mut skipped = BTreeMap::new();
        for (i, line) in text.split('\n').enumerate() {
            let location = format!("line {}", i + 1);
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Fields>(line) {
                Ok(fields) => self.jsonl_record(location, fields, &mut skipped),
                Err(_) => {
                    let message = match serde_json::from_str::<Value>(line) {
                        Ok(value) => format!("{}, not a JSON object", type_name(&value)),
                        Err(e) => {
                            format!("not valid JSON: {} (column {})", json_error(&e), e.column())
                        }
                    };
                    self.problems.push(location, message);
                }
            }
        }
        self.finish_jsonl(&skipped);
    }

    fn jsonl_record(
        &mut self,
        location: String,
        fields: Fields,
        skipped: &mut BTreeMap<String, usize>,
    ) {
        let mut names = std::collections::HashSet::new();
        if let Some((name, _)) = fields.0.iter().find(|(n, _)| !names.insert(n.as_str())) {
            self.problems
                .push(location, format!("the field `{name}` is given twice"));
            return;
        }
        let wanted = self.settings.source.unwrap_or(WOLF_SOURCE);
        match fields.get("source") {
            None => {}
            Some(Value::String(source)) if source == wanted => {}
            Some(Value::String(source)) => {
                *skipped.entry(source.clone()).or_insert(0) += 1;
                return;
            }
            Some(other) => {
                let message = format!("`source` is {}, not a string", type_name(other));
                self.problems.push(location, message);
                return;
            }
        }
        let string = |name: &str| match fields.get(name) {
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(other) => Err(format!("`{name}` is {}, not a string", type_name(other))),
            None => Err(format!("the line has no `{name}`")),
        };
        let number = |name: &str| match fields.get(name) {
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| format!("`{name}` is not a number")),
            Some(other) => Err(format!("`{name}` is {}, not a number", type_name(other))),
            None => Err(format!("the line has no `{name}`")),
        };
        let timed = fields.get("start").is_some() || fields.get("end").is_some();
        let video = match self.settings.path_field {
            Some(field) => self.video_at_path(field, &fields),
            None => string(self.settings.key_field).map(str::to_owned),
        };
        match (video, string(self.settings.caption_field)) {
            (Ok(video), Ok(caption)) if timed => match (number("start"), number("end")) {
                (Ok(start), Ok(end)) => {
                    let (_, segments) = self
                        .segments
                        .entry(video)
                        .or_insert_with(|| (location, Vec::new()));
                    segments.push(([start, end], caption.to_owned()));
                }
                (Err(message), _) | (_, Err(message)) => self.problems.push(location, message),
            },
            (Ok(video), Ok(caption)) => {
                self.take(&location, &video, caption);
            }
            (Err(message), _) | (_, Err(message)) => self.problems.push(location, message),
        }
    }

    /// The key of the video whose path a line gives in `field`: a path, or a list of
    /// one path (Data-Juicer's `videos`).
    fn video_at_path(&self, field: &str, fields: &Fields) -> Result<String, String> {
        let path = match fields.get(field) {
            Some(Value::String(path)) => path,
            Some(Value::Array(list)) => match list.as_slice() {
                [Value::String(path)] => path,
                _ => return Err(format!("`{field}` is not a list of one path")),
            },
            Some(other) => return Err(format!("`{field}` is {}, not a path", type_name(other))),
            None => return Err(format!("the line has no `{field}`")),
        };
        let canonical = std::fs::canonicalize(path).ok();
        let found = [
            Some(path.clone()),
            canonical.map(|c| c.display().to_string()),
        ]
        .into_iter()
        .flatten()
        .find_map(|form| self.settings.by_path.get(&form));
        match found {
            Some(key) => Ok(key.clone()),
            None => Err(format!(
                "`{path}` is the path of no video of dataset `{}`",
                self.settings.dataset
            )),
        }
    }

    /// Takes each video's dense JSONL segments, in time order, as one dense caption
    /// within the video's duration (or its last segment's end, where it is not known).
    fn take_segments(&mut self) {
        for (video, (location, mut segments)) in std::mem::take(&mut self.segments) {
            segments.sort_by(|a, b| a.0[0].total_cmp(&b.0[0]));
            let last_end = segments.iter().map(|(t, _)| t[1]).fold(0.0, f64::max);
            let duration = self
                .settings
                .durations
                .get(&video)
                .copied()
                .unwrap_or(last_end);
            let (timestamps, sentences) = segments.into_iter().unzip();
            match timed_caption(duration, timestamps, sentences) {
                Ok((caption, segments)) => {
                    self.take_timed(&location, &video, &caption, Some(segments));
                }
                Err(message) => self
                    .problems
                    .push(location, format!("video `{video}`: {message}")),
            }
        }
    }

    fn finish_jsonl(&mut self, skipped: &BTreeMap<String, usize>) {
        self.take_segments();
        if self.problems.total > self.before || !self.captions.is_empty() {
            return;
        }
        let wanted = self.settings.source.unwrap_or(WOLF_SOURCE);
        let message = if skipped.is_empty() {
            "the file has no captions".to_owned()
        } else {
            let others: Vec<String> = skipped
                .iter()
                .map(|(source, n)| format!("`{source}` ({n})"))
                .collect();
            format!(
                "no line has the source `{wanted}`; the lines' sources are {}: choose one with `--source`",
                others.join(", ")
            )
        };
        self.problems.push("file", message);
    }
}
