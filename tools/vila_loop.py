#!/usr/bin/env python3
"""VILA²'s loop in the closed world (issue 23): its data, its round-0 captioner, the
trainer a loop's `train_cmd` runs, and the results table. `make recaption-demo` runs
it all (tools/recaption_demo.sh); docs/DECISIONS.md ("VILA² in the closed world")
records the budgets and seeds.

  world  --work W   renders the training world (seed 6001) and the held-out world
                    (seed 6101) with `wolf synth`; writes W/data/: WebDataset shards of
                    frames (KEY.png) with weak captions (KEY.txt); and W/specialist/, the
                    grounding specialist (the frame captioner without its prompt prefix)
  round0 --work W   trains the round-0 captioner on the weak captions; writes
                    W/round0/captioner/
  train  --work W --start DIR ROUND_DIR
                    the loop's train_cmd: fine-tunes the previous round's captioner (the
                    round before's `captioner/`, or DIR after round 1) on the round's
                    caption files, exports it into ROUND_DIR/captioner/, writes
                    ROUND_DIR/model.toml and prints the entry's name
  table  --work W --out FILE
                    the arms' held-out scores per round, appended to FILE (Markdown)

The captioner is the fixture frame captioner's architecture (ViT encoder, GPT2 decoder,
fixtures/models/frame-captioner) without its prompt prefix. Its vision encoder is that
captioner's, frozen: the pretrained vision tower of the loop, as VILA keeps its vision
tower (the encoder was trained on other worlds: seed 1 and the prompt-reading recipe's).
Only the decoder learns: from random weights on the weak captions in round 0, then from
the previous round's weights on each round's captions. The ONNX files of a new captioner
are the previous one's with the decoder's initializers replaced by the trained tensors
(every decoder initializer is a named parameter), so the layout cannot drift; the
export is checked by greedy decoding a few frames in onnxruntime and in torch.

The trainer's target for an item is the round's merged caption without its headings and
questions: the original (short) caption, the recaption (long) and each specialist's
answer, joined by ", ". The captioner's word-level vocabulary is the world's grammar;
the template's headings and the specialists' questions are fixed text that states no
fact, and they are not in it.

Weak captions (alt-text): one object named, the largest visible shape, colour and shape
only (no box, no motion, no sign, no background), its colour replaced by another at
random for 20 % of frames (seed 6001).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

import fixture_world as fw
from make_shards import add as add_member

ROOT = Path(__file__).resolve().parent.parent
FRAME_CAPTIONER = ROOT / "fixtures" / "models" / "frame-captioner"
TRAIN_SEED, TRAIN_CLIPS = 6001, 300
HELDOUT_SEED, HELDOUT_CLIPS = 6101, 100
WRONG_COLOUR = 0.2
PER_SHARD = 100
# Training budgets (batch 32, AdamW, cosine after a warm-up): round 0 from random
# weights, each later round from the previous one.
ROUND0 = dict(steps=800, lr=1e-3, warmup=50, seed=0)
ROUND = dict(steps=300, lr=5e-4, warmup=20)
BATCH = 32


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the world


def weak_caption(visible: list[dict], rng: np.random.Generator) -> str | None:
    """The frame's alt-text: its largest visible shape, 20 % with a wrong colour."""
    shapes = [o for o in visible if o["named"] and not o["label"].startswith("sign")]
    if not shapes:
        return None
    area = lambda o: (o["box"][2] - o["box"][0]) * (o["box"][3] - o["box"][1]) * o["visible"]
    colour, shape = max(shapes, key=area)["label"].split()
    if rng.random() < WRONG_COLOUR:
        colour = rng.choice([c for c in fw.COLOURS if c != colour])
    return f"{fw.article(colour)} {colour} {shape}"


def cmd_world(a) -> int:
    from PIL import Image
    work = a.work
    wolf = str(ROOT / "target" / "release" / "wolf")
    train, heldout = work / "world-train", work / "world-heldout"
    fw.synth(wolf, train, TRAIN_CLIPS, TRAIN_SEED)
    fw.synth(wolf, heldout, HELDOUT_CLIPS, HELDOUT_SEED)
    # The grounding specialist: the frame captioner asked without its prompt prefix (it
    # learnt the pipeline's frame prompts; the specialists' words are not in its
    # vocabulary, and a prefix of unknown words puts it off its training).
    if not (work / "specialist" / "config.json").exists():
        export(None, FRAME_CAPTIONER, work / "specialist")
    data = work / "data"
    if (data / "shards").exists():
        log(f"{data} is there")
        return 0
    tmp = work / "data.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "shards").mkdir(parents=True)
    _, boxes = fw.load_world(train)
    rng = np.random.default_rng(TRAIN_SEED)
    images, keys, weak = [], [], {}
    for clip in sorted(boxes):
        frames = fw.decode_clip(train / clip)
        n = len(frames)
        # The middle frame (the held-out check's) and one other, drawn.
        middle = min(n - 1, n // 2)
        other = int(rng.integers(0, n))
        for tag, f in (("m", middle), ("r", other)):
            caption = weak_caption(fw.visible_objects(boxes[clip], f), rng)
            if caption is None:
                continue
            key = f"{Path(clip).stem}-{tag}"
            keys.append(key)
            images.append(frames[f])
            weak[key] = caption
    for s in range(0, len(keys), PER_SHARD):
        with tarfile.open(tmp / "shards" / f"{s // PER_SHARD:05d}.tar", "w") as tar:
            for key, image in zip(keys[s: s + PER_SHARD], images[s: s + PER_SHARD]):
                png = io.BytesIO()
                Image.fromarray(image).save(png, format="PNG")
                add_member(tar, f"{key}.png", png.getvalue(), 0)
                add_member(tar, f"{key}.txt", weak[key].encode(), 0)
    (tmp / "weak.json").write_text(json.dumps(weak, indent=0))
    shutil.rmtree(data, ignore_errors=True)
    tmp.rename(data)
    log(f"{data}: {len(keys)} frames of {len(boxes)} clips in {math.ceil(len(keys) / PER_SHARD)} shards")
    return 0


# ---------------------------------------------------------------- the model


def pixels_of(images: np.ndarray) -> np.ndarray:
    """ViTImageProcessor's rescale and normalise (mean 0.5, std 0.5), NCHW."""
    return ((images.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2).copy()


def session(path: Path, threads: int):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def shard_frames(shards: Path, only: set[str] | None = None) -> tuple[list[str], np.ndarray]:
    """The keys and frames (KEY.png) of the input's shards (those of `only`, when given),
    in shard and member order."""
    from PIL import Image
    keys, images = [], []
    for shard in sorted(shards.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.name.endswith(".png") and (only is None or member.name[:-4] in only):
                    keys.append(member.name.removesuffix(".png"))
                    images.append(np.asarray(Image.open(tar.extractfile(member)).convert("RGB")))
    return keys, np.stack(images)


def encoded(work: Path, threads: int) -> tuple[np.ndarray, list[str]]:
    """The frozen encoder's output for every frame of the input's shards (cached)."""
    data = work / "data"
    cache = data / "hidden.npz"
    if cache.exists():
        with np.load(cache) as z:
            return z["hidden"], [str(k) for k in z["keys"]]
    keys, images = shard_frames(data / "shards")
    enc = session(FRAME_CAPTIONER / "encoder_model.onnx", threads)
    out = [enc.run(["last_hidden_state"], {"pixel_values": pixels_of(images[i: i + 32])})[0]
           for i in range(0, len(images), 32)]
    hidden = np.concatenate(out).astype(np.float32)
    with open(data / "hidden.partial.npz", "wb") as f:
        np.savez(f, hidden=hidden, keys=np.array(keys))
    (data / "hidden.partial.npz").rename(cache)
    return hidden, keys


def decoder_from(folder: Path | None, seed: int):
    """The GPT2 decoder of a captioner folder (its decoder_model.onnx's weights), or a
    random one of the frame captioner's shape when `folder` is None."""
    import onnx
    import torch
    from onnx import numpy_helper
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = json.loads(((folder or FRAME_CAPTIONER) / "config.json").read_text())["decoder"]
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(**{k: v for k, v in cfg.items() if k != "architectures"}))
    if folder is not None:
        state = model.state_dict()
        g = onnx.load(str(folder / "decoder_model.onnx")).graph
        seen = set()
        for t in g.initializer:
            key = t.name.removeprefix("decoder.")
            value = torch.from_numpy(numpy_helper.to_array(t).copy())
            if key not in state or tuple(state[key].shape) != tuple(value.shape):
                raise ValueError(f"{folder}: initializer {t.name} does not fit the decoder")
            with torch.no_grad():
                state[key].copy_(value)
            seen.add(key)
        missing = {k for k in state if k not in seen and k != "lm_head.weight"}
        if missing:
            raise ValueError(f"{folder}: decoder tensors not in the ONNX file: {sorted(missing)}")
    model.tie_weights()
    return model


def export(model, template: Path, out: Path, check=None) -> None:
    """Writes `template`'s folder to `out` with the decoder's initializers replaced by
    `model`'s tensors (None: as they are), config.json without the prompt prefix. The
    folder is written under another name and renamed into place after `check(folder)`
    passes, so that a failed export leaves no model behind."""
    import onnx
    from onnx import numpy_helper
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()} if model else {}
    for f in template.iterdir():
        if model and f.name in ("decoder_model.onnx", "decoder_model_merged.onnx"):
            m = onnx.load(str(f))
            for t in m.graph.initializer:
                key = t.name.removesuffix("_merged_0").removeprefix("decoder.")
                value = state[key].astype(np.float32)
                assert tuple(value.shape) == tuple(t.dims), t.name
                t.CopyFrom(numpy_helper.from_array(value, t.name))
            onnx.save(m, str(tmp / f.name))
        elif f.name == "config.json":
            cfg = json.loads(f.read_text())
            cfg.pop("prompt_prefix", None)
            (tmp / f.name).write_text(json.dumps(cfg, indent=2) + "\n")
        elif f.name != "reference_outputs.json":
            shutil.copy(f, tmp / f.name)
    if check:
        check(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def greedy_torch(model, hidden: np.ndarray, max_length: int) -> list[list[int]]:
    import torch
    out = []
    with torch.no_grad():
        for h in hidden:
            ids, past, h = [1], None, torch.from_numpy(h[None])
            while len(ids) < max_length and ids[-1] != 2:
                step = model(input_ids=torch.tensor([ids[-1:] if past is not None else ids]),
                             encoder_hidden_states=h, past_key_values=past, use_cache=True)
                past = step.past_key_values
                ids.append(int(step.logits[0, -1].argmax()))
            out.append(ids)
    return out


def check_export(model, folder: Path, hidden: np.ndarray, images: np.ndarray, threads: int) -> None:
    """Greedy ids of the exported folder in onnxruntime (its encoder, then the merged
    decoder with its cache: recover_weights.greedy_onnx) equal torch's decoder on the
    frozen encoder's output, frame by frame."""
    from recover_weights import greedy_onnx
    cfg = json.loads((folder / "config.json").read_text())
    max_length = json.loads((folder / "generation_config.json").read_text())["max_length"]
    want = greedy_torch(model.eval(), hidden, max_length)
    pixels = pixels_of(images)
    for i, ids in enumerate(want):
        got = greedy_onnx(folder, pixels[i: i + 1], True, max_length, cfg, threads)[0][0].tolist()
        if got != ids:
            raise SystemExit(f"{folder}: onnxruntime's greedy ids differ from torch's: {got} vs {ids}")


def train(model, hidden: np.ndarray, targets: list[list[int]], steps: int, lr: float, warmup: int,
          seed: int) -> list[float]:
    """Teacher-forced cross-entropy on the caption and its end token."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "wte" not in n and "wpe" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "wte" not in n and "wpe" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    model.train()
    losses = []
    order = rng.permutation(len(targets))
    at = 0
    for step in range(steps):
        if at + BATCH > len(order):
            order, at = rng.permutation(len(targets)), 0
        batch = order[at: at + BATCH]
        at += BATCH
        width = max(len(targets[i]) for i in batch)
        ids = np.zeros((len(batch), width), np.int64)
        mask = np.zeros((len(batch), width), np.int64)
        for r, i in enumerate(batch):
            ids[r, : len(targets[i])] = targets[i]
            mask[r, : len(targets[i])] = 1
        ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
        logits = model(input_ids=ids_t[:, :-1], attention_mask=mask_t[:, :-1],
                       encoder_hidden_states=torch.from_numpy(hidden[batch])).logits
        labels = ids_t[:, 1:].masked_fill(mask_t[:, 1:] == 0, -100)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == steps - 1:
            log(f"  step {step}: loss {np.mean(losses[-100:]):.4f}")
    return losses


def tokenized(texts: list[str], max_length: int) -> tuple[list[list[int]], int]:
    """[start] + tokens + [end], cut to the decoder's positions; and how many were cut."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(FRAME_CAPTIONER / "tokenizer.json"))
    unk = tok.token_to_id("<unk>")
    out, cut = [], 0
    for text in texts:
        ids = [1, *tok.encode(text, add_special_tokens=False).ids, 2]
        if unk in ids:
            raise SystemExit(f"a target has a word outside the captioner's vocabulary: {text!r}")
        if len(ids) > max_length:
            ids, cut = ids[:max_length], cut + 1
        out.append(ids)
    return out, cut


def fit(work: Path, start: Path | None, texts: dict[str, str], out: Path, budget: dict, seed: int,
        threads: int) -> dict:
    """Trains a decoder from `start` (None: random) on `texts` by key and exports it."""
    import torch
    torch.set_num_threads(threads)
    hidden, keys = encoded(work, threads)
    index = {k: i for i, k in enumerate(keys)}
    missing = [k for k in texts if k not in index]
    if missing:
        raise SystemExit(f"captions of keys that are not training frames: {missing[:5]}")
    chosen = sorted(texts, key=index.get)
    max_length = json.loads((FRAME_CAPTIONER / "generation_config.json").read_text())["max_length"]
    targets, cut = tokenized([texts[k] for k in chosen], max_length)
    rows = np.array([index[k] for k in chosen])
    model = decoder_from(start, seed)
    t = time.time()
    losses = train(model, hidden[rows], targets, budget["steps"], budget["lr"], budget["warmup"], seed)
    export(model, start or FRAME_CAPTIONER, out,
           check=lambda folder: check_export(model, folder, hidden[rows[:3]],
                                             shard_frames(work / "data" / "shards", set(chosen[:3]))[1],
                                             threads))
    return {"items": len(chosen), "cut_at_max_length": cut, "mean_target_tokens": float(np.mean([len(x) for x in targets])),
            "steps": budget["steps"], "lr": budget["lr"], "seed": seed, "final_loss": float(np.mean(losses[-50:])),
            "seconds": round(time.time() - t, 1), "from": str(start) if start else "random"}


def cmd_round0(a) -> int:
    out = a.work / "round0" / "captioner"
    if (out.parent / "training.json").exists():
        log(f"{out} is there")
        return 0
    weak = json.loads((a.work / "data" / "weak.json").read_text())
    budget = {**ROUND0, **({"steps": a.steps} if a.steps else {})}
    report = fit(a.work, None, weak, out, budget, ROUND0["seed"], a.threads)
    (out.parent / "training.json").write_text(json.dumps(report, indent=1) + "\n")
    log(f"round-0 captioner: {report}")
    return 0


HEADING = re.compile(r"^### (Short|Long) description:\n", re.M)


def training_text(caption: str) -> str:
    """A merged caption (merge.rs) as the captioner's target: its short and long
    descriptions and the specialists' answers, joined by ", "; the headings and the
    questions are left out."""
    parts = []
    for block in caption.split("\n\n"):
        block = HEADING.sub("", block.strip())
        if block.startswith("### Question:"):
            block = block.split("\n### Answer:", 1)[1] if "\n### Answer:" in block else ""
        if block.strip():
            parts.append(block.strip())
    return ", ".join(parts)


def round_targets(round_dir: Path) -> dict[str, str]:
    """Each captioned item's target, read from the round's caption files (VILA's
    `{key: {"output": caption}}`, one per shard)."""
    texts = {}
    for path in sorted((round_dir / "captions").rglob("*.json")):
        for key, value in json.loads(path.read_text()).items():
            texts[key] = training_text(value["output"])
    if not texts:
        raise SystemExit(f"{round_dir}: the round's caption files hold no caption")
    return texts


def cmd_train(a) -> int:
    round_dir = a.round_dir.resolve()
    m = re.fullmatch(r"round-(\d+)", round_dir.name)
    if not m:
        raise SystemExit(f"{round_dir} is not a round's folder (round-N)")
    n = int(m.group(1))
    previous = round_dir.parent / f"round-{n - 1}" / "captioner" if n > 1 else a.start.resolve()
    out = round_dir / "captioner"
    name = f"captioner-after-round-{n}"
    entry, training = round_dir / "model.toml", round_dir / "training.json"
    # A loop that goes on after this round runs its trainer again: the model trained
    # then is kept (model.toml is written last).
    if entry.exists() and training.exists() and (out / "config.json").exists():
        log(f"round {n}: {out} is there")
        print(name)
        return 0
    entry.unlink(missing_ok=True)
    training.unlink(missing_ok=True)
    budget = {**ROUND, **({"steps": a.steps} if a.steps else {})}
    report = fit(a.work, previous, round_targets(round_dir), out, budget, n, a.threads)
    training.write_text(json.dumps(report, indent=1) + "\n")
    entry.write_text(f'[models.{name}]\nbackend = "onnx"\npath = "captioner"\n')
    log(f"round {n}: {report}")
    print(name)
    return 0


# ---------------------------------------------------------------- the table


def cmd_table(a) -> int:
    """The arms' rounds with the held-out scores of `wolf report` (95 % intervals)."""
    wolf = str(ROOT / "target" / "release" / "wolf")
    report = json.loads(subprocess.run(
        [wolf, "--no-progress", "--db", str(a.work / "wolf.db"), "report", "--dataset", "closed-heldout",
         "--format", "json"], check=True, capture_output=True, text=True).stdout)
    scores = {(line["run"], line["metric"]): line for line in report}
    lines = [f"\n## VILA²'s loop in the closed world ({time.strftime('%Y-%m-%d')}, `make recaption-demo`)\n",
             f"Input: {len(json.loads((a.work / 'data' / 'weak.json').read_text()))} frames of world "
             f"{TRAIN_SEED} with weak captions. Held-out: the middle frames of world {HELDOUT_SEED} "
             f"({HELDOUT_CLIPS} clips; their truth has motions, which no frame shows). Captioner k has "
             f"been trained k times (0: on the weak captions alone); truth_f1 with its 95 % interval.\n",
             "| arm | captioner | held-out truth_f1 | gain | precision | recall | embed_sim | "
             "mean words of its round's captions | stopped |",
             "|---|---|---|---|---|---|---|---|---|"]
    for arm in a.arms:
        state = json.loads((a.work / "arms" / arm / "loop.json").read_text())
        for i, r in enumerate(state["rounds"]):
            run = f"{arm}-round-{r['round']}"
            f1, p, rc = (scores[(run, m)] for m in ("truth_f1", "truth_precision", "truth_recall"))
            gain = "" if r.get("gain") is None else f"{r['gain']:+.3f}"
            words = (r["stats"].get("words") or {}).get("mean", 0)
            last = i == len(state["rounds"]) - 1
            lines.append(f"| {arm} | {r['round'] - 1} | {f1['mean']:.3f} ({f1['low']:.3f}-{f1['high']:.3f}) | "
                         f"{gain} | {p['mean']:.3f} | {rc['mean']:.3f} | {r['heldout_embed_sim']:.3f} | "
                         f"{words:.1f} | {state['stopped'] if last else ''} |")
    with open(a.out, "a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("world", "round0", "train", "table"):
        s = sub.add_parser(name)
        s.add_argument("--work", type=Path, required=True)
        s.add_argument("--threads", type=int, default=2)
        s.add_argument("--steps", type=int, help="another training budget (a smoke test's)")
        if name == "train":
            s.add_argument("--start", type=Path, required=True)
            s.add_argument("round_dir", type=Path)
        if name == "table":
            s.add_argument("--out", type=Path, required=True)
            s.add_argument("--arms", nargs="+", required=True)
    a = p.parse_args()
    a.work = a.work.resolve()
    return {"world": cmd_world, "round0": cmd_round0, "train": cmd_train, "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
