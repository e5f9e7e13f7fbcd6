#!/usr/bin/env python3
"""Story examples for tools/train_fuser.py (task `story`): the training data of the
fixture storyteller, the LLM that tells a long video's story from its segments' captions
(issue 16; `[wolf] story_llm`).

Input: a multi-shot training world (`wolf synth --shots K --seed S`: `dense.json`, the
timed reference sentence of each shot) captioned by the embedded default with `[segments]
max_seconds` below the clips' length, so that each clip is cut into segments, and that
run's `wolf export --format dense-jsonl --source wolf` (each segment's fused caption with
its span).

Each example is the chat the pipeline sends for a story (prompts.rs: SYSTEM, then STORY
with `{captions}` the segments' captions as `m:ss–m:ss: caption` lines, `story_lines`)
and its target: the reference sentences of the shots the segments cover, in order (a
shot is covered by the segment that overlaps it most; a shot no segment holds most of is
left out, since nothing in the prompt tells it), each with its object clauses in the
order its segment's caption names them (`aligned`). Stories are made of
- each clip's segments, all of them;
- `--windows` runs of 2 or more consecutive segments of a clip;
- `--mixes` runs of 2 to `--max-parts` segments taken from several clips one after the
  other, their times shifted to follow each other (stories of long videos, whose groups
  hold up to `[segments] group` = 12 parts).

With `--times` each part of a target starts with its span, as the prompt asks ("with
accurate temporal information"): `From 0:04 to 0:07, a purple square moves ...`. It also
gives a small model a handle on where it is: a part's span leads to its line in the
prompt, which without the spans it has to count (a first storyteller trained without
them told no part: held-out fact F1 0.23 against 0.77 for the parts joined).

  py=/work/venvs/devenv/bin/python
  $py tools/story_examples.py --world /tmp/story/world-4001 --export /tmp/story/dense-4001.jsonl \\
      --seed 4001 --out /tmp/story/examples-4001.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixture_world import pipeline_prompt  # noqa: E402
from train_fuser import sorted_clauses  # noqa: E402

SYSTEM = "You are a careful assistant that describes videos. Answer with the description only."


def clock(s: float) -> str:
    """prompts.rs `clock`: m:ss, or h:mm:ss from an hour on (whole seconds, rounded down)."""
    s = int(max(s, 0.0))
    h = s // 3600
    return f"{s // 60}:{s % 60:02d}" if h == 0 else f"{h}:{s // 60 % 60:02d}:{s % 60:02d}"


def story_user(parts: list[tuple[float, float, str]]) -> str:
    """The user message of a story over `parts` (start, end, caption), as prompts.rs
    `story_lines` and `STORY` make it (the captions are the segments' fused captions,
    which hold no boxes: `plain` leaves them as they are; checked)."""
    for _, _, text in parts:
        if "[" in text or "No." in text:
            raise ValueError(f"machine syntax in a caption: {text!r}")
    lines = "\n".join(f"{clock(a)}\u2013{clock(b)}: {' '.join(t.split())}" for a, b, t in parts)
    return pipeline_prompt("STORY")[1].replace("{captions}", lines)


def aligned(sentence: str, caption: str) -> str:
    """`sentence` (a shot's reference) with its object clauses in the order in which
    `caption` (its segment's) names the objects, those it does not name last: the world
    writes a scene's clauses in a random order, which a story cannot know, and a target
    that follows its input can be copied (train_fuser.py's `--target-order sorted`, for
    the same reason). A sentence outside the world's grammar stays as it is."""
    said = caption.lower()

    def order(label: tuple[str, str]) -> int:
        at = said.find(" ".join(label))
        return at if at >= 0 else len(said) + 1

    try:
        return sorted_clauses(sentence, order)
    except ValueError:
        return sentence


def covered(segments: list[dict], shots: list[tuple[float, float, str]]) -> list[list[int]]:
    """Per segment, the shots (indices) whose largest overlap is with it, in order."""
    out: list[list[int]] = [[] for _ in segments]
    for k, (a, b, _) in enumerate(shots):
        overlaps = [max(0.0, min(b, s["end"]) - max(a, s["start"])) for s in segments]
        best = max(range(len(segments)), key=lambda i: overlaps[i])
        if overlaps[best] > 0:
            out[best].append(k)
    return out


def clips(world: Path, export: Path) -> list[dict]:
    """Each captioned clip: its segments (start, end, caption) and per segment the
    reference sentences it covers."""
    dense = json.loads((world / "dense.json").read_text())
    by_video: dict[str, list[dict]] = {}
    for line in export.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            by_video.setdefault(row["video"], []).append(row)
    out = []
    for video, rows in sorted(by_video.items()):
        rows.sort(key=lambda r: r["start"])
        truth = dense[video]
        shots = [(a, b, s) for (a, b), s in zip(truth["timestamps"], truth["sentences"])]
        cover = covered(rows, shots)
        out.append({
            "video": video,
            "parts": [(r["start"], r["end"], r["caption"]) for r in rows],
            "targets": [[aligned(shots[k][2], r["caption"]) for k in ks] for r, ks in zip(rows, cover)],
        })
    return out


def timed(start: float, end: float, sentences: list[str]) -> str:
    """A part of a timed story: `From 0:04 to 0:07, a purple square ...`."""
    text = " ".join(sentences)
    return f"From {clock(start)} to {clock(end)}, {text[:1].lower()}{text[1:]}"


def example(seed: int, video: str, parts: list, targets: list[list[str]], kind: str,
            with_times: bool) -> dict:
    if with_times:
        sentences = [timed(a, b, t) for (a, b, _), t in zip(parts, targets) if t]
    else:
        sentences = [s for t in targets for s in t]
    return {
        "seed": seed,
        "video": video,
        "task": "story",
        "kind": kind,
        "messages": [{"role": "system", "content": SYSTEM},
                     {"role": "user", "content": story_user(parts)}],
        "target": " ".join(sentences),
    }


def shifted(runs: list[tuple[list, list]]) -> tuple[list, list]:
    """Runs of (parts, targets) one after the other: each run's times moved to start
    where the previous one ended."""
    parts, targets, at = [], [], 0.0
    for run_parts, run_targets in runs:
        origin = run_parts[0][0]
        for (a, b, t), target in zip(run_parts, run_targets):
            parts.append((at + a - origin, at + b - origin, t))
            targets.append(target)
        at = parts[-1][1]
    return parts, targets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", type=Path, required=True)
    p.add_argument("--export", type=Path, required=True, help="wolf export --format dense-jsonl --source wolf")
    p.add_argument("--seed", type=int, required=True, help="the world's seed (recorded)")
    p.add_argument("--windows", type=int, default=2, help="consecutive runs per clip")
    p.add_argument("--mixes", type=int, default=200, help="stories across clips")
    p.add_argument("--max-parts", type=int, default=12)
    p.add_argument("--times", action="store_true",
                   help="targets tell each part with its span: `From 0:04 to 0:07, a ...`")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    rng = random.Random(a.seed)
    found = [c for c in clips(a.world, a.export) if len(c["parts"]) >= 2]
    out = []
    for c in found:
        out.append(example(a.seed, c["video"], c["parts"], c["targets"], "clip", a.times))
        n = len(c["parts"])
        for _ in range(a.windows if n > 2 else 0):
            length = rng.randint(2, n - 1)
            start = rng.randint(0, n - length)
            parts, targets = shifted([(c["parts"][start:start + length], c["targets"][start:start + length])])
            out.append(example(a.seed, c["video"], parts, targets, "window", a.times))
    for i in range(a.mixes):
        want = rng.randint(2, a.max_parts)
        runs, have = [], 0
        while have < want:
            c = rng.choice(found)
            n = len(c["parts"])
            length = min(rng.randint(1, n), want - have)
            start = rng.randint(0, n - length)
            runs.append((c["parts"][start:start + length], c["targets"][start:start + length]))
            have += length
        parts, targets = shifted(runs)
        out.append(example(a.seed, f"mix_{i:04d}", parts, targets, "mix", a.times))
    out = [e for e in out if e["target"]]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with a.out.open("w") as f:
        for e in out:
            f.write(json.dumps(e) + "\n")
    print(f"{len(out)} story examples from {len(found)} clips of seed {a.seed} -> {a.out}")


if __name__ == "__main__":
    main()
