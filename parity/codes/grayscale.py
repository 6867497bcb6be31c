"""Any image -> float gray in [0, 1], light = 1: every Pillow mode, every array dtype, alpha composited.

`load_image` is the first step of `normalize.to_mnist` and of segmenting a code; `NoDigit` is the one
error every step raises for input that holds no usable digit.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

MIN_CONTRAST = 0.04  # less than this (max - min on [0, 1]) is a blank image
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, what Pillow's "L" uses


class NoDigit(ValueError):
    """The input holds no usable digit (blank, too small, only noise, unreadable); the message says why."""


def load_image(source: str | os.PathLike | Image.Image | np.ndarray) -> np.ndarray:
    """Any image -> float32 gray (H, W) in [0, 1], light = 1.

    Files and PIL images of every mode (1, L, LA, P with or without transparency, RGB, RGBA,
    I;16, I, F, CMYK, ...) and numpy arrays (H, W) or (H, W, 1/2/3/4) of bool, integer or float.
    Alpha is composited onto the image's own background: if most of the image is opaque, that is the
    median opaque gray; if most is transparent, the transparent area *is* the background, so it gets
    the tone opposite to the opaque ink (white under dark ink, black under light ink). Compositing
    onto plain white would erase a white digit drawn on a transparent canvas.
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            with Image.open(source) as im:
                im.load()
                return _from_pil(im)
        except NoDigit:
            raise
        except Exception as err:  # Pillow raises many types for bad files; callers get one
            raise NoDigit(f"cannot read image {os.fspath(source)!r}: {type(err).__name__}: {err}") from err
    if isinstance(source, Image.Image):
        return _from_pil(source)
    if isinstance(source, (np.ndarray, list, tuple)):
        return _from_array(np.asarray(source))
    raise NoDigit(f"cannot read image of type {type(source).__name__}")


def _from_pil(im: Image.Image) -> np.ndarray:
    if im.width == 0 or im.height == 0:
        raise NoDigit(f"empty image ({im.width}x{im.height})")
    mode = im.mode
    if mode == "1":
        return np.asarray(im, dtype=np.float32)
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.float32) / 65535.0
    if mode in ("I", "F", "L"):  # I and F go through the array rules (their range is not fixed)
        return _from_array(np.asarray(im))
    # P -> RGBA applies the palette and its transparency (tRNS) in one step.
    target = "LA" if mode in ("LA", "La") else "RGBA" if mode in ("PA", "P", "RGBA", "RGBa") else "RGB"
    try:
        converted = im.convert(target)
    except (ValueError, OSError) as err:
        raise NoDigit(f"cannot convert image mode {mode} to {target}: {err}") from err
    return _from_array(np.asarray(converted))


def _unit_scale(a: np.ndarray) -> np.ndarray:
    """Bring numbers to [0, 1] by what their dtype or range says they are."""
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise NoDigit(f"unsupported image dtype {a.dtype}")
    f = a.astype(np.float64)
    if not np.isfinite(f).all():
        raise NoDigit("image contains NaN or infinite values")
    lo, hi = float(f.min()), float(f.max())
    if lo < 0 or hi > 65535:  # arbitrary range (e.g. signed): stretch
        f = (f - lo) / (hi - lo)
    elif hi > 255:
        f = f / 65535.0
    elif hi > 1:
        f = f / 255.0
    return f.astype(np.float32)


def _from_array(a: np.ndarray) -> np.ndarray:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (2, 3, 4))):
        raise NoDigit(f"expected an (H, W) or (H, W, 1/2/3/4) image, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise NoDigit(f"empty image (shape {a.shape})")
    f = _unit_scale(a)
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
    spread = np.percentile(sample, 99, axis=0) - np.percentile(sample, 1, axis=0)
    luma_spread = np.percentile(sample @ LUMA, 99) - np.percentile(sample @ LUMA, 1)
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
    if opaque.mean() >= 0.5:
        backdrop = float(np.median(gray[opaque]))  # the opaque part includes its own background
    elif opaque.any():
        backdrop = 1.0 if float(gray[opaque].mean()) < 0.5 else 0.0  # opposite tone to the ink
    else:
        backdrop = 1.0 if float((gray * alpha).sum() / max(alpha.sum(), 1e-6)) < 0.5 else 0.0
    return (alpha * gray + (1 - alpha) * backdrop).astype(np.float32)

