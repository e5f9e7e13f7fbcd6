"""The Python onnxruntime anchor of the project's ONNX benchmarks: the same models,
inputs, thread counts and decoding as the Rust side, timed in Python.

Run by the benchmarks with `.wolf/venv/bin/python bench/onnx_python.py ...` as a
subprocess; it prints one JSON line on stdout (anything else goes to stderr).
Dependencies: numpy, onnxruntime, tokenizers, pillow (pinned in tools/setup_venv.sh).

  captioner --model DIR --images F1 F2 ... --batch N --threads T --seconds S
            --decoder merged|plain [--provider cpu|cuda]
      A ViT-GPT2 VisionEncoderDecoder ONNX folder (encoder_model.onnx,
      decoder_model.onnx, decoder_model_merged.onnx, config.json,
      generation_config.json, preprocessor_config.json, tokenizer.json), loaded as
      tools/record_references.py loads it: pixels from preprocessor_config.json
      (resize to its size when the image differs, x * rescale_factor (x / 255 when the
      factor is 1/255), (x - mean) / std, NCHW float32), greedy decoding with
      generation_config.json's max_length, decoder_start_token_id, eos_token_id and
      pad_token_id. Per batch: the encoder once, then decoder steps until every row has
      emitted eos or max_length is reached; rows that ended get pad_token_id.
      plain  = decoder_model.onnx on the whole prefix each step;
      merged = decoder_model_merged.onnx, use_cache_branch false with zero-length
               past on the first step, then true with the previous step's present.*.
      Sessions: intra_op_num_threads T, inter_op_num_threads 1, sequential execution.
      One untimed warm-up batch, then passes over the image list in batches of N
      (the last one shorter when N does not divide it) until at least S seconds.
      Prints {"images_per_s", "images", "seconds", "texts" (of the first timed pass), ...}.
      --provider cuda asks for CUDAExecutionProvider with CPU fallback and reports the
      provider that the sessions got (also on stderr).

  embedder [--model DIR] --sentences FILE --batch N --threads T --seconds S
      DIR (default .wolf/models/all-minilm-l6-v2 of this checkout, made by `make setup`):
      DIR/model.onnx (inputs input_ids, attention_mask, token_type_ids; output
      last_hidden_state) and DIR/tokenizer.json with its own padding and truncation
      off, truncation at 256 (max_seq_length), padding with id 0 to the longest
      sentence of the batch, token_type_ids zeros; mean pooling over the attention
      mask and L2 normalisation. FILE holds one sentence a line (empty lines skipped).
      Prints {"sentences_per_s", "sentences", "seconds", ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


def session_options(threads: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return opts


def providers_for(provider: str) -> list[str]:
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if hasattr(ort, "preload_dlls"):
        try:  # CUDA and cuDNN from the nvidia-* wheels, when they are installed
            ort.preload_dlls()
        except Exception as e:  # noqa: BLE001 - the session reports what it got
            print(f"onnx_python: preload_dlls: {e}", file=sys.stderr)
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def timed(run_pass, seconds: float) -> tuple[int, float, object]:
    """Runs passes until `seconds` have gone by (at least one); returns the items done,
    the time taken and the first pass's result."""
    done, first = 0, None
    start = time.perf_counter()
    while True:
        n, result = run_pass()
        done += n
        if first is None:
            first = result
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done, elapsed, first


# ---------------------------------------------------------------- captioner

class Captioner:
    def __init__(self, folder: Path, threads: int, decoder: str, provider: str):
        from tokenizers import Tokenizer
        self.cfg = json.loads((folder / "config.json").read_text())
        self.gen = json.loads((folder / "generation_config.json").read_text())
        self.pre = json.loads((folder / "preprocessor_config.json").read_text())
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.merged = decoder == "merged"
        opts = session_options(threads)
        providers = providers_for(provider)
        self.enc = ort.InferenceSession(str(folder / "encoder_model.onnx"), opts, providers=providers)
        name = "decoder_model_merged.onnx" if self.merged else "decoder_model.onnx"
        self.dec = ort.InferenceSession(str(folder / name), opts, providers=providers)
        self.outputs = [o.name for o in self.dec.get_outputs()] if self.merged else ["logits"]
        self.providers = {"encoder": self.enc.get_providers()[0], "decoder": self.dec.get_providers()[0]}

    def load(self, path: str) -> np.ndarray:
        from PIL import Image
        p = self.pre
        image = Image.open(path)
        if p.get("do_convert_rgb", True) is not False or image.mode != "RGB":
            image = image.convert("RGB")
        if p.get("do_resize", False):
            size = (p["size"]["width"], p["size"]["height"])
            if image.size != size:
                image = image.resize(size, Image.Resampling(p.get("resample", 2)))
        return np.asarray(image)

    def pixels(self, images: np.ndarray) -> np.ndarray:
        p = self.pre
        x = images.astype(np.float32)
        if p.get("do_rescale", True):
            factor = p.get("rescale_factor", 1 / 255)
            x = x / 255.0 if abs(factor - 1 / 255) < 1e-12 else x * np.float32(factor)
        if p.get("do_normalize", True):
            x = (x - np.array(p["image_mean"], np.float32)) / np.array(p["image_std"], np.float32)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2), np.float32)

    def ids(self, pixels: np.ndarray) -> np.ndarray:
        d, g = self.cfg["decoder"], self.gen
        hidden = self.enc.run(["last_hidden_state"], {"pixel_values": pixels})[0]
        b = pixels.shape[0]
        ids = np.full((b, 1), g["decoder_start_token_id"], np.int64)
        done = np.zeros(b, bool)
        heads = d["n_head"]
        past = {f"past_key_values.{i}.{kv}": np.zeros((b, heads, 0, d["n_embd"] // heads), np.float32)
                for i in range(d["n_layer"]) for kv in ("key", "value")}
        while ids.shape[1] < g["max_length"] and not done.all():
            if self.merged:
                use_cache = ids.shape[1] > 1
                feed = {"input_ids": ids[:, -1:] if use_cache else ids, "encoder_hidden_states": hidden,
                        "use_cache_branch": np.array([use_cache]), **past}
            else:
                feed = {"input_ids": ids, "encoder_hidden_states": hidden}
            out = dict(zip(self.outputs, self.dec.run(self.outputs, feed)))
            nxt = np.where(done, g["pad_token_id"], out["logits"][:, -1, :].argmax(-1))
            done |= nxt == g["eos_token_id"]
            ids = np.concatenate([ids, nxt[:, None]], 1)
            if self.merged:
                past = {k.replace("present", "past_key_values"): v for k, v in out.items()
                        if k.startswith("present")}
        return ids

    def texts(self, pixels: np.ndarray) -> list[str]:
        return [self.tok.decode([int(t) for t in r], skip_special_tokens=True) for r in self.ids(pixels)]


def captioner(a) -> dict:
    cap = Captioner(Path(a.model), a.threads, a.decoder, a.provider)
    print(f"onnx_python: provider {cap.providers['encoder']} (encoder), {cap.providers['decoder']} (decoder)",
          file=sys.stderr)
    images = np.stack([cap.load(f) for f in a.images])
    batches = [cap.pixels(images[i: i + a.batch]) for i in range(0, len(images), a.batch)]
    cap.ids(batches[0])  # warm-up

    def run_pass():
        texts = []
        for x in batches:
            texts.extend(cap.texts(x))
        return len(images), texts

    count, seconds, texts = timed(run_pass, a.seconds)
    return {"images_per_s": count / seconds, "images": count, "seconds": seconds, "texts": texts,
            "batch": a.batch, "threads": a.threads, "decoder": a.decoder, "provider": cap.providers["decoder"],
            "onnxruntime": ort.__version__}


# ---------------------------------------------------------------- embedder

MAX_SEQ_LENGTH = 256


def embedder(a) -> dict:
    from tokenizers import Tokenizer
    folder = Path(a.model)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    tok.enable_truncation(max_length=MAX_SEQ_LENGTH)
    session = ort.InferenceSession(str(folder / "model.onnx"), session_options(a.threads),
                                   providers=providers_for(a.provider))
    sentences = [s for s in Path(a.sentences).read_text().splitlines() if s.strip()]
    if not sentences:
        raise SystemExit("onnx_python: no sentences")
    groups = [sentences[i: i + a.batch] for i in range(0, len(sentences), a.batch)]

    def embed(group: list[str]) -> np.ndarray:
        encodings = tok.encode_batch(group)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(group), width), np.int64)
        mask = np.zeros((len(group), width), np.int64)
        for i, e in enumerate(encodings):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        (hidden,) = session.run(["last_hidden_state"], {
            "input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    embed(groups[0])  # warm-up

    def run_pass():
        return len(sentences), np.concatenate([embed(g) for g in groups])

    count, seconds, vectors = timed(run_pass, a.seconds)
    return {"sentences_per_s": count / seconds, "sentences": count, "seconds": seconds,
            "batch": a.batch, "threads": a.threads, "dim": int(vectors.shape[1]),
            "first_vector_head": [round(float(v), 6) for v in vectors[0, :4]],
            "provider": session.get_providers()[0], "onnxruntime": ort.__version__}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("captioner")
    c.add_argument("--model", required=True)
    c.add_argument("--images", nargs="+", required=True)
    c.add_argument("--decoder", choices=["merged", "plain"], default="merged")
    e = sub.add_parser("embedder")
    e.add_argument("--model", default=str(Path(__file__).resolve().parent.parent / ".wolf/models/all-minilm-l6-v2"))
    e.add_argument("--sentences", required=True)
    for s in (c, e):
        s.add_argument("--batch", type=int, default=1)
        s.add_argument("--threads", type=int, default=1)
        s.add_argument("--seconds", type=float, default=3.0)
        s.add_argument("--provider", choices=["cpu", "cuda"], default="cpu")
    a = p.parse_args()
    if a.batch < 1 or a.threads < 1:
        p.error("--batch and --threads must be at least 1")
    result = captioner(a) if a.command == "captioner" else embedder(a)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
