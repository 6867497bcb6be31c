"""A crafted torch file cannot run code when the project reads it (torch.load(weights_only=True) only), and a model
with a NaN or infinite weight is refused by every reader, never run to a made-up answer."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from parity.frameworks.models import write_weights
from parity.weights.init import initial_weights
from parity.weights.reading import WeightFileError, read_weights


class _CreatesAFile:
    """Unpickling this runs `open(marker, "w")`: what a hostile checkpoint would do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("suffix", [".ckpt", ".pt"])
def test_a_checkpoint_with_a_pickle_payload_is_refused_unrun(tmp_path, suffix):
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    torch.save({"state_dict": {"conv2d.weight": torch.zeros(6, 1, 5, 5)}, "payload": _CreatesAFile(str(marker))}, path)
    with pytest.raises(WeightFileError, match="not a LeNet-5 torch model file"):
        read_weights(path)
    assert not marker.exists()


def test_the_predict_cli_refuses_it_in_one_line(repo_root, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"payload": _CreatesAFile(str(marker))}, path)
    (tmp_path / "digit.png").write_bytes(b"")  # never reached: the model is read first
    done = subprocess.run([sys.executable, "scripts/predict.py", "--model", str(path), str(tmp_path / "digit.png")],
                          cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and not marker.exists()
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


# ------------------------------------------------------------------------------------ non-finite weights

NON_FINITE = "layer dense_1: its kernel holds 2 non-finite values (NaN or infinity): refused"


def non_finite_weights(value: float) -> dict:
    weights = initial_weights(0)
    weights["dense_1"]["kernel"][[3, 40], [7, 0]] = value
    return weights


def save_anyway(weights, path: Path) -> Path:
    """A model file holding these weights, written by the frameworks themselves (write_weights would refuse)."""
    from lenet_keras.checkpoint import set_weights
    from lenet_keras.model import build_lenet5
    from lenet_torch.checkpoint import save_checkpoint
    from parity.weights.convert import keras_to_torch

    if path.suffix in (".keras", ".h5"):
        set_weights(build_lenet5(), weights).save(path)
    else:
        save_checkpoint({k: torch.from_numpy(v) for k, v in keras_to_torch(weights).items()}, path)
    return path


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".keras", ".h5"])
def test_non_finite_weights_are_refused(tmp_path, suffix, value):
    path = save_anyway(non_finite_weights(value), tmp_path / f"model{suffix}")
    with pytest.raises(WeightFileError) as info:
        read_weights(path)
    assert str(info.value).startswith(f"{path}: {NON_FINITE}")


def test_non_finite_weights_are_never_written(tmp_path):
    for suffix in (".ckpt", ".keras"):
        with pytest.raises(WeightFileError, match="non-finite"):
            write_weights(non_finite_weights(np.nan), tmp_path / f"model{suffix}")
    assert list(tmp_path.iterdir()) == []


def test_every_reader_process_refuses_non_finite_weights(repo_root, tmp_path):
    """predict.py (a .h5), convert.py (a .keras) and train.py --init-from (a .ckpt): exit 1, one line, no
    digit made up, nothing converted, no model trained."""
    weights = non_finite_weights(np.nan)
    files = {suffix: save_anyway(weights, tmp_path / f"nan{suffix}") for suffix in (".h5", ".keras", ".ckpt")}
    (tmp_path / "digit.png").write_bytes(b"")  # never reached: the model is read first
    jobs = {
        "predict": ("scripts/predict.py", "--model", files[".h5"], tmp_path / "digit.png"),
        "convert": ("scripts/convert.py", files[".keras"], tmp_path / "converted.ckpt", "--check"),
        "train": ("scripts/train.py", "--framework", "torch", "--init-from", files[".ckpt"], "--out", tmp_path / "run",
                  "--epochs", "1", "--limit-train", "100", "--val-split", "0", "--no-progress"),
    }
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = {name: pool.submit(subprocess.run, [sys.executable, *map(str, args)], cwd=repo_root,
                                     capture_output=True, text=True, timeout=600) for name, args in jobs.items()}
    for name, future in futures.items():
        done = future.result()
        assert done.returncode == 1, (name, done.returncode, done.stderr[-2000:])
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, (name, done.stderr[-2000:])
        assert NON_FINITE in done.stderr, (name, done.stderr)
        assert done.stdout == "", (name, done.stdout)
    assert not (tmp_path / "converted.ckpt").exists() and not (tmp_path / "run" / "model.ckpt").exists()
