"""Both implementations against the one table, parity.spec.LENET5: layer names, kinds (pooling type), units,
kernels, strides, padding, activations, per-layer output shapes and parameter counts.

Each implementation is described as a list of `LayerInfo` and handed to `first_difference`: Keras's from its
config (`keras_layer_infos`, the parser that also reads model files), torch's from its modules and a run
of `forward` with hooks, so the activation after each layer is the one `forward` really applies (measured:
what the next layer receives, compared with relu/tanh/... of what this one returned). Negative controls
(max pooling, tanh; same weight shapes) prove each description can tell.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import zipfile
from pathlib import Path

import h5py
import keras
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lenet_keras.model import build_lenet5
from lenet_torch.model import LeNet5
from lenet_torch.module import layer_info, measured_activation
from parity.spec import LENET5, NUM_PARAMS, LayerInfo, first_difference
from parity.weights.architecture import keras_layer_infos


def test_spec_table():
    """The architecture, stated once: what the table's layers add up to."""
    assert LENET5.output_shapes() == [(28, 28, 6), (14, 14, 6), (10, 10, 16), (5, 5, 16), (400,), (120,), (84,), (10,)]
    assert LENET5.param_counts() == [156, 0, 2416, 0, 0, 48120, 10164, 850]
    assert LENET5.num_params == NUM_PARAMS == 61_706


@pytest.mark.parametrize("path", ["lenet_torch/model.py", "lenet_keras/model.py"])
def test_models_are_written_out(repo_root, path):
    """Each framework's model is its own code, not generated from the table it is checked against."""
    tree = ast.parse((repo_root / path).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {name for name in imported if name and name.split(".")[0] == "parity"}


# ---------------------------------------------------------------------------------- first_difference

LAYERS = list(LENET5.layers)


def changed(index: int, **fields) -> list[LayerInfo]:
    return [dataclasses.replace(layer, **fields) if i == index else layer for i, layer in enumerate(LAYERS)]


@pytest.mark.parametrize("layers, expected", [
    (LAYERS, None),
    (changed(5, units=100), "layer dense: 100 units, the spec 120"),
    (changed(0, units=8), "layer conv2d: 8 filters, the spec 6"),
    (changed(2, kernel=3), "layer conv2d_1: kernel 3, the spec 5"),
    (changed(1, stride=1), "layer average_pooling2d: stride 1, the spec 2"),
    (changed(0, padding="same"), "layer conv2d: padding same, the spec valid"),
    (changed(1, kind="maxpool", class_name="MaxPooling2D"),
     "layer average_pooling2d: max pooling (MaxPooling2D), the spec average pooling"),
    (changed(0, activation="tanh"), "layer conv2d: activation tanh, the spec relu"),
    (changed(7, activation=None), "layer dense_2: activation linear, the spec softmax"),
    (changed(3, activation="relu"), "layer average_pooling2d_1: activation relu, the spec linear"),
    (changed(4, name="flat"), "layer 5 is named 'flat', the spec's is 'flatten'"),
    (changed(4, kind="other", class_name="Reshape"), "layer flatten: Reshape, the spec flatten"),
    (LAYERS[:-1], "7 layers, the spec 8: dense_2 is missing"),
    (LAYERS + [LayerInfo("dropout", "other")], "9 layers, the spec 8: dropout is extra"),
])
def test_first_difference_names_the_layer(layers, expected):
    assert first_difference(layers) == expected


# --------------------------------------------------------------------------------------------- torch

# One way to measure a torch layer: the one LitLeNet5 uses for a checkpoint's architecture record.
torch_layer_info = layer_info  # noqa: used below


@dataclasses.dataclass
class TorchRun:
    infos: list[LayerInfo]  # the layers in the order forward called them
    inputs: list[torch.Tensor]
    outputs: list[torch.Tensor]  # each layer's raw output, before any activation
    activated: list[torch.Tensor]  # what came after it: the next layer's input, or `probabilities`'s result
    logits: torch.Tensor


def run_torch(model: nn.Module, x: torch.Tensor) -> TorchRun:
    """`model.probabilities(x)` with a forward hook on every child, recording the layers in call order; then
    `model(x)`, unhooked."""
    calls = []

    def record(module, args, output, name):
        calls.append((name, module, args[0].clone(), output.clone()))  # clones: forward's relu_ works in place

    hooks = [module.register_forward_hook(lambda m, a, o, name=name: record(m, a, o, name))
             for name, module in model.named_children()]
    try:
        with torch.no_grad():
            probabilities = model.probabilities(x)
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        logits = model(x)
    activated = [inputs for _, _, inputs, _ in calls[1:]] + [probabilities]
    infos = [torch_layer_info(name, module, measured_activation(output, after))
             for (name, module, _, output), after in zip(calls, activated)]
    return TorchRun(infos, [c[2] for c in calls], [c[3] for c in calls], activated, logits)


@pytest.fixture(scope="module")
def torch_run() -> tuple[LeNet5, torch.Tensor, TorchRun]:
    torch.manual_seed(0)
    model, x = LeNet5().eval(), torch.rand(4, 1, 32, 32)
    return model, x, run_torch(model, x)


def nchw(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape


def test_torch_model_is_the_spec(torch_run):
    model, x, run = torch_run
    assert first_difference(run.infos) is None, first_difference(run.infos)
    assert [tuple(out.shape[1:]) for out in run.outputs] == [nchw(shape) for shape in LENET5.output_shapes()]
    children = dict(model.named_children())
    assert [sum(p.numel() for p in children[info.name].parameters()) for info in run.infos] == LENET5.param_counts()
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS
    torch.testing.assert_close(run.inputs[0], x)  # nothing done to the input before the first layer


def test_torch_forward_returns_logits_and_layer_outputs_are_forwards(torch_run):
    """forward ends at the last layer's raw output (softmax left to the loss); layer_outputs is forward's
    computation layer by layer, activations included."""
    model, x, run = torch_run
    torch.testing.assert_close(run.logits, run.outputs[-1])
    with torch.no_grad():
        outputs = model.layer_outputs(x)
    assert list(outputs) == [layer.name for layer in LENET5.layers]
    for name, activated in zip(outputs, run.activated):
        torch.testing.assert_close(outputs[name], activated, msg=name)


class TanhLeNet5(LeNet5):
    """Same weights, tanh after the first convolution."""

    def forward(self, x):
        x = self.average_pooling2d(torch.tanh(self.conv2d(x)))
        x = self.flatten(self.average_pooling2d_1(F.relu(self.conv2d_1(x))))
        return self.dense_2(F.relu(self.dense_1(F.relu(self.dense(x)))))


class FunctionalMaxPoolLeNet5(LeNet5):
    """Same weights, max pooling done in forward instead of the average_pooling2d module."""

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2d(x)), 2)
        x = self.flatten(self.average_pooling2d_1(F.relu(self.conv2d_1(x))))
        return self.dense_2(F.relu(self.dense_1(F.relu(self.dense(x)))))


def max_pooling_module() -> LeNet5:
    model = LeNet5()
    model.average_pooling2d = nn.MaxPool2d(2)
    return model


@pytest.mark.parametrize("make, expected", [
    (TanhLeNet5, "layer conv2d: activation tanh, the spec relu"),
    (max_pooling_module, "layer average_pooling2d: max pooling (MaxPool2d), the spec average pooling"),
    (FunctionalMaxPoolLeNet5, "layer conv2d: activation unknown, (6, 28, 28) -> (6, 14, 14), the spec relu"),
])
def test_torch_negative_controls(make, expected):
    torch.manual_seed(0)
    model = make().eval()
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS  # the weights alone cannot tell
    assert first_difference(run_torch(model, torch.rand(4, 1, 32, 32)).infos) == expected


# --------------------------------------------------------------------------------------------- Keras


@pytest.fixture(scope="module")
def keras_model() -> keras.Sequential:
    return build_lenet5()


def test_keras_model_is_the_spec(keras_model):
    assert first_difference(keras_layer_infos(keras_model.get_config())) is None
    assert [tuple(layer.output.shape) for layer in keras_model.layers] == [(None, *s) for s in LENET5.output_shapes()]
    assert [layer.count_params() for layer in keras_model.layers] == LENET5.param_counts()
    assert keras_model.count_params() == NUM_PARAMS
    assert tuple(keras_model.input_shape) == (None, *LENET5.input_shape)


def test_saved_keras_files_are_the_spec(keras_model, tmp_path):
    """The configs a model file carries, read as a later reader of model files will: .keras's config.json and
    the legacy .h5's model_config attribute."""
    keras_model.save(tmp_path / "lenet5.keras")
    with zipfile.ZipFile(tmp_path / "lenet5.keras") as archive:
        assert first_difference(keras_layer_infos(json.loads(archive.read("config.json")))) is None
    keras_model.save(tmp_path / "lenet5.h5")
    with h5py.File(tmp_path / "lenet5.h5") as f:
        assert first_difference(keras_layer_infos(json.loads(f.attrs["model_config"]))) is None


def test_seed_model_is_the_spec(seed_h5: Path):
    with h5py.File(seed_h5) as f:  # tf.keras 2.7's config
        assert first_difference(keras_layer_infos(json.loads(f.attrs["model_config"]))) is None


def keras_variant(**replacements: keras.layers.Layer) -> keras.Sequential:
    """build_lenet5's layers, some replaced (by name), in a fresh Sequential."""
    layers = [replacements.get(layer.name) or layer.__class__.from_config(layer.get_config())
              for layer in build_lenet5().layers]
    return keras.Sequential([keras.Input((32, 32, 1)), *layers])


@pytest.mark.parametrize("make, expected", [
    (lambda: keras.layers.MaxPooling2D(2, name="average_pooling2d"),
     "layer average_pooling2d: max pooling (MaxPooling2D), the spec average pooling"),
    (lambda: keras.layers.Conv2D(6, 5, activation="tanh", name="conv2d"), "layer conv2d: activation tanh, the spec relu"),
    (lambda: keras.layers.Dense(120, name="dense"), "layer dense: activation linear, the spec relu"),
])
def test_keras_negative_controls(keras_model, make, expected):
    replacement = make()
    model = keras_variant(**{replacement.name: replacement})
    assert [w.shape for w in model.weights] == [w.shape for w in keras_model.weights]  # the weights alone cannot tell
    assert first_difference(keras_layer_infos(model.get_config())) == expected


def conv_entry(**config) -> dict:
    return {"class_name": "Conv2D", "config": {"name": "conv2d", "filters": 6, "kernel_size": [5, 5], **config}}


@pytest.mark.parametrize("entry, kind, class_name, activation", [
    (conv_entry(activation="relu"), "conv", "Conv2D", "relu"),
    ({"module": "keras.layers", "registered_name": None, **conv_entry(activation="linear")}, "conv", "Conv2D", None),
    (conv_entry(activation={"module": "builtins", "class_name": "function", "config": "myact"}), "conv", "Conv2D",
     "myact"),
    ({**conv_entry(), "module": None, "registered_name": "my>Conv2D"}, "other", "my>Conv2D", None),
    ({**conv_entry(), "module": "__main__"}, "other", "__main__.Conv2D", None),
    (conv_entry(data_format="channels_first"), "other", "Conv2D(data_format=channels_first)", None),
    (conv_entry(dilation_rate=[2, 2]), "other", "Conv2D(dilation_rate=[2, 2])", None),
    ({"class_name": "MaxPool2D", "config": {"name": "p", "pool_size": 3, "strides": None}}, "maxpool", "MaxPooling2D",
     None),
    ({"class_name": "Activation", "config": {"name": "a", "activation": "tanh"}}, "other", "Activation", "tanh"),
    ({"class_name": "Dropout"}, "other", "Dropout", None),
])
def test_keras_config_parser(entry, kind, class_name, activation):
    (info,) = keras_layer_infos({"class_name": "Sequential", "config": {"layers": [entry]}})
    assert (info.kind, info.class_name, info.activation) == (kind, class_name, activation)
    if info.kind == "maxpool":
        assert (info.kernel, info.stride) == (3, 3)  # strides None: the pool size, as Keras does


@pytest.mark.parametrize("config", [{}, {"config": {}}, {"layers": None}, {"layers": [{}, 3, {"config": None}]},
                                    {"config": {"layers": [{"class_name": "InputLayer", "config": {}}]}}])
def test_keras_config_parser_takes_any_dict(config):
    infos = keras_layer_infos(config)
    assert first_difference(infos) is not None
