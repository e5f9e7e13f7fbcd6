//! A folder of images and videos, walked recursively in name order, with optional
//! sidecar captions (`a/b.jpg` takes its caption from `a/b.txt`). The folder is one
//! shard, named by the folder's name; a file's key is its path relative to the folder
//! without its extension. Other files (sidecars included) are not items and are
//! passed over without a problem, as a folder commonly holds them.

use std::path::{Path, PathBuf};

use super::{Context, Item, Media, MediaKind, Problem, Video};
use crate::files::{self, relative_key};

pub(super) struct Folder {
    root: PathBuf,
    shard: String,
    walk: files::Walk,
}

impl Folder {
    pub(super) fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            shard: super::folder_name(root),
            walk: files::walk(root),
        }
    }

    pub(super) fn next(&mut self, context: &mut Context) -> Option<Result<Item, Problem>> {
        loop {
            let entry = match self.walk.next()? {
                Ok(entry) => entry,
                Err(e) => return Some(Err(self.walk_problem(&e))),
            };
            if entry.file_type().is_dir() {
                continue;
            }
            let path = entry.path();
            let Some(kind) = MediaKind::of_path(path) else {
                continue;
            };
            let key = relative_key(&self.root, &path.with_extension(""));
            if context.skips(&self.shard, &key) {
                continue;
            }
            // A FIFO or device named like a media file would block its reader forever.
            if !entry.file_type().is_file() {
                let message = format!("`{}` is not a file", path.display());
                return Some(Err(Problem::new(
                    &self.shard,
                    Some(&key),
                    "not_a_file",
                    message,
                )));
            }
            return Some(self.item(path, key, kind, context));
        }
    }

    fn item(
        &self,
        path: &Path,
        key: String,
        kind: MediaKind,
        context: &Context,
    ) -> Result<Item, Problem> {
        let media = match kind {
            MediaKind::Image => context
                .read_image(path)
                .map(Media::Image)
                .map_err(|e| Problem::new(&self.shard, Some(&key), e.kind(), e.to_string()))?,
            MediaKind::Video => Media::Video(Video::File(path.to_owned())),
        };
        // A sidecar that cannot be read is a corrupt caption, whatever the reason.
        let sidecar = path.with_extension("txt");
        let read = match std::fs::metadata(&sidecar) {
            Ok(meta) if !meta.is_file() => Err(std::io::Error::other("it is not a file")),
            _ => std::fs::read(&sidecar),
        };
        let (text, corrupt) = match read {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => (Some(text), None),
                Err(_) => {
                    let message = format!("caption `{}` is not UTF-8 text", sidecar.display());
                    (None, Some(("corrupt_file", message)))
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
            Err(e) => {
                let message = format!("cannot read `{}`: {e}", sidecar.display());
                (None, Some(("corrupt_file", message)))
            }
        };
        let mut notes = Vec::new();
        let original = context.settle_caption(&self.shard, &key, text, corrupt, &mut notes)?;
        Ok(Item {
            shard: self.shard.clone(),
            key,
            media,
            original,
            notes,
            metadata: None,
        })
    }

    /// A failed walk entry: a dangling link to a media file is that sample's problem;
    /// anything else is the folder's.
    fn walk_problem(&self, e: &walkdir::Error) -> Problem {
        if let Some(path) = e.path().filter(|p| MediaKind::of_path(p).is_some()) {
            let key = relative_key(&self.root, &path.with_extension(""));
            return Problem::new(&self.shard, Some(&key), "unreadable_file", e.to_string());
        }
        Problem::new(&self.shard, None, "unreadable_folder", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{all_items, names, outcome, png, write};
    use super::super::{InputSettings, open_input};
    use super::*;

    #[test]
    fn files_are_read_recursively_with_sidecar_captions() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("photos");
        let image = png();
        write(&root, "b/x.v2.PNG", &image);
        write(&root, "b/x.v2.txt", b"A small square.\n");
        write(&root, "a.mp4", b"video");
        write(&root, "notes.json", b"{}");
        write(&root, ".hidden.png", b"half written");
        write(&root, "c.ts", b"a video by the shared extension list");
        let items = all_items(&root);
        assert_eq!(
            names(&items),
            [("photos", "a"), ("photos", "b/x.v2"), ("photos", "c")]
        );
        assert_eq!(
            items[0].media,
            Media::Video(Video::File(root.join("a.mp4")))
        );
        assert_eq!(items[1].original.as_deref(), Some("A small square."));
        assert_eq!(items[1].media, Media::Image(image));
    }

    #[test]
    fn corrupt_images_and_captions_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bad.jpg", b"not a jpeg");
        write(dir.path(), "good.png", &png());
        write(dir.path(), "good.txt", b"\xff\xfe");
        write(dir.path(), "plain.png", &png());
        let (ok, problems) = outcome(open_input(dir.path(), InputSettings::default()).unwrap());
        assert_eq!(ok.len(), 2);
        assert_eq!(problems, [(Some("bad".into()), "corrupt_file")]);

        let required = InputSettings::default().with_require_caption(true);
        let (ok, problems) = outcome(open_input(dir.path(), required).unwrap());
        assert!(ok.is_empty());
        assert_eq!(
            problems,
            [
                (Some("bad".into()), "corrupt_file"),
                (Some("good".into()), "corrupt_file"),
                (Some("plain".into()), "missing_caption"),
            ]
        );
    }

    /// A FIFO named like an image, a video or a sidecar caption is refused by its
    /// metadata, never opened: opening one would wait for a writer forever.
    #[test]
    fn fifos_are_refused_without_opening_them() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "good.png", &png());
        write(dir.path(), "side.png", &png());
        for name in ["pipe.png", "pipe2.mp4", "side.txt"] {
            let made = std::process::Command::new("mkfifo")
                .arg(dir.path().join(name))
                .status()
                .expect("mkfifo runs");
            assert!(made.success());
        }
        let (ok, problems) = outcome(open_input(dir.path(), InputSettings::default()).unwrap());
        assert_eq!(ok.len(), 2, "{problems:?}");
        assert_eq!(
            problems,
            [
                (Some("pipe".into()), "not_a_file"),
                (Some("pipe2".into()), "not_a_file"),
            ]
        );
        // The FIFO sidecar is a caption that cannot be read.
        let required = InputSettings::default().with_require_caption(true);
        let (_, problems) = outcome(open_input(dir.path(), required).unwrap());
        assert!(
            problems.contains(&(Some("side".into()), "corrupt_file")),
            "{problems:?}"
        );
    }
}
