"""LeNet-5 as a `keras.Sequential`, side by side with lenet_torch/model.py.

Layer names are the reference model's, so the seed's .h5 weights map one to one. Unlike the torch
model, this one ends in softmax: Keras's loss takes probabilities. tests/test_spec.py checks it against
parity.spec.
"""

from __future__ import annotations

import keras
from keras import layers


def build_lenet5(dtype: str | None = None) -> keras.Sequential:
    """Input (N, 32, 32, 1) in [0, 1]; output (N, 10) probabilities. `dtype` e.g. "float64" for parity runs."""
    return keras.Sequential(
        [
            keras.Input((32, 32, 1), dtype=dtype),
            layers.Conv2D(6, 5, activation="relu", name="conv2d", dtype=dtype),  # -> (28, 28, 6)
            layers.AveragePooling2D(2, name="average_pooling2d", dtype=dtype),  # -> (14, 14, 6)
            layers.Conv2D(16, 5, activation="relu", name="conv2d_1", dtype=dtype),  # -> (10, 10, 16)
            layers.AveragePooling2D(2, name="average_pooling2d_1", dtype=dtype),  # -> (5, 5, 16)
            layers.Flatten(name="flatten", dtype=dtype),  # -> 400 in channels-last (H, W, C) order
            layers.Dense(120, activation="relu", name="dense", dtype=dtype),
            layers.Dense(84, activation="relu", name="dense_1", dtype=dtype),
            layers.Dense(10, activation="softmax", name="dense_2", dtype=dtype),
        ],
        name="lenet5",
    )


def layer_outputs_model(model: keras.Model) -> keras.Model:
    """A model returning every layer's output (activation applied), for layer-by-layer parity checks."""
    return keras.Model(model.inputs, {layer.name: layer.output for layer in model.layers})


def predict_probabilities(model: keras.Model, images, batch_size: int = 2_000):
    """(N, 32, 32) NumPy images in [0, 1] -> (N, 10) NumPy softmax outputs, every image scored."""
    return model.predict(images[..., None], batch_size=batch_size, verbose=0)
