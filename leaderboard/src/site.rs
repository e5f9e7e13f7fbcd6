//! `wolf leaderboard build`: the pages as a static site, for a project website.
//!
//! Layout: `index.html`, `methods.html`, `dataset-<id>.html`, `entry-<id>-<slug>.html`,
//! `videos/<id>.html`, `frames/<video>-<n>.jpg`, `static/` (stylesheet and script) and,
//! built `--with-videos`, `media/<id>.<ext>`: the clips (hard links where the file
//! system allows, else copies), which the video pages play.
//! The site is written into a temporary folder beside `out` and swapped in by renames
//! when complete, so a reader (or a web server) never sees half a site, and a failed
//! build leaves the previous one in place.
//!
//! Video pages, with their thumbnails, are rendered on as many threads as cores.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use wolf_pipeline::config::LeaderboardConfig;
use wolf_pipeline::media;
use wolf_pipeline::store::{StageOutput, Store, VideoStatus};

use crate::Error;
use crate::board::Board;
use crate::frames::{NoThumbnails, thumbnails};
use crate::pages::{self, FrameTimes, Settings};

/// What a build wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildReport {
    /// The site's index page.
    pub index: PathBuf,
    pub pages: usize,
    pub thumbnails: usize,
    /// Videos whose frames could not be read (their pages say why).
    pub without_frames: usize,
    pub bytes: u64,
}

/// How a build runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOptions {
    pub out: PathBuf,
    /// Sample frame thumbnails from the videos (off: video pages say so).
    pub thumbnails: bool,
    /// Threads for video pages (0: one per core).
    pub threads: usize,
    /// How entries are ranked.
    pub board: LeaderboardConfig,
    /// Put the clips in the site (`media/`), so that video pages can play them.
    pub videos: bool,
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|source| Error::Write {
        path: path.display().to_string(),
        source,
    })
}

fn create_dir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path).map_err(|source| Error::Write {
        path: path.display().to_string(),
        source,
    })
}

/// Builds the site from the store into `options.out`, and logs what it wrote. The
/// report's index is the canonical path of the index page.
pub async fn build(store: &Store, options: &BuildOptions) -> Result<BuildReport, Error> {
    let started = std::time::Instant::now();
    let board = Arc::new(Board::load(store, &options.board).await?);
    let settings = Settings {
        live: false,
        admin: false,
        generated: store.now().await?,
        max_upload: 0,
    };
    let name = options
        .out
        .file_name()
        .map_or("site".into(), |n| n.to_string_lossy().into_owned());
    let parent = match options.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_dir(&parent)?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let result = write_site(store, &board, &settings, options, &tmp).await;
    let mut report = match result {
        Ok(report) => report,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    swap_in(&tmp, &options.out, &parent, &name)?;
    let index = options.out.join("index.html");
    report.index = std::fs::canonicalize(&index).unwrap_or(index);
    tracing::info!(
        pages = report.pages,
        thumbnails = report.thumbnails,
        without_frames = report.without_frames,
        bytes = report.bytes,
        seconds = started.elapsed().as_secs_f64(),
        "Built the leaderboard."
    );
    Ok(report)
}

/// Replaces `out` with `tmp`: the old site moves aside, the new one takes its name,
/// the old one is removed.
fn swap_in(tmp: &Path, out: &Path, parent: &Path, name: &str) -> Result<(), Error> {
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|source| Error::Write {
            path: to.display().to_string(),
            source,
        })
    };
    if out.exists() {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        rename(out, &old)?;
        rename(tmp, out)?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        rename(tmp, out)?;
    }
    Ok(())
}

async fn write_site(
    store: &Store,
    board: &Arc<Board>,
    settings: &Settings,
    options: &BuildOptions,
    dir: &Path,
) -> Result<BuildReport, Error> {
    for sub in ["static", "videos", "frames", "media"] {
        create_dir(&dir.join(sub))?;
    }
    let mut written: Vec<(PathBuf, Vec<u8>)> = vec![
        (dir.join("static/style.css"), pages::STYLE_CSS.into()),
        (dir.join("static/app.js"), pages::APP_JS.into()),
        (
            dir.join("index.html"),
            pages::index(board, settings)?.into(),
        ),
        (
            dir.join("methods.html"),
            pages::methods(board, settings)?.into(),
        ),
    ];
    for ds in &board.datasets {
        written.push((
            dir.join(pages::dataset_file(ds.summary.id)),
            pages::dataset(ds, settings)?.into(),
        ));
        for e in &ds.entries {
            written.push((
                dir.join(pages::entry_file(ds.summary.id, &e.slug)),
                pages::entry(ds, e, settings)?.into(),
            ));
        }
    }
    let mut bytes = 0u64;
    let mut count = 0usize;
    for (path, content) in &written {
        write(path, content)?;
        bytes += content.len() as u64;
        count += 1;
    }
    drop(written);

    // Video pages: stage outputs from the store here, then frames and rendering on
    // blocking threads.
    let mut jobs: Vec<(usize, usize, Vec<StageOutput>)> = Vec::new();
    for (d, ds) in board.datasets.iter().enumerate() {
        for (v, video) in ds.videos.iter().enumerate() {
            jobs.push((d, v, store.stage_outputs(video.id).await?));
        }
    }
    let threads = if options.threads == 0 {
        wolf_pipeline::process::cores()
    } else {
        options.threads
    };
    let shared = Arc::new(VideoJobs {
        next: AtomicUsize::new(0),
        jobs,
        totals: Mutex::new((0, 0, 0, 0)),
        dir: dir.to_path_buf(),
        thumbnails: options.thumbnails,
        videos: options.videos,
    });
    let settings = Arc::new(settings.clone());
    let workers = threads.min(shared.jobs.len()).max(1);
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (shared, board, settings) = (shared.clone(), board.clone(), settings.clone());
        handles.push(tokio::task::spawn_blocking(move || {
            video_worker(&shared, &board, &settings)
        }));
    }
    for h in handles {
        h.await
            .expect("a video page worker panicked; this is a bug")?;
    }
    let (pages, thumbs, without, video_bytes) = *shared.totals.lock().expect("not poisoned");
    Ok(BuildReport {
        index: dir.join("index.html"),
        pages: count - 2 + pages,
        thumbnails: thumbs,
        without_frames: without,
        bytes: bytes + video_bytes,
    })
}

struct VideoJobs {
    next: AtomicUsize,
    /// (dataset index, video index, stage outputs).
    jobs: Vec<(usize, usize, Vec<StageOutput>)>,
    /// (pages, thumbnails, videos without frames, bytes).
    totals: Mutex<(usize, usize, usize, u64)>,
    dir: PathBuf,
    thumbnails: bool,
    videos: bool,
}

/// Puts a clip into the site: a hard link where the file system allows, else a copy.
/// Returns the bytes copied (0 for a link). A clip inside a tar shard is copied out of
/// it.
fn place_clip(from: &Path, to: &Path) -> std::io::Result<u64> {
    if media::Member::parse(from).is_some() {
        let copied = media::open_bytes(from)
            .and_then(|mut bytes| std::io::copy(&mut bytes, &mut std::fs::File::create(to)?));
        if copied.is_err() {
            let _ = std::fs::remove_file(to);
        }
        return copied;
    }
    if !std::fs::metadata(from)?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(0);
    }
    std::fs::copy(from, to)
}

fn video_worker(shared: &VideoJobs, board: &Board, settings: &Settings) -> Result<(), Error> {
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some((d, v, stages)) = shared.jobs.get(i) else {
            return Ok(());
        };
        let ds = &board.datasets[*d];
        let video = &ds.videos[*v];
        let mut bytes = 0u64;
        let mut thumbs = 0;
        let frames: FrameTimes = if !shared.thumbnails {
            Err(NoThumbnails::NotBuilt)
        } else if video.status == VideoStatus::Failed {
            Err(NoThumbnails::Unreadable)
        } else {
            match thumbnails(Path::new(&video.path), 1) {
                Ok(list) => {
                    let mut times = Vec::with_capacity(list.len());
                    for (n, t) in list.iter().enumerate() {
                        write(&shared.dir.join(pages::frame_file(video.id, n)), &t.jpeg)?;
                        bytes += t.jpeg.len() as u64;
                        times.push(t.time_s);
                    }
                    thumbs = list.len();
                    Ok(times)
                }
                Err(reason) => Err(reason),
            }
        };
        let clip = if shared.videos && video.status == VideoStatus::Ok {
            let file = pages::media_file(video.id, &video.path);
            match place_clip(Path::new(&video.path), &shared.dir.join(&file)) {
                Ok(copied) => {
                    bytes += copied;
                    Some(format!("../{file}"))
                }
                // The page shows no player; the rest of the site is built.
                Err(e) => {
                    tracing::warn!(video = %video.key, error = %e, "Cannot put a clip into the site.");
                    None
                }
            }
        } else {
            None
        };
        let html = pages::video(ds, video, &frames, stages, clip, settings)?;
        write(
            &shared.dir.join(pages::video_file(video.id)),
            html.as_bytes(),
        )?;
        bytes += html.len() as u64;
        let mut totals = shared.totals.lock().expect("not poisoned");
        totals.0 += 1;
        totals.1 += thumbs;
        totals.2 += usize::from(frames.is_err());
        totals.3 += bytes;
    }
}
