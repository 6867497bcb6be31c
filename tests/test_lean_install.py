"""The lean install: a fresh venv with only `pip install ".[onnx]"` reads digits and codes from a .onnx model.

Slow (it installs from the package index, ~1 minute and ~0.5 GB): `pytest -m slow tests/test_lean_install.py`.
The suite's own trained model is exported to ONNX with the full install; then predict.py and codes.py solve
and eval run in the fresh venv, which has neither torch nor TensorFlow, and must print exactly what they print
with the full install.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def run(python: Path | str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *args], cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def lean_python(repo_root, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lean") / "venv"
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    # A copy of the project, not an editable install: the venv must not find anything in this checkout.
    done = run(python, "-m", "pip", "install", "--quiet", "--constraint", str(repo_root / "requirements/constraints.txt"),
               f"{repo_root}[onnx]", cwd=folder)
    assert done.returncode == 0, done.stderr[-2000:]
    return python


@pytest.fixture(scope="module")
def onnx_model(trained_model, repo_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "model.onnx"
    done = run(sys.executable, "scripts/export.py", str(trained_model.ckpt), str(out), cwd=repo_root)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def inputs(repo_root, tmp_path_factory) -> tuple[Path, Path]:
    """(a folder of 40 digit PNGs, a folder of 10 code PNGs), made with the full install."""
    from PIL import Image

    from parity.codes.fonts import unseen_style_digits

    digits = tmp_path_factory.mktemp("digits")
    images, labels = unseen_style_digits(40, seed=5)
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(digits / f"{i:03d}-{label}.png")
    codes = tmp_path_factory.mktemp("codes")
    done = run(sys.executable, "scripts/codes.py", "generate", "--n", "10", "--seed", "9", "--out", str(codes), cwd=repo_root)
    assert done.returncode == 0, done.stderr
    return digits, codes


def test_the_lean_venv_has_no_framework(lean_python, repo_root):
    # lenet_torch and lenet_keras are in the package (one distribution), but what they import is not installed
    probe = ("import importlib.util as u; "
             "print([m for m in ('torch', 'tensorflow', 'keras', 'jax', 'onnxscript', 'tf2onnx') if u.find_spec(m)])")
    done = run(lean_python, "-c", probe, cwd=repo_root.parent)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.parametrize("command", ["predict", "solve", "eval"])
def test_lean_venv_reads_as_the_full_install_does(lean_python, onnx_model, inputs, repo_root, command):
    digits, codes = inputs
    argv = {
        "predict": ["scripts/predict.py", "--model", str(onnx_model), str(digits)],
        "solve": ["scripts/codes.py", "solve", "--model", str(onnx_model), *sorted(map(str, codes.glob("*.png")))],
        "eval": ["scripts/codes.py", "eval", "--model", str(onnx_model), "--n", "20", "--unseen", "20"],
    }[command]
    lean = run(lean_python, *argv, cwd=repo_root)
    full = run(sys.executable, *argv, cwd=repo_root)
    assert lean.returncode == full.returncode == 0, lean.stderr + full.stderr
    lean_rows = [json.loads(line) for line in lean.stdout.splitlines()]
    full_rows = [json.loads(line) for line in full.stdout.splitlines()]
    for row in lean_rows + full_rows:
        row.pop("seconds_per_code", None)  # a timing
    assert lean_rows == full_rows
    if command == "predict":
        assert len(lean_rows) == 40 and all(row["digit"] is not None for row in lean_rows)
    if command == "solve":
        assert len(lean_rows) == 10 and sum(row["code"] is not None for row in lean_rows) >= 8
