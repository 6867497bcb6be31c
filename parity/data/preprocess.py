"""MNIST images to model input: uint8 28x28 -> float32 [0, 1] 32x32, done once in NumPy.

Both frameworks train on the arrays made here, so their inputs are identical to the bit.
The resize is bilinear with half-pixel centres and no antialiasing, exactly what the seed used
(`tf.image.resize(x, [32, 32])`) and what `F.interpolate(mode="bilinear", align_corners=False)` does.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

MODEL_SIZE = 32


@lru_cache(maxsize=8)
def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) matrix R so that R @ column resizes one axis bilinearly."""
    scale = in_size / out_size
    src = (np.arange(out_size) + 0.5) * scale - 0.5  # half-pixel centres
    src = np.clip(src, 0, in_size - 1)  # edges repeat the border pixel
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = src - lo
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    matrix[np.arange(out_size), lo] += 1 - frac
    matrix[np.arange(out_size), hi] += frac
    return matrix


def resize_bilinear(images: np.ndarray, size: int = MODEL_SIZE) -> np.ndarray:
    """Resize a batch (N, H, W) of float images to (N, size, size); separable, so two matrix products."""
    rows = bilinear_matrix(images.shape[1], size).astype(np.float32)
    cols = bilinear_matrix(images.shape[2], size).astype(np.float32)
    return np.einsum("oh,nhw,pw->nop", rows, images.astype(np.float32), cols, optimize=True)


def to_model_input(images: np.ndarray, size: int = MODEL_SIZE) -> np.ndarray:
    """uint8 (N, 28, 28) or (28, 28) -> float32 (N, size, size) in [0, 1]."""
    batch = images[None] if images.ndim == 2 else images
    scaled = batch.astype(np.float32) / 255.0
    if scaled.shape[1:] == (size, size):
        return scaled
    return resize_bilinear(scaled, size).astype(np.float32)


def channels_first(x: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W), torch's layout."""
    return np.ascontiguousarray(x[:, None, :, :])


def channels_last(x: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N, H, W, 1), Keras's layout."""
    return np.ascontiguousarray(x[..., None])
