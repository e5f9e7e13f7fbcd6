#!/usr/bin/env python3
"""Renders the synthetic world with `wolf synth` and turns it into the training and
held-out sets of the two fixture captioners (see tools/README.md).

For each split it writes, under --work:
  frame_<split>.npy   uint8 (n, 240, 320, 3): single frames decoded by ffmpeg;
  frame_<split>.json  per frame: clip, frame index, the target text, the objects
                      (label, box, visible share, named or not), the background;
  board_<split>.npy   uint8 (n, 240, 320, 3): 2x2 storyboards of 4 frames;
  board_<split>.json  per board: clip, frame indices, tile shrink, the target text.

Training boards vary the 4 sampled frames (segment centres, first-to-last, jittered)
and the way tiles are shrunk (2x2 mean, PIL bilinear, every other pixel), so that the
model does not depend on one sampler; held-out boards use the canonical board
(segment centres, 2x2 mean), as do the committed inputs.

Usage: .wolf/devenv/bin/python tools/make_fixture_data.py [--work /tmp/wolf-fixtures]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
from PIL import Image

import fixture_world as fw

ROOT = Path(__file__).resolve().parent.parent


def pil_half(frame: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).resize((160, 120), Image.BILINEAR))


def nearest_half(frame: np.ndarray) -> np.ndarray:
    return frame[0::2, 0::2]


SHRINKS = {"mean2x2": fw.half, "pil_bilinear": pil_half, "nearest": nearest_half}


def board_indices(n: int, mode: str, rng: random.Random) -> list[int]:
    if mode == "centres":
        return fw.storyboard_indices(n)
    if mode == "ends":
        return [round(k * (n - 1) / 3) for k in range(4)]
    # Jittered: one frame anywhere in each quarter.
    return [min(n - 1, rng.randrange(int(k * n / 4), max(int(k * n / 4) + 1, int((k + 1) * n / 4))))
            for k in range(4)]


def frame_indices(n: int, count: int, mode: str, rng: random.Random) -> list[int]:
    """Which frames of a clip of n frames become examples, in clip order:
    * random: `count` distinct frames anywhere (the first models' sets);
    * pipeline: the frames the pipeline samples (`count` segment centres), so that
      each one's predecessor is the frame the cascade captions before it;
    * pipeline_or_jitter: the pipeline's frames for half the clips, one frame anywhere
      in each of the `count` segments for the other half (other spacings, same order)."""
    if mode == "random":
        return sorted(rng.sample(range(n), min(count, n)))
    if mode == "pipeline_or_jitter" and rng.random() < 0.5:
        return [rng.randrange(int(k * n / count), max(int(k * n / count) + 1, int((k + 1) * n / count)))
                for k in range(count)]
    return fw.pipeline_frame_indices(n, count)


def build(world: Path, split: str, work: Path, frames_per_clip: int, boards_per_clip: int,
          train: bool, seed: int, frame_mode: str = "random", limit: int | None = None) -> None:
    annotations, boxes = fw.load_world(world)
    names = sorted(annotations)[:limit]
    rng = random.Random(seed)
    n_frames = len(names) * frames_per_clip
    n_boards = len(names) * boards_per_clip
    frames = np.lib.format.open_memmap(work / f"frame_{split}.npy", "w+", np.uint8,
                                       (n_frames, fw.HEIGHT, fw.WIDTH, 3))
    boards = np.lib.format.open_memmap(work / f"board_{split}.npy", "w+", np.uint8,
                                       (n_boards, fw.HEIGHT, fw.WIDTH, 3)) if n_boards else None
    frame_meta, board_meta = [], []
    started = time.time()
    for c, name in enumerate(names):
        clip = boxes[name]
        video = fw.decode_clip(world / name)
        n = len(video)
        assert n == clip["frames"], f"{name}: decoded {n} frames, boxes.json says {clip['frames']}"
        shapes = [o["label"] for o in clip["objects"] if not o["label"].startswith("sign")]
        background, clauses = fw.parse_caption(annotations[name]["output"], shapes)
        for k, f in enumerate(frame_indices(n, frames_per_clip, frame_mode, rng)):
            objects = fw.visible_objects(clip, f)
            named = [o for o in objects if o["named"]]
            frames[len(frame_meta)] = video[f]
            # seq: the frame's place among its clip's examples (the cascade's order).
            frame_meta.append({"clip": name, "frame": f, "seq": k, "text": fw.frame_text(named, background),
                               "background": background, "objects": objects})
        for b in range(boards_per_clip):
            if train:
                mode = rng.choice(["centres", "ends", "jitter", "jitter"])
                shrink = rng.choice(["mean2x2", "mean2x2", "pil_bilinear", "nearest"])
            else:
                mode, shrink = "centres", "mean2x2"
            idx = board_indices(n, mode, rng)
            boards[len(board_meta)] = fw.storyboard([video[i] for i in idx], SHRINKS[shrink])
            board_meta.append({"clip": name, "frames": idx, "sampling": mode, "shrink": shrink,
                               "text": fw.storyboard_text(clauses)})
        if (c + 1) % 200 == 0:
            print(f"{split}: {c + 1}/{len(names)} clips, {time.time() - started:.0f} s", flush=True)
    # Clips shorter than frames_per_clip would leave rows unused; the world's clips are
    # at least 40 frames long, so this never trims in practice.
    assert len(frame_meta) == n_frames and len(board_meta) == n_boards
    frames.flush()
    (work / f"frame_{split}.json").write_text(json.dumps(frame_meta))
    if boards is not None:
        boards.flush()
        (work / f"board_{split}.json").write_text(json.dumps(board_meta))
    print(f"{split}: {n_frames} frames, {n_boards} boards from {len(names)} clips "
          f"in {time.time() - started:.0f} s", flush=True)


# World seeds. None may be the demo's (7) or a measurement world's (tools/
# measure_captioners.py: 4 and 13); fixtures/inputs/ uses 3 (record_references.py).
#   seeds 1 (train) and 2 (held out): the first frame and storyboard captioners;
#   seeds 11 (train) and 12 (held out): the prompt-reading frame captioner (--frames-only).
RESERVED_SEEDS = {3, 4, 7, 13}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("/tmp/wolf-fixtures"))
    p.add_argument("--wolf", default=str(ROOT / "target/release/wolf"))
    p.add_argument("--train-clips", type=int, default=2400)
    p.add_argument("--train-seed", type=int, default=1)
    p.add_argument("--eval-clips", type=int, default=200)
    p.add_argument("--eval-seed", type=int, default=2)
    p.add_argument("--frames-per-clip", type=int, default=8)
    p.add_argument("--boards-per-clip", type=int, default=3)
    p.add_argument("--train-limit", type=int, default=None,
                   help="build the training set from the world's first N clips only")
    p.add_argument("--splits", nargs="+", default=["eval", "train"], choices=["eval", "train"])
    p.add_argument("--frames-only", action="store_true",
                   help="frames only, sampled as the pipeline samples them (the prompt-reading "
                        "frame captioner: use with --train-seed 11 --eval-seed 12)")
    a = p.parse_args()
    assert not {a.train_seed, a.eval_seed} & RESERVED_SEEDS, f"seeds {sorted(RESERVED_SEEDS)} are reserved"
    a.work.mkdir(parents=True, exist_ok=True)
    for split, clips, seed, train in [("eval", a.eval_clips, a.eval_seed, False),
                                      ("train", a.train_clips, a.train_seed, True)]:
        if split not in a.splits:
            continue
        world = a.work / f"synth_seed{seed}"
        t = time.time()
        fw.synth(a.wolf, world, clips, seed)
        print(f"{split}: rendered {clips} clips of seed {seed} in {time.time() - t:.0f} s", flush=True)
        if a.frames_only:
            build(world, split, a.work, a.frames_per_clip, 0, train, seed,
                  "pipeline_or_jitter" if train else "pipeline", a.train_limit if train else None)
        else:
            build(world, split, a.work, a.frames_per_clip if train else 2,
                  a.boards_per_clip if train else 1, train, seed)


if __name__ == "__main__":
    main()
