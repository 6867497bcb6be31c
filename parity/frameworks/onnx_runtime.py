"""A LeNet-5 ONNX file, checked and run with onnxruntime: neither torch nor TensorFlow is imported.

The project's exports (scripts/export.py, through torch.onnx or Keras's exporter) share one contract: input
`images`, float32 (batch, 32, 32, 1) in [0, 1], channels last like the Keras model; output `probabilities`,
float32 (batch, 10), softmax applied. A file exported elsewhere with channels first, (batch, 1, 32, 32), or
other tensor names is run too: the layout is read from its input's shape.

Nothing in the file is trusted. It is parsed by `onnx` in a forked child (parity.weights.sandbox: the parser
is C++), and accepted only if its graph is LeNet-5 as parity.spec describes it: two 5x5 convolutions with 6
and 16 filters, two 2x2 average poolings, four ReLUs, three dense layers (Gemm, or MatMul + Add) with
LeNet-5's kernel shapes, one softmax, and only layout ops (Transpose, Reshape, ...) besides; at most 61,706
finite float parameters (an exporter may fold away an all-zero bias); no external data files. onnxruntime
then builds its session from the very bytes that were checked. Anything else is a WeightFileError naming the
file, in one line.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.spec import LENET5, NUM_PARAMS, kernel_shapes
from parity.weights.reading import WeightFileError
from parity.weights.sandbox import Crashed, Failed, call_isolated

ONNX_SUFFIXES = (".onnx",)
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"  # the names scripts/export.py gives
MAX_ONNX_BYTES = 16 << 20  # LeNet-5 in float32 is 0.25 MB; a bigger file is not LeNet-5 (or a bomb)

# op type -> how many LeNet-5 has; the dense layers are Gemm, or MatMul (+ Add for the bias)
LAYER_OPS = {"Conv": 2, "AveragePool": 2, "Relu": 4, "Softmax": 1}
DENSE_OPS = ("Gemm", "MatMul")
LAYOUT_OPS = {"Transpose", "Reshape", "Flatten", "Shape", "Gather", "Cast", "Slice", "Concat", "Add", "Identity",
              "Squeeze", "Unsqueeze", "Constant"}  # what exporters put around the layers: no arithmetic of note


@dataclass
class OnnxModel:
    """A checked ONNX LeNet-5 in an onnxruntime session; `predict_probabilities` like the frameworks' own."""

    session: object
    input_name: str
    channels_last: bool
    parameters: int

    def predict_probabilities(self, images: np.ndarray, batch_size: int = 2_000) -> np.ndarray:
        """(N, 32, 32) float images in [0, 1] -> (N, 10) float32 softmax outputs, every image scored."""
        images = np.asarray(images, dtype=np.float32)
        shaped = images[..., None] if self.channels_last else images[:, None]
        outputs = [self.session.run(None, {self.input_name: shaped[i : i + batch_size]})[0]
                   for i in range(0, len(shaped), batch_size)]
        return np.concatenate(outputs) if outputs else np.zeros((0, 10), dtype=np.float32)


def _describe(data: bytes) -> tuple[dict[str, np.ndarray], str]:
    """In the child: the graph's ops, tensors and float parameters, as plain data."""
    import json

    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(data)
    graph = model.graph
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer):
        raise ValueError("its weights live in a separate file (ONNX external data), which is not read; export with the weights inside")

    def dims(value_info):
        return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]

    initializer_names = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializer_names]
    floats = {}
    for tensor in graph.initializer:
        if tensor.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
            floats[f"w{len(floats)}"] = numpy_helper.to_array(tensor)
    pools = [[a.ints[:] for a in node.attribute if a.name in ("kernel_shape", "strides")]
             for node in graph.node if node.op_type == "AveragePool"]
    text = json.dumps({
        "ops": [node.op_type for node in graph.node],
        "domains": sorted({node.domain for node in graph.node if node.domain not in ("", "ai.onnx")}),
        "functions": len(model.functions),
        "subgraphs": sum(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                         for node in graph.node for a in node.attribute),
        "inputs": [(i.name, i.type.tensor_type.elem_type, dims(i)) for i in inputs],
        "outputs": [(o.name, o.type.tensor_type.elem_type, dims(o)) for o in graph.output],
        "pools": [[list(x) for x in p] for p in pools],
    })
    return floats, text


def _lenet5_difference(info: dict, floats: dict[str, np.ndarray]) -> str | None:
    """The first way the described graph is not LeNet-5, or None."""
    import onnx

    if info["domains"] or info["functions"] or info["subgraphs"]:
        return "it uses custom operator domains, functions or subgraphs"
    ops = Counter(info["ops"])
    for op, count in LAYER_OPS.items():
        if ops[op] != count:
            return f"{ops[op]} {op} ops, LeNet-5 has {count}"
    dense = sum(ops[op] for op in DENSE_OPS)
    if dense != 3:
        return f"{dense} dense (Gemm/MatMul) ops, LeNet-5 has 3"
    other = sorted(set(ops) - set(LAYER_OPS) - set(DENSE_OPS) - LAYOUT_OPS)
    if other:
        return f"op {other[0]}, which LeNet-5 has not"
    if any(p != [[2, 2], [2, 2]] for p in info["pools"]):
        return f"average pooling {info['pools']}, LeNet-5's is 2x2 with stride 2"
    if len(info["inputs"]) != 1 or len(info["outputs"]) != 1:
        return f"{len(info['inputs'])} inputs and {len(info['outputs'])} outputs, LeNet-5 has one of each"
    (_, in_type, in_dims), (_, out_type, out_dims) = info["inputs"][0], info["outputs"][0]
    if in_type != onnx.TensorProto.FLOAT or out_type != onnx.TensorProto.FLOAT:
        return "input or output is not float32"
    if len(in_dims) != 4 or in_dims[1:] not in ([32, 32, 1], [1, 32, 32]):
        return f"input shape {in_dims}, LeNet-5's is (batch, 32, 32, 1) or (batch, 1, 32, 32)"
    if len(out_dims) != 2 or out_dims[1] != 10:
        return f"output shape {out_dims}, LeNet-5's is (batch, 10)"
    shapes = Counter(tuple(sorted(w.shape)) for w in floats.values() if w.ndim >= 2)
    for name, shape in kernel_shapes(LENET5).items():
        if len(shape) < 2:
            continue
        if not shapes[tuple(sorted(shape))]:
            return f"no weight of layer {name}'s shape {tuple(shape)}"
        shapes[tuple(sorted(shape))] -= 1
    count = sum(int(w.size) for w in floats.values())
    if count > NUM_PARAMS:
        return f"{count:,} float parameters, LeNet-5 has {NUM_PARAMS:,}"
    if not all(np.isfinite(w).all() for w in floats.values()):
        return "a weight is not finite (NaN or infinity)"
    return None


def load_onnx(path: str | Path, threads: int = 1) -> OnnxModel:
    """A checked LeNet-5 ONNX file in an onnxruntime session with `threads` intra-op threads."""
    import json

    path = Path(path)
    if not path.is_file():
        raise WeightFileError(f"{path}: no such model file")
    if path.stat().st_size > MAX_ONNX_BYTES:
        raise WeightFileError(f"{path}: not a LeNet-5 ONNX file ({path.stat().st_size:,} bytes; LeNet-5 needs under 1 MB)")
    data = path.read_bytes()
    try:
        floats, text = call_isolated(_describe, data)
        info = json.loads(text)
    except (Crashed, Failed) as error:
        raise WeightFileError(f"{path}: not a LeNet-5 ONNX file ({' '.join(str(error).split())[:300]})") from None
    difference = _lenet5_difference(info, floats)
    if difference:
        raise WeightFileError(f"{path}: not LeNet-5: {difference}")

    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its notes are not the user's business
    try:
        session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 -- onnxruntime's own exception types vary by version
        raise WeightFileError(f"{path}: onnxruntime cannot run it ({' '.join(str(error).split())[:300]})") from None
    (name, _, dims), = info["inputs"]
    return OnnxModel(session, name, channels_last=dims[1:] == [32, 32, 1],
                     parameters=sum(int(w.size) for w in floats.values()))
