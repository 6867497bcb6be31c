"""LeNet-5 as a `keras.Sequential`, built from `parity.spec.LENET5`.

Layer names are the spec's, which are the reference model's, so the seed's .h5 weights map one to one.
Unlike the torch build, the model ends in softmax: Keras's loss takes probabilities.
"""

from __future__ import annotations

import keras

from parity.spec import LENET5, Spec


def build_lenet5(spec: Spec = LENET5, dtype: str | None = None) -> keras.Sequential:
    """Input (N, 32, 32, 1) in [0, 1]; output (N, 10) probabilities. `dtype` e.g. "float64" for parity runs."""
    layers: list[keras.layers.Layer] = [keras.Input(shape=spec.input_shape, dtype=dtype)]
    for layer in spec.layers:
        if layer.kind == "conv":
            layers.append(keras.layers.Conv2D(layer.units, layer.kernel, activation=layer.activation, name=layer.name, dtype=dtype))
        elif layer.kind == "avgpool":
            layers.append(keras.layers.AveragePooling2D(layer.kernel, name=layer.name, dtype=dtype))
        elif layer.kind == "flatten":
            layers.append(keras.layers.Flatten(name=layer.name, dtype=dtype))  # channels-last order (H, W, C)
        else:
            layers.append(keras.layers.Dense(layer.units, activation=layer.activation, name=layer.name, dtype=dtype))
    return keras.Sequential(layers, name="lenet5")


def layer_outputs_model(model: keras.Model) -> keras.Model:
    """A model returning every layer's output (activation applied), for layer-by-layer parity checks."""
    return keras.Model(model.inputs, {layer.name: layer.output for layer in model.layers})


def predict_probabilities(model: keras.Model, images, batch_size: int = 2_000):
    """(N, 32, 32) NumPy images in [0, 1] -> (N, 10) NumPy softmax outputs, every image scored."""
    return model.predict(images[..., None], batch_size=batch_size, verbose=0)
