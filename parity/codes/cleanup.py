"""Style clean-up steps of the digit normaliser (parity.codes.normalize), each run only when its test triggers.

- `lattice_period` / `close_lattice`: a halftone glyph is many blobs of one size at one spacing; the speck
  removal would drop most of them. Found, the gray image is averaged over squares about one spacing wide
  (twice), which turns each dot back into its cell's tone, so the dots merge into strokes before the
  threshold is set again.
- `fill_hollow`: an outline glyph is its contour alone, two thin parallel lines the reader takes for loops.
  A hole in the ink is the glyph's body (to fill) if it lies one thin ring in from the outside, is much
  wider than the ring and long like a stroke; a counter of 0/6/8/9 lies inside the body (outline glyph)
  or is compact and bounded by a thick stroke (solid glyph), and stays empty.
- `remove_crossing_lines`: a straight line drawn across the whole picture, about as thick as the strokes, survives
  the noise opening and stays joined to the glyph, so the crop to the ink stretches it (the digit shrinks into a
  star). Two runs of ink on the border joined by a straight path of ink at least 0.7 of the long side, whose ink
  is about one width wide where it runs alone (median of the runs across it), alone at both ends, no wider than
  the strokes left, and under half the ink: that line is cut out where nothing flanks it just beyond its width,
  so the strokes it crosses stay whole. Up to 4 lines; not tried on a crop more than 40% ink (a tight crop).
- `remove_grid`: a lattice of thin lines behind the glyph (two families of parallel lines, as dark as the ink or
  lighter) takes a large share of the ink, so the noise opening stops short of it and the threshold keeps it. It
  crosses the border again and again: at least 10 runs of ink there, nearly all of them one connected piece of
  ink that spans the picture. Found, the gray image is grey-opened with the narrowest square (2..6 px) that leaves
  at most 2 runs of ink on the border, which takes out the lines and keeps the wider strokes, before the threshold.
- `remove_crossing_curves`: thin curves (or lines) drawn across the picture, thinner than the strokes, that the
  noise opening kept. The ink that an opening with a square 0.8 of the stroke width removes comes in pieces; a
  piece that touches the border, reaches 0.3 of the long side, is at most 0.75 of the stroke width wide and at
  least 2.5 stroke widths long is cut out. Only when the ink the opening keeps (the glyph) stays 3 px clear of the
  border: in a tight crop the glyph's own thin ends reach the border.
"""

from __future__ import annotations

from functools import lru_cache

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

# crossing lines test
LINE_MAX_RUNS = 12  # ink runs along the border: more is a grid or texture
LINE_MAX_LINES = 4  # lines cut at most
LINE_MAX_INK = 0.4  # of the image's pixels ink: more is a crop the glyph fills
LINE_MIN_LENGTH = 0.7  # a line from border to border at least this share of the long side
LINE_COVERAGE = 0.95  # of the straight path between two border runs on ink (within a pixel)
LINE_MAX_WIDTH = 1.0  # the line's width at most this share of the strokes left
LINE_MAX_SHARE = 0.5  # and it holds at most this share of the ink
LINE_FREE_ENDS = 1.0  # it runs alone this many of its widths in from the border at both ends

# grid (line lattice) test
GRID_LEVEL = 0.2  # ink here: the gray (ink bright, max 1, background removed) above this
GRID_MIN_RUNS = 10  # runs of ink along the border at least this many: lines cross it again and again
GRID_SPAN = 0.9  # one connected lattice of ink spans this share of both the height and the width
GRID_REACH = 0.75  # and meets this share of the border runs
GRID_MAX_OPEN = 6  # the widest grey opening tried to take the lines out
GRID_LEFT_RUNS = 2  # the lines are gone when at most this many runs of ink are left on the border

# crossing curves test
CURVE_OPEN = 0.8  # the opening's square side, in stroke widths
CURVE_MIN_LENGTH = 0.3  # a curve's piece reaches this share of the long side
CURVE_MAX_WIDTH = 0.75  # a curve's piece at most this share of the stroke width
CURVE_MIN_ELONGATION = 2.5  # and at least this many stroke widths long (a glyph's tail cut by the crop is shorter)
CURVE_MIN_GAP = 3  # px between the thick ink and the border (a tight crop's glyph touches it)


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


@lru_cache(maxsize=64)
def _perimeter(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the image's border pixels, walked once around it (made once per shape)."""
    ys = np.concatenate([np.zeros(w - 1, int), np.arange(h - 1), np.full(w - 1, h - 1), np.arange(h - 1, 0, -1)])
    xs = np.concatenate([np.arange(w - 1), np.full(h - 1, w - 1), np.arange(w - 1, 0, -1), np.zeros(h - 1, int)])
    return ys, xs


def _border_runs(mask: np.ndarray) -> np.ndarray:
    """Centres (y, x) of the runs of ink along the image's border, walked once around it: (runs, 2)."""
    ys, xs = _perimeter(*mask.shape)
    ring = mask[ys, xs]
    start = int(np.argmin(ring))  # walk from a background pixel, so no run wraps around
    if ring[start]:
        return np.zeros((0, 2))  # all ink
    edges = np.flatnonzero(np.diff(np.concatenate([ring[start:], ring[: start + 1]]).view(np.int8)))
    mid = ((edges[::2] + edges[1::2] + 2) // 2 + start) % len(ring)
    return np.stack([ys[mid], xs[mid]], axis=1).astype(np.float64)


def _grow(mask: np.ndarray) -> np.ndarray:
    """mask or-ed with its 8 neighbours (3 x 3 maximum filter, off-image pixels background)."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    rows = out.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def _ink_at(mask: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    yi, xi = np.rint(y).astype(int), np.rint(x).astype(int)
    inside = (yi >= 0) & (yi < mask.shape[0]) & (xi >= 0) & (xi < mask.shape[1])
    out = np.zeros(yi.shape, bool)
    out[inside] = mask[yi[inside], xi[inside]]
    return out


def _width(mask: np.ndarray) -> float:
    """normalize._stroke_width: 2 * area / boundary (4-neighbour interior, off-image pixels background)."""
    inner = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    area = int(mask.sum())
    return 2.0 * area / max(area - int(np.count_nonzero(inner)), 1)


def remove_crossing_lines(mask: np.ndarray, ink: np.ndarray) -> np.ndarray | None:
    """`mask` without the straight lines that cross the image from border to border in `ink` (the ink before the
    opening, where lines are whole), no wider than the glyph's strokes, where they run alone: a line pixel stays
    where ink flanks the line just beyond its width (a stroke it crosses or touches). None if there are none."""
    h, w = ink.shape
    if np.count_nonzero(ink) > LINE_MAX_INK * h * w:
        return None  # a crop filled with ink (a tight code crop): lines cannot be told from strokes there
    out, found, rejected = ink, False, set()
    for _ in range(LINE_MAX_LINES):
        runs = _border_runs(out)
        if len(runs) < 2 or len(runs) > LINE_MAX_RUNS:
            break
        cut = _cut_one_line(out, runs, rejected, max(h, w))
        if cut is None:
            break
        out, found = cut, True
    return mask & out if found else None


def _cut_one_line(ink: np.ndarray, pts: np.ndarray, rejected: set, side: int) -> np.ndarray | None:
    """`ink` without the longest border-to-border line between two of the border runs `pts`, or None."""
    i, j = np.triu_indices(len(pts), 1)
    length = np.hypot(*(pts[j] - pts[i]).T)
    long = np.flatnonzero(length >= LINE_MIN_LENGTH * side)
    if not len(long):
        return None
    i, j, length = i[long], j[long], length[long]
    s = np.linspace(0, 1, side)[None, :, None]
    axes = pts[i, None, :] + s * (pts[j, None, :] - pts[i, None, :])  # (pairs, samples, 2)
    covered = np.flatnonzero(_ink_at(_grow(ink), axes[..., 0], axes[..., 1]).mean(axis=1) >= LINE_COVERAGE)
    for k in covered[np.argsort(-length[covered])]:
        a, b, axis = pts[i[k]], pts[j[k]], axes[k]
        key = (*a, *b)
        if key in rejected:
            continue
        rejected.add(key)
        unit = (b - a) / length[k]
        normal = np.array([-unit[1], unit[0]])
        reach = side // 6 + 2
        offsets = np.arange(-reach, reach + 1)
        prof = _ink_at(ink, axis[:, None, 0] + offsets * normal[0], axis[:, None, 1] + offsets * normal[1])
        ahead, behind = np.cumprod(prof[:, reach:], axis=1).sum(1), np.cumprod(prof[:, reach::-1], axis=1).sum(1)
        on = prof[:, reach]
        if on.sum() < 2:
            continue
        run = (ahead + behind - 1)[on]
        t = float(np.median(run))  # the line's width, where it runs alone
        alone = run <= t + 1  # there the run's middle is the line's: fit the axis's offset to them
        ends = np.minimum(s[0, on, 0], 1 - s[0, on, 0]) * length[k] <= LINE_FREE_ENDS * t
        if alone.sum() < 2 or not alone[ends].all():
            continue  # it meets other ink where it leaves the picture: a stroke of a glyph the crop cuts tight
        tilt, shift = np.polyfit(s[0, on, 0][alone], (ahead - behind)[on][alone] / 2, 1)
        yy, xx = np.nonzero(ink)
        along = ((yy - a[0]) * unit[0] + (xx - a[1]) * unit[1]) / length[k]
        across = (yy - a[0]) * normal[0] + (xx - a[1]) * normal[1] - (shift + tilt * along)
        band = np.abs(across) <= t / 2 + 0.5
        fy, fx, off = yy[band], xx[band], across[band]
        flanked = np.zeros(len(fy), bool)  # ink just beyond the line's edge, on either side of its axis
        for d in (t / 2 + 2, -t / 2 - 2):
            flanked |= _ink_at(ink, fy + (d - off) * normal[0], fx + (d - off) * normal[1])
        trial = ink.copy()
        trial[fy[~flanked], fx[~flanked]] = False
        removed = int(ink.sum() - trial.sum())
        if removed > LINE_MAX_SHARE * ink.sum() or t > LINE_MAX_WIDTH * _width(trial):
            continue  # the glyph's own stroke (a 1's stem, a 7's bar), not a thinner line across it
        return trial
    return None


def remove_crossing_curves(mask: np.ndarray) -> np.ndarray | None:
    """`mask` without the thin curves (or lines) drawn across the picture: pieces of the ink that an opening
    with a square about a stroke wide removes, that touch the border, are long and thinner than the strokes.
    Only when the ink the opening keeps (the glyph) stays clear of the border. None if there are none."""
    if not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()):
        return None  # nothing enters at the border: the usual case, decided before any filtering
    h, w = mask.shape
    ys, xs = _perimeter(h, w)
    width = _width(mask)
    s = max(2, int(round(CURVE_OPEN * width)))
    opened = _open_square(mask, s)
    rows, cols = np.flatnonzero(opened.any(axis=1)), np.flatnonzero(opened.any(axis=0))
    if not len(rows) or min(rows[0], cols[0], h - 1 - rows[-1], w - 1 - cols[-1]) < CURVE_MIN_GAP:
        return None  # the glyph itself reaches the border (a tight crop): its thin ends there are no curves
    labels, _ = ndimage.label(mask & ~opened, structure=np.ones((3, 3), bool))
    touching = np.unique(labels[ys, xs])
    touching = touching[touching > 0]
    drop = [label for label in touching if _is_curve(labels, label, ndimage.find_objects(labels, label)[label - 1],
                                                     width, max(h, w))]
    return mask & ~np.isin(labels, drop) if drop else None


def _open_square(mask: np.ndarray, s: int) -> np.ndarray:
    """ndimage.binary_opening(mask, structure=np.ones((s, s))) (off-image pixels background), as four 1-D
    minimum / maximum filters: the same pixels in half the time."""
    eroded = mask.view(np.uint8)
    for axis in (0, 1):
        eroded = ndimage.minimum_filter1d(eroded, s, axis=axis, mode="constant", cval=0)
    opened = eroded
    for axis in (0, 1):  # binary_dilation reflects the square: an even one's centre moves back by one
        opened = ndimage.maximum_filter1d(opened, s, axis=axis, mode="constant", cval=0, origin=s % 2 - 1)
    return opened.astype(bool)


def _is_curve(labels: np.ndarray, label: int, box: tuple, width: float, side: int) -> bool:
    """Whether piece `label` (in `box`) of the thin ink is a curve: long, thin and elongated."""
    piece = labels[box] == label
    extent = np.hypot(box[0].stop - box[0].start, box[1].stop - box[1].start)
    piece_width = _width(np.pad(piece, 1))
    length = piece.sum() / piece_width / width  # in stroke widths
    return bool(extent >= CURVE_MIN_LENGTH * side and piece_width <= CURVE_MAX_WIDTH * width
                and length >= CURVE_MIN_ELONGATION)


def remove_grid(g: np.ndarray) -> np.ndarray | None:
    """g (ink bright, max 1) without a lattice of thin lines across the whole picture (scaled to max 1 again), or
    None if it has none. A lattice: many runs of ink along the border, nearly all of them one connected piece of
    ink that spans the picture. It is taken out by the narrowest grey opening that leaves (almost) no ink on the
    border, so the strokes, wider than the lines, stay."""
    ring = np.concatenate([g[0], g[1:, -1], g[-1, -2::-1], g[-2:0:-1, 0]]) > GRID_LEVEL  # walked once around
    if np.count_nonzero(ring[1:] & ~ring[:-1]) + int(ring[0] and not ring[-1]) < GRID_MIN_RUNS:
        return None  # few runs of ink along the border (counted by their starts): the usual case, decided cheaply
    ink = g > GRID_LEVEL
    runs = _border_runs(ink)
    labels, _ = ndimage.label(ink, structure=np.ones((3, 3), bool))
    at_runs = labels[runs[:, 0].astype(int), runs[:, 1].astype(int)]
    if not (at_runs > 0).any():
        return None
    biggest = int(np.bincount(at_runs[at_runs > 0]).argmax())
    if np.mean(at_runs == biggest) < GRID_REACH:
        return None
    rows, cols = np.nonzero(labels == biggest)
    h, w = g.shape
    if np.ptp(rows) + 1 < GRID_SPAN * h or np.ptp(cols) + 1 < GRID_SPAN * w:
        return None
    for k in range(2, GRID_MAX_OPEN + 1):
        opened = ndimage.grey_opening(g, size=(k, k), mode="constant")
        if len(_border_runs(opened > GRID_LEVEL)) <= GRID_LEFT_RUNS:
            top = float(opened.max())
            return (opened / top).astype(np.float32) if top > 0 else None
    return None
