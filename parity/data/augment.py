"""Seeded, vectorised data augmentation of MNIST in NumPy, so both frameworks train on identical arrays.

Each image gets a random affine map about its centre (rotation, isotropic scale, x-shear, translation)
and, sometimes, a thicker or thinner stroke (a grey-level max or min filter). The affine map is fused with
the 28 -> 32 resize of `parity.data.preprocess`: every output pixel is mapped straight to the 28x28 source and
read there with one bilinear interpolation, instead of warping and then resizing (two blurs).

Geometry (x = column, y = row, both in source pixels, pixel centres at integers, image centre c):

    output pixel o -> d = (o + 0.5) * in_size / out_size - 0.5        the resize's half-pixel convention
    source point   p = c + M (d - c - t),   M = (s R(rotation) Sh(shear))^-1

so the digit is rotated, sheared, scaled about c and then moved by t (in source pixels).

Borders. `to_model_input` clamps source coordinates into [0, in_size - 1] (edge replicate), which for the
identity reads up to 1/16 px beyond the edge. Augmentation must show black outside the source instead. Both
hold with one continuous rule along each axis: a coordinate up to half a pixel beyond the edge is clamped
onto it (so the identity is exactly the resize), further out the edge pixel fades linearly to 0 over one
pixel (as ordinary bilinear sampling against a black border does), and from 1.5 px out it reads 0:

    x' = clip(x, -1.5, -0.5) + clip(x, 0, W - 1) + clip(x, W - 0.5, W + 0.5) - (W - 1)  in [-1, W]

and x' is sampled bilinearly from the image zero-padded by one pixel before and two after.

Determinism. All per-image parameters come from one `rng.random((n, 7))` draw, so image i's transform
depends only on row i: `augmented_epoch` gives the same bytes for any `chunk`. Optional pixel noise is drawn
after the parameters, block by block in image order, from the same generator.

NumPy only: never import torch or TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.data.preprocess import MODEL_SIZE

# Stroke operations (`AugmentParams.stroke`): grey-level max (thicken) or min (thin) filters on the uint8 source.
STROKE_NONE, THICKEN_2, THICKEN_3, THIN_2, THIN_3 = range(5)
# What a stroke change draws from, equally likely. A 3x3 min filter removes about 2 px of width and wipes out
# much of a typical MNIST stroke (2-3 px), so thinning is 2x2 only, and thickening is 2x2 twice as often as 3x3.
STROKE_CHOICES = (THICKEN_2, THICKEN_2, THICKEN_3, THIN_2, THIN_2, THIN_2)
THIN_MIN_INK = 0.3  # a min filter leaving less of the ink than this is skipped (about 4% of MNIST digits under 2x2)

_BLOCK = 128  # images per inner step: every temporary is then (128, 32, 32) float32 = 512 KiB, cache-resident
_N_UNIFORMS = 7  # rotation, scale, shear, tx, ty, stroke yes/no, stroke kind


@dataclass(frozen=True)
class AugmentConfig:
    rotation_deg: float = 8.0  # uniform in [-r, r]
    scale: tuple[float, float] = (0.9, 1.1)  # isotropic, uniform in [lo, hi]
    shear_deg: float = 6.0  # x-shear (slant) angle, uniform in [-a, a]
    translate_px: float = 1.5  # per axis, uniform in [-t, t], in source (28-px) units
    stroke_prob: float = 0.2  # chance of thickening or thinning the stroke (max / min filter, see STROKE_CHOICES)
    noise_std: float = 0.0  # optional gaussian pixel noise (in [0, 1] units), clipped

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise ValueError(f"scale must be a range 0 < lo <= hi, got {self.scale}")
        if not 0 <= self.rotation_deg <= 180 or not 0 <= self.shear_deg < 90:
            raise ValueError(f"rotation_deg must be in [0, 180] and shear_deg in [0, 90), "
                             f"got {self.rotation_deg} and {self.shear_deg}")
        if self.translate_px < 0 or self.noise_std < 0:
            raise ValueError(f"translate_px and noise_std must be >= 0, got {self.translate_px} and {self.noise_std}")
        if not 0 <= self.stroke_prob <= 1:
            raise ValueError(f"stroke_prob must be in [0, 1], got {self.stroke_prob}")


IDENTITY = AugmentConfig(rotation_deg=0.0, scale=(1.0, 1.0), shear_deg=0.0, translate_px=0.0, stroke_prob=0.0)


@dataclass(frozen=True)
class AugmentParams:
    """One transform per image: (N,) arrays, `translate` (N, 2) as (dx, dy); `stroke` codes STROKE_*."""

    rotation_deg: np.ndarray
    scale: np.ndarray
    shear_deg: np.ndarray
    translate: np.ndarray
    stroke: np.ndarray

    def __len__(self) -> int:
        return len(self.rotation_deg)

    def __getitem__(self, index: slice) -> AugmentParams:
        return AugmentParams(self.rotation_deg[index], self.scale[index], self.shear_deg[index],
                             self.translate[index], self.stroke[index])

    @classmethod
    def fixed(cls, n: int, rotation_deg: float = 0.0, scale: float = 1.0, shear_deg: float = 0.0,
              translate: tuple[float, float] = (0.0, 0.0), stroke: int = STROKE_NONE) -> AugmentParams:
        """The same transform for all n images (for tests and demonstrations)."""
        full = lambda value: np.full(n, value, dtype=np.float64)  # noqa: E731
        return cls(full(rotation_deg), full(scale), full(shear_deg),
                   np.tile(np.asarray(translate, dtype=np.float64), (n, 1)), np.full(n, stroke, dtype=np.int8))


def sample_params(n: int, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> AugmentParams:
    """n random transforms, from a single (n, 7) uniform draw (so row i is image i's, whatever the batching)."""
    u = rng.random((n, _N_UNIFORMS))
    lo, hi = config.scale
    stroke = np.asarray(STROKE_CHOICES, dtype=np.int8)[(u[:, 6] * len(STROKE_CHOICES)).astype(np.intp)]
    stroke[u[:, 5] >= config.stroke_prob] = STROKE_NONE
    return AugmentParams(
        rotation_deg=(2 * u[:, 0] - 1) * config.rotation_deg,
        scale=lo + (hi - lo) * u[:, 1],
        shear_deg=(2 * u[:, 2] - 1) * config.shear_deg,
        translate=(2 * u[:, 3:5] - 1) * config.translate_px,
        stroke=stroke,
    )


def augment_batch(images: np.ndarray, rng: np.random.Generator, config: AugmentConfig = AugmentConfig(),
                  out_size: int = MODEL_SIZE) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, out_size, out_size) in [0, 1]: each image randomly transformed and resized."""
    images = _as_batch(images)
    params = sample_params(len(images), rng, config)
    return warp_batch(images, params, out_size, noise_std=config.noise_std, noise_rng=rng)


def augmented_epoch(images: np.ndarray, seed: int, epoch: int, config: AugmentConfig = AugmentConfig(),
                    chunk: int = 8192) -> np.ndarray:
    """The epoch's augmented copy of `images` (same order); byte-identical for the same (seed, epoch), any chunk.

    Equal to `augment_batch(images, np.random.default_rng([seed, epoch, 1]), config)`, computed `chunk` images
    at a time so the temporaries stay small.
    """
    images = _as_batch(images)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    rng = np.random.default_rng([seed, epoch, 1])
    params = sample_params(len(images), rng, config)
    out = np.empty((len(images), MODEL_SIZE, MODEL_SIZE), dtype=np.float32)
    for start in range(0, len(images), chunk):
        part = slice(start, start + chunk)
        warp_batch(images[part], params[part], MODEL_SIZE, noise_std=config.noise_std, noise_rng=rng, out=out[part])
    return out


def warp_batch(images: np.ndarray, params: AugmentParams, out_size: int = MODEL_SIZE, *, noise_std: float = 0.0,
               noise_rng: np.random.Generator | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Apply given transforms: uint8 (N, H, W) -> float32 (N, out_size, out_size) in [0, 1], written into `out`."""
    images = _as_batch(images)
    n, height, width = images.shape
    if len(params) != n:
        raise ValueError(f"{len(params)} transforms for {n} images")
    if noise_std > 0 and noise_rng is None:
        raise ValueError("noise_std > 0 needs noise_rng")
    if out is None:
        out = np.empty((n, out_size, out_size), dtype=np.float32)
    elif out.shape != (n, out_size, out_size) or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {(n, out_size, out_size)}, got {out.dtype} {out.shape}")
    if n == 0:
        return out

    images, stroke = apply_stroke(images, params.stroke)
    # Per-image source coordinates are separable sums: x[n, i, j] = col_x[n, j] + row_x[n, i] (same for y).
    col_x, row_x, col_y, row_y = _coordinate_terms(params, stroke, height, width, out_size)

    # Source padded with zeros, one pixel before and two after on each axis: a remapped coordinate x' lies
    # in [-1, W], so its floor + 1 (the padded index) is in [0, W + 1] and its right neighbour <= W + 2.
    hp, wp = height + 3, width + 3
    block = min(_BLOCK, n)
    padded = np.zeros((block, hp, wp), dtype=np.float32)
    flat = padded.reshape(-1)
    # The sums of three clips below are x' + (W - 1); their floors need this offset to become padded indices.
    index_offset = np.float32((2 - height) * wp + (2 - width))
    image_base = (np.arange(block, dtype=np.float32) * (hp * wp) + index_offset)[:, None, None]
    shape = (block, out_size, out_size)
    x, y, t1, t2, fx, fy, a, b, c, d = (np.empty(shape, dtype=np.float32) for _ in range(10))
    index = np.empty(shape, dtype=np.intp)
    noise = np.empty(shape, dtype=np.float32) if noise_std > 0 else None

    for start in range(0, n, block):
        m = min(block, n - start)
        sl = slice(start, start + m)
        if m < block:  # the last, short block: views onto the front of every buffer
            x, y, t1, t2, fx, fy, a, b, c, d, index = (buf[:m] for buf in (x, y, t1, t2, fx, fy, a, b, c, d, index))
            image_base = image_base[:m]
            noise = None if noise is None else noise[:m]
        np.divide(images[sl], np.float32(255), out=padded[:m, 1:height + 1, 1:width + 1])

        for coord, frac, col, row, size in ((x, fx, col_x, row_x, width), (y, fy, col_y, row_y, height)):
            np.add(col[sl, None, :], row[sl, :, None], out=coord)
            np.clip(coord, -1.5, -0.5, out=t1)
            np.clip(coord, size - 0.5, size + 0.5, out=t2)
            np.clip(coord, 0, size - 1, out=coord)
            coord += t1
            coord += t2  # = x' + (W - 1) >= W - 2 > 0, so modf's integer part is the floor
            np.modf(coord, out=(frac, coord))

        y *= np.float32(wp)
        x += y
        x += image_base
        index[...] = x  # exact: every index is an integer below 2**24
        np.take(flat, index, out=a, mode="clip")  # never clips: all indices are in range by construction
        np.take(flat[1:], index, out=b, mode="clip")
        np.take(flat[wp:], index, out=c, mode="clip")
        np.take(flat[wp + 1:], index, out=d, mode="clip")

        b -= a  # bilinear as three lerps: along x on the upper and lower rows, then along y
        b *= fx
        a += b
        d -= c
        d *= fx
        c += d
        c -= a
        c *= fy
        a += c
        if noise is not None:
            noise_rng.standard_normal(dtype=np.float32, out=noise)
            noise *= np.float32(noise_std)
            a += noise
        np.clip(a, 0.0, 1.0, out=out[sl])
    return out


def apply_stroke(images: np.ndarray, stroke: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W) with per-image grey-level max/min filters (STROKE_*), and the codes actually applied.

    Filters see a black (0) surround; `images` itself is never modified. Thinning that would keep less than
    THIN_MIN_INK of an image's ink (a thin stroke all but erased) is not done: that image keeps its stroke and
    its code becomes STROKE_NONE. A 2x2 filter's output at (i, j) covers pixels i..i+1, j..j+1, i.e. it is
    centred half a pixel down-right; `_coordinate_terms` reads those images half a pixel up-left to compensate.
    """
    stroke = np.asarray(stroke)
    if not stroke.any():
        return images, stroke
    result, applied = images.copy(), stroke.copy()
    for code, reduce, size in ((THICKEN_2, np.maximum, 2), (THICKEN_3, np.maximum, 3),
                               (THIN_2, np.minimum, 2), (THIN_3, np.minimum, 3)):
        chosen = np.flatnonzero(stroke == code)
        if not len(chosen):
            continue
        filtered = _rank_filter(images[chosen], reduce, size)
        if reduce is np.minimum:
            ink_before = images[chosen].sum(axis=(1, 2), dtype=np.int64)
            keep = filtered.sum(axis=(1, 2), dtype=np.int64) >= THIN_MIN_INK * ink_before
            applied[chosen[~keep]] = STROKE_NONE
            chosen, filtered = chosen[keep], filtered[keep]
        result[chosen] = filtered
    return result, applied


def _rank_filter(images: np.ndarray, reduce: np.ufunc, size: int) -> np.ndarray:
    """size x size max or min filter (zero outside), separable: shifted copies combined with `reduce`."""
    n, height, width = images.shape
    before = 1 if size == 3 else 0
    padded = np.zeros((n, height + size - 1, width + size - 1), dtype=images.dtype)
    padded[:, before:before + height, before:before + width] = images
    rows = padded[:, :, :width].copy()
    for shift in range(1, size):
        reduce(rows, padded[:, :, shift:shift + width], out=rows)
    result = rows[:, :height].copy()
    for shift in range(1, size):
        reduce(result, rows[:, shift:shift + height], out=result)
    return result


def _coordinate_terms(params: AugmentParams, stroke: np.ndarray, height: int, width: int, out_size: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """float32 (N, out_size) column and row terms whose sums are the source coordinates x and y (float64 inside)."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    # Output pixel centres in source units, relative to the source centre (the resize's half-pixel convention).
    gx = (np.arange(out_size) + 0.5) * (width / out_size) - 0.5 - cx
    gy = (np.arange(out_size) + 0.5) * (height / out_size) - 0.5 - cy
    theta = np.deg2rad(params.rotation_deg)
    cos, sin, shear, scale = np.cos(theta), np.sin(theta), np.tan(np.deg2rad(params.shear_deg)), params.scale
    # Forward map A = s R Sh with R = [[cos, -sin], [sin, cos]], Sh = [[1, k], [0, 1]]; M = A^-1:
    m00, m01 = (cos + shear * sin) / scale, (sin - shear * cos) / scale
    m10, m11 = -sin / scale, cos / scale
    # 2x2 stroke filters are centred half a pixel down-right of their index: read them half a pixel up-left.
    half = np.where((stroke == THICKEN_2) | (stroke == THIN_2), 0.5, 0.0)
    dx = gx[None, :] - params.translate[:, 0:1]
    dy = gy[None, :] - params.translate[:, 1:2]
    col_x = m00[:, None] * dx + (cx - half)[:, None]
    row_x = m01[:, None] * dy
    col_y = m10[:, None] * dx + (cy - half)[:, None]
    row_y = m11[:, None] * dy
    return tuple(term.astype(np.float32) for term in (col_x, row_x, col_y, row_y))


def _as_batch(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W) or (H, W), got {images.dtype} {images.shape}")
    return images
