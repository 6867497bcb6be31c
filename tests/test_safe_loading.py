"""A crafted torch file cannot run code when the project reads it: torch.load(weights_only=True) only."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

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
