"""parity.data.augment: the fused affine + 28->32 resize, its border rule, determinism, and what the transforms do."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from parity.data.augment import (
    IDENTITY,
    STROKE_CHOICES,
    STROKE_NONE,
    THICKEN_2,
    THICKEN_3,
    THIN_2,
    THIN_3,
    THIN_MIN_INK,
    AugmentConfig,
    AugmentParams,
    apply_stroke,
    augment_batch,
    augmented_epoch,
    sample_params,
    warp_batch,
)
from parity.data.mnist import load_mnist
from parity.data.preprocess import to_model_input

SCALE = 32 / 28  # output pixels per source pixel


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_mnist().train_images[:2000]  # uint8 (2000, 28, 28)


def centre_of_mass(images: np.ndarray) -> np.ndarray:
    """(N, 2) intensity centroids as (row, col) in pixel units."""
    images = images.astype(np.float64)
    mass = images.sum(axis=(1, 2))
    r = np.arange(images.shape[1])
    c = np.arange(images.shape[2])
    return np.stack([images.sum(axis=2) @ r / mass, images.sum(axis=1) @ c / mass], axis=1)


def spread(image: np.ndarray) -> tuple[float, float]:
    """Intensity standard deviation along rows (vertical extent) and along columns (horizontal extent)."""
    image = image.astype(np.float64)
    (cy, cx), mass = centre_of_mass(image[None])[0], image.sum()
    r, c = np.arange(image.shape[0]), np.arange(image.shape[1])
    return (np.sqrt(image.sum(axis=1) @ (r - cy) ** 2 / mass), np.sqrt(image.sum(axis=0) @ (c - cx) ** 2 / mass))


# ------------------------------------------------------------------------------ the resize convention


def test_identity_is_to_model_input(digits):
    np.testing.assert_allclose(augment_batch(digits, np.random.default_rng(0), IDENTITY), to_model_input(digits),
                               rtol=0, atol=1e-6)
    # Random images are bright up to the border, so the edge clamp of the resize is exercised everywhere.
    noise = np.random.default_rng(1).integers(0, 256, (300, 28, 28), dtype=np.uint8)
    ours = augmented_epoch(noise, seed=3, epoch=0, config=IDENTITY)
    np.testing.assert_allclose(ours, to_model_input(noise), rtol=0, atol=1e-6)
    white = np.full((2, 28, 28), 255, dtype=np.uint8)
    np.testing.assert_array_equal(warp_batch(white, AugmentParams.fixed(2)), np.ones((2, 32, 32), np.float32))


def test_border_reads_black_beyond_half_a_pixel():
    """Translated right by t px, output column j reads source x = (j + 0.5) * 28/32 - 0.5 - t.

    Up to half a pixel outside the edge reads the edge pixel; from there it fades to 0 over one pixel.
    """
    white = np.full((1, 28, 28), 255, dtype=np.uint8)
    one = warp_batch(white, AugmentParams.fixed(1, translate=(1.0, 0.0)))[0]
    # column 0: x = -1.0625, 0.5625 px into the fade -> 1 - 0.5625; column 1: x = -0.1875 -> clamped, 1
    np.testing.assert_allclose(one[:, 0], 0.4375, atol=1e-6)
    np.testing.assert_allclose(one[:, 1:], 1.0, atol=1e-6)
    two = warp_batch(white, AugmentParams.fixed(1, translate=(2.0, 0.0)))[0]
    np.testing.assert_allclose(two[:, 0], 0.0, atol=1e-6)  # x = -2.0625: black
    np.testing.assert_allclose(two[:, 1], 0.3125, atol=1e-6)  # x = -1.1875
    np.testing.assert_allclose(two[:, 2:], 1.0, atol=1e-6)
    up = warp_batch(white, AugmentParams.fixed(1, translate=(0.0, -2.0)))[0]  # the same at the bottom edge
    np.testing.assert_allclose(up[-1], 0.0, atol=1e-6)
    np.testing.assert_allclose(up[-2], 0.3125, atol=1e-6)
    np.testing.assert_allclose(up[:-2], 1.0, atol=1e-6)
    # far out of the picture: nothing at all
    assert warp_batch(white, AugmentParams.fixed(1, translate=(40.0, 0.0))).max() == 0.0


def _edge(x: np.ndarray, size: int) -> np.ndarray:
    """The border rule written out piece by piece (the module computes it as a sum of three clips)."""
    return np.select([x < -1.5, x < -0.5, x < 0, x <= size - 1, x <= size - 0.5, x <= size + 0.5],
                     [-1.0, x + 0.5, 0.0, x, size - 1.0, x - 0.5], size)


def _reference_warp(images: np.ndarray, params: AugmentParams, out_size: int = 32) -> np.ndarray:
    """Slow float64 reference: one image at a time, the inverse map by np.linalg.inv, explicit bilinear sampling."""
    stroked, applied = apply_stroke(images, params.stroke)
    n, h, w = images.shape
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    centres_x = (np.arange(out_size) + 0.5) * w / out_size - 0.5
    centres_y = (np.arange(out_size) + 0.5) * h / out_size - 0.5
    dest = np.stack(np.meshgrid(centres_x, centres_y), axis=-1)  # (out, out, 2) as (x, y)
    result = np.empty((n, out_size, out_size))
    for k in range(n):
        t = np.deg2rad(params.rotation_deg[k])
        rotate = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        shear = np.array([[1.0, np.tan(np.deg2rad(params.shear_deg[k]))], [0.0, 1.0]])
        forward = params.scale[k] * rotate @ shear
        src = (dest - c - params.translate[k]) @ np.linalg.inv(forward).T + c
        if applied[k] in (THICKEN_2, THIN_2):
            src -= 0.5
        x, y = _edge(src[..., 0], w), _edge(src[..., 1], h)
        padded = np.pad(stroked[k] / 255.0, 2)
        x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
        fx, fy = x - x0, y - y0
        at = lambda yy, xx: padded[yy + 2, xx + 2]  # noqa: E731
        top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
        bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
        result[k] = top * (1 - fy) + bottom * fy
    return result


def test_matches_slow_reference(digits):
    rng = np.random.default_rng(7)
    # bright borders and large moves, so every piece of the border rule is hit
    images = np.concatenate([digits[:40], rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)])
    config = AugmentConfig(rotation_deg=40, scale=(0.6, 1.6), shear_deg=25, translate_px=8, stroke_prob=0.7)
    params = sample_params(len(images), rng, config)
    params = AugmentParams(params.rotation_deg, params.scale, params.shear_deg, params.translate,
                           np.where(np.arange(len(images)) % 7 == 0, THIN_3, params.stroke).astype(np.int8))
    assert {THICKEN_2, THICKEN_3, THIN_2, THIN_3, STROKE_NONE} <= set(params.stroke.tolist())
    np.testing.assert_allclose(warp_batch(images, params), _reference_warp(images, params), rtol=0, atol=2e-5)


# -------------------------------------------------------------------------------------- determinism


def test_output_shape_dtype_range(digits):
    out = augment_batch(digits[:500], np.random.default_rng(0), AugmentConfig(noise_std=0.2))
    assert out.shape == (500, 32, 32) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0  # noise is clipped into [0, 1]
    single = augment_batch(digits[0], np.random.default_rng(0))
    assert single.shape == (1, 32, 32) and single.dtype == np.float32
    assert 0.0 <= single.min() and single.max() <= 1.0
    assert augment_batch(digits[:0], np.random.default_rng(0)).shape == (0, 32, 32)
    assert augment_batch(digits[:3], np.random.default_rng(0), out_size=40).shape == (3, 40, 40)


@pytest.mark.parametrize("config", [AugmentConfig(), AugmentConfig(noise_std=0.1)], ids=["default", "noise"])
def test_epoch_is_deterministic_for_any_chunk(digits, config):
    first = augmented_epoch(digits, seed=11, epoch=2, config=config)
    assert first.tobytes() == augmented_epoch(digits, seed=11, epoch=2, config=config).tobytes()
    for chunk in (1, 37, 500, 5000):
        assert first.tobytes() == augmented_epoch(digits, seed=11, epoch=2, config=config, chunk=chunk).tobytes()
    # ... and it is augment_batch with the documented generator
    batch = augment_batch(digits, np.random.default_rng([11, 2, 1]), config)
    assert first.tobytes() == batch.tobytes()


def test_epochs_and_seeds_differ(digits):
    base = augmented_epoch(digits[:200], seed=0, epoch=0)
    for other in (augmented_epoch(digits[:200], seed=0, epoch=1), augmented_epoch(digits[:200], seed=1, epoch=0)):
        per_image = np.abs(other - base).max(axis=(1, 2))
        assert (per_image > 0.05).all()  # every image got another transform
    assert np.abs(base - to_model_input(digits[:200])).max(axis=(1, 2)).min() > 0  # and none stayed unchanged


def test_parameter_ranges():
    config = AugmentConfig(rotation_deg=12, scale=(0.85, 1.15), shear_deg=10, translate_px=2, stroke_prob=0.3)
    p = sample_params(20000, np.random.default_rng(0), config)
    assert np.abs(p.rotation_deg).max() <= 12 and np.abs(p.rotation_deg).max() > 11.9
    assert 0.85 <= p.scale.min() < 0.851 and 1.149 < p.scale.max() <= 1.15
    assert np.abs(p.shear_deg).max() <= 10 and np.abs(p.translate).max() <= 2
    assert abs((p.stroke != STROKE_NONE).mean() - 0.3) < 0.02
    assert set(np.unique(p.stroke[p.stroke != STROKE_NONE]).tolist()) == set(STROKE_CHOICES)
    identity = sample_params(100, np.random.default_rng(0), IDENTITY)
    assert not identity.rotation_deg.any() and not identity.shear_deg.any() and not identity.translate.any()
    assert (identity.scale == 1).all() and not identity.stroke.any()


@pytest.mark.parametrize("bad", [dict(scale=(1.2, 0.8)), dict(scale=(0.0, 1.0)), dict(stroke_prob=1.5),
                                 dict(translate_px=-1), dict(noise_std=-0.1), dict(shear_deg=90)])
def test_config_is_validated(bad):
    with pytest.raises(ValueError):
        AugmentConfig(**bad)


# ------------------------------------------------------------------------------- what transforms do


def _horizontal_bar() -> np.ndarray:
    bar = np.zeros((1, 28, 28), dtype=np.uint8)
    bar[0, 12:16, 4:24] = 255  # 4 px tall, 20 px wide, centred on (13.5, 13.5)
    return bar


def test_rotation_by_90_degrees_makes_a_bar_vertical():
    bar = _horizontal_bar()
    flat = warp_batch(bar, AugmentParams.fixed(1))[0]
    tall_flat, wide_flat = spread(flat)
    assert wide_flat > 3 * tall_flat
    for angle in (90.0, -90.0):
        turned = warp_batch(bar, AugmentParams.fixed(1, rotation_deg=angle))[0]
        tall, wide = spread(turned)
        assert tall > 3 * wide
        assert tall == pytest.approx(wide_flat, rel=0.02) and wide == pytest.approx(tall_flat, rel=0.05)
        np.testing.assert_allclose(centre_of_mass(turned[None])[0], (15.5, 15.5), atol=0.05)  # about the centre
        assert turned.sum() == pytest.approx(flat.sum(), rel=0.01)
    # 90 degrees is an exact quarter turn of the 32x32 grid, which is symmetric about the image centre
    np.testing.assert_allclose(warp_batch(bar, AugmentParams.fixed(1, rotation_deg=90.0))[0], np.rot90(flat),
                               atol=1e-5)


def test_translation_moves_the_centre_of_mass(digits):
    blob = np.zeros((1, 28, 28), dtype=np.uint8)
    r = np.arange(28) - 13.5
    blob[0] = (255 * np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 8)).astype(np.uint8)
    inside = digits[:100][digits[:100, :3].max(axis=(1, 2)) + digits[:100, -3:].max(axis=(1, 2)) == 0]
    images = np.concatenate([blob, inside])  # digits clear of the top and bottom 3 rows lose no ink to the moves
    assert len(images) > 50
    before = centre_of_mass(warp_batch(images, AugmentParams.fixed(len(images))))
    for dx, dy in ((2.0, 0.0), (0.0, -2.0), (1.5, 2.0), (-3.0, 2.5)):
        after = centre_of_mass(warp_batch(images, AugmentParams.fixed(len(images), translate=(dx, dy))))
        np.testing.assert_allclose(after - before, np.broadcast_to([dy * SCALE, dx * SCALE], before.shape),
                                   atol=0.5)
        np.testing.assert_allclose(after[0] - before[0], [dy * SCALE, dx * SCALE], atol=0.05)  # the blob: exact


def test_stroke_thickening_adds_ink_and_thinning_removes_it(digits):
    images = digits[:300]
    ink = warp_batch(images, AugmentParams.fixed(len(images))).sum(axis=(1, 2))
    centre = centre_of_mass(warp_batch(images, AugmentParams.fixed(len(images))))
    for code in (THICKEN_2, THICKEN_3):
        thick = warp_batch(images, AugmentParams.fixed(len(images), stroke=code))
        assert (thick.sum(axis=(1, 2)) > 1.1 * ink).all()
        shift = centre_of_mass(thick) - centre  # 2x2 filters are re-centred, 3x3 ones are symmetric
        assert np.abs(shift.mean(axis=0)).max() < 0.1
    thin = warp_batch(images, AugmentParams.fixed(len(images), stroke=THIN_2)).sum(axis=(1, 2))
    _, applied = apply_stroke(images, np.full(len(images), THIN_2))
    done = applied == THIN_2
    assert done.mean() > 0.9  # thinning is skipped only where it would all but erase the digit
    assert (thin[done] < 0.9 * ink[done]).all() and (thin[done] >= (THIN_MIN_INK - 0.02) * ink[done]).all()
    np.testing.assert_allclose(thin[~done], ink[~done], rtol=1e-5)


def test_rank_filters_match_sliding_windows(digits):
    images = np.concatenate([digits[:20], np.random.default_rng(2).integers(0, 256, (5, 28, 28), dtype=np.uint8)])
    for code, reduce, size, pad in ((THICKEN_2, np.max, 2, (0, 1)), (THICKEN_3, np.max, 3, (1, 1)),
                                    (THIN_2, np.min, 2, (0, 1)), (THIN_3, np.min, 3, (1, 1))):
        windows = sliding_window_view(np.pad(images, ((0, 0), pad, pad)), (size, size), axis=(1, 2))
        expected = reduce(windows, axis=(-2, -1))
        got, applied = apply_stroke(images, np.full(len(images), code))
        done = applied == code
        np.testing.assert_array_equal(got[done], expected[done])
        np.testing.assert_array_equal(got[~done], images[~done])
    before = images.copy()
    apply_stroke(images, np.full(len(images), THICKEN_3))
    np.testing.assert_array_equal(images, before)  # the input is never modified


def test_mean_augmentation_keeps_the_digit_centred(digits):
    digit = digits[:1]
    plain = centre_of_mass(to_model_input(digit))[0]
    many = augment_batch(np.repeat(digit, 400, axis=0), np.random.default_rng(0))
    mean_image_centre = centre_of_mass(many.mean(axis=0)[None])[0]
    np.testing.assert_allclose(mean_image_centre, plain, atol=0.5)
    np.testing.assert_allclose(mean_image_centre, (15.5, 15.5), atol=1.5)  # MNIST digits sit near the middle
    np.testing.assert_allclose(centre_of_mass(many).mean(axis=0), plain, atol=0.5)
    # and augmentation does not crop digits: almost all of the ink stays away from the outermost ring
    ring = many.copy()
    ring[:, 1:-1, 1:-1] = 0
    assert ring.sum() < 0.01 * many.sum()
