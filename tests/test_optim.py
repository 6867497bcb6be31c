"""KerasAdam applies keras.optimizers.Adam's rule exactly; torch.optim.Adam does not."""

from __future__ import annotations

import keras
import numpy as np
import torch

from lenet_torch.optim import KerasAdam


def run_keras_adam(initial: np.ndarray, grads: list[np.ndarray], lr: float) -> np.ndarray:
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")  # else Keras keeps the learning rate in a float32 variable
    try:
        variable = keras.Variable(initial.copy(), dtype="float64")
        optimizer = keras.optimizers.Adam(learning_rate=lr)
        for grad in grads:
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(grad, dtype="float64"), variable)])
        return keras.ops.convert_to_numpy(variable)
    finally:
        keras.config.set_floatx(previous)


def run_torch(optimizer_class, initial: np.ndarray, grads: list[np.ndarray], lr: float, **kwargs) -> np.ndarray:
    weight = torch.nn.Parameter(torch.from_numpy(initial.copy()))
    optimizer = optimizer_class([weight], lr=lr, **kwargs)
    for grad in grads:
        weight.grad = torch.from_numpy(grad.copy())
        optimizer.step()
    return weight.detach().numpy()


def test_keras_adam_rule_matches_keras_in_float64():
    rng = np.random.default_rng(0)
    initial = rng.normal(size=(7, 5))
    # gradients over several magnitudes, so epsilon's placement matters
    grads = [rng.normal(size=(7, 5)) * 10.0 ** rng.integers(-8, 1, size=(7, 5)) for _ in range(100)]
    expected = run_keras_adam(initial, grads, lr=1e-2)
    moved = np.abs(expected - initial).max()
    assert moved > 0.1
    assert np.abs(run_torch(KerasAdam, initial, grads, lr=1e-2) - expected).max() <= 1e-14 * moved
    # torch's own Adam is a different rule: epsilon inside the bias correction, betas unrounded
    assert np.abs(run_torch(torch.optim.Adam, initial, grads, lr=1e-2, eps=1e-7) - expected).max() > 1e-6


def test_compiled_keras_adam_matches_eager_to_float32_rounding():
    rng = np.random.default_rng(1)
    initial = rng.normal(size=(30, 20)).astype(np.float32)
    grads = [rng.normal(size=(30, 20)).astype(np.float32) for _ in range(20)]
    eager = run_torch(KerasAdam, initial, grads, lr=1e-2)
    compiled = run_torch(KerasAdam, initial, grads, lr=1e-2, compile=True)
    assert np.abs(eager - initial).max() > 0.1
    assert np.abs(compiled - eager).max() <= 1e-5
