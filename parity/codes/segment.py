"""Cutting a code without ground truth: its ink into digits by the column profile (parity.codes.cuts reads it)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from parity.codes.crops import box_crop, stack_digits
from parity.codes.generate import CodeSet
from parity.codes.grayscale import NoDigit, load_image
from parity.codes.normalize import gray_ink_map, to_mnist


def _column_pieces(profile: np.ndarray, n: int) -> list[tuple[int, int]]:
    """Split the columns of an ink profile into n left-to-right pieces, each holding ink.

    Dynamic programming over cut columns: a cut costs the ink it slices (relative to a typical
    column); a piece costs how far its ink width strays from the mean digit width, and how far its
    ink falls short of half an average digit's. Gaps cost nothing, so separate digits split at gaps,
    and touching digits split at the thinnest joint near where a digit's width says it should be.
    Returns (first, last + 1) ink columns of each piece.
    """
    cols = np.flatnonzero(profile > 0)
    if len(cols) < n:
        raise NoDigit(f"only {len(cols)} ink columns for {n} digits")
    lo, hi = int(cols[0]), int(cols[-1]) + 1
    p = profile[lo:hi].astype(np.float64)
    m = hi - lo
    has_ink = p > 0
    # Pieces are [a, b) with 0 <= a < b <= m; first/last ink column inside each.
    columns = np.arange(m)
    nxt = np.full(m + 1, m, dtype=np.int64)  # nxt[a]: first ink column >= a
    nxt[:m] = np.minimum.accumulate(np.where(has_ink, columns, m)[::-1])[::-1]
    prv = np.full(m + 1, -1, dtype=np.int64)  # prv[b]: last ink column < b
    prv[1:] = np.maximum.accumulate(np.where(has_ink, columns, -1))
    a_idx, b_idx = np.meshgrid(np.arange(m + 1), np.arange(m + 1), indexing="ij")
    ink_w = prv[b_idx] - nxt[a_idx] + 1
    target = has_ink.sum() / n  # overlap shrinks the ink-column count, gaps do not count
    piece = ((ink_w - target) / target) ** 2 * 4.0
    # A piece with little ink (a noise tail, a sliver of a neighbour) is no digit; a "1" has about
    # half an average digit's ink, so only shortfalls beyond that cost.
    cumulative = np.concatenate([[0.0], np.cumsum(p)])
    share = (cumulative[b_idx] - cumulative[a_idx]) / (cumulative[-1] / n)
    piece += 8.0 * np.clip(0.5 - share, 0, None) ** 2
    piece[(b_idx <= a_idx) | (ink_w <= 0)] = np.inf
    typical = max(float(np.median(p[has_ink])), 1e-6)
    cut_cost = np.zeros(m + 1)
    cut_cost[1:m] = np.minimum(p[:-1], p[1:]) / typical  # slicing between columns c-1 and c
    # best[k][b]: cost of splitting columns [0, b) into k pieces, the last cut at b.
    best = piece[0].copy()
    back: list[np.ndarray] = []
    for _ in range(1, n):
        total = best[:, None] + cut_cost[:, None] + piece  # previous end a, new piece [a, b)
        back.append(np.argmin(total, axis=0))
        best = total[back[-1], np.arange(m + 1)]
    if not np.isfinite(best[m]):
        raise NoDigit(f"cannot split the ink into {n} digits")
    edges = [m]
    for arg in reversed(back):
        edges.append(int(arg[edges[-1]]))
    edges.append(0)
    edges.reverse()
    return [(lo + int(nxt[a]), lo + int(prv[b]) + 1) for a, b in zip(edges[:-1], edges[1:])]


def segment_boxes(image: np.ndarray | Image.Image | str | os.PathLike, n_digits: int = 4) -> np.ndarray:
    """Where the n_digits digits of a whole code image are, without ground truth: int (n_digits, 4)
    boxes (x0, y0, x1, y1), left to right, in the image's pixels.

    The code's ink is cleaned (noise lines and dots removed), its column profile cut into n_digits
    pieces (see `_column_pieces`), and each box spans its piece's ink columns and the rows they hold ink in.
    """
    return _gray_boxes(load_image(image), n_digits)


def _gray_boxes(gray: np.ndarray, n_digits: int) -> np.ndarray:
    """`segment_boxes` of what load_image gave, without reading it again."""
    ink, scale = code_ink(gray)
    return np.array([piece_box(ink, scale, x0, x1) for x0, x1 in _column_pieces(ink.sum(axis=0), n_digits)])


def code_ink(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """A whole code's cleaned ink and its scale (`gray_ink_map` keeping small pieces and those at the edge)."""
    return gray_ink_map(gray, keep_fraction=0.03, edge_fraction=0.0)


def piece_box(ink: np.ndarray, scale: float, x0: int, x1: int) -> np.ndarray:
    """int64 (x0, y0, x1, y1) in the image's pixels: ink columns [x0, x1) and the rows they hold ink in."""
    rows = np.flatnonzero(ink[:, x0:x1].any(axis=1))
    box = np.array([x0, rows[0], x1, rows[-1] + 1]) / scale
    return np.array([np.floor(box[0]), np.floor(box[1]), np.ceil(box[2]), np.ceil(box[3])], dtype=np.int64)


def _gray_crop(gray: np.ndarray, box: np.ndarray) -> np.ndarray:
    """A box of a float gray image as uint8, with the margin `digit_crops` gives true boxes."""
    return np.round(box_crop(gray, box) * 255).astype(np.uint8)


def segment_code(image: np.ndarray | Image.Image | str | os.PathLike, n_digits: int = 4) -> list[np.ndarray]:
    """Split a whole code image into n_digits crops, left to right, without ground truth: uint8 gray
    crops of `segment_boxes` with the same 2 px margin `digit_crops` uses, so `to_mnist` sees what it
    saw for true boxes. Raises NoDigit if the image holds too little ink."""
    gray = load_image(image)
    return [_gray_crop(gray, box) for box in _gray_boxes(gray, n_digits)]


def segmented_crops(codeset: CodeSet) -> tuple[np.ndarray, np.ndarray]:
    """Crops as the ink profile cuts them (`segment_code`; the first of parity.codes.cuts' variants, not ground
    truth), labelled by position; a piece whose centre misses the true box of its position is left out, so no
    label is wrong."""
    crops, labels = [], []
    for image, code, true_boxes in zip(codeset.images, codeset.codes, codeset.boxes):
        gray = load_image(image)
        try:
            found = _gray_boxes(gray, len(code))
        except NoDigit:
            continue
        for j, (box, true) in enumerate(zip(found, true_boxes)):
            centre = (box[0] + box[2]) / 2
            if not true[0] <= centre <= true[2]:
                continue
            try:
                crops.append(to_mnist(_gray_crop(gray, box)))
            except NoDigit:
                continue
            labels.append(int(code[j]))
    return stack_digits(crops, labels)
