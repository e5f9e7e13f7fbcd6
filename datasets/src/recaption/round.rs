//! One recaption round: every item of the input recaptioned by an image captioner,
//! merged with its original caption, logged, then written as VILA's caption files.
//!
//! The input is read on a blocking thread into a bounded channel; at most
//! `concurrency` items are with the captioner at once (its backend bounds it further);
//! one writer appends each finished item's record to the round's log
//! (`round.jsonl`). A round that is run again (after a crash, SIGKILL or Ctrl-C) skips
//! every item its log already holds, so no item is lost or recorded twice. The caption
//! files and `stats.json` are written from the log, atomically, once the input is
//! exhausted.
//!
//! Videos are shown to the image captioner as a storyboard of four frames sampled by
//! the pipeline's sampler.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Semaphore, mpsc};
use wolf_pipeline::media::{self, Rate, Resize, RgbImage, SampleSettings};
use wolf_pipeline::models::{ImageCaptioner, ImageRequest, Sampling};
use wolf_pipeline::progress::Progress;

use super::input::{InputSettings, Item, Media, Problem, Video, open_input};
use super::merge::{Answer, MergeConfig, merge};
use super::output::{
    CaptionFiles, Done, Failed, OutputError, Record, RoundLog, SpecialistAnswer, read_round,
    write_json_atomic,
};
use super::prompts::recaption_prompt;
use super::stats::{RoundStats, StatsBuilder};

/// What a round does.
#[derive(Clone)]
pub struct RoundPlan {
    pub input: PathBuf,
    /// The round's folder: `round.jsonl`, `captions/`, `stats.json`.
    pub dir: PathBuf,
    pub captioner: Arc<dyn ImageCaptioner>,
    /// Answers the specialists' prompts (None: `captioner`).
    pub specialist: Option<Arc<dyn ImageCaptioner>>,
    pub merge: MergeConfig,
    pub seed: u64,
    pub concurrency: usize,
    pub sampling: Sampling,
    /// Items recorded (captioned or failed) by this run, for the binary's bar.
    pub progress: Arc<Progress>,
}

/// What a round did.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundReport {
    /// Items the log held before this run.
    pub resumed: u64,
    /// Items recorded by this run.
    pub recorded: u64,
    pub stats: RoundStats,
    pub caption_files: Vec<PathBuf>,
    /// Stopped before the input's end (Ctrl-C): no caption file was written.
    pub interrupted: bool,
}

/// A round that could not run.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error(transparent)]
    Input(#[from] super::input::SourceError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("cannot create `{path}`: {source}")]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RoundError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Input(e) => e.kind(),
            Self::Output(e) => e.kind(),
            Self::Folder { .. } => "output_write_failed",
        }
    }
}

/// The round's log, caption folder and statistics file.
pub fn log_path(dir: &Path) -> PathBuf {
    dir.join("round.jsonl")
}

pub fn captions_dir(dir: &Path) -> PathBuf {
    dir.join("captions")
}

pub fn stats_path(dir: &Path) -> PathBuf {
    dir.join("stats.json")
}

/// Runs (or resumes) a round; stops early when `stop` is set.
pub async fn run_round(plan: &RoundPlan, stop: Arc<AtomicBool>) -> Result<RoundReport, RoundError> {
    std::fs::create_dir_all(&plan.dir).map_err(|source| RoundError::Folder {
        path: plan.dir.clone(),
        source,
    })?;
    let log = log_path(&plan.dir);
    // What the log holds already: items by (shard, key), and key-less problems.
    let mut done: HashSet<(String, String)> = HashSet::new();
    let mut seen_problems: HashSet<(String, String, String)> = HashSet::new();
    if log.exists() {
        // Opening cuts a half-written last line away before it is read.
        drop(RoundLog::open(&log)?);
        for record in read_round(&log)? {
            match record? {
                Record::Done(d) => {
                    done.insert((d.shard, d.key));
                }
                Record::Failed(f) => match f.key {
                    Some(key) => {
                        done.insert((f.shard, key));
                    }
                    None => {
                        seen_problems.insert((f.shard, f.problem, f.message));
                    }
                },
            }
        }
    }
    let resumed = done.len() as u64;
    let done = Arc::new(done);
    let settings = InputSettings {
        require_caption: plan.merge.template.needs_original(),
        ..InputSettings::default()
    };
    let skip = done.clone();
    let items = open_input(&plan.input, settings)?
        .with_skip(move |shard, key| skip.contains(&(shard.to_owned(), key.to_owned())));

    // Reader → bounded channel → items in flight → writer.
    let concurrency = plan.concurrency.max(1);
    let (item_tx, mut item_rx) = mpsc::channel::<Result<Item, Problem>>(concurrency * 2);
    let reader_stop = stop.clone();
    let reader = tokio::task::spawn_blocking(move || {
        for item in items {
            if reader_stop.load(Ordering::Relaxed) || item_tx.blocking_send(item).is_err() {
                break;
            }
        }
    });
    let (record_tx, mut record_rx) = mpsc::channel::<Record>(concurrency * 2);
    let mut writer_log = RoundLog::open(&log)?;
    let progress = plan.progress.clone();
    let writer = tokio::spawn(async move {
        let mut recorded = 0u64;
        while let Some(record) = record_rx.recv().await {
            writer_log.append(&record)?;
            progress.finish_one(matches!(record, Record::Done(_)));
            recorded += 1;
            if recorded.is_multiple_of(256) {
                writer_log.sync()?;
            }
        }
        writer_log.sync()?;
        Ok::<u64, OutputError>(recorded)
    });
    let slots = Arc::new(Semaphore::new(concurrency));
    let plan_shared = Arc::new(plan.clone());
    while let Some(next) = item_rx.recv().await {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let item = match next {
            Ok(item) => item,
            Err(problem) => {
                if problem.key.is_none()
                    && !seen_problems.insert((
                        problem.shard.clone(),
                        problem.kind.to_owned(),
                        problem.message.clone(),
                    ))
                {
                    continue;
                }
                let _ = record_tx.send(Record::Failed(Failed::from(&problem))).await;
                continue;
            }
        };
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (tx, plan, stop) = (record_tx.clone(), plan_shared.clone(), stop.clone());
        tokio::spawn(async move {
            if let Some(record) = recaption(&plan, item, &stop).await {
                let _ = tx.send(record).await;
            }
            drop(permit);
        });
    }
    drop(item_rx);
    let _ = reader.await;
    // Wait for the items in flight.
    let _ = slots.acquire_many(concurrency as u32).await;
    drop(record_tx);
    let recorded = writer
        .await
        .expect("the log writer panicked; this is a bug")?;
    let interrupted = stop.load(Ordering::Relaxed);
    if interrupted {
        return Ok(RoundReport {
            resumed,
            recorded,
            stats: stats_of(&log)?,
            caption_files: Vec::new(),
            interrupted,
        });
    }
    let dir = plan.dir.clone();
    let caption_files = tokio::task::spawn_blocking(move || write_caption_files(&dir))
        .await
        .expect("the caption file writer panicked; this is a bug")?;
    let stats = stats_of(&log)?;
    write_json_atomic(&stats_path(&plan.dir), &stats)?;
    Ok(RoundReport {
        resumed,
        recorded,
        stats,
        caption_files,
        interrupted,
    })
}

fn stats_of(log: &Path) -> Result<RoundStats, OutputError> {
    let mut builder = StatsBuilder::new();
    for record in read_round(log)? {
        builder.add_record(&record?);
    }
    Ok(builder.build())
}

/// Writes one caption file per shard from the round's log.
/// A shard whose every item failed still gets a file (`{}`), so that VILA's loader
/// finds one for every shard.
fn write_caption_files(dir: &Path) -> Result<Vec<PathBuf>, OutputError> {
    let mut files = CaptionFiles::new(captions_dir(dir));
    let mut failed_shards = std::collections::BTreeSet::new();
    for record in read_round(&log_path(dir))? {
        match record? {
            Record::Done(d) => files.add(&d.shard, &d.key, d.media, &d.caption)?,
            Record::Failed(f) => {
                failed_shards.insert(f.shard);
            }
        }
    }
    let open: HashSet<String> = files.open_shards().map(str::to_owned).collect();
    let mut written = Vec::new();
    for shard in failed_shards.iter().filter(|s| !open.contains(*s)) {
        written.push(files.finish_shard(shard)?);
    }
    written.extend(files.finish()?);
    Ok(written)
}

/// One item recaptioned and merged: its record, or `None` when stopped.
async fn recaption(plan: &RoundPlan, item: Item, stop: &AtomicBool) -> Option<Record> {
    let kind = item.media.kind();
    let failed = |problem: &str, message: String| {
        Record::Failed(Failed {
            shard: item.shard.clone(),
            key: Some(item.key.clone()),
            media: Some(kind),
            problem: problem.to_owned(),
            message,
        })
    };
    let image = match tokio::task::spawn_blocking({
        let media = item.media.clone();
        move || image_of(&media)
    })
    .await
    {
        Ok(Ok(image)) => image,
        Ok(Err(e)) => return Some(failed(e.kind(), e.to_string())),
        Err(e) => return Some(failed("decode_failed", e.to_string())),
    };
    let ask = |prompt: String| ImageRequest {
        images: vec![image.clone()],
        prompt,
        system: None,
        sampling: plan.sampling.clone(),
    };
    let prompt = recaption_prompt(plan.seed, &item.shard, &item.key, kind);
    let recaption = if plan.merge.template.needs_recaption() {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        match plan
            .captioner
            .caption_images(&ask(prompt.text.to_owned()))
            .await
        {
            Ok(reply) => Some(reply.text),
            Err(e) => return Some(failed(e.kind(), e.to_string())),
        }
    } else {
        None
    };
    let mut answers = Vec::new();
    for specialist in &plan.merge.specialists {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let question = specialist.prompt(kind);
        match plan
            .specialist
            .as_ref()
            .unwrap_or(&plan.captioner)
            .caption_images(&ask(question.text.to_owned()))
            .await
        {
            Ok(reply) => answers.push(SpecialistAnswer {
                specialist: *specialist,
                prompt_version: question.version.to_owned(),
                answer: reply.text,
            }),
            Err(e) => return Some(failed(e.kind(), e.to_string())),
        }
    }
    let pairs: Vec<Answer> = plan
        .merge
        .specialists
        .iter()
        .zip(&answers)
        .map(|(s, a)| Answer {
            question: s.prompt(kind).text,
            answer: &a.answer,
        })
        .collect();
    let caption = match merge(
        plan.merge.template,
        item.original.as_deref(),
        recaption.as_deref(),
        &pairs,
    ) {
        Ok(c) => c,
        Err(e) => return Some(failed(e.kind(), e.to_string())),
    };
    let done = Done {
        shard: item.shard.clone(),
        key: item.key.clone(),
        media: kind,
        prompt_version: None,
        prompt: None,
        original: item.original.clone(),
        recaption,
        answers,
        caption,
        notes: item.notes.iter().map(Into::into).collect(),
    };
    let done = if plan.merge.template.needs_recaption() {
        done.with_prompt(prompt)
    } else {
        done
    };
    Some(Record::Done(done))
}

/// Why an item gives the captioner no picture.
#[derive(Debug, thiserror::Error)]
enum PictureError {
    #[error("the image cannot be decoded: {0}")]
    Image(#[source] image::ImageError),
    #[error("cannot write the video to a temporary file: {0}")]
    Temporary(#[source] std::io::Error),
    /// The video's frames could not be sampled or laid out; the message is the media
    /// error's own.
    #[error("{0}")]
    Frames(#[source] media::MediaError),
}

impl PictureError {
    /// The kind recorded for the item: a picture that is not there is the input's
    /// fault (`corrupt_member`); a temporary file that cannot be written is ours.
    fn kind(&self) -> &'static str {
        match self {
            Self::Image(_) | Self::Frames(_) => "corrupt_member",
            Self::Temporary(_) => "decode_failed",
        }
    }
}

/// The picture the captioner sees: the image, or a storyboard of a video's frames.
fn image_of(media: &Media) -> Result<RgbImage, PictureError> {
    match media {
        Media::Image(bytes) => image::load_from_memory(bytes)
            .map(|i| i.to_rgb8())
            .map_err(PictureError::Image),
        Media::Video(video) => {
            let temporary;
            let path = match video {
                Video::File(path) => path.as_path(),
                Video::Bytes { bytes, extension } => {
                    temporary = tempfile::Builder::new()
                        .suffix(&format!(".{extension}"))
                        .tempfile()
                        .map_err(PictureError::Temporary)?;
                    std::fs::write(temporary.path(), bytes).map_err(PictureError::Temporary)?;
                    temporary.path()
                }
            };
            media::init();
            let settings = SampleSettings {
                rate: Rate::Count(4),
                resize: Resize::Fit(384),
                ..SampleSettings::default()
            };
            let sampled = media::sample_frames(path, &settings, 1).map_err(PictureError::Frames)?;
            let frames: Vec<RgbImage> = sampled.frames.into_iter().map(|f| f.image).collect();
            media::storyboard(&frames, 2).map_err(PictureError::Frames)
        }
    }
}
