//! A long video's own stages (issue 16): its cut (TransNetV2's shots, then the segment
//! rule) and its story (the LLM reads the segments' captions in order, with their
//! times, and tells the whole video; in groups, then over the groups' stories, when
//! there are more than `[segments] group`). The segments' stages are the graph of any
//! video, run by the runner over each segment's time span.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::guarded::{Guarded, guarded_stage};
use super::{StageError, StageResult, cached, computed};
use crate::media::Shot;
use crate::store::VideoRow;
use crate::wolf::keys::key;
use crate::wolf::runner::Shared;
use crate::wolf::segments::{Span, StoryMode, segments};
use crate::wolf::{guard, prompts};

/// A long video's cut, as cached under its `segments` key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Cut {
    pub shots: Vec<Shot>,
    /// Frames the shot detector decoded, and their duration.
    pub frames: u64,
    pub duration_s: f64,
    /// Why decoding stopped early: the segments cover what was decoded before.
    pub error: Option<String>,
    pub spans: Vec<Span>,
}

/// The cut of `video` (cached under `key`): its shots and segments; equal windows of
/// its length at intake with `[segments] shots = false`.
pub(crate) async fn cut(shared: &Shared, video: &VideoRow, key: &str) -> Result<Cut, StageError> {
    let settings = &shared.plan.segments;
    if !settings.shots {
        let duration_s = video.duration_s.unwrap_or_default();
        let whole = [Shot {
            first: 0,
            last: 0,
            start_s: 0.0,
            end_s: duration_s,
        }];
        let spans = segments(&whole, duration_s, settings.settings());
        return Ok(Cut {
            shots: Vec::new(),
            frames: 0,
            duration_s,
            error: None,
            spans,
        });
    }
    let value = cached(shared, key, "segments", || async {
        let _permit = shared
            .decode
            .acquire()
            .await
            .expect("the semaphore is never closed; this is a bug");
        let started = Instant::now();
        let path = std::path::PathBuf::from(&video.path);
        let model = Arc::clone(&shared.shot_model);
        let settings = shared.plan.segments.clone();
        let cut = tokio::task::spawn_blocking(move || detect(&model, &path, &settings))
            .await
            .map_err(|e| StageError::new("panic", format!("shot detection panicked: {e}")))??;
        shared.count_time("shots", started);
        let value = serde_json::to_value(&cut).expect("a cut serialises");
        Ok((value, computed(None, "transnetv2-v1")))
    })
    .await?;
    serde_json::from_value(value)
        .map_err(|e| StageError::new("bad_cache", format!("cached `segments` is malformed: {e}")))
}

/// Shots by the shot model (loaded on first use, then kept), and the segments.
#[cfg(feature = "onnx")]
fn detect(
    model: &std::sync::Mutex<Option<crate::models::onnx::ShotModel>>,
    path: &std::path::Path,
    settings: &crate::wolf::segments::SegmentsConfig,
) -> Result<Cut, StageError> {
    use crate::media::ShotError;
    use crate::models::onnx::{SessionOptions, ShotModel};
    let mut model = model.lock().unwrap_or_else(|e| e.into_inner());
    if model.is_none() {
        let file = settings.shot_model_file().ok_or_else(|| {
            StageError::new(
                "load",
                "no shot model: name `[segments] shot_model`, or run `make setup`",
            )
        })?;
        let loaded = ShotModel::load(&file, SessionOptions::default())
            .map_err(|e| StageError::new("load", e.to_string()))?;
        *model = Some(loaded);
    }
    let model = model.as_mut().expect("loaded above");
    let shots = model
        .detect(path, settings.threshold, false)
        .map_err(|e| match e {
            ShotError::Media(e) => StageError::new(e.kind(), e.to_string()),
            ShotError::Model(e) => StageError::new("model", e.to_string()),
        })?;
    if shots.frames == 0 {
        return Err(StageError::new(
            "no_frames",
            "no frame could be decoded for shot detection",
        ));
    }
    let spans = segments(&shots.shots, shots.duration_s, settings.settings());
    Ok(Cut {
        error: shots.error.as_ref().map(ToString::to_string),
        spans,
        frames: shots.frames,
        duration_s: shots.duration_s,
        shots: shots.shots,
    })
}

#[cfg(not(feature = "onnx"))]
fn detect(
    _model: &std::sync::Mutex<Option<()>>,
    _path: &std::path::Path,
    _settings: &crate::wolf::segments::SegmentsConfig,
) -> Result<Cut, StageError> {
    Err(StageError::new(
        "load",
        "this build has no ONNX Runtime for the shot detector: build with the `onnx` feature, \
         or set `[segments] max_seconds = 0`",
    ))
}

/// The story of timed captions `parts` (in order), cached under keys derived from `key`:
/// one request when they fit in a group, else each group's story, then the story of
/// those, until one is left.
pub(crate) async fn story(
    shared: &Shared,
    key: &str,
    parts: Vec<(f64, f64, String)>,
) -> Result<Told, StageError> {
    if shared.plan.segments.story == StoryMode::Joined {
        let captions: Vec<String> = parts.iter().map(|(_, _, t)| prompts::plain(t)).collect();
        return Ok(Told::joined(&captions));
    }
    let group = shared.plan.segments.group;
    let mut level = parts;
    let mut depth = 0;
    loop {
        let mut next = Vec::new();
        for (i, chunk) in level.chunks(group).enumerate() {
            let chunk_key = key_of(key, depth, i, level.len() <= group);
            let told = tell(shared, &chunk_key, chunk).await?;
            let (from, to) = (chunk[0].0, chunk[chunk.len() - 1].1);
            next.push((from, to, told));
        }
        if next.len() == 1 {
            let (_, _, told) = next.pop().expect("one story");
            return Ok(told);
        }
        level = next
            .into_iter()
            .map(|(from, to, t)| (from, to, t.text))
            .collect();
        depth += 1;
    }
}

/// A story, and whether it is its parts' captions joined in order (the one told dropped
/// most of them).
pub(crate) struct Told {
    pub text: String,
    pub joined: bool,
}

impl Told {
    /// The parts' captions in order, as the story.
    fn joined(captions: &[String]) -> Self {
        Self {
            text: captions.join(" "),
            joined: true,
        }
    }
}

/// The key of group `i` at `depth`: the story's own `key` for the last level.
fn key_of(key: &str, depth: usize, i: usize, last: bool) -> String {
    if last {
        key.to_owned()
    } else {
        crate::wolf::keys::key(&[key, "group", &depth.to_string(), &i.to_string()])
    }
}

/// One story request behind the guard; the candidates are the parts' captions. A story
/// that leaves a part untold ([`guard::parts_told`]), stutters ([`guard::stutters`]) or
/// is one part's caption (the guard's consensus pick) is replaced by the parts' captions
/// in order: a video's story must not drop a part of the video, and a told story must
/// read as prose.
async fn tell(
    shared: &Shared,
    key: &str,
    parts: &[(f64, f64, String)],
) -> Result<Told, StageError> {
    let captions: Vec<String> = parts.iter().map(|(_, _, t)| prompts::plain(t)).collect();
    if let [only] = captions.as_slice() {
        let text = only.clone();
        return Ok(Told {
            text,
            joined: false,
        });
    }
    let stage = Guarded {
        stage: "story",
        key,
        prompt: prompts::STORY,
        model: shared.plan.wolf.story_llm(),
        story: true,
        text: prompts::STORY
            .text
            .replace("{captions}", &prompts::story_lines(parts)),
        candidates: parts
            .iter()
            .enumerate()
            .map(|(i, (_, _, text))| (format!("segment:{}", i + 1), prompts::plain(text)))
            .collect(),
    };
    let text = guarded_stage(shared, stage)
        .await?
        .ok_or_else(|| StageError::new("empty", "the story is empty"))?;
    // One part's caption (the guard's consensus pick) tells one part, whatever words
    // it shares with the others.
    if captions.contains(&text)
        || guard::stutters(&text)
        || guard::parts_told(&text, &captions) < captions.len()
    {
        return Ok(Told::joined(&captions));
    }
    Ok(Told {
        text,
        joined: false,
    })
}

/// The key under which a long video's story is cached: apart from its `fusion` key,
/// which holds the story with the segments' captions.
pub(crate) fn story_key(fusion: &str) -> String {
    key(&["story", fusion])
}

/// Stage `stage` of a long video, cached under `key`, from its segments' `results`
/// (one a span, in order): failed with a segment's reason (a cause before a
/// dependency); else the segments' captions as timed lines, the story for `fusion`, and
/// nothing for a stage that writes no caption. The value keeps each segment's caption
/// and span (`segments`: the dense captions).
pub(crate) async fn whole(
    shared: &Shared,
    stage: &str,
    key: &str,
    spans: &[Span],
    results: Vec<StageResult>,
) -> StageResult {
    if results.len() != spans.len() {
        return Err(StageError::new(
            "bug",
            format!(
                "{} of {} segments told stage `{stage}`; this is a bug",
                results.len(),
                spans.len()
            ),
        ));
    }
    let mut failure: Option<StageError> = None;
    for (i, (span, result)) in spans.iter().zip(&results).enumerate() {
        let Err(e) = result else { continue };
        if failure
            .as_ref()
            .is_none_or(|f| f.kind == "dependency" && e.kind != "dependency")
        {
            let at = format!(
                "{}–{}",
                prompts::clock(span.start_s),
                prompts::clock(span.end_s)
            );
            failure = Some(StageError::new(
                &e.kind,
                format!("segment {} ({at}): {}", i + 1, e.message),
            ));
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    let parts: Vec<(f64, f64, String)> = spans
        .iter()
        .zip(results)
        .filter_map(|(span, r)| {
            r.ok()
                .flatten()
                .map(|text| (span.start_s, span.end_s, text))
        })
        .collect();
    if parts.is_empty() || crate::wolf::stage_source(stage).is_none() {
        return Ok(None);
    }
    let kind = stage.split(':').next().unwrap_or(stage);
    let value = cached(shared, key, kind, || async {
        let segments: Vec<serde_json::Value> = parts
            .iter()
            .map(|(start_s, end_s, caption)| {
                serde_json::json!({ "start_s": start_s, "end_s": end_s, "caption": caption })
            })
            .collect();
        if stage != "fusion" {
            let lines: Vec<String> = parts
                .iter()
                .map(|(from, to, text)| {
                    format!("{}–{}: {text}", prompts::clock(*from), prompts::clock(*to))
                })
                .collect();
            let model = shared.plan.wolf.stage_model(stage);
            let value = serde_json::json!({ "caption": lines.join("\n"), "segments": segments });
            return Ok((value, computed(model, "segments-v1")));
        }
        let story_key = story_key(key);
        let told = story(shared, &story_key, parts.clone()).await?;
        let mut value = match shared.store.result(&story_key).await? {
            Some(stored) => serde_json::from_str(&stored.value).unwrap_or_default(),
            None => serde_json::json!({}),
        };
        if told.joined {
            value["guard"]["path"] = "joined".into();
        }
        value["caption"] = told.text.into();
        value["segments"] = segments.into();
        let llm = shared.plan.wolf.story_llm();
        Ok((value, computed(Some(llm), prompts::STORY.version)))
    })
    .await?;
    Ok(super::caption_of(&value))
}
