"""A model file in the format its suffix names, written by that framework's own package."""

from __future__ import annotations

from pathlib import Path

from parity.spec import Weights
from parity.weights.reading import file_kind


def write_weights(weights: Weights, path: str | Path, config: dict | None = None) -> Path:
    """Write weights (Keras layout) to a file whose suffix picks the format; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if file_kind(path) == "torch":
        from lenet_torch.checkpoint import save_weights
    else:
        from lenet_keras.checkpoint import save_weights
    save_weights(weights, path, config)
    return path
