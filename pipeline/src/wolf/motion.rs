//! The motion caption (METHOD.md section 1 item 4): boxes of each object in each frame
//! become trajectories, and the trajectories become words.
//!
//! Boxes are `[xmin, ymin, xmax, ymax]` on the 0–999 scale and come from two places:
//! grounded image captions ([`parse_grounded`] reads `a red circle [120, 340, 260, 480]`)
//! or dataset annotations ([`from_boxes_json`] reads one clip of the synthetic world's
//! `boxes.json`); both give the same labels for the same object. [`associate`] links
//! the detections of successive frames into [`Track`]s, [`describe`] measures each
//! track and names its motion in the synthetic world's words ("moves from left to
//! right", "stays in the top left corner", "bounces around the frame"), and the result
//! is either a sentence of its own ([`sentence`], when no LLM is configured) or facts
//! for an LLM to verbalise ([`llm_facts`]). Everything here is pure: no I/O, no
//! threads, and no input makes it panic.

use serde_json::Value;

/// Largest coordinate of the 0–999 scale.
const SCALE_MAX: f64 = 999.0;
/// A grounded coordinate may say 1000 (some models scale to 0–1000); it is clamped.
const PARSE_MAX: f64 = 1000.0;
/// A detection that overlaps no track's last box may still join the nearest one whose
/// last centre is at most this far (0–999 units).
const MAX_JUMP: f64 = 400.0;
/// Below this net displacement, never [`STILL_REACH`] from its first centre, an object
/// stays where it is.
const STILL_NET: f64 = 60.0;
/// The jitter tolerance of a still object: how far its centre may wander.
const STILL_REACH: f64 = 90.0;
/// A path this many times longer than the net displacement (and longer than
/// [`BOUNCE_PATH`]) is a bounce.
const BOUNCE_RATIO: f64 = 2.5;
/// See [`BOUNCE_RATIO`].
const BOUNCE_PATH: f64 = 400.0;
/// A turn along one axis with at least this much travel before and after it is a
/// bounce: the synthetic world's bouncers often reflect only once, which leaves the
/// path less than [`BOUNCE_RATIO`] times the net displacement; box jitter of grounded
/// captions is far below this.
const TURN_LEG: f64 = 100.0;

/// One labelled box in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Lower-case, without a leading article: `red circle`, `sign "open"`.
    pub label: String,
    /// `[xmin, ymin, xmax, ymax]` on the 0–999 scale.
    pub bbox: [f64; 4],
}

/// The detections of one sampled frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameDetections {
    /// Seconds from the start of the clip.
    pub time: f64,
    pub detections: Vec<Detection>,
}

/// One object followed through the frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub label: String,
    /// `(time in seconds, box)`, in time order.
    pub points: Vec<(f64, [f64; 4])>,
}

/// What one track did, measured and named.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackMotion {
    pub label: String,
    /// Centre of the first box (0–999 units).
    pub start: (f64, f64),
    /// Centre of the last box (0–999 units).
    pub end: (f64, f64),
    /// Path length of the centre (0–999 units).
    pub distance: f64,
    /// Time of the first box, in seconds.
    pub start_s: f64,
    /// From the first box to the last, in seconds.
    pub duration_s: f64,
    /// Units per second; 0 when the duration is 0.
    pub speed: f64,
    /// In the synthetic world's words: `moves from left to right`.
    pub phrase: String,
}

/// Every `[a, b, c, d]` box in a grounded caption with the words before it.
///
/// The label is the text between this box and the previous box or separator (the
/// start, `,`, ` and `, ` while `, `;`, `.`, a line break, or a stray bracket),
/// trimmed, without a leading article, lower-cased. Boxes without exactly four
/// numbers, with a value outside `0..=1000` (1000 is clamped to 999), with
/// `xmin >= xmax` or `ymin >= ymax`, or with no words before them are skipped.
pub fn parse_grounded(caption: &str) -> Vec<Detection> {
    let mut detections = Vec::new();
    // Where the words of the next label may start: after the last bracket group.
    let mut label_from = 0;
    let mut search_from = 0;
    while let Some(open) = caption[search_from..].find('[').map(|i| search_from + i) {
        let rest = &caption[open + 1..];
        let Some(close) = rest.find(']').map(|i| open + 1 + i) else {
            break;
        };
        let inner = &caption[open + 1..close];
        // A `[` inside means this `[` was not the box's: start again from the inner one.
        if let Some(inner_open) = inner.rfind('[') {
            search_from = open + 1 + inner_open;
            continue;
        }
        if let Some(bbox) = parse_box(inner) {
            let label = label_before(&caption[label_from..open]);
            if !label.is_empty() {
                detections.push(Detection { label, bbox });
            }
        }
        label_from = close + 1;
        search_from = close + 1;
    }
    detections
}

/// `120, 340, 260, 480` as a valid box on the 0–999 scale.
fn parse_box(inner: &str) -> Option<[f64; 4]> {
    let mut values = [0.0; 4];
    let mut count = 0;
    for part in inner.split(',') {
        let value = parse_number(part.trim())?;
        *values.get_mut(count)? = value;
        count += 1;
    }
    if count != 4 {
        return None;
    }
    let [xmin, ymin, xmax, ymax] = values.map(|v| v.min(SCALE_MAX));
    (xmin < xmax && ymin < ymax).then_some([xmin, ymin, xmax, ymax])
}

/// A plain decimal in `0..=1000`: digits with at most one point, no sign or exponent.
fn parse_number(text: &str) -> Option<f64> {
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    let points = text.bytes().filter(|&b| b == b'.').count();
    if digits == 0 || points > 1 || digits + points != text.len() {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    (0.0..=PARSE_MAX).contains(&value).then_some(value)
}

/// The label at the end of `text`: the words after its last separator.
fn label_before(text: &str) -> String {
    // ASCII lower-casing keeps byte offsets, so positions found in it hold in `text`.
    let lower = text.to_ascii_lowercase();
    let start = [",", " and ", " while ", ";", ".", "\n", "]"]
        .iter()
        .filter_map(|sep| lower.rfind(sep).map(|at| at + sep.len()))
        .max()
        .unwrap_or(0);
    // A stray `[` (as in `[[1, 2, 3, 4]`) is not part of the words.
    normalise_label(&text[start..].replace('[', " "))
}

/// Lower-case, single spaces, no leading article: the form both sources share.
fn normalise_label(text: &str) -> String {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    let words = match words.split_first() {
        Some((first, rest)) if matches!(first.as_str(), "a" | "an" | "the") => rest,
        _ => &words[..],
    };
    words.join(" ")
}

/// Links detections across frames into tracks, keeps the tracks seen in at least
/// `min_fraction` of the frames, and names each by the label most of its detections
/// carry.
///
/// Frames are taken in time order. A detection may join a track whose label has its
/// colour (the label's first word, when it is a colour; else the same label: a
/// captioner misreads a shape far more often than a colour). Of the candidates, the
/// same label before the same colour, then the best overlap (IoU) of the track's
/// predicted box (its last box moved by its last step) or, when none overlaps, the
/// nearest predicted centre within 400 units; otherwise it starts a new track. Pairs
/// are taken greedily from the best, so two detections of one frame never join the
/// same track. Tracks come out by first appearance, then label.
pub fn associate(frames: &[FrameDetections], min_fraction: f64) -> Vec<Track> {
    let mut order: Vec<&FrameDetections> = frames.iter().collect();
    order.sort_by(|a, b| a.time.total_cmp(&b.time));
    // Each track's detections' labels, in order.
    let mut tracks: Vec<(Track, Vec<String>)> = Vec::new();
    for frame in order {
        // (0 = same label / 1 = same colour, 0 = overlaps / 1 = near, key to minimise,
        // detection, track)
        let mut pairs: Vec<(u8, u8, f64, usize, usize)> = Vec::new();
        for (d, detection) in frame.detections.iter().enumerate() {
            for (t, (track, labels)) in tracks.iter().enumerate() {
                let Some(last) = labels.last() else {
                    continue;
                };
                let kin = if *last == detection.label {
                    0
                } else if colour(last).is_some() && colour(last) == colour(&detection.label) {
                    1
                } else {
                    continue;
                };
                let predicted = predicted_box(track);
                let overlap = iou(&predicted, &detection.bbox);
                if overlap > 0.0 {
                    pairs.push((kin, 0, -overlap, d, t));
                } else {
                    let gap = distance(centre(&predicted), centre(&detection.bbox));
                    if gap <= MAX_JUMP {
                        pairs.push((kin, 1, gap, d, t));
                    }
                }
            }
        }
        // Same label before same colour, overlaps before mere nearness, best first;
        // ties by position, so it is deterministic.
        pairs.sort_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then(a.2.total_cmp(&b.2))
                .then((a.3, a.4).cmp(&(b.3, b.4)))
        });
        let mut joined: Vec<Option<usize>> = vec![None; frame.detections.len()];
        let mut taken = vec![false; tracks.len()];
        for (_, _, _, d, t) in pairs {
            if joined[d].is_none() && !taken[t] {
                joined[d] = Some(t);
                taken[t] = true;
            }
        }
        for (detection, track) in frame.detections.iter().zip(joined) {
            let point = (frame.time, detection.bbox);
            match track {
                Some(t) => {
                    tracks[t].0.points.push(point);
                    tracks[t].1.push(detection.label.clone());
                }
                None => tracks.push((
                    Track {
                        label: detection.label.clone(),
                        points: vec![point],
                    },
                    vec![detection.label.clone()],
                )),
            }
        }
    }
    let frame_count = frames.len() as f64;
    let mut tracks: Vec<Track> = tracks
        .into_iter()
        .filter(|(track, _)| track.points.len() as f64 >= min_fraction * frame_count)
        .map(|(track, labels)| Track {
            label: majority(&labels),
            ..track
        })
        .collect();
    // Tracks were created in time order; the stable sort keeps creation order for ties.
    tracks.sort_by(|a, b| {
        let first = |t: &Track| t.points.first().map_or(f64::INFINITY, |p| p.0);
        first(a)
            .total_cmp(&first(b))
            .then_with(|| a.label.cmp(&b.label))
    });
    tracks
}

/// The share of a clip's sampled frames a track must be seen in to be kept (the
/// default of `[wolf] motion_min_track_fraction`): a misread label seen once is noise.
pub const MIN_TRACK_FRACTION: f64 = 1.0 / 3.0;

/// Colour words a label may start with.
const COLOURS: &[&str] = &[
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
    "gray", "grey", "cyan", "magenta",
];

/// The colour a label starts with, if any.
fn colour(label: &str) -> Option<&str> {
    let first = label.split_whitespace().next()?;
    COLOURS.contains(&first).then_some(first)
}

/// The label most detections carry; ties go to the one seen first.
fn majority(labels: &[String]) -> String {
    let mut best: Option<(&String, usize)> = None;
    for label in labels {
        let count = labels.iter().filter(|l| *l == label).count();
        if best.is_none_or(|(_, c)| count > c) {
            best = Some((label, count));
        }
    }
    best.map(|(l, _)| l.clone()).unwrap_or_default()
}

/// Where a track's box should be in the next frame: its last box moved by its last
/// step (constant velocity).
fn predicted_box(track: &Track) -> [f64; 4] {
    match track.points.as_slice() {
        [.., (_, before), (_, last)] => {
            let (dx, dy) = (
                centre(last).0 - centre(before).0,
                centre(last).1 - centre(before).1,
            );
            [last[0] + dx, last[1] + dy, last[2] + dx, last[3] + dy]
        }
        [.., (_, last)] => *last,
        [] => [0.0; 4],
    }
}

/// Intersection over union; 0 for empty or invalid boxes.
fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = a[2].min(b[2]) - a[0].max(b[0]);
    let h = a[3].min(b[3]) - a[1].max(b[1]);
    if !(w > 0.0 && h > 0.0) {
        return 0.0;
    }
    let intersection = w * h;
    let area = |r: &[f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    let union = area(a) + area(b) - intersection;
    if union > 0.0 {
        intersection / union
    } else {
        0.0
    }
}

fn centre(bbox: &[f64; 4]) -> (f64, f64) {
    ((bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0)
}

fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    (b.0 - a.0).hypot(b.1 - a.1)
}

/// Measures a track and names its motion.
///
/// In order: under 60 units of net displacement, never 90 from its start, it `stays` in the
/// cell of the 3x3 grid its mean centre falls in; a path over 400 units and 2.5 times
/// the net displacement, a turn along one axis with 100 units of travel on either side,
/// or a moving object that ends where it began `bounces around the frame`; otherwise
/// the net displacement's direction names it (image y grows downwards). An empty track
/// is taken as still in the centre of the frame.
pub fn describe(track: &Track) -> TrackMotion {
    let mut points = track.points.clone();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let centres: Vec<(f64, f64)> = points.iter().map(|(_, bbox)| centre(bbox)).collect();
    let middle = (SCALE_MAX / 2.0, SCALE_MAX / 2.0);
    let start = centres.first().copied().unwrap_or(middle);
    let end = centres.last().copied().unwrap_or(middle);
    let path: f64 = centres.windows(2).map(|w| distance(w[0], w[1])).sum();
    let start_s = points.first().map_or(0.0, |p| p.0);
    let duration_s = points.last().map_or(0.0, |p| p.0) - start_s;
    let speed = if duration_s > 0.0 {
        path / duration_s
    } else {
        0.0
    };
    TrackMotion {
        label: track.label.clone(),
        start,
        end,
        distance: path,
        start_s,
        duration_s,
        speed,
        phrase: phrase(&centres, path),
    }
}

fn phrase(centres: &[(f64, f64)], path: f64) -> String {
    let (Some(&start), Some(&end)) = (centres.first(), centres.last()) else {
        return still_phrase(1, 1).to_owned();
    };
    let (dx, dy) = (end.0 - start.0, end.1 - start.1);
    let net = dx.hypot(dy);
    // Still: little net displacement, and never far from where it began. Path length
    // is not asked: grounded boxes jitter, and jitter adds up over frames.
    let reach = centres
        .iter()
        .map(|c| distance(start, *c))
        .fold(0.0, f64::max);
    if net < STILL_NET && reach < STILL_REACH {
        let n = centres.len() as f64;
        let mean_x = centres.iter().map(|c| c.0).sum::<f64>() / n;
        let mean_y = centres.iter().map(|c| c.1).sum::<f64>() / n;
        return still_phrase(cell(mean_y), cell(mean_x)).to_owned();
    }
    let bounces = (path > BOUNCE_PATH && path > BOUNCE_RATIO * net)
        || turns(centres.iter().map(|c| c.0))
        || turns(centres.iter().map(|c| c.1))
        || net < STILL_NET;
    if bounces {
        return "bounces around the frame".to_owned();
    }
    if dx.abs() > 2.0 * dy.abs() {
        if dx > 0.0 {
            "moves from left to right"
        } else {
            "moves from right to left"
        }
        .to_owned()
    } else if dy.abs() > 2.0 * dx.abs() {
        if dy > 0.0 {
            "moves from top to bottom"
        } else {
            "moves from bottom to top"
        }
        .to_owned()
    } else {
        let side = |top: bool, left: bool| {
            format!(
                "the {} {}",
                if top { "top" } else { "bottom" },
                if left { "left" } else { "right" }
            )
        };
        let (from_top, from_left) = (dy > 0.0, dx > 0.0);
        format!(
            "moves diagonally from {} to {}",
            side(from_top, from_left),
            side(!from_top, !from_left)
        )
    }
}

/// Whether the coordinates travel at least [`TURN_LEG`] one way and then at least
/// [`TURN_LEG`] back (a zigzag filter: smaller wiggles are ignored).
fn turns(values: impl Iterator<Item = f64>) -> bool {
    let mut anchor = None;
    // +1 or -1 once the first leg is long enough, with the farthest value reached.
    let mut leg: Option<(f64, f64)> = None;
    for v in values {
        let Some(a) = anchor else {
            anchor = Some(v);
            continue;
        };
        match leg {
            None => {
                if (v - a).abs() >= TURN_LEG {
                    leg = Some(((v - a).signum(), v));
                }
            }
            Some((sign, extreme)) => {
                if (v - extreme) * sign > 0.0 {
                    leg = Some((sign, v));
                } else if (extreme - v) * sign >= TURN_LEG {
                    return true;
                }
            }
        }
    }
    false
}

/// Which third (0, 1, 2) of the 0–999 scale a centre falls in, as scene.rs's `cell`.
fn cell(value: f64) -> usize {
    let third = (3.0 * value / SCALE_MAX).floor();
    if third >= 2.0 {
        2
    } else if third >= 1.0 {
        1
    } else {
        0
    }
}

/// Where a still object is, for a row and a column of the 3x3 grid: the words of the
/// synthetic world's captions too (`wolf-datasets` calls this), so the two cannot drift.
pub fn still_phrase(row: usize, column: usize) -> &'static str {
    match (row, column) {
        (0, 0) => "stays in the top left corner",
        (0, 1) => "stays at the top",
        (0, _) => "stays in the top right corner",
        (1, 0) => "stays on the left",
        (1, 1) => "stays in the center",
        (1, _) => "stays on the right",
        (_, 0) => "stays in the bottom left corner",
        (_, 1) => "stays at the bottom",
        (_, _) => "stays in the bottom right corner",
    }
}

/// The motion caption without an LLM: `The red circle moves from left to right while
/// the blue square stays in the top left corner.`; `None` when there are no tracks.
/// Clauses are joined as the synthetic world joins them: one as is, two with `while`,
/// more with commas and a final `and`.
pub fn sentence(motions: &[TrackMotion]) -> Option<String> {
    let clauses: Vec<String> = motions
        .iter()
        .map(|m| format!("the {} {}", m.label, m.phrase))
        .collect();
    let body = match clauses.as_slice() {
        [] => return None,
        [one] => one.clone(),
        [first, second] => format!("{first} while {second}"),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    let mut chars = body.chars();
    let first = chars.next()?;
    Some(format!(
        "{}{}.",
        first.to_uppercase().collect::<String>(),
        chars.as_str()
    ))
}

/// One line per track for an LLM to verbalise: `red circle: centre (190, 410) at 0.0 s
/// to (760, 402) at 3.5 s; path 575 units (0-999 frame scale), 164 units/s; moves from
/// left to right`.
pub fn llm_facts(motions: &[TrackMotion]) -> String {
    motions
        .iter()
        .map(|m| {
            format!(
                "{}: centre ({:.0}, {:.0}) at {:.1} s to ({:.0}, {:.0}) at {:.1} s; path {:.0} \
                 units (0-999 frame scale), {:.0} units/s; {}",
                m.label,
                m.start.0,
                m.start.1,
                m.start_s,
                m.end.0,
                m.end.1,
                m.start_s + m.duration_s,
                m.distance,
                m.speed,
                m.phrase
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A clip entry of a `boxes.json` that is not what [`from_boxes_json`] reads; the
/// message says what and where.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BoxesError(String);

impl From<String> for BoxesError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for BoxesError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}

/// The detections of one clip's entry of the synthetic world's `boxes.json`:
/// `{"width", "height", "fps", "frames", "objects": [{"label", "motion", "boxes":
/// [[xmin, ymin, xmax, ymax], ...]}]}`, one box per object per frame.
///
/// Frame `i` is at `i / fps` seconds (pass the entry's own `fps` for the clip's
/// frames). Labels are normalised as [`parse_grounded`] normalises them, so the sign
/// `sign "OPEN"` becomes `sign "open"`.
pub fn from_boxes_json(clip: &Value, fps: f64) -> Result<Vec<FrameDetections>, BoxesError> {
    if !(fps.is_finite() && fps > 0.0) {
        return Err(format!("the frame rate must be positive, not `{fps}`").into());
    }
    let objects = clip
        .get("objects")
        .ok_or("the clip has no `objects`")?
        .as_array()
        .ok_or("`objects` is not a list")?;
    let frames = match clip.get("frames") {
        None => None,
        Some(value) => Some(
            value
                .as_u64()
                .ok_or_else(|| format!("`frames` is not a count: `{value}`"))?,
        ),
    };
    let mut per_frame: Vec<Vec<Detection>> = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let raw_label = object
            .get("label")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("object {i} has no string `label`"))?;
        let label = normalise_label(raw_label);
        if label.is_empty() {
            return Err(format!("object {i} has an empty label `{raw_label}`").into());
        }
        let boxes = object
            .get("boxes")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("object {i} (`{raw_label}`) has no list `boxes`"))?;
        if let Some(frames) = frames
            && boxes.len() as u64 != frames
        {
            return Err(format!(
                "object {i} (`{raw_label}`) has {} boxes for {frames} frames",
                boxes.len()
            )
            .into());
        }
        if per_frame.len() < boxes.len() {
            per_frame.resize_with(boxes.len(), Vec::new);
        }
        for (f, value) in boxes.iter().enumerate() {
            let bbox = json_box(value).ok_or_else(|| {
                format!(
                    "object {i} (`{raw_label}`) frame {f}: `{value}` is not a box \
                     [xmin, ymin, xmax, ymax] with 0 <= min < max <= 999"
                )
            })?;
            per_frame[f].push(Detection {
                label: label.clone(),
                bbox,
            });
        }
    }
    if let Some(frames) = frames {
        let frames =
            usize::try_from(frames).map_err(|_| format!("`frames` is too large: {frames}"))?;
        if per_frame.len() < frames {
            per_frame.resize_with(frames, Vec::new);
        }
    }
    Ok(per_frame
        .into_iter()
        .enumerate()
        .map(|(f, detections)| FrameDetections {
            time: f as f64 / fps,
            detections,
        })
        .collect())
}

/// `[xmin, ymin, xmax, ymax]` of numbers in `0..=999` with `min < max`.
fn json_box(value: &Value) -> Option<[f64; 4]> {
    let items = value.as_array()?;
    let [a, b, c, d] = items.as_slice() else {
        return None;
    };
    let mut bbox = [0.0; 4];
    for (slot, item) in bbox.iter_mut().zip([a, b, c, d]) {
        let v = item.as_f64()?;
        if !(0.0..=SCALE_MAX).contains(&v) {
            return None;
        }
        *slot = v;
    }
    (bbox[0] < bbox[2] && bbox[1] < bbox[3]).then_some(bbox)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn detection(label: &str, bbox: [f64; 4]) -> Detection {
        Detection {
            label: label.to_owned(),
            bbox,
        }
    }

    /// A square box of side 60 centred on `(x, y)`.
    fn at(x: f64, y: f64) -> [f64; 4] {
        [x - 30.0, y - 30.0, x + 30.0, y + 30.0]
    }

    fn track(label: &str, centres: &[(f64, f64)]) -> Track {
        Track {
            label: label.to_owned(),
            points: centres
                .iter()
                .enumerate()
                .map(|(i, &(x, y))| (i as f64 * 0.5, at(x, y)))
                .collect(),
        }
    }

    fn phrase_of(centres: &[(f64, f64)]) -> String {
        describe(&track("x", centres)).phrase
    }

    #[test]
    fn parse_grounded_reads_the_issue_s_example() {
        let found = parse_grounded(
            "a red circle [120, 340, 260, 480] and a sign \"OPEN\" [600, 80, 720, 200] on a \
             white background",
        );
        assert_eq!(
            found,
            [
                detection("red circle", [120.0, 340.0, 260.0, 480.0]),
                detection("sign \"open\"", [600.0, 80.0, 720.0, 200.0]),
            ]
        );
    }

    #[test]
    fn parse_grounded_takes_decimals_tight_commas_separators_and_clamps_1000() {
        let found = parse_grounded(
            "The Blue  Square [10.5,20,30.25,40]; an orange triangle [0, 0, 1000, 1000]. \
             The car [1,2,3,4], while a dog [5,6,7,8]\nAn Apple [9, 9, 19, 19]",
        );
        assert_eq!(
            found,
            [
                detection("blue square", [10.5, 20.0, 30.25, 40.0]),
                detection("orange triangle", [0.0, 0.0, 999.0, 999.0]),
                detection("car", [1.0, 2.0, 3.0, 4.0]),
                detection("dog", [5.0, 6.0, 7.0, 8.0]),
                detection("apple", [9.0, 9.0, 19.0, 19.0]),
            ]
        );
        // Two boxes in a row: the second has no words of its own.
        let found = parse_grounded("a cat [1, 2, 3, 4] [5, 6, 7, 8] a dog [10, 20, 30, 40]");
        assert_eq!(
            found,
            [
                detection("cat", [1.0, 2.0, 3.0, 4.0]),
                detection("dog", [10.0, 20.0, 30.0, 40.0]),
            ]
        );
    }

    #[test]
    fn parse_grounded_skips_malformed_boxes() {
        let text = "a [1, 2, 3] b [1, 2, 3, 4, 5] c [1, 2, 3, 1001] d [5, 2, 5, 9] \
                    e [1, 9, 3, 9] f [-1, 2, 3, 4] g [1e2, 2, 300, 4] h [1..2, 2, 3, 4] \
                    i [nan, 2, 3, 4] j [inf, 2, 3, 4] k [1, 2, , 4] l [] m [a, b, c, d] \
                    n [ 1 , 2 , 3 , 4 ]";
        assert_eq!(parse_grounded(text), [detection("n", [1.0, 2.0, 3.0, 4.0])]);
    }

    #[test]
    fn parse_grounded_never_panics_on_garbage() {
        let long = "[".repeat(10_000) + &"]".repeat(10_000);
        let garbage = [
            "",
            "[",
            "]",
            "][",
            "[[[1, 2, 3, 4]",
            "a [1, 2, 3, 4",
            "ünïcödé 🐺 [1, 2, 3, 4] İstanbul [5, 6, 7, 8]",
            "🐺[1,2,3,4]🐺[",
            "İİİ and İ [10, 20, 30, 40]",
            "\u{0}[\u{0}]",
            ",,,;;;...[1,2,3,4]",
            "[99999999999999999999999999999999999999999, 1, 2, 3]",
            "x [1,2,3,4]] y [[5,6,7,8]",
            &long,
        ];
        for text in garbage {
            for found in parse_grounded(text) {
                let [x0, y0, x1, y1] = found.bbox;
                assert!(x0 < x1 && y0 < y1 && x1 <= 999.0 && y1 <= 999.0, "{text}");
                assert!(!found.label.is_empty());
            }
        }
        assert_eq!(
            parse_grounded("ünïcödé 🐺 [1, 2, 3, 4] İstanbul [5, 6, 7, 8]"),
            [
                detection("ünïcödé 🐺", [1.0, 2.0, 3.0, 4.0]),
                detection("i̇stanbul", [5.0, 6.0, 7.0, 8.0]),
            ]
        );
        assert_eq!(
            parse_grounded("x [1,2,3,4]] y [[5,6,7,8]"),
            [
                detection("x", [1.0, 2.0, 3.0, 4.0]),
                detection("y", [5.0, 6.0, 7.0, 8.0])
            ]
        );
    }

    #[test]
    fn crossing_objects_with_different_labels_keep_their_tracks() {
        // The red circle goes right, the blue square goes left; they overlap mid-way.
        let frames: Vec<FrameDetections> = (0..5)
            .map(|i| {
                let step = f64::from(i) * 200.0;
                FrameDetections {
                    time: f64::from(i),
                    detections: vec![
                        detection("blue square", at(900.0 - step, 500.0)),
                        detection("red circle", at(100.0 + step, 500.0)),
                    ],
                }
            })
            .collect();
        let tracks = associate(&frames, 0.0);
        assert_eq!(tracks.len(), 2);
        assert_eq!(tracks[0].label, "blue square");
        assert_eq!(tracks[1].label, "red circle");
        let phrases: Vec<String> = tracks.iter().map(|t| describe(t).phrase).collect();
        assert_eq!(
            phrases,
            ["moves from right to left", "moves from left to right"]
        );
    }

    #[test]
    fn two_objects_of_one_label_are_kept_apart_and_frames_are_taken_in_time_order() {
        // Two red circles, one high and one low, both drifting right; frames given out
        // of order and the detections listed in a different order in each frame.
        let mut frames: Vec<FrameDetections> = (0..6)
            .map(|i| {
                let x = 100.0 + f64::from(i) * 40.0;
                let mut detections = vec![
                    detection("red circle", at(x, 150.0)),
                    detection("red circle", at(x + 10.0, 800.0)),
                ];
                if i % 2 == 1 {
                    detections.reverse();
                }
                FrameDetections {
                    time: f64::from(i) / 2.0,
                    detections,
                }
            })
            .collect();
        frames.reverse();
        let tracks = associate(&frames, 0.0);
        assert_eq!(tracks.len(), 2);
        for track in &tracks {
            assert_eq!(track.points.len(), 6);
            let y = centre(&track.points[0].1).1;
            assert!(track.points.iter().all(|(_, b)| centre(b).1 == y));
            assert!(track.points.windows(2).all(|w| w[0].0 < w[1].0));
        }
        // Both appear at 0 s with one label: creation order (the frame's order) stays.
        assert_eq!(centre(&tracks[0].points[0].1).1, 150.0);
    }

    #[test]
    fn a_misread_shape_joins_its_colour_the_majority_names_it_and_flickers_are_dropped() {
        // A red circle moving right, read as a red square in one frame; a green star
        // seen once (a misread); a blue square that only jitters.
        let frames: Vec<FrameDetections> = (0..6)
            .map(|i| {
                let x = 100.0 + f64::from(i) * 150.0;
                let red = if i == 2 { "red square" } else { "red circle" };
                let jitter = if i % 2 == 0 { 12.0 } else { -12.0 };
                let mut detections = vec![
                    detection(red, at(x, 300.0)),
                    detection("blue square", at(500.0 + jitter, 800.0 - jitter)),
                ];
                if i == 4 {
                    detections.push(detection("green star", at(100.0, 100.0)));
                }
                FrameDetections {
                    time: f64::from(i) / 2.0,
                    detections,
                }
            })
            .collect();
        let all = associate(&frames, 0.0);
        assert_eq!(all.len(), 3, "{all:?}");
        let kept = associate(&frames, MIN_TRACK_FRACTION);
        let labels: Vec<&str> = kept.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["blue square", "red circle"]);
        assert_eq!(kept[1].points.len(), 6);
        let phrases: Vec<String> = kept.iter().map(|t| describe(t).phrase).collect();
        // The jitter's path (about 170 units) does not make the square move.
        assert_eq!(phrases, ["stays at the bottom", "moves from left to right"]);
    }

    #[test]
    fn a_far_jump_starts_a_new_track_and_a_near_one_joins_without_overlap() {
        let frames = [
            FrameDetections {
                time: 0.0,
                detections: vec![detection("car", at(100.0, 100.0))],
            },
            FrameDetections {
                time: 1.0,
                detections: vec![detection("car", at(400.0, 100.0))],
            },
            FrameDetections {
                time: 2.0,
                detections: vec![detection("car", at(900.0, 900.0))],
            },
        ];
        let tracks = associate(&frames, 0.0);
        assert_eq!(tracks.len(), 2);
        assert_eq!(tracks[0].points.len(), 2);
        assert_eq!(tracks[1].points.len(), 1);
        assert!(associate(&[], 0.0).is_empty());
    }

    #[test]
    fn straight_moves_are_named_by_their_direction() {
        let line = |from: (f64, f64), to: (f64, f64)| -> Vec<(f64, f64)> {
            (0..=8)
                .map(|i| {
                    let t = f64::from(i) / 8.0;
                    (from.0 + t * (to.0 - from.0), from.1 + t * (to.1 - from.1))
                })
                .collect()
        };
        let cases = [
            ((100.0, 500.0), (850.0, 520.0), "moves from left to right"),
            ((850.0, 500.0), (100.0, 480.0), "moves from right to left"),
            ((500.0, 850.0), (510.0, 100.0), "moves from bottom to top"),
            ((500.0, 100.0), (480.0, 850.0), "moves from top to bottom"),
            (
                (100.0, 100.0),
                (850.0, 800.0),
                "moves diagonally from the top left to the bottom right",
            ),
            (
                (850.0, 100.0),
                (100.0, 800.0),
                "moves diagonally from the top right to the bottom left",
            ),
            (
                (100.0, 800.0),
                (850.0, 100.0),
                "moves diagonally from the bottom left to the top right",
            ),
            (
                (850.0, 800.0),
                (100.0, 100.0),
                "moves diagonally from the bottom right to the top left",
            ),
        ];
        for (from, to, words) in cases {
            assert_eq!(phrase_of(&line(from, to)), words, "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn still_objects_stay_in_their_cell_with_scene_rs_words() {
        let cases = [
            ((100.0, 100.0), "stays in the top left corner"),
            ((500.0, 100.0), "stays at the top"),
            ((900.0, 100.0), "stays in the top right corner"),
            ((100.0, 500.0), "stays on the left"),
            ((500.0, 500.0), "stays in the center"),
            ((900.0, 500.0), "stays on the right"),
            ((100.0, 900.0), "stays in the bottom left corner"),
            ((500.0, 900.0), "stays at the bottom"),
            ((900.0, 900.0), "stays in the bottom right corner"),
        ];
        for ((x, y), words) in cases {
            // A little jitter, as grounded boxes have.
            let jittered = [(x, y), (x + 8.0, y - 5.0), (x - 6.0, y + 4.0), (x + 3.0, y)];
            assert_eq!(phrase_of(&jittered), words);
        }
        let m = describe(&track("blue square", &[(100.0, 100.0)]));
        assert_eq!(m.phrase, "stays in the top left corner");
        assert_eq!((m.distance, m.duration_s, m.speed), (0.0, 0.0, 0.0));
        let empty = describe(&Track {
            label: "ghost".into(),
            points: vec![],
        });
        assert_eq!(empty.phrase, "stays in the center");
    }

    #[test]
    fn bounces_are_named_by_path_length_or_by_a_turn() {
        // Back and forth across the frame: path far longer than the net displacement.
        let zigzag = [
            (100.0, 300.0),
            (800.0, 500.0),
            (200.0, 700.0),
            (850.0, 600.0),
            (300.0, 400.0),
        ];
        assert_eq!(phrase_of(&zigzag), "bounces around the frame");
        // One reflection, as the synthetic world's bouncers often make: path only 1.5
        // times the net displacement, but a clear turn along x.
        let once = [
            (500.0, 100.0),
            (700.0, 300.0),
            (900.0, 500.0),
            (700.0, 700.0),
            (600.0, 800.0),
        ];
        assert_eq!(phrase_of(&once), "bounces around the frame");
        // Out and back to where it began.
        let back = [(400.0, 500.0), (500.0, 500.0), (410.0, 500.0)];
        assert_eq!(phrase_of(&back), "bounces around the frame");
        // Small wobble on a straight mover is no bounce.
        let wobble = [
            (100.0, 500.0),
            (300.0, 520.0),
            (500.0, 490.0),
            (700.0, 515.0),
            (900.0, 500.0),
        ];
        assert_eq!(phrase_of(&wobble), "moves from left to right");
    }

    #[test]
    fn describe_measures_centres_path_and_speed() {
        let t = Track {
            label: "red circle".into(),
            points: vec![
                (1.0, [100.0, 380.0, 280.0, 440.0]),
                (2.0, [400.0, 380.0, 580.0, 440.0]),
                (4.5, [700.0, 372.0, 820.0, 432.0]),
            ],
        };
        let m = describe(&t);
        assert_eq!(m.start, (190.0, 410.0));
        assert_eq!(m.end, (760.0, 402.0));
        assert_eq!(m.start_s, 1.0);
        assert_eq!(m.duration_s, 3.5);
        let expected = 300.0 + 270.0_f64.hypot(8.0);
        assert!((m.distance - expected).abs() < 1e-9);
        assert!((m.speed - expected / 3.5).abs() < 1e-9);
        assert_eq!(m.phrase, "moves from left to right");
        assert_eq!(
            llm_facts(&[m]),
            "red circle: centre (190, 410) at 1.0 s to (760, 402) at 4.5 s; path 570 units \
             (0-999 frame scale), 163 units/s; moves from left to right"
        );
    }

    fn motion(label: &str, phrase: &str) -> TrackMotion {
        TrackMotion {
            label: label.to_owned(),
            start: (0.0, 0.0),
            end: (0.0, 0.0),
            distance: 0.0,
            start_s: 0.0,
            duration_s: 0.0,
            speed: 0.0,
            phrase: phrase.to_owned(),
        }
    }

    #[test]
    fn sentence_joins_clauses_like_the_world_s_captions() {
        let a = motion("red circle", "moves from left to right");
        let b = motion("blue square", "stays in the top left corner");
        let c = motion("sign \"open\"", "stays at the top");
        assert_eq!(sentence(&[]), None);
        assert_eq!(
            sentence(std::slice::from_ref(&a)).as_deref(),
            Some("The red circle moves from left to right.")
        );
        assert_eq!(
            sentence(&[a.clone(), b.clone()]).as_deref(),
            Some(
                "The red circle moves from left to right while the blue square stays in the \
                 top left corner."
            )
        );
        assert_eq!(
            sentence(&[a.clone(), b.clone(), c.clone()]).as_deref(),
            Some(
                "The red circle moves from left to right, the blue square stays in the top \
                 left corner and the sign \"open\" stays at the top."
            )
        );
        assert_eq!(llm_facts(&[a, b]).lines().count(), 2);
        assert_eq!(llm_facts(&[]), "");
    }

    #[test]
    fn from_boxes_json_reads_a_clip_of_the_real_format() {
        let clip = json!({
            "width": 320, "height": 240, "fps": 10, "frames": 3,
            "objects": [
                {"label": "red circle", "motion": "left-to-right",
                 "boxes": [[31, 375, 156, 541], [343, 375, 468, 541], [687, 375, 812, 541]]},
                {"label": "sign \"OPEN\"", "motion": "still",
                 "boxes": [[600, 80, 720, 200], [600, 80, 720, 200], [600, 80, 720, 200]]}
            ]
        });
        let frames = from_boxes_json(&clip, 10.0).expect("a valid clip");
        assert_eq!(frames.len(), 3);
        assert_eq!(
            frames.iter().map(|f| f.time).collect::<Vec<_>>(),
            [0.0, 0.1, 0.2]
        );
        assert_eq!(
            frames[1].detections,
            [
                detection("red circle", [343.0, 375.0, 468.0, 541.0]),
                detection("sign \"open\"", [600.0, 80.0, 720.0, 200.0]),
            ]
        );
        // The same labels as a grounded caption of the same frame.
        let grounded = parse_grounded(
            "A red circle [343, 375, 468, 541] and a sign \"OPEN\" [600, 80, 720, 200].",
        );
        assert_eq!(frames[1].detections, grounded);

        let motions: Vec<TrackMotion> = associate(&frames, 0.0).iter().map(describe).collect();
        assert_eq!(
            sentence(&motions).as_deref(),
            Some(
                "The red circle moves from left to right while the sign \"open\" stays at the \
                 top."
            )
        );
    }

    #[test]
    fn from_boxes_json_names_what_is_malformed() {
        let err = |clip: Value| {
            from_boxes_json(&clip, 10.0)
                .expect_err("malformed")
                .to_string()
        };
        assert!(err(json!({})).contains("`objects`"));
        assert!(err(json!({"objects": 3})).contains("not a list"));
        assert!(
            err(json!({"objects": [{"boxes": []}]})).contains("object 0 has no string `label`")
        );
        assert!(err(json!({"objects": [{"label": "car"}]})).contains("`car`"));
        let bad_box =
            err(json!({"objects": [{"label": "car", "boxes": [[1, 2, 3, 4], [5, 6, 5, 9]]}]}));
        assert!(
            bad_box.contains("frame 1") && bad_box.contains("[5,6,5,9]"),
            "{bad_box}"
        );
        assert!(
            err(json!({"objects": [{"label": "car", "boxes": [[1, 2, 3, 1200]]}]}))
                .contains("frame 0")
        );
        let short =
            err(json!({"frames": 2, "objects": [{"label": "car", "boxes": [[1, 2, 3, 4]]}]}));
        assert!(short.contains("1 boxes for 2 frames"), "{short}");
        assert!(err(json!({"frames": "two", "objects": []})).contains("`frames`"));
        assert!(from_boxes_json(&json!({"objects": []}), 0.0).is_err());
        assert!(from_boxes_json(&json!({"objects": []}), f64::NAN).is_err());
        // No objects: frames without detections, and no tracks.
        let empty = from_boxes_json(&json!({"frames": 2, "objects": []}), 2.0).expect("valid");
        assert_eq!(empty.len(), 2);
        assert!(empty.iter().all(|f| f.detections.is_empty()));
        assert!(associate(&empty, 0.0).is_empty());
    }
}
