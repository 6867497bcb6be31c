"""scripts/convert.py: the seed .h5 through .ckpt, .keras and back to .h5, its imports, its errors."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys

import h5py
import numpy as np
import pytest

from parity.spec import kernel_shapes
from parity.weights.init import initial_weights
from parity.weights.reading import read_weights

SCRIPT = "scripts/convert.py"


def run_cli(repo_root, *args, extra=()):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, *extra, SCRIPT, *map(str, args)], capture_output=True, text=True,
                          cwd=repo_root, env=env, timeout=300)


def imported_modules(importtime_stderr: str) -> set[str]:
    """Top-level module names from `python -X importtime` output ('import time: self | cumulative | name')."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".")[0])
    return names


def assert_weights_equal(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name in expected:
        for part in ("kernel", "bias"):
            np.testing.assert_array_equal(actual[name][part], expected[name][part], err_msg=f"{name}.{part}")


@pytest.fixture(scope="module")
def convert_main(repo_root):
    return runpy.run_path(str(repo_root / SCRIPT))["main"]


def test_h5_ckpt_keras_h5_chain(repo_root, seed_h5, trained_weights, tmp_path):
    ckpt, keras_file, h5 = tmp_path / "seed.ckpt", tmp_path / "seed.keras", tmp_path / "back.h5"

    # 1. .h5 -> .ckpt: torch only; -X importtime lists every module the real CLI process imported.
    first = run_cli(repo_root, seed_h5, ckpt, extra=("-X", "importtime"))
    assert first.returncode == 0, first.stderr[-3000:]
    modules = imported_modules(first.stderr)
    assert "torch" in modules and "lightning" in modules  # the parser works and the writer ran
    assert not {"tensorflow", "keras", "tf_keras", "jax"} & modules, sorted({"tensorflow", "keras", "tf_keras", "jax"} & modules)
    assert first.stdout.strip().startswith(f"wrote {ckpt} (Lightning checkpoint, 61,706 params) from {seed_h5}")
    assert_weights_equal(read_weights(ckpt), trained_weights)

    # 2. .ckpt -> .keras (both frameworks) with --check on the 10,000 test images.
    second = run_cli(repo_root, ckpt, keras_file, "--check")
    assert second.returncode == 0, second.stderr[-3000:]
    lines = second.stdout.strip().splitlines()
    assert lines[0].startswith(f"wrote {keras_file} (Keras model, 61,706 params)")
    assert "check on 10,000 MNIST test images" in lines[1] and "argmax agreement 100.00%" in lines[1], lines
    assert "accuracy torch 0.9871 keras 0.9871: OK" in lines[1], lines
    assert float(lines[1].split("torch vs keras ")[1].split(",")[0]) <= 1e-5
    assert_weights_equal(read_weights(keras_file), trained_weights)

    # 3. .keras -> .h5 (Keras only): back where we started, bit for bit.
    third = run_cli(repo_root, keras_file, h5)
    assert third.returncode == 0, third.stderr[-3000:]
    assert_weights_equal(read_weights(h5), trained_weights)


def test_no_tensorflow_in_process(repo_root, tmp_path):
    """The CLI's main() itself, in a fresh interpreter: Keras -> torch conversion leaves TensorFlow unloaded."""
    from parity.frameworks.models import write_weights

    source = write_weights(initial_weights(5), tmp_path / "random.h5")  # a Keras 3 legacy .h5, written here
    code = (
        "import runpy, sys\n"
        f"main = runpy.run_path({SCRIPT!r})['main']\n"
        f"assert main([{str(source)!r}, {str(tmp_path / 'x.pt')!r}]) == 0\n"
        "print(sorted({'tensorflow', 'keras'} & set(sys.modules)), 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[] True"
    assert_weights_equal(read_weights(tmp_path / "x.pt"), initial_weights(5))


def test_torch_to_torch_and_keras_to_keras(convert_main, tmp_path, capsys):
    weights = initial_weights(3)
    from parity.frameworks.models import write_weights

    write_weights(weights, tmp_path / "a.pt")
    assert convert_main([str(tmp_path / "a.pt"), str(tmp_path / "b.ckpt")]) == 0
    assert convert_main([str(tmp_path / "b.ckpt"), str(tmp_path / "c.h5")]) == 0
    assert convert_main([str(tmp_path / "c.h5"), str(tmp_path / "sub" / "d.keras")]) == 0  # folders are made
    assert capsys.readouterr().out.count("wrote ") == 3
    for name in ("b.ckpt", "c.h5", "sub/d.keras"):
        assert_weights_equal(read_weights(tmp_path / name), weights)


def error_of(convert_main, capsys, argv) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        convert_main([str(a) for a in argv])
    err = capsys.readouterr().err
    return info.value.code, err


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "the following arguments are required"),
        (["{tmp}/absent.h5", "{tmp}/out.ckpt"], "absent.h5: no such file"),
        (["{tmp}/model.h5", "{tmp}/out.txt"], "unknown model format '.txt'"),
        (["{tmp}/model.h5", "{tmp}/out"], "unknown model format '(no suffix)'"),
        (["{tmp}/model.onnx", "{tmp}/out.ckpt"], "unknown model format '.onnx'"),
        (["{tmp}/model.h5", "{tmp}/model.h5"], "is SRC"),
        (["{tmp}/model.h5", "{tmp}/out.ckpt", "--bogus"], "unrecognized arguments"),
        (["{tmp}/model.h5", "{tmp}/out.ckpt", "--data-dir", "{tmp}"], "only used with --check"),
    ],
)
def test_usage_errors_exit_2(convert_main, capsys, tmp_path, argv, message):
    (tmp_path / "model.h5").write_bytes(b"whatever")
    (tmp_path / "model.onnx").write_bytes(b"whatever")
    code, err = error_of(convert_main, capsys, [a.format(tmp=tmp_path) for a in argv])
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out.ckpt").exists()


def test_non_lenet_files_exit_1(convert_main, capsys, tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        for name, shape in kernel_shapes().items():
            shape = (3, 3, 1, 4) if name == "conv2d" else shape
            f[f"model_weights/{name}/{name}/kernel:0"] = np.zeros(shape, np.float32)
            f[f"model_weights/{name}/{name}/bias:0"] = np.zeros(shape[-1], np.float32)
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    for src, message in (("other.h5", "LeNet-5 needs (5, 5, 1, 6)"), ("garbage.ckpt", "not a LeNet-5 torch model file")):
        code, err = error_of(convert_main, capsys, [tmp_path / src, tmp_path / "out.keras"])
        assert code == 1
        assert err.startswith(f"error: {tmp_path / src}: ") and message in err, err
        assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.keras").exists()


def test_usage_error_exit_code_of_the_real_process(repo_root, tmp_path):
    result = run_cli(repo_root, tmp_path / "absent.h5", tmp_path / "out.ckpt")
    assert result.returncode == 2
    assert result.stderr.strip() == f"convert.py: error: SRC {tmp_path / 'absent.h5'}: no such file (see --help)"
