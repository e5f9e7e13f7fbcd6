"""Shared helpers of the fixture-captioner tools: the target grammar, storyboards and
the synthetic world's files.

Imported by `make_fixture_data.py`, `train_captioner.py` and `record_references.py`
(all in `tools/`); plain numpy and the standard library, so that it can be read on its
own. Everything here is deterministic.

The two fixture captioners write text in a small grammar derived from the synthetic
world (`datasets/src/synth/scene.rs`):

* frame captioner, one frame -> grounded description, objects in the fixed order of
  the world's colour list (red, green, blue, yellow, purple, orange), then shape
  (circle, square, triangle), the sign last; boxes `[xmin, ymin, xmax, ymax]` on
  METHOD.md's 0-999 scale, exactly as `boxes.json` gives them:
  `a red circle [120, 340, 260, 480] and a sign "OPEN" [600, 80, 720, 200] on a white background`
  (one item alone, two joined by "and", more by ", " and a final "and");
* storyboard captioner, a 2x2 board of 4 frames -> the motion clauses of the world's
  reference caption, lower-case, in the same fixed object order, joined as the world
  joins them ("while" for two, ", " and "and" for three), no background, no sign:
  `a red circle moves from left to right while a blue square stays in the top left corner`.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 320, 240
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circle", "square", "triangle"]
BACKGROUNDS = ["white", "gray", "black"]
SIGN_WORDS = ["STOP", "OPEN", "EXIT", "SALE", "WOLF", "BUS", "PARK", "TAXI", "CAFE", "BANK"]

# The world's motion phrases (scene.rs `Object::phrase`).
STILL_PHRASES = [
    "stays in the top left corner", "stays at the top", "stays in the top right corner",
    "stays on the left", "stays in the center", "stays on the right",
    "stays in the bottom left corner", "stays at the bottom", "stays in the bottom right corner",
]
MOVE_PHRASES = [
    "moves from left to right", "moves from right to left",
    "moves from bottom to top", "moves from top to bottom",
    "moves diagonally from the top left to the bottom right",
    "moves diagonally from the top right to the bottom left",
    "moves diagonally from the bottom left to the top right",
    "moves diagonally from the bottom right to the top left",
    "bounces around the frame",
]
PHRASES = STILL_PHRASES + MOVE_PHRASES

# Share of an object's own pixels that must show for the frame captioner to name it
# (shapes drawn later cover earlier ones and the sign).
VISIBLE_SHAPE = 0.5
VISIBLE_SIGN = 0.5

# Special tokens and their ids (fixed: config.json and generation_config.json use them).
SPECIAL = ["<pad>", "<s>", "</s>", "<unk>"]
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3


def vocabulary() -> list[str]:
    """Every token of both grammars: specials, words, punctuation, numbers 0-999."""
    words = ["a", "an", *COLOURS, *SHAPES, "sign", *[f'"{w}"' for w in SIGN_WORDS],
             "[", ",", "]", "and", "while", "on", *BACKGROUNDS, "background"]
    for phrase in PHRASES:
        words.extend(phrase.split())
    out: list[str] = []
    for w in SPECIAL + words + [str(i) for i in range(1000)]:
        if w not in out:
            out.append(w)
    return out


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def label_key(label: str) -> tuple[int, int]:
    """Fixed order of objects: colour, then shape; the sign last."""
    if label.startswith("sign"):
        return (len(COLOURS), 0)
    colour, shape = label.split()
    return (COLOURS.index(colour), SHAPES.index(shape))


def join_items(items: list[str], two: str) -> str:
    if len(items) == 1:
        return items[0]
    if len(items) == 2:
        return f"{items[0]} {two} {items[1]}"
    return ", ".join(items[:-1]) + " and " + items[-1]


def frame_text(objects: list[dict], background: str) -> str:
    """objects: [{"label": "red circle" | 'sign "OPEN"', "box": [x1, y1, x2, y2]}]."""
    items = []
    for o in sorted(objects, key=lambda o: label_key(o["label"])):
        b = ", ".join(str(int(v)) for v in o["box"])
        items.append(f"{article(o['label'])} {o['label']} [{b}]")
    body = join_items(items, "and") if items else "nothing"
    return f"{body} on {article(background)} {background} background"


def storyboard_text(clauses: list[tuple[str, str]]) -> str:
    """clauses: [(label, phrase)] for every shape (not the sign)."""
    items = [f"{article(l)} {l} {p}" for l, p in sorted(clauses, key=lambda c: label_key(c[0]))]
    return join_items(items, "while")


def parse_caption(caption: str, labels: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """The background and each shape's phrase, read off the world's reference caption."""
    text = caption[0].lower() + caption[1:]
    background = next(b for b in BACKGROUNDS if f" on {article(b)} {b} background." in text)
    clauses = []
    for label in labels:
        at = text.index(f" {label} ") if f" {label} " in text else text.index(f"{label} ")
        rest = text[at:].lstrip()[len(label) + 1:]
        phrase = max((p for p in PHRASES if rest.startswith(p)), key=len)
        clauses.append((label, phrase))
    return background, clauses


def unit_to_px(v: int, extent: int) -> int:
    """Inverse of scene.rs `scale_999` (exact: 999 > extent, so the map is one-to-one)."""
    return int(round(v * extent / 999))


def shape_mask(shape: str, s: int) -> np.ndarray:
    """render.rs: the pixels of a shape in its s x s box."""
    dy, dx = np.mgrid[0:s, 0:s]
    if shape == "square":
        return np.ones((s, s), bool)
    if shape == "circle":
        cx, cy = 2 * dx + 1 - s, 2 * dy + 1 - s
        return cx * cx + cy * cy <= s * s
    return 2 * np.abs(2 * dx + 1 - s) <= 2 * dy + 1


def visible_objects(clip: dict, frame: int) -> list[dict]:
    """The objects of `frame` (boxes.json entry `clip`) that show enough to be named,
    with their boxes and the share of their pixels that shows. Draw order: the sign,
    then the shapes in the order of boxes.json (the scene's order)."""
    owner = np.full((HEIGHT, WIDTH), -1, np.int16)
    masks = {}
    objs = clip["objects"]
    order = [i for i, o in enumerate(objs) if o["label"].startswith("sign")] + \
            [i for i, o in enumerate(objs) if not o["label"].startswith("sign")]
    for i in order:
        o = objs[i]
        x1, y1, x2, y2 = o["boxes"][frame]
        px1, py1, px2, py2 = (unit_to_px(x1, WIDTH), unit_to_px(y1, HEIGHT),
                              unit_to_px(x2, WIDTH), unit_to_px(y2, HEIGHT))
        if o["label"].startswith("sign"):
            m = np.ones((py2 - py1, px2 - px1), bool)
        else:
            m = shape_mask(o["label"].split()[1], px2 - px1)
        full = np.zeros((HEIGHT, WIDTH), bool)
        full[py1:py2, px1:px2] = m
        masks[i] = full
        owner[full] = i
    out = []
    for i, o in enumerate(objs):
        share = float((owner == i).sum()) / max(1, int(masks[i].sum()))
        limit = VISIBLE_SIGN if o["label"].startswith("sign") else VISIBLE_SHAPE
        out.append({"label": o["label"], "box": list(o["boxes"][frame]),
                    "visible": round(share, 4), "named": share >= limit})
    return out


# ---------------------------------------------------------------- the pipeline's side

PROMPTS_RS = Path(__file__).resolve().parent.parent / "pipeline" / "src" / "wolf" / "prompts.rs"


def _rust_string(raw: str) -> str:
    """The value of a Rust string literal's body: escapes, and a backslash at a line's
    end skipping the newline and the next line's leading white space."""
    out, i = [], 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", '"': '"', "'": "'", "\\": "\\"}
    while i < len(raw):
        c = raw[i]
        if c != "\\":
            out.append(c)
            i += 1
        elif raw[i + 1] == "\n":
            i += 2
            while i < len(raw) and raw[i] in " \t\r\n":
                i += 1
        else:
            out.append(escapes[raw[i + 1]])
            i += 2
    return "".join(out)


def pipeline_prompt(name: str) -> tuple[str, str]:
    """(version, text) of `pub const NAME: Prompt` in pipeline/src/wolf/prompts.rs, so
    that the captioner is trained on the very words the pipeline sends."""
    src = PROMPTS_RS.read_text()
    m = re.search(r'pub const %s: Prompt = Prompt \{\s*version: "([^"]*)",\s*text: "((?:[^"\\]|\\.)*)",'
                  % re.escape(name), src, re.S)
    if not m:
        raise ValueError(f"no prompt {name} in {PROMPTS_RS}")
    return m.group(1), _rust_string(m.group(2))


def frame_prompt(previous: str | None) -> str:
    """The prompt of one cascade frame, built as the pipeline's `caption_frame` builds it
    (pipeline/src/wolf/stages/cascade.rs): FRAME alone, or CASCADE with `{previous}` filled, a
    newline, then FRAME. The `onnx` captioner passes it as the decoder's prefix when
    the folder's config.json has `prompt_prefix`."""
    frame = pipeline_prompt("FRAME")[1]
    if previous is None:
        return frame
    return pipeline_prompt("CASCADE")[1].replace("{previous}", previous) + "\n" + frame


def pipeline_frame_indices(n: int, count: int = 8) -> list[int]:
    """The frames the pipeline samples from a clip of n frames: the centres of `count`
    equal segments (pipeline/src/media/sample.rs; `count` is 2 per second bounded to
    4..8 by examples/demo.toml, so 8 for the world's 4-8 s clips)."""
    return [min(n - 1, int((k + 0.5) * n / count)) for k in range(count)]


def decode_clip(path: Path) -> np.ndarray:
    """All frames of an mp4 as uint8 (n, 240, 320, 3), RGB, decoded by ffmpeg."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, HEIGHT, WIDTH, 3)


def storyboard_indices(n: int) -> list[int]:
    """The 4 frames of the canonical storyboard: the centres of 4 equal segments."""
    return [min(n - 1, int((k + 0.5) * n / 4)) for k in range(4)]


def half(frame: np.ndarray) -> np.ndarray:
    """320x240 -> 160x120: the mean of each 2x2 block, rounded half up (integers)."""
    f = frame.astype(np.uint16)
    s = f[0::2, 0::2] + f[1::2, 0::2] + f[0::2, 1::2] + f[1::2, 1::2]
    return ((s + 2) // 4).astype(np.uint8)


def storyboard(frames: list[np.ndarray], shrink=half) -> np.ndarray:
    """Four 320x240 frames -> one 320x240 board of 160x120 tiles: left to right, top to
    bottom (frame 0 top left, 1 top right, 2 bottom left, 3 bottom right)."""
    t = [shrink(f) for f in frames]
    return np.concatenate([np.concatenate(t[0:2], 1), np.concatenate(t[2:4], 1)], 0)


def load_world(folder: Path) -> tuple[dict, dict]:
    return (json.loads((folder / "annotations.json").read_text()),
            json.loads((folder / "boxes.json").read_text()))


def synth(wolf: str, folder: Path, count: int, seed: int, threads: int = 2) -> None:
    """Renders the world with `wolf synth` unless the folder already holds it."""
    if (folder / "boxes.json").exists():
        ann = json.loads((folder / "annotations.json").read_text())
        if len(ann) == count:
            return
    subprocess.run([wolf, "--no-progress", "--db", str(folder.parent / "synth.db"), "synth",
                    "--out", str(folder), "--count", str(count), "--seed", str(seed),
                    "--threads", str(threads)], check=True, capture_output=True)
