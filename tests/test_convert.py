"""The parity suite's core: the same weights give the same model in torch and in Keras.

Modelled on Hugging Face's PT<->TF equivalence tests: weights are made in one framework (random and
trained), carried to the other by parity.weights.convert, and both run on all 10,000 MNIST test images;
softmax outputs must agree to 1e-5 and every argmax must match. layer_diffs names the first layer that
drifts, and negative controls (no flatten permutation, kh/kw-swapped conv kernels) prove that a layout
mistake fails, on trained weights as loudly as a broken model can: the accuracy collapses.
"""

from __future__ import annotations

import zipfile

import h5py
import keras
import numpy as np
import pytest
import torch

import parity.weights.convert as convert
from lenet_keras.checkpoint import get_weights, set_weights
from lenet_keras.model import build_lenet5
from lenet_keras.model import predict_probabilities as keras_predict
from lenet_torch.checkpoint import model_from_weights
from lenet_torch.model import LeNet5
from lenet_torch.model import predict_probabilities as torch_predict
from lenet_torch.module import LitLeNet5
from parity.frameworks.equivalence import compare_outputs, layer_diffs
from parity.frameworks.models import write_weights
from parity.spec import LENET5, NUM_PARAMS, kernel_shapes
from parity.weights.convert import keras_to_torch, torch_to_keras
from parity.weights.init import initial_weights
from parity.weights.reading import WeightFileError, read_weights

TOLERANCE = 1e-5  # max |softmax difference| (and per-layer activation difference) allowed between frameworks
LAYER_DIFF_IMAGES = 2_000  # layer_diffs keeps every activation of both frameworks in memory
ORIGINS = ["keras-random", "torch-random", "keras-trained", "torch-trained"]


# ------------------------------------------------------------------------------------------ helpers


def torch_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {key: value.detach().cpu().numpy() for key, value in model.state_dict().items()}


def keras_model(weights) -> keras.Model:
    return set_weights(build_lenet5(), weights)


def assert_weights_equal(actual, expected) -> None:
    assert sorted(actual) == sorted(expected)
    for name in expected:
        for part in ("kernel", "bias"):
            a, e = actual[name][part], expected[name][part]
            assert a.dtype == e.dtype == np.float32, (name, part, a.dtype)
            np.testing.assert_array_equal(a, e, err_msg=f"{name}.{part}")


def top2_margin(p: np.ndarray) -> np.ndarray:
    top = np.sort(p, axis=1)
    return top[:, -1] - top[:, -2]


def assert_same_outputs(a: np.ndarray, b: np.ndarray) -> None:
    """max |diff| <= TOLERANCE and the same argmax on every image. The one exception allowed is an exact tie
    at float32 precision: if the two best classes of an image are within 2 * TOLERANCE of each other, no
    conversion, however right, can promise which one wins."""
    diff = compare_outputs(a, b)
    assert diff.max_abs_diff <= TOLERANCE, diff
    disagree = a.argmax(1) != b.argmax(1)
    ties = np.minimum(top2_margin(a), top2_margin(b)) <= 2 * TOLERANCE
    assert not (disagree & ~ties).any(), (diff, np.flatnonzero(disagree & ~ties))


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(probabilities.argmax(1) == labels))


# ----------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def images(mnist_test) -> np.ndarray:
    return mnist_test[0]


@pytest.fixture(scope="module")
def keras_trained_model() -> keras.Model:
    """A LeNet-5 trained in Keras itself (model.fit, one epoch over the 60,000 training images at batch 100,
    Adam 2e-3, as the suite's Lightning run; ~0.97): Keras-born trained weights, to go with the torch-born ones."""
    from parity.data.mnist import load_mnist
    from parity.data.preprocess import to_model_input

    mnist = load_mnist()
    x, y = to_model_input(mnist.train_images)[..., None], mnist.train_labels.astype(np.int64)
    model = keras_model(initial_weights(1))
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=100, epochs=1, shuffle=False, verbose=0)
    return model


_CASES: dict[str, tuple] = {}


def origin_case(origin: str, request) -> tuple:
    """(weights in Keras layout, the torch model, the Keras model) for one origin, built once per session.
    Torch-born weights are run by the torch model they were made in, Keras-born ones by the Keras model
    they were set into (or trained in); the other side gets them through parity.weights.convert."""
    if origin not in _CASES:
        if origin == "keras-random":
            weights = initial_weights(0)
            _CASES[origin] = (weights, model_from_weights(weights), keras_model(weights))
        elif origin == "keras-trained":
            model = request.getfixturevalue("keras_trained_model")
            weights = get_weights(model)
            _CASES[origin] = (weights, model_from_weights(weights), model)
        else:
            if origin == "torch-random":
                torch.manual_seed(0)
                model = LeNet5().eval()  # torch's own default initialisation (kaiming-uniform), not ours
            else:  # the Lightning checkpoint the suite's training run saved, opened by Lightning itself
                ckpt = request.getfixturevalue("trained_model").ckpt
                model = LitLeNet5.load_from_checkpoint(ckpt, map_location="cpu").model.eval()
            weights = torch_to_keras(torch_state(model))
            _CASES[origin] = (weights, model, keras_model(weights))
    return _CASES[origin]


@pytest.fixture(params=ORIGINS)
def case(request) -> tuple:
    return origin_case(request.param, request)


def converted_and_native(origin: str, case: tuple, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(outputs of the side that got the weights through the conversion, run now; outputs of the side they were born in)."""
    weights, torch_model, keras_net = case
    if origin.startswith("keras"):
        return torch_predict(model_from_weights(weights), images), keras_predict(keras_net, images)
    return keras_predict(keras_model(torch_to_keras(torch_state(torch_model))), images), torch_predict(torch_model, images)


@pytest.fixture(scope="module")
def trained_outputs(trained_weights, images) -> tuple[np.ndarray, np.ndarray]:
    """Softmax outputs of the suite's trained weights in (torch, Keras): the reference for the file round trips."""
    return torch_predict(model_from_weights(trained_weights), images), keras_predict(keras_model(trained_weights), images)


# ------------------------------------------------------------------------------------ pure conversion


@pytest.mark.parametrize("source", ["random-0", "random-1", "trained"])
def test_round_trip_keras_torch_keras_is_exact(source, request):
    weights = request.getfixturevalue("trained_weights") if source == "trained" else initial_weights(int(source[-1]))
    state = keras_to_torch(weights)
    reference = LeNet5().state_dict()
    assert set(state) == set(reference)
    assert all(tuple(state[key].shape) == tuple(value.shape) for key, value in reference.items())
    assert_weights_equal(torch_to_keras(state), weights)


def test_round_trip_torch_keras_torch_is_exact():
    torch.manual_seed(1)
    state = torch_state(LeNet5())
    weights = torch_to_keras(state)
    assert {name: weights[name]["kernel"].shape for name in weights} == kernel_shapes()
    back = keras_to_torch(weights)
    assert set(back) == set(state)
    for key in state:
        np.testing.assert_array_equal(back[key], state[key], err_msg=key)


def test_float64_weights_load_into_both_frameworks_unrounded():
    """A float64 model (--precision float64, e.g. a teacher or --init-from) keeps every bit in Lightning as in Keras:
    torch once loaded it into float32 parameters first, 6e-10 in a float64 student's losses."""
    weights = {name: {part: array.astype(np.float64) / 3 for part, array in layer.items()}
               for name, layer in initial_weights(0).items()}  # thirds: no float32 holds them exactly
    model = model_from_weights(weights, torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    for loaded in (torch_to_keras(torch_state(model)), get_weights(set_weights(build_lenet5(dtype="float64"), weights))):
        for name in weights:
            for part in ("kernel", "bias"):
                assert loaded[name][part].dtype == np.float64, (name, part)
                np.testing.assert_array_equal(loaded[name][part], weights[name][part], err_msg=f"{name}.{part}")


def test_flatten_permutation_semantics():
    """The dense-after-flatten rows really map Keras's (H, W, C) flatten order onto torch's (C, H, W)."""
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(5 * 5 * 16, 120)).astype(np.float32)
    weights = {name: dict(w) for name, w in initial_weights(0).items()}
    weights["dense"]["kernel"] = kernel
    torch_weight = keras_to_torch(weights)["dense.weight"]  # (120, 400), columns in (C, H, W)
    feature_map = rng.normal(size=(5, 5, 16)).astype(np.float32)  # one image's pooled map, (H, W, C)
    keras_dense = feature_map.reshape(-1) @ kernel  # Keras: flatten channels-last
    torch_dense = torch_weight @ feature_map.transpose(2, 0, 1).reshape(-1)  # torch: flatten NCHW
    np.testing.assert_allclose(torch_dense, keras_dense, rtol=1e-5, atol=1e-4)
    assert not np.array_equal(torch_weight, kernel.T)  # the permutation is not the identity


# ------------------------------------------------------------------------ outputs on all 10,000 images


def test_softmax_outputs_agree(case, images):
    """Both directions: Keras-born weights run in torch, torch-born weights run in Keras; random and trained."""
    _, torch_model, keras_net = case
    assert_same_outputs(torch_predict(torch_model, images), keras_predict(keras_net, images))


def test_trained_models_are_really_trained(request, trained_model, mnist_test):
    """The 'trained' cases must carry real signal, else agreeing outputs would prove little."""
    images, labels = mnist_test
    torch_accuracy = accuracy(torch_predict(origin_case("torch-trained", request)[1], images), labels)
    assert torch_accuracy == pytest.approx(trained_model.test_accuracy, abs=1e-4)  # what the run's metrics.json says
    assert torch_accuracy > 0.96
    assert accuracy(keras_predict(origin_case("keras-trained", request)[2], images), labels) > 0.96


def test_keras_side_holds_the_converted_weights(case):
    weights, torch_model, keras_net = case
    assert_weights_equal(get_weights(keras_net), weights)
    assert keras_net.count_params() == sum(p.numel() for p in torch_model.parameters()) == NUM_PARAMS


def test_every_layer_agrees(case, images):
    """Per-layer activations (conv and pool maps compared in NCHW); a failure names the layer."""
    weights = case[0]
    diffs = layer_diffs(weights, images[:LAYER_DIFF_IMAGES])
    assert list(diffs) == [layer.name for layer in LENET5.layers]
    bad = {name: diff for name, diff in diffs.items() if not diff <= TOLERANCE}
    assert not bad, f"layers differing by more than {TOLERANCE}: {bad}"


# --------------------------------------------------------------------------------- negative controls

# mistake -> (the attribute of parity.weights.convert it breaks, its wrong value, the origins whose
# conversion direction it breaks, the first layer whose activation it spoils, keras -> torch)
MISTAKES = {
    "no flatten permutation": ("_flattened_input", lambda spec: {}, ORIGINS, "dense"),  # dense converted like any dense
    "conv kernel kh/kw swapped, keras -> torch": ("CONV_KERAS_TO_TORCH", (3, 2, 1, 0), ["keras-random", "keras-trained"], "conv2d"),
    "conv kernel kh/kw swapped, torch -> keras": ("CONV_TORCH_TO_KERAS", (3, 2, 1, 0), ["torch-random", "torch-trained"], None),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_layout_mistake_is_caught(mistake, monkeypatch, request, mnist_test):
    """Each layout mistake, made in the conversion, fails loudly: on trained weights the converted model's
    accuracy collapses and its softmax differs by more than 0.5 somewhere; on random weights the difference
    is still far above the tolerance; and layer_diffs names the first layer it spoils."""
    attribute, wrong_value, origins, first_bad_layer = MISTAKES[mistake]
    images, labels = mnist_test
    cases = {origin: origin_case(origin, request) for origin in origins}  # built with the right conversion
    for origin, case in cases.items():  # the control's twin: right now, the conversion is right
        converted, native = converted_and_native(origin, case, images[:2000])
        assert compare_outputs(converted, native).max_abs_diff <= TOLERANCE, origin
    monkeypatch.setattr(convert, attribute, wrong_value)
    for origin, case in cases.items():
        converted, native = converted_and_native(origin, case, images)
        diff = compare_outputs(converted, native).max_abs_diff
        if origin.endswith("trained"):
            assert accuracy(native, labels) > 0.96, origin
            assert accuracy(converted, labels) < 0.5, (origin, accuracy(converted, labels))
            assert diff > 0.5, (origin, diff)
        else:
            assert diff > 100 * TOLERANCE, (origin, diff)
    if first_bad_layer is not None:  # layer_diffs converts Keras -> torch
        diffs = layer_diffs(cases["keras-trained"][0], images[:1000])
        names = list(diffs)
        before = names[: names.index(first_bad_layer)]
        assert all(diffs[name] <= TOLERANCE for name in before), diffs
        assert diffs[first_bad_layer] > 0.1, diffs


# -------------------------------------------------------------------------------------- through files


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".keras", ".h5"])
def test_write_read_round_trip(suffix, tmp_path, trained_weights):
    path = write_weights(trained_weights, tmp_path / f"model{suffix}")
    assert_weights_equal(read_weights(path), trained_weights)


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".keras", ".h5"])
def test_files_load_natively_and_agree(suffix, tmp_path, trained_weights, images, trained_outputs):
    """Each written file opened by its own framework's loader gives the original model's outputs in the other framework."""
    path = write_weights(trained_weights, tmp_path / f"model{suffix}")
    torch_ref, keras_ref = trained_outputs
    if suffix == ".ckpt":
        module = LitLeNet5.load_from_checkpoint(path, map_location="cpu")
        out, reference = torch_predict(module.model, images), keras_ref
    elif suffix == ".pt":
        model = LeNet5()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        out, reference = torch_predict(model, images), keras_ref
    else:
        loaded = keras.saving.load_model(path, compile=False)
        assert loaded.count_params() == NUM_PARAMS
        out, reference = keras_predict(loaded, images), torch_ref
    assert_same_outputs(out, reference)


def test_trained_ckpt_to_keras_file(tmp_path, trained_model, mnist_test):
    """The Lightning checkpoint training wrote, converted to a .keras file and opened by keras.saving.load_model,
    gives Lightning's outputs and the test accuracy the training run reported."""
    images, labels = mnist_test
    keras_file = write_weights(read_weights(trained_model.ckpt), tmp_path / "model.keras")
    loaded = keras.saving.load_model(keras_file, compile=False)
    lightning = LitLeNet5.load_from_checkpoint(trained_model.ckpt, map_location="cpu").model
    keras_out = keras_predict(loaded, images)
    assert_same_outputs(torch_predict(lightning, images), keras_out)
    assert accuracy(keras_out, labels) == pytest.approx(trained_model.test_accuracy, abs=1e-4)


# ------------------------------------------------------------------------------------ read_weights errors


def write_legacy_h5(path, shapes: dict[str, tuple[int, ...]]) -> None:
    """A file laid out like a tf.keras legacy .h5, with the given kernel shapes."""
    with h5py.File(path, "w") as f:
        for name, shape in shapes.items():
            f[f"model_weights/{name}/{name}/kernel:0"] = np.zeros(shape, np.float32)
            f[f"model_weights/{name}/{name}/bias:0"] = np.zeros(shape[-1], np.float32)


def test_legacy_h5_layout_is_read(tmp_path):
    """The fake-file writer itself is right: with LeNet-5's shapes it reads fine (so the next test is fair)."""
    write_legacy_h5(tmp_path / "ok.h5", kernel_shapes())
    assert {name: w["kernel"].shape for name, w in read_weights(tmp_path / "ok.h5").items()} == kernel_shapes()


def test_non_lenet_h5_is_rejected(tmp_path):
    shapes = dict(kernel_shapes())
    shapes["dense"] = (256, 120)  # e.g. a LeNet variant with a different flatten size
    write_legacy_h5(tmp_path / "other.h5", shapes)
    with pytest.raises(WeightFileError, match=r"dense.*LeNet-5 needs \(400, 120\)"):
        read_weights(tmp_path / "other.h5")
    write_legacy_h5(tmp_path / "partial.h5", {"conv2d": (5, 5, 1, 6)})  # layers missing
    with pytest.raises(WeightFileError, match="not a LeNet-5 keras model file"):
        read_weights(tmp_path / "partial.h5")
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["data"] = np.arange(10)
    with pytest.raises(WeightFileError, match="not a LeNet-5"):
        read_weights(tmp_path / "plain.h5")


@pytest.mark.parametrize("suffix", [".h5", ".keras", ".ckpt", ".pt"])
@pytest.mark.parametrize("content", [b"this is not a model file\n", b""])
def test_garbage_file_is_rejected(tmp_path, suffix, content):
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(content)
    with pytest.raises(WeightFileError, match="not a LeNet-5"):
        read_weights(path)


def test_foreign_torch_and_keras_files_are_rejected(tmp_path):
    torch.save(torch.nn.Linear(3, 4).state_dict(), tmp_path / "linear.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    state = LeNet5().state_dict()
    state["conv2d.weight"] = torch.zeros(6, 25)  # right keys, wrong rank
    torch.save(state, tmp_path / "flat_conv.pt")
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    for name in ("linear.pt", "tensor.pt", "flat_conv.pt", "empty.keras"):
        with pytest.raises(WeightFileError, match="not (a )?LeNet-5"):
            read_weights(tmp_path / name)


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(WeightFileError, match="no such model file"):
        read_weights(tmp_path / "absent.h5")
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(WeightFileError, match="unknown model format"):
        read_weights(tmp_path / "model.onnx")
