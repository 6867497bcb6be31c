"""A model file is LeNet-5 only if its architecture says so, not just its weight shapes.

The impostors: a Keras model with LeNet-5's 61,706 parameters in LeNet-5's shapes and layer names, but max
pooling and tanh (saved as .keras and .h5), and a Lightning checkpoint whose measured architecture record
(LitLeNet5.on_save_checkpoint) says max pooling. Each is refused by read_weights and by every real reader
process (predict.py, convert.py --check, train.py --init-from): exit 1, one line naming the layer, no
traceback, nothing written. Files with no record at all (.pt, .weights.h5, a record-less .ckpt) load on
their shapes with one warning line.
"""

from __future__ import annotations

import concurrent.futures
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import torch
from torch import nn

from lenet_keras.checkpoint import set_weights
from lenet_keras.model import build_lenet5
from lenet_torch.model import LeNet5
from lenet_torch.module import LitLeNet5, describe_architecture
from parity.frameworks.models import write_weights
from parity.spec import NUM_PARAMS
from parity.weights.convert import keras_to_torch
from parity.weights.init import initial_weights
from parity.weights.reading import WeightFileError, read_weights

TANH_CONV = "not LeNet-5: layer conv2d: activation tanh, the spec relu"  # the first difference: conv2d comes first
KERAS_MAX_POOL = "not LeNet-5: layer average_pooling2d: max pooling (MaxPooling2D), the spec average pooling"
TORCH_MAX_POOL = "not LeNet-5: layer average_pooling2d: max pooling (MaxPool2d), the spec average pooling"
NO_RECORD = "has no architecture record: checked on weight shapes only"


def keras_impostor(activation: str = "tanh") -> keras.Sequential:
    """LeNet-5's layers, names and weight shapes, with max pooling (named as LeNet-5's average pooling) and
    `activation` in place of relu: the same 61,706 numbers, another function."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input((32, 32, 1)),
        layers.Conv2D(6, 5, activation=activation, name="conv2d"),
        layers.MaxPooling2D(2, name="average_pooling2d"),
        layers.Conv2D(16, 5, activation=activation, name="conv2d_1"),
        layers.MaxPooling2D(2, name="average_pooling2d_1"),
        layers.Flatten(name="flatten"),
        layers.Dense(120, activation=activation, name="dense"),
        layers.Dense(84, activation=activation, name="dense_1"),
        layers.Dense(10, activation="softmax", name="dense_2"),
    ])


def torch_checkpoint(model: nn.Module, path: Path, record: bool = True, **extra) -> Path:
    """A Lightning checkpoint of `model` as LitLeNet5 writes one (its on_save_checkpoint measures the record)."""
    module = LitLeNet5()
    module.model = model
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": 0, **extra}
    if record:
        module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def max_pool_lenet5() -> LeNet5:
    model = LeNet5()
    model.average_pooling2d = nn.MaxPool2d(2)
    return model


@pytest.fixture(scope="module")
def weights():
    return initial_weights(0)


@pytest.fixture(scope="module")
def impostors(tmp_path_factory, weights) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("impostors")
    model = set_weights(keras_impostor(), weights)
    model.save(folder / "impostor.keras")
    model.save(folder / "impostor.h5")
    torch.manual_seed(0)
    return {"keras": folder / "impostor.keras", "h5": folder / "impostor.h5",
            "ckpt": torch_checkpoint(max_pool_lenet5(), folder / "impostor.ckpt")}


EXPECTED = {"keras": TANH_CONV, "h5": TANH_CONV, "ckpt": TORCH_MAX_POOL}


def test_the_impostors_have_lenet5s_weights(impostors):
    """The weights alone cannot tell: same count, same shapes, same layer names."""
    impostor, lenet = keras_impostor(), build_lenet5()
    assert impostor.count_params() == lenet.count_params() == NUM_PARAMS
    def layout(model):  # variable paths without the model's own name
        return [(w.path.split("/", 1)[1], w.shape) for w in model.weights]

    assert layout(impostor) == layout(lenet)
    state = torch.load(impostors["ckpt"], weights_only=True)["state_dict"]
    assert {k: v.shape for k, v in state.items()} == {f"model.{k}": v.shape for k, v in LeNet5().state_dict().items()}


@pytest.mark.parametrize("fmt", ["keras", "h5", "ckpt"])
def test_read_weights_refuses_the_impostors(impostors, fmt):
    with pytest.raises(WeightFileError) as info:
        read_weights(impostors[fmt])
    assert str(info.value) == f"{impostors[fmt]}: {EXPECTED[fmt]}"


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_max_pooling_alone_is_named(tmp_path, weights, suffix):
    """With relu kept, the first difference is the pooling layer, named with the class the file has."""
    path = tmp_path / f"maxpool{suffix}"
    set_weights(keras_impostor("relu"), weights).save(path)
    with pytest.raises(WeightFileError, match=re.escape(KERAS_MAX_POOL) + "$"):
        read_weights(path)


def test_a_torch_tanh_forward_is_measured(tmp_path):
    """The record is measured from what forward does, so an activation changed in code (not a module) shows."""
    class TanhLeNet5(LeNet5):
        def forward(self, x):
            x = self.average_pooling2d(torch.tanh(self.conv2d(x)))
            x = self.flatten(self.average_pooling2d_1(torch.relu(self.conv2d_1(x))))
            return self.dense_2(torch.relu(self.dense_1(torch.relu(self.dense(x)))))

    path = torch_checkpoint(TanhLeNet5(), tmp_path / "tanh.ckpt")
    with pytest.raises(WeightFileError, match=re.escape(TANH_CONV) + "$"):
        read_weights(path)


# ------------------------------------------------------------------------------- real reader processes


def run(repo_root: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=repo_root, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def refusals(repo_root, impostors, tmp_path_factory) -> dict[tuple[str, str], tuple[subprocess.CompletedProcess, Path]]:
    """The impostors through the reader processes (three at a time): (cli, format) -> (process, what it might write)."""
    folder = tmp_path_factory.mktemp("outputs")
    digit = folder / "digit.png"
    digit.write_bytes(b"")  # never reached: the model is read first
    jobs = {}
    for fmt, model in impostors.items():
        converted = folder / f"{fmt}-converted{'.ckpt' if fmt != 'ckpt' else '.keras'}"
        run_dir = folder / f"run-{fmt}"
        jobs["predict", fmt] = (("scripts/predict.py", "--model", model, digit), None)
        jobs["convert", fmt] = (("scripts/convert.py", model, converted, "--check"), converted)
        if fmt == "keras":  # one is enough: train.py reads --init-from with read_weights, after loading MNIST (slow)
            jobs["train", fmt] = (("scripts/train.py", "--framework", "torch", "--init-from", model, "--out", run_dir,
                                   "--epochs", "1", "--limit-train", "100", "--val-split", "0", "--no-progress"),
                                  run_dir / "model.ckpt")
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = {key: pool.submit(run, repo_root, *args) for key, (args, _) in jobs.items()}
        return {key: (future.result(), jobs[key][1]) for key, future in futures.items()}


@pytest.mark.parametrize("cli, fmt", [(cli, fmt) for cli in ("predict", "convert") for fmt in ("keras", "h5", "ckpt")]
                         + [("train", "keras")])
def test_every_reader_process_refuses_the_impostors(refusals, impostors, cli, fmt):
    done, would_write = refusals[cli, fmt]
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]
    assert str(impostors[fmt]) in done.stderr and EXPECTED[fmt] in done.stderr, done.stderr
    assert "OK" not in done.stdout and (would_write is None or not would_write.exists())


# ------------------------------------------------------------------------------ the project's own files


@pytest.mark.parametrize("suffix", [".ckpt", ".keras", ".h5"])
def test_files_the_project_writes_carry_a_record(tmp_path, weights, suffix, capfd):
    path = write_weights(weights, tmp_path / f"model{suffix}")
    read_weights(path)
    assert capfd.readouterr().err == ""  # no warning: the record was there and is LeNet-5


def test_the_checkpoint_training_wrote_has_a_measured_record(trained_model, capfd):
    checkpoint = torch.load(trained_model.ckpt, map_location="cpu", weights_only=True)
    assert checkpoint["architecture"] == describe_architecture(LeNet5())
    assert [layer["kind"] for layer in checkpoint["architecture"]][:2] == ["conv", "avgpool"]
    read_weights(trained_model.ckpt)
    assert capfd.readouterr().err == ""


def test_the_seed_h5_passes(seed_h5, capfd):
    read_weights(seed_h5)  # tf.keras 2.7's model_config
    assert capfd.readouterr().err == ""


def test_a_describe_of_a_compiled_model_does_not_compile_it():
    module = LitLeNet5({"compile": True})
    assert describe_architecture(module.model) == describe_architecture(LeNet5())


# --------------------------------------------------------------------------- files without a record


def assert_same_weights(actual, expected):
    for name in expected:
        for part in ("kernel", "bias"):
            np.testing.assert_array_equal(actual[name][part], expected[name][part])


def record_less_files(folder: Path, weights) -> dict[str, Path]:
    torch.save({k: torch.from_numpy(v) for k, v in keras_to_torch(weights).items()}, folder / "state.pt")
    set_weights(build_lenet5(), weights).save_weights(folder / "model.weights.h5")
    model = LeNet5()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in keras_to_torch(weights).items()})
    torch_checkpoint(model, folder / "old.ckpt", record=False)
    return {"pt": folder / "state.pt", "weights.h5": folder / "model.weights.h5", "ckpt": folder / "old.ckpt"}


@pytest.mark.parametrize("fmt", ["pt", "weights.h5", "ckpt"])
def test_a_file_without_a_record_loads_with_one_warning(tmp_path, weights, fmt, capfd):
    path = record_less_files(tmp_path, weights)[fmt]
    assert_same_weights(read_weights(path), weights)
    assert_same_weights(read_weights(path), weights)  # read twice, warned once
    assert capfd.readouterr().err == f"warning: {path} {NO_RECORD}\n"


def test_predict_runs_a_record_less_file_with_one_warning(repo_root, tmp_path, weights):
    from PIL import Image

    path = record_less_files(tmp_path, weights)["pt"]
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255  # a "1"
    Image.fromarray(digit).save(tmp_path / "one.png")
    done = run(repo_root, "scripts/predict.py", "--model", path, tmp_path / "one.png")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [f"warning: {path} {NO_RECORD}"]
    assert '"digit"' in done.stdout


# ------------------------------------------------------------------------------ records and hyper-parameters


@pytest.mark.parametrize("change, message", [
    ({"architecture": "LeNet-5, honest"}, "its architecture record is not a list of layers"),
    ({"architecture": [{"name": "conv2d", "kind": "conv", "secret": 1}]}, "unknown field 'secret'"),
    ({"architecture": [{"name": "conv2d"}]}, "a layer without a name or kind"),
    ({"hyper_parameters": {"config": None, "hidden_units": 64}}, "unknown hyper-parameter 'hidden_units'"),
    ({"hyper_parameters": {"config": {"epochs": 3, "dropout": 0.5}}}, "its config has an unknown field 'dropout'"),
    ({"hyper_parameters": {"config": {"epochs": "3"}}}, "its config has epochs='3'"),
    ({"hyper_parameters": {"config": {"optimizer": "rmsprop"}}}, "its config is not a TrainConfig"),
    ({"hyper_parameters": ["config"]}, "hyper-parameters that are not a dict"),
    ({"hyper_parameters": {"config": {"distil_from": ["a.ckpt", 7]}}}, "its config has distil_from=\\['a.ckpt', 7\\]"),
    ({"hyper_parameters": {"config": {"distil_from": "a.ckpt"}}}, "its config has distil_from='a.ckpt'"),
    ({"hyper_parameters": {"config": {"distil_from": []}}}, "its config is not a TrainConfig .distil_from must name 1 to 16"),
])
def test_a_checkpoint_must_describe_itself_as_lenet5(tmp_path, change, message):
    path = torch_checkpoint(LeNet5(), tmp_path / "model.ckpt")
    checkpoint = {**torch.load(path, weights_only=True), **change}
    torch.save(checkpoint, path)
    with pytest.raises(WeightFileError, match=message) as info:
        read_weights(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_extra_weights_are_refused(tmp_path):
    state = LeNet5().state_dict()
    state["dense_3.weight"] = torch.zeros(10, 10)
    torch.save(state, tmp_path / "extra.pt")
    with pytest.raises(WeightFileError, match="it has a weight 'dense_3.weight' LeNet-5 does not"):
        read_weights(tmp_path / "extra.pt")
