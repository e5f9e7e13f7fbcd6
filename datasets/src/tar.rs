//! A streamed tar reader: member by member, one member's data in memory at a time, for
//! WebDataset shards (the recaption loop's input today; `wolf dataset add` may read
//! shards too).
//!
//! The format is read here rather than through `tar::Archive`, whose entries borrow the
//! archive and so cannot live in an iterator beside it; the `tar` crate's
//! [`::tar::Header`] parses each header block. Reading here also tells a tar that ends
//! cleanly from one that is cut short: a tar must end with the end-of-archive block,
//! and one that stops inside a member or between members without it is
//! [`TarError::Truncated`]. GNU long names and pax `path` and `size` records apply to
//! the member that follows them; other extended headers are passed over.
//!
//! Blocking, on the caller's thread.

use std::io::{self, Read};

/// Tar blocks are 512 bytes; members are padded to whole blocks.
const BLOCK: u64 = 512;

/// Larger extended headers (long names, pax records) are taken as corruption.
const MAX_EXTENDED_HEADER_BYTES: u64 = 1 << 20;

/// What a tar member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    File,
    Dir,
    /// Anything else: a link, a device, a sparse file; named for messages.
    Other(&'static str),
}

/// A member's header, its data not yet read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    /// The member's path as stored (a long name or pax path when there is one).
    pub path: String,
    /// The size of its data in bytes.
    pub size: u64,
    pub entry: Entry,
}

/// Why a tar could not be read to its end. The messages speak of a shard, as every
/// tar read here is one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TarError {
    /// The stream ended early: inside a header or a member, or without the
    /// end-of-archive block.
    #[error("{0}")]
    Truncated(String),
    /// A header that fails its checksum or holds a bad size, name or pax record.
    #[error("{0}")]
    Corrupt(String),
    #[error("reading the shard failed: {0}")]
    Io(#[from] io::Error),
}

impl TarError {
    /// A stable label: the WebDataset readers' problem kinds.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Truncated(_) => "truncated_shard",
            Self::Corrupt(_) => "corrupt_shard",
            Self::Io(_) => "unreadable_shard",
        }
    }
}

/// A tar stream read block by block, counting its offset for messages.
pub(crate) struct TarStream<R> {
    reader: R,
    offset: u64,
}

impl<R: Read> TarStream<R> {
    pub(crate) fn new(reader: R) -> Self {
        Self { reader, offset: 0 }
    }

    /// The next member's header, after any GNU long-name or pax headers that apply to
    /// it; `None` at the end-of-archive block. Its data must be read with
    /// [`Self::read_member`] or passed over with [`Self::skip_member`] before the next
    /// header is asked for.
    pub(crate) fn next_header(&mut self) -> Result<Option<Header>, TarError> {
        let mut long_name: Option<Vec<u8>> = None;
        let mut pax_path: Option<Vec<u8>> = None;
        let mut pax_size: Option<u64> = None;
        loop {
            let start = self.offset;
            let mut block = [0u8; BLOCK as usize];
            let read = self.fill(&mut block)?;
            if read == 0 {
                return Err(TarError::Truncated(format!(
                    "the shard ends at byte {start} without the end-of-archive block"
                )));
            }
            if read < block.len() {
                return Err(TarError::Truncated(format!(
                    "the shard ends inside the header at byte {start}"
                )));
            }
            if block.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            let header = ::tar::Header::from_byte_slice(&block);
            let corrupt =
                |what: String| TarError::Corrupt(format!("the header at byte {start} {what}"));
            let stored = header
                .cksum()
                .map_err(|e| corrupt(format!("has no valid checksum: {e}")))?;
            if stored != checksum(&block) {
                return Err(corrupt("fails its checksum".into()));
            }
            let size = header
                .entry_size()
                .map_err(|e| corrupt(format!("has no valid size: {e}")))?;
            let kind = header.entry_type();
            if kind.is_gnu_longname() {
                let name = self.read_extended(size, start)?;
                long_name = Some(trim_nuls(name));
                continue;
            }
            if kind.is_pax_local_extensions() {
                let data = self.read_extended(size, start)?;
                for extension in ::tar::PaxExtensions::new(&data) {
                    let extension =
                        extension.map_err(|e| corrupt(format!("has a bad pax record: {e}")))?;
                    match extension.key_bytes() {
                        b"path" => pax_path = Some(extension.value_bytes().to_vec()),
                        b"size" => {
                            let value = extension.value().ok().and_then(|v| v.parse().ok());
                            pax_size =
                                Some(value.ok_or_else(|| corrupt("has a bad pax size".into()))?);
                        }
                        _ => {}
                    }
                }
                continue;
            }
            if kind.is_gnu_longlink() || kind.is_pax_global_extensions() {
                self.skip(padded(size), "an extended header")?;
                continue;
            }
            let path = pax_path
                .or(long_name)
                .unwrap_or_else(|| header.path_bytes().into_owned());
            let entry = if kind.is_file() || kind.is_contiguous() {
                Entry::File
            } else if kind.is_dir() {
                Entry::Dir
            } else if kind.is_symlink() {
                Entry::Other("symbolic link")
            } else if kind.is_hard_link() {
                Entry::Other("hard link")
            } else if kind.is_gnu_sparse() {
                Entry::Other("sparse file")
            } else {
                Entry::Other("special file")
            };
            return Ok(Some(Header {
                path: String::from_utf8_lossy(&path).into_owned(),
                size: pax_size.unwrap_or(size),
                entry,
            }));
        }
    }

    /// Bytes read so far: after [`Self::next_header`], where the member's data starts.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// A member's data. The caller checks `header.size` against its own limit first.
    pub(crate) fn read_member(&mut self, header: &Header) -> Result<Vec<u8>, TarError> {
        // The capacity is bounded again in case the caller's limit is large and the
        // header lies.
        let mut data = Vec::with_capacity(header.size.min(1 << 24) as usize);
        let read = (&mut self.reader)
            .take(header.size)
            .read_to_end(&mut data)?;
        self.offset += read as u64;
        if (read as u64) < header.size {
            return Err(TarError::Truncated(format!(
                "the shard ends inside member `{}` ({read} of {} bytes)",
                header.path, header.size
            )));
        }
        self.skip(padded(header.size) - header.size, &header.path)?;
        Ok(data)
    }

    /// Passes over a member's data.
    pub(crate) fn skip_member(&mut self, header: &Header) -> Result<(), TarError> {
        self.skip(padded(header.size), &header.path)
    }

    /// The data of a long-name or pax header.
    fn read_extended(&mut self, size: u64, start: u64) -> Result<Vec<u8>, TarError> {
        if size > MAX_EXTENDED_HEADER_BYTES {
            return Err(TarError::Corrupt(format!(
                "the extended header at byte {start} claims {size} bytes"
            )));
        }
        let header = Header {
            path: "an extended header".into(),
            size,
            entry: Entry::File,
        };
        self.read_member(&header)
    }

    fn skip(&mut self, bytes: u64, what: &str) -> Result<(), TarError> {
        let skipped = io::copy(&mut (&mut self.reader).take(bytes), &mut io::sink())?;
        self.offset += skipped;
        if skipped < bytes {
            return Err(TarError::Truncated(format!(
                "the shard ends inside member `{what}` at byte {}",
                self.offset
            )));
        }
        Ok(())
    }

    /// Reads until `buf` is full or the stream ends; returns the bytes read.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.offset += filled as u64;
        Ok(filled)
    }
}

/// A size rounded up to whole blocks.
pub(crate) fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK) * BLOCK
}

/// The header checksum: the sum of its bytes with the checksum field read as spaces.
fn checksum(block: &[u8; BLOCK as usize]) -> u32 {
    block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u32::from(b' ')
            } else {
                u32::from(b)
            }
        })
        .sum()
}

fn trim_nuls(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}

/// Tars built in memory, for the tests of this module and of the WebDataset reader.
#[cfg(test)]
pub(crate) mod build {
    /// A tar from `(member path, bytes)`, with its end-of-archive blocks: a regular
    /// file a member, or a directory where the path ends with `/`. Paths longer than
    /// 100 bytes get GNU long-name headers.
    pub(crate) fn files(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = ::tar::Builder::new(Vec::new());
        for (path, bytes) in members {
            let mut header = ::tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(if path.ends_with('/') {
                ::tar::EntryType::Directory
            } else {
                ::tar::EntryType::Regular
            });
            builder
                .append_data(&mut header, path, *bytes)
                .expect("appending to an in-memory tar");
        }
        builder.into_inner().expect("finishing an in-memory tar")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every header and its data, up to the end or the first error.
    fn members(bytes: &[u8]) -> (Vec<(Header, Vec<u8>)>, Option<TarError>) {
        let mut tar = TarStream::new(bytes);
        let mut out = Vec::new();
        loop {
            let header = match tar.next_header() {
                Ok(Some(header)) => header,
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            };
            match tar.read_member(&header) {
                Ok(data) => out.push((header, data)),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    fn file(path: &str, size: u64) -> Header {
        Header {
            path: path.into(),
            size,
            entry: Entry::File,
        }
    }

    #[test]
    fn members_are_read_in_order_with_their_data() {
        let bytes = build::files(&[("a/1.txt", b"one"), ("a/2.bin", &[7u8; 700])]);
        let (read, error) = members(&bytes);
        assert!(error.is_none(), "{error:?}");
        assert_eq!(
            read,
            [
                (file("a/1.txt", 3), b"one".to_vec()),
                (file("a/2.bin", 700), vec![7u8; 700]),
            ]
        );
    }

    #[test]
    fn skipped_members_are_passed_over() {
        let bytes = build::files(&[("1.bin", &[1u8; 1000]), ("2.txt", b"two")]);
        let mut tar = TarStream::new(&bytes[..]);
        let first = tar.next_header().unwrap().unwrap();
        tar.skip_member(&first).unwrap();
        let second = tar.next_header().unwrap().unwrap();
        assert_eq!(tar.read_member(&second).unwrap(), b"two");
        assert!(tar.next_header().unwrap().is_none());
    }

    #[test]
    fn long_names_and_directories_are_read() {
        let long_dir = "d".repeat(120);
        let (dir, name) = (format!("{long_dir}/"), format!("{long_dir}/x.txt"));
        let (read, error) = members(&build::files(&[(&dir, b""), (&name, b"Long.")]));
        assert!(error.is_none(), "{error:?}");
        let directory = Header {
            path: dir,
            size: 0,
            entry: Entry::Dir,
        };
        assert_eq!(
            read,
            [(directory, Vec::new()), (file(&name, 5), b"Long.".to_vec())]
        );
    }

    #[test]
    fn links_are_named_for_what_they_are() {
        let mut builder = ::tar::Builder::new(Vec::new());
        let mut header = ::tar::Header::new_gnu();
        header.set_entry_type(::tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, "y.txt", "x.txt").unwrap();
        let (read, error) = members(&builder.into_inner().unwrap());
        assert!(error.is_none(), "{error:?}");
        assert_eq!(read[0].0.entry, Entry::Other("symbolic link"));
    }

    /// One pax record: its length (itself included), key and value.
    fn pax_record(key: &str, value: &str) -> String {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while format!("{len}").len() + body.len() != len {
            len += 1;
        }
        format!("{len}{body}")
    }

    #[test]
    fn pax_records_name_and_size_the_next_member() {
        let records = pax_record("path", "pax/named.txt") + &pax_record("mtime", "1.5");
        let mut builder = ::tar::Builder::new(Vec::new());
        let mut header = ::tar::Header::new_ustar();
        header.set_entry_type(::tar::EntryType::XHeader);
        header.set_size(records.len() as u64);
        header.set_path("PaxHeaders/x").unwrap();
        header.set_cksum();
        builder.append(&header, records.as_bytes()).unwrap();
        let mut header = ::tar::Header::new_ustar();
        header.set_size(3);
        header.set_path("short.txt").unwrap();
        header.set_cksum();
        builder.append(&header, &b"abc"[..]).unwrap();
        let (read, error) = members(&builder.into_inner().unwrap());
        assert!(error.is_none(), "{error:?}");
        assert_eq!(read, [(file("pax/named.txt", 3), b"abc".to_vec())]);
    }

    #[test]
    fn a_tar_cut_short_anywhere_is_truncated() {
        let full = build::files(&[("1.txt", b"first"), ("2.bin", &[2u8; 600])]);
        // Blocks: header 1 at 0, its data at 512, header 2 at 1024, its data at 1536
        // (two blocks), the end-of-archive blocks at 2560. Cut: empty; without the
        // end-of-archive block; inside a header; inside a member's data; inside its
        // padding.
        assert_eq!(full.len(), 2560 + 1024);
        for cut in [0, 2560, 1024 + 100, 1536 + 300, 512 + 3, 512 + 200] {
            let (_, error) = members(&full[..cut]);
            match error {
                Some(TarError::Truncated(message)) => {
                    assert!(message.contains("ends"), "{message}")
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_header_that_fails_its_checksum_is_corrupt() {
        let mut bytes = build::files(&[("1.txt", b"one"), ("2.txt", b"two")]);
        bytes[1024] ^= 0x20;
        let (read, error) = members(&bytes);
        assert_eq!(read.len(), 1);
        let error = error.unwrap();
        assert_eq!(error.kind(), "corrupt_shard");
        assert!(
            error.to_string().contains("byte 1024 fails its checksum"),
            "{error}"
        );
    }

    #[test]
    fn an_oversized_extended_header_is_corrupt() {
        let mut header = ::tar::Header::new_gnu();
        header.set_entry_type(::tar::EntryType::GNULongName);
        header.set_size(MAX_EXTENDED_HEADER_BYTES + 1);
        header.set_path("././@LongLink").unwrap();
        header.set_cksum();
        let (_, error) = members(header.as_bytes());
        assert_eq!(error.unwrap().kind(), "corrupt_shard");
    }

    #[test]
    fn sizes_are_padded_to_whole_blocks() {
        assert_eq!(padded(0), 0);
        assert_eq!(padded(1), 512);
        assert_eq!(padded(512), 512);
        assert_eq!(padded(513), 1024);
    }
}
