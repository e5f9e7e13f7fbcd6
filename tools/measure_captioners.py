#!/usr/bin/env python3
"""Measures the two committed fixture captioners on a fresh synthetic world, with the
committed ONNX files and onnxruntime (greedy decoding, decoder_model_merged.onnx).

The world is new to both models: seed 4 by default (training used seed 1, the held-out
set seed 2, fixtures/inputs/ seed 3), 100 clips, rendered by `target/release/wolf synth`
(fixture_world.synth) and turned into a test set by make_fixture_data.build exactly as
the held-out set is: every clip decoded by ffmpeg, 2 random frames per clip for the frame
captioner with their targets from fixture_world (visibility, grammar), 1 canonical
storyboard per clip (segment centres, 2x2 mean) for the storyboard captioner.

Scores (train_captioner.frame_metrics and board_metrics, the functions that measured
the held-out set in training, plus clause precision):
  frame-captioner       exact match of the whole text; object precision and recall (an
                        object is matched when its label, e.g. `red circle` or
                        `sign "OPEN"`, is named in both); mean and median absolute error
                        of the box coordinates (0-999 units) over matched objects;
  storyboard-captioner  exact match; per-clause accuracy (share of the target's clauses,
                        `a red circle moves from left to right`, found verbatim in the
                        output) and clause precision (share of output clauses in the target).

Prints the JSON (stdout; progress goes to stderr) and writes it to --out; every target and
output goes beside it, in <out without .json>.predictions.json.
Usage: .wolf/devenv/bin/python tools/measure_captioners.py --out /tmp/wolf-fixtures/measure_seed4.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

import fixture_world as fw
from make_fixture_data import build

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "fixtures" / "models"


class Captioner:
    """A fixture ONNX folder with onnxruntime: encoder once per batch, then the merged
    decoder (use_cache_branch false on the first step, true with present.* after)."""

    def __init__(self, folder: Path, threads: int):
        self.folder = folder
        self.cfg = json.loads((folder / "config.json").read_text())
        self.gen = json.loads((folder / "generation_config.json").read_text())
        pre = json.loads((folder / "preprocessor_config.json").read_text())
        assert pre["size"] == {"height": fw.HEIGHT, "width": fw.WIDTH} and pre["do_rescale"] and pre["do_normalize"]
        self.scale = float(pre["rescale_factor"])
        self.mean = np.array(pre["image_mean"], np.float32)[None, :, None, None]
        self.std = np.array(pre["image_std"], np.float32)[None, :, None, None]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        cpu = ["CPUExecutionProvider"]
        self.enc = ort.InferenceSession(str(folder / "encoder_model.onnx"), opts, providers=cpu)
        self.dec = ort.InferenceSession(str(folder / "decoder_model_merged.onnx"), opts, providers=cpu)
        self.names = [o.name for o in self.dec.get_outputs()]
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))

    def pixels(self, images: np.ndarray) -> np.ndarray:
        x = images.astype(np.float32).transpose(0, 3, 1, 2) * self.scale
        return np.ascontiguousarray((x - self.mean) / self.std, np.float32)

    def ids(self, images: np.ndarray) -> np.ndarray:
        d, g = self.cfg["decoder"], self.gen
        hidden = self.enc.run(["last_hidden_state"], {"pixel_values": self.pixels(images)})[0]
        b = len(images)
        ids = np.full((b, 1), g["decoder_start_token_id"], np.int64)
        done = np.zeros(b, bool)
        head_dim = d["n_embd"] // d["n_head"]
        past = {f"past_key_values.{i}.{kv}": np.zeros((b, d["n_head"], 0, head_dim), np.float32)
                for i in range(d["n_layer"]) for kv in ("key", "value")}
        while ids.shape[1] < g["max_length"] and not done.all():
            use_cache = ids.shape[1] > 1
            out = dict(zip(self.names, self.dec.run(self.names, {
                "input_ids": ids[:, -1:] if use_cache else ids, "encoder_hidden_states": hidden,
                "use_cache_branch": np.array([use_cache]), **past})))
            nxt = np.where(done, g["pad_token_id"], out["logits"][:, -1, :].argmax(-1))
            done |= nxt == g["eos_token_id"]
            ids = np.concatenate([ids, nxt[:, None]], 1)
            past = {k.replace("present", "past_key_values"): v for k, v in out.items() if k.startswith("present")}
        return ids

    def texts(self, images: np.ndarray, batch: int) -> list[str]:
        out = []
        for i in range(0, len(images), batch):
            out.extend(self.tok.decode([int(t) for t in r], skip_special_tokens=True)
                       for r in self.ids(np.asarray(images[i: i + batch])))
        return out


def clause_precision(preds: list[str], meta: list[dict]) -> float:
    got = ok = 0
    for p, m in zip(preds, meta):
        truth = set(re.split(r", | while | and ", m["text"]))
        clauses = re.split(r", | while | and ", p)
        got += len(clauses)
        ok += sum(c in truth for c in clauses)
    return ok / max(1, got)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("/tmp/wolf-fixtures"))
    p.add_argument("--wolf", default=str(ROOT / "target/release/wolf"))
    p.add_argument("--seed", type=int, default=4, help="a world seed no fixture used (1 train, 2 held-out, 3 inputs)")
    p.add_argument("--clips", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    assert a.seed not in (1, 2, 3), "seeds 1-3 were used by training, the held-out set and fixtures/inputs"
    # Imported here: train_captioner needs torch (the developer environment has it).
    from train_captioner import board_metrics, frame_metrics
    a.work.mkdir(parents=True, exist_ok=True)
    world = a.work / f"synth_seed{a.seed}"
    t = time.time()
    fw.synth(a.wolf, world, a.clips, a.seed)
    split = f"measure_seed{a.seed}"
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON
        build(world, split, a.work, 2, 1, False, a.seed)
    prepared = time.time() - t
    result = {"world": {"seed": a.seed, "clips": a.clips, "frames": 2 * a.clips, "storyboards": a.clips,
                        "renderer": "wolf synth", "prepare_seconds": round(prepared, 1)},
              "decoding": {"runtime": f"onnxruntime {ort.__version__}", "decoder": "decoder_model_merged.onnx",
                           "greedy": True, "batch": a.batch, "threads": a.threads}}
    predictions = {}
    for name, prefix in [("frame-captioner", "frame"), ("storyboard-captioner", "board")]:
        images = np.load(a.work / f"{prefix}_{split}.npy", mmap_mode="r")
        meta = json.loads((a.work / f"{prefix}_{split}.json").read_text())
        cap = Captioner(MODELS / name, a.threads)
        t = time.time()
        preds = cap.texts(images, a.batch)
        seconds = time.time() - t
        if prefix == "frame":
            m = frame_metrics(preds, meta)
        else:
            m = board_metrics(preds, meta)
            m["clause_accuracy"] = m.pop("clause_recall")
            m["clause_precision"] = clause_precision(preds, meta)
        m["decode_seconds"] = round(seconds, 1)
        m["examples"] = [{"target": mm["text"], "output": pp} for pp, mm in list(zip(preds, meta))[:3]]
        result[name] = m
        predictions[name] = [{"clip": mm["clip"], "frame": mm.get("frame"), "frames": mm.get("frames"),
                              "target": mm["text"], "output": pp} for pp, mm in zip(preds, meta)]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    a.out.with_suffix(".predictions.json").write_text(json.dumps(predictions, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
