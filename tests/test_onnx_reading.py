"""Reading digits and codes with an .onnx model: onnxruntime alone, right answers, one-line refusals.

scripts/predict.py and codes.py solve/eval are run on an .onnx LeNet-5 (the suite's trained model, exported
here with torch.onnx) in processes where importing torch, TensorFlow, Keras, JAX, Lightning or a lenet_*
module fails (a meta-path finder refuses them, reader processes included): they must give the answers the
torch model gives on the same weights, and end with none of those modules loaded. ONNX files that are not
LeNet-5 (another network, MaxPool for average pooling, damaged bytes) end in one line and exit 1, and a
framework that cannot run the model (torch or Keras for .onnx, onnx for a .ckpt, `picture` for .onnx) is a
flag error, exit 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from parity.codes.generate import generate_codes
from parity.codes.cuts import read_code
from parity.codes.reading import read_digit
from parity.data.mnist import load_mnist
from parity.codes.views import averaged_over_views
from parity.frameworks.predictor import load_classifier

TIMEOUT = 300
BLOCKED = ("torch", "tensorflow", "keras", "jax", "lightning", "pytorch_lightning", "lenet_torch", "lenet_keras")
# Runs a script with those imports refused; its last stderr line lists any of them that got loaded anyway.
LEAN = f"""
import importlib.abc, runpy, sys
BLOCKED = {BLOCKED!r}
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("import of " + name + " refused: the onnx path must not need it")
sys.meta_path.insert(0, Refuse())
script, *sys.argv[1:] = sys.argv[1:]
sys.argv[0] = script
try:
    runpy.run_path(script, run_name="__main__")
finally:
    sys.stderr.write("loaded: " + repr(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)) + "\\n")
"""


def lean(repo_root, script, *args):
    """(process, its stderr without the last line); asserts that line says nothing blocked was loaded."""
    done = subprocess.run([sys.executable, "-c", LEAN, f"scripts/{script}", *map(str, args)], cwd=repo_root,
                          capture_output=True, text=True, timeout=TIMEOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    *lines, last = done.stderr.strip("\n").split("\n")
    assert last == "loaded: []", done.stderr
    return done, "\n".join(lines)


def run(repo_root, script, *args):
    return subprocess.run([sys.executable, f"scripts/{script}", *map(str, args)], cwd=repo_root, capture_output=True,
                          text=True, timeout=TIMEOUT)


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    return stderr.strip()


class ChannelsLast(torch.nn.Module):
    """scripts/export.py's contract: input `images` (batch, 32, 32, 1), output `probabilities` (batch, 10)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        return torch.softmax(self.model(images.permute(0, 3, 1, 2)), dim=1)


def export(model: torch.nn.Module, path) -> None:
    """The model as an .onnx file. TorchScript's exporter takes a tenth of a second (torch.export's, ~10 s)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ChannelsLast(model.eval()), (torch.rand(2, 32, 32, 1),), str(path), dynamo=False,
                          input_names=["images"], output_names=["probabilities"],
                          dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=18)


@pytest.fixture(scope="module")
def onnx_files(trained_weights, tmp_path_factory) -> dict:
    """lenet5: the suite's trained model; maxpool: the same with max pooling; other: not LeNet-5 at all;
    damaged: lenet5's bytes cut short."""
    from lenet_torch.checkpoint import model_from_weights

    folder = tmp_path_factory.mktemp("onnx")
    files = {name: folder / f"{name}.onnx" for name in ("lenet5", "maxpool", "other", "damaged")}
    export(model_from_weights(trained_weights), files["lenet5"])
    maxpool = model_from_weights(trained_weights)
    maxpool.average_pooling2d, maxpool.average_pooling2d_1 = torch.nn.MaxPool2d(2), torch.nn.MaxPool2d(2)
    export(maxpool, files["maxpool"])
    export(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1024, 10)), files["other"])
    data = files["lenet5"].read_bytes()
    files["damaged"].write_bytes(data[: len(data) // 2])
    return files


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    """20 MNIST test digits in several styles, a blank image and a truncated file."""
    folder = tmp_path_factory.mktemp("digits")
    mnist = load_mnist()
    labels = {}
    for i in range(20):
        digit = mnist.test_images[i]
        image = [Image.fromarray(255 - digit).resize((84, 84)), Image.fromarray(digit).convert("RGB"),
                 Image.fromarray(255 - digit).convert("P")][i % 3]
        image.save(folder / f"d{i:02d}.png")
        labels[str(folder / f"d{i:02d}.png")] = int(mnist.test_labels[i])
    Image.new("L", (40, 40), 240).save(folder / "e-blank.png")
    (folder / "f-truncated.png").write_bytes((folder / "d00.png").read_bytes()[:60])
    return folder, labels


def test_predict_reads_digits_with_onnxruntime_alone(repo_root, trained_weights, onnx_files, digit_folder):
    """The .onnx model, in a process refusing torch/TensorFlow/Keras imports: a row per file, the digits and
    confidences (to 1e-5) the torch model gives on the same weights (averaged over the digit's views), 19 or more of the 20 right; the blank
    and the truncated file say why; exit 1 for the truncated file, one line."""
    folder, labels = digit_folder
    done, stderr = lean(repo_root, "predict.py", "--model", onnx_files["lenet5"], "--framework", "onnx", folder)
    rows = [json.loads(line) for line in done.stdout.strip().splitlines()]
    assert done.returncode == 1 and one_line(stderr).startswith("error: 1 of 22 files"), stderr
    classify = averaged_over_views(load_classifier_from(trained_weights))  # predict.py reads every digit's views
    for row in rows:
        read = read_digit(row["path"])
        if read.digits is None:
            assert row["digit"] is None and row["error"] == read.row["error"]
            continue
        expected = classify(read.digits)[0]
        assert row["digit"] == int(expected.argmax()) and abs(row["confidence"] - float(expected.max())) < 1e-5, row
    assert sum(row["digit"] == labels.get(row["path"]) for row in rows) >= 19
    assert "blank" in rows[-2]["error"] and "truncated" in rows[-1]["error"]


def load_classifier_from(weights):
    """The torch model of these weights as a classifier (through a temporary .ckpt: load_classifier reads files)."""
    import tempfile

    from parity.frameworks.models import write_weights

    with tempfile.TemporaryDirectory() as folder:
        return load_classifier(write_weights(weights, os.path.join(folder, "model.ckpt")), "torch")


def test_solve_and_eval_read_codes_with_onnxruntime_alone(repo_root, trained_weights, onnx_files, tmp_path):
    """codes.py solve and eval on the .onnx model, torch/TensorFlow/Keras refused: the codes the torch model
    reads from the same digits, and eval's accuracy from them."""
    codes = generate_codes(10, seed=7)
    paths = []
    for i, image in enumerate(codes.images):
        paths.append(tmp_path / f"{i}-{codes.codes[i]}.png")
        Image.fromarray(image).save(paths[-1])
    classify = load_classifier_from(trained_weights)
    expected = [read_code(image, classify) for image in codes.images]

    done, stderr = lean(repo_root, "codes.py", "solve", "--model", onnx_files["lenet5"], *paths)
    assert done.returncode == 0 and stderr == "", stderr
    assert [json.loads(line)["code"] for line in done.stdout.strip().splitlines()] == expected

    done, stderr = lean(repo_root, "codes.py", "eval", "--model", onnx_files["lenet5"], "--n", "10", "--unseen", "10")
    assert done.returncode == 0 and stderr == "", stderr
    result = json.loads(done.stdout)
    right = sum(a == b for code, truth in zip(expected, codes.codes) for a, b in zip(code, truth))
    # An MNIST-only model reads captcha digits well above chance (see test_predict_cli), far from perfectly.
    assert result["framework"] == "onnx" and result["digit_accuracy"] == right / 40 and right > 16, (result, expected)


@pytest.mark.parametrize("name, says", [("other", "not LeNet-5: 0 Conv ops"), ("maxpool", "not LeNet-5: 0 AveragePool ops"),
                                        ("damaged", "not a LeNet-5 ONNX file")])
def test_an_onnx_file_that_is_not_lenet5_is_one_line(repo_root, onnx_files, digit_folder, name, says):
    folder, _ = digit_folder
    done, stderr = lean(repo_root, "predict.py", "--model", onnx_files[name], folder / "d00.png")
    line = one_line(stderr)
    assert done.returncode == 1 and done.stdout == "" and str(onnx_files[name]) in line and says in line, line
    if name == "maxpool":
        done, stderr = lean(repo_root, "codes.py", "solve", "--model", onnx_files[name], folder / "d00.png")
        assert done.returncode == 1 and says in one_line(stderr)


def test_a_framework_that_cannot_run_the_model_is_a_flag_error(repo_root, onnx_files, trained_files, digit_folder, tmp_path):
    """One line, exit 2, before any model is read: torch or Keras for an .onnx file, onnx for a .ckpt, a picture
    of an .onnx model, a folder named like a model."""
    digit = digit_folder[0] / "d00.png"
    (tmp_path / "folder.onnx").mkdir()
    cases = [
        ("predict.py", ["--model", onnx_files["lenet5"], "--framework", "torch", digit], "runs in onnxruntime only"),
        ("predict.py", ["--model", onnx_files["lenet5"], "--framework", "keras", digit], "runs in onnxruntime only"),
        ("predict.py", ["--model", trained_files["ckpt"], "--framework", "onnx", digit], "needs an .onnx model"),
        ("predict.py", ["--model", tmp_path / "folder.onnx", digit], "not a regular file"),
        ("codes.py", ["solve", "--model", onnx_files["lenet5"], "--framework", "keras", digit], "runs in onnxruntime only"),
        ("codes.py", ["picture", "--model", onnx_files["lenet5"], "--out", tmp_path / "p.png"], "onnxruntime only"),
    ]
    for script, args, says in cases:
        done = run(repo_root, script, *args)
        assert done.returncode == 2 and done.stdout == "" and says in one_line(done.stderr), (args, done.stderr)
