"""Shared fixtures of the parity suite.

Both frameworks live in this one test process, so torch (with torch._dynamo) is loaded here, before any
test module can import TensorFlow: the other order aborts the process (see parity/frameworks.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from parity.frameworks.both import load_both

load_both()  # at import time of conftest, i.e. before any test module is collected

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED_H5 = REPO_ROOT.parent / "shared" / "seed" / "lenet-5.h5"
SEED_MISSING = "../shared/seed/lenet-5.h5 not found: the seed model lives outside the repo"


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
def seed_h5() -> Path:
    """The seed's tf.keras 2.7 .h5 (outside the repo, never copied into it)."""
    if not SEED_H5.is_file():
        pytest.skip(SEED_MISSING)
    return SEED_H5


@pytest.fixture(scope="session")
def trained_weights(seed_h5):
    """The seed model's real trained weights, Keras layout, read with h5py."""
    from parity.weights.reading import read_weights

    return read_weights(seed_h5)
