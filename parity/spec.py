"""The LeNet-5 architecture, written down once.

Both `lenet_torch` and `lenet_keras` build their layers from `LENET5`; the parity suite
checks each build against the shapes and parameter counts derived here.
Shapes are given channels-last (H, W, C), the way the reference Keras model reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Weights = dict[str, dict[str, np.ndarray]]  # layer name -> {"kernel": ..., "bias": ...}, Keras layout
LayerKind = Literal["conv", "avgpool", "flatten", "dense"]


@dataclass(frozen=True)
class Layer:
    name: str  # the reference Keras model's layer name (also the key of its weights in .h5 files)
    kind: LayerKind
    units: int = 0  # conv: filters, dense: output units
    kernel: int = 0  # conv kernel size, pool size
    activation: str | None = None  # "relu", "softmax" or None


@dataclass(frozen=True)
class Spec:
    input_shape: tuple[int, int, int]  # (H, W, C)
    layers: tuple[Layer, ...]
    num_classes: int

    def output_shapes(self) -> list[tuple[int, ...]]:
        """Per-layer output shape, channels-last, without the batch dimension."""
        shapes, (h, w, c) = [], self.input_shape
        flat = None
        for layer in self.layers:
            if layer.kind == "conv":  # 'valid' padding, stride 1
                h, w, c = h - layer.kernel + 1, w - layer.kernel + 1, layer.units
                shapes.append((h, w, c))
            elif layer.kind == "avgpool":  # non-overlapping pooling
                h, w = h // layer.kernel, w // layer.kernel
                shapes.append((h, w, c))
            elif layer.kind == "flatten":
                flat = h * w * c
                shapes.append((flat,))
            else:
                flat = layer.units
                shapes.append((flat,))
        return shapes

    def param_counts(self) -> list[int]:
        """Per-layer trainable parameter count (weights + biases)."""
        counts, fan_in = [], self.input_shape[2]
        for layer, shape in zip(self.layers, self.output_shapes()):
            if layer.kind == "conv":
                counts.append(layer.kernel * layer.kernel * fan_in * layer.units + layer.units)
                fan_in = layer.units
            elif layer.kind == "dense":
                counts.append(fan_in * layer.units + layer.units)
                fan_in = layer.units
            else:
                counts.append(0)
                if layer.kind == "flatten":
                    fan_in = shape[0]
        return counts

    @property
    def num_params(self) -> int:
        return sum(self.param_counts())

    @property
    def weighted_layers(self) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.kind in ("conv", "dense"))


LENET5 = Spec(
    input_shape=(32, 32, 1),
    num_classes=10,
    layers=(
        Layer("conv2d", "conv", units=6, kernel=5, activation="relu"),
        Layer("average_pooling2d", "avgpool", kernel=2),
        Layer("conv2d_1", "conv", units=16, kernel=5, activation="relu"),
        Layer("average_pooling2d_1", "avgpool", kernel=2),
        Layer("flatten", "flatten"),
        Layer("dense", "dense", units=120, activation="relu"),
        Layer("dense_1", "dense", units=84, activation="relu"),
        Layer("dense_2", "dense", units=10, activation="softmax"),
    ),
)

NUM_PARAMS = 61_706  # the figure every build and every metrics.json must show
assert LENET5.num_params == NUM_PARAMS, LENET5.num_params


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
