"""The LeNet-5 architecture, written down once: the oracle both implementations are checked against.

`lenet_torch/model.py` and `lenet_keras/model.py` each write the layers out as their framework's users
do; neither reads this table. The parity suite (tests/test_spec.py) describes each implementation as a
list of `LayerInfo` and asks `first_difference` whether it is this table: layer names, kinds (pooling
type), units, kernels, strides, padding and activations; and checks its per-layer output shapes and
parameter counts against `LENET5.output_shapes()` and `LENET5.param_counts()`.
Shapes are given channels-last (H, W, C), the way the reference Keras model reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Weights = dict[str, dict[str, np.ndarray]]  # layer name -> {"kernel": ..., "bias": ...}, Keras layout
LayerKind = Literal["conv", "avgpool", "maxpool", "flatten", "dense", "other"]
KIND_WORDS = {"conv": "convolution", "avgpool": "average pooling", "maxpool": "max pooling", "flatten": "flatten",
              "dense": "dense", "other": "an unknown layer"}


@dataclass(frozen=True)
class LayerInfo:
    """One layer, framework-neutral: an entry of the spec table, or what a model (file) really has."""

    name: str  # the reference Keras model's layer name (also the key of its weights in .h5 files)
    kind: LayerKind
    units: int = 0  # conv: filters, dense: output units
    kernel: int | tuple[int, int] = 0  # conv kernel size, pool size (an int when square)
    stride: int | tuple[int, int] = 1  # conv and pool stride (an int when equal)
    padding: str = "valid"  # conv and pool: "valid" or "same" (or a framework's own padding, as text)
    activation: str | None = None  # applied to the output: "relu", "softmax", ... or None (linear)
    class_name: str = ""  # the framework's class ("MaxPooling2D", "MaxPool2d"); for kind "other", all we know


# Which fields a difference is looked for in, by kind; the activation is compared for every layer.
_FIELDS = {"conv": ("units", "kernel", "stride", "padding"), "avgpool": ("kernel", "stride", "padding"),
           "maxpool": ("kernel", "stride", "padding"), "dense": ("units",), "flatten": (), "other": ()}


@dataclass(frozen=True)
class Spec:
    input_shape: tuple[int, int, int]  # (H, W, C)
    layers: tuple[LayerInfo, ...]
    num_classes: int

    def output_shapes(self) -> list[tuple[int, ...]]:
        """Per-layer output shape, channels-last, without the batch dimension ('valid' padding throughout)."""
        shapes, (h, w, c) = [], self.input_shape
        for layer in self.layers:
            if layer.kind in ("conv", "avgpool", "maxpool"):
                h, w = (h - layer.kernel) // layer.stride + 1, (w - layer.kernel) // layer.stride + 1
                c = layer.units if layer.kind == "conv" else c
                shapes.append((h, w, c))
            elif layer.kind == "flatten":
                shapes.append((h * w * c,))
            else:
                shapes.append((layer.units,))
        return shapes

    def param_counts(self) -> list[int]:
        """Per-layer trainable parameter count (weights + biases)."""
        kernels = kernel_shapes(self)  # a bias per output unit on top of each kernel
        return [int(np.prod(kernels[layer.name])) + kernels[layer.name][-1] if layer.name in kernels else 0
                for layer in self.layers]

    @property
    def num_params(self) -> int:
        return sum(self.param_counts())

    @property
    def weighted_layers(self) -> tuple[LayerInfo, ...]:
        return tuple(layer for layer in self.layers if layer.kind in ("conv", "dense"))


LENET5 = Spec(
    input_shape=(32, 32, 1),
    num_classes=10,
    layers=(
        LayerInfo("conv2d", "conv", units=6, kernel=5, activation="relu"),
        LayerInfo("average_pooling2d", "avgpool", kernel=2, stride=2),
        LayerInfo("conv2d_1", "conv", units=16, kernel=5, activation="relu"),
        LayerInfo("average_pooling2d_1", "avgpool", kernel=2, stride=2),
        LayerInfo("flatten", "flatten"),
        LayerInfo("dense", "dense", units=120, activation="relu"),
        LayerInfo("dense_1", "dense", units=84, activation="relu"),
        LayerInfo("dense_2", "dense", units=10, activation="softmax"),
    ),
)

NUM_PARAMS = 61_706  # the figure every build and every metrics.json must show


def kernel_shapes(spec: Spec = LENET5) -> dict[str, tuple[int, ...]]:
    """Kernel shape per weighted layer in Keras's layout: conv HWIO, dense (in, out)."""
    shapes, channels = {}, spec.input_shape[2]
    for layer, out_shape in zip(spec.layers, spec.output_shapes()):
        if layer.kind == "conv":
            shapes[layer.name] = (layer.kernel, layer.kernel, channels, layer.units)
        elif layer.kind == "dense":
            shapes[layer.name] = (channels, layer.units)
        channels = out_shape[-1]
    return shapes


assert LENET5.num_params == NUM_PARAMS, LENET5.num_params


def _what(layer: LayerInfo) -> str:
    if layer.kind == "other" or not layer.class_name:
        return layer.class_name or KIND_WORDS[layer.kind]
    return f"{KIND_WORDS[layer.kind]} ({layer.class_name})"


def first_difference(layers: list[LayerInfo], spec: Spec = LENET5) -> str | None:
    """One line naming the first way `layers` (a model's description) differs from the spec, or None.

    Layers are compared in order: name, kind, then the kind's own fields, then the activation;
    e.g. "layer conv2d: activation tanh, the spec relu". Class names are not compared (each framework has its own).
    """
    for index, (layer, want) in enumerate(zip(layers, spec.layers), start=1):
        if layer.name != want.name:
            return f"layer {index} is named {layer.name!r}, the spec's is {want.name!r}"
        if layer.kind != want.kind:
            return f"layer {want.name}: {_what(layer)}, the spec {KIND_WORDS[want.kind]}"
        for field in _FIELDS[want.kind] + ("activation",):
            have, spec_has = getattr(layer, field), getattr(want, field)
            if have == spec_has:
                continue
            if field == "units":
                word = "filters" if want.kind == "conv" else "units"
                return f"layer {want.name}: {have} {word}, the spec {spec_has}"
            if field == "activation":
                have, spec_has = have or "linear", spec_has or "linear"
            return f"layer {want.name}: {field} {have}, the spec {spec_has}"
    if len(layers) > len(spec.layers):
        return f"{len(layers)} layers, the spec {len(spec.layers)}: {layers[len(spec.layers)].name} is extra"
    if len(layers) < len(spec.layers):
        return f"{len(layers)} layers, the spec {len(spec.layers)}: {spec.layers[len(layers)].name} is missing"
    return None
