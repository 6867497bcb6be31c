"""A model file in the format its suffix names, written by that framework's own package, atomically."""

from __future__ import annotations

from pathlib import Path

from parity.spec import Weights
from parity.weights.reading import check_finite, check_shapes, file_kind


def write_weights(weights: Weights, path: str | Path, config: dict | None = None) -> Path:
    """Write weights (Keras layout) to a file whose suffix picks the format; returns the path. The folder must
    exist. The file appears complete or not at all (a temporary file replaces it), and only LeNet-5 weights,
    every one finite, are written: a model file never says more than its weights do."""
    path = Path(path)
    check_shapes(weights)
    check_finite(weights)
    if file_kind(path) == "torch":
        from lenet_torch.checkpoint import save_weights
    else:
        from lenet_keras.checkpoint import save_weights
    save_weights(weights, path, config)
    return path
