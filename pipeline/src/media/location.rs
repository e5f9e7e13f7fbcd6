//! Where a video's bytes are: a file, or a member of an uncompressed tar (a WebDataset
//! shard) read in place.
//!
//! A tar member's data is one contiguous byte range of the shard, so a member is named
//! by a path that carries its range: `SHARD.tar#MEMBER@OFFSET+SIZE`, such as
//! `shards/000001.tar#000001234.mp4@1536+20480`. Everything that opens a video goes
//! through this module: FFmpeg reads the range through libavformat's own `subfile`
//! I/O context (no copy, seeks relative to the member), and [`open_bytes`] gives the
//! same bytes to hashing and copying. Any other path is a file.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// A member of an uncompressed tar, by its byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The tar file.
    pub archive: PathBuf,
    /// The member's name inside it, as stored.
    pub name: String,
    /// Where its data starts, in bytes from the start of the tar.
    pub offset: u64,
    /// Its data's length in bytes.
    pub size: u64,
}

impl Member {
    /// The path that names this member (see the module's documentation).
    pub fn to_path(&self) -> PathBuf {
        let mut text = self.archive.as_os_str().to_owned();
        text.push(format!("#{}@{}+{}", self.name, self.offset, self.size));
        PathBuf::from(text)
    }

    /// The member named by `path`, if it names one: the part before the first `.tar#`
    /// (any case) is the tar, and the path ends in `@OFFSET+SIZE`, whose end fits in
    /// FFmpeg's 64-bit offsets.
    pub fn parse(path: &Path) -> Option<Self> {
        let text = path.to_str()?;
        // ASCII lower-casing keeps every byte where it was.
        let split = text.to_ascii_lowercase().find(".tar#")? + ".tar".len();
        let (archive, rest) = (&text[..split], &text[split + 1..]);
        let (name, range) = rest.rsplit_once('@')?;
        let (offset, size) = range.split_once('+')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if name.is_empty() || !digits(offset) || !digits(size) {
            return None;
        }
        let (offset, size): (u64, u64) = (offset.parse().ok()?, size.parse().ok()?);
        offset
            .checked_add(size)
            .filter(|end| *end <= i64::MAX as u64)?;
        Some(Self {
            archive: PathBuf::from(archive),
            name: name.to_owned(),
            offset,
            size,
        })
    }

    /// The URL that FFmpeg opens: the member's range of the tar through the `subfile`
    /// protocol (`file:` keeps a colon in the tar's path from reading as a protocol).
    pub(crate) fn ffmpeg_url(&self) -> String {
        format!(
            "subfile,,start,{},end,{},,:file:{}",
            self.offset,
            self.offset + self.size,
            self.archive.display()
        )
    }
}

/// A video's size and modification time (ns since the epoch), without reading it: a
/// member's size and its tar's time. `None` when it is missing or not a regular file.
pub fn stat(path: &Path) -> Option<(u64, i64)> {
    let member = Member::parse(path);
    let file = member.as_ref().map_or(path, |m| m.archive.as_path());
    let meta = std::fs::metadata(file).ok().filter(|m| m.is_file())?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    Some((member.map_or(meta.len(), |m| m.size), mtime))
}

/// Where a video's bytes lie: the file that holds them, the offset of the first and
/// their length (a file: itself, 0 and its length). A range that the tar does not hold
/// whole is an error.
pub fn extent(path: &Path) -> io::Result<(PathBuf, u64, u64)> {
    let Some(member) = Member::parse(path) else {
        return Ok((path.to_owned(), 0, std::fs::metadata(path)?.len()));
    };
    let length = std::fs::metadata(&member.archive)?.len();
    if member.offset + member.size > length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "member `{}` ends at byte {} of `{}`, which has {length}",
                member.name,
                member.offset + member.size,
                member.archive.display()
            ),
        ));
    }
    Ok((member.archive, member.offset, member.size))
}

/// A video's bytes as a stream: the file, or the member's range of its tar.
pub fn open_bytes(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let (file, offset, length) = extent(path)?;
    let mut file = File::open(file)?;
    if offset == 0 && Member::parse(path).is_none() {
        return Ok(Box::new(file));
    }
    file.seek(SeekFrom::Start(offset))?;
    Ok(Box::new(file.take(length)))
}

/// The name that says a video's container by its extension: a member's name, else
/// the path.
pub fn media_name(path: &Path) -> PathBuf {
    Member::parse(path).map_or_else(|| path.to_owned(), |m| PathBuf::from(m.name))
}

/// A video's path as exports write it: relative to its dataset's `root` (with `..`
/// where it lies outside), or as stored when there is no root or one path is absolute
/// and the other is not.
pub fn relative_to(path: &str, root: Option<&str>) -> String {
    let Some(root) = root else {
        return path.to_owned();
    };
    let (path_p, root_p) = (Path::new(path), Path::new(root));
    if path_p.is_absolute() != root_p.is_absolute() {
        return path.to_owned();
    }
    let normal = |p: &Path| -> Vec<String> {
        p.components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    let (parts, base) = (normal(path_p), normal(root_p));
    let common = parts.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut out: Vec<&str> = vec![".."; base.len() - common];
    out.extend(parts[common..].iter().map(String::as_str));
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_written_relative_to_the_root() {
        let root = Some("/data/set");
        assert_eq!(relative_to("/data/set/b/clip.mp4", root), "b/clip.mp4");
        assert_eq!(
            relative_to("/data/set/s/0.tar#k/1.mp4@512+9", root),
            "s/0.tar#k/1.mp4@512+9"
        );
        assert_eq!(relative_to("/data/other/x.mp4", root), "../other/x.mp4");
        assert_eq!(relative_to("./m/x.mp4", Some("m")), "x.mp4");
        assert_eq!(relative_to("x.mp4", Some("")), "x.mp4");
        assert_eq!(relative_to("/abs/x.mp4", Some("rel")), "/abs/x.mp4");
        assert_eq!(relative_to("/abs/x.mp4", None), "/abs/x.mp4");
    }

    #[test]
    fn a_member_path_reads_back_and_other_paths_are_files() {
        let member = Member {
            archive: PathBuf::from("/data/my shards/0001.tar"),
            name: "dir/000017.mp4".into(),
            offset: 1536,
            size: 3671,
        };
        let path = member.to_path();
        assert_eq!(
            path.to_str().unwrap(),
            "/data/my shards/0001.tar#dir/000017.mp4@1536+3671"
        );
        assert_eq!(Member::parse(&path), Some(member));
        // Any case; a member whose name holds `.tar#` stays whole.
        let upper = Member::parse(Path::new("/d/S.TAR#k/a.tar#b.mp4@512+9")).unwrap();
        assert_eq!(upper.archive, Path::new("/d/S.TAR"));
        assert_eq!(upper.name, "k/a.tar#b.mp4");
        for file in [
            "a.tar#x.mp4@18446744073709551615+1",
            "a.tar#x.mp4@9223372036854775807+1",
            "clip.mp4",
            "a.tar",
            "a.tar#x.mp4",
            "a.tar#x.mp4@1+",
            "a.tar#@1+2",
            "a.tgz#x.mp4@1+2",
            "a.tar#x.mp4@-1+2",
        ] {
            assert_eq!(Member::parse(Path::new(file)), None, "{file}");
        }
    }

    #[test]
    fn a_members_bytes_are_its_range_and_a_range_past_the_end_fails() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("s.tar");
        std::fs::write(&archive, b"0123456789").unwrap();
        let member = |offset, size| Member {
            archive: archive.clone(),
            name: "x.mp4".into(),
            offset,
            size,
        };
        let mut bytes = Vec::new();
        open_bytes(&member(3, 4).to_path())
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        assert_eq!(bytes, b"3456");
        assert_eq!(stat(&member(3, 4).to_path()).unwrap().0, 4);
        let error = open_bytes(&member(8, 4).to_path()).err().unwrap();
        assert!(error.to_string().contains("ends at byte 12"), "{error}");
    }
}
