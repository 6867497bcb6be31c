"""Any picture of one digit -> a 28x28 uint8 image made the way MNIST's were.

MNIST digits are white strokes on black, size-normalised (aspect kept) into a 20x20 box with
antialiasing, then placed in a 28x28 field so that their centre of mass is at the centre. A digit cut
from a captcha is instead dark or coloured ink on a light, textured background, crossed by noise
lines and dots, at any size and in any image mode. `to_mnist` bridges the two:

1. `load_image`: any mode / dtype -> float gray in [0, 1] (transparent pixels become background).
2. Work at a bounded scale (long side 48..160 px) so filter sizes mean the same everywhere.
3. Polarity: the border pixels are background; if it is lighter than the image, invert so ink is bright.
4. Remove smooth background (gradients, uneven light) with a robust quadratic surface fit.
5. Denoise: a grey opening, as wide as the strokes allow, erases noise lines and dots thinner than
   them; the threshold is set on what remains (captcha noise is often darker than the digit), and
   connected components that are specks, or neighbour fragments at the crop edge, are dropped.
6. Crop to the ink, fit into 20x20 (Lanczos, like MNIST's antialiasing), centre the mass at (14, 14).

NumPy + Pillow only; one to two milliseconds for a 60x40 crop.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
from PIL import Image

__all__ = ["NoDigit", "load_image", "ink_map", "to_mnist", "to_mnist_batch", "center_of_mass"]

MNIST_SIZE = 28
BOX_SIZE = 20  # MNIST's size-normalisation box
WORK_MIN, WORK_MAX = 48, 160  # working resolution (long side) for the clean-up
MIN_CONTRAST = 0.04  # less than this (max - min on [0, 1]) is a blank image
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, what Pillow's "L" uses


class NoDigit(ValueError):
    """The input holds no usable digit (blank, too small, only noise, unreadable); the message says why."""


# ----------------------------------------------------------------------------------------- loading
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
    if lo >= 0 and hi <= 1:
        pass
    elif lo >= 0 and hi <= 255:
        f = f / 255.0
    elif lo >= 0 and hi <= 65535:
        f = f / 65535.0
    else:  # arbitrary range (e.g. signed): stretch
        f = (f - lo) / (hi - lo)
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


# ------------------------------------------------------------------------------- small primitives
def _resize(g: np.ndarray, width: int, height: int, resample: Image.Resampling) -> np.ndarray:
    out = Image.fromarray(np.ascontiguousarray(g, dtype=np.float32)).resize((width, height), resample)
    return np.asarray(out, dtype=np.float32)


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold for values in [0, 1]."""
    hist, edges = np.histogram(values, bins=64, range=(0.0, 1.0))
    p = hist / max(hist.sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m0[-1] * w0 - m0) ** 2 / (w0 * (1 - w0))
    between[~np.isfinite(between)] = -1
    return float(edges[int(np.argmax(between)) + 1])


def _running(g: np.ndarray, k: int, axis: int, op: str) -> np.ndarray:
    """Running min (window [i, i+k)) or max (window (i-k, i]) along an axis; the two are mirror
    images, so min then max is an opening by the same k-wide element even when k is even."""
    if axis == 1:
        return _running(g.T, k, 0, op).T
    n = g.shape[0]
    padded = np.pad(g, [(0, k - 1) if op == "min" else (k - 1, 0), (0, 0)], mode="edge")
    combine = np.minimum if op == "min" else np.maximum
    out = padded[:n].copy()
    for shift in range(1, k):  # k is at most 5: shifted copies beat strided window reductions
        combine(out, padded[shift : shift + n], out=out)
    return out


def _opening(g: np.ndarray, k: int) -> np.ndarray:
    """Grey opening with a k x k square: removes bright structures thinner than k (noise lines, dots)."""
    eroded = _running(_running(g, k, 0, "min"), k, 1, "min")
    return _running(_running(eroded, k, 0, "max"), k, 1, "max")


def _dilate3(mask: np.ndarray) -> np.ndarray:
    p = np.pad(mask, 1)
    h, w = mask.shape
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= p[dy : dy + h, dx : dx + w]
    return out


def _stroke_width(mask: np.ndarray) -> float:
    """About 2 * area / boundary: a stroke of length L and width w has area L*w and 2L edge pixels."""
    area = int(mask.sum())
    if area == 0:
        return 0.0
    p = np.pad(mask, 1)
    interior = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:] & mask
    boundary = area - int(interior.sum())
    return 2.0 * area / max(boundary, 1)


def label_components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected components of a boolean mask -> (labels, sizes); labels -1 off the mask, else
    0..n-1. Vectorised union-find: hook each root onto the smallest root it touches, then pointer-jump;
    a few rounds suffice, so it stays well under a millisecond on crop-sized masks."""
    h, w = mask.shape
    index = np.full((h, w), -1, dtype=np.int64)
    n = int(mask.sum())
    index[mask] = np.arange(n)
    if n == 0:
        return index, np.zeros(0, dtype=np.int64)
    pairs = []
    for a, b in (
        (index[:, :-1], index[:, 1:]),
        (index[:-1, :], index[1:, :]),
        (index[:-1, :-1], index[1:, 1:]),
        (index[:-1, 1:], index[1:, :-1]),
    ):
        both = (a >= 0) & (b >= 0)
        pairs.append((a[both], b[both]))
    ea = np.concatenate([p[0] for p in pairs])
    eb = np.concatenate([p[1] for p in pairs])
    parent = np.arange(n)
    while True:
        ra, rb = parent[ea], parent[eb]
        cross = ra != rb
        if not cross.any():
            break
        ea, eb, ra, rb = ea[cross], eb[cross], ra[cross], rb[cross]
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:  # pointer jumping until every node points at its root
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    _, compact, sizes = np.unique(parent, return_inverse=True, return_counts=True)
    index[mask] = compact
    return index, sizes


def center_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, col) centre of mass of a non-negative image."""
    img = image.astype(np.float64)
    total = img.sum()
    if total <= 0:
        raise NoDigit("no ink to take the centre of mass of")
    rows = np.arange(img.shape[0]) @ img.sum(axis=1) / total
    cols = np.arange(img.shape[1]) @ img.sum(axis=0) / total
    return float(rows), float(cols)


# ------------------------------------------------------------------------------------ the pipeline
def _noise_sigma(values: np.ndarray) -> float:
    """Robust standard deviation (scaled median absolute deviation)."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def _remove_background(g: np.ndarray) -> np.ndarray:
    """Subtract a smooth background (ink is bright here). Fit once on what a rough Otsu calls
    background, then again on pixels within 3 sigma of that surface, so that faint ink the rough
    threshold missed does not bend the surface."""
    span = max(float(np.ptp(g)), 1e-6)
    background = (g - g.min()) / span <= _otsu((g - g.min()) / span)
    residual = g - _background_surface(g, background)
    sigma = _noise_sigma(residual[background])
    background = residual <= 3 * sigma + 1e-3
    return np.maximum(g - _background_surface(g, background), 0)


def _background_surface(g: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Least-squares quadratic surface through the background pixels: removes gradients and uneven
    lighting that a single global threshold cannot."""
    h, w = g.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy / max(h - 1, 1) - 0.5, xx / max(w - 1, 1) - 0.5
    basis = np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy], axis=-1)
    rows = basis[background]
    if len(rows) < 12:
        return np.full_like(g, float(np.median(g)))
    step = max(1, len(rows) // 2000)  # a subsample fits six numbers just as well
    a = rows[::step].astype(np.float64)
    b = g[background][::step].astype(np.float64)
    # Normal equations (6x6, slightly ridged): lstsq's SVD is needlessly slow for this.
    coef = np.linalg.solve(a.T @ a + 1e-6 * len(a) * np.eye(6), a.T @ b)
    return (basis @ coef.astype(np.float32)).astype(np.float32)


def ink_map(
    image: str | os.PathLike | Image.Image | np.ndarray,
    *,
    denoise: bool = True,
    keep_fraction: float = 0.1,
    edge_fraction: float = 0.35,
) -> tuple[np.ndarray, float]:
    """Cleaned ink of an image -> (float32 map in [0, 1], ink bright and background exactly 0, scale).

    The map is at the working resolution: original size times `scale` (long side 48..160).
    Components smaller than `keep_fraction` of the largest are dropped as noise, and so are those
    touching the image edge and smaller than `edge_fraction` of it (fragments of neighbouring
    characters in a tight crop; pass 0 for an image whose characters may touch its edge).
    """
    g = load_image(image)
    h, w = g.shape
    if h * w < 4 or min(h, w) < 2:
        raise NoDigit(f"image too small ({w}x{h} px); a digit needs at least 2x2")
    contrast = float(g.max() - g.min())
    if contrast < MIN_CONTRAST:
        raise NoDigit(f"blank image: contrast {contrast:.3f} < {MIN_CONTRAST}")

    long_side = max(h, w)
    scale = 1.0
    if long_side > WORK_MAX or long_side < WORK_MIN:
        scale = (WORK_MAX if long_side > WORK_MAX else WORK_MIN) / long_side
        method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        g = _resize(g, max(2, round(w * scale)), max(2, round(h * scale)), method)

    border = np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]])
    if np.median(border) > g.mean():  # light background: make the ink the bright part
        g = 1.0 - g
    g = _remove_background(g)
    top = float(g.max())
    if top < MIN_CONTRAST:
        raise NoDigit(f"blank image: no ink stands out from the background (contrast {top:.3f})")
    g = g / top
    threshold = _otsu(g)
    mask = g > threshold

    if denoise:
        width = _stroke_width(mask)
        ink_fraction = float(mask.mean())
        # Random noise is nearly all edge (stroke width ~ 2) and covers much of the image.
        if ink_fraction > 0.2 and width < 2.6:
            raise NoDigit(f"looks like noise, not a digit ({ink_fraction:.0%} of pixels, stroke ~{width:.1f} px)")
        # Captcha noise can be darker than the digit (the digit's ink is semi-transparent, the dots
        # and lines are not), and then Otsu separates noise from digit+background. So work on
        # everything clearly above the background noise: open with the widest square (up to 5 px)
        # that still keeps 3/4 of the ink (noise lines and dots are thinner than strokes and a small
        # share of the ink), then put the threshold halfway up to the typical remaining ink level,
        # which the digit dominates by area.
        low = max(min(6 * _noise_sigma(g[g <= threshold]), 0.5 * threshold), 0.02)
        half_ink = 0.5 * float(np.median(g[g > low]))
        base = int((g > half_ink).sum())
        opened = g
        for k in range(2, 6):
            trial = _opening(g, k)
            if (trial > half_ink).sum() < 0.75 * base or not (trial > low).any():
                break
            opened = trial
        threshold = 0.5 * float(np.median(opened[opened > low]))
        mask = opened > threshold
        width = _stroke_width(mask)
        labels, sizes = label_components(mask)
        if len(sizes) == 0:
            raise NoDigit("no ink left after removing noise")
        largest = int(sizes.max())
        if largest < max(12, 1.5 * width * width):
            hint = f"; the image was shrunk {1 / scale:.0f}x for speed, crop it closer to the digit" if scale < 1 else ""
            raise NoDigit(f"only specks of noise (largest blob {largest} px), no digit-sized stroke{hint}")
        keep = sizes >= max(keep_fraction * largest, 1.5 * width * width)
        if edge_fraction > 0:
            edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
            edge_labels = edge_labels[edge_labels >= 0]
            keep[edge_labels] &= sizes[edge_labels] >= edge_fraction * largest
        keep[int(np.argmax(sizes))] = True
        mask = (labels >= 0) & keep[np.maximum(labels, 0)]
        core = mask
        mask = _dilate3(mask)  # keep the antialiased rim of the kept strokes
    elif not mask.any():
        raise NoDigit("no ink found")
    else:
        core = mask

    # Background exactly 0: drop everything under half the threshold; stretch so that most stroke
    # pixels saturate, as in MNIST (white cores, grey rims), whatever darker noise lies on them.
    floor = 0.5 * threshold
    level = float(np.percentile(g[core], 60))
    out = np.clip((g - floor) / max(level - floor, 1e-6), 0, 1) * mask
    if not out.any():
        raise NoDigit("no ink left after thresholding")
    return out.astype(np.float32), scale


def _fit_and_centre(ink: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    s = BOX_SIZE / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = np.clip(_resize(crop, nw, nh, Image.Resampling.LANCZOS), 0, 1)
    small[small < 1 / 255] = 0  # Lanczos ringing leaves a faint halo; MNIST's background is exactly 0
    if not small.any():
        raise NoDigit("digit vanished when scaled to 20x20")
    cy, cx = center_of_mass(small)
    centre = MNIST_SIZE // 2
    oy = int(np.clip(round(centre - cy), 0, MNIST_SIZE - nh))
    ox = int(np.clip(round(centre - cx), 0, MNIST_SIZE - nw))
    field = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    field[oy : oy + nh, ox : ox + nw] = small
    return np.round(field * 255).astype(np.uint8)


def to_mnist(image: str | os.PathLike | Image.Image | np.ndarray, *, denoise: bool = True) -> np.ndarray:
    """One digit image (path, PIL image or array, any mode/size/polarity) -> uint8 (28, 28) in MNIST
    style: white digit on black, fitted into 20x20, centre of mass at (14, 14). Raises NoDigit."""
    gray = load_image(image)
    ink, scale = ink_map(gray, denoise=denoise)
    if scale < 1:
        # Shrunk for speed: if the digit is small within a big picture, look again at full detail.
        rows = np.flatnonzero(ink.any(axis=1)) / scale
        cols = np.flatnonzero(ink.any(axis=0)) / scale
        h, w = gray.shape
        my, mx = 0.25 * (rows[-1] - rows[0]) + 2 / scale, 0.25 * (cols[-1] - cols[0]) + 2 / scale
        y0, y1 = int(max(rows[0] - my, 0)), int(min(rows[-1] + my, h))
        x0, x1 = int(max(cols[0] - mx, 0)), int(min(cols[-1] + mx, w))
        if (y1 - y0) < 0.6 * h and (x1 - x0) < 0.6 * w:
            try:
                ink, _ = ink_map(gray[y0:y1, x0:x1], denoise=denoise)
            except NoDigit:
                pass  # keep the coarse result
    return _fit_and_centre(ink)


def to_mnist_batch(images: Iterable[str | os.PathLike | Image.Image | np.ndarray], *, denoise: bool = True) -> np.ndarray:
    """Many digit images -> uint8 (N, 28, 28). A bad one raises NoDigit naming its index."""
    out = []
    for i, image in enumerate(images):
        try:
            out.append(to_mnist(image, denoise=denoise))
        except NoDigit as err:
            raise NoDigit(f"image {i}: {err}") from err
    return np.stack(out) if out else np.zeros((0, MNIST_SIZE, MNIST_SIZE), dtype=np.uint8)
