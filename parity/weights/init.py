"""One seed -> the same initial weights in both frameworks.

Keras's defaults (Glorot-uniform kernels, zero biases) drawn with NumPy, in Keras's layout;
`parity.weights.convert` carries them into torch. Both builds start every training run from these.
"""

from __future__ import annotations

import numpy as np

from parity.spec import LENET5, Spec, Weights, kernel_shapes

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
    from parity.weights.reading import read_weights  # imports this module: import here, not at the top

    return read_weights(config.init_from)
