"""Loading and saving LeNet-5 weights in Keras, side by side with lenet_torch/checkpoint.py."""

from __future__ import annotations

from pathlib import Path

import keras

from lenet_keras.model import build_lenet5
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


def save_weights(weights: Weights, path: Path, config: dict | None = None) -> None:
    """.keras or .h5: a whole Keras model file that `keras.saving.load_model` opens."""
    model_from_weights(weights).save(path)
