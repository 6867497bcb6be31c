"""One seed -> the same initial weights in both frameworks.

Keras's defaults (Glorot-uniform kernels, zero biases) drawn with NumPy, in Keras's layout;
`parity.convert` carries them into torch. Both builds start every training run from these.
"""

from __future__ import annotations

import numpy as np

from parity.spec import LENET5, Spec

Weights = dict[str, dict[str, np.ndarray]]  # layer name -> {"kernel": ..., "bias": ...}, Keras layout


def kernel_shapes(spec: Spec = LENET5) -> dict[str, tuple[int, ...]]:
    """Kernel shape per weighted layer in Keras's layout: conv HWIO, dense (in, out)."""
    shapes, channels = {}, spec.input_shape[2]
    for layer, out_shape in zip(spec.layers, spec.output_shapes()):
        if layer.kind == "conv":
            shapes[layer.name] = (layer.kernel, layer.kernel, channels, layer.units)
            channels = layer.units
        elif layer.kind == "flatten":
            channels = out_shape[0]
        elif layer.kind == "dense":
            shapes[layer.name] = (channels, layer.units)
            channels = layer.units
    return shapes


def initial_weights(seed: int, spec: Spec = LENET5, dtype=np.float32) -> Weights:
    rng = np.random.default_rng(seed)
    weights: Weights = {}
    for name, shape in kernel_shapes(spec).items():
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        weights[name] = {
            "kernel": rng.uniform(-limit, limit, size=shape).astype(dtype),
            "bias": np.zeros(shape[-1], dtype=dtype),
        }
    return weights


def starting_weights(config) -> Weights:
    """A run's first weights: the model file it fine-tunes (config.init_from), else the seeded draw."""
    if config.init_from is None:
        return initial_weights(config.seed)
    from parity.weight_files import read_weights  # imports this module: import here, not at the top

    return read_weights(config.init_from)
