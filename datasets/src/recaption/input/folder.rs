//! A folder of images and videos, walked recursively in name order, with optional
//! sidecar captions (`a/b.jpg` takes its caption from `a/b.txt`). The folder is one
//! shard, named by the folder's name; a file's key is its path relative to the folder
//! without its extension. Other files (sidecars included) are not items and are
//! passed over without a problem, as a folder commonly holds them.

use std::path::{Path, PathBuf};

use super::manifest::{file_error, read_image};
use super::{Context, Item, Media, MediaKind, Problem, Video, relative_name, visible};

type Walk = walkdir::FilterEntry<walkdir::IntoIter, fn(&walkdir::DirEntry) -> bool>;

pub(super) struct Folder {
    root: PathBuf,
    shard: String,
    walk: Walk,
}

impl Folder {
    pub(super) fn new(root: &Path) -> Self {
        let walk = walkdir::WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(visible as fn(&walkdir::DirEntry) -> bool);
        Self {
            root: root.to_owned(),
            shard: super::folder_name(root),
            walk,
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
            let Some(kind) = media_kind(path) else {
                continue;
            };
            let key = relative_name(&self.root, &path.with_extension(""));
            if context.skips(&self.shard, &key) {
                continue;
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
            MediaKind::Image => read_image(path, context)
                .map(Media::Image)
                .map_err(|(kind, message)| Problem::new(&self.shard, Some(&key), kind, message))?,
            MediaKind::Video => Media::Video(Video::File(path.to_owned())),
        };
        let sidecar = path.with_extension("txt");
        let (text, corrupt) = match std::fs::read(&sidecar) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => (Some(text), None),
                Err(_) => {
                    let message = format!("caption `{}` is not UTF-8 text", sidecar.display());
                    (None, Some(("corrupt_file", message)))
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
            Err(e) => (None, Some(("corrupt_file", file_error(&sidecar, &e).1))),
        };
        let mut notes = Vec::new();
        let original = context.settle_caption(&self.shard, &key, text, corrupt, &mut notes)?;
        Ok(Item {
            shard: self.shard.clone(),
            key,
            media,
            original,
            notes,
        })
    }

    /// A failed walk entry: a dangling link to a media file is that sample's problem;
    /// anything else is the folder's.
    fn walk_problem(&self, e: &walkdir::Error) -> Problem {
        if let Some(path) = e.path().filter(|p| media_kind(p).is_some()) {
            let key = relative_name(&self.root, &path.with_extension(""));
            return Problem::new(&self.shard, Some(&key), "unreadable_file", e.to_string());
        }
        Problem::new(&self.shard, None, "unreadable_folder", e.to_string())
    }
}

fn media_kind(path: &Path) -> Option<MediaKind> {
    path.extension()
        .and_then(|e| MediaKind::of_extension(&e.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{outcome, png, write};
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
        let items: Vec<_> = open_input(&root, InputSettings::default())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(items.len(), 2);
        assert_eq!(
            (items[0].shard.as_str(), items[0].key.as_str()),
            ("photos", "a")
        );
        assert_eq!(
            items[0].media,
            Media::Video(Video::File(root.join("a.mp4")))
        );
        assert_eq!(items[1].key, "b/x.v2");
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
}
