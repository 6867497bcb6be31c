"""Style clean-up steps of the digit normaliser (parity.codes.normalize), each run only when its test triggers.

- `lattice_period` / `close_lattice`: a halftone glyph is many blobs of one size at one spacing; the speck
  removal would drop most of them. Found, the gray image is averaged over squares about one spacing wide
  (twice), which turns each dot back into its cell's tone, so the dots merge into strokes before the
  threshold is set again.
- `fill_hollow`: an outline glyph is its contour alone, two thin parallel lines the reader takes for loops.
  A hole in the ink is the glyph's body (to fill) if it lies one thin ring in from the outside, is much
  wider than the ring and long like a stroke; a counter of 0/6/8/9 lies inside the body (outline glyph)
  or is compact and bounded by a thick stroke (solid glyph), and stays empty.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FOUR_NEIGHBOURS = ndimage.generate_binary_structure(2, 1)

# lattice (halftone) test
LATTICE_MIN_BLOBS = 12  # a halftone digit has dozens of dots
LATTICE_MAX_BLOBS = 600  # more is texture or noise (and the pairwise distances would cost)
LATTICE_SIZE_RANGE = (0.4, 2.5)  # a lattice blob's area, in medians of the blobs' areas
LATTICE_INK_SHARE = 0.6  # of the ink in lattice-like blobs (a solid digit among specks has little)
LATTICE_REGULAR = 0.75  # share of blobs whose nearest neighbour lies within 0.8..1.25 of the median spacing
LATTICE_SEPARATION = 1.3  # spacing at least this many blob diameters' worth (sqrt of the area)
LATTICE_CLOSE = 1.1  # the averaging square's side, in spacings

# hollow (outline) test
HOLLOW_MAX_RING = 0.08  # the ink's stroke width, at most this share of the glyph's longer side
HOLLOW_MIN_BODY = 2.5  # a body hole at least this many ring widths wide
HOLLOW_MIN_LENGTH = 5.0  # and at least this many of its widths long (area / width^2)


def lattice_period(labels: np.ndarray, sizes: np.ndarray) -> float | None:
    """The spacing of a lattice of similar blobs (components `labels` 1..n, `sizes` their areas) that holds
    most of the ink, or None."""
    n = len(sizes)
    if n < LATTICE_MIN_BLOBS or n > LATTICE_MAX_BLOBS:
        return None
    typical = float(np.median(sizes))
    similar = (sizes >= LATTICE_SIZE_RANGE[0] * typical) & (sizes <= LATTICE_SIZE_RANGE[1] * typical)
    if similar.sum() < LATTICE_MIN_BLOBS or sizes[similar].sum() < LATTICE_INK_SHARE * sizes.sum():
        return None
    flat = labels.ravel()
    yy, xx = np.divmod(np.arange(flat.size), labels.shape[1])
    count = np.bincount(flat, minlength=n + 1)[1:].astype(np.float64)
    cy = np.bincount(flat, weights=yy, minlength=n + 1)[1:] / count
    cx = np.bincount(flat, weights=xx, minlength=n + 1)[1:] / count
    pts = np.stack([cy[similar], cx[similar]], axis=1)
    d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    nearest = np.sqrt(d2.min(axis=1))
    spacing = float(np.median(nearest))
    regular = float(np.mean((nearest >= 0.8 * spacing) & (nearest <= 1.25 * spacing)))
    if regular < LATTICE_REGULAR or spacing < max(2.5, LATTICE_SEPARATION * np.sqrt(typical)):
        return None
    return spacing


def close_lattice(g: np.ndarray, spacing: float) -> np.ndarray:
    """g averaged twice over a square one spacing wide (a triangle filter): each lattice cell's dot becomes
    its cell's tone, which is how dark the glyph is there, so the dots merge into strokes; scaled to max 1."""
    k = max(2, int(round(LATTICE_CLOSE * spacing)))
    out = ndimage.uniform_filter(g.astype(np.float64), size=k, mode="constant")
    out = ndimage.uniform_filter(out, size=k, mode="constant")
    return (out / max(float(out.max()), 1e-6)).astype(np.float32)


def hollow_holes(core: np.ndarray, width: float) -> tuple[list[dict], np.ndarray | None]:
    """The holes of the ink mask `core` with what `fill_hollow` decides by (for the tests and tuning)."""
    rows, cols = np.flatnonzero(core.any(axis=1)), np.flatnonzero(core.any(axis=0))
    if not len(rows):
        return [], None
    side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    labels, n = ndimage.label(~core, structure=FOUR_NEIGHBOURS)
    if n < 2:
        return [], labels
    outside = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = outside[outside > 0]
    reach_px = int(np.ceil(width)) + 1
    near_outside = ndimage.maximum_filter(np.isin(labels, outside), size=2 * reach_px + 1)
    inner = ~core[1:-1, 1:-1]
    edge = np.zeros_like(core)  # hole pixels with an ink 4-neighbour
    edge[1:-1, 1:-1] = inner & (core[:-2, 1:-1] | core[2:, 1:-1] | core[1:-1, :-2] | core[1:-1, 2:])
    area = np.bincount(labels.ravel(), minlength=n + 1)
    boundary = np.bincount(labels[edge], minlength=n + 1)
    touching = np.bincount(labels[near_outside], minlength=n + 1) > 0
    holes = []
    for label in range(1, n + 1):
        if label in outside:
            continue
        thickness = 2.0 * area[label] / max(boundary[label], 1)
        holes.append({"label": label, "area": int(area[label]), "thickness": thickness,
                      "length": area[label] / max(thickness, 1e-6) ** 2, "near_outside": bool(touching[label]),
                      "ring": width / side, "body": thickness / max(width, 1e-6)})
    return holes, labels


def fill_hollow(core: np.ndarray, width: float) -> np.ndarray | None:
    """`core` with the bodies of a hollow (outline) glyph filled, or None if it has none."""
    rows, cols = np.flatnonzero(core.any(axis=1)), np.flatnonzero(core.any(axis=0))
    if not len(rows) or width > HOLLOW_MAX_RING * (max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1):
        return None  # strokes too thick for a ring: the usual case, decided before any labelling
    holes, labels = hollow_holes(core, width)
    fill = [h["label"] for h in holes if h["ring"] <= HOLLOW_MAX_RING and h["near_outside"]
            and h["body"] >= HOLLOW_MIN_BODY and h["length"] >= HOLLOW_MIN_LENGTH]
    if not fill:
        return None
    return core | np.isin(labels, fill)
