//! WebDataset shards as a dataset: `wolf dataset add NAME shards/`, one shard, or a
//! brace pattern as webdataset writes them (`shards/{000000..000099}.tar`).
//!
//! Each sample's video member is the video, its `.txt` (or the `caption`, `text` or
//! `output` of its `.json`) the reference, the `.json`'s other fields its metadata and
//! its WebDataset key its key. Shards are read by the recaption loop's reader
//! ([`crate::recaption::input`]), one sample at a time, so its problem kinds
//! (`truncated_shard`, `no_media`, …) are the dataset's too: a truncated shard keeps
//! the samples before the break, and a sample without a video is a problem with its
//! key. A key met again (in the same shard or a later one) keeps the first sample and
//! is a `duplicate_key` problem.
//!
//! - An uncompressed shard's videos are read in place: a video's path names its
//!   member's byte range ([`wolf_pipeline::media::Member`]), and nothing is copied.
//! - A gzipped shard (`.tar.gz`, `.tgz`) is extracted once into a content-addressed
//!   cache, `CACHE/extracted/<SHA-256 of the shard>/<key>.<extension>`, written under a
//!   temporary name and renamed whole.
//! - What a shard holds is remembered in `CACHE/index/<SHA-256 of its path>.json` with
//!   its size and modification time, so that adding an unchanged shard again reads
//!   nothing of it.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use wolf_pipeline::hash;
use wolf_pipeline::media;
use wolf_pipeline::store::IntakeProblem;

use crate::files::{self, SourceError};
use crate::recaption::input::{
    InputKind, InputSettings, Media, Problem, Video, open_input, webdataset,
};
use crate::sources::{Entry, Source, SourceKind};

/// Most shards one brace pattern may name.
const MAX_EXPANDED: usize = 1_000_000;

/// Bumped when [`Scan`]'s layout changes, so that older index files are read again.
const INDEX_VERSION: u32 = 2;

/// The shards a source names (a brace pattern, a shard file or a folder of shards)
/// and their root, the folder that exports name their videos from (canonical, as the
/// shards' paths are); `None` when it names none of these.
pub(crate) fn named_shards(source: &Path) -> Result<Option<(PathBuf, Vec<PathBuf>)>, SourceError> {
    let root = |folder: &Path| std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_owned());
    let parent = |path: &Path| {
        root(
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
    };
    let text = source.to_string_lossy();
    if text.contains('{') && !source.exists() {
        let expanded = expand_braces(&text).map_err(|message| SourceError::BadPattern {
            pattern: text.to_string(),
            message,
        })?;
        if expanded.len() == 1 {
            return Ok(None);
        }
        let tried = expanded.len();
        let found: Vec<PathBuf> = expanded.iter().map(PathBuf::from).collect();
        if !found.iter().any(|p| p.exists()) {
            return Err(SourceError::NoMatch {
                pattern: text.to_string(),
                tried,
                first: found[0].clone(),
            });
        }
        // The folder is the pattern's part up to the last `/` before its first brace.
        let fixed = &text[..text.find('{').unwrap_or(0)];
        let folder = match fixed.rfind('/') {
            Some(0) => root(Path::new("/")),
            Some(slash) => root(Path::new(&fixed[..slash])),
            None => root(Path::new(".")),
        };
        return Ok(Some((folder, found)));
    }
    if source.is_dir() {
        let (shards, _) = webdataset::shards_in(source);
        let shards: Vec<PathBuf> = shards.into_iter().map(|(_, p)| p).collect();
        return Ok((!shards.is_empty()).then(|| (root(source), shards)));
    }
    Ok(files::shard_stem(source).map(|_| (parent(source), vec![source.to_owned()])))
}

/// Reads shards into a source, using and filling the index under `cache`.
pub(crate) fn read_shards(root: PathBuf, shards: &[PathBuf], cache: &Path) -> Source {
    let mut source = Source {
        kind: SourceKind::Shards,
        root,
        entries: Vec::new(),
        problems: Vec::new(),
    };
    let mut keys = HashSet::new();
    for shard in shards {
        let scan = match std::fs::canonicalize(shard) {
            Ok(path) => indexed(&path, cache).unwrap_or_else(|| scan(&path, cache)),
            Err(e) => Scan::failed(shard, "missing_shard", format!("cannot open: {e}")),
        };
        source.problems.extend(scan.problems);
        for sample in scan.samples {
            if keys.insert(sample.key.clone()) {
                source.entries.push(Entry {
                    key: sample.key,
                    path: sample.path,
                    reference: sample.reference,
                    tags: Vec::new(),
                    metadata: sample.metadata,
                });
            } else {
                source.problems.push(IntakeProblem {
                    location: format!("{}:{}", shard.display(), sample.key),
                    kind: "duplicate_key".into(),
                    message: format!(
                        "key `{}` is a sample of an earlier shard or of this one already; the first is kept",
                        sample.key
                    ),
                });
            }
        }
    }
    source
}

/// What one shard holds, as remembered in the index.
#[derive(Debug, Serialize, Deserialize)]
struct Scan {
    version: u32,
    size: u64,
    mtime_ns: i64,
    samples: Vec<Sample>,
    problems: Vec<IntakeProblem>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Sample {
    key: String,
    path: PathBuf,
    reference: Option<String>,
    /// The `.json` member's other fields, as JSON text.
    metadata: Option<String>,
}

impl Scan {
    fn failed(shard: &Path, kind: &str, message: String) -> Self {
        Self {
            version: INDEX_VERSION,
            size: 0,
            mtime_ns: 0,
            samples: Vec::new(),
            problems: vec![IntakeProblem {
                location: shard.display().to_string(),
                kind: kind.into(),
                message,
            }],
        }
    }
}

/// The index file of a shard (by its canonical path).
fn index_file(shard: &Path, cache: &Path) -> PathBuf {
    let name = hash::sha256_bytes(shard.as_os_str().as_encoded_bytes());
    cache.join("index").join(format!("{name}.json"))
}

/// The remembered scan of an unchanged shard whose extracted videos are still there.
fn indexed(shard: &Path, cache: &Path) -> Option<Scan> {
    let (size, mtime_ns) = media::stat(shard)?;
    let text = std::fs::read(index_file(shard, cache)).ok()?;
    let scan: Scan = serde_json::from_slice(&text).ok()?;
    let same = scan.version == INDEX_VERSION && scan.size == size && scan.mtime_ns == mtime_ns;
    let present = scan
        .samples
        .iter()
        .all(|s| media::Member::parse(&s.path).is_some() || s.path.is_file());
    (same && present).then_some(scan)
}

/// Reads a shard (canonical path) and remembers what it holds.
fn scan(shard: &Path, cache: &Path) -> Scan {
    let Some((size, mtime_ns)) = media::stat(shard) else {
        return Scan::failed(shard, "unreadable_shard", "not a regular file".into());
    };
    let mut scan = Scan {
        version: INDEX_VERSION,
        size,
        mtime_ns,
        samples: Vec::new(),
        problems: Vec::new(),
    };
    let mut extract = None;
    if files::is_compressed_shard(shard) {
        match Extraction::begin(shard, cache) {
            Ok(extraction) => extract = Some(extraction),
            Err(e) => {
                let message = format!("cannot extract into `{}`: {e}", cache.display());
                return Scan::failed(shard, "unreadable_shard", message);
            }
        }
    }
    let settings = InputSettings::default()
        .with_kind(InputKind::WebDataset)
        .with_check_images(false)
        .with_in_place(true);
    let items = match open_input(shard, settings) {
        Ok(items) => items,
        Err(e) => return Scan::failed(shard, e.kind(), e.to_string()),
    };
    let problem = |p: Problem| IntakeProblem {
        location: match &p.key {
            Some(key) => format!("{}:{key}", shard.display()),
            None => shard.display().to_string(),
        },
        kind: p.kind.into(),
        message: p.message,
    };
    for item in items {
        let item = match item {
            Ok(item) => item,
            Err(p) => {
                scan.problems.push(problem(p));
                continue;
            }
        };
        scan.problems.extend(item.notes.into_iter().map(problem));
        let path = match item.media {
            Media::Video(Video::File(path)) => path,
            Media::Video(Video::Bytes { bytes, extension }) => {
                let Some(extraction) = &mut extract else {
                    unreachable!("only a gzipped shard's videos are read; this is a bug")
                };
                match extraction.write(&item.key, &extension, &bytes) {
                    Ok(path) => path,
                    Err((kind, message)) => {
                        let location = format!("{}:{}", shard.display(), item.key);
                        scan.problems.push(IntakeProblem {
                            location,
                            kind: kind.into(),
                            message,
                        });
                        continue;
                    }
                }
            }
            Media::Image(_) => {
                let location = format!("{}:{}", shard.display(), item.key);
                scan.problems.push(IntakeProblem {
                    location,
                    kind: "not_a_video".into(),
                    message: format!("sample `{}` holds an image, not a video", item.key),
                });
                continue;
            }
        };
        scan.samples.push(Sample {
            key: item.key,
            path,
            reference: item.original,
            metadata: item.metadata.map(|m| m.to_string()),
        });
    }
    // A shard that could not be read to its end for a reason that may pass (an I/O
    // error), or whose videos could not all be written, is neither kept in the cache
    // nor remembered: the next intake reads it again. (A truncated or corrupt shard is
    // what it is, and is remembered so.)
    let transient = scan
        .problems
        .iter()
        .any(|p| p.kind == "unreadable_shard" || p.kind == "unextractable_member");
    if let Some(extraction) = extract {
        let kept = if transient {
            Ok(())
        } else {
            extraction.finish()
        };
        if let Err(e) = kept {
            let message = format!("cannot keep the extracted videos: {e}");
            return Scan::failed(shard, "unreadable_shard", message);
        }
    }
    if !transient {
        remember(shard, cache, &scan);
    }
    scan
}

/// Writes a shard's index file, under a temporary name first. A failure only costs
/// reading the shard again next time.
fn remember(shard: &Path, cache: &Path, scan: &Scan) {
    let file = index_file(shard, cache);
    let written = (|| -> std::io::Result<()> {
        let folder = file.parent().expect("the index file is in a folder");
        std::fs::create_dir_all(folder)?;
        let mut temporary = tempfile::NamedTempFile::new_in(folder)?;
        temporary.write_all(&serde_json::to_vec(scan)?)?;
        temporary.persist(&file)?;
        Ok(())
    })();
    if let Err(e) = written {
        tracing::warn!("cannot remember shard `{}`: {e}", shard.display());
    }
}

/// A gzipped shard's videos being extracted into the cache. Dropped without
/// [`Extraction::finish`], it removes what it wrote.
struct Extraction {
    /// `CACHE/extracted/<SHA-256>`, where the videos end up.
    target: PathBuf,
    /// The temporary folder they are written to, or `None` when `target` exists
    /// already (the same shard under another path, or read before).
    partial: Option<tempfile::TempDir>,
    /// The files named so far: a key met twice in the shard keeps its first video.
    written: HashSet<PathBuf>,
}

impl Extraction {
    fn begin(shard: &Path, cache: &Path) -> std::io::Result<Self> {
        let (sha256, _) = hash::sha256_file(shard)?;
        let extracted = cache.join("extracted");
        std::fs::create_dir_all(&extracted)?;
        let target = extracted.join(sha256);
        let partial = if target.is_dir() {
            None
        } else {
            Some(
                tempfile::Builder::new()
                    .prefix(".partial-")
                    .tempdir_in(&extracted)?,
            )
        };
        Ok(Self {
            target,
            partial,
            written: HashSet::new(),
        })
    }

    /// Writes one video; returns where it will be once the extraction is finished, or
    /// the problem's kind and message.
    fn write(
        &mut self,
        key: &str,
        extension: &str,
        bytes: &[u8],
    ) -> Result<PathBuf, (&'static str, String)> {
        let relative = PathBuf::from(format!("{key}.{extension}"));
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            let message = format!("key `{key}` would be written outside the cache; it is left out");
            return Err(("unsafe_key", message));
        }
        if !self.written.insert(relative.clone()) {
            let message = format!("key `{key}` is in the shard twice; its first video is kept");
            return Err(("duplicate_key", message));
        }
        match &self.partial {
            Some(partial) => {
                let path = partial.path().join(&relative);
                let written = path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| {
                        let mut file = std::fs::File::create(&path)?;
                        file.write_all(bytes)?;
                        file.sync_all()
                    });
                written.map_err(|e| {
                    let message = format!("cannot write `{}`: {e}", path.display());
                    ("unextractable_member", message)
                })?;
            }
            None if !self.target.join(&relative).is_file() => {
                let message = format!(
                    "`{}` is missing from the cache; remove `{}` to extract the shard again",
                    relative.display(),
                    self.target.display()
                );
                return Err(("unextractable_member", message));
            }
            None => {}
        }
        Ok(self.target.join(relative))
    }

    /// Moves the written videos into place.
    fn finish(self) -> std::io::Result<()> {
        let Some(partial) = self.partial else {
            return Ok(());
        };
        let partial = partial.keep();
        match std::fs::rename(&partial, &self.target) {
            Ok(()) => Ok(()),
            // Another process extracted the same shard first.
            Err(_) if self.target.is_dir() => std::fs::remove_dir_all(&partial),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&partial);
                Err(e)
            }
        }
    }
}

/// Expands brace groups as webdataset's `braceexpand` does: numeric ranges
/// (`{000..099}`, zero-padded to the first bound's width) and lists (`{a,b}`), any
/// number of groups. A pattern without braces is itself.
pub fn expand_braces(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('{') else {
        return Ok(vec![pattern.to_owned()]);
    };
    let close = pattern[open..]
        .find('}')
        .map(|i| open + i)
        .ok_or("a `{` is not closed")?;
    let (head, body, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let choices: Vec<String> = match body.split_once("..") {
        Some((from, to)) => {
            let number = |s: &str| {
                s.parse::<u64>()
                    .map_err(|_| format!("`{{{body}}}` is not a range of whole numbers"))
            };
            let (first, last) = (number(from)?, number(to)?);
            if last < first {
                return Err(format!("`{{{body}}}` counts down"));
            }
            if last - first >= MAX_EXPANDED as u64 {
                return Err(format!(
                    "`{{{body}}}` names more than {MAX_EXPANDED} shards"
                ));
            }
            let width = from.len();
            (first..=last).map(|n| format!("{n:0width$}")).collect()
        }
        None => body.split(',').map(str::to_owned).collect(),
    };
    let rest = expand_braces(tail)?;
    if choices.len().saturating_mul(rest.len()) > MAX_EXPANDED {
        return Err(format!("the pattern names more than {MAX_EXPANDED} shards"));
    }
    Ok(choices
        .iter()
        .flat_map(|choice| rest.iter().map(move |r| format!("{head}{choice}{r}")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gzipped shard of `(member, bytes)`.
    fn gzipped(path: &Path, members: &[(&str, &[u8])]) {
        let tar = crate::tar::build::files(members);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        std::fs::write(path, gz.finish().unwrap()).unwrap();
    }

    #[test]
    fn a_key_twice_in_a_gzipped_shard_keeps_its_first_video() {
        let dir = tempfile::tempdir().unwrap();
        let shard = dir.path().join("s.tgz");
        gzipped(
            &shard,
            &[
                ("k.mp4", b"first"),
                ("k.txt", b"The first."),
                ("j.mp4", b"j"),
                ("k.mp4", b"second"),
            ],
        );
        let cache = dir.path().join("cache");
        let source = read_shards(dir.path().to_owned(), std::slice::from_ref(&shard), &cache);
        let keys: Vec<&str> = source.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["k", "j"]);
        assert_eq!(std::fs::read(&source.entries[0].path).unwrap(), b"first");
        assert_eq!(source.entries[0].reference.as_deref(), Some("The first."));
        let kinds: Vec<&str> = source.problems.iter().map(|p| p.kind.as_str()).collect();
        assert_eq!(kinds, ["duplicate_key"]);
        // Read again from the index: the same, and nothing partial left in the cache.
        let again = read_shards(dir.path().to_owned(), &[shard], &cache);
        assert_eq!(again.entries, source.entries);
        let folders = std::fs::read_dir(cache.join("extracted")).unwrap().count();
        assert_eq!(folders, 1);
    }

    #[test]
    fn brace_patterns_expand_like_webdatasets() {
        assert_eq!(
            expand_braces("s/{08..11}.tar").unwrap(),
            ["s/08.tar", "s/09.tar", "s/10.tar", "s/11.tar"]
        );
        assert_eq!(
            expand_braces("{a,b}/{0..1}.tgz").unwrap(),
            ["a/0.tgz", "a/1.tgz", "b/0.tgz", "b/1.tgz"]
        );
        assert_eq!(expand_braces("plain.tar").unwrap(), ["plain.tar"]);
        for bad in ["{1..x}.tar", "{3..1}.tar", "{0..9.tar", "{0..99999999}.tar"] {
            assert!(expand_braces(bad).is_err(), "{bad}");
        }
    }
}
