"""Reading a digit from three views: as normalised, and turned 10 degrees either way (test-time augmentation).

The normaliser centres and sizes a digit as MNIST did, but leaves its slant: a rotated, sheared or
italic digit reaches the model tilted, and one tilt can tip it from one class to the next. The model's
probabilities averaged over the digit and the same digit turned +-10 degrees about the centre read the
style stress set's validation splits 1.1-2.1 points better in both frameworks (docs/robustness.md, choice 7), at three
model calls per digit (the model is the cheap part of reading: the normaliser costs several times more).
NumPy and SciPy only, so torch, Keras and onnxruntime read the same views.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
from scipy import ndimage, sparse

VIEW_ANGLES = (10.0,)  # degrees; each turned both ways. Chosen on the validation splits (docs/robustness.md, choice 7)


def turned(digits: np.ndarray, angle: float) -> np.ndarray:
    """float32 (k, 28, 28): each digit turned by `angle` degrees about the image centre, bilinear, the same
    size; exactly `ndimage.rotate(digits.astype(np.float32), angle, axes=(2, 1), reshape=False, order=1)`."""
    flat = np.asarray(digits, dtype=np.float64).reshape(len(digits), 28 * 28).T
    return (_turn_matrix(angle) @ flat).T.reshape(-1, 28, 28).astype(np.float32)


@lru_cache(maxsize=8)
def _turn_matrix(angle: float) -> sparse.csr_matrix:
    """The bilinear turn as a sparse (784, 784) map: what ndimage.rotate makes of each basis image. It is linear,
    so one product does a whole batch, 15x faster than rotating digit by digit (the main process reads the
    model's batches while the readers normalise: its time is the reading's)."""
    basis = np.eye(28 * 28).reshape(28 * 28, 28, 28)
    return sparse.csr_matrix(ndimage.rotate(basis, angle, axes=(2, 1), reshape=False, order=1).reshape(28 * 28, -1).T)


def views(digits: np.ndarray, angles: tuple[float, ...] = VIEW_ANGLES) -> np.ndarray:
    """uint8 (k, 28, 28) digits -> uint8 (1 + 2 * len(angles), k, 28, 28): the digits themselves first, then
    each turned by +angle and -angle about the image centre (bilinear, the same size, rounded)."""
    digits = np.asarray(digits, dtype=np.uint8)
    out = [digits]
    for angle in angles:
        for signed in (angle, -angle):
            out.append(np.clip(np.rint(turned(digits, signed)), 0, 255).astype(np.uint8))
    return np.stack(out)


def averaged_over_views(classify: Callable[[np.ndarray], np.ndarray],
                        angles: tuple[float, ...] = VIEW_ANGLES) -> Callable[[np.ndarray], np.ndarray]:
    """A classify (uint8 (k, 28, 28) -> (k, 10) probabilities) that reads every digit's views in one call to
    `classify` and returns their mean probabilities (a non-finite output stays non-finite: callers refuse it)."""

    def classify_views(digits: np.ndarray) -> np.ndarray:
        if len(digits) == 0:
            return np.asarray(classify(digits))
        stacked = views(digits, angles)
        n_views, k = stacked.shape[:2]
        probabilities = np.asarray(classify(stacked.reshape(n_views * k, 28, 28)))
        return probabilities.reshape(n_views, k, -1).mean(axis=0)

    return classify_views
