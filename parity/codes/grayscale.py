"""Any image -> float gray in [0, 1], light = 1: every Pillow mode, every array dtype, alpha composited.

`load_image` is the first step of `normalize.to_mnist` and of segmenting a code; `NoDigit` is the one
error every step raises for input that holds no usable digit (`UnreadableImage`, a kind of it, for a
file that is no readable image). Files are read by parity.codes.imagefile (bounded time and memory);
anything larger than its MAX_SIDE, file, PIL image or array, is box-filtered down to it first, in
strips, so a huge input never exists as full-size floats.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from parity.codes.errors import NoDigit, UnreadableImage
from parity.codes.imagefile import MAX_SIDE, read_picture, shrink
from parity.codes.quick_stats import percentiles

__all__ = ["MIN_CONTRAST", "LUMA", "NoDigit", "UnreadableImage", "load_image"]

MIN_CONTRAST = 0.04  # less than this (max - min on [0, 1]) is a blank image
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, what Pillow's "L" uses
STRIP_ELEMENTS = 2**20  # array values scaled to floats at a time (8 MiB as float64)


def load_image(source: str | os.PathLike | Image.Image | np.ndarray) -> np.ndarray:
    """Any image -> float32 gray (H, W) in [0, 1], light = 1.

    Files and PIL images of every mode (1, L, LA, P with or without transparency, RGB, RGBA,
    I;16, I, F, CMYK, ...) and numpy arrays (H, W) or (H, W, 1/2/3/4) of bool, integer or float.
    Alpha is composited onto the image's own background: if most of the image is opaque, that is the
    median opaque gray; if most is transparent, or the drawn pixels are all one colour (the picture is in
    the alpha), the transparent area *is* the background, so it gets
    the tone opposite to the opaque ink (white under dark ink, black under light ink). Compositing
    onto plain white would erase a white digit drawn on a transparent canvas. Of a file with several
    frames, the first is read. An image with a side over MAX_SIDE comes back box-filtered to fit it.
    """
    if isinstance(source, (str, os.PathLike)):
        return _from_pil(read_picture(source).image)
    if isinstance(source, Image.Image):
        return _from_pil(source)
    if isinstance(source, (np.ndarray, list, tuple)):
        try:
            array = np.asarray(source)
        except (ValueError, TypeError) as err:  # ragged nested lists
            raise NoDigit(f"cannot read image from a {type(source).__name__}: {err}") from None
        return _from_array(array)
    raise NoDigit(f"cannot read image of type {type(source).__name__}")


def _from_pil(im: Image.Image) -> np.ndarray:
    if im.width == 0 or im.height == 0:
        raise NoDigit(f"empty image ({im.width}x{im.height})")
    mode = im.mode
    # P -> RGBA applies the palette and its transparency (tRNS) in one step.
    target = "LA" if mode in ("LA", "La") else "RGBA" if mode in ("PA", "P", "RGBA", "RGBa") else "RGB"
    try:
        im = shrink(im)
        if im.mode == "1":
            return np.asarray(im, dtype=np.float32)
        if im.mode.startswith("I;16"):
            return np.asarray(im).astype(np.float32) / 65535.0
        if im.mode in ("I", "F", "L", "LA", "RGB", "RGBA"):  # I and F go through the array rules (their range is not fixed)
            return _from_array(np.asarray(im))
        converted = im.convert(target)
    except (ValueError, OSError, MemoryError) as err:
        raise NoDigit(f"cannot convert image mode {mode} to {target}: {err}") from err
    return _from_array(np.asarray(converted))


def _scale_rule(a: np.ndarray) -> tuple[float, float, float]:
    """(offset, span, pre) such that ((a * pre) - offset) / span brings the numbers to [0, 1], by what
    their dtype or range says they are; computed on the whole array, before any reduction."""
    if a.dtype == np.bool_:
        return 0.0, 1.0, 1.0
    if a.dtype == np.uint8:
        return 0.0, 255.0, 1.0
    if a.dtype == np.uint16:
        return 0.0, 65535.0, 1.0
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise NoDigit(f"unsupported image dtype {a.dtype}")
    lo, hi = float(a.min()), float(a.max())  # NaN if any value is NaN
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise NoDigit("image contains NaN or infinite values")
    if lo < 0 or hi > 65535:  # arbitrary range (e.g. signed): stretch
        pre = 1.0 if np.isfinite(hi - lo) else 0.25  # hi - lo may overflow float64; of quarters it never does
        span = hi * pre - lo * pre
        return lo * pre, (span if span > 0 else 1.0), pre  # a constant image becomes 0: blank
    if hi > 255:
        return 0.0, 65535.0, 1.0
    return (0.0, 255.0, 1.0) if hi > 1 else (0.0, 1.0, 1.0)


def _box_mean(f: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor x factor blocks of the first two axes (partial blocks at the edges averaged as
    they are, like PIL's Image.reduce)."""
    rows, cols = np.arange(0, f.shape[0], factor), np.arange(0, f.shape[1], factor)
    sums = np.add.reduceat(np.add.reduceat(f, rows, axis=0), cols, axis=1)
    counts = np.outer(np.diff(np.append(rows, f.shape[0])), np.diff(np.append(cols, f.shape[1])))
    return sums / (counts if f.ndim == 2 else counts[:, :, None])


def _unit_floats(a: np.ndarray) -> np.ndarray:
    """The array's numbers on [0, 1] as float32, box-filtered to fit MAX_SIDE, converted a strip of rows
    at a time (a float64 copy of a whole big image would be gigabytes)."""
    offset, span, pre = _scale_rule(a)
    h, w = a.shape[:2]
    factor = max(1, -(-max(h, w) // MAX_SIDE))
    out = np.empty((-(-h // factor), -(-w // factor)) + a.shape[2:], dtype=np.float32)
    per_row = w * (a.shape[2] if a.ndim == 3 else 1)
    rows = factor * max(1, STRIP_ELEMENTS // (per_row * factor))
    for top in range(0, h, rows):
        part = a[top : top + rows].astype(np.float64)
        if pre != 1.0:
            part *= pre
        part = np.clip((part - offset) / span, 0.0, 1.0)
        out[top // factor : top // factor + -(-len(part) // factor)] = part if factor == 1 else _box_mean(part, factor)
    return out


def _from_array(a: np.ndarray) -> np.ndarray:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (2, 3, 4))):
        raise NoDigit(f"expected an (H, W) or (H, W, 1/2/3/4) image, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise NoDigit(f"empty image (shape {a.shape})")
    f = _unit_floats(a)
    if f.ndim == 2:
        return f
    colour, alpha = (f[:, :, :1], f[:, :, 1]) if f.shape[2] == 2 else (f[:, :, :3], f[:, :, 3] if f.shape[2] == 4 else None)
    gray = colour[:, :, 0] if colour.shape[2] == 1 else _to_gray(colour)
    return gray if alpha is None else _composite(gray, alpha)


def _to_gray(rgb: np.ndarray) -> np.ndarray:
    """Luma, unless the ink differs from the background mostly in hue (red on green has almost no
    luma contrast): then the colours' principal axis, oriented so that lighter stays lighter."""
    luma = rgb @ LUMA
    flat = rgb.reshape(-1, 3)
    sample = flat[:: max(1, len(flat) // 4096)]
    high, low = percentiles(sample, (99, 1), axis=0)  # np.percentile's values, one partition for both
    spread = high - low
    high, low = percentiles(sample @ LUMA, (99, 1))
    luma_spread = high - low
    if luma_spread >= 0.5 * spread.max() or spread.max() < MIN_CONTRAST:
        return luma.astype(np.float32)
    centred = sample - sample.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    axis = vectors[:, -1] * (1 if vectors[:, -1] @ LUMA >= 0 else -1)
    proj = (flat - sample.mean(axis=0)) @ axis
    proj = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-6)
    return proj.reshape(luma.shape).astype(np.float32)


def _composite(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    if alpha.min() >= 0.99:
        return gray
    opaque = alpha > 0.5
    drawn = gray[alpha > 0]
    if drawn.size and float(drawn.max() - drawn.min()) < MIN_CONTRAST:
        # One colour everywhere, the picture in the alpha alone (ink colour with coverage as alpha, however much
        # of the canvas it covers): onto the opposite tone. Any other backdrop would give a blank image.
        return (alpha * gray + (1 - alpha) * (1.0 if float(drawn.mean()) < 0.5 else 0.0)).astype(np.float32)
    if opaque.mean() >= 0.5:
        backdrop = float(np.median(gray[opaque]))  # the opaque part includes its own background
    elif opaque.any():
        backdrop = 1.0 if float(gray[opaque].mean()) < 0.5 else 0.0  # opposite tone to the ink
    else:
        backdrop = 1.0 if float((gray * alpha).sum() / max(alpha.sum(), 1e-6)) < 0.5 else 0.0
    return (alpha * gray + (1 - alpha) * backdrop).astype(np.float32)

