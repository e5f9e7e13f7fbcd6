#!/usr/bin/env python3
"""Records the reference outputs of the fixture captioners on committed inputs.

1. Inputs (made once, kept if present; --remake-inputs redoes them): 4 frames and 4
   storyboards of a fresh synthetic world (seed 3, not a training or held-out seed),
   written as 320x240 RGB PNGs under fixtures/inputs/ with fixtures/inputs/inputs.json
   (where each comes from and the world's target text).
2. For each model folder fixtures/models/<name>/: greedy outputs of the reference
   implementation, transformers' `generate` on the PyTorch weights that
   tools/train_captioner.py left in <work>/<kind>/hf/, for batch size 1 (each input alone) and 4 (all
   together): token ids and text.
3. The same greedy decoding with onnxruntime on the folder's ONNX files, with both
   decoder forms: decoder_model.onnx (no cache: the whole prefix every step) and
   decoder_model_merged.onnx (use_cache_branch false with zero-length past on the first
   step, then true with the previous step's present.*); it asserts that the ids equal
   transformers' and records them with the encoder's output and first-step logits.

Writes fixtures/models/<name>/reference_outputs.json.
Usage: .wolf/devenv/bin/python tools/record_references.py [--work /tmp/wolf-fixtures]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image

import fixture_world as fw

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ROOT / "fixtures" / "inputs"
SEED = 3
CLIPS = 40


def make_inputs(work: Path, wolf: str) -> None:
    world = work / f"synth_seed{SEED}"
    fw.synth(wolf, world, CLIPS, SEED)
    annotations, boxes = fw.load_world(world)
    names = sorted(annotations)
    INPUTS.mkdir(parents=True, exist_ok=True)
    chosen_frames, chosen_boards = [], []
    # Frames: varied scenes (a sign, three shapes, two, one), each from its own clip, at
    # a frame where every object shows whole.
    wanted = [lambda c: any(o["label"].startswith("sign") for o in c["objects"]) and len(c["objects"]) >= 2,
              lambda c: sum(not o["label"].startswith("sign") for o in c["objects"]) == 3,
              lambda c: sum(not o["label"].startswith("sign") for o in c["objects"]) == 2,
              lambda c: len(c["objects"]) == 1]
    used = set()
    for want in wanted:
        for name in names:
            clip = boxes[name]
            if name in used or not want(clip):
                continue
            n = clip["frames"]
            for f in [n // 2, n // 3, 2 * n // 3, n // 4, 3 * n // 4]:
                objects = fw.visible_objects(clip, f)
                if all(o["visible"] >= 0.999 for o in objects):
                    break
            else:
                continue
            used.add(name)
            chosen_frames.append((name, f, objects))
            break
    # Storyboards: four other clips, canonical boards (segment centres, 2x2 mean).
    for name in names:
        if len(chosen_boards) == 4:
            break
        if name in used:
            continue
        used.add(name)
        chosen_boards.append(name)
    assert len(chosen_frames) == 4 and len(chosen_boards) == 4, "not enough varied clips"
    record = {"seed": SEED, "clips": CLIPS, "frames": [], "storyboards": []}
    for k, (name, f, objects) in enumerate(chosen_frames):
        video = fw.decode_clip(world / name)
        shapes = [o["label"] for o in boxes[name]["objects"] if not o["label"].startswith("sign")]
        background, _ = fw.parse_caption(annotations[name]["output"], shapes)
        file = f"frame_{k}.png"
        Image.fromarray(video[f]).save(INPUTS / file)
        record["frames"].append({"file": file, "clip": name, "frame": f,
                                 "target": fw.frame_text([o for o in objects if o["named"]], background),
                                 "world_caption": annotations[name]["output"]})
    for k, name in enumerate(chosen_boards):
        video = fw.decode_clip(world / name)
        shapes = [o["label"] for o in boxes[name]["objects"] if not o["label"].startswith("sign")]
        _, clauses = fw.parse_caption(annotations[name]["output"], shapes)
        idx = fw.storyboard_indices(len(video))
        file = f"storyboard_{k}.png"
        Image.fromarray(fw.storyboard([video[i] for i in idx])).save(INPUTS / file)
        record["storyboards"].append({
            "file": file, "clip": name, "clip_frames": len(video), "frames": idx,
            "tiles": "160x120 each, 2x2 mean of the 320x240 frame, rounded half up; "
                     "frames[0] top left, [1] top right, [2] bottom left, [3] bottom right",
            "target": fw.storyboard_text(clauses), "world_caption": annotations[name]["output"]})
    (INPUTS / "inputs.json").write_text(json.dumps(record, indent=2) + "\n")


def load_images(files: list[str]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(INPUTS / f).convert("RGB")) for f in files])


def preprocess(folder: Path, images: np.ndarray) -> np.ndarray:
    """The folder's ViTImageProcessor, checked against the plain formula."""
    from transformers import ViTImageProcessor
    proc = ViTImageProcessor.from_pretrained(folder)
    x = proc(images=list(images), return_tensors="np")["pixel_values"].astype(np.float32)
    plain = (images.astype(np.float32) / 255.0 - 0.5) / 0.5
    plain = plain.transpose(0, 3, 1, 2)
    assert np.abs(x - plain).max() < 1e-6, "preprocessing differs from (x / 255 - 0.5) / 0.5"
    return plain


def greedy_onnx(folder: Path, pixels: np.ndarray, merged: bool, max_length: int, cfg: dict,
                prefix: list[int] | None = None):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    enc = ort.InferenceSession(str(folder / "encoder_model.onnx"), opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(folder / ("decoder_model_merged.onnx" if merged else "decoder_model.onnx")),
                               opts, providers=["CPUExecutionProvider"])
    hidden = enc.run(["last_hidden_state"], {"pixel_values": pixels})[0]
    b = pixels.shape[0]
    start, eos, pad = cfg["decoder_start_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]
    ids = np.array([[start] + list(prefix or [])] * b, np.int64)
    done = np.zeros(b, bool)
    layers, heads = cfg["decoder"]["n_layer"], cfg["decoder"]["n_head"]
    head_dim = cfg["decoder"]["n_embd"] // heads
    past = {f"past_key_values.{i}.{kv}": np.zeros((b, heads, 0, head_dim), np.float32)
            for i in range(layers) for kv in ("key", "value")}
    names = [o.name for o in dec.get_outputs()]
    first_logits = None
    while ids.shape[1] < max_length and not done.all():
        if merged:
            use_cache = first_logits is not None
            feed = {"input_ids": ids[:, -1:] if use_cache else ids, "encoder_hidden_states": hidden,
                    "use_cache_branch": np.array([use_cache]), **past}
        else:
            feed = {"input_ids": ids, "encoder_hidden_states": hidden}
        out = dict(zip(names, dec.run(names, feed)))
        logits = out["logits"][:, -1, :]
        if first_logits is None:
            first_logits = logits
        nxt = logits.argmax(-1)
        nxt = np.where(done, pad, nxt)
        done |= nxt == eos
        ids = np.concatenate([ids, nxt[:, None]], 1)
        if merged:
            past = {k.replace("present", "past_key_values"): v for k, v in out.items() if k.startswith("present")}
    return ids, hidden, first_logits


def summary(a: np.ndarray) -> dict:
    a = np.asarray(a, np.float32)
    return {"shape": list(a.shape), "mean": float(a.mean()), "std": float(a.std()),
            "first": [float(v) for v in a.reshape(-1)[:8]],
            "sha256_of_float32_rounded_1e-4": hashlib.sha256(np.round(a, 4).tobytes()).hexdigest()}


def record(name: str, files: list[str], checkpoint: Path, prompt_check: int = 0) -> dict:
    from tokenizers import Tokenizer
    from transformers import VisionEncoderDecoderModel
    folder = ROOT / "fixtures" / "models" / name
    cfg = json.loads((folder / "config.json").read_text())
    gen = json.loads((folder / "generation_config.json").read_text())
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    model = VisionEncoderDecoderModel.from_pretrained(checkpoint).eval()
    images = load_images(files)
    pixels = preprocess(folder, images)
    max_length = gen["max_length"]

    def text(row) -> str:
        return tok.decode([int(t) for t in row], skip_special_tokens=True)

    out = {"model": name, "inputs": files,
           "generation": {"greedy": True, "num_beams": 1, "max_length": max_length,
                          "decoder_start_token_id": gen["decoder_start_token_id"],
                          "eos_token_id": gen["eos_token_id"], "pad_token_id": gen["pad_token_id"],
                          "note": "ids start with decoder_start_token_id; in a batch, rows that "
                                  "ended early are filled with pad_token_id after eos_token_id; "
                                  "text = tokenizer.decode(ids, skip_special_tokens=True)"},
           "preprocessing": "pixel_values = (rgb / 255 - 0.5) / 0.5, NCHW float32, 1x3x240x320 per image"}
    with torch.no_grad():
        t_hidden = model.encoder(pixel_values=torch.from_numpy(pixels)).last_hidden_state.numpy()

        def generate(x):
            return model.generate(pixel_values=torch.from_numpy(x), max_length=max_length,
                                  num_beams=1, do_sample=False).numpy()
        single = [generate(pixels[i: i + 1])[0] for i in range(len(files))]
        batch = generate(pixels)
    out["transformers"] = {
        "batch_1": [{"input": f, "ids": r.tolist(), "text": text(r)} for f, r in zip(files, single)],
        "batch_4": {"inputs": files, "ids": batch.tolist(), "texts": [text(r) for r in batch]},
    }
    # One image alone or in a batch: same text.
    assert [text(r) for r in single] == [text(r) for r in batch], "batch of 4 differs from batch of 1"
    out["encoder_last_hidden_state"] = {f: summary(t_hidden[i]) for i, f in enumerate(files)}
    out["onnxruntime"] = {"version": ort.__version__}
    for form, merged in [("decoder_model", False), ("decoder_model_merged", True)]:
        one = [greedy_onnx(folder, pixels[i: i + 1], merged, max_length, cfg) for i in range(len(files))]
        ids4, hidden4, logits4 = greedy_onnx(folder, pixels, merged, max_length, cfg)
        for (ids1, _, _), ref in zip(one, single):
            assert ids1[0].tolist() == ref.tolist(), f"{name} {form} batch 1: {ids1[0].tolist()} != {ref.tolist()}"
        assert ids4.tolist() == batch.tolist(), f"{name} {form} batch 4 differs from transformers"
        out["onnxruntime"][form] = {
            "batch_1": [{"input": f, "ids": o[0][0].tolist(), "text": text(o[0][0])} for f, o in zip(files, one)],
            "batch_4": {"inputs": files, "ids": ids4.tolist(), "texts": [text(r) for r in ids4]},
            "encoder_max_abs_diff_vs_torch": float(np.abs(hidden4 - t_hidden).max()),
            "first_step_logits": {f: {"top5_ids": np.argsort(-logits4[i])[:5].tolist(),
                                      "top5_logits": [float(v) for v in np.sort(logits4[i])[::-1][:5]]}
                                  for i, f in enumerate(files)},
            "matches_transformers": True,
        }
    # A folder that declares `prompt_prefix` is recorded with its prompts; with
    # --prompt-check N, one that does not is recorded as it would read prompts if it
    # declared {"max_tokens": N} (the tests then declare it in a copy of the folder):
    # that checks the backend's prefix handling against transformers, not the model.
    prefix = cfg.get("prompt_prefix") or ({"max_tokens": prompt_check} if prompt_check else None)
    if prefix:
        out["prompted"] = record_prompted(folder, model, tok, files, pixels, prefix, max_length, cfg, text,
                                          [r["text"] for r in out["transformers"]["batch_1"]])
    (folder / "reference_outputs.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


# A prompt the model was not trained on (a user's own `wolf model check --prompt`): the
# backend must still match transformers token for token.
OTHER_PROMPT = "Describe the image in details."


def record_prompted(folder: Path, model, tok, files, pixels, prefix: dict, max_length: int, cfg: dict,
                    text, alone: list[str]) -> dict:
    """References with a prompt, for a folder whose config.json declares
    `prompt_prefix`: the prompt's ids (no special tokens, the last max_tokens kept)
    follow the start token as `decoder_input_ids`; the text is what follows them.
    Prompts: the pipeline's FRAME prompt (cascade off, or a cascade's first frame),
    its cascade prompt on the input's own caption without a prompt (the model's real
    output, as the previous frame's caption), and a prompt it was not trained on. Each
    input alone, and all four as one batch with the FRAME prompt."""
    max_tokens = prefix.get("max_tokens") if isinstance(prefix, dict) else None

    def ids_of(prompt: str) -> list[int]:
        ids = tok.encode(prompt, add_special_tokens=False).ids
        return ids[-max_tokens:] if max_tokens else ids

    def generate(x: np.ndarray, prompt_ids: list[int]) -> np.ndarray:
        start = torch.tensor([[cfg["decoder_start_token_id"]] + prompt_ids] * len(x))
        with torch.no_grad():
            return model.generate(pixel_values=torch.from_numpy(x), decoder_input_ids=start,
                                  max_length=max_length, num_beams=1, do_sample=False).numpy()

    cases = []
    for i, f in enumerate(files):
        for how, prompt in [("frame", fw.frame_prompt(None)), ("cascade", fw.frame_prompt(alone[i])),
                            ("other", OTHER_PROMPT)]:
            cases.append({"input": f, "kind": how, "prompt": prompt, "prompt_ids": ids_of(prompt)})
    for case in cases:
        i = files.index(case["input"])
        row = generate(pixels[i: i + 1], case["prompt_ids"])[0]
        case["ids"] = row.tolist()
        case["text"] = text(row[1 + len(case["prompt_ids"]):])
        for form, merged in [("decoder_model", False), ("decoder_model_merged", True)]:
            got, _, _ = greedy_onnx(folder, pixels[i: i + 1], merged, max_length, cfg, case["prompt_ids"])
            assert got[0].tolist() == case["ids"], f"{form} with prompt {case['kind']} on {case['input']}"
    frame_ids = ids_of(fw.frame_prompt(None))
    batch = generate(pixels, frame_ids)
    for form, merged in [("decoder_model", False), ("decoder_model_merged", True)]:
        got, _, _ = greedy_onnx(folder, pixels, merged, max_length, cfg, frame_ids)
        assert got.tolist() == batch.tolist(), f"{form} batch 4 with the FRAME prompt"
    single = {c["input"]: c["text"] for c in cases if c["kind"] == "frame"}
    texts = [text(r[1 + len(frame_ids):]) for r in batch]
    assert texts == [single[f] for f in files], "batch of 4 differs from batch of 1 with a prompt"
    return {"prompt_prefix": prefix, "declared_by_folder": bool(cfg.get("prompt_prefix")),
            "note": "ids = start token, prompt_ids, then the generated ids (rows of a batch that "
                    "ended early padded after eos); text = decode(ids[1 + len(prompt_ids):], "
                    "skip_special_tokens=True); onnxruntime gives the same ids with both decoder forms",
            "batch_1": cases,
            "batch_4": {"inputs": files, "kind": "frame", "prompt": fw.frame_prompt(None),
                        "prompt_ids": frame_ids, "ids": batch.tolist(), "texts": texts}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("/tmp/wolf-fixtures"))
    p.add_argument("--wolf", default=str(ROOT / "target/release/wolf"))
    p.add_argument("--remake-inputs", action="store_true")
    p.add_argument("--only", choices=["frame-captioner", "storyboard-captioner"])
    p.add_argument("--prompt-check", type=int, default=0, metavar="N",
                   help="also record prompted references for a frame captioner that does not declare "
                        "`prompt_prefix`, as if it declared {\"max_tokens\": N}")
    a = p.parse_args()
    torch.set_num_threads(2)
    if a.remake_inputs or not (INPUTS / "inputs.json").exists():
        make_inputs(a.work, a.wolf)
    inputs = json.loads((INPUTS / "inputs.json").read_text())
    for name, key, kind in [("frame-captioner", "frames", "frame"),
                            ("storyboard-captioner", "storyboards", "storyboard")]:
        if a.only and a.only != name:
            continue
        checkpoint = a.work / kind / "hf"
        if not (checkpoint / "model.safetensors").exists():
            print(f"{name}: no PyTorch weights in {checkpoint}, skipped")
            continue
        files = [i["file"] for i in inputs[key]]
        out = record(name, files, checkpoint, a.prompt_check if name == "frame-captioner" else 0)
        targets = [i["target"] for i in inputs[key]]
        for got, want in zip(out["transformers"]["batch_4"]["texts"], targets):
            print(f"{name}: {'OK  ' if got == want else 'DIFF'} {got}" + ("" if got == want else f"\n      want {want}"))


if __name__ == "__main__":
    main()
