"""Any picture of one digit -> a 28x28 uint8 image made the way MNIST's were.

MNIST digits are white strokes on black, size-normalised (aspect kept) into a 20x20 box with
antialiasing, then placed in a 28x28 field so that their centre of mass is at the centre. A digit cut
from a captcha is instead dark or coloured ink on a light, textured background, crossed by noise
lines and dots, at any size and in any image mode. `to_mnist` bridges the two:

1. `load_image` (parity.codes.grayscale): any mode / dtype -> float gray in [0, 1] (transparent
   pixels become background); files read in bounded time and memory (parity.codes.imagefile), anything
   over 2048 px box-filtered down first.
2. Work at a bounded scale (long side 48..160 px) so filter sizes mean the same everywhere.
3. Polarity: the border pixels are background; if it is lighter than the image, invert so ink is bright.
4. Remove smooth background (gradients, uneven light) with a robust quadratic surface fit.
5. Denoise: a grey opening, as wide as the strokes allow, erases noise lines and dots thinner than
   them; the threshold is set on what remains (captcha noise is often darker than the digit), and
   connected components that are specks, or neighbour fragments at the crop edge, are dropped.
   Style steps (parity.codes.cleanup; to_mnist's `cleanup`, not used for segmenting whole codes), each
   only when its test triggers: a lattice of thin grid lines opened away before the threshold, halftone
   dots on a lattice averaged into strokes, hollow (outline) glyphs' bodies filled, straight lines crossing
   the whole picture (no wider than the strokes) cut out where they run alone, thin curves entering at the
   border cut out.
6. Crop to the ink, fit into 20x20 (Lanczos, like MNIST's antialiasing), centre the mass at (14, 14).

Speed: a small digit takes about 1 ms, most of it in a few dozen NumPy calls on a few thousand pixels, so
the steps are written to spend little per call: numpy's median, percentile and histogram without their
overhead (parity.codes.quick_stats), the grey opening, erosion count and dilation as slices, the surface
fit's basis made once per shape, the gray image read once. Each is the same arithmetic as the plain
NumPy/SciPy call it replaces, so the output is the same to the bit (tests/test_fast_reading.py checks it
against a frozen copy of the plain version).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage

from parity.codes import cleanup as cleanup_steps
from parity.codes.grayscale import MIN_CONTRAST, NoDigit, load_image
from parity.codes.quick_stats import median, percentile, unit_histogram

MNIST_SIZE = 28
BOX_SIZE = 20  # MNIST's size-normalisation box
WORK_MIN, WORK_MAX = 48, 160  # working resolution (long side) for the clean-up
EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


# ------------------------------------------------------------------------------- small primitives
def _resize(g: np.ndarray, width: int, height: int, resample: Image.Resampling) -> np.ndarray:
    out = Image.fromarray(np.ascontiguousarray(g, dtype=np.float32)).resize((width, height), resample)
    return np.asarray(out, dtype=np.float32)


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold for values in [0, 1]."""
    hist, edges = unit_histogram(values, bins=64)
    p = hist / max(hist.sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m0[-1] * w0 - m0) ** 2 / (w0 * (1 - w0))
    between[~np.isfinite(between)] = -1
    return float(edges[int(np.argmax(between)) + 1])


def _opening(g: np.ndarray, k: int) -> np.ndarray:
    """Grey opening with a k x k square: removes bright structures thinner than k (noise lines, dots).
    The erosion's window is [i, i+k) and the dilation's (i-k, i], mirror images, so it is an opening
    even when k is even; edges repeat the border pixel. Exactly
    ndimage.grey_opening(g, size=(k, k), origin=-(k // 2), mode="nearest"), done as running minima and
    maxima along each axis: minima and maxima involve no rounding, and for k <= 5 on a small image a few
    whole-array NumPy calls cost far less than scipy's per-call set-up."""
    eroded = _running(_running(g, k, 0, np.minimum, ahead=True), k, 1, np.minimum, ahead=True)
    return _running(_running(eroded, k, 0, np.maximum, ahead=False), k, 1, np.maximum, ahead=False)


def _running(g: np.ndarray, k: int, axis: int, pick, ahead: bool) -> np.ndarray:
    """pick (np.minimum / np.maximum) over a window of k along `axis`: g[i .. i+k-1] if `ahead`, else
    g[i-k+1 .. i]; the window is cut at the image's edge, which is what repeating the edge pixel gives."""
    out = g.copy()
    n = g.shape[axis]
    for t in range(1, min(k, n)):
        near, far = (slice(None, n - t), slice(t, None)) if ahead else (slice(t, None), slice(None, n - t))
        dst = out[near] if axis == 0 else out[:, near]
        pick(dst, g[far] if axis == 0 else g[:, far], out=dst)
    return out


def _stroke_width(mask: np.ndarray) -> float:
    """About 2 * area / boundary: a stroke of length L and width w has area L*w and 2L edge pixels."""
    area = int(mask.sum())
    if area == 0:
        return 0.0
    # The 4-neighbour interior (ndimage.binary_erosion's default, off-image pixels background), counted with
    # five slices: a pixel on the image's edge has an off-image neighbour, so only inner pixels can count.
    inner = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    boundary = area - int(np.count_nonzero(inner))
    return 2.0 * area / max(boundary, 1)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """ndimage.binary_dilation(mask, structure=EIGHT_NEIGHBOURS): each pixel or-ed with its 8 neighbours
    (off-image pixels are False), as nine shifted slices."""
    out = mask.copy()
    h, w = mask.shape
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                dst = out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
                dst |= mask[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    return out


# ------------------------------------------------------------------------------------ the pipeline
def _noise_sigma(values: np.ndarray) -> float:
    """Robust standard deviation (scaled median absolute deviation)."""
    return 1.4826 * float(median(np.abs(values - median(values))))


def _remove_background(g: np.ndarray) -> np.ndarray:
    """Subtract a smooth background (ink is bright here). Fit once on what a rough Otsu calls
    background, then again on pixels within 3 sigma of that surface, so that faint ink the rough
    threshold missed does not bend the surface."""
    span = max(float(np.ptp(g)), 1e-6)
    unit = (g - g.min()) / span
    background = unit <= _otsu(unit)
    residual = g - _background_surface(g, background)
    sigma = _noise_sigma(residual[background])
    background = residual <= 3 * sigma + 1e-3
    return np.maximum(g - _background_surface(g, background), 0)


@lru_cache(maxsize=32)  # at most 32 x 160 x 160 x 24 bytes; the shapes of one batch of crops repeat
def _quadratic_basis(h: int, w: int) -> np.ndarray:
    """float32 (h, w, 6): 1, x, y, x*x, x*y, y*y on centred unit coordinates, made once per shape (read-only:
    it is shared). The coordinates are those of np.mgrid[0:h, 0:w].astype(np.float32) / (side - 1) - 0.5 and
    the products the same float32 products, computed once per row and column instead of per pixel."""
    y = np.arange(h, dtype=np.float32) / max(h - 1, 1) - 0.5
    x = np.arange(w, dtype=np.float32) / max(w - 1, 1) - 0.5
    basis = np.empty((h, w, 6), dtype=np.float32)
    basis[..., 0] = 1
    basis[..., 1] = x
    basis[..., 2] = y[:, None]
    basis[..., 3] = x * x
    basis[..., 4] = x * y[:, None]
    basis[..., 5] = (y * y)[:, None]
    basis.setflags(write=False)
    return basis


def _background_surface(g: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Least-squares quadratic surface through the background pixels: removes gradients and uneven
    lighting that a single global threshold cannot."""
    basis = _quadratic_basis(*g.shape)
    where = np.flatnonzero(background)  # the background pixels in row-major order, as basis[background] has them
    if len(where) < 12:
        return np.full_like(g, float(median(g)))
    step = max(1, len(where) // 2000)  # a subsample fits six numbers just as well
    where = where[::step]
    a = np.take(basis.reshape(-1, 6), where, axis=0).astype(np.float64)  # np.take: the same rows, faster than [where]
    b = np.take(g.reshape(-1), where).astype(np.float64)
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
    return gray_ink_map(load_image(image), denoise=denoise, keep_fraction=keep_fraction, edge_fraction=edge_fraction)


def gray_ink_map(g: np.ndarray, *, denoise: bool = True, keep_fraction: float = 0.1,
                 edge_fraction: float = 0.35, cleanup: bool = False,
                 trace: list[str] | None = None) -> tuple[np.ndarray, float]:
    """`ink_map` of what `load_image` gave (float32 gray in [0, 1]), without reading it again: load_image
    gives such an array back unchanged, so callers that hold one skip a copy and a scan.

    `cleanup` (with `denoise`) adds the style steps of parity.codes.cleanup for one digit: grid lines opened
    away, halftone dots closed into strokes, hollow (outline) glyphs filled, crossing lines and thin crossing
    curves cut out. Each runs only where its test
    triggers and appends its name to `trace` when it does; without a trigger the output is the same to the bit."""
    g = np.ascontiguousarray(g)  # what load_image gives a view (a crop, a channel) as: sums run in the same order
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
    if median(border) > g.mean():  # light background: make the ink the bright part
        g = 1.0 - g
    g = _remove_background(g)
    top = float(g.max())
    if top < MIN_CONTRAST:
        raise NoDigit(f"blank image: no ink stands out from the background (contrast {top:.3f})")
    g = g / top
    return _clean(g, scale, denoise, keep_fraction, edge_fraction, cleanup, trace)


def _clean(g: np.ndarray, scale: float, denoise: bool, keep_fraction: float, edge_fraction: float,
           cleanup: bool, trace: list[str] | None) -> tuple[np.ndarray, float]:
    """The ink of g (ink bright, max 1, background removed): threshold, denoise, the cleanup steps."""
    if denoise and cleanup and (clean := cleanup_steps.remove_grid(g)) is not None:
        _note(trace, "grid")  # a lattice of thin lines across the picture: opened away before the threshold
        g = clean
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
        half_ink = 0.5 * float(median(g[g > low]))
        base = int((g > half_ink).sum())
        opened = g
        for k in range(2, 6):
            trial = _opening(g, k)
            if (trial > half_ink).sum() < 0.75 * base or not (trial > low).any():
                break
            opened = trial
        threshold = 0.5 * float(median(opened[opened > low]))
        mask = opened > threshold
        if cleanup and (cut := cleanup_steps.remove_crossing_lines(mask, g > threshold)) is not None:
            _note(trace, "crossing_lines")  # straight lines across the picture, no wider than the strokes: cut out
            mask = cut
        if cleanup and (cut := cleanup_steps.remove_crossing_curves(mask)) is not None:
            _note(trace, "crossing_curves")  # thin curves entering at the border: cut out
            mask = cut
        width = _stroke_width(mask)
        labels, n_components = ndimage.label(mask, structure=EIGHT_NEIGHBOURS)  # 1..n, 0 off the mask
        sizes = np.bincount(labels.ravel(), minlength=n_components + 1)[1:]
        if n_components == 0:
            raise NoDigit("no ink left after removing noise")
        if cleanup and (period := cleanup_steps.lattice_period(labels, sizes)):
            _note(trace, "halftone")  # dots on a lattice: close them into strokes, then clean that
            return _clean(cleanup_steps.close_lattice(g, period), scale, denoise, keep_fraction, edge_fraction,
                          False, trace)
        largest = int(sizes.max())
        if largest < max(12, 1.5 * width * width):
            hint = f"; the image was shrunk {1 / scale:.0f}x for speed, crop it closer to the digit" if scale < 1 else ""
            raise NoDigit(f"only specks of noise (largest blob {largest} px), no digit-sized stroke{hint}")
        keep = sizes >= max(keep_fraction * largest, 1.5 * width * width)
        if edge_fraction > 0:
            edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
            edge = edge[edge > 0] - 1
            keep[edge] &= sizes[edge] >= edge_fraction * largest
        keep[int(np.argmax(sizes))] = True
        mask = np.concatenate([[False], keep])[labels]
        core = mask
        if cleanup and (filled := cleanup_steps.fill_hollow(core, width)) is not None:
            _note(trace, "outline")  # only the contour was drawn: fill the glyph's body, keep its counters
            g = np.where(filled & ~core, 1.0, g).astype(np.float32)
            core = filled
            mask = filled
        mask = _dilate(mask)  # keep the antialiased rim of the kept strokes
    elif not mask.any():
        raise NoDigit("no ink found")
    else:
        core = mask

    # Background exactly 0: drop everything under half the threshold; stretch so that most stroke
    # pixels saturate, as in MNIST (white cores, grey rims), whatever darker noise lies on them.
    floor = 0.5 * threshold
    level = float(percentile(g[core], 60))
    out = np.clip((g - floor) / max(level - floor, 1e-6), 0, 1) * mask
    if not out.any():
        raise NoDigit("no ink left after thresholding")
    return out.astype(np.float32), scale


def _note(trace: list[str] | None, step: str) -> None:
    if trace is not None:
        trace.append(step)


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
    # ndimage.center_of_mass's own arithmetic (float32 total, float64 weighted sums), without its overhead
    total = small.sum()
    cy = (small * np.arange(nh, dtype=float)[:, None]).sum() / total
    cx = (small * np.arange(nw, dtype=float)[None, :]).sum() / total
    centre = MNIST_SIZE // 2
    oy = int(np.clip(round(centre - cy), 0, MNIST_SIZE - nh))
    ox = int(np.clip(round(centre - cx), 0, MNIST_SIZE - nw))
    field = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    field[oy : oy + nh, ox : ox + nw] = small
    return np.round(field * 255).astype(np.uint8)


def to_mnist(image: str | os.PathLike | Image.Image | np.ndarray, *, denoise: bool = True, cleanup: bool = True,
             trace: list[str] | None = None) -> np.ndarray:
    """One digit image (path, PIL image or array, any mode/size/polarity) -> uint8 (28, 28) in MNIST
    style: white digit on black, fitted into 20x20, centre of mass at (14, 14). Raises NoDigit.
    `cleanup=False` leaves out the style steps (parity.codes.cleanup); `trace` collects the names of those that ran."""
    gray = load_image(image)
    ink, scale = gray_ink_map(gray, denoise=denoise, cleanup=cleanup, trace=trace)
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
                ink, _ = gray_ink_map(gray[y0:y1, x0:x1], denoise=denoise, cleanup=cleanup, trace=trace)
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
