"""numpy's median, percentile and unit-interval histogram, bit for bit, without their per-call overhead.

The digit normaliser calls these a dozen times per image on a few thousand pixels, where numpy's general
machinery (argument checks, `_ureduce`, NaN bookkeeping, bin-edge set-up) costs more than the arithmetic:
about a third of the normaliser's time on a small digit. Each function here does what numpy does for the
one case the normaliser has (float input, a scalar q, the "linear" method, 64 equal bins on [0, 1]): the
same order statistics from `np.partition`, the same float32 interpolation, the same bin counts, so the
results are identical to the bit (tests/test_fast_reading.py checks them against numpy). Anything outside
that case (integers, empty input, a NaN) is handed to numpy itself.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def median(values: np.ndarray):
    """np.median(values) of a float array: the middle order statistic, or the float mean of the two."""
    n = values.size
    if n == 0 or values.dtype.kind != "f":
        return np.median(values)
    flat = values.reshape(-1)
    half = n // 2
    # np.median's partition: at the middle (two middles for even n) and at the end, where a NaN would sort
    part = np.partition(flat, [half - 1, half, n - 1] if n % 2 == 0 else [half, n - 1])
    if np.isnan(part[-1]):  # numpy's NaN result (and warning): its own way
        return np.median(values)
    middle = part[half - 1 : half + 1] if n % 2 == 0 else part[half : half + 1]
    total = np.add.reduce(middle, axis=0)  # np.mean's own steps: the float sum, then its type's division
    return total.dtype.type(total / len(middle))


def percentile(values: np.ndarray, q: float, axis: int | None = None):
    """np.percentile(values, q) (axis None) or np.percentile(values, q, axis=0), q a Python number, float data."""
    return percentiles(values, (q,), axis)[0]


def percentiles(values: np.ndarray, qs: tuple[float, ...], axis: int | None = None) -> list:
    """[np.percentile(values, q, axis=axis) for q in qs], each q a Python number, from one partition.

    numpy's linear method: virtual index (n - 1) * q / 100 between order statistics `lo` and `hi`, then
    lo + (hi - lo) * g, or hi - (hi - lo) * (1 - g) when g >= 0.5, with g a Python float (q is a Python
    scalar, so g takes the data's float type, as in numpy). Order statistics do not depend on how the
    partition is asked for, so one partition serves every q, it is asked only for the ranks used (numpy also
    partitions at both ends, for its NaN check; a NaN here goes to numpy), and along axis 0 it runs on the
    transposed (contiguous) copy, several times faster than numpy's strided partition."""
    if (values.dtype.kind != "f" or values.size == 0 or axis not in (None, 0) or values.ndim > 2
            or any(type(q) not in (int, float) for q in qs)):  # numpy's own test for a "weak" Python q
        return [np.percentile(values, q, axis=axis) for q in qs]
    data = values.reshape(-1) if axis is None or values.ndim == 1 else np.ascontiguousarray(values.T)
    if np.isnan(data).any():  # numpy's NaN results: its own way
        return [np.percentile(values, q, axis=axis) for q in qs]
    n = data.shape[-1]
    picks = []  # (previous, following, gamma) per q
    for q in qs:
        virtual = (n - 1) * (q / 100)
        if not 0 <= virtual <= n - 1:
            return [np.percentile(values, q, axis=axis) for q in qs]
        if virtual >= n - 1:  # numpy takes the last element (index -1) for both neighbours
            picks.append((n - 1, n - 1, virtual + 1))  # numpy's gamma against index -1; lo == hi, so only its >= 0.5 matters
        else:
            previous = math.floor(virtual)
            picks.append((previous, previous + 1, virtual - previous))
    part = np.partition(data, sorted({index for p, f, _ in picks for index in (p, f)}), axis=-1)
    results = []
    for previous, following, gamma in picks:
        lo, hi = part[..., previous], part[..., following]
        diff = hi - lo
        result = lo + diff * gamma
        if gamma >= 0.5:
            result = hi - diff * (1 - gamma)
        results.append(result)
    return results


@lru_cache(maxsize=4)
def _unit_edges(dtype: np.dtype, bins: int) -> np.ndarray:
    edges = np.histogram_bin_edges(np.zeros(1, dtype=dtype), bins=bins, range=(0.0, 1.0))
    edges.setflags(write=False)
    return edges


def unit_histogram(values: np.ndarray, bins: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """np.histogram(values, bins=bins, range=(0.0, 1.0)) for float values, bins a power of two.

    The edges are then exactly i / bins, and scaling by a power of two is exact, so a value's bin is
    floor(value * bins) (1.0 in the last bin): what numpy's search-and-correct finds, without the search."""
    edges = _unit_edges(values.dtype, bins) if values.dtype.kind == "f" else None
    if (edges is None or bins & (bins - 1) or values.size == 0
            or not (values.min() >= 0 and values.max() <= 1)):  # outside [0, 1], or a NaN: numpy's own way
        return np.histogram(values, bins=bins, range=(0.0, 1.0))
    index = (values.reshape(-1) * bins).astype(np.intp)
    np.minimum(index, bins - 1, out=index)
    return np.bincount(index, minlength=bins), edges
