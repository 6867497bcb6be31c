"""Reading a code by choosing among cut variants with the model: recognition-based segmentation.

`segment_boxes` cuts a code's ink into digits by its column profile alone. Where two digits overlap (the
`captcha` package draws them so), the cut at the thinnest joint can fall a few pixels off, and one crop
then holds a slice of its neighbour: on the validation codes (seeds 21 and 22) the classifier reads 99.7% of
the digits in their true boxes but 98.75-98.95% of those cut by the profile. So each cut between two touching
pieces is also tried `CUT_SHIFTS` pixels to either side (one cut at a time), every variant's crops are
normalised, and the model reads them all; the variant whose digits it is surest of, summed as log
confidences, is the reading, but it replaces the profile's own cut only when it is surer by `SWITCH_MARGIN`
(a variant that changes nothing ties with it, and a tie keeps the profile's cut). Shifts and margin were
chosen on the validation codes, seeds 21 and 22 (`scripts/tune_cuts.py`; docs/robustness.md, choice 5).

Training data is unchanged by this: `segmented_crops` (the cut crops mixed into training) uses the profile's
cut alone, as before.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
from PIL import Image

from parity.codes.grayscale import NoDigit, load_image
from parity.codes.normalize import to_mnist
from parity.codes.segment import _column_pieces, _gray_crop, code_ink, piece_box

CUT_SHIFTS = (3, 6)  # px at the working scale (a 160x60 code is cut at its own size)
SWITCH_MARGIN = 0.05  # natural log: the variant's digits jointly at least ~5% surer than the profile's cut's
TOUCHING = 1  # px: pieces at most this far apart share a cut that may move (a gap between digits stays put)


def cut_variants(pieces: list[tuple[int, int]], shifts: tuple[int, ...] = CUT_SHIFTS) -> list[list[tuple[int, int]]]:
    """The profile's pieces (first ink column, last + 1), then the same with one cut between touching pieces
    moved by each of +-shifts; a piece left under 3 columns wide is no variant."""
    variants = [list(pieces)]
    for j in range(len(pieces) - 1):
        (a0, a1), (b0, b1) = pieces[j], pieces[j + 1]
        if b0 - a1 > TOUCHING:
            continue
        for shift in (s for d in shifts for s in (-d, d)):
            if a1 + shift - a0 >= 3 and b1 - (b0 + shift) >= 3:
                variant = list(pieces)
                variant[j], variant[j + 1] = (a0, a1 + shift), (b0 + shift, b1)
                variants.append(variant)
    return variants


def code_candidates(image: np.ndarray | Image.Image | str | os.PathLike, n_digits: int = 4,
                    shifts: tuple[int, ...] = CUT_SHIFTS) -> np.ndarray:
    """A whole code image -> uint8 (k, n_digits, 28, 28): its digits as each cut variant gives them, the
    profile's own cut (`segment_code`'s crops) first; a variant with a piece the normaliser finds no digit in
    is left out. Raises NoDigit if the image cannot be cut into n_digits readable digits at all."""
    gray = load_image(image)
    ink, scale = code_ink(gray)
    digits: dict[tuple[int, int], np.ndarray | None] = {}  # a piece shared by variants is normalised once

    def digit(x0: int, x1: int) -> np.ndarray | None:
        if (x0, x1) not in digits:
            try:
                digits[(x0, x1)] = to_mnist(_gray_crop(gray, piece_box(ink, scale, x0, x1)))
            except NoDigit:
                digits[(x0, x1)] = None
        return digits[(x0, x1)]

    candidates = []
    for variant in cut_variants(_column_pieces(ink.sum(axis=0), n_digits), shifts):
        crops = [digit(x0, x1) for x0, x1 in variant]
        if all(crop is not None for crop in crops):
            candidates.append(np.stack(crops))
    if not candidates:
        raise NoDigit(f"no cut of the ink gives {n_digits} readable digits")
    return np.stack(candidates)


def choose_cut(probabilities: np.ndarray, margin: float = SWITCH_MARGIN) -> int:
    """Which of k candidates to read, given the model's (k, n_digits, 10) probabilities: the one whose digits'
    summed log confidence is highest, if it beats the first (the profile's cut) by `margin`; else 0.
    A candidate with a non-finite output is never chosen over the first (whose own output decides then)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    finite = np.isfinite(probabilities).all(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.log(np.clip(probabilities.max(axis=2), 1e-12, 1.0)).sum(axis=1)
    score[~finite] = -np.inf
    best = int(np.argmax(score))
    return best if finite[0] and score[best] > score[0] + margin else 0


def read_code(
    image: np.ndarray | Image.Image | str | os.PathLike,
    classify: Callable[[np.ndarray], np.ndarray],
    n_digits: int = 4,
) -> str:
    """Cut, normalise and classify a code: its n_digits digits as a string. `classify` takes uint8 (k, 28, 28)
    digits and returns (k, 10) probabilities. Raises NoDigit if unreadable, ValueError if the model's output
    for the chosen cut is not finite (no made-up digits)."""
    candidates = code_candidates(image, n_digits)
    probabilities = np.asarray(classify(candidates.reshape(-1, 28, 28))).reshape(len(candidates), n_digits, -1)
    chosen = probabilities[choose_cut(probabilities)]
    if not np.isfinite(chosen).all():
        raise ValueError("the model's output is not finite (NaN or infinity), so it names no digit")
    return "".join(str(int(d)) for d in chosen.argmax(axis=1))
