"""scripts/convert.py: the suite's trained model through .keras, .h5 and back to .ckpt, its imports, its errors."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import parity.weights.convert as convert
from parity.frameworks.models import write_weights
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


def checked_accuracies(stdout: str) -> tuple[float, float]:
    """The test accuracies --check reports for torch and Keras."""
    found = re.search(r"accuracy torch ([0-9.]+) keras ([0-9.]+)", stdout)
    assert found, stdout
    return float(found[1]), float(found[2])


def assert_weights_equal(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name in expected:
        for part in ("kernel", "bias"):
            np.testing.assert_array_equal(actual[name][part], expected[name][part], err_msg=f"{name}.{part}")


@pytest.fixture(scope="module")
def convert_main(repo_root):
    return runpy.run_path(str(repo_root / SCRIPT))["main"]


def test_ckpt_keras_h5_ckpt_chain(repo_root, trained_model, tmp_path):
    """The Lightning checkpoint training saved -> .keras (checked on MNIST) -> .h5 -> .ckpt: bit for bit back."""
    from lenet_torch.module import LitLeNet5

    keras_file, h5, ckpt = tmp_path / "model.keras", tmp_path / "model.h5", tmp_path / "back.ckpt"

    # 1. .ckpt -> .keras (both frameworks) with --check on the 10,000 test images: exit 0 means the written
    #    file agrees with torch to 1e-5 on every image, argmax included; both score what training reported.
    first = run_cli(repo_root, trained_model.ckpt, keras_file, "--check")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert checked_accuracies(first.stdout) == pytest.approx((trained_model.test_accuracy,) * 2, abs=1e-4)
    assert_weights_equal(read_weights(keras_file), trained_model.weights)

    # 2. .keras -> .h5 (Keras only).
    second = run_cli(repo_root, keras_file, h5)
    assert second.returncode == 0, second.stderr[-3000:]
    assert_weights_equal(read_weights(h5), trained_model.weights)

    # 3. .h5 -> .ckpt: torch only; -X importtime lists every module the real CLI process imported.
    third = run_cli(repo_root, h5, ckpt, extra=("-X", "importtime"))
    assert third.returncode == 0, third.stderr[-3000:]
    modules = imported_modules(third.stderr)
    assert "torch" in modules and "lightning" in modules  # the parser works and the writer ran
    assert not {"tensorflow", "keras", "tf_keras", "jax"} & modules, sorted({"tensorflow", "keras", "tf_keras", "jax"} & modules)
    assert_weights_equal(read_weights(ckpt), trained_model.weights)
    assert LitLeNet5.load_from_checkpoint(ckpt, map_location="cpu").model is not None  # Lightning's own loader opens it


def test_check_fails_when_the_frameworks_disagree(convert_main, trained_files, tmp_path, monkeypatch, capsys):
    """--check is a real check: with a one-sided layout mistake (torch -> Keras conv kernels kh/kw swapped,
    so the file is written right but Keras is handed it wrong) it reports FAILED and exits 1."""
    monkeypatch.setattr(convert, "CONV_TORCH_TO_KERAS", (3, 2, 1, 0))
    assert convert_main([str(trained_files["keras"]), str(tmp_path / "model.ckpt"), "--check"]) == 1
    out = capsys.readouterr().out
    torch_accuracy, keras_accuracy = checked_accuracies(out)
    assert torch_accuracy > 0.96 and keras_accuracy < 0.5, out
    assert "FAILED" in out, out


def test_torch_to_torch_and_keras_to_keras(convert_main, tmp_path, capsys):
    weights = initial_weights(3)
    write_weights(weights, tmp_path / "a.pt")
    assert convert_main([str(tmp_path / "a.pt"), str(tmp_path / "b.ckpt")]) == 0
    assert convert_main([str(tmp_path / "b.ckpt"), str(tmp_path / "c.h5")]) == 0
    assert convert_main([str(tmp_path / "c.h5"), str(tmp_path / "d.keras")]) == 0
    for name in ("b.ckpt", "c.h5", "d.keras"):
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
        assert str(tmp_path / src) in err and message in err, err  # names the file and what is wrong with it
        assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.keras").exists()


def test_usage_error_exit_code_of_the_real_process(repo_root, tmp_path):
    result = run_cli(repo_root, tmp_path / "absent.h5", tmp_path / "out.ckpt")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "no such file" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def cannot_create_files_in(folder: Path) -> bool:
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return True
    os.close(fd)
    os.unlink(probe)
    return False


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder this process cannot write to: a chmod 555 one, or (as root, whom modes do not stop) /sys, which
    sysfs lets no one create files in."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if cannot_create_files_in(folder):
            yield folder
        elif Path("/sys").is_dir() and cannot_create_files_in(Path("/sys")):
            yield Path("/sys")
        else:
            pytest.skip("no folder this process cannot write to")
    finally:
        folder.chmod(0o755)


def test_converting_into_a_read_only_or_missing_folder_is_one_line(repo_root, tmp_path, read_only_folder):
    """The real process, exit 1, and nothing left behind (no temporary file either)."""
    src = write_weights(initial_weights(0), tmp_path / "model.ckpt")
    for dst in (read_only_folder / "model.keras", read_only_folder / "model.ckpt", tmp_path / "absent" / "model.h5"):
        before = set(dst.parent.iterdir()) if dst.parent.is_dir() else None
        done = run_cli(repo_root, src, dst)
        assert done.returncode == 1, (dst, done.stderr[-2000:])
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]
        assert f"cannot write {dst}" in done.stderr, done.stderr
        assert not dst.exists() and (before is None or set(dst.parent.iterdir()) == before)
    assert "does not exist" in done.stderr


def test_a_failed_write_leaves_the_old_file_and_no_temporary(convert_main, tmp_path, capsys, monkeypatch):
    """A full disk mid-save (torch reports it as RuntimeError): one line, and the DST already there is untouched."""
    write_weights(initial_weights(0), tmp_path / "src.ckpt")
    old = write_weights(initial_weights(1), tmp_path / "dst.pt")
    before = old.read_bytes()

    def disk_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 half a file")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 0 vs 1234: No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    code, err = error_of(convert_main, capsys, [tmp_path / "src.ckpt", old])
    assert code == 1 and len(err.strip().splitlines()) == 1 and "No space left on device" in err, err
    assert old.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst.pt", "src.ckpt"]
