"""Lightning on 2 devices is the same training as on 1: DDP (gloo on this CPU), float64, the same global batch.

Every run goes through scripts/train.py. The 1-device run is the reference; 2 devices come from Lightning's
own launcher (`--devices 2`: it re-runs the command as rank 1) and from two torchrun "nodes" on 127.0.0.1.
2,001 training images at batch 100 end each epoch with a batch of 1: rank 0's part of it is empty, rank
1's holds the image, and the loss is still the mean over the global batch.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from parity.runs.data_parallel import data_parallel_lines, device_gaps
from parity.runs.metrics import RunMetrics

FLAGS = ("--framework", "torch", "--epochs", "3", "--limit-train", "2001", "--batch-size", "100", "--val-split", "300",
         "--precision", "float64", "--record-steps", "--no-progress")
STEPS = 3 * 21  # 20 batches of 100 and one of 1, per epoch
GAP = 1e-10  # relative, the bound


def train(repo_root: Path, out: Path, *flags: str, launcher: tuple[str, ...] = (), env: dict | None = None, timeout=600):
    return subprocess.run([*(launcher or (sys.executable,)), "scripts/train.py", *FLAGS, *flags, "--out", str(out)],
                          cwd=repo_root, capture_output=True, text=True, timeout=timeout, env=env)


def metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def one_device(repo_root, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ddp") / "one"
    done = train(repo_root, out)
    assert done.returncode == 0, done.stderr[-3000:]
    return metrics(out)


def relative_gap(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def assert_same_training(run: dict, reference: dict) -> None:
    """Every epoch's train and validation loss, the test loss and every step's loss within 1e-10 relative;
    the accuracies equal; all 10,000 test images scored once."""
    assert run["status"] == "done" and len(run["history"]) == len(reference["history"]) == 3
    for epoch, expected in zip(run["history"], reference["history"]):
        assert relative_gap(epoch["train_loss"], expected["train_loss"]) <= GAP, (epoch, expected)
        assert relative_gap(epoch["val_loss"], expected["val_loss"]) <= GAP, (epoch, expected)
        assert epoch["train_accuracy"] == expected["train_accuracy"] and epoch["val_accuracy"] == expected["val_accuracy"]
    assert relative_gap(run["test_loss"], reference["test_loss"]) <= GAP
    assert run["test_accuracy"] == reference["test_accuracy"]
    assert run["test_images"] == reference["test_images"] == 10_000  # counted over the ranks, not assumed
    steps, expected_steps = np.array(run["step_losses"]), np.array(reference["step_losses"])
    assert len(steps) == len(expected_steps) == STEPS
    assert np.max(np.abs(steps - expected_steps) / expected_steps) <= GAP


def assert_written_once(out: Path) -> None:
    """Rank 0 alone wrote the run: one metrics.json, one model, one log (a second writer would add logs/version_1)."""
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [".lock", "config.json", "logs/version_0/hparams.yaml", "logs/version_0/metrics.csv", "metrics.json", "model.ckpt"], files


def test_two_devices_train_as_one(repo_root, tmp_path, one_device):
    done = train(repo_root, tmp_path / "two", "--devices", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    run = metrics(tmp_path / "two")
    assert_same_training(run, one_device)
    assert run["device"].startswith("2 x cpu") and "DDP (gloo, 1 node)" in run["device"]
    assert run["config"]["devices"] == 2 and one_device["config"]["devices"] == 1
    assert_written_once(tmp_path / "two")
    assert done.stdout.count("test accuracy") == 1  # rank 1 prints nothing
    # compare.py --devices 2's figures for these two runs
    gaps = device_gaps(RunMetrics.from_dict(one_device), RunMetrics.from_dict(run))
    assert gaps["devices"] == [1, 2] and gaps["epochs"] == 3 and gaps["test_images"] == [10_000, 10_000]
    assert 0 <= gaps["max_relative_gap_train_loss"] <= GAP and 0 <= gaps["relative_gap_test_loss"] <= GAP
    assert "| torch (float64) | 1 → 2 |" in "\n".join(data_parallel_lines({"torch": gaps}))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_torchrun_nodes_train_as_one(repo_root, tmp_path, one_device):
    """Two torchrun "nodes" on 127.0.0.1 (--nnodes 2, one process each), as on a cluster of two machines."""
    port, out = free_port(), tmp_path / "nodes"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # both "machines" share these 2 cores
    nodes = [
        subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                          "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
                          "scripts/train.py", *FLAGS, "--devices", "1", "--num-nodes", "2", "--out", str(out)],
                         cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=600) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], [err[-2000:] for _, err in outputs]
    run = metrics(out)
    assert_same_training(run, one_device)
    assert "DDP (gloo, 2 nodes)" in run["device"] and run["config"]["num_nodes"] == 2
    assert_written_once(out)
    assert "test accuracy" in outputs[0][0] and outputs[1][0] == ""


def test_interrupted_ddp_run_resumes_to_the_same_training(repo_root, tmp_path, one_device):
    """Ctrl-C (SIGINT to the process group) after the first epoch: exit 130, no rank left running, metrics.json
    says interrupted; `--resume` continues on 2 devices and ends where the uninterrupted 1-device run did."""
    out = tmp_path / "stopped"
    command = [sys.executable, "scripts/train.py", *FLAGS, "--devices", "2", "--out", str(out)]
    run = subprocess.Popen(command, cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        try:  # the first epoch is done when both are written: metrics.json first, then its checkpoint
            if len(metrics(out)["history"]) >= 1 and (out / "checkpoints" / "last.ckpt").is_file():
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130, err[-2000:]
    assert err.count("error: interrupted by SIGINT") == 1 and "Traceback" not in err, err[-2000:]
    assert metrics(out)["status"] == "interrupted" and (out / "checkpoints" / "last.ckpt").is_file()
    time.sleep(1)
    assert str(out) not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout  # no rank left
    done = subprocess.run([sys.executable, "scripts/train.py", "--resume", str(out), "--no-progress"], cwd=repo_root,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_training(metrics(out), one_device)


def test_bench_and_compare_refuse_one_device(repo_root):
    for script, flags in (("scripts/bench.py", ["--devices", "1"]), ("scripts/compare.py", ["--devices", "0"])):
        done = subprocess.run([sys.executable, script, *flags], cwd=repo_root, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "--devices" in done.stderr, done.stderr


@pytest.mark.parametrize("flags, message", [
    (("--devices", "3"), "batch_size 100 does not split over 3 devices"),
    (("--devices", "2", "--num-nodes", "3"), "batch_size 100 does not split over 6 devices (2 x 3 nodes)"),
    (("--devices", "0"), "--devices: must be a positive integer"),
    (("--strategy", "fsdp"), "invalid choice: 'fsdp'"),
])
def test_device_flags_refused_in_one_line(repo_root, tmp_path, flags, message):
    done = train(repo_root, tmp_path / "refused", *flags, timeout=60)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "refused").exists()
