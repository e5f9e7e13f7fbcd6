#!/usr/bin/env python3
"""Builds the tiny decoder-only LM fixture `fixtures/models/tiny-lm/` in the public
Optimum ONNX layout of a chat LLM (SmolLM2 / Qwen2.5 style), for testing the `onnx`
backend's decoder-only LLM path token for token against transformers' greedy `generate`.

The model is a LlamaForCausalLM with random weights (seed 0): hidden 32, 2 layers, 4
attention heads, 2 key/value heads (head_dim 8), MLP 64, max_position_embeddings 256,
untied lm_head. It is not trained: the point is parity, not quality. To make greedy
outputs varied, lm_head is scaled by LM_HEAD_SCALE, the rows of <pad>, <s>, </s>, <unk> and
<|im_start|> are zeroed (never generated in practice) and the row of <|im_end|> is scaled by
EOS_ROW_SCALE, so that one of the three reference chats stops at eos before 16 tokens.

The tokenizer is fixtures/models/frame-captioner/tokenizer.json (word level, <pad>=0,
<s>=1, </s>=2, <unk>=3) plus two added special tokens <|im_start|> and <|im_end|>, with
a ChatML chat template; words it lacks (the role names among them) become <unk>.

Run with the dev environment (torch, transformers 5, tokenizers, onnxruntime); the ONNX
export runs Optimum in its own environment (tools/optimum_env.sh):

  tools/optimum_env.sh /tmp/optenv
  .wolf/devenv/bin/python tools/make_tiny_lm.py --optimum-python /tmp/optenv/bin/python

Writes fixtures/models/tiny-lm/: model.onnx (Optimum's `text-generation-with-past` graph:
inputs input_ids, attention_mask, position_ids, past_key_values.{i}.{key,value}; outputs
logits, present.{i}.{key,value}), config.json, generation_config.json, tokenizer.json,
tokenizer_config.json (with chat_template), special_tokens_map.json and
reference_outputs.json (three chats: rendered prompt, prompt ids, transformers' greedy new
ids and text; the same greedy loop in onnxruntime with the KV cache is asserted equal).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
SRC_TOKENIZER = ROOT / "fixtures" / "models" / "frame-captioner" / "tokenizer.json"
OUT = ROOT / "fixtures" / "models" / "tiny-lm"

SEED = 0
HIDDEN, LAYERS, HEADS, KV_HEADS, INTER, MAX_POS = 32, 2, 4, 2, 64, 256
LM_HEAD_SCALE = 50.0
EOS_ROW_SCALE = 1.75
MAX_NEW_TOKENS = 16
PAD, BOS, EOS_OLD, UNK = "<pad>", "<s>", "</s>", "<unk>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"

# SmolLM2-Instruct's ChatML template without its default system message.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CHATS = [
    [{"role": "system", "content": "a white background"},
     {"role": "user", "content": "a red circle moves from left to right"}],
    [{"role": "user", "content": "a blue square stays in the top left corner"}],
    [{"role": "user", "content": "a green triangle bounces around the frame"}],
]


# ---------------------------------------------------------------- tokenizer

def build_tokenizer():
    from tokenizers import AddedToken, Tokenizer
    tok = Tokenizer.from_file(str(SRC_TOKENIZER))
    tok.add_special_tokens([AddedToken(t, single_word=False, lstrip=False, rstrip=False,
                                       normalized=False, special=True) for t in (IM_START, IM_END)])
    return tok


def write_tokenizer_files(folder: Path, tok) -> None:
    tok.save(str(folder / "tokenizer.json"))
    special = {"bos_token": BOS, "eos_token": IM_END, "pad_token": PAD, "unk_token": UNK,
               "additional_special_tokens": [IM_START, IM_END]}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    added = {str(tok.token_to_id(t)): {"content": t, "lstrip": False, "normalized": False,
                                       "rstrip": False, "single_word": False, "special": True}
             for t in (PAD, BOS, EOS_OLD, UNK, IM_START, IM_END)}
    config = {"added_tokens_decoder": added, **special, "chat_template": CHAT_TEMPLATE,
              "clean_up_tokenization_spaces": False, "model_max_length": MAX_POS,
              "tokenizer_class": "PreTrainedTokenizerFast"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


# ---------------------------------------------------------------- model

def build_model(tok):
    from transformers import LlamaConfig, LlamaForCausalLM
    ids = {t: tok.token_to_id(t) for t in (PAD, BOS, EOS_OLD, UNK, IM_START, IM_END)}
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=HIDDEN, intermediate_size=INTER,
                      num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                      num_key_value_heads=KV_HEADS, max_position_embeddings=MAX_POS,
                      tie_word_embeddings=False, bos_token_id=ids[BOS], eos_token_id=ids[IM_END],
                      pad_token_id=ids[PAD])
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        w = model.lm_head.weight
        w.mul_(LM_HEAD_SCALE)
        w[[ids[PAD], ids[BOS], ids[EOS_OLD], ids[UNK], ids[IM_START]]] = 0.0
        w[ids[IM_END]] *= EOS_ROW_SCALE
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = ids[BOS], ids[IM_END], ids[PAD]
    gen.do_sample, gen.num_beams, gen.max_length = False, 1, MAX_POS
    return model


# ---------------------------------------------------------------- export

def onnx_io(path: Path):
    import onnx
    m = onnx.load(str(path), load_external_data=False)
    init = {i.name for i in m.graph.initializer}
    return [i.name for i in m.graph.input if i.name not in init], [o.name for o in m.graph.output]


def export(model, tok, work: Path, optimum_python: str, out: Path = OUT,
           write_tokenizer=write_tokenizer_files, gen_ids: dict | None = None,
           max_pos: int = MAX_POS) -> dict:
    """Exports `model` with Optimum into `out` (replaced): the one graph with the KV cache,
    config.json, generation_config.json (greedy; `gen_ids`: bos/eos/pad token ids, by
    default tiny-lm's <s>, <|im_end|>, <pad>) and the tokenizer files `write_tokenizer(folder,
    tok)` writes. tools/train_fuser.py calls it for the fuser."""
    hf = work / "hf"
    model.save_pretrained(hf)
    write_tokenizer(hf, tok)
    onnx_dir = work / "onnx"
    cmd = [optimum_python, "-m", "optimum.exporters.onnx", "--model", str(hf),
           "--task", "text-generation-with-past", str(onnx_dir)]
    if shutil.which("taskset"):  # Optimum validates the export with onnxruntime: one core
        cmd = ["taskset", "-c", "0"] + cmd
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    subprocess.run(cmd, check=True, env=env)
    graphs = sorted(p.name for p in onnx_dir.glob("*.onnx"))
    print(f"Optimum wrote {graphs} and {sorted(p.name for p in onnx_dir.iterdir())}", flush=True)
    # Keep exactly one graph: model.onnx when it takes past_key_values (current Optimum),
    # else the merged decoder of older versions.
    src = None
    for name in ("model.onnx", "decoder_model_merged.onnx"):
        if (onnx_dir / name).exists() and any(n.startswith("past_key_values")
                                               for n in onnx_io(onnx_dir / name)[0]):
            src = name
            break
    if src is None:
        sys.exit(f"no graph with past_key_values inputs among {graphs}")
    if any((onnx_dir / f).exists() for f in (src + "_data", src + ".data")):
        sys.exit(f"{src} has external data; expected a single file")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy(onnx_dir / src, out / src)
    shutil.copy(onnx_dir / "config.json", out / "config.json")
    write_tokenizer(out, tok)
    gen_path = onnx_dir / "generation_config.json"
    gen = json.loads(gen_path.read_text()) if gen_path.exists() else {}
    if gen_ids is None:
        gen_ids = {"bos_token_id": tok.token_to_id(BOS), "eos_token_id": tok.token_to_id(IM_END),
                   "pad_token_id": tok.token_to_id(PAD)}
    gen.update({**gen_ids, "max_length": max_pos, "do_sample": False, "num_beams": 1})
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg.get("architectures") == ["LlamaForCausalLM"], cfg.get("architectures")
    assert cfg.get("max_position_embeddings") == max_pos, cfg
    return {"graph": src, "optimum_files": graphs}


# ---------------------------------------------------------------- references

def generation_record(max_new: int, eos: int, pad: int) -> dict:
    """How the reference outputs were generated, as reference_outputs.json says it (the
    tiny LM's and the fuser's)."""
    return {
        "greedy": True, "do_sample": False, "num_beams": 1, "max_new_tokens": max_new,
        "eos_token_id": eos, "pad_token_id": pad,
        "stop_rule": f"stop when the argmax token is eos_token_id ({IM_END}, id {eos}; not "
                     f"included in new_ids) or after {max_new} new tokens; `stopped` says which",
        "prompt": "apply_chat_template(messages, add_generation_prompt=True, tokenize=False); "
                  "prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)",
        "text": "tokenizer.decode(new_ids, skip_special_tokens=True)",
        "onnx_loop": "first step: all prompt ids, attention_mask ones, position_ids 0..n-1, "
                     "past_key_values.* of shape [1, num_key_value_heads, 0, head_dim]; then one "
                     "token a step, attention_mask ones over past + 1, position_ids [past length], "
                     "present.* fed back as past_key_values.*",
    }


def greedy_transformers(model, ids: list[int], eos: int, pad: int, max_new: int = MAX_NEW_TOKENS):
    x = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, num_beams=1,
                             max_new_tokens=max_new, eos_token_id=eos, pad_token_id=pad)
    new = out[0, len(ids):].tolist()
    stopped = "max_new_tokens"
    if new and new[-1] == eos:
        new, stopped = new[:-1], "eos"
    # Logits of the whole sequence, to measure how close greedy's choices were.
    full = ids + new + ([eos] if stopped == "eos" else [])
    with torch.no_grad():
        logits = model(torch.tensor([full])).logits[0, len(ids) - 1:len(full) - 1].numpy()
    return new, stopped, logits


def greedy_onnxruntime(path: Path, cfg: dict, ids: list[int], eos: int, max_new: int = MAX_NEW_TOKENS):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    in_names = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    kv, hd = cfg["num_key_value_heads"], cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    past = {n: np.zeros((1, kv, 0, hd), np.float32) for n in in_names if n.startswith("past_key_values")}
    step_ids, pos0, new, all_logits = list(ids), 0, [], []
    while True:
        n = len(step_ids)
        feed = {"input_ids": np.array([step_ids], np.int64),
                "attention_mask": np.ones((1, pos0 + n), np.int64),
                "position_ids": np.arange(pos0, pos0 + n, dtype=np.int64)[None]}
        feed.update(past)
        feed = {k: v for k, v in feed.items() if k in in_names}
        res = dict(zip(out_names, sess.run(None, feed)))
        logits = res["logits"][0, -1]
        all_logits.append(logits)
        tok = int(np.argmax(logits))
        pos0 += n
        past = {"past_key_values" + k[len("present"):]: v for k, v in res.items() if k.startswith("present")}
        if tok == eos:
            return new, "eos", np.stack(all_logits)
        new.append(tok)
        if len(new) == max_new:
            return new, "max_new_tokens", np.stack(all_logits)
        step_ids = [tok]


def export_versions(optimum_python: str) -> dict:
    """The package versions of the Optimum environment."""
    opt = subprocess.run([optimum_python, "-c",
                          "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
                          "['optimum-onnx', 'optimum', 'transformers', 'torch', 'onnx']}))"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(opt)


def record(model, graph: str, optimum_python: str, optimum_files: list[str]) -> dict:
    import onnxruntime
    import tokenizers
    import transformers
    from transformers import AutoTokenizer
    tk = AutoTokenizer.from_pretrained(str(OUT))
    raw = tokenizers.Tokenizer.from_file(str(OUT / "tokenizer.json"))
    eos, pad = tk.convert_tokens_to_ids(IM_END), tk.convert_tokens_to_ids(PAD)
    assert eos == raw.token_to_id(IM_END) and tk.eos_token_id == eos
    cfg = json.loads((OUT / "config.json").read_text())
    inputs, outputs = onnx_io(OUT / graph)
    chats = []
    for messages in CHATS:
        prompt = tk.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tk.encode(prompt, add_special_tokens=False)
        assert ids == raw.encode(prompt, add_special_tokens=False).ids
        new, stopped, pt_logits = greedy_transformers(model, ids, eos, pad)
        onnx_new, onnx_stopped, ort_logits = greedy_onnxruntime(OUT / graph, cfg, ids, eos)
        assert onnx_new == new and onnx_stopped == stopped, (new, onnx_new, stopped, onnx_stopped)
        top2 = np.sort(pt_logits, axis=-1)[:, -2:]
        chats.append({
            "messages": messages, "prompt": prompt, "prompt_ids": ids,
            "new_ids": new, "text": tk.decode(new, skip_special_tokens=True), "stopped": stopped,
            "min_top2_logit_margin": round(float((top2[:, 1] - top2[:, 0]).min()), 4),
            "onnx_max_abs_logit_diff": float(np.abs(ort_logits - pt_logits).max()),
        })
    import onnx
    return {
        "model": "tiny-lm",
        "graph": graph,
        "graph_inputs": inputs,
        "graph_outputs": outputs,
        "generation": generation_record(MAX_NEW_TOKENS, eos, pad),
        "chats": chats,
        "versions": {"reference": {"torch": torch.__version__, "transformers": transformers.__version__,
                                   "tokenizers": tokenizers.__version__, "onnxruntime": onnxruntime.__version__,
                                   "onnx": onnx.__version__},
                     "export": export_versions(optimum_python), "optimum_files": optimum_files},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--optimum-python", default="/tmp/optenv/bin/python")
    p.add_argument("--work", type=Path, default=None, help="keep the HF and Optimum folders here")
    a = p.parse_args()
    torch.set_num_threads(1)
    tok = build_tokenizer()
    model = build_model(tok)
    with tempfile.TemporaryDirectory() as tmp:
        work = a.work or Path(tmp)
        for sub in ("hf", "onnx"):
            if (work / sub).exists():
                shutil.rmtree(work / sub)
        work.mkdir(parents=True, exist_ok=True)
        exp = export(model, tok, work, a.optimum_python)
    ref = record(model, exp["graph"], a.optimum_python, exp["optimum_files"])
    (OUT / "reference_outputs.json").write_text(json.dumps(ref, indent=1) + "\n")
    size = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"\nwrote {OUT} ({size / 1e6:.2f} MB): {sorted(f.name for f in OUT.iterdir())}")
    print(f"graph {exp['graph']}: inputs {ref['graph_inputs']}\n  outputs {ref['graph_outputs']}")
    for c in ref["chats"]:
        print(f"- {c['prompt']!r}\n  prompt_ids {c['prompt_ids']}\n  new_ids {c['new_ids']} ({c['stopped']}, "
              f"margin {c['min_top2_logit_margin']}, onnx diff {c['onnx_max_abs_logit_diff']:.2e})\n"
              f"  text {c['text']!r}")
    print("versions", json.dumps(ref["versions"]))


if __name__ == "__main__":
    sys.exit(main())
