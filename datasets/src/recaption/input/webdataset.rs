//! WebDataset tar shards, read member by member with one sample in memory.
//!
//! A member's key is its path up to the first dot of its file name, and what follows
//! the dot is its extension (`dir/000017.jpg`: key `dir/000017`, extension `jpg`);
//! consecutive members with the same key form one sample (WebDataset's rule). The tar
//! format is [`crate::tar`]'s, which tells a shard that ends cleanly from one that is
//! cut short (`truncated_shard`) or corrupt (`corrupt_shard`). A sample that was being
//! read when the shard ended is left out, since it may be incomplete.
//!
//! Shards end in `.tar`, `.tar.gz` or `.tgz`; gzipped ones are decompressed as they
//! are read. With [`super::InputSettings::in_place`], a video member of an uncompressed
//! shard is not read: the item names its byte range ([`wolf_pipeline::media::Member`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Read};

use std::path::{Path, PathBuf};
use wolf_pipeline::media::Member;

use super::{Context, Item, Media, MediaKind, Problem, Video};
use crate::files::{self, relative_key};
use crate::tar::{Entry, Header, TarError, TarStream};

/// Larger caption members are not read (`corrupt_member`).
const MAX_CAPTION_BYTES: u64 = 1 << 20;

/// The shards of an input, read one after the other.
pub(super) struct Shards {
    pending: std::vec::IntoIter<(String, PathBuf)>,
    current: Option<Shard>,
    /// What has been read but not yet yielded: a sample, and the problems of members
    /// that belong to no sample, in the order they were met.
    queue: VecDeque<Result<Item, Problem>>,
}

impl Shards {
    /// One shard file, named by its file name without its ending.
    pub(super) fn single(path: &Path) -> Self {
        Self::listed(vec![path.to_owned()])
    }

    /// Shard files in the order given, each named by its file name without its ending.
    pub(crate) fn listed(paths: Vec<PathBuf>) -> Self {
        let named = paths
            .into_iter()
            .map(|path| {
                let stem = files::shard_stem(path.file_name().map_or(&path, Path::new))
                    .map_or_else(|| super::file_stem(&path), |s| s.display().to_string());
                (stem, path)
            })
            .collect();
        Self::new(named, Vec::new())
    }

    /// The shards under a folder (`.tar`, `.tar.gz`, `.tgz`), recursively, sorted by
    /// name; each is named by its path relative to the folder without its ending.
    /// Unreadable sub-folders become problems, yielded first.
    pub(super) fn in_folder(root: &Path) -> Self {
        let (shards, problems) = shards_in(root);
        Self::new(shards, problems.into_iter().map(Err).collect())
    }

    fn new(shards: Vec<(String, PathBuf)>, problems: Vec<Result<Item, Problem>>) -> Self {
        Self {
            pending: shards.into_iter(),
            current: None,
            queue: problems.into(),
        }
    }

    /// Whether there are no shards at all.
    pub(super) fn is_empty(&self) -> bool {
        self.pending.len() == 0 && self.current.is_none()
    }

    pub(super) fn next(&mut self, context: &mut Context) -> Option<Result<Item, Problem>> {
        loop {
            if let Some(next) = self.queue.pop_front() {
                return Some(next);
            }
            match &mut self.current {
                Some(shard) => {
                    if !shard.read_sample(context, &mut self.queue) {
                        self.current = None;
                    }
                }
                None => {
                    let (name, path) = self.pending.next()?;
                    match File::open(&path) {
                        Ok(file) => self.current = Some(Shard::new(name, path, file, context)),
                        Err(e) => {
                            let message = format!("cannot open `{}`: {e}", path.display());
                            return Some(Err(Problem::new(
                                &name,
                                None,
                                "unreadable_shard",
                                message,
                            )));
                        }
                    }
                }
            }
        }
    }
}

/// The shards under a folder, recursively, sorted by name, each with its name (its path
/// relative to the folder without its ending); unreadable sub-folders are problems.
pub(crate) fn shards_in(root: &Path) -> (Vec<(String, PathBuf)>, Vec<Problem>) {
    let mut shards = Vec::new();
    let mut problems = Vec::new();
    for entry in files::walk(root) {
        match entry {
            Ok(entry) if entry.file_type().is_file() => {
                let path = entry.path();
                if let Some(stem) = files::shard_stem(path) {
                    shards.push((relative_key(root, &stem), path.to_owned()));
                }
            }
            Ok(_) => {}
            Err(e) => {
                let shard = e.path().map(|p| relative_key(root, p)).unwrap_or_default();
                let message = e.to_string();
                problems.push(Problem::new(&shard, None, "unreadable_folder", message));
            }
        }
    }
    shards.sort();
    (shards, problems)
}

/// One shard being read.
struct Shard {
    name: String,
    /// The shard's file when its video members are named in place rather than read.
    in_place: Option<PathBuf>,
    tar: TarStream<Box<dyn Read + Send>>,
    /// The header of the first member of the next sample, read to see that the sample
    /// before it had ended.
    lookahead: Option<Header>,
    /// The sample being read.
    sample: Option<Sample>,
}

impl Shard {
    fn new(name: String, path: PathBuf, file: File, context: &Context) -> Self {
        let compressed = files::is_compressed_shard(&path);
        Self {
            name,
            tar: tar_stream(&path, file),
            in_place: (context.settings.in_place && !compressed).then_some(path),
            lookahead: None,
            sample: None,
        }
    }

    /// Reads the next sample into `out`, with the problems of members met on the
    /// way. Returns false when the shard is over.
    fn read_sample(
        &mut self,
        context: &mut Context,
        out: &mut VecDeque<Result<Item, Problem>>,
    ) -> bool {
        match self.step(context, out) {
            Ok(more) => more,
            Err(error) => {
                // The sample in progress may be incomplete: it is left out with the
                // shard's problem, named unless it was skipped anyway.
                let sample = self.sample.take().filter(|s| !s.skipped);
                let (kind, mut message) = (error.kind(), error.to_string());
                if let Some(sample) = &sample {
                    message.push_str(&format!("; sample `{}` is left out", sample.key));
                }
                out.push_back(Err(Problem::new(
                    &self.name,
                    sample.as_ref().map(|s| s.key.as_str()),
                    kind,
                    message,
                )));
                false
            }
        }
    }

    fn step(
        &mut self,
        context: &mut Context,
        out: &mut VecDeque<Result<Item, Problem>>,
    ) -> Result<bool, TarError> {
        loop {
            let header = match self.lookahead.take() {
                Some(header) => header,
                None => match self.tar.next_header()? {
                    Some(header) => header,
                    None => {
                        if let Some(sample) = self.sample.take() {
                            out.extend(sample.finish(&self.name, context));
                        }
                        return Ok(false);
                    }
                },
            };
            if header.entry == Entry::Dir {
                self.tar.skip_member(&header)?;
                continue;
            }
            let Some((key, extension)) = split_key(&header.path) else {
                self.tar.skip_member(&header)?;
                let message = format!(
                    "member `{}` is not named `<key>.<extension>`; it is left out",
                    header.path
                );
                out.push_back(Err(Problem::new(
                    &self.name,
                    None,
                    "unknown_member",
                    message,
                )));
                continue;
            };
            if self.sample.as_ref().is_some_and(|s| s.key != key) {
                self.lookahead = Some(header);
                let sample = self
                    .sample
                    .take()
                    .expect("checked just above; this is a bug");
                out.extend(sample.finish(&self.name, context));
                return Ok(true);
            }
            if self.sample.is_none() {
                let skipped = context.skips(&self.name, &key);
                self.sample = Some(Sample::new(key, skipped));
            }
            let sample = self.sample.as_mut().expect("set just above; this is a bug");
            let in_place = self.in_place.as_deref();
            sample.add(&mut self.tar, &header, extension, context, in_place)?;
        }
    }
}

/// A shard's tar stream, decompressed when the shard is gzipped (by its `path`).
pub(crate) fn tar_stream(path: &Path, file: File) -> TarStream<Box<dyn Read + Send>> {
    let file = BufReader::with_capacity(1 << 16, file);
    let reader: Box<dyn Read + Send> = if files::is_compressed_shard(path) {
        Box::new(flate2::bufread::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    TarStream::new(reader)
}

/// Splits a member path into its WebDataset key and extension; `None` when the file
/// name has no dot, starts with one or ends with one.
pub(crate) fn split_key(path: &str) -> Option<(String, String)> {
    let file_start = path.rfind('/').map_or(0, |i| i + 1);
    let file = &path[file_start..];
    let dot = file.find('.')?;
    let extension = &file[dot + 1..];
    if dot == 0 || extension.is_empty() {
        return None;
    }
    Some((path[..file_start + dot].to_owned(), extension.to_owned()))
}

/// What a member is to a sample, by its extension.
enum Role {
    Media(MediaKind),
    Caption(CaptionFormat),
    Unknown,
}

/// How a caption member holds its caption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaptionFormat {
    /// `.txt`: the caption itself.
    Text,
    /// `.json`: an object with a `caption`, `text` or `output` string.
    Json,
}

fn role(extension: &str) -> Role {
    let lower = extension.to_ascii_lowercase();
    match lower.as_str() {
        "txt" => Role::Caption(CaptionFormat::Text),
        "json" => Role::Caption(CaptionFormat::Json),
        _ => MediaKind::of_extension(&lower).map_or(Role::Unknown, Role::Media),
    }
}

/// A sample being read.
struct Sample {
    key: String,
    /// Skipped by the caller: members are passed over unread.
    skipped: bool,
    /// The image or video: its kind, extension and bytes (none for a video named in
    /// place).
    media: Option<(MediaKind, String, Data)>,
    /// A problem that leaves the sample out whatever else it holds.
    failure: Option<(&'static str, String)>,
    /// The `.txt` caption, once a `.txt` member has been seen (`Some(None)`: it could
    /// not be read).
    text: Option<Option<String>>,
    /// The `.json` member's caption, once a `.json` member has been seen (`Some(None)`:
    /// it could not be read or holds no caption).
    json: Option<Option<String>>,
    /// The `.json` member's other fields.
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// The first problem with a caption member.
    corrupt_caption: Option<(&'static str, String)>,
    /// The members' extensions, to say what a sample without media held.
    extensions: Vec<String>,
    notes: Vec<(&'static str, String)>,
}

impl Sample {
    fn new(key: String, skipped: bool) -> Self {
        Self {
            key,
            skipped,
            media: None,
            failure: None,
            text: None,
            json: None,
            metadata: None,
            corrupt_caption: None,
            extensions: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn add<R: Read>(
        &mut self,
        tar: &mut TarStream<R>,
        header: &Header,
        extension: String,
        context: &Context,
        in_place: Option<&Path>,
    ) -> Result<(), TarError> {
        if self.skipped {
            return tar.skip_member(header);
        }
        let path = &header.path;
        if let Entry::Other(what) = header.entry {
            self.extensions.push(extension);
            self.notes.push((
                "unknown_member",
                format!("member `{path}` is a {what}, not a file; it is left out"),
            ));
            return tar.skip_member(header);
        }
        match role(&extension) {
            Role::Media(kind) => {
                if let Some((first_kind, first, _)) = &self.media {
                    let message = format!(
                        "member `{path}` is a second image or video; the sample's {} is its `.{first}` member",
                        first_kind.as_str()
                    );
                    self.notes.push(("duplicate_member", message));
                    tar.skip_member(header)?;
                } else if self.failure.is_some() {
                    tar.skip_member(header)?;
                } else if header.size > context.settings.max_media_bytes {
                    let message = format!(
                        "member `{path}` has {} bytes, more than the limit of {}",
                        header.size, context.settings.max_media_bytes
                    );
                    self.failure = Some(("oversized_member", message));
                    tar.skip_member(header)?;
                } else {
                    let data = match in_place.filter(|_| kind == MediaKind::Video) {
                        Some(archive) => {
                            let member = Member {
                                archive: archive.to_owned(),
                                name: path.clone(),
                                offset: tar.offset(),
                                size: header.size,
                            };
                            tar.skip_member(header)?;
                            Data::InPlace(member.to_path())
                        }
                        None => Data::Bytes(tar.read_member(header)?),
                    };
                    self.media = Some((kind, extension.to_ascii_lowercase(), data));
                }
            }
            Role::Caption(format) => self.add_caption(tar, header, format)?,
            Role::Unknown => {
                let message = format!(
                    "member `{path}` is neither an image, a video nor a caption (txt, json); it is left out"
                );
                self.notes.push(("unknown_member", message));
                tar.skip_member(header)?;
            }
        }
        self.extensions.push(extension);
        Ok(())
    }

    /// Reads a caption member; a second one of the same format is a note, one that
    /// cannot be read is remembered as the sample's corrupt caption.
    fn add_caption<R: Read>(
        &mut self,
        tar: &mut TarStream<R>,
        header: &Header,
        format: CaptionFormat,
    ) -> Result<(), TarError> {
        let path = &header.path;
        let slot = match format {
            CaptionFormat::Text => &mut self.text,
            CaptionFormat::Json => &mut self.json,
        };
        if slot.is_some() {
            let message =
                format!("member `{path}` is a second caption of its kind; it is left out");
            self.notes.push(("duplicate_member", message));
            return tar.skip_member(header);
        }
        let caption = if header.size > MAX_CAPTION_BYTES {
            tar.skip_member(header)?;
            Err(format!(
                "caption member `{path}` has {} bytes, more than {MAX_CAPTION_BYTES}",
                header.size
            ))
        } else {
            let bytes = tar.read_member(header)?;
            match format {
                CaptionFormat::Text => String::from_utf8(bytes)
                    .map(Some)
                    .map_err(|_| format!("caption member `{path}` is not UTF-8 text")),
                CaptionFormat::Json => match json_caption(&bytes) {
                    Ok((caption, rest)) => {
                        self.metadata = Some(rest);
                        Ok(caption)
                    }
                    Err(e) => Err(format!("caption member `{path}` {e}")),
                },
            }
        };
        *slot = Some(match caption {
            Ok(caption) => caption,
            Err(message) => {
                self.corrupt_caption
                    .get_or_insert(("corrupt_member", message));
                None
            }
        });
        Ok(())
    }

    /// The sample as an item or as the problem that leaves it out; nothing when the
    /// caller skips it.
    fn finish(self, shard: &str, context: &Context) -> Option<Result<Item, Problem>> {
        if self.skipped {
            return None;
        }
        let key = self.key;
        let fail = |kind, message| Some(Err(Problem::new(shard, Some(&key), kind, message)));
        if let Some((kind, message)) = self.failure {
            return fail(kind, message);
        }
        let Some((kind, extension, data)) = self.media else {
            let message = format!(
                "sample `{key}` has no image or video member (its members: {})",
                self.extensions.join(", ")
            );
            return fail("no_media", message);
        };
        if let (MediaKind::Image, Data::Bytes(bytes)) = (kind, &data)
            && let Err(e) = context.check_image(bytes)
        {
            let message = format!("member `{key}.{extension}` does not decode as an image: {e}");
            return fail("corrupt_member", message);
        }
        let mut notes: Vec<Problem> = self
            .notes
            .into_iter()
            .map(|(kind, message)| Problem::new(shard, Some(&key), kind, message))
            .collect();
        // A `.txt` caption wins over a `.json` one (img2dataset writes both, the JSON
        // holding metadata); an empty one counts as none.
        let text = self
            .text
            .flatten()
            .and_then(super::non_empty)
            .or_else(|| self.json.flatten());
        let original =
            match context.settle_caption(shard, &key, text, self.corrupt_caption, &mut notes) {
                Ok(original) => original,
                Err(problem) => return Some(Err(problem)),
            };
        let media = match (kind, data) {
            (_, Data::InPlace(path)) => Media::Video(Video::File(path)),
            (MediaKind::Image, Data::Bytes(bytes)) => Media::Image(bytes),
            (MediaKind::Video, Data::Bytes(bytes)) => {
                Media::Video(Video::Bytes { bytes, extension })
            }
        };
        Some(Ok(Item {
            shard: shard.to_owned(),
            key,
            media,
            original,
            notes,
            metadata: self.metadata.filter(|m| !m.is_empty()).map(Into::into),
        }))
    }
}

/// Why a `.json` caption member holds no caption; the message follows the member's
/// name.
#[derive(Debug, thiserror::Error)]
enum JsonCaptionError {
    #[error("is not valid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    #[error("is not a JSON object")]
    NotAnObject,
}

/// A member's data: read, or named in place.
enum Data {
    Bytes(Vec<u8>),
    InPlace(PathBuf),
}

/// The caption of a `.json` member: its `caption`, `text` or `output` string, the
/// first present (`None` for an object with none of them), and the object's other
/// fields.
fn json_caption(
    bytes: &[u8],
) -> Result<(Option<String>, serde_json::Map<String, serde_json::Value>), JsonCaptionError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(JsonCaptionError::Syntax)?;
    let serde_json::Value::Object(mut object) = value else {
        return Err(JsonCaptionError::NotAnObject);
    };
    let field = ["caption", "text", "output"]
        .into_iter()
        .find(|field| object.get(*field).is_some_and(|v| v.is_string()));
    let caption = field.and_then(|f| match object.remove(f) {
        Some(serde_json::Value::String(caption)) => Some(caption),
        _ => None,
    });
    Ok((caption, object))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Outcome, outcome, png, write};
    use super::super::{InputSettings, open_input};
    use super::*;
    use crate::tar::build::files as shard;
    use crate::tar::padded;

    /// A folder holding one shard, `s.tar`, of `(member path, bytes)`.
    fn one_shard(members: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "s.tar", &shard(members));
        (dir, path)
    }

    fn read(path: &Path, settings: InputSettings) -> Outcome {
        outcome(open_input(path, settings).unwrap())
    }

    /// The first item of an input.
    fn first(path: &Path) -> Result<Item, Problem> {
        open_input(path, InputSettings::default())
            .unwrap()
            .next()
            .unwrap()
    }

    fn keys(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(s, k)| (s.to_string(), k.to_string()))
            .collect()
    }

    #[test]
    fn members_are_grouped_by_key_and_captions_read_from_txt_or_json() {
        let dir = tempfile::tempdir().unwrap();
        let image = png();
        let bytes = shard(&[
            ("a/000001.jpg", &image),
            ("a/000001.txt", b"  A red square.\n"),
            ("a/000001.json", br#"{"caption": "ignored: txt wins"}"#),
            ("a/000002.png", &image),
            ("a/000002.json", br#"{"url": "x", "text": "From JSON."}"#),
            ("a/000003.mp4", b"not really a video"),
            ("a/000003.json", br#"{"output": "A clip."}"#),
            ("a/000004.webp.txt", b"odd"),
            ("a/000005.M4V", b"a video by the shared extension list"),
        ]);
        let path = write(dir.path(), "one.tar", &bytes);
        let items: Vec<_> = open_input(&path, InputSettings::default())
            .unwrap()
            .collect();
        let first = items[0].as_ref().unwrap();
        assert_eq!(
            (first.shard.as_str(), first.key.as_str()),
            ("one", "a/000001")
        );
        assert_eq!(first.original.as_deref(), Some("A red square."));
        assert_eq!(first.media, Media::Image(image.clone()));
        assert!(first.notes.is_empty(), "{:?}", first.notes);
        let second = items[1].as_ref().unwrap();
        assert_eq!(second.original.as_deref(), Some("From JSON."));
        let third = items[2].as_ref().unwrap();
        assert_eq!(third.original.as_deref(), Some("A clip."));
        assert_eq!(
            third.media,
            Media::Video(Video::Bytes {
                bytes: b"not really a video".to_vec(),
                extension: "mp4".into()
            })
        );
        // `webp.txt` is neither a caption nor an image, so the sample has no media.
        let fourth = items[3].as_ref().unwrap_err();
        assert_eq!(
            (fourth.key.as_deref(), fourth.kind),
            (Some("a/000004"), "no_media")
        );
        assert!(fourth.message.contains("webp.txt"), "{}", fourth.message);
        let fifth = items[4].as_ref().unwrap();
        assert_eq!(fifth.media.kind(), MediaKind::Video);
        assert_eq!(items.len(), 5);
    }

    #[test]
    fn a_folder_of_shards_is_read_in_order_and_named_by_relative_path() {
        let dir = tempfile::tempdir().unwrap();
        let image = png();
        write(dir.path(), "b/01.tar", &shard(&[("k.png", &image)]));
        write(dir.path(), "a.tar", &shard(&[("k.png", &image)]));
        write(dir.path(), ".partial.tar", &shard(&[("k.png", &image)]));
        write(dir.path(), "notes.txt", b"not a shard");
        let (ok, problems) = read(dir.path(), InputSettings::default());
        assert_eq!(ok, keys(&[("a", "k"), ("b/01", "k")]));
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn a_corrupt_image_member_leaves_its_sample_out() {
        let (_dir, path) = one_shard(&[
            ("1.jpg", b"\xff\xd8 not a jpeg"),
            ("1.txt", b"A cat."),
            ("2.png", &png()),
            ("2.txt", b"A dog."),
        ]);
        let (ok, problems) = read(&path, InputSettings::default());
        assert_eq!(ok, keys(&[("s", "2")]));
        assert_eq!(problems, [(Some("1".into()), "corrupt_member")]);
        // Unchecked, the bytes pass through for the captioner to judge.
        let (ok, _) = read(&path, InputSettings::default().with_check_images(false));
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn a_missing_caption_is_a_problem_only_when_captions_are_required() {
        let image = png();
        let (_dir, path) = one_shard(&[
            ("1.png", &image),
            ("2.png", &image),
            ("2.txt", b"   "),
            ("3.png", &image),
            ("3.txt", b"\xff\xfe not utf-8"),
            ("4.png", &image),
            ("4.json", br#"{"caption": 7}"#),
            ("5.png", &image),
            ("5.txt", b"Fine."),
        ]);
        let (ok, problems) = read(&path, InputSettings::default());
        assert_eq!(ok.len(), 5);
        assert!(problems.is_empty());

        let required = InputSettings::default().with_require_caption(true);
        let (ok, problems) = read(&path, required);
        assert_eq!(ok, keys(&[("s", "5")]));
        assert_eq!(
            problems,
            [
                (Some("1".into()), "missing_caption"),
                (Some("2".into()), "missing_caption"),
                (Some("3".into()), "corrupt_member"),
                (Some("4".into()), "missing_caption"),
            ]
        );
    }

    #[test]
    fn a_corrupt_caption_member_is_a_note_when_captions_are_optional() {
        let (_dir, path) = one_shard(&[("1.png", &png()), ("1.json", b"{not json")]);
        let item = first(&path).unwrap();
        assert_eq!(item.original, None);
        assert_eq!(item.notes.len(), 1);
        assert_eq!(item.notes[0].kind, "corrupt_member");
        let message = &item.notes[0].message;
        assert!(
            message.contains("1.json") && message.contains("is not valid JSON"),
            "{message}"
        );
    }

    #[test]
    fn unknown_members_are_recorded_and_the_sample_goes_on() {
        let image = png();
        let (_dir, path) = one_shard(&[
            ("1.cls", b"3"),
            ("1.png", &image),
            ("1.bin", b"\x00\x01"),
            ("1.jpg", &image),
            ("1.txt", b"A square."),
            ("README", b"no extension"),
            ("2.cls", b"4"),
            ("2.txt", b"Only a label."),
        ]);
        let items: Vec<_> = open_input(&path, InputSettings::default())
            .unwrap()
            .collect();
        // A member outside the key scheme belongs to no sample; it does not break the
        // sample around it, and its problem comes first, as it was met before the
        // sample ended.
        let stray = items[0].as_ref().unwrap_err();
        assert_eq!((stray.key.as_deref(), stray.kind), (None, "unknown_member"));
        assert!(stray.message.contains("README"));
        let item = items[1].as_ref().unwrap();
        assert_eq!(item.key, "1");
        assert_eq!(item.original.as_deref(), Some("A square."));
        let notes: Vec<_> = item.notes.iter().map(|n| n.kind).collect();
        assert_eq!(
            notes,
            ["unknown_member", "unknown_member", "duplicate_member"]
        );
        assert!(item.notes[0].message.contains("1.cls"));
        let labels_only = items[2].as_ref().unwrap_err();
        assert_eq!(
            (labels_only.key.as_deref(), labels_only.kind),
            (Some("2"), "no_media")
        );
        assert!(
            labels_only.message.contains("cls, txt"),
            "{}",
            labels_only.message
        );
        assert_eq!(items.len(), 3);
    }

    #[test]
    fn a_truncated_shard_is_a_problem_and_the_next_shard_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let image = png();
        let full = shard(&[
            ("1.png", &image),
            ("1.txt", b"First."),
            ("2.png", &image),
            ("2.txt", b"Second."),
        ]);
        // Cut inside the data of `2.png`: 1 is whole (the header of `2.png` ended
        // it), 2 is not.
        let image_blocks = padded(image.len() as u64) as usize;
        let cut = (512 + image_blocks) + (512 + 512) + 512 + 20;
        assert!(cut < full.len());
        write(dir.path(), "a.tar", &full[..cut]);
        write(dir.path(), "b.tar", &full);
        let (ok, problems) = read(dir.path(), InputSettings::default());
        assert_eq!(ok, keys(&[("a", "1"), ("b", "1"), ("b", "2")]));
        assert_eq!(problems, [(Some("2".into()), "truncated_shard")]);
    }

    #[test]
    fn a_shard_cut_between_members_loses_its_last_sample() {
        let dir = tempfile::tempdir().unwrap();
        let image = png();
        let full = shard(&[("1.png", &image), ("2.png", &image), ("2.txt", b"Two.")]);
        let image_blocks = padded(image.len() as u64) as usize;
        // Headers and data of 1.png and 2.png, no end-of-archive block: `2.txt` may
        // have followed, so sample 2 is left out.
        let cut = 2 * (512 + image_blocks);
        write(dir.path(), "a.tar", &full[..cut]);
        let (ok, problems) = read(&dir.path().join("a.tar"), InputSettings::default());
        assert_eq!(ok, keys(&[("a", "1")]));
        assert_eq!(problems, [(Some("2".into()), "truncated_shard")]);

        // Cut inside a header, and an empty file.
        write(dir.path(), "b.tar", &full[..cut + 100]);
        write(dir.path(), "c.tar", b"");
        let (_, problems) = read(&dir.path().join("b.tar"), InputSettings::default());
        assert_eq!(problems, [(Some("2".into()), "truncated_shard")]);
        let (ok, problems) = read(&dir.path().join("c.tar"), InputSettings::default());
        assert!(ok.is_empty());
        assert_eq!(problems, [(None, "truncated_shard")]);
    }

    #[test]
    fn a_header_that_fails_its_checksum_ends_the_shard() {
        let dir = tempfile::tempdir().unwrap();
        let image = png();
        let mut bytes = shard(&[("1.png", &image), ("2.png", &image), ("3.png", &image)]);
        let third = 2 * (512 + padded(image.len() as u64) as usize);
        bytes[third] ^= 0x20;
        write(dir.path(), "s.tar", &bytes);
        let (ok, problems) = read(&dir.path().join("s.tar"), InputSettings::default());
        // The bad header might have been the rest of sample 2, so 2 is left out too.
        assert_eq!(ok, keys(&[("s", "1")]));
        assert_eq!(problems, [(Some("2".into()), "corrupt_shard")]);
    }

    #[test]
    fn oversized_members_are_left_out_unread() {
        let big = vec![0u8; 4096];
        let (_dir, path) = one_shard(&[("1.mp4", &big), ("1.txt", b"Big."), ("2.png", &png())]);
        let settings = InputSettings::default().with_max_media_bytes(1024);
        let (ok, problems) = read(&path, settings);
        assert_eq!(ok, keys(&[("s", "2")]));
        assert_eq!(problems, [(Some("1".into()), "oversized_member")]);
    }

    #[test]
    fn directories_are_passed_over_and_long_names_keep_their_key() {
        let long_dir = "d".repeat(120);
        let (dir, image, caption) = (
            format!("{long_dir}/"),
            format!("{long_dir}/x.png"),
            format!("{long_dir}/x.txt"),
        );
        let (_dir, path) = one_shard(&[(&dir, b""), (&image, &png()), (&caption, b"Long.")]);
        let (ok, problems) = read(&path, InputSettings::default());
        assert_eq!(ok, [("s".to_owned(), format!("{long_dir}/x"))]);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn skipped_samples_are_not_yielded_nor_decoded() {
        let (_dir, path) = one_shard(&[("1.png", b"corrupt"), ("2.png", &png())]);
        let items = open_input(&path, InputSettings::default())
            .unwrap()
            .with_skip(|_, key| key == "1");
        let (ok, problems) = outcome(items);
        assert_eq!(ok, keys(&[("s", "2")]));
        assert!(problems.is_empty());
    }

    #[test]
    fn keys_split_at_the_first_dot_of_the_file_name() {
        let split = split_key;
        assert_eq!(
            split("a.b/c.seg.png"),
            Some(("a.b/c".into(), "seg.png".into()))
        );
        assert_eq!(split("000.jpg"), Some(("000".into(), "jpg".into())));
        assert_eq!(split("dir/.hidden"), None);
        assert_eq!(split("README"), None);
        assert_eq!(split("trailing."), None);
    }

    #[test]
    fn json_captions_come_from_the_first_known_field() {
        let caption = |text: &str| json_caption(text.as_bytes());
        let (found, rest) = caption(r#"{"text": "T", "caption": "C"}"#).unwrap();
        assert_eq!(found.as_deref(), Some("C"));
        // The other fields are the sample's metadata.
        assert_eq!(
            serde_json::Value::Object(rest),
            serde_json::json!({"text": "T"})
        );
        let (found, rest) = caption(r#"{"url": "x"}"#).unwrap();
        assert_eq!((found, rest.len()), (None, 1));
        assert!(matches!(caption("[1]"), Err(JsonCaptionError::NotAnObject)));
        let error = caption("{").unwrap_err();
        assert!(std::error::Error::source(&error).is_some(), "{error}");
    }
}
