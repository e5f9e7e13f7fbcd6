//! The true facts of a world, read from its `boxes.json`: `{"clip_00000.mp4":
//! {"width", "height", "fps", "frames", "background", "objects": [{"label", "motion",
//! "boxes"}, ...]}, ...}` as `wolf synth` writes it.
//!
//! Each shape (label `red circle`) gives an object fact and a motion fact. Its motion
//! phrase comes from its motion tag and, where the tag does not say it all, its boxes on
//! the 0–999 scale: a `still` shape stays in the cell of the 3x3 grid its first box's
//! centre is in, a `diagonal` one goes from the corner it starts nearest to the opposite
//! one (the signs of its net displacement). The sign (label `sign "OPEN"`) gives a sign
//! fact, the background a background fact. Reading is strict: a label, tag or
//! background outside the world's vocabulary is an error naming the clip, because the
//! extraction could never state it and recall would be capped without a word said.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;
use wolf_pipeline::world::{
    Background, Cell, Diagonal, Motion, SIGN_WORDS, object_label, parse_object_label, sign_word,
    third,
};

use super::{Fact, TruthError};

/// The largest coordinate of the 0–999 scale: a box centre's doubled coordinate is
/// measured against twice this.
const SCALE_MAX: i64 = 999;

/// The true facts of each clip of a world, by video key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorldTruth {
    clips: BTreeMap<String, ClipTruth>,
}

/// The true facts of one clip.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClipTruth {
    pub facts: BTreeSet<Fact>,
}

impl WorldTruth {
    /// Reads and parses a `boxes.json` file.
    pub fn read(path: &Path) -> Result<Self, TruthError> {
        let text = std::fs::read_to_string(path).map_err(|source| TruthError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// Reads the `boxes.json` of a dataset's folder.
    pub fn read_folder(folder: &Path) -> Result<Self, TruthError> {
        Self::read(&folder.join(wolf_pipeline::world::BOXES_FILE))
    }

    /// Parses the text of a `boxes.json`.
    pub fn from_json(text: &str) -> Result<Self, TruthError> {
        let value: Value = serde_json::from_str(text).map_err(TruthError::Json)?;
        Self::from_value(&value)
    }

    /// Parses a parsed `boxes.json`.
    pub fn from_value(value: &Value) -> Result<Self, TruthError> {
        let clips = value.as_object().ok_or(TruthError::NotAnObject)?;
        let clips = clips
            .iter()
            .map(|(key, clip)| {
                clip_truth(clip)
                    .map(|truth| (key.clone(), truth))
                    .map_err(|message| TruthError::InvalidClip {
                        clip: key.clone(),
                        message,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { clips })
    }

    /// The truth of the clip with this video key.
    pub fn clip(&self, key: &str) -> Option<&ClipTruth> {
        self.clips.get(key)
    }

    /// Clips, by video key.
    pub fn clips(&self) -> impl Iterator<Item = (&str, &ClipTruth)> {
        self.clips.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.clips.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clips.is_empty()
    }
}

fn clip_truth(clip: &Value) -> Result<ClipTruth, String> {
    let mut facts = BTreeSet::new();
    match clip.get("background") {
        // Worlds written before the truth metric have no background: no fact then.
        None => {}
        Some(value) => {
            let name = value
                .as_str()
                .ok_or_else(|| format!("`background` is not a string: `{value}`"))?;
            let background = Background::from_name(name)
                .ok_or_else(|| format!("`{name}` is not a background of the world"))?;
            facts.insert(Fact::Background {
                colour: background.name().to_owned(),
            });
        }
    }
    let objects = clip
        .get("objects")
        .and_then(Value::as_array)
        .ok_or("the clip has no list `objects`")?;
    for (i, object) in objects.iter().enumerate() {
        let label = object
            .get("label")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("object {i} has no string `label`"))?;
        if let Some(word) = sign_word(label) {
            let word = SIGN_WORDS
                .into_iter()
                .find(|w| *w == word)
                .ok_or_else(|| format!("object {i}: `{word}` is not a sign word of the world"))?;
            facts.insert(Fact::Sign {
                word: word.to_owned(),
            });
            continue;
        }
        let (colour, shape) = parse_object_label(label).ok_or_else(|| {
            format!("object {i}: `{label}` is not a colour and a shape of the world")
        })?;
        let name = object_label(colour.name(), shape);
        let tag = object
            .get("motion")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("object {i} (`{label}`) has no string `motion`"))?;
        let phrase = motion_phrase(tag, object.get("boxes"))
            .map_err(|message| format!("object {i} (`{label}`): {message}"))?;
        facts.insert(Fact::Object {
            object: name.clone(),
        });
        facts.insert(Fact::Motion {
            object: name,
            motion: phrase,
        });
    }
    if facts.is_empty() {
        return Err("the clip has no shape, sign or background: nothing to be true".into());
    }
    Ok(ClipTruth { facts })
}

/// The world's phrase for a shape's motion tag and boxes.
fn motion_phrase(tag: &str, boxes: Option<&Value>) -> Result<String, String> {
    let boxes: Vec<[i64; 4]> = match boxes {
        None => Vec::new(),
        Some(value) => value
            .as_array()
            .ok_or("`boxes` is not a list")?
            .iter()
            .enumerate()
            .map(|(f, b)| {
                json_box(b).ok_or_else(|| {
                    format!("frame {f}: `{b}` is not a box [xmin, ymin, xmax, ymax] of 0..=999")
                })
            })
            .collect::<Result<_, _>>()?,
    };
    // Doubled centres of the first and last boxes.
    let centre = |b: &[i64; 4]| (b[0] + b[2], b[1] + b[3]);
    let ends = boxes
        .first()
        .zip(boxes.last())
        .map(|(a, b)| (centre(a), centre(b)));
    let diagonal = match ends {
        Some((start, end)) if start.0 != end.0 && start.1 != end.1 => {
            Diagonal::from_starts(end.0 > start.0, end.1 > start.1)
        }
        _ if tag == "diagonal" => {
            return Err("a diagonal move needs boxes that move along both axes".into());
        }
        _ => Diagonal::TopLeftToBottomRight,
    };
    let motion = Motion::from_tag(tag, diagonal)
        .ok_or_else(|| format!("`{tag}` is not a motion of the world"))?;
    let cell = match (motion, ends) {
        (Motion::Still, None) => return Err("a still shape needs a box".into()),
        (_, Some((start, _))) => Cell {
            row: third(start.1, 2 * SCALE_MAX),
            column: third(start.0, 2 * SCALE_MAX),
        },
        (_, None) => Cell { row: 1, column: 1 },
    };
    Ok(motion.phrase(cell))
}

/// `[xmin, ymin, xmax, ymax]`: four integers in `0..=999`.
fn json_box(value: &Value) -> Option<[i64; 4]> {
    let items = value.as_array()?;
    let [a, b, c, d] = items.as_slice() else {
        return None;
    };
    let mut bbox = [0; 4];
    for (slot, item) in bbox.iter_mut().zip([a, b, c, d]) {
        *slot = item.as_i64().filter(|v| (0..=SCALE_MAX).contains(v))?;
    }
    Some(bbox)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn clip(objects: Value) -> Value {
        json!({"c": {"background": "gray", "objects": objects}})
    }

    fn facts(objects: Value) -> Vec<String> {
        let world = WorldTruth::from_value(&clip(objects)).expect("valid");
        world
            .clip("c")
            .expect("the clip")
            .facts
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn error(value: Value) -> String {
        WorldTruth::from_value(&value)
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn still_shapes_stay_in_their_cell_and_diagonals_go_their_way() {
        let still =
            |b: [i64; 4]| json!([{"label": "red circle", "motion": "still", "boxes": [b, b]}]);
        assert_eq!(
            facts(still([10, 10, 100, 100])),
            [
                "red circle",
                "red circle stays in the top left corner",
                "gray background"
            ]
        );
        assert_eq!(
            facts(still([450, 450, 550, 550]))[1],
            "red circle stays in the center"
        );
        assert_eq!(
            facts(still([850, 400, 950, 500]))[1],
            "red circle stays on the right"
        );
        let diagonal = |from: [i64; 4], to: [i64; 4]| json!([{"label": "orange triangle", "motion": "diagonal", "boxes": [from, to]}]);
        assert_eq!(
            facts(diagonal([800, 800, 900, 900], [10, 10, 100, 100]))[1],
            "orange triangle moves diagonally from the bottom right to the top left"
        );
        assert_eq!(
            facts(diagonal([10, 800, 100, 900], [800, 10, 900, 100]))[1],
            "orange triangle moves diagonally from the bottom left to the top right"
        );
        // Tags that say it all need no boxes.
        assert_eq!(
            facts(json!([{"label": "blue square", "motion": "up", "boxes": []}]))[1],
            "blue square moves from bottom to top"
        );
    }

    #[test]
    fn the_sign_and_a_world_without_a_background_are_read() {
        let world = WorldTruth::from_json(
            r#"{"a": {"objects": [{"label": "sign \"TAXI\"", "motion": "still",
                "boxes": [[1, 2, 3, 4]]}]}}"#,
        )
        .expect("valid");
        let facts: Vec<String> = world
            .clip("a")
            .expect("a")
            .facts
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(facts, ["sign \"TAXI\""]);
        assert_eq!((world.len(), world.is_empty()), (1, false));
        assert!(WorldTruth::from_json("{}").expect("empty").is_empty());
    }

    #[test]
    fn what_is_outside_the_world_is_an_error_naming_the_clip() {
        let one = |object: Value| error(clip(json!([object])));
        assert_eq!(
            one(json!({"label": "pink hexagon", "motion": "still", "boxes": [[1, 1, 9, 9]]})),
            "clip `c`: object 0: `pink hexagon` is not a colour and a shape of the world"
        );
        assert_eq!(
            one(json!({"label": "sign \"HELLO\"", "motion": "still", "boxes": []})),
            "clip `c`: object 0: `HELLO` is not a sign word of the world"
        );
        assert_eq!(
            one(json!({"label": "red circle", "motion": "spins", "boxes": [[1, 1, 9, 9]]})),
            "clip `c`: object 0 (`red circle`): `spins` is not a motion of the world"
        );
        assert_eq!(
            one(json!({"label": "red circle", "motion": "still", "boxes": []})),
            "clip `c`: object 0 (`red circle`): a still shape needs a box"
        );
        assert_eq!(
            one(
                json!({"label": "red circle", "motion": "diagonal", "boxes": [[1, 1, 9, 9], [1, 5, 9, 13]]})
            ),
            "clip `c`: object 0 (`red circle`): a diagonal move needs boxes that move along both axes"
        );
        assert_eq!(
            one(json!({"label": "red circle", "motion": "up", "boxes": [[1, 1, 9, 1000]]})),
            "clip `c`: object 0 (`red circle`): frame 0: `[1,1,9,1000]` is not a box [xmin, ymin, \
             xmax, ymax] of 0..=999"
        );
        assert_eq!(
            one(json!({"motion": "up"})),
            "clip `c`: object 0 has no string `label`"
        );
        assert_eq!(
            error(json!({"c": {"background": "pink", "objects": []}})),
            "clip `c`: `pink` is not a background of the world"
        );
        assert_eq!(
            error(json!({"c": {"objects": []}})),
            "clip `c`: the clip has no shape, sign or background: nothing to be true"
        );
        assert_eq!(
            error(json!({"c": {}})),
            "clip `c`: the clip has no list `objects`"
        );
        assert_eq!(
            error(json!([1])),
            "the truth is not an object of clips by video key"
        );
        let bad_json = WorldTruth::from_json("{").expect_err("not JSON");
        assert_eq!(bad_json.kind(), "invalid_json");
        let missing = WorldTruth::read(Path::new("/nonexistent/boxes.json")).expect_err("no file");
        assert_eq!(missing.kind(), "read_failed");
    }
}
