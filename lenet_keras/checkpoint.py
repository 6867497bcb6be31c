"""Loading and saving LeNet-5 weights in Keras, side by side with lenet_torch/checkpoint.py; every save is atomic.

A save goes to a temporary file beside the destination (same suffix, which Keras picks the format by), is
fsynced, then replaces it (parity.files.atomic_path): a kill or a full disk during `model.save` leaves the
previous complete file, never a stub under its name.
"""

from __future__ import annotations

from pathlib import Path

import keras

from lenet_keras.model import build_lenet5
from parity.files import atomic_path
from parity.spec import LENET5, Spec, Weights


def set_weights(model: keras.Model, weights: Weights) -> keras.Model:
    """Load weights given in Keras layout (see parity.weights.convert for the torch side)."""
    for name, arrays in weights.items():
        model.get_layer(name).set_weights([arrays["kernel"], arrays["bias"]])
    return model


def get_weights(model: keras.Model, spec: Spec = LENET5) -> Weights:
    weights = {}
    for layer in spec.weighted_layers:
        kernel, bias = model.get_layer(layer.name).get_weights()
        weights[layer.name] = {"kernel": kernel, "bias": bias}
    return weights


def model_from_weights(weights: Weights, dtype: str | None = None) -> keras.Sequential:
    """A LeNet-5 holding weights given in Keras layout."""
    return set_weights(build_lenet5(dtype=dtype), weights)


def save_model(model: keras.Model, path: str | Path) -> Path:
    """`model.save(path)` (.keras, or legacy .h5), atomically. A .h5 also gets a digest of its weights
    (parity.weights.reading.add_h5_digest): HDF5 has no checksum of its own, a .keras zip has CRC-32s."""
    path = Path(path)
    with atomic_path(path) as tmp:
        model.save(tmp)
        if path.suffix.lower() == ".h5":
            from parity.weights.reading import add_h5_digest

            add_h5_digest(tmp)
    return path


def save_weights(weights: Weights, path: Path, config: dict | None = None) -> None:
    """.keras or .h5: a whole Keras model file that `keras.saving.load_model` opens."""
    save_model(model_from_weights(weights), path)
