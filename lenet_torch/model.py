"""LeNet-5 as a plain `torch.nn.Module`, side by side with lenet_keras/model.py.

Each module is named as the reference Keras model's layer, so a state_dict key like `dense.weight` says
which layer it is. `forward` returns logits, as torch's cross-entropy expects; the reference model's final
softmax is applied by `probabilities` and `layer_outputs`. tests/test_spec.py checks it against parity.spec.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LeNet5(nn.Module):
    """Input (N, 1, 32, 32) float in [0, 1]; output (N, 10) logits."""

    def __init__(self):
        super().__init__()
        self.conv2d = nn.Conv2d(1, 6, 5)  # -> (6, 28, 28)
        self.average_pooling2d = nn.AvgPool2d(2)  # -> (6, 14, 14)
        self.conv2d_1 = nn.Conv2d(6, 16, 5)  # -> (16, 10, 10)
        self.average_pooling2d_1 = nn.AvgPool2d(2)  # -> (16, 5, 5)
        self.flatten = nn.Flatten()  # -> 400 in (C, H, W) order; Keras's is (H, W, C): see parity/weights/convert.py
        self.dense = nn.Linear(400, 120)
        self.dense_1 = nn.Linear(120, 84)
        self.dense_2 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The ReLUs work in place on the fresh conv/dense outputs (whose backward does not need them):
        # one less 1-4 MB tensor to allocate and write per layer on every CPU training step.
        x = self.average_pooling2d(F.relu_(self.conv2d(x)))
        x = self.average_pooling2d_1(F.relu_(self.conv2d_1(x)))
        x = self.flatten(x)
        x = F.relu_(self.dense(x))
        x = F.relu_(self.dense_1(x))
        return self.dense_2(x)  # logits: the softmax is left to the loss

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self(x), dim=1)

    def layer_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's output, activation applied (softmax on the last), in torch's layout (NCHW)."""
        outputs = {}
        for name, layer in self.named_children():
            x = layer(x)
            if name == "dense_2":
                x = F.softmax(x, dim=1)
            elif isinstance(layer, (nn.Conv2d, nn.Linear)):
                x = F.relu(x)
            outputs[name] = x
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
