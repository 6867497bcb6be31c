"""The seed's own model file (tf.keras 2.7, legacy .h5): read without TensorFlow, same figures in torch and Keras.

Reference figures (shared/seed/README.md, measured with Keras 3.15 / TF 2.21): test accuracy 0.9871 and mean
cross-entropy 0.0435 with the seed preprocessing (bilinear resize 28 -> 32); 0.9791 with zero-padding instead.
Only checks of that file live here; they skip when it is absent (../shared/seed/ is outside this repository,
$LENET_SEED_H5 overrides the path). Every other guarantee runs on the suite's own trained model.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import warnings

import h5py
import keras
import numpy as np
import pytest

from lenet_keras.checkpoint import set_weights
from lenet_keras.model import build_lenet5
from lenet_keras.model import predict_probabilities as keras_predict
from lenet_torch.checkpoint import load_model
from lenet_torch.model import predict_probabilities as torch_predict
from parity.frameworks.equivalence import compare_outputs
from parity.spec import LENET5, NUM_PARAMS, kernel_shapes

SEED_SHA256 = "ef87af28034ba34b5e7d1b38acfaa210f1f440da28e07135306bbcbc0ec85dde"
SEED_ACCURACY = 0.9871
SEED_CROSS_ENTROPY = 0.0435
SEED_ACCURACY_ZERO_PAD = 0.9791
TOLERANCE = 1e-5


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(probabilities[np.arange(len(labels)), labels].astype(np.float64))))


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(probabilities.argmax(1) == labels))


@pytest.fixture(scope="module")
def torch_out(seed_h5, mnist_test) -> np.ndarray:
    return torch_predict(load_model(seed_h5), mnist_test[0])


@pytest.fixture(scope="module")
def keras_out(seed_h5, mnist_test) -> np.ndarray:
    """The seed file opened by Keras itself (its own config and weights), not via our reader."""
    with warnings.catch_warnings():  # the tf.keras 2.7 config passes input_shape to the first layer
        warnings.filterwarnings("ignore", message="Do not pass an `input_shape`")
        model = keras.saving.load_model(seed_h5, compile=False)
    assert [layer.name for layer in model.layers] == [layer.name for layer in LENET5.layers]
    assert model.count_params() == NUM_PARAMS
    return keras_predict(model, mnist_test[0])


def test_seed_file_is_the_documented_one(seed_h5):
    assert hashlib.sha256(seed_h5.read_bytes()).hexdigest() == SEED_SHA256


def test_read_without_tensorflow(seed_h5, repo_root):
    """read_weights (h5py) and lenet_torch's load_model take the seed into torch with no TensorFlow/Keras."""
    code = (
        "import sys\n"
        "from parity.weights.reading import read_weights\n"
        f"weights = read_weights({str(seed_h5)!r})\n"
        "assert not {'tensorflow', 'keras', 'torch'} & set(sys.modules), 'read_weights imported a framework'\n"
        "from lenet_torch.checkpoint import load_model\n"
        f"model = load_model({str(seed_h5)!r})\n"
        "assert not {'tensorflow', 'keras'} & set(sys.modules), sorted({'tensorflow', 'keras'} & set(sys.modules))\n"
        "print(sum(a.size for w in weights.values() for a in w.values()), sum(p.numel() for p in model.parameters()))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(NUM_PARAMS), str(NUM_PARAMS)]


def test_seed_h5_layout(seed_h5, seed_weights):
    """The file is tf.keras 2.7's legacy layout, `model_weights/<layer>/<layer>/kernel:0` and `bias:0`, float32,
    conv kernels HWIO, dense (in, out), as shared/seed/README.md says; read_weights returns exactly those arrays."""
    with h5py.File(seed_h5, "r") as f:
        assert f.attrs["keras_version"] == "2.7.0" and f.attrs["backend"] == "tensorflow"
        assert json.loads(f.attrs["model_config"])["class_name"] == "Sequential"
        for name, shape in kernel_shapes().items():
            kernel, bias = f[f"model_weights/{name}/{name}/kernel:0"], f[f"model_weights/{name}/{name}/bias:0"]
            assert (kernel.shape, bias.shape, kernel.dtype, bias.dtype) == (shape, shape[-1:], np.float32, np.float32), name
            np.testing.assert_array_equal(seed_weights[name]["kernel"], kernel[()], err_msg=name)
            np.testing.assert_array_equal(seed_weights[name]["bias"], bias[()], err_msg=name)


def test_torch_accuracy_and_loss(torch_out, mnist_test):
    labels = mnist_test[1]
    assert accuracy(torch_out, labels) == pytest.approx(SEED_ACCURACY, abs=5e-5)  # equal to 4 decimals
    assert cross_entropy(torch_out, labels) == pytest.approx(SEED_CROSS_ENTROPY, abs=5e-4)


def test_keras_accuracy_and_loss(keras_out, mnist_test):
    labels = mnist_test[1]
    assert accuracy(keras_out, labels) == pytest.approx(SEED_ACCURACY, abs=5e-5)
    assert cross_entropy(keras_out, labels) == pytest.approx(SEED_CROSS_ENTROPY, abs=5e-4)


def test_torch_and_keras_agree(torch_out, keras_out, seed_weights, mnist_test):
    diff = compare_outputs(torch_out, keras_out)
    assert diff.argmax_agreement == 1.0, diff
    assert diff.max_abs_diff <= TOLERANCE, diff
    # Our Keras build with the weights read by h5py is the same model as Keras's own load of the file.
    ours = keras_predict(set_weights(build_lenet5(), seed_weights), mnist_test[0])
    assert compare_outputs(ours, keras_out).max_abs_diff <= 1e-6


def test_preprocessing_matters(seed_h5, mnist_test):
    """Zero-padding 28 -> 32 instead of the seed's resize gives the README's lower figure: the
    accuracy test above really pins the preprocessing down."""
    from parity.data.mnist import load_mnist

    padded = np.pad(load_mnist().test_images.astype(np.float32) / 255.0, ((0, 0), (2, 2), (2, 2)))
    assert accuracy(torch_predict(load_model(seed_h5), padded), mnist_test[1]) == pytest.approx(SEED_ACCURACY_ZERO_PAD, abs=5e-5)
