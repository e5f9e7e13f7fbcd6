//! ONNX inference: wolf's `onnx` backend against Python onnxruntime
//! (`bench/onnx_python.py` in `.wolf/venv`, the same ONNX Runtime version) running the
//! same model folder with the same greedy loop and thread count.
//!
//! - Captioner: the fixture frame captioner (merged decoder) on the four committed
//!   frames, images/s at batch 1 and 8.
//! - KV cache: the same captioner with the merged decoder against the plain one (the
//!   whole prefix every step), both in wolf, on its ~30-token grounded captions.
//! - Embedder: the default MiniLM embedder, sentences/s at batch 32.
//!
//! Each side runs for a fixed time after a warm-up pass; the sides alternate
//! [`ROUNDS`] times and the medians of their rates are compared.

use std::path::Path;

use super::Row;

pub(super) async fn onnx(work: &Path) -> anyhow::Result<Vec<Row>> {
    tokio::task::block_in_place(|| real::onnx(work))
}

mod real {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::{Duration, Instant};

    use anyhow::{Context as _, bail};
    use serde::Deserialize;
    use wolf_pipeline::home::Home;
    use wolf_pipeline::media::RgbImage;
    use wolf_pipeline::models::onnx::{
        DecoderForm, Search, SentenceEmbedder, SessionOptions, VisionCaptioner,
    };

    use super::super::{Row, run_ok};

    const THREADS: usize = 2;
    /// Seconds each side runs per round.
    const SECONDS: f64 = 4.0;
    /// Alternations of the two sides.
    const ROUNDS: usize = 3;
    const EMBED_BATCH: usize = 32;

    #[derive(Debug, Deserialize)]
    struct PythonRate {
        #[serde(alias = "sentences_per_s")]
        images_per_s: Option<f64>,
        #[serde(default)]
        texts: Vec<String>,
    }

    /// Items per second, from items done in a time.
    fn rate(items: usize, elapsed: Duration) -> f64 {
        items as f64 / elapsed.as_secs_f64()
    }

    fn median(mut values: Vec<f64>) -> f64 {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    }

    /// Runs `batch` (one batch of work, returning how many items it did) after one
    /// warm-up call, for at least `SECONDS`; returns items per second.
    fn timed(mut batch: impl FnMut() -> anyhow::Result<usize>) -> anyhow::Result<f64> {
        batch()?;
        let started = Instant::now();
        let mut items = 0;
        while started.elapsed().as_secs_f64() < SECONDS {
            items += batch()?;
        }
        Ok(rate(items, started.elapsed()))
    }

    fn python() -> anyhow::Result<PathBuf> {
        let home = Home::locate().context("no `.wolf/` folder: run `make setup`")?;
        let python = home.root().join("venv/bin/python");
        if !python.is_file() {
            bail!("`{}` is missing: run `make venv`", python.display());
        }
        Ok(python)
    }

    fn script() -> PathBuf {
        crate::checkout_path("bench/onnx_python.py")
    }

    fn fixtures() -> PathBuf {
        crate::checkout_path("fixtures")
    }

    fn python_rate(args: &[String]) -> anyhow::Result<PythonRate> {
        let out = run_ok(Command::new(python()?).arg(script()).args(args))?;
        let line = out.lines().last().unwrap_or_default();
        serde_json::from_str(line).with_context(|| format!("bad anchor output: {out}"))
    }

    pub(super) fn onnx(work: &Path) -> anyhow::Result<Vec<Row>> {
        let folder = fixtures().join("models/frame-captioner");
        let files: Vec<PathBuf> = (0..4)
            .map(|k| fixtures().join(format!("inputs/frame_{k}.png")))
            .collect();
        let images: Vec<RgbImage> = files
            .iter()
            .map(|f| Ok(image::open(f)?.to_rgb8()))
            .collect::<anyhow::Result<_>>()?;
        let options = SessionOptions {
            threads: THREADS,
            ..SessionOptions::default()
        };
        let mut rows = Vec::new();
        for batch in [1usize, 8] {
            let mut captioner =
                VisionCaptioner::load(&folder, options, DecoderForm::Merged, Search::default())?;
            // The list both sides caption in batches of `batch`: the four inputs, cycled
            // to fill one batch.
            let count = batch.max(files.len());
            let list_files: Vec<&PathBuf> = (0..count).map(|i| &files[i % files.len()]).collect();
            let list: Vec<RgbImage> = (0..count)
                .map(|i| images[i % images.len()].clone())
                .collect();
            let mut ours = Vec::new();
            let mut theirs = Vec::new();
            let mut their_texts = Vec::new();
            for _ in 0..ROUNDS {
                let mut args: Vec<String> = vec![
                    "captioner".into(),
                    "--model".into(),
                    folder.display().to_string(),
                    "--batch".into(),
                    batch.to_string(),
                    "--threads".into(),
                    THREADS.to_string(),
                    "--seconds".into(),
                    SECONDS.to_string(),
                    "--decoder".into(),
                    "merged".into(),
                    "--images".into(),
                ];
                args.extend(list_files.iter().map(|f| f.display().to_string()));
                let anchor = python_rate(&args)?;
                theirs.push(anchor.images_per_s.context("no images_per_s")?);
                their_texts = anchor.texts;
                let mut k = 0;
                ours.push(timed(|| {
                    let start = (k * batch) % list.len();
                    k += 1;
                    let chunk = &list[start..(start + batch).min(list.len())];
                    let captions = captioner.caption(chunk, &|| false)?;
                    Ok(captions.len())
                })?);
            }
            let mut our_texts = Vec::new();
            for chunk in list.chunks(batch) {
                let captions = captioner.caption(chunk, &|| false)?;
                our_texts.extend(captions.into_iter().map(|c| c.text));
            }
            let (ours, theirs) = (median(ours), median(theirs));
            let same = if our_texts == their_texts {
                "same captions"
            } else {
                "CAPTIONS DIFFER"
            };
            rows.push(Row {
                benchmark: format!(
                    "ONNX captioner, batch {batch} (frame captioner, merged decoder)"
                ),
                wolf: format!("{ours:.1} images/s"),
                anchor: format!("{theirs:.1} images/s (Python onnxruntime, same loop)"),
                ratio: format!("{:.2}×", ours / theirs),
                goal: "≥ 1.0×".into(),
                note: format!("{THREADS} threads, greedy; {same}"),
            });
        }

        // KV cache: merged against plain, both in wolf.
        let mut merged =
            VisionCaptioner::load(&folder, options, DecoderForm::Merged, Search::default())?;
        let mut plain =
            VisionCaptioner::load(&folder, options, DecoderForm::Plain, Search::default())?;
        let tokens: Vec<u32> = merged
            .caption(&images, &|| false)?
            .iter()
            .map(|c| c.tokens)
            .collect();
        let mean_tokens = tokens.iter().sum::<u32>() as f64 / tokens.len() as f64;
        let (mut with_cache, mut without) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            for (decoder, out) in [(&mut merged, &mut with_cache), (&mut plain, &mut without)] {
                let mut k = 0;
                out.push(timed(|| {
                    k = (k + 1) % images.len();
                    decoder.caption(std::slice::from_ref(&images[k]), &|| false)?;
                    Ok(1)
                })?);
            }
        }
        let (with_cache, without) = (median(with_cache), median(without));
        rows.push(Row {
            benchmark: "ONNX KV cache (merged decoder against plain), batch 1".into(),
            wolf: format!("{with_cache:.1} images/s merged"),
            anchor: format!("{without:.1} images/s plain"),
            ratio: format!("{:.2}× speed-up", with_cache / without),
            goal: "report".into(),
            note: format!("frame captioner, {mean_tokens:.0} tokens a caption on average"),
        });

        // Embedder.
        let home = Home::locate().context("no `.wolf/` folder: run `make setup`")?;
        let embedder_folder = home.default_embedder();
        let sentences = embedder_sentences();
        let list = work.join("embedder_sentences.txt");
        std::fs::write(&list, sentences.join("\n"))?;
        let mut embedder = SentenceEmbedder::load(&embedder_folder, options)?;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let anchor = python_rate(&[
                "embedder".into(),
                "--model".into(),
                embedder_folder.display().to_string(),
                "--sentences".into(),
                list.display().to_string(),
                "--batch".into(),
                EMBED_BATCH.to_string(),
                "--threads".into(),
                THREADS.to_string(),
                "--seconds".into(),
                SECONDS.to_string(),
            ])?;
            theirs.push(anchor.images_per_s.context("no sentences_per_s")?);
            let mut k = 0;
            ours.push(timed(|| {
                let start = (k * EMBED_BATCH) % sentences.len();
                k += 1;
                let chunk: Vec<String> = (0..EMBED_BATCH)
                    .map(|i| sentences[(start + i) % sentences.len()].clone())
                    .collect();
                Ok(embedder.embed(&chunk)?.len())
            })?);
        }
        let (ours, theirs) = (median(ours), median(theirs));
        rows.push(Row {
            benchmark: format!("ONNX embedder, batch {EMBED_BATCH} (all-MiniLM-L6-v2)"),
            wolf: format!("{ours:.0} sentences/s"),
            anchor: format!("{theirs:.0} sentences/s (Python onnxruntime)"),
            ratio: format!("{:.2}×", ours / theirs),
            goal: "≥ 1.0×".into(),
            note: format!(
                "{THREADS} threads, {} sentences of 8-40 words",
                sentences.len()
            ),
        });
        Ok(rows)
    }

    /// Caption-like sentences of varied length, made from the synthetic world's words.
    fn embedder_sentences() -> Vec<String> {
        let colours = ["red", "green", "blue", "yellow", "purple", "orange"];
        let shapes = ["circle", "square", "triangle"];
        let moves = [
            "moves from left to right",
            "moves diagonally from the top left to the bottom right",
            "bounces around the frame",
            "stays in the top left corner",
            "moves from bottom to top",
        ];
        (0..256)
            .map(|i| {
                let clauses = 1 + i % 4;
                let parts: Vec<String> = (0..clauses)
                    .map(|c| {
                        let k = i * 7 + c * 3;
                        format!(
                            "a {} {} {}",
                            colours[k % colours.len()],
                            shapes[(k / 2) % shapes.len()],
                            moves[(k / 3) % moves.len()]
                        )
                    })
                    .collect();
                format!("{} on a white background.", parts.join(" while "))
            })
            .collect()
    }
}
