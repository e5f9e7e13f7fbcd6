#!/usr/bin/env python3
"""Trains one fixture captioner (a tiny ViT + GPT2 VisionEncoderDecoderModel) on the
synthetic world, measures it on held-out clips, exports it with Optimum and writes the
model folder `fixtures/models/<name>/` in the public ViT-GPT2 ONNX layout.

  --kind frame       one 320x240 frame -> grounded description  (frame-captioner)
  --kind storyboard  one 320x240 2x2 storyboard -> motion text  (storyboard-captioner)

Needs the data of tools/make_fixture_data.py under --work, the dev environment
(.wolf/devenv: torch, transformers 5, tokenizers) and, for the ONNX export, Optimum in
its own environment (tools/optimum_env.sh: optimum-onnx pins transformers < 4.58).

Writes:
  fixtures/models/<name>/    config.json, generation_config.json, preprocessor_config.json,
                             tokenizer.json, tokenizer_config.json, special_tokens_map.json,
                             encoder_model.onnx, decoder_model.onnx, decoder_model_merged.onnx
                             (and decoder_with_past_model.onnx with --keep-with-past)
  <work>/<kind>/hf/          the PyTorch weights (model.safetensors, config.json) that
                             tools/record_references.py runs with transformers
  <work>/<kind>/metrics.json the held-out measurements (also printed)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import fixture_world as fw

ROOT = Path(__file__).resolve().parent.parent
NAMES = {"frame": "frame-captioner", "storyboard": "storyboard-captioner"}
MAX_LENGTH = 64  # the default longest sequence (start token included)
EVAL_CLIPS = 12  # held-out clips a prompt-reading model's training run checks itself on

# Architecture and training settings of each kind (the README quotes them).
SETTINGS = {
    # The prompt-reading frame captioner: the first frame captioner (recovered from its
    # ONNX files, tools/recover_weights.py) grown by two encoder layers and 128
    # decoder positions, then trained on with prompt prefixes (see PromptPrefixes).
    "frame": dict(patch=20, enc_hidden=128, enc_layers=6, enc_heads=4, enc_inter=256,
                  dec_hidden=128, dec_layers=3, dec_heads=4, batch=32, lr=1e-3, steps=2500, warmup=60,
                  number_sigma=2.0, number_weight=0.0, aux_weight=1.0, box_weight=5.0, attn_weight=1.0,
                  object_weight=4.0, label_weight=3.0, sign_weight=3.0, frozen_layers=0, max_length=192,
                  prompt_prefix=True, prefix_max_tokens=112, grow_from="recovered frame-captioner v1"),
    "storyboard": dict(patch=20, enc_hidden=128, enc_layers=3, enc_heads=4, enc_inter=256,
                       dec_hidden=128, dec_layers=2, dec_heads=4, batch=32, lr=2e-3, steps=2000,
                       number_sigma=0.0, number_weight=0.0, aux_weight=1.0, box_weight=5.0, attn_weight=1.0,
                  object_weight=4.0),
}

# Classes of the auxiliary token targets: 0 nothing, 1-18 colour x shape, 19-28 the sign
# by its word.
N_CLASSES = 29


# ---------------------------------------------------------------- tokenizer

def build_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    vocab = {w: i for i, w in enumerate(fw.vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    # Split on white space, then isolate "[", "," and "]"; a quoted sign word such as
    # "OPEN" (quotes included) stays one token.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split(Regex(r"[\[\],]"), behavior="isolated")])
    # Join tokens with single spaces, then glue the punctuation: "[120, 340]".
    tok.decoder = decoders.Sequence([
        decoders.WordPiece(prefix="##", cleanup=False), decoders.Fuse(),
        decoders.Replace(" ,", ","), decoders.Replace("[ ", "["), decoders.Replace(" ]", "]")])
    tok.add_special_tokens(fw.SPECIAL)
    tok.post_processor = processors.TemplateProcessing(single="$A", special_tokens=[])
    return tok


def write_tokenizer_files(folder: Path, max_length: int = MAX_LENGTH) -> None:
    tok = build_tokenizer()
    tok.save(str(folder / "tokenizer.json"))
    special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    added = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False, "special": True} for i, t in enumerate(fw.SPECIAL)}
    config = {"added_tokens_decoder": added, **special, "clean_up_tokenization_spaces": False,
              "model_max_length": max_length, "tokenizer_class": "PreTrainedTokenizerFast"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


# ---------------------------------------------------------------- model

def set_generation(model, s) -> None:
    """Greedy decoding with the grammar's special tokens, as the pipeline decodes."""
    gen = model.generation_config
    gen.max_length = s.get("max_length", MAX_LENGTH)
    gen.num_beams = 1
    gen.do_sample = False
    gen.decoder_start_token_id = fw.BOS_ID
    gen.bos_token_id = fw.BOS_ID
    gen.eos_token_id = fw.EOS_ID
    gen.pad_token_id = fw.PAD_ID


def build_model(s: dict, vocab_size: int):
    from transformers import (GPT2Config, ViTConfig, VisionEncoderDecoderConfig,
                              VisionEncoderDecoderModel)
    enc = ViTConfig(image_size=[fw.HEIGHT, fw.WIDTH], patch_size=s["patch"],
                    hidden_size=s["enc_hidden"], num_hidden_layers=s["enc_layers"],
                    num_attention_heads=s["enc_heads"], intermediate_size=s["enc_inter"],
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    dec = GPT2Config(vocab_size=vocab_size, n_positions=s.get("max_length", MAX_LENGTH), n_embd=s["dec_hidden"],
                     n_layer=s["dec_layers"], n_head=s["dec_heads"], add_cross_attention=True,
                     bos_token_id=fw.BOS_ID, eos_token_id=fw.EOS_ID, pad_token_id=fw.PAD_ID,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id = fw.BOS_ID
    cfg.eos_token_id = fw.EOS_ID
    cfg.pad_token_id = fw.PAD_ID
    cfg.bos_token_id = fw.BOS_ID
    if s.get("prompt_prefix"):
        # Read by the pipeline's `onnx` captioner (examples/onnx.toml): it passes the
        # stage's prompt, tokenized without special tokens and cut to its last
        # max_tokens tokens, after the decoder start token, and strips it from the output.
        cfg.prompt_prefix = {"max_tokens": s["prefix_max_tokens"]}
    model = VisionEncoderDecoderModel(cfg)
    set_generation(model, s)
    return model


def init_number_embeddings(model, number_ids: torch.Tensor) -> None:
    """Gives the number tokens 0-999 smooth, ordered embeddings (sines and cosines of the
    value) so that near values start near each other; the output layer shares them."""
    wte = model.decoder.transformer.wte.weight
    k = wte.shape[1] // 4
    v = torch.arange(1000, dtype=torch.float32)[:, None]
    # Periods from 2000 units down to 4 units, geometrically spaced.
    freqs = (math.pi / 1000.0) * 500.0 ** (torch.arange(k, dtype=torch.float32) / (k - 1))
    feats = torch.cat([torch.sin(v * freqs[None, :]), torch.cos(v * freqs[None, :])], 1)
    with torch.no_grad():
        wte[number_ids, : feats.shape[1]] += 0.3 * feats


def init_vit_embeddings(model, patch: int) -> None:
    """Starts the ViT from structured, not random, embeddings, which a few CPU minutes
    of training can then refine:
    * position embeddings: the fixed 2-D sine-cosine table of MAE (CLS at zero);
    * patch projection: each token starts as a summary of its patch's pixels: the mean
      of each channel over a 4x4 grid of blocks, then the mean brightness of each
      2-pixel column band and of each 2-pixel row band (where edges are), then per
      channel column and row bands while room is left; the remaining dimensions random.
    """
    emb = model.encoder.embeddings
    h = emb.position_embeddings.shape[-1]
    rows, cols = fw.HEIGHT // patch, fw.WIDTH // patch
    quarter = h // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    ys, xs = torch.meshgrid(torch.arange(rows, dtype=torch.float32), torch.arange(cols, dtype=torch.float32),
                            indexing="ij")
    ys, xs = ys.reshape(-1, 1) * omega, xs.reshape(-1, 1) * omega
    table = torch.cat([torch.sin(ys), torch.cos(ys), torch.sin(xs), torch.cos(xs)], 1)
    w = torch.randn(h, 3, patch, patch) * 0.002
    filters = []
    g = patch // 4
    for c in range(3):
        for by in range(4):
            for bx in range(4):
                f = torch.zeros(3, patch, patch)
                f[c, by * g:(by + 1) * g, bx * g:(bx + 1) * g] = 1.0 / (g * g)
                filters.append(f)
    for axis in (2, 1):  # column bands, then row bands: brightness
        for b in range(patch // 2):
            f = torch.zeros(3, patch, patch)
            if axis == 2:
                f[:, :, 2 * b:2 * b + 2] = 1.0 / (3 * 2 * patch)
            else:
                f[:, 2 * b:2 * b + 2, :] = 1.0 / (3 * 2 * patch)
            filters.append(f)
    for c in range(3):  # per channel bands while room is left
        for axis in (2, 1):
            for b in range(patch // 2):
                f = torch.zeros(3, patch, patch)
                if axis == 2:
                    f[c, :, 2 * b:2 * b + 2] = 1.0 / (2 * patch)
                else:
                    f[c, 2 * b:2 * b + 2, :] = 1.0 / (2 * patch)
                filters.append(f)
    for i, f in enumerate(filters[:h]):
        w[i] += f
    with torch.no_grad():
        emb.position_embeddings[0, 1:, : table.shape[1]] = table
        emb.position_embeddings[0, 0] = 0.0
        emb.patch_embeddings.projection.weight.copy_(w)
        emb.patch_embeddings.projection.bias.zero_()


# ---------------------------------------------------------------- data

def pixel_values(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, 240, 320, 3) -> float (n, 3, 240, 320): ViTImageProcessor with mean and
    std 0.5 (the size is already 320x240, so its resize changes nothing)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def object_class(label: str) -> int:
    if label.startswith("sign"):
        return 19 + fw.SIGN_WORDS.index(label.split('"')[1])
    colour, shape = label.split()
    return 1 + fw.COLOURS.index(colour) * 3 + fw.SHAPES.index(shape)


def item_spans(tokens: list[str]) -> list[tuple[str, int, int]]:
    """(label, first, last) token positions of each object's phrase in a target: from
    its article to its "]" (frames) or to its last motion word (storyboards); the
    joiners between items and the background words belong to none."""
    starts = [p for p in range(len(tokens) - 1)
              if tokens[p] in ("a", "an") and (tokens[p + 1] in fw.COLOURS or tokens[p + 1] == "sign")]
    spans = []
    for k, p in enumerate(starts):
        label = f"{tokens[p + 1]} {tokens[p + 2]}"
        stop = starts[k + 1] if k + 1 < len(starts) else len(tokens)
        last = p
        for q in range(p, stop):
            if tokens[q] in (",", "and", "while", "on") and (q + 1 == stop or tokens[q] == "on"
                                                           or tokens[q + 1] in ("a", "an")):
                break
            last = q
        spans.append((label, p, last))
    return spans


def grow_from(model, checkpoint: Path) -> None:
    """Starts `model` from a smaller trained one of the same family: every tensor of
    the checkpoint is copied (GPT2's position table into the first rows of the longer
    one); encoder layers the checkpoint lacks start as the identity (their attention
    output and MLP output projections zero), so the grown model first computes exactly
    what the checkpoint computed."""
    from transformers import VisionEncoderDecoderModel
    old = VisionEncoderDecoderModel.from_pretrained(checkpoint).state_dict()
    new = model.state_dict()
    with torch.no_grad():
        for name, value in old.items():
            target = new[name]
            if target.shape == value.shape:
                target.copy_(value)
            elif name.endswith("wpe.weight") and target.shape[0] > value.shape[0]:
                target[: value.shape[0]] = value
            else:
                raise ValueError(f"{name}: {tuple(value.shape)} cannot grow to {tuple(target.shape)}")
        grown = sorted({int(n.split(".")[2]) for n in new if n.startswith("encoder.layers.")} -
                       {int(n.split(".")[2]) for n in old if n.startswith("encoder.layers.")})
        for i in grown:
            for part in ("attention.o_proj", "mlp.fc2"):
                new[f"encoder.layers.{i}.{part}.weight"].zero_()
                new[f"encoder.layers.{i}.{part}.bias"].zero_()
    print(f"grew from {checkpoint}: {len(old)} tensors copied, new encoder layers {grown}", flush=True)


def init_from(s: dict, checkpoint: Path):
    """Continues training from a saved model of the kind's full size (e.g. the committed
    frame captioner, rebuilt from its ONNX files by tools/recover_weights.py), taken as it
    is: nothing grown, nothing re-initialised. The prompt prefix and generation settings
    are those of the kind's SETTINGS, as build_model states them."""
    from transformers import VisionEncoderDecoderModel
    model = VisionEncoderDecoderModel.from_pretrained(checkpoint)
    enc, dec = model.config.encoder, model.config.decoder
    found = dict(patch=enc.patch_size, enc_hidden=enc.hidden_size, enc_layers=enc.num_hidden_layers,
                 enc_heads=enc.num_attention_heads, enc_inter=enc.intermediate_size, dec_hidden=dec.n_embd,
                 dec_layers=dec.n_layer, dec_heads=dec.n_head, max_length=dec.n_positions)
    wrong = {k: (v, s.get(k, MAX_LENGTH if k == "max_length" else None)) for k, v in found.items()
             if v != s.get(k, MAX_LENGTH if k == "max_length" else None)}
    if wrong:
        raise ValueError(f"{checkpoint} is not the kind's architecture (found, expected): {wrong}")
    if s.get("prompt_prefix"):
        model.config.prompt_prefix = {"max_tokens": s["prefix_max_tokens"]}
    set_generation(model, s)
    print(f"continuing from {checkpoint} as it is ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
          f"parameters)", flush=True)
    return model


def prompt_ids(tok, prompt: str, max_tokens: int) -> list[int]:
    """The decoder prefix of a prompt, as the `onnx` captioner makes it: the prompt's
    tokens without special tokens (unknown words are `<unk>`), its last max_tokens kept."""
    if not prompt:
        return []
    ids = tok.encode(prompt, add_special_tokens=False).ids
    return ids[-max_tokens:] if max_tokens else ids


def corrupted_text(m: dict, rng) -> str:
    """A frame's target with the kinds of error the captioner makes: another shape or
    colour or sign word, boxes a few units off, an object left out or one made up."""
    items = []
    for o in m["objects"]:
        if not o["named"] or rng.random() < 0.08:
            continue
        label = o["label"]
        if label.startswith("sign"):
            if rng.random() < 0.2:
                label = f'sign "{rng.choice(fw.SIGN_WORDS)}"'
        else:
            colour, shape = label.split()
            shape = rng.choice(fw.SHAPES) if rng.random() < 0.2 else shape
            colour = rng.choice(fw.COLOURS) if rng.random() < 0.05 else colour
            label = f"{colour} {shape}"
        box = [min(999, max(0, v + rng.randint(-12, 12))) if rng.random() < 0.5 else v for v in o["box"]]
        items.append({"label": label, "box": box})
    if rng.random() < 0.08:
        x, y, size = rng.randint(0, 850), rng.randint(0, 800), rng.randint(90, 190)
        items.append({"label": f"{rng.choice(fw.COLOURS)} {rng.choice(fw.SHAPES)}",
                      "box": [x, y, min(999, x + size), min(999, y + size * 4 // 3)]})
    return fw.frame_text(items, m["background"])


class PromptPrefixes:
    """The prompt of each training frame, built by the pipeline's own template
    (fixture_world.frame_prompt: pipeline/src/wolf/prompts.rs FRAME and CASCADE):
    * empty (15 %): the model alone, no prompt;
    * FRAME alone: the first frame of a clip (85 % of them) and 25 % of the others:
      the cascade's first frame, and every frame with the cascade off;
    * CASCADE with the previous sampled frame's caption, then FRAME (60 % of the
      frames that have a predecessor). That caption is what the model will really be
      given: its own output for the previous frame when there is one (60 %): the
      argmax of the logits the last time that frame was trained on, refreshed every
      time; else (and otherwise) the previous frame's target with made-up errors
      (corrupted_text, 25 %) or the clean target (15 %)."""

    def __init__(self, data, tok, max_tokens: int, seed: int):
        import random
        self.meta, self.tok, self.max_tokens = data.meta, tok, max_tokens
        self.rng = random.Random(seed)
        self.previous = [i - 1 if m.get("seq", 0) > 0 and data.meta[i - 1]["clip"] == m["clip"] else -1
                         for i, m in enumerate(data.meta)]
        self.own: dict[int, str] = {}
        self.counts: dict[str, int] = {}

    def __call__(self, i: int) -> list[int]:
        r, j = self.rng.random(), self.previous[i]
        if r < 0.15:
            how, prompt = "empty", ""
        elif j < 0 or r < 0.40:
            how, prompt = "frame", fw.frame_prompt(None)
        else:
            q = self.rng.random()
            if j in self.own and q < 0.6:
                how, text = "cascade_own", self.own[j]
            elif q < 0.85:
                how, text = "cascade_corrupted", corrupted_text(self.meta[j], self.rng)
            else:
                how, text = "cascade_clean", self.meta[j]["text"]
            prompt = fw.frame_prompt(text)
        self.counts[how] = self.counts.get(how, 0) + 1
        return prompt_ids(self.tok, prompt, self.max_tokens)

    def remember(self, index, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Keeps each example's own output (argmax at its target positions, to its
        first end token) for the next frame's prefix."""
        best = logits.argmax(-1)
        for r, i in enumerate(index):
            ids = best[r][labels[r] >= 0].tolist()
            if fw.EOS_ID in ids:
                ids = ids[: ids.index(fw.EOS_ID)]
            self.own[int(i)] = self.tok.decode(ids, skip_special_tokens=True)


class Data:
    """Images, target token ids and, for training, dense targets:
    * for the encoder's patch tokens: every token whose patch centre lies in a shown
      object's box (and always the token holding the box centre) must tell the object's
      class, its box and, on storyboards, its motion phrase (later-drawn objects win);
    * for the decoder's cross-attention: while writing an object's phrase, attention
      should fall on that object's tokens."""

    def __init__(self, work: Path, kind: str, split: str, tok, patch: int = 0):
        prefix = "frame" if kind == "frame" else "board"
        self.kind = kind
        self.images = np.load(work / f"{prefix}_{split}.npy", mmap_mode="r")
        self.meta = json.loads((work / f"{prefix}_{split}.json").read_text())
        self.texts = [m["text"] for m in self.meta]
        encoded = [tok.encode(t) for t in self.texts]
        self.ids = [e.ids + [fw.EOS_ID] for e in encoded]
        assert all(fw.UNK_ID not in i for i in self.ids), "a target has an unknown word"
        assert max(map(len, self.ids)) < MAX_LENGTH  # room for the longest prefix too
        self.patch = patch
        if patch:
            self.spans = [item_spans(e.tokens) for e in encoded]
            self.aux = [self.aux_targets(work, split, i) for i in range(len(self.meta))]

    def aux_targets(self, work: Path, split: str, i: int):
        """{label: (class, box in 0-1 board units, motion phrase or -1, [tokens])},
        the tokens listed in drawing order of the views."""
        cols, rows = fw.WIDTH // self.patch, fw.HEIGHT // self.patch
        centres_x = (np.arange(cols) + 0.5) * self.patch / fw.WIDTH
        centres_y = (np.arange(rows) + 0.5) * self.patch / fw.HEIGHT
        m = self.meta[i]
        if self.kind == "frame":
            views = [((0, 0, 1.0), [o for o in m["objects"] if o["named"]], {})]
        else:
            if not hasattr(self, "_world"):
                seed = 1 if split == "train" else 2
                self._world = fw.load_world(work / f"synth_seed{seed}")
            annotations, boxes = self._world
            clip = boxes[m["clip"]]
            shapes = [o["label"] for o in clip["objects"] if not o["label"].startswith("sign")]
            _, clauses = fw.parse_caption(annotations[m["clip"]]["output"], shapes)
            phrase = {l: fw.PHRASES.index(p) for l, p in clauses}
            views = []
            for k, f in enumerate(m["frames"]):
                objs = [o for o in fw.visible_objects(clip, f) if o["named"]]
                views.append((((k % 2) * 0.5, (k // 2) * 0.5, 0.5), objs, phrase))
        out = []  # (token list, class, box, motion, label) in drawing order
        for (ox, oy, scale), objs, phrase in views:
            # Drawing order: the sign first, then the shapes in the scene's order.
            objs = sorted(objs, key=lambda o: not o["label"].startswith("sign"))
            for o in objs:
                x1, y1, x2, y2 = (v / 999 for v in o["box"])
                bx = [ox + x1 * scale, oy + y1 * scale, ox + x2 * scale, oy + y2 * scale]
                inside_x = np.nonzero((centres_x >= bx[0]) & (centres_x < bx[2]))[0]
                inside_y = np.nonzero((centres_y >= bx[1]) & (centres_y < bx[3]))[0]
                cx = int((bx[0] + bx[2]) / 2 * fw.WIDTH // self.patch)
                cy = int((bx[1] + bx[3]) / 2 * fw.HEIGHT // self.patch)
                tokens = {int(y) * cols + int(x) for y in inside_y for x in inside_x} | {cy * cols + cx}
                out.append((sorted(tokens), object_class(o["label"]), bx,
                            phrase.get(o["label"], -1), o["label"]))
        return out

    def __len__(self):
        return len(self.texts)

    def batch(self, index: np.ndarray, prefix_of=None):
        """Rows sorted by example; each row is the start token, the prefix
        (`prefix_of(i)`, none by default), the target and the end token, right-padded
        (GPT2 is causal: padding after a row changes none of its positions). The loss
        is on the target and the end token only."""
        index = np.sort(index)
        x = pixel_values(self.images[index])
        prefixes = [prefix_of(int(i)) if prefix_of else [] for i in index]
        full = [[fw.BOS_ID] + p + self.ids[i] for p, i in zip(prefixes, index)]
        L = max(map(len, full)) - 1
        labels = torch.full((len(full), L), -100, dtype=torch.long)
        inputs = torch.full((len(full), L), fw.PAD_ID, dtype=torch.long)
        for r, (seq, p) in enumerate(zip(full, prefixes)):
            inputs[r, : len(seq) - 1] = torch.tensor(seq[:-1])
            labels[r, len(p): len(seq) - 1] = torch.tensor(seq[len(p) + 1:])
        self.last_index, self.last_offsets = index, [len(p) for p in prefixes]
        if not self.patch:
            return x, inputs, labels, None
        tokens = (fw.WIDTH // self.patch) * (fw.HEIGHT // self.patch)
        cls = torch.zeros((len(full), tokens), dtype=torch.long)
        box = torch.zeros((len(full), tokens, 4))
        motion = torch.full((len(full), tokens), -100, dtype=torch.long)
        # Where each target position should look: encoder positions (CLS is 0).
        look = torch.zeros((len(full), L, tokens + 1), dtype=torch.bool)
        for r, i in enumerate(index):
            where: dict[str, set[int]] = {}
            for toks, c, b, mo, label in self.aux[i]:
                t = torch.tensor(toks)
                cls[r, t] = c
                box[r, t] = torch.tensor(b)
                motion[r, t] = mo if mo >= 0 else -100
                where.setdefault(label if not label.startswith("sign") else "sign", set()).update(toks)
            off = self.last_offsets[r]
            for label, first, last in self.spans[i]:
                key = "sign" if label.startswith("sign") else label
                if key in where:
                    look[r, off + first: off + last + 1, [1 + t for t in where[key]]] = True
        return x, inputs, labels, (cls, box, motion, look)


# ---------------------------------------------------------------- metrics

ITEM = re.compile(r'(?:a|an) (sign "[A-Z]+"|[a-z]+ [a-z]+) \[(\d+), (\d+), (\d+), (\d+)\]')


def parse_frame(text: str) -> dict[str, list[int]]:
    return {m.group(1): [int(m.group(i)) for i in range(2, 6)] for m in ITEM.finditer(text)}


def frame_metrics(preds: list[str], meta: list[dict]) -> dict:
    exact = labels_ok = 0
    errors, tp, fp, fn, clear_n, clear_exact, bg_ok = [], 0, 0, 0, 0, 0, 0
    signs = signs_read = signs_named = signs_named_ok = 0
    for p, m in zip(preds, meta):
        exact += p == m["text"]
        truth = {o["label"]: o["box"] for o in m["objects"] if o["named"]}
        got = parse_frame(p)
        labels_ok += set(got) == set(truth)
        bg_ok += p.endswith(f" {m['background']} background")
        for label, box in got.items():
            if label in truth:
                tp += 1
                errors.extend(abs(a - b) for a, b in zip(box, truth[label]))
            else:
                fp += 1
        fn += len(set(truth) - set(got))
        # The sign's word: frames whose shown sign is named with its right word, and
        # the signs the caption names whose word is right.
        true_signs = {l for l in truth if l.startswith("sign")}
        said_signs = {l for l in got if l.startswith("sign")}
        signs += len(true_signs)
        signs_read += len(true_signs & said_signs)
        signs_named += len(said_signs)
        signs_named_ok += len(said_signs & true_signs)
        if all(o["visible"] >= 0.999 or not o["named"] and o["visible"] == 0 for o in m["objects"]):
            clear_n += 1
            clear_exact += p == m["text"]
    e = np.array(errors, dtype=float) if errors else np.zeros(1)
    n = len(preds)
    return {"n": n, "exact_match": exact / n, "label_set_correct": labels_ok / n,
            "object_precision": tp / max(1, tp + fp), "object_recall": tp / max(1, tp + fn),
            "background_correct": bg_ok / n,
            "sign_accuracy": signs_read / max(1, signs), "signs_shown": signs,
            "sign_precision": signs_named_ok / max(1, signs_named), "signs_named": signs_named,
            "box_mae": float(e.mean()), "box_median_abs_error": float(np.median(e)),
            "box_coords_within_2": float((e <= 2).mean()), "box_coords_within_5": float((e <= 5).mean()),
            "box_coords_exact": float((e == 0).mean()),
            "unoccluded_n": clear_n, "unoccluded_exact_match": clear_exact / max(1, clear_n)}


def board_metrics(preds: list[str], meta: list[dict]) -> dict:
    exact = clauses = clauses_ok = 0
    for p, m in zip(preds, meta):
        exact += p == m["text"]
        truth = re.split(r", | while | and ", m["text"])
        got = set(re.split(r", | while | and ", p))
        clauses += len(truth)
        clauses_ok += sum(c in got for c in truth)
    n = len(preds)
    return {"n": n, "exact_match": exact / n, "clause_recall": clauses_ok / max(1, clauses)}


@torch.no_grad()
def predict(model, tok, images: np.ndarray, batch: int = 50, prompts: list[str] | None = None,
            max_tokens: int = 0) -> list[str]:
    """Greedy captions; with `prompts`, each image's prompt is its decoder prefix (after
    the start token; rows grouped by prefix length) and is left out of the text."""
    model.eval()
    max_length = model.generation_config.max_length
    prefixes = [prompt_ids(tok, p, max_tokens) for p in prompts] if prompts else [[] for _ in images]
    out: list[str] = [""] * len(images)
    lengths = sorted({len(p) for p in prefixes})
    for length in lengths:
        rows = [i for i, p in enumerate(prefixes) if len(p) == length]
        for k in range(0, len(rows), batch):
            part = rows[k: k + batch]
            start = torch.tensor([[fw.BOS_ID] + prefixes[i] for i in part])
            ids = model.generate(pixel_values=pixel_values(images[part]), decoder_input_ids=start,
                                 max_length=max_length, num_beams=1, do_sample=False)
            for i, r in zip(part, ids):
                out[i] = tok.decode(r[1 + length:].tolist(), skip_special_tokens=True)
    return out


def predict_cascade(model, tok, images: np.ndarray, meta: list[dict], max_tokens: int,
                    cascade: bool = True) -> list[str]:
    """The pipeline's cascade over each clip's frames (in `seq` order): the first frame
    with FRAME, each next one with CASCADE on the previous output (cascade off: FRAME
    for every frame)."""
    out: list[str] = [""] * len(meta)
    for k in range(max(m["seq"] for m in meta) + 1):
        rows = [i for i, m in enumerate(meta) if m["seq"] == k]
        prompts = [fw.frame_prompt(out[i - 1] if cascade and k > 0 else None) for i in rows]
        for i, t in zip(rows, predict(model, tok, images[rows], prompts=prompts, max_tokens=max_tokens)):
            out[i] = t
    return out


# ---------------------------------------------------------------- training

def train(kind: str, work: Path, steps: int | None, seed: int, log_every: int = 50, eval_every: int = 250,
          grow: Path | None = None, save_every: int = 100, frozen_layers: int | None = None,
          init: Path | None = None, lr: float | None = None, sign_weight: float | None = None):
    s = dict(SETTINGS[kind])
    if steps:
        s["steps"] = steps
    if lr is not None:
        s["lr"] = lr
    if sign_weight is not None:
        s["sign_weight"] = sign_weight
    if init:
        s["init_from"] = str(init)
        s.pop("grow_from", None)
    if frozen_layers is not None:
        s["frozen_layers"] = frozen_layers
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = build_tokenizer()
    vocab = fw.vocabulary()
    number_ids = torch.tensor([vocab.index(str(i)) for i in range(1000)])
    data = Data(work, kind, "train", tok, patch=s["patch"])
    model = init_from(s, init) if init else build_model(s, len(vocab))
    if init:
        pass
    elif grow:
        grow_from(model, grow)
    else:
        init_number_embeddings(model, number_ids)
        init_vit_embeddings(model, s["patch"])
    prefixes = PromptPrefixes(data, tok, s["prefix_max_tokens"], seed) if s.get("prompt_prefix") else None
    frozen = s.get("frozen_layers", 0) if grow or init else 0
    if frozen:
        # The checkpoint's patch embedding and first `frozen` encoder layers stay as
        # they are: their output for every training frame is computed once, and each
        # step runs only the layers above (the grown ones) and the decoder, which
        # halves a step's cost on a CPU.
        enc = model.encoder
        for module in [enc.embeddings, *enc.layers[:frozen]]:
            for q in module.parameters():
                q.requires_grad_(False)
        t = time.time()
        with torch.no_grad():
            lower = torch.empty((len(data), (fw.HEIGHT // s["patch"]) * (fw.WIDTH // s["patch"]) + 1,
                                 s["enc_hidden"]))
            for k in range(0, len(data), 64):
                h = enc.embeddings(pixel_values(data.images[k: k + 64]))
                for layer in enc.layers[:frozen]:
                    h = layer(h)
                    h = h[0] if isinstance(h, tuple) else h
                lower[k: k + 64] = h
        print(f"frozen: embeddings and encoder layers 0-{frozen - 1}, their outputs for {len(data)} frames "
              f"in {time.time() - t:.0f} s", flush=True)

    def encode(x, index):
        from transformers.modeling_outputs import BaseModelOutput
        if not frozen:
            return model.encoder(pixel_values=x)
        h = lower[torch.as_tensor(index)]
        for layer in model.encoder.layers[frozen:]:
            h = layer(h)
            h = h[0] if isinstance(h, tuple) else h
        return BaseModelOutput(last_hidden_state=model.encoder.layernorm(h))
    # Eager attention in the decoder, so that its cross-attention can be supervised.
    model.decoder.set_attn_implementation("eager")
    # Training-only heads on the encoder's patch tokens (not exported).
    hidden = s["enc_hidden"]
    heads = torch.nn.ModuleDict({"cls": torch.nn.Linear(hidden, N_CLASSES), "box": torch.nn.Linear(hidden, 4),
                                 "motion": torch.nn.Linear(hidden, len(fw.PHRASES))})
    print(f"{kind}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"{len(data)} training examples, settings {s}", flush=True)
    decay, no_decay = [], []
    for n, p in list(model.named_parameters()) + list(heads.named_parameters()):
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "embeddings" in n or "wpe" in n or "wte" in n else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=s["lr"], betas=(0.9, 0.98))
    warmup = s.get("warmup", min(200, s["steps"] // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, i / s["steps"]))))
    value = torch.zeros(len(vocab))
    is_number = torch.zeros(len(vocab), dtype=torch.bool)
    is_number[number_ids] = True
    value[number_ids] = torch.arange(1000, dtype=torch.float32)
    grid = torch.arange(1000, dtype=torch.float32)
    token_weight = torch.ones(len(vocab))
    for w in fw.COLOURS + fw.SHAPES:
        token_weight[vocab.index(w)] = s.get("label_weight", 1.0)
    for w in fw.SIGN_WORDS:  # the sign's word: its own weight (--sign-weight), else the label weight
        token_weight[vocab.index(f'"{w}"')] = s.get("sign_weight", s.get("label_weight", 1.0))

    probe = Data(work, kind, "eval", tok)
    probe_index = np.arange(0, len(probe), max(1, len(probe) // 60))
    model.train()
    started = time.time()
    order = rng.permutation(len(data))
    at = 0
    running = aux_running = 0.0
    for step in range(s["steps"]):
        if at + s["batch"] > len(order):
            order, at = rng.permutation(len(data)), 0
        x, inputs, labels, (cls, box, motion, look) = data.batch(order[at: at + s["batch"]], prefixes)
        at += s["batch"]
        encoded = encode(x, data.last_index)
        out = model(encoder_outputs=encoded, decoder_input_ids=inputs, output_attentions=True)
        logits = out.logits
        if s.get("label_weight", 1.0) != 1.0 or s.get("sign_weight", 1.0) != 1.0:
            # The words that name an object (colour, shape, sign word) weigh more than
            # the many box numbers: naming the right object is what matters most.
            per_token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                        ignore_index=-100, reduction="none")
            w = token_weight[labels.reshape(-1).clamp(min=0)] * (labels.reshape(-1) >= 0)
            loss = (per_token * w).sum() / w.sum()
            caption_loss = (per_token.sum() / (labels >= 0).sum()).item()
        else:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
            caption_loss = loss.item()
        if prefixes is not None:
            prefixes.remember(data.last_index, logits.detach(), labels)
        tokens = encoded.last_hidden_state[:, 1:]  # without the CLS token
        # Object tokens weigh more than the many empty ones.
        weight = 1.0 + (s["object_weight"] - 1.0) * (cls > 0).float()
        aux = (F.cross_entropy(heads["cls"](tokens).flatten(0, 1), cls.flatten(), reduction="none")
               * weight.flatten()).sum() / weight.sum()
        has = cls > 0
        if has.any():
            aux = aux + s["box_weight"] * F.l1_loss(heads["box"](tokens[has]), box[has])
        if (motion >= 0).any():
            aux = aux + F.cross_entropy(heads["motion"](tokens).flatten(0, 1), motion.flatten(), ignore_index=-100)
        # Cross-attention of the last decoder layer, first half of its heads: its mass on
        # the object being written.
        rows = look.any(-1)
        if rows.any():
            heads_used = max(1, s["dec_heads"] // 2)
            attn = out.cross_attentions[-1][:, :heads_used].mean(1)  # (B, T, S)
            mass = (attn * look).sum(-1)[rows]
            aux = aux + s["attn_weight"] * -(mass.clamp(min=1e-6)).log().mean()
        loss = loss + s["aux_weight"] * aux
        frac = step / s["steps"]
        if s["number_weight"] > 0 and frac < 0.8:
            # Soft targets on number positions: a Gaussian over the neighbouring values,
            # fading out, so that "near" is learnt before "exact".
            mask = (labels >= 0) & is_number[labels.clamp(min=0)]
            if mask.any():
                target = value[labels[mask]]
                q = torch.exp(-0.5 * ((grid[None, :] - target[:, None]) / s["number_sigma"]) ** 2)
                q = q / q.sum(1, keepdim=True)
                logp = F.log_softmax(logits[mask], -1)[:, number_ids]
                loss = loss + s["number_weight"] * (1 - frac / 0.8) * -(q * logp).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.parameters()) + list(heads.parameters()), 1.0)
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * caption_loss if step else caption_loss
        aux_running = 0.98 * aux_running + 0.02 * aux.item() if step else aux.item()
        if (step + 1) % log_every == 0:
            print(f"step {step + 1}/{s['steps']} caption loss {running:.4f} aux {aux_running:.4f} "
                  f"lr {sched.get_last_lr()[0]:.2e} "
                  f"{time.time() - started:.0f} s", flush=True)
            if save_every and (step + 1) % save_every == 0:
                # An intermediate checkpoint, for a run cut short.
                model.save_pretrained(work / kind / "checkpoint")
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < s["steps"]:
            t = time.time()
            prompts = [fw.frame_prompt(None)] * len(probe_index) if prefixes is not None else None
            preds = predict(model, tok, probe.images[probe_index], prompts=prompts,
                            max_tokens=s.get("prefix_max_tokens", 0))
            meta = [probe.meta[i] for i in probe_index]
            m = frame_metrics(preds, meta) if kind == "frame" else board_metrics(preds, meta)
            model.train()
            print(f"  probe on {len(meta)} held-out: " + ", ".join(
                f"{k} {v:.3f}" for k, v in m.items() if k in (
                    "exact_match", "label_set_correct", "object_precision", "object_recall", "sign_accuracy",
                    "box_mae", "box_coords_within_5", "clause_recall")) +
                f" ({time.time() - t:.0f} s, not counted)", flush=True)
            started += time.time() - t
    seconds = time.time() - started
    if prefixes is not None:
        s["prefix_counts"] = prefixes.counts
    return model, tok, s, seconds


def evaluate(model, tok, kind: str, work: Path, s: dict) -> tuple[dict, list[str]]:
    data = Data(work, kind, "eval", tok)
    started = time.time()
    if not s.get("prompt_prefix"):
        preds = predict(model, tok, data.images)
        metrics = frame_metrics(preds, data.meta) if kind == "frame" else board_metrics(preds, data.meta)
        metrics["eval_seconds"] = round(time.time() - started, 1)
        return metrics, preds
    # Prompt-reading frame captioner: no prompt, the cascade off (FRAME for every
    # frame) and on (CASCADE on the previous output), on the first clips' frames (a
    # check; tools/measure_captioners.py --cascade measures on a fresh world).
    metrics, out = {}, {}
    n = s["prefix_max_tokens"]
    clips = sorted({m["clip"] for m in data.meta})[:EVAL_CLIPS]
    rows = [i for i, m in enumerate(data.meta) if m["clip"] in clips]
    images, meta = data.images[rows], [data.meta[i] for i in rows]
    out["no_prompt"] = predict(model, tok, images)
    out["cascade_off"] = predict_cascade(model, tok, images, meta, n, cascade=False)
    out["cascade_on"] = predict_cascade(model, tok, images, meta, n, cascade=True)
    for how, preds in out.items():
        metrics[how] = frame_metrics(preds, meta)
    metrics["eval_seconds"] = round(time.time() - started, 1)
    return metrics, out["cascade_on"]


# ---------------------------------------------------------------- export

def export(model, kind: str, work: Path, optimum_python: str, keep_with_past: bool = False) -> Path:
    from transformers import ViTImageProcessor
    name = NAMES[kind]
    hf = work / kind / "hf"
    if hf.exists():
        shutil.rmtree(hf)
    model.save_pretrained(hf)
    processor = ViTImageProcessor(do_resize=True, size={"height": fw.HEIGHT, "width": fw.WIDTH},
                                  resample=2, do_rescale=True, rescale_factor=1 / 255,
                                  do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor.save_pretrained(hf)
    write_tokenizer_files(hf, model.generation_config.max_length)
    onnx_dir = work / kind / "onnx"
    if onnx_dir.exists():
        shutil.rmtree(onnx_dir)
    subprocess.run([optimum_python, "-m", "optimum.exporters.onnx", "--model", str(hf),
                    "--task", "image-to-text-with-past", str(onnx_dir)], check=True)
    folder = ROOT / "fixtures" / "models" / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    files = ["encoder_model.onnx", "decoder_model.onnx", "decoder_model_merged.onnx",
             "config.json", "generation_config.json", "preprocessor_config.json"]
    if keep_with_past:
        files.append("decoder_with_past_model.onnx")
    for f in files:
        shutil.copy(onnx_dir / f, folder / f)
    max_length = model.generation_config.max_length
    write_tokenizer_files(folder, max_length)
    config = json.loads((folder / "config.json").read_text())
    prefix = getattr(model.config, "prompt_prefix", None)
    if prefix is not None and config.get("prompt_prefix") != prefix:
        config["prompt_prefix"] = prefix
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    # The generation settings the references use, stated in full.
    gen = json.loads((folder / "generation_config.json").read_text())
    gen.update({"max_length": max_length, "num_beams": 1, "do_sample": False,
                "decoder_start_token_id": fw.BOS_ID, "bos_token_id": fw.BOS_ID,
                "eos_token_id": fw.EOS_ID, "pad_token_id": fw.PAD_ID})
    (folder / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", choices=["frame", "storyboard"], required=True)
    p.add_argument("--work", type=Path, default=Path("/tmp/wolf-fixtures"))
    p.add_argument("--steps", type=int, default=None, help="override the kind's step count")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frozen-layers", type=int, default=None,
                   help="override the kind's frozen encoder layers (with --grow-from; 0: train all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--optimum-python", default="/tmp/optenv/bin/python")
    p.add_argument("--no-export", action="store_true", help="train and measure only")
    p.add_argument("--grow-from", type=Path, default=None,
                   help="start from this smaller trained checkpoint (frame: the first frame captioner's "
                        "weights, rebuilt by tools/recover_weights.py)")
    p.add_argument("--init-from", type=Path, default=None,
                   help="continue training from this saved model of the kind's full size, as it is (frame: "
                        "the committed frame captioner's weights, rebuilt by tools/recover_weights.py)")
    p.add_argument("--lr", type=float, default=None, help="override the kind's peak learning rate")
    p.add_argument("--sign-weight", type=float, default=None,
                   help="loss weight of the sign-word tokens (default: the kind's, 3 for frame)")
    p.add_argument("--no-eval", action="store_true", help="skip the held-out check")
    p.add_argument("--export-only", type=Path, default=None,
                   help="skip training: measure and export this saved checkpoint (e.g. <work>/frame/checkpoint)")
    p.add_argument("--keep-with-past", action="store_true",
                   help="also keep Optimum's decoder_with_past_model.onnx (the merged model holds it)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.export_only:
        from transformers import VisionEncoderDecoderModel
        model, tok, s, seconds = (VisionEncoderDecoderModel.from_pretrained(a.export_only), build_tokenizer(),
                                  dict(SETTINGS[a.kind]), 0.0)
    else:
        if a.init_from and a.grow_from:
            p.error("--init-from and --grow-from exclude each other")
        model, tok, s, seconds = train(a.kind, a.work, a.steps, a.seed, grow=a.grow_from,
                                       frozen_layers=a.frozen_layers, init=a.init_from, lr=a.lr,
                                       sign_weight=a.sign_weight)
    if a.no_eval:
        metrics, preds = {"note": "not measured here (--no-eval)"}, []
    else:
        metrics, preds = evaluate(model, tok, a.kind, a.work, s)
    metrics.update({"train_seconds": round(seconds, 1), "settings": s, "threads": a.threads,
                    "torch": torch.__version__})
    out = a.work / a.kind
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "eval_predictions.json").write_text(json.dumps(preds, indent=1) + "\n")
    print(json.dumps(metrics, indent=2), flush=True)
    if not a.no_export:
        folder = export(model, a.kind, a.work, a.optimum_python, a.keep_with_past)
        print(f"wrote {folder}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
