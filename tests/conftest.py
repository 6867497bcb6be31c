"""Shared fixtures of the parity suite.

Both frameworks live in this one test process, so torch (with torch._dynamo) is loaded here, before any
test module can import TensorFlow: the other order aborts the process (see parity/frameworks/both.py).

The suite trains its own LeNet-5 (`trained_model`: scripts/train.py, once per session), so every
guarantee holds in a clone of this repository alone. Only checks of the seed's own file (its figures,
its tf.keras 2.7 layout) use `seed_h5`, which skips when the file is absent; `LENET_SEED_H5=<path>`
points it elsewhere (e.g. `LENET_SEED_H5=/nonexistent` runs the suite as a clone without ../shared would).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from parity.frameworks.both import load_both

load_both()  # at import time of conftest, i.e. before any test module is collected

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED_H5 = Path(os.environ.get("LENET_SEED_H5") or REPO_ROOT.parent / "shared" / "seed" / "lenet-5.h5")
SEED_MISSING = f"{SEED_H5} not found: the seed's model lives outside this repository (../shared/seed/); only checks of that file skip"

# The suite's own model: one epoch over all 60,000 training images in Lightning, through the real CLI.
# Batch 100 at Adam 2e-3 reaches ~0.972 test accuracy in that one epoch (the seed recipe's batch 200
# at 1e-3 needs two epochs for the same): ~20 s on 2 idle cores, start-up included (4.6 s for the epoch).
TRAIN_ARGS = ("--framework", "torch", "--epochs", "1", "--batch-size", "100", "--lr", "2e-3", "--val-split", "0", "--seed", "0")


# The `best` recipe, small, in float64, every step's loss recorded: its two MNIST-only teachers first, 2 epochs at
# batch 100 over 971 MNIST images (10 steps an epoch, the last of 71); then the student, taught on MNIST's images,
# 2 epochs over the 971 with the digits of 25 codes (200), 100 printed and 60 style digits (1,331: 14 steps an
# epoch, the last of 31); then a 1-epoch fine-tune at batch 200 over the 971 and the first 30 style digits
# (1,001: 6 steps, the last of 1).
BEST_RECIPE = ("--recipe", "best", "--epochs", "2", "--limit-train", "971", "--code-digits", "25", "--printed-digits", "100",
               "--style-digits", "60", "--finetune-style-digits", "30", "--finetune-epochs", "1", "--finetune-batch-size", "200",
               "--precision", "float64", "--record-steps", "--no-progress")


# A plain run in float64: 2 epochs over 1,001 images at batch 100 (10 batches and one of 1), 301 validation images
# (their last batch holds 1 too), every step's loss recorded.
FLOAT64_RUN = ("--epochs", "2", "--limit-train", "1001", "--batch-size", "100", "--val-split", "301", "--precision", "float64",
               "--record-steps", "--no-progress")


@dataclass(frozen=True)
class TrainedModel:
    ckpt: Path  # the Lightning checkpoint scripts/train.py saved
    weights: dict  # its weights in Keras layout (parity.weights.reading.read_weights)
    test_accuracy: float  # on all 10,000 test images, as its metrics.json reports
    test_loss: float


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 MNIST test images as model input (float32 (10000, 32, 32), seed preprocessing) and int64 labels."""
    from parity.data.mnist import load_mnist
    from parity.data.preprocess import to_model_input

    mnist = load_mnist()
    return to_model_input(mnist.test_images), mnist.test_labels.astype(np.int64)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory) -> TrainedModel:
    """A real LeNet-5 trained by the project's own CLI (Lightning), once per session."""
    from parity.runs.metrics import RunMetrics
    from parity.weights.reading import read_weights

    out = tmp_path_factory.mktemp("trained-torch")
    done = subprocess.run([sys.executable, "scripts/train.py", *TRAIN_ARGS, "--out", str(out), "--no-progress"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = RunMetrics.read(out / "metrics.json")
    assert metrics.test_accuracy > 0.96, metrics.test_accuracy  # clearly trained: chance is 0.10
    return TrainedModel(out / "model.ckpt", read_weights(out / "model.ckpt"), metrics.test_accuracy, metrics.test_loss)


@pytest.fixture(scope="session")
def trained_weights(trained_model) -> dict:
    """Real trained weights (the suite's own model), Keras layout."""
    return trained_model.weights


@pytest.fixture(scope="session")
def trained_files(trained_model, tmp_path_factory) -> dict[str, Path]:
    """The trained model as each format: the Lightning .ckpt training wrote, and .keras and .h5 files saved
    by Keras itself (`model.save`, through parity.frameworks.models.write_weights)."""
    from parity.frameworks.models import write_weights

    folder = tmp_path_factory.mktemp("trained-files")
    return {"ckpt": trained_model.ckpt,
            "keras": write_weights(trained_model.weights, folder / "model.keras"),
            "h5": write_weights(trained_model.weights, folder / "model.h5")}


@pytest.fixture(scope="session")
def seed_h5() -> Path:
    """The seed's tf.keras 2.7 .h5 (outside the repo, never copied into it): only for checks of that file."""
    if not SEED_H5.is_file():
        pytest.skip(SEED_MISSING)
    return SEED_H5


@pytest.fixture(scope="session")
def seed_weights(seed_h5) -> dict:
    """The seed model's weights, Keras layout, read with h5py."""
    from parity.weights.reading import read_weights

    return read_weights(seed_h5)


@pytest.fixture(scope="session")
def best_recipe_run(tmp_path_factory):
    """run(framework, devices) -> (run folder, stdout): scripts/train.py on BEST_RECIPE, each (framework, devices)
    once per session: test_training_parity compares Lightning on 1 and 2 devices with Keras on 1, test_ddp_keras
    Keras on 2 with the same Keras run on 1. One OpenMP thread, Keras on TensorFlow, in every run."""
    folder, made = tmp_path_factory.mktemp("best-recipe"), {}
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "OMP_NUM_THREADS": "1"}

    def run(framework: str, devices: int) -> tuple[Path, str]:
        if (framework, devices) not in made:
            out = folder / f"{framework}-{devices}"
            command = [sys.executable, "scripts/train.py", "--framework", framework, *BEST_RECIPE, "--devices", str(devices),
                       "--out", str(out)]
            done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, env=env)
            assert done.returncode == 0, done.stderr[-3000:]
            made[framework, devices] = out, done.stdout
        return made[framework, devices]

    return run


@pytest.fixture(scope="session")
def float64_keras_run(tmp_path_factory) -> Path:
    """scripts/train.py --framework keras FLOAT64_RUN (TensorFlow, one OpenMP thread), once per session -> its folder:
    test_ddp_keras's 1-device reference on TensorFlow (its FLAGS are these) and, in test_training_parity, the run
    without the average or the teachers under test (theirs are these and that flag)."""
    out = tmp_path_factory.mktemp("float64-keras") / "run"
    done = subprocess.run([sys.executable, "scripts/train.py", "--framework", "keras", *FLOAT64_RUN, "--out", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "KERAS_BACKEND": "tensorflow", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return out
