"""Weight conversion between Keras's and torch's layouts: one explicit table, NumPy only.

Weights travel as `parity.spec.Weights` ({layer: {"kernel", "bias"}} in Keras's layout); torch's side
is a state_dict of `lenet_torch.model.LeNet5`, whose modules are named as the Keras layers (keys
`<layer>.weight` / `<layer>.bias`, e.g. `dense.weight`). Layer names and kinds come from `parity.spec`.

| layer kind                 | Keras kernel         | torch weight          | Keras -> torch                       |
|----------------------------|----------------------|-----------------------|--------------------------------------|
| conv                       | (kh, kw, in, out)    | (out, in, kh, kw)     | transpose (3, 2, 0, 1)               |
| dense                      | (in, out)            | (out, in)             | transpose                            |
| dense right after flatten  | rows in (H, W, C)    | columns in (C, H, W)  | rows (H,W,C) -> (C,H,W), transpose   |
| bias (all)                 | (out,)               | (out,)                | as is                                |

The flatten row is the one people miss: Keras flattens channels-last (5, 5, 16), torch flattens
NCHW as (16, 5, 5). Without that permutation a converted LeNet-5 still runs but scores ~10%.
"""

from __future__ import annotations

import numpy as np

from parity.spec import LENET5, Spec, Weights

CONV_KERAS_TO_TORCH = (3, 2, 0, 1)  # HWIO -> OIHW
CONV_TORCH_TO_KERAS = (2, 3, 1, 0)  # OIHW -> HWIO


def _flattened_input(spec: Spec) -> dict[str, tuple[int, int, int]]:
    """The dense layers fed straight by a flatten, with the (H, W, C) shape that was flattened."""
    result, previous = {}, None
    for layer, shape in zip(spec.layers, spec.output_shapes()):
        if layer.kind == "dense" and previous is not None and previous[0].kind == "flatten":
            result[layer.name] = previous[2]
        previous = (layer, shape, previous[1] if previous else spec.input_shape)
    return result


def keras_to_torch(weights: Weights, spec: Spec = LENET5) -> dict[str, np.ndarray]:
    flattened = _flattened_input(spec)
    state = {}
    for layer in spec.weighted_layers:
        kernel, bias = weights[layer.name]["kernel"], weights[layer.name]["bias"]
        if layer.kind == "conv":
            weight = kernel.transpose(CONV_KERAS_TO_TORCH)
        elif layer.name in flattened:
            h, w, c = flattened[layer.name]
            weight = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1).T
        else:
            weight = kernel.T
        state[f"{layer.name}.weight"] = np.ascontiguousarray(weight)
        state[f"{layer.name}.bias"] = np.ascontiguousarray(bias)
    return state


def torch_to_keras(state: dict[str, np.ndarray], spec: Spec = LENET5) -> Weights:
    flattened = _flattened_input(spec)
    weights: Weights = {}
    for layer in spec.weighted_layers:
        weight, bias = np.asarray(state[f"{layer.name}.weight"]), np.asarray(state[f"{layer.name}.bias"])
        if layer.kind == "conv":
            kernel = weight.transpose(CONV_TORCH_TO_KERAS)
        elif layer.name in flattened:
            h, w, c = flattened[layer.name]
            kernel = weight.T.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(h * w * c, -1)
        else:
            kernel = weight.T
        weights[layer.name] = {"kernel": np.ascontiguousarray(kernel), "bias": np.ascontiguousarray(bias)}
    return weights


def nhwc_to_nchw(x: np.ndarray) -> np.ndarray:
    """A Keras activation in torch's layout (4-D feature maps only; flat vectors are left alone)."""
    return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x
