"""Reading a digit from its views (parity.codes.views): the digit, then the same turned +10 and -10 degrees
about the centre; the model's probabilities averaged over them, in one model call."""

from __future__ import annotations

import numpy as np
import pytest

from scipy import ndimage

from parity.codes.views import VIEW_ANGLES, averaged_over_views, turned, views


def bar(angle_deg: float = 0.0) -> np.ndarray:
    """A 2 px wide, 18 px long bright bar through the centre of a 28x28 digit, tilted by angle_deg."""
    yy, xx = np.mgrid[0:28, 0:28] - 13.5
    t = np.radians(angle_deg)
    along, across = yy * np.cos(t) + xx * np.sin(t), -yy * np.sin(t) + xx * np.cos(t)
    return np.where((np.abs(across) <= 1.0) & (np.abs(along) <= 9), 255, 0).astype(np.uint8)


def tilt(digit: np.ndarray) -> float:
    """The ink's principal axis, in degrees from vertical (second moments)."""
    yy, xx = np.nonzero(digit > 127)
    yy, xx = yy - yy.mean(), xx - xx.mean()
    return float(np.degrees(0.5 * np.arctan2(2 * (xx * yy).mean(), (yy * yy).mean() - (xx * xx).mean())))


def test_views_are_the_digit_then_it_turned_both_ways_about_the_centre():
    digits = np.stack([bar(0), bar(20)])
    seen = views(digits)
    assert seen.shape == (1 + 2 * len(VIEW_ANGLES), 2, 28, 28) and seen.dtype == np.uint8
    assert np.array_equal(seen[0], digits)
    for k, base in enumerate((0.0, 20.0)):
        turns = sorted(tilt(seen[v, k]) - tilt(digits[k]) for v in (1, 2))
        assert turns == pytest.approx([-VIEW_ANGLES[0], VIEW_ANGLES[0]], abs=1.5), (base, turns)
        for v in (1, 2):  # turned about the centre: the mass stays where it was, and so does the amount of ink
            yy, xx = np.nonzero(seen[v, k] > 127)
            assert abs(yy.mean() - 13.5) < 0.5 and abs(xx.mean() - 13.5) < 0.5
            assert 0.85 < seen[v, k].astype(float).sum() / digits[k].astype(float).sum() < 1.15


def test_averaged_over_views_reads_all_views_in_one_call_and_returns_their_mean():
    calls = []

    def classify(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape)
        ink = batch.reshape(len(batch), 28 * 28).mean(axis=1)  # a stand-in model: each view's own numbers
        return np.stack([ink, 255 - ink] + [np.zeros_like(ink)] * 8, axis=1) / 255

    digits = np.stack([bar(0), bar(45), np.zeros((28, 28), np.uint8)])
    read = averaged_over_views(classify)(digits)
    assert calls == [(3 * len(digits), 28, 28)]
    expected = classify(views(digits).reshape(-1, 28, 28)).reshape(3, len(digits), 10).mean(axis=0)
    assert read.shape == (3, 10) and np.allclose(read, expected)
    assert np.allclose(read.sum(axis=1), 1.0)
    assert averaged_over_views(classify)(np.zeros((0, 28, 28), np.uint8)).shape == (0, 10)


def test_a_non_finite_view_leaves_the_reading_non_finite():
    """One NaN view must not be averaged into a made-up digit: callers refuse non-finite output."""

    def classify(batch: np.ndarray) -> np.ndarray:
        out = np.full((len(batch), 10), 0.1)
        out[len(batch) // 3 :: len(batch)] = np.nan  # the first turned view of the first digit
        return out

    read = averaged_over_views(classify)(np.stack([bar(0), bar(10)]))
    assert not np.isfinite(read[0]).all() and np.isfinite(read[1]).all()


@pytest.mark.parametrize("angle", [10.0, -10.0, 3.5, 30.0])
def test_the_sparse_turn_is_ndimage_rotate_to_the_bit(angle):
    """The batched sparse map gives exactly what scipy's rotate gives, digit by digit (the validation sweep
    and the tests were read through both, bit-identical on 3,994 stress digits)."""
    digits = np.random.default_rng(0).integers(0, 256, (50, 28, 28)).astype(np.uint8)
    digits[:10] = 0
    digits[:10, 4:24, 12:16] = 255  # and some bars, edges and all
    expected = ndimage.rotate(digits.astype(np.float32), angle, axes=(2, 1), reshape=False, order=1)
    assert np.array_equal(turned(digits, angle), expected)


def test_tune_views_extra_views_weigh_each_as_one_turned_view(repo_root):
    """scripts/tune_views.py --extra: zoom, shift and stroke views of each digit, averaged with the turned ones,
    each view one share (a digit read as class k in its own views and as j in the extra ones)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tune_views", repo_root / "scripts" / "tune_views.py")
    tune = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tune)
    digits = np.stack([bar(0), bar(20)])
    shifted = tune.EXTRA_VIEWS["shift"](digits)
    assert len(shifted) == 4 and all(v.shape == digits.shape for v in shifted)
    assert np.array_equal(shifted[0][:, 1:], digits[:, :-1]) and np.array_equal(shifted[3][:, :, :-1], digits[:, :, 1:])
    thicker, thinner = tune.EXTRA_VIEWS["stroke"](digits)
    assert (thicker > 127).sum() > (digits > 127).sum() > (thinner > 127).sum() > 0
    smaller, larger = tune.EXTRA_VIEWS["zoom"](digits)
    assert 0.75 < (smaller > 127).sum() / (digits > 127).sum() < 0.95 < 1.05 < (larger > 127).sum() / (digits > 127).sum() < 1.25

    def plain(batch):  # one-hot on 7 for the digits themselves, on 1 for anything else
        batch = np.asarray(batch)
        same = np.array([any(np.array_equal(b, d) for d in digits) for b in batch])
        return np.eye(10)[np.where(same, 7, 1)]

    read = tune.with_extra(plain, plain, 1, "shift")(digits)  # one view of its own, four shifted ones
    assert np.allclose(read[:, 7], 1 / 5) and np.allclose(read[:, 1], 4 / 5)
    turned_three = averaged_over_views(plain)  # the digit and two turned views (read as 1): 7 weighs 1/3
    read = tune.with_extra(plain, turned_three, 3, "stroke")(digits)
    assert np.allclose(read[:, 7], 1 / 5) and np.allclose(read[:, 1], 4 / 5)
