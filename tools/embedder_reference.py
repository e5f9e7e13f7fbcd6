#!/usr/bin/env python3
"""Reference embeddings of the default embedder, and a check of tools/convert_embedder.py's ONNX file.

Developer machine only (needs torch, sentence-transformers, onnxruntime, tokenizers: the
.wolf/devenv environment); CI reads the JSON it writes, never runs it.

    .wolf/devenv/bin/python tools/embedder_reference.py [--model-dir DIR] [--onnx FILE] [--out FILE]

1. sentence-transformers loads the model folder (.wolf/models/all-minilm-l6-v2, offline) and
   embeds SENTENCES; the result goes to tests/data/embedder_reference.json as
   {"model", "max_seq_length", "sentences", "embeddings"} (384 floats each, 7 significant digits).
2. The same sentences go through model.onnx with onnxruntime and the `tokenizers` library
   (tokenizer.json; its own padding to 128 and truncation at 128 turned off, truncation at
   max_seq_length instead), mean pooling over the attention mask and L2 normalisation, once
   one sentence at a time and once as one padded batch. The minimum cosine and maximum
   absolute difference against sentence-transformers are printed; the script fails under
   a cosine of 0.9999.
"""

import argparse
import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_NAME = "all-minilm-l6-v2"

LONG = (
    "A small red circle enters the frame from the left edge, moves steadily to the right across a "
    "plain grey background, slows down near the centre, bounces off an invisible wall, and then "
    "travels back towards the left while a blue square rotates slowly in the top right corner. "
)

SENTENCES = [
    # Captions of moving shapes.
    "A red circle moves from left to right.",
    "A blue square rotates in the centre of the frame.",
    "A green triangle falls from the top of the screen.",
    "Two circles collide and bounce apart.",
    "A yellow star grows larger and then fades out.",
    "The square slides down and stops at the bottom edge.",
    # Paraphrases of the captions above.
    "A red ball travels across the screen from the left to the right.",
    "In the middle of the picture, a blue box is spinning.",
    "A green triangle drops down from the top.",
    "Two round shapes hit each other and fly apart.",
    # Close variants (one detail changed).
    "A blue circle moves from left to right.",
    "A red circle moves from right to left.",
    # Unrelated sentences.
    "The stock market closed higher on Friday after strong earnings reports.",
    "She baked a loaf of sourdough bread for breakfast.",
    "Quantum computers use qubits instead of classical bits.",
    "The cat is sleeping on the warm windowsill.",
    "Please remember to renew your passport before the trip.",
    # Scene text and odd inputs.
    "A sign reads \"OPEN 24 HOURS\" above the door.",
    "Überraschung! Ein Café in München, naïve façade — 100% déjà vu.",
    "ok",
    ".",
    "SHAPES SHAPES SHAPES",
    # Over 128 tokens but under 256: tokenizer.json's own truncation at 128 would cut it.
    LONG * 3,
    # Over 256 tokens: truncated at max_seq_length.
    LONG * 6,
]


def sig7(x):
    return float(f"{x:.7g}")


def write_json(path, data):
    """One embedding per line, so that a change shows as a readable diff."""
    lines = ["{"]
    lines.append(f'  "model": {json.dumps(data["model"])},')
    lines.append(f'  "max_seq_length": {data["max_seq_length"]},')
    lines.append('  "sentences": [')
    lines.append(",\n".join("    " + json.dumps(s, ensure_ascii=False) for s in data["sentences"]))
    lines.append("  ],")
    lines.append('  "embeddings": [')
    lines.append(",\n".join("    " + json.dumps([sig7(v) for v in e]) for e in data["embeddings"]))
    lines.append("  ]")
    lines.append("}")
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def reference(model_dir, sentences):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    model = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
    emb = model.encode(sentences, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    return model.max_seq_length, emb.astype(np.float64)


def onnx_embeddings(model_dir, onnx_path, sentences, max_seq_length, batched):
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_seq_length)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    encodings = tok.encode_batch(sentences)
    groups = [encodings] if batched else [[e] for e in encodings]
    out, lengths = [], [len(e.ids) for e in encodings]
    for group in groups:
        width = max(len(e.ids) for e in group)
        ids = np.zeros((len(group), width), np.int64)
        mask = np.zeros((len(group), width), np.int64)
        for i, e in enumerate(group):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        (hidden,) = session.run(["last_hidden_state"], {
            "input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        m = mask[:, :, None].astype(np.float64)
        pooled = (hidden.astype(np.float64) * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        out.append(pooled)
    return np.concatenate(out), lengths


def compare(name, got, want):
    cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    diff = np.abs(got - want).max()
    print(f"{name}: min cosine {cos.min():.9f} (1 - min = {1 - cos.min():.2e}), max abs difference {diff:.2e}")
    return cos.min(), diff


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = os.path.join(ROOT, ".wolf", "models", MODEL_NAME)
    parser.add_argument("--model-dir", default=default_dir)
    parser.add_argument("--onnx", default=None, help="default: MODEL_DIR/model.onnx")
    parser.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "embedder_reference.json"))
    args = parser.parse_args()
    onnx_path = args.onnx or os.path.join(args.model_dir, "model.onnx")

    max_seq_length, want = reference(args.model_dir, SENTENCES)
    with open(os.path.join(args.model_dir, "sentence_bert_config.json")) as f:
        assert json.load(f)["max_seq_length"] == max_seq_length
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_json(args.out, {"model": MODEL_NAME, "max_seq_length": max_seq_length,
                          "sentences": SENTENCES, "embeddings": want.tolist()})
    print(f"wrote {len(SENTENCES)} reference embeddings to {os.path.relpath(args.out, ROOT)}")

    # The JSON as written (7 significant digits) against the full-precision reference.
    with open(args.out, encoding="utf-8") as f:
        stored = np.array(json.load(f)["embeddings"], np.float64)
    compare("stored JSON vs sentence-transformers", stored, want)

    worst = 1.0
    for batched in (False, True):
        got, lengths = onnx_embeddings(args.model_dir, onnx_path, SENTENCES, max_seq_length, batched)
        label = "padded batch" if batched else "one at a time"
        worst = min(worst, compare(f"ONNX ({label}) vs sentence-transformers", got, want)[0])
    print(f"token counts: min {min(lengths)}, max {max(lengths)} (truncated at {max_seq_length})")
    sims = want @ want.T
    print(f"cosine examples: paraphrase {sims[0, 6]:.3f}, close variant {sims[0, 10]:.3f}, "
          f"unrelated {sims[0, 12]:.3f}")
    if worst < 0.9999:
        sys.exit(f"FAIL: min cosine {worst} < 0.9999")


if __name__ == "__main__":
    main()
