"""parity.data.preprocess: the NumPy 28->32 bilinear resize is the seed's `tf.image.resize` and torch's `interpolate`."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import torch
import torch.nn.functional as F

from parity.data.mnist import load_mnist
from parity.data.preprocess import bilinear_matrix, resize_bilinear, to_model_input

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def raw_test_images() -> np.ndarray:
    return load_mnist().test_images[:500]  # uint8 (500, 28, 28)


def test_matches_tf_image_resize(raw_test_images):
    x = raw_test_images.astype(np.float32) / 255.0
    expected = tf.image.resize(x[..., None], [32, 32]).numpy()[..., 0]  # bilinear, antialias=False: the seed's
    ours = resize_bilinear(x)
    assert ours.shape == expected.shape == (500, 32, 32)
    assert np.max(np.abs(ours - expected)) <= TOLERANCE
    # ... and it is not a trivially small difference measure: nearest-neighbour resizing is far off
    nearest = tf.image.resize(x[..., None], [32, 32], method="nearest").numpy()[..., 0]
    assert np.max(np.abs(ours - nearest)) > 0.1


def test_matches_torch_interpolate(raw_test_images):
    x = raw_test_images.astype(np.float32) / 255.0
    expected = F.interpolate(torch.from_numpy(x)[:, None], size=(32, 32), mode="bilinear", align_corners=False)
    assert np.max(np.abs(resize_bilinear(x) - expected[:, 0].numpy())) <= TOLERANCE
    # align_corners=True is a different resize; the comparison can tell them apart
    corners = F.interpolate(torch.from_numpy(x)[:, None], size=(32, 32), mode="bilinear", align_corners=True)
    assert np.max(np.abs(resize_bilinear(x) - corners[:, 0].numpy())) > 0.05


def test_to_model_input_shape_dtype_range(raw_test_images):
    out = to_model_input(raw_test_images)
    assert out.shape == (500, 32, 32) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    expected = tf.image.resize(raw_test_images[..., None].astype(np.float32) / 255.0, [32, 32]).numpy()[..., 0]
    assert np.max(np.abs(out - expected)) <= TOLERANCE
    single = to_model_input(raw_test_images[0])  # one (28, 28) image -> a batch of one
    assert single.shape == (1, 32, 32) and single.dtype == np.float32
    np.testing.assert_allclose(single[0], out[0], rtol=0, atol=1e-6)  # einsum may sum in another order for N=1


def test_32x32_input_passes_unchanged():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 32, 32), dtype=np.uint8)
    out = to_model_input(images)
    assert out.shape == (4, 32, 32) and out.dtype == np.float32
    np.testing.assert_array_equal(out, images.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(bilinear_matrix(32, 32), np.eye(32))


def test_bilinear_rows_sum_to_one():
    matrix = bilinear_matrix(28, 32)
    assert matrix.shape == (32, 28)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    assert (matrix >= 0).all()
