#!/usr/bin/env python3
"""Trains the fixture fuser `fixtures/models/fuser/`: a small decoder-only chat LM
(LlamaForCausalLM) that does the pipeline's two LLM stages on the synthetic world, the
temporal summary of an image model's frame captions and the fusion of all sources into
the `wolf` caption, exported with Optimum in the layout of `fixtures/models/tiny-lm/`
(tools/make_tiny_lm.py) so that wolf's `onnx` backend runs it.

Data: the training examples of tools/record_prompts.py (`join`): one JSON object a line,
{"seed", "video", "task": "summary" | "fusion", "messages": [system, user], "target"},
the exact chat the pipeline sent for a video of a synthetic *training* world and that
video's reference caption; or those of tools/story_examples.py (task `story`: a long
video's story over its segments' fused captions, `--tasks story`: the storyteller). `--fake N` makes N hand-made examples instead (the scripts'
smoke test, before real data exists). `--summary-target objects` replaces each summary
example's target by its reference without motion or position phrases (objects, background,
sign: what frame captions can say; `objects_only`), fusion targets staying the references;
the default `reference` keeps the committed model's recipe.

Steps:
1. tokenizer: a byte-level BPE trained with the `tokenizers` library on the examples'
   texts (`--vocab`), plus <pad>, <|im_start|>, <|im_end|>; it must decode every text
   back exactly (checked); ChatML chat template as tiny-lm's;
2. model: LlamaForCausalLM (`--hidden --layers --heads --kv-heads --inter`, tied head
   unless `--untied`), trained with the loss on the assistant's tokens only (the target
   and <|im_end|>), AdamW, warm-up then cosine, batches of similar length;
3. held-out check: examples of `--heldout-seeds` (or a `--heldout-frac` of the videos
   when no seed is given) decoded greedily: exact match, word-overlap F1 against the
   reference, and the share of outputs without a word 4-gram said three times (the
   pipeline's guard rejects those); for fusion examples also the F1 of each input source;
4. export (`--optimum-python`, tools/optimum_env.sh) into `--out` (default
   fixtures/models/fuser/) with tools/make_tiny_lm.py's `export`: model.onnx, config.json,
   generation_config.json (eos <|im_end|>), tokenizer.json, tokenizer_config.json,
   special_tokens_map.json; then reference_outputs.json in tiny-lm's shape (chats of the
   held-out set: prompt, prompt ids, transformers' greedy new ids and text; onnxruntime's
   greedy loop with the KV cache asserted equal) and training.json (seeds, sizes,
   architecture, steps, time, metrics).

Run with the dev environment (torch, transformers 5, tokenizers, onnxruntime 1.32), one
torch thread:

  py=/work/venvs/devenv/bin/python
  DEVENV=/work/venvs/devenv tools/optimum_env.sh /work/venvs/optenv
  $py tools/train_fuser.py --examples /tmp/fuser/examples.jsonl --heldout-seeds 1006 \\
      --work /tmp/fuser/train --optimum-python /work/venvs/optenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_tiny_lm as tl  # noqa: E402  (shared: chat template, Optimum export, greedy loops)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "models" / "fuser"
PAD, IM_START, IM_END = "<pad>", "<|im_start|>", "<|im_end|>"
SPECIALS = [PAD, IM_START, IM_END]  # ids 0, 1, 2
TASKS = ("summary", "fusion", "story")
# The tasks whose targets are one scene's reference (`--target-order sorted` applies).
SCENE_TASKS = ("summary", "fusion")


# ---------------------------------------------------------------- data

def load_examples(paths: list[Path], tasks) -> list[dict]:
    out = []
    for p in paths:
        with p.open() as f:
            for line in f:
                if line.strip():
                    e = json.loads(line)
                    if e["task"] in tasks:
                        out.append(e)
    return out


def render(messages: list[dict], add_generation_prompt: bool = True) -> str:
    """What tiny-lm's ChatML template renders (checked against transformers' rendering
    in `record`)."""
    text = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
    return text + (f"{IM_START}assistant\n" if add_generation_prompt else "")


def split(examples: list[dict], heldout_seeds: list[int], frac: float, seed: int):
    if heldout_seeds:
        held = [e for e in examples if e["seed"] in heldout_seeds]
        train = [e for e in examples if e["seed"] not in heldout_seeds]
    else:  # by video, so that a video's summary and fusion fall on the same side
        videos = sorted({(e["seed"], e["video"]) for e in examples})
        random.Random(seed).shuffle(videos)
        held_v = set(videos[:max(1, round(frac * len(videos)))])
        held = [e for e in examples if (e["seed"], e["video"]) in held_v]
        train = [e for e in examples if (e["seed"], e["video"]) not in held_v]
    return train, held


# Fake examples: the pipeline's prompts as of summary-v2 / fusion-v2 (pipeline/src/wolf/
# prompts.rs) on made-up scenes in the synthetic world's grammar.
SYSTEM = "You are a careful assistant that describes videos. Answer with the description only."
SUMMARY_TEXT = ("Summarize all the captions to describe the video with accurate temporal information. "
                "Answer with one paragraph.\n\n{captions}")
FUSION_TEXT = ("Please summarize on the visual and narrative elements of the video in detail from "
               "descriptions from {image} and descriptions from {video}.")
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circle", "square", "triangle"]
MOTIONS = ["moves from left to right", "moves from right to left", "moves from top to bottom",
           "moves from bottom to top", "bounces around the frame", "stays in the center",
           "stays in the top left corner", "stays at the bottom", "stays on the right",
           "moves diagonally from the top left to the bottom right"]
BACKGROUNDS = ["white", "gray", "black", "beige"]
WORDS = ["OPEN", "STOP", "EXIT", "SALE"]


def join_clauses(clauses: list[str], two: str) -> str:
    if len(clauses) == 1:
        return clauses[0]
    if len(clauses) == 2:
        return f"{clauses[0]} {two} {clauses[1]}"
    return ", ".join(clauses[:-1]) + " and " + clauses[-1]


# `--summary-target objects`: the summary stage only sees frame captions (no boxes), which
# cannot carry motion or position, so its target is the reference reduced to what they can
# say: the objects (colour + shape, the reference's order), the background and the sign.
OBJECT_RE = re.compile(r"\b(an?) ([a-z]+) (circle|square|triangle)\b", re.I)
MOTION_RE = re.compile(r" (?:moves [a-z ]+?|bounces around the frame|stays [a-z ]+?)")
SEPARATOR_RE = re.compile(r"(?:,| while| and) ")
SCENE_RE = re.compile(r"^(?P<objects>.+?) (?P<background>on an? [a-z]+ background\.)(?P<rest>.*)$")


def objects_only(reference: str) -> str:
    """`A red circle moves from left to right while a blue square stays in the top left
    corner on a white background. A sign reads "STOP".` -> `A red circle and a blue square
    on a white background. A sign reads "STOP".` Raises ValueError when a reference is not
    in the synthetic world's grammar (every object kept, no motion phrase left: checked)."""
    m = SCENE_RE.match(reference.strip())
    if not m:
        raise ValueError(f"no background clause: {reference!r}")
    clauses = m["objects"]
    found = list(OBJECT_RE.finditer(clauses))
    objs = [f"{o[1].lower()} {o[2]} {o[3]}" for o in found]
    if not found or found[0].start() != 0:
        raise ValueError(f"no leading object in {reference!r}")
    for o, nxt in zip(found, found[1:] + [None]):  # each object: its motion, then a separator
        gap = clauses[o.end():nxt.start() if nxt else len(clauses)]
        pattern = MOTION_RE.pattern + (SEPARATOR_RE.pattern if nxt else "")
        if not re.fullmatch(pattern, gap):
            raise ValueError(f"unparsed {gap!r} in {reference!r}")
    text = join_clauses(objs, "and")
    text = text[0].upper() + text[1:] + " " + m["background"] + m["rest"]
    if re.search(r"\b(moves|bounces|stays)\b", text) or len(OBJECT_RE.findall(text)) != len(objs):
        raise ValueError(f"bad rewrite {text!r} of {reference!r}")
    return text


# `--target-order sorted`: the reference's object clauses in the order of their labels
# (colour, then shape), the order in which the motion stage lists its tracks. The world
# writes the clauses of a clip in a random order that no input carries, so a model that
# must guess it learns a blurred binding of colour, shape and motion; sorted, the target
# follows its inputs. The facts, words and connectives stay the reference's.
def sorted_clauses(reference: str, order=None) -> str:
    """The reference with its object clauses sorted by their labels, or by `order(label)`
    (a label is (colour, shape)) where given: tools/story_examples.py orders them as a
    segment's caption does."""
    m = SCENE_RE.match(reference.strip())
    if not m:
        raise ValueError(f"no background clause: {reference!r}")
    text = m["objects"]
    found = list(OBJECT_RE.finditer(text))
    if not found or found[0].start() != 0:
        raise ValueError(f"no leading object in {reference!r}")
    clauses, two = [], "and"
    for o, nxt in zip(found, found[1:] + [None]):
        gap = text[o.end():nxt.start() if nxt else len(text)]
        parts = re.fullmatch(f"({MOTION_RE.pattern})({SEPARATOR_RE.pattern})?", gap)
        if not parts or bool(parts[2]) != bool(nxt):
            raise ValueError(f"unparsed {gap!r} in {reference!r}")
        if len(found) == 2 and nxt:
            two = parts[2].strip(" ,")
        label = (o[2].lower(), o[3].lower())
        clauses.append((label, f"{o[1].lower()} {o[2].lower()} {o[3]}{parts[1]}"))
    ordered = [c for _, c in sorted(clauses, key=lambda c: order(c[0]) if order else c[0])]
    body = join_clauses(ordered, two)
    out = body[0].upper() + body[1:] + " " + m["background"] + m["rest"]
    if sorted(words(out)) != sorted(words(reference)):
        raise ValueError(f"bad reorder {out!r} of {reference!r}")
    return out


def apply_target_order(examples: list[dict], order: str, tasks) -> None:
    if order == "reference":
        return
    for e in examples:
        if e["task"] not in tasks:
            continue
        e.setdefault("reference", e["target"])
        e["target"] = sorted_clauses(e["target"])


# `--relabel-copies K`: K copies of each training example with the world's closed
# vocabulary renamed consistently in the prompt and the target: a random bijection of the
# colours, of the shapes, of the backgrounds and of the sign words, and a mirror image
# (left <-> right, top <-> bottom) with probability 1/2 each. A renamed example is as true
# of its renamed world as the original is of its own, but its words cannot be guessed
# from how often they come: the model has to copy each fact from its inputs, which a
# small model trained on the originals alone learns poorly (it falls back to the most
# common background, sign or motion).
RELABEL = {
    "colour": ["red", "green", "blue", "yellow", "purple", "orange"],
    "shape": ["circle", "square", "triangle"],
    "background": ["white", "gray", "black"],
    "sign": ["stop", "open", "exit", "sale", "wolf", "bus", "park", "taxi", "cafe", "bank"],
}
MIRRORS = [("left", "right"), ("top", "bottom")]
ARTICLE_RE = re.compile(r"\b([Aa])n? (?=(red|green|blue|yellow|purple|orange) )")


def relabel_map(rng: random.Random) -> dict[str, str]:
    mapping = {}
    for words in RELABEL.values():
        renamed = words[:]
        rng.shuffle(renamed)
        mapping.update(zip(words, renamed))
    for a, b in MIRRORS:
        if rng.random() < 0.5:
            mapping[a], mapping[b] = b, a
    return mapping


def relabel_text(text: str, mapping: dict[str, str]) -> str:
    def word(m: re.Match) -> str:
        w = m.group(0)
        new = mapping.get(w.lower())
        if new is None:
            return w
        if len(w) > 1 and w.isupper():
            return new.upper()
        return new.capitalize() if w[0].isupper() else new

    text = re.sub(r"[A-Za-z]+", word, text)
    return ARTICLE_RE.sub(lambda m: m[1] + ("n " if m[2][0] in "aeiou" else " "), text)


# `--decoy-sources`: in renamed copies, the sources other than the motion caption get
# their own renaming of colours and shapes (the background, sign words and mirror stay the
# copy's), so that their objects say nothing about the target's. The data shows the motion
# caption's objects true in 95 % of cases and the objects only the summary or a video model
# states true in 23 % (and a video model's motions alone in 6 %), yet a model trained on
# them mixes the sources' labels; a decoy copy leaves copying from the motion caption as
# the only way to the target's objects and motions.
def decoy_map(mapping: dict[str, str], rng: random.Random) -> dict[str, str]:
    decoy = dict(mapping)
    for kind in ("colour", "shape"):
        words = RELABEL[kind]
        renamed = words[:]
        rng.shuffle(renamed)
        decoy.update(zip(words, renamed))
    return decoy


def relabel_prompt(user: str, mapping: dict[str, str], decoy: dict[str, str] | None) -> str:
    if decoy is None:
        return relabel_text(user, mapping)
    motion = re.search(r"the Motion Caption \([^()]*\)", user)
    if not motion:
        return relabel_text(user, mapping)
    return (relabel_text(user[:motion.start()], decoy) + relabel_text(motion[0], mapping)
            + relabel_text(user[motion.end():], decoy))


def relabelled(examples: list[dict], copies: int, seed: int, decoys: float = 0.0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for e in examples:
        for _ in range(copies):
            mapping = relabel_map(rng)
            decoy = decoy_map(mapping, rng) if e["task"] == "fusion" and rng.random() < decoys else None
            c = json.loads(json.dumps(e))
            for m in c["messages"]:
                if m["role"] == "user":
                    m["content"] = relabel_prompt(m["content"], mapping, decoy)
            c["target"] = relabel_text(c["target"], mapping)
            c["relabelled"] = True
            out.append(c)
    return out


def apply_summary_target(examples: list[dict], kind: str) -> None:
    if kind == "reference":
        return
    for e in examples:
        if e["task"] == "summary":
            e["reference"] = e["target"]
            e["target"] = objects_only(e["target"])


def fake_examples(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        objs = []
        for _ in range(rng.randint(1, 3)):
            o = (rng.choice(COLOURS), rng.choice(SHAPES), rng.choice(MOTIONS))
            if all(o[:2] != p[:2] for p in objs):
                objs.append(o)
        bg = rng.choice(BACKGROUNDS)
        sign = rng.choice(WORDS) if rng.random() < 0.4 else None
        ref = join_clauses([f"a {c} {s} {m}" for c, s, m in objs], "while") + f" on a {bg} background."
        ref = ref[0].upper() + ref[1:] + (f' A sign reads "{sign}".' if sign else "")
        items = [f"a {c} {s}" for c, s, _ in objs] + ([f'a sign "{sign}"'] if sign else [])
        frame = join_clauses(items, "and") + f" on a {bg} background"
        lines = [f"From 0.2 s to 1.8 s: {frame}", f"At 2.2 s: {join_clauses(items[:1], 'and')} on a {bg} background"]
        video = f"fake_{i:05d}.mp4"
        summary_user = SUMMARY_TEXT.replace("{captions}", "\n".join(lines[:rng.randint(1, 2)]))
        out.append({"seed": seed, "video": video, "task": "summary",
                    "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": summary_user}],
                    "target": ref})
        motion = join_clauses([f"the {c} {s} {m}" for c, s, m in objs], "while") + "."
        motion = motion[0].upper() + motion[1:]
        board = join_clauses([f"a {c} {s} {rng.choice(MOTIONS)}" for c, s, _ in objs], "while")
        fusion_user = FUSION_TEXT.replace(
            "{image}", f"Image Model A (Image-level Caption: {ref.split(' A sign')[0]}) and the Motion Caption ({motion})"
        ).replace("{video}", f"Video Model A ({board})")
        out.append({"seed": seed, "video": video, "task": "fusion",
                    "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": fusion_user}],
                    "target": ref})
    return out


# ---------------------------------------------------------------- tokenizer

def build_tokenizer(texts: list[str], vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    for i, t in enumerate(SPECIALS):
        assert tok.token_to_id(t) == i, (t, tok.token_to_id(t))
    return tok


# `--phrase-tokens`: each object name (` red triangle`) and each motion phrase (` moves
# from left to right`) of the world becomes one token (an added, non-special token, matched
# in the text before byte-level BPE). The fusion's errors are bindings: a motion copied from
# the motion caption's clause of another object with the same shape (27 of 33 false
# motions on world 1101 are stated by no source). Copying a clause is then a one-token
# lookup (find the object's token in the motion caption, take the token after it), where
# with words it needs the colour and the shape matched together.
def phrase_tokens(texts: list[str]) -> list[str]:
    objects = [f" {c} {s}" for c in RELABEL["colour"] for s in RELABEL["shape"]]
    motions = sorted({" " + m[3].strip() for t in texts for m in FACT_OBJECT_RE.finditer(t.lower()) if m[3]})
    return objects + motions


def add_phrase_tokens(tok, phrases: list[str]) -> None:
    from tokenizers import AddedToken
    tok.add_tokens([AddedToken(p, normalized=False, special=False, single_word=False) for p in phrases])


def check_roundtrip(tok, texts: list[str]) -> None:
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids
        back = tok.decode(ids, skip_special_tokens=False)
        assert back == t, (t, back)


def write_tokenizer_files(folder: Path, tok, max_pos: int) -> None:
    tok.save(str(folder / "tokenizer.json"))
    # SmolLM2-Instruct's choice: bos is <|im_start|> (the template does not add it).
    special = {"bos_token": IM_START, "eos_token": IM_END, "pad_token": PAD,
               "additional_special_tokens": [IM_START, IM_END]}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    added = {str(tok.token_to_id(t)): {"content": t, "lstrip": False, "normalized": False,
                                       "rstrip": False, "single_word": False, "special": True}
             for t in SPECIALS}
    config = {"added_tokens_decoder": added, **special, "chat_template": tl.CHAT_TEMPLATE,
              "clean_up_tokenization_spaces": False, "model_max_length": max_pos,
              "tokenizer_class": "PreTrainedTokenizerFast"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def encode_example(tok, e: dict) -> tuple[list[int], int]:
    """(ids of prompt + target + <|im_end|>, prompt length)."""
    prompt = tok.encode(render(e["messages"]), add_special_tokens=False).ids
    target = tok.encode(e["target"], add_special_tokens=False).ids
    return prompt + target + [tok.token_to_id(IM_END)], len(prompt)


# ---------------------------------------------------------------- model and training

def build_model(a, vocab: int):
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=a.hidden, intermediate_size=a.inter,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads,
                      num_key_value_heads=a.kv_heads, max_position_embeddings=a.max_pos,
                      rms_norm_eps=1e-6, tie_word_embeddings=not a.untied,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0,
                      attention_dropout=0.0)
    torch.manual_seed(a.seed)
    model = LlamaForCausalLM(cfg)
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = 1, 2, 0
    gen.do_sample, gen.num_beams, gen.max_length = False, 1, a.max_pos
    return model


def batches(lengths: list[int], tokens: int, rng: random.Random) -> list[list[int]]:
    """Index lists of similar length, about `tokens` tokens (padded) each, shuffled."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    out, cur = [], []
    for i in order:
        if cur and (len(cur) + 1) * lengths[i] > tokens:
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def collate(encoded: list[tuple[list[int], int]], index: list[int]):
    n = max(len(encoded[i][0]) for i in index)
    ids = torch.zeros((len(index), n), dtype=torch.long)
    mask = torch.zeros((len(index), n), dtype=torch.long)
    labels = torch.full((len(index), n), -100, dtype=torch.long)
    for r, i in enumerate(index):
        seq, p = encoded[i]
        ids[r, :len(seq)] = torch.tensor(seq)
        mask[r, :len(seq)] = 1
        labels[r, p:len(seq)] = torch.tensor(seq[p:])
    return ids, mask, labels


def train(model, encoded, a, log, check=None) -> dict:
    """`check(step)`, when given, is called every `a.eval_every` steps and at the end with
    the model in eval mode; it returns a score (higher is better). With `a.keep_best` the
    model ends with the weights of the best-scoring check."""
    rng = random.Random(a.seed)
    lengths = [len(s) for s, _ in encoded]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.98))
    warm = min(a.warmup, a.steps // 5 + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, a.steps - warm))))
    model.train()
    queue: list[list[int]] = []
    t0, seen, hist = time.time(), 0, []
    best = None
    for step in range(a.steps):
        if not queue:
            queue = batches(lengths, a.batch_tokens, rng)
        index = queue.pop()
        ids, mask, labels = collate(encoded, index)
        logits = model(input_ids=ids, attention_mask=mask).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                               ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        seen += len(index)
        hist.append(loss.item())
        if (step + 1) % a.log_every == 0 or step + 1 == a.steps:
            log(f"step {step + 1}/{a.steps} loss {np.mean(hist[-a.log_every:]):.4f} lr {sched.get_last_lr()[0]:.2e} "
                f"examples {seen} ({seen / len(encoded):.1f} epochs) {time.time() - t0:.0f}s")
        if check and ((a.eval_every and (step + 1) % a.eval_every == 0) or step + 1 == a.steps):
            model.eval()
            score = check(step + 1)
            if best is None or score > best[0]:
                best = (score, step + 1, {k: v.detach().clone() for k, v in model.state_dict().items()})
            model.train()
    model.eval()
    kept = {}
    if best is not None and a.keep_best:
        model.load_state_dict(best[2])
        kept = {"kept_step": best[1], "kept_score": round(float(best[0]), 4)}
        log(f"kept the weights of step {best[1]} (held-out score {best[0]:.4f})")
    return {**kept, "steps": a.steps, "seconds": round(time.time() - t0, 1), "examples_seen": seen,
            "epochs": round(seen / len(encoded), 2), "final_loss": round(float(np.mean(hist[-a.log_every:])), 4)}


# ---------------------------------------------------------------- evaluation

def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def word_f1(pred: str, ref: str) -> float:
    p, r = Counter(words(pred)), Counter(words(ref))
    common = sum((p & r).values())
    if common == 0:
        return 0.0
    prec, rec = common / sum(p.values()), common / sum(r.values())
    return 2 * prec * rec / (prec + rec)


def loops(text: str, n: int = 4, repeats: int = 3) -> bool:
    w = words(text)
    grams = Counter(tuple(w[i:i + n]) for i in range(len(w) - n + 1))
    return any(c >= repeats for c in grams.values())


# Fact F1: a cheap stand-in for wolf's truth metric (scorer/src/truth), in the world's
# grammar only: objects (colour + shape), each object's motion phrase, the background and
# the sign's word, as sets; the held-out target's facts are the truth. Used to follow
# training and to compare the output with its inputs; candidates are chosen by the real
# metric on a measurement world (tools/README.md).
FACT_OBJECT_RE = re.compile(
    r"\b(red|green|blue|yellow|purple|orange|white|gray|black) (circle|square|triangle)\b"
    r"((?: moves [a-z ]+?| bounces around the frame| stays [a-z ]+?)(?=,| and | while | on an? |\.|$))?")
FACT_BACKGROUND_RE = re.compile(r"\bon an? (white|gray|black) background\b")
FACT_SIGN_RE = re.compile(r"\bsign (?:reads )?\"([a-z]+)\"")


def world_facts(text: str) -> set[tuple]:
    t = text.lower()
    out: set[tuple] = set()
    for m in FACT_OBJECT_RE.finditer(t):
        out.add(("object", m[1], m[2]))
        if m[3]:
            out.add(("motion", m[1], m[2], m[3].strip()))
    out.update(("background", m[1]) for m in FACT_BACKGROUND_RE.finditer(t))
    out.update(("sign", m[1]) for m in FACT_SIGN_RE.finditer(t))
    return out


def fact_f1(pred: str, ref: str) -> float:
    p, r = world_facts(pred), world_facts(ref)
    common = len(p & r)
    if not p or not r or common == 0:
        return 0.0
    prec, rec = common / len(p), common / len(r)
    return 2 * prec * rec / (prec + rec)


def story_parts(user: str) -> list[str]:
    """The captions of a story prompt's `m:ss–m:ss: caption` lines, in order."""
    return [m[1] for m in re.finditer(r"^[0-9:]+\u2013[0-9:]+: (.*)$", user, re.M)]


def story_loops(text: str, parts: list[str], n: int = 4, repeats: int = 3) -> bool:
    """guard::check_story's loop: a word n-gram said `repeats` times and more often than
    the parts say it together."""
    said = Counter(tuple(g) for g in zip(*(words(text)[i:] for i in range(n))))
    inputs: Counter = Counter()
    for p in parts:
        inputs.update(tuple(g) for g in zip(*(words(p)[i:] for i in range(n))))
    return any(c >= repeats and c > inputs[g] for g, c in said.items())


def fusion_sources(user: str) -> dict[str, str]:
    """The parenthesised inputs of a fusion prompt, by name."""
    out = {}
    for m in re.finditer(r"(Image Model [A-Z]+ \(Image-level Caption: |the Motion Caption \(|Video Model [A-Z]+ \()"
                         r"([^()]*)\)", user):
        name = m.group(1).rstrip(" (:").replace(" (Image-level Caption", "")
        out[name] = m.group(2)
    return out


def generate(model, tok, examples: list[dict], max_new: int, batch: int = 16) -> list[tuple[str, bool]]:
    """Greedy outputs (text, stopped at the cap) of the examples' chats, batched, left-padded."""
    eos, pad = tok.token_to_id(IM_END), tok.token_to_id(PAD)
    prompts = [tok.encode(render(e["messages"]), add_special_tokens=False).ids for e in examples]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list = [None] * len(prompts)
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        n = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), n), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), n), dtype=torch.long)
        for r, i in enumerate(idx):
            ids[r, n - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[r, n - len(prompts[i]):] = 1
        with torch.no_grad():
            gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, num_beams=1,
                                 max_new_tokens=max_new, eos_token_id=eos, pad_token_id=pad)
        for r, i in enumerate(idx):
            new = gen[r, n:].tolist()
            capped = eos not in new
            new = new[:new.index(eos)] if eos in new else new
            out[i] = (tok.decode(new, skip_special_tokens=True), capped)
    return out


def evaluate(model, tok, held: list[dict], max_new: int, limit: int, seed: int) -> tuple[dict, list[dict]]:
    rng = random.Random(seed)
    metrics, samples = {}, []
    for task in TASKS:
        ex = [e for e in held if e["task"] == task]
        if limit and len(ex) > limit:
            ex = rng.sample(ex, limit)
        if not ex:
            continue
        outs = generate(model, tok, ex, max_new)
        m = {"examples": len(ex),
             "exact_match": round(float(np.mean([o.strip() == e["target"].strip() for (o, _), e in zip(outs, ex)])), 4),
             "word_f1": round(float(np.mean([word_f1(o, e["target"]) for (o, _), e in zip(outs, ex)])), 4),
             "fact_f1": round(float(np.mean([fact_f1(o, e["target"]) for (o, _), e in zip(outs, ex)])), 4),
             "no_loop": round(float(np.mean([not loops(o) for o, _ in outs])), 4),
             "at_cap": round(float(np.mean([c for _, c in outs])), 4)}
        if task == "fusion":
            per: dict[str, list[float]] = {}
            per_fact: dict[str, list[float]] = {}
            for e in ex:
                for name, text in fusion_sources(e["messages"][-1]["content"]).items():
                    per.setdefault(name, []).append(word_f1(text, e["target"]))
                    per_fact.setdefault(name, []).append(fact_f1(text, e["target"]))
            m["input_word_f1"] = {k: round(float(np.mean(v)), 4) for k, v in per.items()}
            m["input_fact_f1"] = {k: round(float(np.mean(v)), 4) for k, v in per_fact.items()}
        if task == "story":
            # Against the parts' captions joined in order (what the pipeline falls back to),
            # and loops as the pipeline's story check counts them (beyond the parts').
            joined = [" ".join(story_parts(e["messages"][-1]["content"])) for e in ex]
            m["joined_word_f1"] = round(float(np.mean([word_f1(j, e["target"]) for j, e in zip(joined, ex)])), 4)
            m["joined_fact_f1"] = round(float(np.mean([fact_f1(j, e["target"]) for j, e in zip(joined, ex)])), 4)
            m["no_loop"] = round(float(np.mean([not story_loops(o, story_parts(e["messages"][-1]["content"]))
                                                for (o, _), e in zip(outs, ex)])), 4)
        metrics[task] = m
        for (o, _), e in list(zip(outs, ex))[:3]:
            samples.append({"task": task, "seed": e["seed"], "video": e["video"], "output": o, "target": e["target"]})
    return metrics, samples


# ---------------------------------------------------------------- references

def record(model, out: Path, graph: str, optimum_python: str, optimum_files: list[str],
           chats: list[list[dict]], max_new: int) -> dict:
    import onnx
    import onnxruntime
    import tokenizers
    import transformers
    from transformers import AutoTokenizer
    tk = AutoTokenizer.from_pretrained(str(out))
    raw = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    eos, pad = tk.convert_tokens_to_ids(IM_END), tk.convert_tokens_to_ids(PAD)
    assert eos == raw.token_to_id(IM_END) and tk.eos_token_id == eos
    cfg = json.loads((out / "config.json").read_text())
    inputs, outputs = tl.onnx_io(out / graph)
    recorded = []
    for messages in chats:
        prompt = tk.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert prompt == render(messages), (prompt, render(messages))
        ids = tk.encode(prompt, add_special_tokens=False)
        assert ids == raw.encode(prompt, add_special_tokens=False).ids
        new, stopped, pt_logits = tl.greedy_transformers(model, ids, eos, pad, max_new)
        onnx_new, onnx_stopped, ort_logits = tl.greedy_onnxruntime(out / graph, cfg, ids, eos, max_new)
        assert onnx_new == new and onnx_stopped == stopped, (new, onnx_new, stopped, onnx_stopped)
        top2 = np.sort(pt_logits, axis=-1)[:, -2:]
        text = tk.decode(new, skip_special_tokens=True)
        assert text == raw.decode(new, skip_special_tokens=True)
        recorded.append({
            "messages": messages, "prompt": prompt, "prompt_ids": ids,
            "new_ids": new, "text": text, "stopped": stopped,
            "min_top2_logit_margin": round(float((top2[:, 1] - top2[:, 0]).min()), 4),
            "onnx_max_abs_logit_diff": float(np.abs(ort_logits - pt_logits).max()),
        })
    return {
        "model": out.name,
        "graph": graph,
        "graph_inputs": inputs,
        "graph_outputs": outputs,
        "generation": tl.generation_record(max_new, eos, pad),
        "chats": recorded,
        "versions": {"reference": {"torch": torch.__version__, "transformers": transformers.__version__,
                                   "tokenizers": tokenizers.__version__, "onnxruntime": onnxruntime.__version__,
                                   "onnx": onnx.__version__},
                     "export": tl.export_versions(optimum_python), "optimum_files": optimum_files},
    }


# ---------------------------------------------------------------- main

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=Path, nargs="*", default=[], help="record_prompts.py join output(s)")
    p.add_argument("--fake", type=int, default=0, help="use N made-up scenes instead (smoke test)")
    p.add_argument("--tasks", nargs="+", default=list(SCENE_TASKS), choices=TASKS)
    p.add_argument("--heldout-seeds", type=int, nargs="*", default=[])
    p.add_argument("--heldout-frac", type=float, default=0.1, help="of the videos, without --heldout-seeds")
    p.add_argument("--work", type=Path, required=True, help="HF checkpoint, logs, Optimum output")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--optimum-python", default="/work/venvs/optenv/bin/python")
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--export-only", action="store_true", help="export <work>/hf-trained as it is")
    p.add_argument("--tokenizer-from", type=Path, help="reuse this folder's tokenizer.json")
    p.add_argument("--init-from", type=Path, help="start from this HF checkpoint (same tokenizer)")
    p.add_argument("--vocab", type=int, default=1024)
    p.add_argument("--hidden", type=int, default=192)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--inter", type=int, default=512)
    p.add_argument("--untied", action="store_true")
    p.add_argument("--max-pos", type=int, default=1024)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-tokens", type=int, default=4096, help="padded tokens per batch")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--max-new", type=int, default=96, help="the pipeline's llm_max_tokens")
    p.add_argument("--eval-limit", type=int, default=150, help="held-out examples per task (0: all)")
    p.add_argument("--reference-chats", type=int, default=2, help="per task, in reference_outputs.json")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--phrase-tokens", action="store_true",
                   help="make each object name and motion phrase of the world one token")
    p.add_argument("--decoy-sources", type=float, default=0.0,
                   help="the share of renamed fusion copies whose other sources are renamed apart")
    p.add_argument("--eval-every", type=int, default=0, help="decode the held-out set every N steps (0: at the end)")
    p.add_argument("--keep-best", action="store_true",
                   help="end with the weights of the check with the best held-out fact F1")
    p.add_argument("--summary-target", choices=("reference", "objects"), default="reference",
                   help="summary examples' target: the reference caption (the committed model's "
                        "recipe) or `objects`: the reference without motion/position phrases "
                        "(objects, background, sign: what frame captions can say)")
    p.add_argument("--target-order", choices=("reference", "sorted"), default="reference",
                   help="targets' object clauses as the reference has them, or sorted by label "
                        "(the motion stage's order)")
    p.add_argument("--sorted-tasks", nargs="+", default=list(SCENE_TASKS), choices=SCENE_TASKS,
                   help="the tasks whose targets --target-order sorted sorts")
    p.add_argument("--relabel-copies", type=int, default=0,
                   help="add this many consistently renamed copies of each training example")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    a.work.mkdir(parents=True, exist_ok=True)
    logf = (a.work / "train.log").open("a")

    def log(msg: str) -> None:
        print(msg, flush=True)
        logf.write(msg + "\n")
        logf.flush()

    if a.fake:
        examples = [e for e in fake_examples(a.fake, seed=1001) if e["task"] in a.tasks]
    else:
        examples = load_examples(a.examples, a.tasks)
    if not examples:
        sys.exit("no examples")
    apply_summary_target(examples, a.summary_target)
    seeds = sorted({e["seed"] for e in examples})
    bad = [s for s in seeds if 1 <= s <= 100]
    if bad:
        sys.exit(f"seeds {bad} are the demo's and measurement worlds' range (1-100): not for training")
    train_ex, held = split(examples, a.heldout_seeds, a.heldout_frac, a.seed)
    # Sorted before the copies are renamed: a renamed copy keeps the order of its prompt's
    # motion caption (sorting after renaming would sort by the new names, which the
    # prompt's order does not follow).
    apply_target_order(train_ex + held, a.target_order, a.sorted_tasks)
    if a.relabel_copies:
        train_ex = train_ex + relabelled(train_ex, a.relabel_copies, a.seed, a.decoy_sources)
    log(f"{len(examples)} examples from seeds {seeds}: train {len(train_ex)} "
        f"({Counter(e['task'] for e in train_ex)}), held-out {len(held)} ({Counter(e['task'] for e in held)})")

    from transformers import LlamaForCausalLM
    from tokenizers import Tokenizer
    hf_dir = a.work / "hf-trained"
    if a.export_only:
        tok = Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
        model = LlamaForCausalLM.from_pretrained(hf_dir).eval()
        run = json.loads((a.work / "run.json").read_text())
    else:
        texts = [m["content"] for e in train_ex for m in e["messages"]] + [e["target"] for e in train_ex]
        texts += ["system", "user", "assistant"]
        if a.tokenizer_from:
            tok = Tokenizer.from_file(str(a.tokenizer_from / "tokenizer.json"))
        else:
            t0 = time.time()
            tok = build_tokenizer(texts, a.vocab)
            if a.phrase_tokens:
                phrases = phrase_tokens([e["target"] for e in train_ex])
                add_phrase_tokens(tok, phrases)
                log(f"phrase tokens: {len(phrases)}")
            log(f"tokenizer: vocab {tok.get_vocab_size()} in {time.time() - t0:.1f}s")
        all_texts = texts + [m["content"] for e in held for m in e["messages"]] + [e["target"] for e in held]
        check_roundtrip(tok, all_texts)
        encoded = [encode_example(tok, e) for e in train_ex]
        for e, (seq, plen) in zip(train_ex[:50], encoded[:50]):  # target ids = what generation would produce
            whole = tok.encode(render(e["messages"]) + e["target"], add_special_tokens=False).ids
            assert whole == seq[:-1], "prompt and target tokenise differently when joined"
        lens = np.array([len(s) for s, _ in encoded])
        tlens = np.array([len(s) - p for s, p in encoded])
        held_lens = [len(encode_example(tok, e)[0]) for e in held]
        log(f"sequence tokens: mean {lens.mean():.0f}, max {lens.max()}, held-out max {max(held_lens, default=0)}; "
            f"target tokens (with eos): mean {tlens.mean():.1f}, max {tlens.max()}")
        if max(lens.max(), max(held_lens, default=0)) + a.max_new > a.max_pos:
            log(f"warning: a prompt plus {a.max_new} new tokens exceeds max_position_embeddings {a.max_pos}")
        if tlens.max() - 1 > a.max_new:
            log(f"warning: a target is longer than --max-new {a.max_new} tokens")
        if a.init_from:
            model = LlamaForCausalLM.from_pretrained(a.init_from)
            assert model.config.vocab_size == tok.get_vocab_size()
        else:
            model = build_model(a, tok.get_vocab_size())
        n_params = sum(p.numel() for p in model.parameters())
        log(f"model: {n_params / 1e6:.2f} M parameters ({model.config.hidden_size} hidden, "
            f"{model.config.num_hidden_layers} layers, tied {model.config.tie_word_embeddings})")
        def check(step: int) -> float:
            m, _ = evaluate(model, tok, held, a.max_new, a.eval_limit, a.seed)
            log(f"check at step {step}: " + json.dumps(m))
            return float(np.mean([t["fact_f1"] for t in m.values()]))

        stats = train(model, encoded, a, log, check if held and (a.eval_every or a.keep_best) else None)
        t0 = time.time()
        metrics, samples = evaluate(model, tok, held, a.max_new, a.eval_limit, a.seed)
        stats["eval_seconds"] = round(time.time() - t0, 1)
        log("held-out: " + json.dumps(metrics))
        for s in samples:
            log(f"  [{s['task']}] {s['output']!r}\n      ref {s['target']!r}")
        model.save_pretrained(hf_dir)
        tok.save(str(hf_dir / "tokenizer.json"))
        cfg = model.config
        run = {
            "data": {"train_seeds": sorted({e["seed"] for e in train_ex}),
                     "heldout_seeds": sorted({e["seed"] for e in held}),
                     "heldout_split": "by seed" if a.heldout_seeds else f"{a.heldout_frac} of the videos",
                     "fake": bool(a.fake), "examples_files": [str(x) for x in a.examples],
                     "train_examples": dict(Counter(e["task"] for e in train_ex)),
                     "heldout_examples": dict(Counter(e["task"] for e in held)),
                     "train_videos": len({(e["seed"], e["video"]) for e in train_ex}),
                     "sequence_tokens_mean": round(float(lens.mean()), 1), "sequence_tokens_max": int(lens.max()),
                     "target_tokens_mean": round(float(tlens.mean()), 1)},
            "tokenizer": {"kind": "byte-level BPE (tokenizers)", "vocab": tok.get_vocab_size(),
                          "specials": SPECIALS, "from": str(a.tokenizer_from) if a.tokenizer_from else None},
            "architecture": {"class": "LlamaForCausalLM", "hidden": cfg.hidden_size,
                             "layers": cfg.num_hidden_layers, "heads": cfg.num_attention_heads,
                             "kv_heads": cfg.num_key_value_heads, "intermediate": cfg.intermediate_size,
                             "tied_head": cfg.tie_word_embeddings, "max_position_embeddings": cfg.max_position_embeddings,
                             "parameters": n_params},
            "training": {**stats, "batch_tokens": a.batch_tokens, "lr": a.lr, "warmup": a.warmup,
                         "optimizer": "AdamW betas 0.9/0.98, weight decay 0.01 on matrices, warm-up then cosine, clip 1.0",
                         "loss": "assistant tokens only (target and <|im_end|>)", "seed": a.seed,
                         "threads": a.threads, "init_from": str(a.init_from) if a.init_from else None,
                         "tasks": a.tasks, "summary_target": a.summary_target,
                         "target_order": a.target_order, "sorted_tasks": a.sorted_tasks,
                         "relabel_copies": a.relabel_copies, "decoy_sources": a.decoy_sources,
                         "phrase_tokens": a.phrase_tokens},
            "heldout_metrics": metrics, "heldout_samples": samples,
            "eval": {"greedy": True, "max_new_tokens": a.max_new, "limit_per_task": a.eval_limit,
                     "word_f1": "bag of lower-case [a-z0-9]+ words, with counts",
                     "no_loop": "no word 4-gram three times or more (the pipeline guard's loop rule)"},
        }
        (a.work / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    if a.no_export:
        return
    max_pos = model.config.max_position_embeddings
    exp = tl.export(model, tok, a.work, a.optimum_python, out=a.out,
                    write_tokenizer=lambda folder, t: write_tokenizer_files(folder, t, max_pos),
                    gen_ids={"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}, max_pos=max_pos)
    rng = random.Random(a.seed)
    chats = []
    for task in a.tasks:
        ex = [e for e in held if e["task"] == task] or [e for e in examples if e["task"] == task]
        chats += [e["messages"] for e in rng.sample(ex, min(a.reference_chats, len(ex)))]
    ref = record(model, a.out, exp["graph"], a.optimum_python, exp["optimum_files"], chats, a.max_new)
    (a.out / "reference_outputs.json").write_text(json.dumps(ref, indent=1) + "\n")
    (a.out / "training.json").write_text(json.dumps(run, indent=1) + "\n")
    size = sum(f.stat().st_size for f in a.out.iterdir())
    log(f"wrote {a.out} ({size / 1e6:.2f} MB): {sorted(f.name for f in a.out.iterdir())}")
    for c in ref["chats"]:
        log(f"- prompt {len(c['prompt_ids'])} tokens -> {len(c['new_ids'])} ({c['stopped']}, margin "
            f"{c['min_top2_logit_margin']}, onnx diff {c['onnx_max_abs_logit_diff']:.2e}): {c['text']!r}")


if __name__ == "__main__":
    sys.exit(main())
