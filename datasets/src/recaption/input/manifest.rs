//! A JSONL manifest, read line by line: `{"key"?, "image" | "video", "caption"?}` a
//! line, paths relative to the manifest's folder. The whole manifest is one shard,
//! named by its file stem. A line that is not such a row is `bad_line` (unknown fields
//! included, so that a misspelled `caption` is not silently dropped); a line longer
//! than [`MAX_LINE_BYTES`] is passed over without being held in memory.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Context, FileError, Item, Media, Problem, SourceError, Video};

/// Longer lines are `bad_line`.
pub(super) const MAX_LINE_BYTES: u64 = 1 << 20;

/// One manifest row.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    key: Option<String>,
    image: Option<String>,
    video: Option<String>,
    caption: Option<String>,
}

pub(super) struct Manifest {
    shard: String,
    base: PathBuf,
    /// `None` once the manifest has been read to its end or failed.
    reader: Option<BufReader<File>>,
    line: usize,
    buf: Vec<u8>,
}

impl Manifest {
    pub(super) fn open(path: &Path) -> Result<Self, SourceError> {
        let file = File::open(path).map_err(|source| SourceError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            shard: super::file_stem(path),
            base: path.parent().map(Path::to_owned).unwrap_or_default(),
            reader: Some(BufReader::with_capacity(1 << 16, file)),
            line: 0,
            buf: Vec::new(),
        })
    }

    pub(super) fn next(&mut self, context: &mut Context) -> Option<Result<Item, Problem>> {
        loop {
            let reader = self.reader.as_mut()?;
            self.buf.clear();
            let read = match read_line(reader, &mut self.buf) {
                Ok(read) => read,
                Err(e) => {
                    self.reader = None;
                    let message =
                        format!("reading the manifest after line {} failed: {e}", self.line);
                    return Some(Err(self.problem(None, "unreadable_shard", message)));
                }
            };
            let Some(complete) = read else {
                self.reader = None;
                return None;
            };
            self.line += 1;
            if !complete {
                let message = format!(
                    "line {} is longer than {MAX_LINE_BYTES} bytes; it is left out",
                    self.line
                );
                return Some(Err(self.problem(None, "bad_line", message)));
            }
            if let Some(item) = self.row(context) {
                return Some(item);
            }
        }
    }

    fn problem(&self, key: Option<&str>, kind: &'static str, message: String) -> Problem {
        Problem::new(&self.shard, key, kind, message)
    }

    /// The item of the line in `buf`, or its problem; `None` for a blank line or a
    /// skipped sample.
    fn row(&self, context: &mut Context) -> Option<Result<Item, Problem>> {
        let line = self.line;
        let bad = |message: String| {
            Some(Err(self.problem(
                None,
                "bad_line",
                format!("line {line}: {message}"),
            )))
        };
        let Ok(text) = std::str::from_utf8(&self.buf) else {
            return bad("the line is not UTF-8".into());
        };
        if text.trim().is_empty() {
            return None;
        }
        let row: Row = match serde_json::from_str(text) {
            Ok(row) => row,
            Err(e) => return bad(format!("not a manifest row: {e}")),
        };
        let non_empty = |p: Option<String>| p.filter(|p| !p.trim().is_empty());
        let (path, is_image) = match (non_empty(row.image), non_empty(row.video)) {
            (Some(image), None) => (image, true),
            (None, Some(video)) => (video, false),
            _ => return bad("a row names exactly one of `image` and `video`".into()),
        };
        let key = non_empty(row.key).unwrap_or_else(|| path.clone());
        if context.skips(&self.shard, &key) {
            return None;
        }
        let file = self.base.join(&path);
        let media = if is_image {
            context.read_image(&file).map(Media::Image)
        } else {
            video_file(file).map(Media::Video)
        };
        let media = match media {
            Ok(media) => media,
            Err(e) => return Some(Err(self.problem(Some(&key), e.kind(), e.to_string()))),
        };
        let mut notes = Vec::new();
        let original =
            match context.settle_caption(&self.shard, &key, row.caption, None, &mut notes) {
                Ok(original) => original,
                Err(problem) => return Some(Err(problem)),
            };
        Some(Ok(Item {
            shard: self.shard.clone(),
            key,
            media,
            original,
            notes,
            metadata: None,
        }))
    }
}

/// Reads one line (with its newline) into `buf`, at most [`MAX_LINE_BYTES`] of it.
/// `None` at the end of the file; `Some(false)` for a longer line, whose rest is
/// passed over.
fn read_line(reader: &mut BufReader<File>, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    let read = reader
        .by_ref()
        .take(MAX_LINE_BYTES + 1)
        .read_until(b'\n', buf)?;
    if read == 0 {
        return Ok(None);
    }
    if buf.len() as u64 <= MAX_LINE_BYTES || buf.ends_with(b"\n") {
        return Ok(Some(true));
    }
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(Some(false));
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(end) => {
                reader.consume(end + 1);
                return Ok(Some(false));
            }
            None => {
                let len = available.len();
                reader.consume(len);
            }
        }
    }
}

/// A video file named by a row; it must exist and be a file.
fn video_file(path: PathBuf) -> Result<Video, FileError> {
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(Video::File(path)),
        Ok(_) => Err(FileError::NotAFile(path)),
        Err(e) => Err(FileError::of_io(&path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{all_items, names, outcome, png, write};
    use super::super::{InputSettings, open_input};
    use super::*;

    #[test]
    fn rows_name_an_image_or_a_video_relative_to_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let image = png();
        write(dir.path(), "img/a.png", &image);
        write(dir.path(), "vid/b.mp4", b"video bytes");
        let manifest = write(
            dir.path(),
            "train.jsonl",
            concat!(
                "{\"image\": \"img/a.png\", \"caption\": \" A red square. \"}\n",
                "\n",
                "{\"key\": \"clip-b\", \"video\": \"vid/b.mp4\"}\n",
            )
            .as_bytes(),
        );
        let items = all_items(&manifest);
        assert_eq!(names(&items), [("train", "img/a.png"), ("train", "clip-b")]);
        assert_eq!(items[0].media, Media::Image(image));
        assert_eq!(items[0].original.as_deref(), Some("A red square."));
        assert_eq!(
            items[1].media,
            Media::Video(Video::File(dir.path().join("vid/b.mp4")))
        );
        assert_eq!(items[1].original, None);
    }

    #[test]
    fn bad_lines_missing_files_and_corrupt_images_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.png", &png());
        write(dir.path(), "broken.png", b"not a png");
        let long = format!(
            "{{\"image\": \"a.png\", \"caption\": \"{}\"}}\n",
            "x".repeat(MAX_LINE_BYTES as usize)
        );
        let text = [
            "{\"image\": \"a.png\", \"captoin\": \"typo\"}\n",
            "not json\n",
            "{\"image\": \"a.png\", \"video\": \"a.mp4\"}\n",
            "{\"key\": \"k\"}\n",
            "{\"image\": \"gone.png\"}\n",
            "{\"image\": \"broken.png\"}\n",
            "{\"video\": \"gone.mp4\"}\n",
            &long,
            "{\"image\": \"a.png\", \"key\": \"last\"}",
        ]
        .concat();
        let manifest = write(dir.path(), "m.jsonl", text.as_bytes());
        let (ok, problems) = outcome(open_input(&manifest, InputSettings::default()).unwrap());
        assert_eq!(ok, [("m".to_owned(), "last".to_owned())]);
        assert_eq!(
            problems,
            [
                (None, "bad_line"),
                (None, "bad_line"),
                (None, "bad_line"),
                (None, "bad_line"),
                (Some("gone.png".into()), "missing_file"),
                (Some("broken.png".into()), "corrupt_file"),
                (Some("gone.mp4".into()), "missing_file"),
                (None, "bad_line"),
            ]
        );
        let first = open_input(&manifest, InputSettings::default())
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err();
        assert!(
            first.message.starts_with("line 1:") && first.message.contains("captoin"),
            "{}",
            first.message
        );
    }

    #[test]
    fn required_captions_are_checked_per_row() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.png", &png());
        let manifest = write(
            dir.path(),
            "m.jsonl",
            b"{\"image\": \"a.png\", \"key\": \"1\"}\n{\"image\": \"a.png\", \"key\": \"2\", \"caption\": \"Two.\"}\n",
        );
        let settings = InputSettings::default().with_require_caption(true);
        let (ok, problems) = outcome(open_input(&manifest, settings).unwrap());
        assert_eq!(ok, [("m".to_owned(), "2".to_owned())]);
        assert_eq!(problems, [(Some("1".into()), "missing_caption")]);
    }
}
