"""A Keras LeNet-5 to an ONNX file through Keras 3's own exporter, side by side with lenet_torch/export.py.

`model.export(path, format="onnx")` on the TensorFlow backend traces the model into a tf.function and converts
it with tf2onnx. Out of the box its input is named after the Keras tensor, its output `Identity:0` and its
batch dimension `unk__NN`; here they get the names of the project's ONNX contract (parity/frameworks/
onnx_runtime.py): input `images`, float32 (batch, 32, 32, 1) in [0, 1], output `probabilities`, (batch, 10),
softmax applied (the model's own last activation). tf2onnx folds away an all-zero bias (a fresh model's): the
file then holds fewer parameters and computes the same. The file is written atomically (parity.files.atomic_path)
and checked with onnx.checker before it replaces anything.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import keras
import numpy as np

from parity.files import atomic_path

DEFAULT_OPSET = 18  # the newest tf2onnx 1.17 writes, and torch.onnx's own
INPUT_NAME, OUTPUT_NAME, BATCH_DIM = "images", "probabilities", "batch"  # parity/frameworks/onnx_runtime.py's contract


@contextlib.contextmanager
def _quiet(verbose: bool):
    """tf2onnx logs every step and Keras prints where it saved; none of it is the user's business unless asked."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("tf2onnx", "tensorflow")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf2onnx's NumPy deprecation notes
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _float32(model: keras.Model) -> keras.Model:
    """`model` itself if it computes in float32 (Keras's ONNX export requires it), else a float32 copy."""
    if all(variable.dtype == "float32" for variable in model.weights):
        return model
    from lenet_keras.checkpoint import get_weights, model_from_weights

    weights = get_weights(model)
    return model_from_weights({name: {part: np.asarray(array, np.float32) for part, array in arrays.items()}
                               for name, arrays in weights.items()})


def _rename(graph, old: str, new: str) -> None:
    """Rename a value everywhere the graph names it (graph inputs/outputs and every node's)."""
    for value in [*graph.input, *graph.output]:
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]


def to_contract(proto):
    """tf2onnx's graph with the contract's names: its one input, its one output, and their batch dimension."""
    graph = proto.graph
    (given_input,), (given_output,) = graph.input, graph.output
    _rename(graph, given_input.name, INPUT_NAME)
    _rename(graph, given_output.name, OUTPUT_NAME)
    for value in (graph.input[0], graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
    return proto


def export_onnx(model: keras.Model, path: str | Path, opset: int = DEFAULT_OPSET, verbose: bool = False) -> Path:
    """Write `model` as an ONNX file at `path` (atomically: complete or not at all); returns the path."""
    import onnx

    path = Path(path)
    signature = [keras.InputSpec(shape=(None, 32, 32, 1), dtype="float32", name=INPUT_NAME)]
    with atomic_path(path) as tmp:
        with _quiet(verbose):
            _float32(model).export(tmp, format="onnx", verbose=verbose, input_signature=signature, opset_version=opset)
        proto = to_contract(onnx.load(tmp))
        wrote = next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))
        if wrote != opset:
            raise ValueError(f"Keras's ONNX export cannot write opset {opset} (it wrote opset {wrote})")
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, tmp)
    return path
