"""The pycocoevalcap anchor of the classic-metrics benchmark: the same pairs as the Rust
side, timed per step as COCOEvalCap runs them (PTB tokenizer, then Bleu(4), Rouge,
Cider on everything; Meteor on the first --meteor-pairs pairs only: the Java METEOR 1.5
runs at about 30 pairs/s here, 100,000 pairs would take about an hour).

    .wolf/venv/bin/python bench/classic_python.py --pairs FILE --meteor-pairs N

FILE: a JSON list of [candidate, [references...]]. Prints one JSON line of seconds.
Needs pycocoevalcap (pinned in tools/setup_venv.sh) and Java.
"""

import argparse
import json
import sys
import time

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", required=True)
    p.add_argument("--meteor-pairs", type=int, default=1000)
    a = p.parse_args()
    pairs = json.load(open(a.pairs))
    gts = {i: [{"caption": r} for r in refs] for i, (_, refs) in enumerate(pairs)}
    res = {i: [{"caption": c}] for i, (c, _) in enumerate(pairs)}
    out = {"pairs": len(pairs)}
    t = time.perf_counter()
    tok = PTBTokenizer()
    gts_t, res_t = tok.tokenize(gts), tok.tokenize(res)
    out["tokenize_s"] = time.perf_counter() - t
    for name, scorer in [("bleu", Bleu(4)), ("rouge", Rouge()), ("cider", Cider())]:
        t = time.perf_counter()
        scorer.compute_score(gts_t, res_t)
        out[f"{name}_s"] = time.perf_counter() - t
    n = min(a.meteor_pairs, len(pairs))
    keys = list(gts_t)[:n]
    meteor = Meteor()
    t = time.perf_counter()
    meteor.compute_score({k: gts_t[k] for k in keys}, {k: res_t[k] for k in keys})
    out["meteor_s"] = time.perf_counter() - t
    out["meteor_pairs"] = n
    print(json.dumps(out), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
