//! Writing a round: VILA's caption files and the round's JSONL log, both safe against
//! a crash at any point.
//!
//! Caption files (METHOD.md section 3) are one JSON object per shard at
//! `<out>/<shard>.json`, `{key: {"output": caption}}` for images and
//! `{key: {"summary": {"output": caption}}}` for videos. [`CaptionFiles`] streams each
//! open shard's entries into a temporary file in the same folder and renames it into
//! place when the shard is finished, so a caption file is either whole or absent, and
//! memory holds only the open shards' keys (to refuse a duplicate, which a JSON reader
//! would silently resolve to the last value).
//!
//! The round's log is appended to, one [`Record`] a line, each line written whole with
//! a single write to a file opened for appending: the log is the round's progress, and
//! a resumed round reads it to know what is done. A line cut short by a crash is cut
//! away when the log is opened again. Lines are not flushed to the disk one by one (a
//! killed process loses nothing the kernel has); [`RoundLog::sync`] does that at the
//! caller's checkpoints.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;

use super::input::{MediaKind, Problem};
use super::prompts::{Prompt, Specialist};

/// A round's output that cannot be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("shard name `{0}` is not a relative path inside the output folder")]
    BadShardName(String),
    /// `--write-sidecars` on an input that is not a folder of files.
    #[error("`{0}` is not a folder of images and videos: sidecars go beside a folder's files")]
    NotAFolder(PathBuf),
    /// `--write-shards` aimed at the input's own folder or shards.
    #[error("`{0}` is the input's own; write the shards into another folder")]
    OverInput(PathBuf),
    #[error("key `{key}` is already in shard `{shard}`")]
    DuplicateKey { shard: String, key: String },
    #[error("caption file `{path}` is not a JSON object: {source}")]
    CaptionFile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("caption file `{path}`: key `{key}` has no `output` or `summary.output` string")]
    CaptionFileKey { path: PathBuf, key: String },
    #[error("round log `{path}`, line {line}: {source}")]
    BadRecord {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

impl OutputError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Write { .. } => "output_write_failed",
            Self::Read { .. } => "output_unreadable",
            Self::BadShardName(_) => "bad_shard_name",
            Self::OverInput(_) => "output_over_input",
            Self::NotAFolder(_) => "not_a_folder",
            Self::DuplicateKey { .. } => "duplicate_key",
            Self::CaptionFile { .. } | Self::CaptionFileKey { .. } => "caption_file_invalid",
            Self::BadRecord { .. } => "bad_record",
        }
    }
}

fn write_error(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError::Write {
        path: path.to_owned(),
        source,
    }
}

fn read_error(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError::Read {
        path: path.to_owned(),
        source,
    }
}

/// Where a shard's caption file goes: `<out>/<shard>.json`. The shard name must be a
/// relative `/`-separated path with no `.` or `..` parts.
pub fn caption_file_path(out: &Path, shard: &str) -> Result<PathBuf, OutputError> {
    let bad = || OutputError::BadShardName(shard.to_owned());
    let parts: Vec<&str> = shard.split('/').collect();
    let valid = |part: &&str| {
        !part.is_empty() && *part != "." && *part != ".." && !part.contains(['\\', '\0'])
    };
    if !parts.iter().all(valid) {
        return Err(bad());
    }
    let (last, folders) = parts.split_last().ok_or_else(bad)?;
    let mut path = out.to_owned();
    path.extend(folders);
    path.push(format!("{last}.json"));
    Ok(path)
}

/// Writes `path` atomically: `write` fills a temporary file beside it, which is
/// flushed to the disk and renamed over `path`. The folder is created if need be.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), OutputError> {
    let mut file = temporary_beside(path)?;
    let mut writer = BufWriter::new(&mut file);
    write(&mut writer)
        .and_then(|()| writer.flush())
        .map_err(write_error(path))?;
    drop(writer);
    persist(file, path)
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), OutputError> {
    write_atomic(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value)?;
        w.write_all(b"\n")
    })
}

fn temporary_beside(path: &Path) -> Result<NamedTempFile, OutputError> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(write_error(path))?;
    // A hidden name, so that a reader walking the folder never takes it for output.
    tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(folder)
        .map_err(write_error(path))
}

/// A key's 128-bit hash, for refusing duplicates (two SipHash passes with different
/// prefixes; a false duplicate would need a 128-bit collision).
fn key_hash(key: &str) -> u128 {
    use std::hash::{Hash, Hasher};
    let half = |salt: u8| {
        let mut h = std::hash::DefaultHasher::new();
        salt.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

fn persist(file: NamedTempFile, path: &Path) -> Result<(), OutputError> {
    // Temporary files are private (0600); output is for the trainer, maybe another user.
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(write_error(path))?;
    }
    file.as_file().sync_all().map_err(write_error(path))?;
    file.persist(path).map_err(|e| write_error(path)(e.error))?;
    // The rename itself is durable once the folder is synced.
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(folder)
            .and_then(|f| f.sync_all())
            .map_err(write_error(path))?;
    }
    Ok(())
}

#[derive(Serialize)]
struct Output<'a> {
    output: &'a str,
}

#[derive(Serialize)]
struct Summary<'a> {
    summary: Output<'a>,
}

/// A shard whose caption file is being written.
struct OpenShard {
    path: PathBuf,
    writer: BufWriter<NamedTempFile>,
    /// 128-bit hashes of the shard's keys (not the keys: memory stays small whatever
    /// the shard's size).
    keys: HashSet<u128>,
}

/// VILA's caption files of a round, written shard by shard (see the module's doc).
/// Shards may be open at once, as items of several shards are in flight; dropping
/// this without finishing a shard leaves no file for it.
pub struct CaptionFiles {
    out: PathBuf,
    open: BTreeMap<String, OpenShard>,
}

impl CaptionFiles {
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            open: BTreeMap::new(),
        }
    }

    /// Adds an item's caption to its shard's file.
    pub fn add(
        &mut self,
        shard: &str,
        key: &str,
        media: MediaKind,
        caption: &str,
    ) -> Result<(), OutputError> {
        if !self.open.contains_key(shard) {
            let path = caption_file_path(&self.out, shard)?;
            let mut writer = BufWriter::new(temporary_beside(&path)?);
            writer.write_all(b"{").map_err(write_error(&path))?;
            let open = OpenShard {
                path,
                writer,
                keys: HashSet::new(),
            };
            self.open.insert(shard.to_owned(), open);
        }
        let open = self
            .open
            .get_mut(shard)
            .expect("opened just above; this is a bug");
        if open.keys.contains(&key_hash(key)) {
            return Err(OutputError::DuplicateKey {
                shard: shard.to_owned(),
                key: key.to_owned(),
            });
        }
        let separator: &[u8] = if open.keys.is_empty() {
            b"\n  "
        } else {
            b",\n  "
        };
        let output = Output { output: caption };
        let written = (|| {
            open.writer.write_all(separator)?;
            serde_json::to_writer(&mut open.writer, key)?;
            open.writer.write_all(b": ")?;
            match media {
                MediaKind::Image => serde_json::to_writer(&mut open.writer, &output)?,
                MediaKind::Video => {
                    serde_json::to_writer(&mut open.writer, &Summary { summary: output })?
                }
            }
            io::Result::Ok(())
        })();
        written.map_err(write_error(&open.path))?;
        open.keys.insert(key_hash(key));
        Ok(())
    }

    /// The shards with captions not yet written to their files.
    pub fn open_shards(&self) -> impl Iterator<Item = &str> {
        self.open.keys().map(String::as_str)
    }

    /// Writes a shard's caption file and returns its path; a shard with no captions
    /// gets an empty object, so that VILA's loader finds a file for every shard.
    pub fn finish_shard(&mut self, shard: &str) -> Result<PathBuf, OutputError> {
        let Some(open) = self.open.remove(shard) else {
            let path = caption_file_path(&self.out, shard)?;
            write_atomic(&path, |w| w.write_all(b"{}\n"))?;
            return Ok(path);
        };
        let OpenShard {
            path, mut writer, ..
        } = open;
        writer.write_all(b"\n}\n").map_err(write_error(&path))?;
        let file = writer
            .into_inner()
            .map_err(|e| write_error(&path)(e.into_error()))?;
        persist(file, &path)?;
        Ok(path)
    }

    /// Writes every open shard's caption file; returns their paths.
    pub fn finish(mut self) -> Result<Vec<PathBuf>, OutputError> {
        let shards: Vec<String> = self.open.keys().cloned().collect();
        shards
            .iter()
            .map(|shard| self.finish_shard(shard))
            .collect()
    }
}

/// Reads a caption file as VILA's loader does: a JSON object of keys, each
/// `{"output": caption}` or `{"summary": {"output": caption}}`; returns the captions
/// by key.
pub fn read_caption_file(path: &Path) -> Result<BTreeMap<String, String>, OutputError> {
    let text = std::fs::read_to_string(path).map_err(read_error(path))?;
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|source| OutputError::CaptionFile {
            path: path.to_owned(),
            source,
        })?;
    raw.into_iter()
        .map(|(key, value)| {
            let caption = value
                .get("output")
                .or_else(|| value.get("summary").and_then(|s| s.get("output")))
                .and_then(|c| c.as_str())
                .ok_or_else(|| OutputError::CaptionFileKey {
                    path: path.to_owned(),
                    key: key.clone(),
                })?;
            Ok((key, caption.to_owned()))
        })
        .collect()
}

/// One line of a round's log: an item done, or something left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Record {
    Done(Done),
    Failed(Failed),
}

impl Record {
    pub fn shard(&self) -> &str {
        match self {
            Self::Done(done) => &done.shard,
            Self::Failed(failed) => &failed.shard,
        }
    }

    /// The sample's key; `None` for a problem of a shard.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Done(done) => Some(&done.key),
            Self::Failed(failed) => failed.key.as_deref(),
        }
    }
}

/// An item recaptioned and merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Done {
    pub shard: String,
    pub key: String,
    pub media: MediaKind,
    /// The recaption prompt's version and text; `None` when the template needs no
    /// recaption.
    pub prompt_version: Option<String>,
    pub prompt: Option<String>,
    pub original: Option<String>,
    pub recaption: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<SpecialistAnswer>,
    /// The merged caption, as written to the caption file.
    pub caption: String,
    /// Problems that did not stop the item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
}

impl Done {
    /// An image of shard `s` done with `caption` and nothing else: the tests' record.
    #[cfg(test)]
    pub(crate) fn image(key: &str, caption: &str) -> Self {
        Self {
            shard: "s".into(),
            key: key.into(),
            media: MediaKind::Image,
            prompt_version: None,
            prompt: None,
            original: None,
            recaption: None,
            answers: Vec::new(),
            caption: caption.into(),
            notes: Vec::new(),
        }
    }

    /// Records the recaption prompt.
    pub fn with_prompt(mut self, prompt: Prompt) -> Self {
        self.prompt_version = Some(prompt.version.to_owned());
        self.prompt = Some(prompt.text.to_owned());
        self
    }
}

/// A specialist's answer as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialistAnswer {
    pub specialist: Specialist,
    pub prompt_version: String,
    pub answer: String,
}

/// Something left out: a sample (with its key), or part of a shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failed {
    pub shard: String,
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaKind>,
    /// The problem's kind, such as `corrupt_member` or a captioner error's kind.
    pub problem: String,
    pub message: String,
}

impl From<&Problem> for Failed {
    fn from(problem: &Problem) -> Self {
        Self {
            shard: problem.shard.clone(),
            key: problem.key.clone(),
            media: None,
            problem: problem.kind.to_owned(),
            message: problem.message.clone(),
        }
    }
}

/// A problem that did not stop its item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    pub kind: String,
    pub message: String,
}

impl From<&Problem> for Note {
    fn from(problem: &Problem) -> Self {
        Self {
            kind: problem.kind.to_owned(),
            message: problem.message.clone(),
        }
    }
}

/// A round's log, opened for appending (see the module's doc).
pub struct RoundLog {
    path: PathBuf,
    file: File,
}

impl RoundLog {
    /// Opens or creates the log, cutting away a last line left unfinished by a crash.
    pub fn open(path: &Path) -> Result<Self, OutputError> {
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(write_error(path))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(write_error(path))?;
        let len = file.metadata().map_err(read_error(path))?.len();
        let keep = end_of_last_line(&mut file, len).map_err(read_error(path))?;
        if keep < len {
            file.set_len(keep).map_err(write_error(path))?;
        }
        drop(file);
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(write_error(path))?;
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record as one line, in one write.
    pub fn append(&mut self, record: &Record) -> Result<(), OutputError> {
        let mut line = serde_json::to_vec(record).expect("a record serialises; this is a bug");
        line.push(b'\n');
        self.file.write_all(&line).map_err(write_error(&self.path))
    }

    /// Flushes the log to the disk.
    pub fn sync(&self) -> Result<(), OutputError> {
        self.file.sync_data().map_err(write_error(&self.path))
    }
}

/// The length of a file up to and including its last newline.
fn end_of_last_line(file: &mut File, len: u64) -> io::Result<u64> {
    const CHUNK: u64 = 1 << 16;
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Reads a round's log record by record; a line that is not a record is an error
/// for that line, and reading goes on.
pub fn read_round(path: &Path) -> Result<RoundRecords, OutputError> {
    let file = File::open(path).map_err(read_error(path))?;
    Ok(RoundRecords {
        path: path.to_owned(),
        reader: BufReader::new(file),
        line: 0,
        buf: String::new(),
    })
}

/// The records of a round's log, streamed.
pub struct RoundRecords {
    path: PathBuf,
    reader: BufReader<File>,
    line: usize,
    buf: String,
}

impl Iterator for RoundRecords {
    type Item = Result<Record, OutputError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            match self.reader.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(read_error(&self.path)(e))),
            }
            self.line += 1;
            if self.buf.trim().is_empty() {
                continue;
            }
            return Some(serde_json::from_str(&self.buf).map_err(|source| {
                OutputError::BadRecord {
                    path: self.path.clone(),
                    line: self.line,
                    source,
                }
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recaption::prompts;

    fn done(shard: &str, key: &str, media: MediaKind, caption: &str) -> Record {
        Record::Done(
            Done {
                shard: shard.into(),
                key: key.into(),
                media,
                prompt_version: None,
                prompt: None,
                original: Some("Short.".into()),
                recaption: Some("Long.".into()),
                answers: Vec::new(),
                caption: caption.into(),
                notes: Vec::new(),
            }
            .with_prompt(prompts::DESCRIBE_IMAGE),
        )
    }

    /// Files under a folder, relative, sorted.
    fn files(root: &Path) -> Vec<String> {
        let mut names: Vec<String> = walkdir::WalkDir::new(root)
            .into_iter()
            .map(Result::unwrap)
            .filter(|e| e.file_type().is_file())
            .map(|e| e.path().strip_prefix(root).unwrap().display().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn caption_files_are_read_back_by_key_in_both_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let mut captions = CaptionFiles::new(dir.path());
        let expected: Vec<(&str, &str, MediaKind, &str)> = vec![
            (
                "shards/00000",
                "000001",
                MediaKind::Image,
                "A \"quoted\" cat.\nTwo lines.",
            ),
            (
                "shards/00001",
                "clip-7",
                MediaKind::Video,
                "A car turns left.",
            ),
            ("shards/00000", "000002", MediaKind::Image, "Ünïcödé."),
        ];
        for (shard, key, media, caption) in &expected {
            captions.add(shard, key, *media, caption).unwrap();
        }
        assert_eq!(
            captions.open_shards().collect::<Vec<_>>(),
            ["shards/00000", "shards/00001"]
        );
        let written = captions.finish().unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(
            files(dir.path()),
            ["shards/00000.json", "shards/00001.json"]
        );
        for (shard, key, _, caption) in &expected {
            let path = caption_file_path(dir.path(), shard).unwrap();
            let file = read_caption_file(&path).unwrap();
            assert_eq!(
                file.get(*key).map(String::as_str),
                Some(*caption),
                "{shard} {key}"
            );
        }
        let video: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("shards/00001.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(video["clip-7"]["summary"]["output"], "A car turns left.");
    }

    #[test]
    fn a_shard_is_written_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let mut captions = CaptionFiles::new(dir.path());
        captions.add("a", "1", MediaKind::Image, "One.").unwrap();
        captions.add("b", "1", MediaKind::Image, "One.").unwrap();
        captions.finish_shard("a").unwrap();
        assert_eq!(files(dir.path()).len(), 2, "a.json and b's temporary file");
        assert!(dir.path().join("a.json").exists());
        assert!(!dir.path().join("b.json").exists());
        // A crash (here: a drop) leaves no partial caption file and no temporary one.
        drop(captions);
        assert_eq!(files(dir.path()), ["a.json"]);
    }

    #[test]
    fn a_shard_without_captions_gets_an_empty_object() {
        let dir = tempfile::tempdir().unwrap();
        let mut captions = CaptionFiles::new(dir.path());
        let path = captions.finish_shard("all-failed").unwrap();
        assert!(read_caption_file(&path).unwrap().is_empty());
    }

    #[test]
    fn duplicate_keys_and_escaping_shard_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut captions = CaptionFiles::new(dir.path());
        captions.add("s", "k", MediaKind::Image, "First.").unwrap();
        let err = captions
            .add("s", "k", MediaKind::Image, "Second.")
            .unwrap_err();
        assert_eq!(err.kind(), "duplicate_key");
        let path = captions.finish_shard("s").unwrap();
        assert_eq!(read_caption_file(&path).unwrap()["k"], "First.");
        for bad in ["../up", "/abs", "a//b", "", "a/./b", "a\\b"] {
            let err = captions.add(bad, "k", MediaKind::Image, "x").unwrap_err();
            assert_eq!(err.kind(), "bad_shard_name", "{bad}");
        }
        assert_eq!(
            caption_file_path(Path::new("/out"), "x/shard.v2").unwrap(),
            Path::new("/out/x/shard.v2.json")
        );
    }

    #[test]
    fn the_round_log_appends_whole_lines_and_cuts_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("round-1/round.jsonl");
        let first = done("s", "1", MediaKind::Image, "One.");
        let problem = Problem {
            shard: "s".into(),
            key: Some("2".into()),
            kind: "corrupt_member",
            message: "member `2.jpg` does not decode".into(),
        };
        let failed = Record::Failed(Failed::from(&problem));
        {
            let mut log = RoundLog::open(&path).unwrap();
            log.append(&first).unwrap();
            log.append(&failed).unwrap();
            log.sync().unwrap();
        }
        // A crash in the middle of a write.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"status": "done", "shard": "s", "ke"#)
            .unwrap();
        drop(file);

        let third = done("s", "3", MediaKind::Video, "Three.");
        let mut log = RoundLog::open(&path).unwrap();
        log.append(&third).unwrap();
        let records: Vec<Record> = read_round(&path).unwrap().map(Result::unwrap).collect();
        assert_eq!(records, [first, failed, third]);
        assert_eq!(records[1].key(), Some("2"));
        assert_eq!(records[1].shard(), "s");
    }

    #[test]
    fn records_are_flat_json_lines() {
        let record = done("s", "1", MediaKind::Image, "One.");
        let value = serde_json::to_value(&record).unwrap();
        assert_eq!(value["status"], "done");
        assert_eq!(value["media"], "image");
        assert_eq!(value["prompt_version"], "recaption-describe-image-v1");
        assert_eq!(value["prompt"], "Describe the image in details.");
        assert_eq!(value["original"], "Short.");
        assert_eq!(value["recaption"], "Long.");
        assert_eq!(value["caption"], "One.");
        let failed = serde_json::to_value(Record::Failed(Failed {
            shard: "s".into(),
            key: None,
            media: None,
            problem: "truncated_shard".into(),
            message: "cut".into(),
        }))
        .unwrap();
        assert_eq!(
            failed,
            serde_json::json!({"status": "failed", "shard": "s", "key": null, "problem": "truncated_shard", "message": "cut"})
        );
    }

    #[test]
    fn a_bad_line_in_the_log_is_an_error_for_that_line_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("round.jsonl");
        let good = serde_json::to_string(&done("s", "1", MediaKind::Image, "One.")).unwrap();
        std::fs::write(&path, format!("{good}\nnot json\n\n{good}\n")).unwrap();
        let results: Vec<_> = read_round(&path).unwrap().collect();
        assert_eq!(results.len(), 3);
        let err = results[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), "bad_record");
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(results[2].is_ok());
    }

    #[test]
    fn json_is_written_atomically_and_pretty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats/round-1.json");
        write_json_atomic(&path, &serde_json::json!({"count": 2})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\n  \"count\": 2\n}\n"
        );
        assert_eq!(files(dir.path()), ["stats/round-1.json"]);
    }
}
