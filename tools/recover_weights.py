#!/usr/bin/env python3
"""Rebuilds the PyTorch VisionEncoderDecoderModel of a fixture captioner folder from the
initializers of its ONNX files, for when the training checkpoint is gone.

The folder's config.json gives the architecture. Every weight is read back from
encoder_model.onnx and decoder_model.onnx (decoder_model_merged.onnx must hold the same
tensors) by following the graph, not by trusting the order of names:

* an initializer that keeps its module name (`encoder.layer.0.layernorm_before.weight`,
  `decoder.transformer.h.0.attn.c_attn.weight`, ...) is that parameter; GPT2's Conv1D
  weights are stored [in, out] and used as Gemm's B with transB = 0, so they copy as they
  are (a Linear used by Gemm would need transB = 1 and copies as it is too);
* torch.onnx stores each nn.Linear weight transposed ([in, out]) under an anonymous name
  (`onnx::MatMul_472`) and numbers them in no useful order (in the committed encoders
  the first one of a layer is the key, not the query): such a tensor must be the B input
  of a MatMul whose output feeds an Add with a named bias `<module>.bias`; it becomes
  `<module>.weight` transposed back to [out, in];
* the logits are `MatMul(ln_f, Transpose(decoder.transformer.wte.weight))`: the LM head
  is tied to the token embedding, as in the model (its lm_head.weight is wte's tensor).

Names written by the exporting transformers (4.57) are mapped to those of the installed
one when they differ (ViT's `encoder.layer.N.attention.attention.query` is
`encoder.layers.N.attention.q_proj` in transformers 5, and so on). The script checks that
every state-dict tensor is assigned exactly once with the right shape and that every
ONNX initializer is used, except ViT's pooler (`encoder.pooler.dense.*`): the ONNX encoder
outputs only last_hidden_state, which is all the decoder reads, so the pooler is absent
from the export; it is set to zeros and reported.

Writes <out>/model.safetensors, config.json, generation_config.json (the folder's
generation settings), so that VisionEncoderDecoderModel.from_pretrained(out) loads, plus
the folder's preprocessor and tokenizer files for convenience.

--validate then checks the result on the committed inputs (fixtures/inputs/, frames for
a frame captioner, storyboards for a storyboard captioner): encoder output and
first-step logits against onnxruntime, transformers' greedy `generate` (batch 1 and 4)
against onnxruntime's greedy decoding with decoder_model.onnx and
decoder_model_merged.onnx, and, when the folder has reference_outputs.json, against the
transformers ids recorded there and the recorded summary of the original encoder output
(mean, std, first values, checksum of the output rounded to 1e-4).

Usage: .wolf/devenv/bin/python tools/recover_weights.py fixtures/models/frame-captioner \\
           /tmp/wolf-fixtures/frame/hf --validate
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ROOT / "fixtures" / "inputs"

# Old (exporting transformers) -> new (installed transformers) names, tried in order
# when a name is not in the model's state dict as it is. "attention.output.dense" must
# come before "output.dense".
RENAMES = [
    ("encoder.encoder.layer.", "encoder.layers."),
    ("attention.attention.query.", "attention.q_proj."),
    ("attention.attention.key.", "attention.k_proj."),
    ("attention.attention.value.", "attention.v_proj."),
    ("attention.output.dense.", "attention.o_proj."),
    ("intermediate.dense.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."),
]
# State-dict tensors that the ONNX export cannot hold because no output depends on them.
UNEXPORTED = ("encoder.pooler.",)


def model_key(name: str, prefix: str, keys: set[str]) -> str:
    key = prefix + name
    if key in keys:
        return key
    for old, new in RENAMES:
        key = key.replace(old, new)
    if key not in keys:
        raise KeyError(f"ONNX initializer {name!r} matches no state-dict key (tried {prefix + name!r}, {key!r})")
    return key


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def weights_of(path: Path, prefix: str, model) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """{state-dict key: array} read from one ONNX file, and {key: how it was found}."""
    g = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    modules = dict(model.named_modules())
    keys = set(model.state_dict())
    out: dict[str, np.ndarray] = {}
    how: dict[str, str] = {}
    used: set[str] = set()

    def put(key: str, value: np.ndarray, why: str) -> None:
        if key in out:
            if not np.array_equal(out[key], value):
                raise ValueError(f"{key}: two different tensors in {path.name} ({how[key]} / {why})")
            return
        out[key] = value
        how[key] = why

    for name, value in inits.items():
        users = consumers.get(name, [])
        if not users:
            raise ValueError(f"{path.name}: initializer {name} is used by no node")
        if name.startswith("onnx::"):
            # Anonymous: a transposed Linear weight, MatMul(x, W) -> Add(bias, .) with a named bias.
            if len(users) != 1 or users[0].op_type != "MatMul" or users[0].input[1] != name:
                raise ValueError(f"{path.name}: {name} is not the B input of one MatMul: "
                                 f"{[(u.op_type, list(u.input)) for u in users]}")
            after = consumers.get(users[0].output[0], [])
            if len(after) != 1 or after[0].op_type != "Add":
                raise ValueError(f"{path.name}: MatMul of {name} is not followed by one Add")
            bias = [i for i in after[0].input if i != users[0].output[0]]
            if len(bias) != 1 or bias[0] not in inits or not bias[0].endswith(".bias"):
                raise ValueError(f"{path.name}: MatMul of {name} is followed by an Add without a named bias")
            key = model_key(bias[0][: -len(".bias")] + ".weight", prefix, keys)
            module = modules[key[: -len(".weight")]]
            if not isinstance(module, torch.nn.Linear):
                raise ValueError(f"{key}: {name} feeds MatMul + bias, but the module is {type(module).__name__}")
            put(key, np.ascontiguousarray(value.T), f"{name} (MatMul B, transposed; bias {bias[0]})")
        else:
            key = model_key(name, prefix, keys)
            for u in users:
                if u.op_type == "Gemm" and u.input[1] == name:
                    module = modules[key.rsplit(".", 1)[0]]
                    conv1d = type(module).__name__ == "Conv1D"
                    want = 0 if conv1d else 1
                    if attr(u, "transB", 0) != want or attr(u, "transA", 0) != 0:
                        raise ValueError(f"{name}: Gemm transB {attr(u, 'transB', 0)} does not fit "
                                         f"{type(module).__name__}")
                elif u.op_type == "MatMul" and name in u.input:
                    raise ValueError(f"{name}: a named initializer used directly by MatMul (unexpected)")
            put(key, value, name + (" (renamed)" if key != prefix + name else ""))
        used.add(name)
    # The LM head: logits = MatMul(., Transpose(wte)) means lm_head is tied to wte.
    for n in g.node:
        if "logits" in n.output:
            src = n.input[1]
            producer = next((m for m in g.node if src in m.output), None)
            if n.op_type != "MatMul" or producer is None or producer.op_type != "Transpose" \
                    or not producer.input[0].endswith("transformer.wte.weight"):
                raise ValueError(f"{path.name}: logits are not MatMul(., Transpose(wte)): cannot place lm_head")
            how["lm_head"] = "tied to " + producer.input[0]
    assert used == set(inits)
    return out, how


def same_initializers(a: Path, b: Path) -> None:
    """The merged decoder must hold the same named tensors as the plain one (names
    without the merger's suffix; anonymous ones are compared as a multiset of values)."""
    def load(p):
        # Optimum's merger renames the shared initializers `<name>_merged_0`.
        return {t.name.removesuffix("_merged_0"): numpy_helper.to_array(t)
                for t in onnx.load(str(p)).graph.initializer}
    x, y = load(a), load(b)
    named_x = {k: v for k, v in x.items() if not k.startswith("onnx::")}
    named_y = {k: v for k, v in y.items() if not k.startswith("onnx::")}
    assert named_x.keys() == named_y.keys(), f"{a.name} and {b.name} name different tensors"
    for k in named_x:
        assert np.array_equal(named_x[k], named_y[k]), f"{k} differs between {a.name} and {b.name}"
    anon_x = sorted(v.tobytes() for k, v in x.items() if k.startswith("onnx::"))
    anon_y = sorted(v.tobytes() for k, v in y.items() if k.startswith("onnx::"))
    assert anon_x == anon_y, f"the anonymous tensors of {a.name} and {b.name} differ"


def recover(folder: Path, out: Path) -> dict:
    from transformers import GenerationConfig, VisionEncoderDecoderConfig, VisionEncoderDecoderModel
    cfg = VisionEncoderDecoderConfig.from_pretrained(folder)
    torch.manual_seed(0)
    model = VisionEncoderDecoderModel(cfg).eval()
    state = model.state_dict()
    # Tied tensors (lm_head.weight is wte's): one storage, assigned once.
    by_storage: dict[int, list[str]] = {}
    for k, v in state.items():
        by_storage.setdefault(v.data_ptr(), []).append(k)
    alias = {k: ks[0] for ks in by_storage.values() for k in ks}
    if "decoder_model_merged.onnx" in {p.name for p in folder.iterdir()}:
        same_initializers(folder / "decoder_model.onnx", folder / "decoder_model_merged.onnx")
    enc, enc_how = weights_of(folder / "encoder_model.onnx", "encoder.", model)
    dec, dec_how = weights_of(folder / "decoder_model.onnx", "", model)
    assert not enc.keys() & dec.keys(), "a tensor found in both the encoder and the decoder"
    found = {**enc, **dec}
    how = {**enc_how, **dec_how}
    assigned: dict[str, str] = {}
    report = {"assigned": 0, "tied": [], "unexported_zeroed": []}
    for key, t in state.items():
        head = alias[key]
        if head != key:
            assert "lm_head" in how and key.startswith("decoder.lm_head"), f"{key} is tied but the graph is not"
            report["tied"].append(f"{key} = {head}")
            continue
        if key in found:
            v = found[key]
            if tuple(v.shape) != tuple(t.shape):
                raise ValueError(f"{key}: ONNX shape {v.shape}, model shape {tuple(t.shape)}")
            assigned[key] = how[key]
        elif key.startswith(UNEXPORTED):
            v = np.zeros(tuple(t.shape), np.float32)
            report["unexported_zeroed"].append(key)
        else:
            raise ValueError(f"{key}: not in the ONNX files")
        with torch.no_grad():
            t.copy_(torch.from_numpy(np.array(v, np.float32)))
    extra = set(found) - set(assigned)
    assert not extra, f"ONNX tensors with no place in the model: {sorted(extra)}"
    report["assigned"] = len(assigned)
    report["state_dict_tensors"] = len(state)
    report["sources"] = assigned
    # Generation settings: the folder's.
    model.generation_config = GenerationConfig.from_pretrained(folder)
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out)
    for f in ["preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        if (folder / f).exists():
            shutil.copy(folder / f, out / f)
    # Reload and compare every tensor.
    again = VisionEncoderDecoderModel.from_pretrained(out).eval()
    s2 = again.state_dict()
    assert s2.keys() == state.keys(), "reloaded model has other keys"
    for k in state:
        assert torch.equal(s2[k], state[k]), f"{k} differs after save and reload"
    (out / "recovered_from.json").write_text(json.dumps(
        {"folder": str(folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder),
         **{k: v for k, v in report.items() if k != "sources"}}, indent=1) + "\n")
    return report


# ---------------------------------------------------------------- validation

def greedy_onnx(folder: Path, pixels: np.ndarray, merged: bool, max_length: int, cfg: dict, threads: int):
    """record_references.greedy_onnx with a thread count."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    enc = ort.InferenceSession(str(folder / "encoder_model.onnx"), opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(folder / ("decoder_model_merged.onnx" if merged else "decoder_model.onnx")),
                               opts, providers=["CPUExecutionProvider"])
    hidden = enc.run(["last_hidden_state"], {"pixel_values": pixels})[0]
    b = pixels.shape[0]
    start, eos, pad = cfg["decoder_start_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]
    ids = np.full((b, 1), start, np.int64)
    done = np.zeros(b, bool)
    layers, heads = cfg["decoder"]["n_layer"], cfg["decoder"]["n_head"]
    head_dim = cfg["decoder"]["n_embd"] // heads
    past = {f"past_key_values.{i}.{kv}": np.zeros((b, heads, 0, head_dim), np.float32)
            for i in range(layers) for kv in ("key", "value")}
    names = [o.name for o in dec.get_outputs()]
    first_logits = None
    while ids.shape[1] < max_length and not done.all():
        if merged:
            use_cache = ids.shape[1] > 1
            feed = {"input_ids": ids[:, -1:] if use_cache else ids, "encoder_hidden_states": hidden,
                    "use_cache_branch": np.array([use_cache]), **past}
        else:
            feed = {"input_ids": ids, "encoder_hidden_states": hidden}
        out = dict(zip(names, dec.run(names, feed)))
        logits = out["logits"][:, -1, :]
        if first_logits is None:
            first_logits = logits
        nxt = np.where(done, pad, logits.argmax(-1))
        done |= nxt == eos
        ids = np.concatenate([ids, nxt[:, None]], 1)
        if merged:
            past = {k.replace("present", "past_key_values"): v for k, v in out.items() if k.startswith("present")}
    return ids, hidden, first_logits


def validate(folder: Path, out: Path, threads: int) -> dict:
    from PIL import Image
    from transformers import VisionEncoderDecoderModel
    cfg = json.loads((folder / "config.json").read_text())
    gen = json.loads((folder / "generation_config.json").read_text())
    inputs = json.loads((INPUTS / "inputs.json").read_text())
    key = "storyboards" if "storyboard" in folder.name else "frames"
    files = [i["file"] for i in inputs[key]]
    images = np.stack([np.asarray(Image.open(INPUTS / f).convert("RGB")) for f in files])
    pixels = ((images.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2).copy()
    model = VisionEncoderDecoderModel.from_pretrained(out).eval()
    max_length = gen["max_length"]
    res: dict = {"inputs": files}
    with torch.no_grad():
        t_hidden = model.encoder(pixel_values=torch.from_numpy(pixels)).last_hidden_state.numpy()
        start = torch.full((len(files), 1), gen["decoder_start_token_id"])
        t_logits = model(pixel_values=torch.from_numpy(pixels), decoder_input_ids=start).logits[:, -1].numpy()

        def generate(x):
            return model.generate(pixel_values=torch.from_numpy(x), max_length=max_length,
                                  num_beams=1, do_sample=False).numpy()
        single = [generate(pixels[i: i + 1])[0].tolist() for i in range(len(files))]
        batch = generate(pixels).tolist()
    ok = True
    for form, merged in [("decoder_model", False), ("decoder_model_merged", True)]:
        one = [greedy_onnx(folder, pixels[i: i + 1], merged, max_length, cfg, threads)[0][0].tolist()
               for i in range(len(files))]
        ids4, hidden4, logits4 = greedy_onnx(folder, pixels, merged, max_length, cfg, threads)
        r = {"encoder_max_abs_diff": float(np.abs(hidden4 - t_hidden).max()),
             "first_logits_max_abs_diff": float(np.abs(logits4 - t_logits).max()),
             "batch_1_ids_equal": one == single, "batch_4_ids_equal": ids4.tolist() == batch}
        ok &= r["batch_1_ids_equal"] and r["batch_4_ids_equal"]
        res[form] = r
    ref = folder / "reference_outputs.json"
    if ref.exists():
        d = json.loads(ref.read_text())["transformers"]
        r = {"batch_1_ids_equal": [e["ids"] for e in d["batch_1"]] == single,
             "batch_4_ids_equal": d["batch_4"]["ids"] == batch}
        ok &= r["batch_1_ids_equal"] and r["batch_4_ids_equal"]
        # The recorded summary of the original weights' encoder output (torch).
        import hashlib
        diffs, shas = [], []
        for i, f in enumerate(files):
            s = json.loads(ref.read_text())["encoder_last_hidden_state"][f]
            a = t_hidden[i].astype(np.float32)
            diffs.append(max(abs(float(a.mean()) - s["mean"]), abs(float(a.std()) - s["std"]),
                             float(np.abs(a.reshape(-1)[:8] - np.array(s["first"])).max())))
            shas.append(hashlib.sha256(np.round(a, 4).tobytes()).hexdigest() == s["sha256_of_float32_rounded_1e-4"])
        r["encoder_summary_max_abs_diff"] = max(diffs)
        r["encoder_rounded_sha256_equal"] = shas
        res["reference_outputs_transformers"] = r
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    res["texts"] = [tok.decode(r, skip_special_tokens=True) for r in batch]
    res["ok"] = bool(ok)
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="fixture ONNX folder, e.g. fixtures/models/frame-captioner")
    p.add_argument("out", type=Path, help="where to write the PyTorch model (e.g. /tmp/wolf-fixtures/frame/hf)")
    p.add_argument("--validate", action="store_true", help="check against onnxruntime and reference_outputs.json")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    folder = a.folder.resolve()
    report = recover(folder, a.out)
    print(f"{folder.name}: {report['assigned']} tensors assigned from the ONNX initializers, "
          f"{len(report['tied'])} tied ({', '.join(report['tied'])}), "
          f"{len(report['unexported_zeroed'])} not in the export, zeroed "
          f"({', '.join(report['unexported_zeroed'])}); "
          f"state dict {report['state_dict_tensors']} tensors; wrote {a.out}")
    if a.validate:
        res = validate(folder, a.out, a.threads)
        print(json.dumps(res, indent=1))
        if not res["ok"]:
            print("VALIDATION FAILED", file=sys.stderr)
            return 1
        print(f"{folder.name}: validation OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
