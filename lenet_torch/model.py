"""LeNet-5 as a plain `torch.nn.Module`, built from `parity.spec.LENET5`.

Modules are named after the spec's (= the reference Keras model's) layers, so a state_dict key
like `layers.dense.weight` says which layer it is. `forward` returns logits, as torch losses expect;
the spec's final softmax is applied by `probabilities` and `layer_outputs`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from parity.spec import LENET5, Spec

_ACTIVATIONS = {"relu": F.relu, "softmax": lambda x: F.softmax(x, dim=1), None: lambda x: x}
# forward's ReLUs work in place on the fresh conv/dense outputs (whose backward does not need them):
# one less 1-4 MB tensor to allocate and write per layer on every CPU training step.
_FORWARD_ACTIVATIONS = {**_ACTIVATIONS, "relu": F.relu_}


def _build(spec: Spec) -> nn.ModuleDict:
    layers, channels = nn.ModuleDict(), spec.input_shape[2]
    for layer, shape in zip(spec.layers, spec.output_shapes()):
        if layer.kind == "conv":
            layers[layer.name] = nn.Conv2d(channels, layer.units, layer.kernel)  # 'valid', stride 1
            channels = layer.units
        elif layer.kind == "avgpool":
            layers[layer.name] = nn.AvgPool2d(layer.kernel)
        elif layer.kind == "flatten":
            layers[layer.name] = nn.Flatten()  # NCHW -> (C*H*W): torch's order, see parity/convert.py
            channels = shape[0]
        else:
            layers[layer.name] = nn.Linear(channels, layer.units)
            channels = layer.units
    return layers


class LeNet5(nn.Module):
    """Input (N, 1, 32, 32) float in [0, 1]; output (N, 10) logits."""

    def __init__(self, spec: Spec = LENET5):
        super().__init__()
        self.spec = spec
        self.layers = _build(spec)
        # The last layer's softmax is left to the loss (logits in, as torch's cross-entropy wants).
        self._activations = [
            _FORWARD_ACTIVATIONS[layer.activation if i < len(spec.layers) - 1 else None]
            for i, layer in enumerate(spec.layers)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module, activation in zip(self.layers.values(), self._activations):
            x = activation(module(x))
        return x

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self(x), dim=1)

    def layer_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every spec layer's output, activation applied (softmax included), in torch's layout (NCHW)."""
        outputs = {}
        for layer, module in zip(self.spec.layers, self.layers.values()):
            x = _ACTIVATIONS[layer.activation](module(x))
            outputs[layer.name] = x
        return outputs


@torch.no_grad()
def predict_probabilities(model: LeNet5, images, batch_size: int = 2_000):
    """(N, 32, 32) NumPy images in [0, 1] -> (N, 10) NumPy softmax outputs, every image scored."""
    import numpy as np

    model.eval()
    param = next(model.parameters())
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))[:, None]
        batch = batch.to(param.device, param.dtype, memory_format=torch.channels_last)
        outputs.append(model.probabilities(batch).cpu().numpy())
    return np.concatenate(outputs)
