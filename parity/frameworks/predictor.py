"""A trained LeNet-5 from any model file, run in either framework, as one NumPy function.

`load_classifier(path, framework)` -> classify(uint8 (k, 28, 28) MNIST-style digits) -> (k, 10)
probabilities. Weights are read as raw arrays (parity.weights.reading) and converted where the file's
framework is not the one asked for, so a Keras .h5 runs in torch without TensorFlow. The file is checked
by parity.weights.reading (architecture, shapes, finite weights); finite weights can still overflow to
NaN probabilities, so callers check the output before naming a digit (scripts/predict.py, codes.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from parity.data.preprocess import to_model_input
from parity.weights.reading import file_kind, read_weights

Classifier = Callable[[np.ndarray], np.ndarray]


def load_classifier(path: str | Path, framework: str | None = None) -> Classifier:
    """framework None: the file's own (.ckpt/.pt -> torch, .keras/.h5 -> keras)."""
    framework = framework or file_kind(path)
    weights = read_weights(path)
    if framework == "torch":
        from lenet_torch.checkpoint import model_from_weights
        from lenet_torch.model import predict_probabilities

        model = model_from_weights(weights)
    elif framework == "keras":
        from lenet_keras.checkpoint import set_weights
        from lenet_keras.model import build_lenet5, predict_probabilities

        model = set_weights(build_lenet5(), weights)
    else:
        raise ValueError(f"unknown framework {framework!r}")
    return lambda digits: predict_probabilities(model, to_model_input(np.asarray(digits, dtype=np.uint8)))
