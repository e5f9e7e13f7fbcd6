//! Recaptions written back into WebDataset shards (`wolf recaption round
//! --write-shards OUT`), so that a training loader reads them with the samples, or
//! beside a folder input's files ([`write_sidecars`], `--write-sidecars`).
//!
//! Each input shard is copied to `OUT/<shard>.tar` (`.tar.gz` for a gzipped one),
//! sample by sample and member by member with the same names and bytes, except that a
//! sample the round captioned gains:
//! - `KEY.recaption.txt`, the captioner's new caption (replacing one an earlier round
//!   wrote);
//! - the merged caption under `field` in its `.json` (a `.json` is added when the
//!   sample has none).
//!
//! A shard is written under a temporary name and renamed whole. A shard that ends
//! early (truncated or corrupt) keeps the samples read before the break, like the
//! readers, and says so in [`WrittenShard::problem`].

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::input::webdataset::{shards_in, split_key, tar_stream};
use super::output::{OutputError, Record, caption_file_path, read_round};
use crate::files;
use crate::tar::Entry;

/// A member read: its path, its extension after the key, its bytes.
type Member = (String, String, Vec<u8>);

/// What the round wrote for one sample: the captioner's caption and the merged one.
struct Captions {
    recaption: Option<String>,
    merged: String,
}

/// One shard written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenShard {
    pub path: PathBuf,
    pub samples: usize,
    /// Samples that gained the round's captions.
    pub captioned: usize,
    /// Why the input shard ended early, if it did.
    pub problem: Option<String>,
}

/// Writes the shards of `input` (a shard or a folder of them) with the captions of the
/// round whose log is `log` into `out`.
pub fn write_shards(
    input: &Path,
    log: &Path,
    out: &Path,
    field: &str,
) -> Result<Vec<WrittenShard>, OutputError> {
    let mut captions: HashMap<(String, String), Captions> = HashMap::new();
    for record in read_round(log)? {
        if let Record::Done(done) = record? {
            let value = Captions {
                recaption: done.recaption,
                merged: done.caption,
            };
            captions.insert((done.shard, done.key), value);
        }
    }
    let shards = if input.is_dir() {
        shards_in(input).0
    } else {
        let name = files::shard_stem(input.file_name().map_or(input, Path::new))
            .map_or_else(|| "shard".to_owned(), |s| s.display().to_string());
        vec![(name, input.to_owned())]
    };
    // The input is never written over: the output folder must be another.
    let folder = if input.is_dir() {
        input
    } else {
        input.parent().unwrap_or(Path::new("."))
    };
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(folder, out) {
        return Err(OutputError::OverInput(out.to_owned()));
    }
    let mut written = Vec::new();
    for (name, path) in shards {
        let ending = if files::is_compressed_shard(&path) {
            ".tar.gz"
        } else {
            ".tar"
        };
        let target = caption_file_path(out, &name)?.with_extension("");
        let target = PathBuf::from(format!("{}{ending}", target.display()));
        if same(&path, &target) {
            return Err(OutputError::OverInput(target));
        }
        written.push(write_one(&name, &path, &target, &captions, field)?);
    }
    Ok(written)
}

/// Writes the round's captions beside the files of the folder `input`, each file
/// written whole then renamed: `KEY.merged.txt` (the merged caption) and, when the
/// template made one, `KEY.recaption.txt` (the captioner's). `KEY` is the file's path
/// without its extension, so `a/b.jpg` gains `a/b.merged.txt`; the folder reader takes
/// neither for a caption or an item. Returns the files written.
pub fn write_sidecars(input: &Path, log: &Path) -> Result<usize, OutputError> {
    if !input.is_dir() || !shards_in(input).0.is_empty() {
        return Err(OutputError::NotAFolder(input.to_owned()));
    }
    let mut written = 0;
    for record in read_round(log)? {
        let Record::Done(done) = record? else {
            continue;
        };
        // The key's checks are a shard name's: relative, no `.` or `..` parts.
        let base = caption_file_path(input, &done.key)?.with_extension("");
        let mut sidecars = vec![("merged.txt", done.caption)];
        sidecars.extend(done.recaption.map(|r| ("recaption.txt", r)));
        for (ending, text) in sidecars {
            let path = PathBuf::from(format!("{}.{ending}", base.display()));
            super::output::write_atomic(&path, |w| w.write_all(text.as_bytes()))?;
            written += 1;
        }
    }
    Ok(written)
}

/// The line that says what [`write_shards`] wrote into `out`.
pub fn summary(written: &[WrittenShard], out: &Path) -> String {
    let captioned: usize = written.iter().map(|s| s.captioned).sum();
    format!(
        "Wrote {} shards ({captioned} samples recaptioned) to `{}`.",
        written.len(),
        out.display()
    )
}

fn write_one(
    name: &str,
    input: &Path,
    target: &Path,
    captions: &HashMap<(String, String), Captions>,
    field: &str,
) -> Result<WrittenShard, OutputError> {
    let read_error = |source: io::Error| OutputError::Read {
        path: input.to_owned(),
        source,
    };
    let write_error = |source: io::Error| OutputError::Write {
        path: target.to_owned(),
        source,
    };
    let file = File::open(input).map_err(read_error)?;
    let mtime = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let mut tar = tar_stream(input, file);
    let folder = target.parent().expect("a shard's path has a folder");
    std::fs::create_dir_all(folder).map_err(write_error)?;
    let temporary = tempfile::NamedTempFile::new_in(folder).map_err(write_error)?;
    let buffered = io::BufWriter::new(temporary.reopen().map_err(write_error)?);
    let sink = if files::is_compressed_shard(target) {
        let level = flate2::Compression::default();
        Sink::Gzip(flate2::write::GzEncoder::new(buffered, level))
    } else {
        Sink::Plain(buffered)
    };
    let mut writer = SampleWriter {
        builder: ::tar::Builder::new(sink),
        mtime,
        field,
    };
    let mut shard = WrittenShard {
        path: target.to_owned(),
        samples: 0,
        captioned: 0,
        problem: None,
    };
    let mut sample: Option<(String, Vec<Member>)> = None;
    let ended = loop {
        let header = match tar.next_header() {
            Ok(Some(header)) => header,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        if header.entry != Entry::File {
            if let Err(e) = tar.skip_member(&header) {
                break Some(e);
            }
            continue;
        }
        // A new key ends the sample before it, whole.
        let (key, extension) = split_key(&header.path).unwrap_or_default();
        if sample.as_ref().is_some_and(|(k, _)| *k != key) {
            let (key, members) = sample.take().expect("checked just above");
            let done = captions.get(&(name.to_owned(), key.clone()));
            writer.sample(&key, members, done).map_err(write_error)?;
            shard.samples += 1;
            shard.captioned += usize::from(done.is_some());
        }
        let data = match tar.read_member(&header) {
            Ok(data) => data,
            Err(e) => break Some(e),
        };
        sample
            .get_or_insert_with(|| (key, Vec::new()))
            .1
            .push((header.path, extension, data));
    };
    match ended {
        // A sample being read when the shard broke may be incomplete: left out.
        Some(error) => {
            let message = format!(
                "`{}`: {error}; the samples before it are written",
                input.display()
            );
            shard.problem = Some(message);
        }
        None => {
            if let Some((key, members)) = sample {
                let done = captions.get(&(name.to_owned(), key.clone()));
                writer.sample(&key, members, done).map_err(write_error)?;
                shard.samples += 1;
                shard.captioned += usize::from(done.is_some());
            }
        }
    }
    writer
        .builder
        .into_inner()
        .and_then(Sink::finish)
        .map_err(write_error)?;
    temporary.as_file().sync_all().map_err(write_error)?;
    temporary
        .persist(target)
        .map_err(|e| write_error(e.error))?;
    Ok(shard)
}

/// Where an output tar's bytes go: the file, through gzip for a gzipped shard.
enum Sink {
    Plain(io::BufWriter<File>),
    Gzip(flate2::write::GzEncoder<io::BufWriter<File>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(w) => w.write(buf),
            Self::Gzip(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Gzip(w) => w.flush(),
        }
    }
}

impl Sink {
    /// Ends the stream (gzip's trailer included) and flushes it to the file, every
    /// error returned (dropping would lose them).
    fn finish(self) -> io::Result<()> {
        let buffered = match self {
            Self::Plain(w) => w,
            Self::Gzip(w) => w.finish()?,
        };
        buffered.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    }
}

/// Appends samples to the output tar.
struct SampleWriter<'a> {
    builder: ::tar::Builder<Sink>,
    mtime: u64,
    field: &'a str,
}

impl SampleWriter<'_> {
    fn append(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        let mut header = ::tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_entry_type(::tar::EntryType::Regular);
        self.builder.append_data(&mut header, path, data)
    }

    /// One sample's members as they were, with the round's captions when it has them.
    fn sample(
        &mut self,
        key: &str,
        members: Vec<Member>,
        done: Option<&Captions>,
    ) -> io::Result<()> {
        let mut has_json = false;
        for (path, extension, data) in members {
            let Some(done) = done else {
                self.append(&path, &data)?;
                continue;
            };
            match extension.as_str() {
                "recaption.txt" if done.recaption.is_some() => {}
                "json" => {
                    has_json = true;
                    match serde_json::from_slice::<serde_json::Value>(&data) {
                        Ok(serde_json::Value::Object(mut object)) => {
                            object.insert(self.field.to_owned(), done.merged.clone().into());
                            self.append(&path, &serde_json::to_vec(&object)?)?;
                        }
                        // Not an object: kept as it was; the caption has no place in it.
                        _ => self.append(&path, &data)?,
                    }
                }
                _ => self.append(&path, &data)?,
            }
        }
        let Some(done) = done else {
            return Ok(());
        };
        if !has_json {
            let object = serde_json::json!({ self.field: done.merged });
            self.append(&format!("{key}.json"), &serde_json::to_vec(&object)?)?;
        }
        if let Some(recaption) = &done.recaption {
            self.append(&format!("{key}.recaption.txt"), recaption.as_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::output::{Done, RoundLog};
    use super::*;
    use crate::tar::TarStream;
    use crate::tar::build::files as shard;

    fn done(key: &str, recaption: &str, merged: &str) -> Record {
        Record::Done(Done {
            recaption: Some(recaption.into()),
            ..Done::image(key, merged)
        })
    }

    /// Every member of a tar, by name, in order.
    fn members(path: &Path) -> Vec<(String, Vec<u8>)> {
        let bytes = std::fs::read(path).unwrap();
        let mut tar = TarStream::new(&bytes[..]);
        let mut out = Vec::new();
        while let Some(header) = tar.next_header().unwrap() {
            let data = tar.read_member(&header).unwrap();
            out.push((header.path, data));
        }
        out
    }

    #[test]
    fn captioned_samples_gain_their_captions_and_the_rest_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("s.tar");
        std::fs::write(
            &input,
            shard(&[
                ("a.png", b"A"),
                ("a.txt", b"alt text"),
                ("a.json", br#"{"url": "u"}"#),
                ("b.png", b"B"),
                ("c.png", b"C"),
                ("c.recaption.txt", b"an older round's"),
            ]),
        )
        .unwrap();
        let log = dir.path().join("round.jsonl");
        let mut writer = RoundLog::open(&log).unwrap();
        writer.append(&done("a", "New a.", "Merged a.")).unwrap();
        writer.append(&done("c", "New c.", "Merged c.")).unwrap();
        drop(writer);
        let out = dir.path().join("out");
        let written = write_shards(&input, &log, &out, "merged").unwrap();
        assert_eq!(written.len(), 1);
        assert_eq!((written[0].samples, written[0].captioned), (3, 2));
        assert_eq!(written[0].path, out.join("s.tar"));
        let got = members(&out.join("s.tar"));
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "a.png",
                "a.txt",
                "a.json",
                "a.recaption.txt",
                "b.png",
                "c.png",
                "c.json",
                "c.recaption.txt"
            ]
        );
        assert_eq!(got[1].1, b"alt text");
        let json: serde_json::Value = serde_json::from_slice(&got[2].1).unwrap();
        assert_eq!(json, serde_json::json!({"url": "u", "merged": "Merged a."}));
        assert_eq!(got[3].1, b"New a.");
        assert_eq!(got[4].1, b"B");
        assert_eq!(got[7].1, b"New c.");
    }

    #[test]
    fn sidecars_go_beside_a_folders_files() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("pics");
        std::fs::create_dir_all(input.join("b")).unwrap();
        std::fs::write(input.join("a.png"), b"A").unwrap();
        std::fs::write(input.join("b/c.jpg"), b"C").unwrap();
        let log = dir.path().join("round.jsonl");
        let mut writer = RoundLog::open(&log).unwrap();
        writer.append(&done("a", "New a.", "Merged a.")).unwrap();
        writer.append(&done("b/c", "New c.", "Merged c.")).unwrap();
        drop(writer);
        assert_eq!(write_sidecars(&input, &log).unwrap(), 4);
        let read = |name: &str| std::fs::read_to_string(input.join(name)).unwrap();
        assert_eq!(read("a.merged.txt"), "Merged a.");
        assert_eq!(read("a.recaption.txt"), "New a.");
        assert_eq!(read("b/c.merged.txt"), "Merged c.");
        // A shard is no folder of files.
        let shard = dir.path().join("s.tar");
        std::fs::write(&shard, shard_bytes()).unwrap();
        let error = write_sidecars(&shard, &log).unwrap_err();
        assert_eq!(error.kind(), "not_a_folder", "{error}");
    }

    fn shard_bytes() -> Vec<u8> {
        shard(&[("a.png", b"A")])
    }

    #[test]
    fn the_input_is_never_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("s.tar");
        std::fs::write(&input, shard(&[("a.png", b"A")])).unwrap();
        let log = dir.path().join("round.jsonl");
        drop(RoundLog::open(&log).unwrap());
        for out in [dir.path().to_owned(), dir.path().join(".")] {
            let error = write_shards(&input, &log, &out, "merged").unwrap_err();
            assert_eq!(error.kind(), "output_over_input", "{error}");
        }
        assert_eq!(members(&input).len(), 1);
    }

    #[test]
    fn a_truncated_shard_keeps_the_samples_before_the_break() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = shard(&[("a.png", b"A"), ("b.png", &[7u8; 4000]), ("c.png", b"C")]);
        let input = dir.path().join("s.tar.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes[..2000]).unwrap();
        std::fs::write(&input, gz.finish().unwrap()).unwrap();
        let log = dir.path().join("round.jsonl");
        drop(RoundLog::open(&log).unwrap());
        let out = dir.path().join("out");
        let written = write_shards(&input, &log, &out, "merged").unwrap();
        assert_eq!(written[0].samples, 1);
        assert!(written[0].problem.is_some());
        let tar = flate2::read::MultiGzDecoder::new(File::open(out.join("s.tar.gz")).unwrap());
        let mut archive = ::tar::Archive::new(tar);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.png"]);
    }
}
