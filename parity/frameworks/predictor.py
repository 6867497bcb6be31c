"""A trained LeNet-5 from any model file, run in torch, Keras or onnxruntime, as one NumPy function.

`load_classifier(path, framework, threads)` -> classify(uint8 (k, 28, 28) MNIST-style digits) -> (k, 10)
probabilities. Weights are read as raw arrays (parity.weights.reading) and converted where the file's
framework is not the one asked for, so a Keras .h5 runs in torch without TensorFlow. The file is checked
by parity.weights.reading (architecture, shapes, finite weights); finite weights can still overflow to
NaN probabilities, so callers check the output before naming a digit (scripts/predict.py, codes.py).

An .onnx file (scripts/export.py's) runs in onnxruntime alone, checked by parity.frameworks.onnx_runtime:
that path imports no torch, TensorFlow, Keras or lenet_* module. It runs nowhere else (its weights are not
read out of the graph), so asking for torch or Keras with it, or for onnx with another file, is a ValueError.

`threads` sets the framework's intra-op threads (torch.set_num_threads, TensorFlow's intra-op pool,
onnxruntime's session): the callers read images in other processes at the same time, so the model gets
the cores those leave, not all of them. Each classify call is one batch: the callers hand it a few hundred
digits at a time, and Keras runs them through its compiled predict step at one fixed (padded) batch size,
so the step is traced once (model.predict sets up a data pipeline on every call: ~150 ms).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from parity.data.preprocess import to_model_input
from parity.frameworks.onnx_runtime import ONNX_SUFFIXES  # imports neither onnx nor onnxruntime until a file is loaded
from parity.weights.reading import KERAS_SUFFIXES, TORCH_SUFFIXES, WeightFileError, file_kind, read_weights

Classifier = Callable[[np.ndarray], np.ndarray]
MODEL_SUFFIXES = TORCH_SUFFIXES + KERAS_SUFFIXES + ONNX_SUFFIXES
FRAMEWORKS = ("torch", "keras", "onnx")
KERAS_BATCH = 256  # the fixed batch Keras's compiled step runs; longer inputs go through in pieces of it


def model_kind(path: str | Path) -> str:
    """'torch', 'keras' or 'onnx', from the suffix; WeightFileError for another suffix."""
    if Path(path).suffix.lower() in ONNX_SUFFIXES:
        return "onnx"
    try:
        return file_kind(path)
    except WeightFileError:
        raise WeightFileError(f"{path}: unknown model format {Path(path).suffix.lower()!r}; "
                              f"use one of {', '.join(MODEL_SUFFIXES)}") from None


def framework_mismatch(path: str | Path, framework: str | None) -> str | None:
    """Why `framework` cannot run the model file at `path` (one line), or None: an .onnx file runs only in
    onnxruntime, and onnxruntime runs only .onnx files."""
    if framework is None:
        return None
    kind = model_kind(path)
    if (kind == "onnx") == (framework == "onnx"):
        return None
    if kind == "onnx":
        return (f"--framework {framework} cannot run {path}: an .onnx model runs in onnxruntime only "
                f"(leave --framework out, or give the .ckpt/.keras it was exported from)")
    return f"--framework onnx needs an .onnx model; {path} is a {kind} file (scripts/export.py makes one)"


def load_classifier(path: str | Path, framework: str | None = None, threads: int | None = None) -> Classifier:
    """framework None: the file's own (.ckpt/.pt -> torch, .keras/.h5 -> keras, .onnx -> onnx). threads None:
    the framework's default. Raises WeightFileError for a file that is not a LeNet-5 model, ValueError for a
    framework that cannot run it."""
    framework = framework or model_kind(path)
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}")
    mismatch = framework_mismatch(path, framework)
    if mismatch:
        raise ValueError(mismatch)
    if framework == "onnx":
        from parity.frameworks.onnx_runtime import load_onnx

        network = load_onnx(path, threads=threads or 1)
        return lambda digits: network.predict_probabilities(_model_input(digits))
    weights = read_weights(path)
    if framework == "torch":
        import torch

        from lenet_torch.checkpoint import model_from_weights
        from lenet_torch.model import predict_probabilities

        if threads:
            torch.set_num_threads(threads)
        model = model_from_weights(weights)
        return lambda digits: predict_probabilities(model, _model_input(digits))
    _keras_threads(threads)
    from lenet_keras.checkpoint import set_weights
    from lenet_keras.model import build_lenet5

    model = set_weights(build_lenet5(), weights)
    return lambda digits: _keras_probabilities(model, _model_input(digits))


def _model_input(digits) -> np.ndarray:
    return to_model_input(np.asarray(digits, dtype=np.uint8))


def _keras_threads(threads: int | None) -> None:
    """TensorFlow's intra-op pool, which must be sized before TensorFlow runs its first op (a process that
    already ran one keeps its pool, and says so with a RuntimeError, which is fine: it is only a size)."""
    import os

    if not threads or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    from parity.cli import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)  # one model, one op at a time
    except RuntimeError:
        pass


def _keras_probabilities(model, images: np.ndarray) -> np.ndarray:
    """(N, 32, 32) -> (N, 10), through `predict_on_batch` in pieces of exactly KERAS_BATCH rows (the last
    padded with blank images, their rows dropped): one input shape, so the step is compiled once."""
    outputs = []
    for start in range(0, len(images), KERAS_BATCH):
        piece = images[start : start + KERAS_BATCH]
        padded = np.zeros((KERAS_BATCH, *piece.shape[1:], 1), dtype=np.float32)
        padded[: len(piece), ..., 0] = piece
        outputs.append(np.asarray(model.predict_on_batch(padded))[: len(piece)])
    return np.concatenate(outputs) if outputs else np.zeros((0, 10), dtype=np.float32)
