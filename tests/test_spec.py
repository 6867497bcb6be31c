"""Both builds are the architecture written down in parity.spec: per-layer shapes and parameter counts."""

from __future__ import annotations

import pytest
import torch

from lenet_keras.model import build_lenet5
from lenet_torch.model import LeNet5
from parity.spec import LENET5, NUM_PARAMS

LAYER_NAMES = [layer.name for layer in LENET5.layers]


def test_spec_table():
    assert LAYER_NAMES == ["conv2d", "average_pooling2d", "conv2d_1", "average_pooling2d_1", "flatten",
                           "dense", "dense_1", "dense_2"]
    assert LENET5.output_shapes() == [(28, 28, 6), (14, 14, 6), (10, 10, 16), (5, 5, 16), (400,), (120,), (84,), (10,)]
    assert LENET5.param_counts() == [156, 0, 2416, 0, 0, 48120, 10164, 850]
    assert LENET5.num_params == NUM_PARAMS == 61706
    assert [layer.name for layer in LENET5.weighted_layers] == ["conv2d", "conv2d_1", "dense", "dense_1", "dense_2"]


def nhwc_to_nchw_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape


def test_torch_build_matches_spec():
    model = LeNet5().eval()
    with torch.no_grad():
        outputs = model.layer_outputs(torch.zeros(2, 1, 32, 32))
    assert list(outputs) == LAYER_NAMES
    assert list(model.layers) == LAYER_NAMES
    for name, spec_shape in zip(LAYER_NAMES, LENET5.output_shapes()):
        assert tuple(outputs[name].shape) == (2, *nhwc_to_nchw_shape(spec_shape)), name
    counts = [sum(p.numel() for p in module.parameters()) for module in model.layers.values()]
    assert counts == LENET5.param_counts()
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, LENET5.num_classes)


@pytest.fixture(scope="module")
def keras_model():
    return build_lenet5()


def test_keras_build_matches_spec(keras_model):
    assert [layer.name for layer in keras_model.layers] == LAYER_NAMES
    for layer, spec_shape in zip(keras_model.layers, LENET5.output_shapes()):
        assert tuple(layer.output.shape) == (None, *spec_shape), layer.name
    assert [layer.count_params() for layer in keras_model.layers] == LENET5.param_counts()
    assert keras_model.count_params() == NUM_PARAMS
    assert tuple(keras_model.input_shape) == (None, *LENET5.input_shape)


def test_activations_match_spec(keras_model):
    activations = {layer.name: getattr(layer, "activation", None) for layer in keras_model.layers}
    for layer in LENET5.layers:
        if layer.kind in ("conv", "dense"):
            assert activations[layer.name].__name__ == layer.activation, layer.name
    # torch's forward returns logits; probabilities() applies the spec's final softmax
    model = LeNet5().eval()
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.probabilities(x), torch.softmax(model(x), dim=1))
        torch.testing.assert_close(model.layer_outputs(x)["dense_2"], model.probabilities(x))
