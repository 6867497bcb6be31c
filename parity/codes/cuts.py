"""Reading a code by weighing cut variants with the model: recognition-based segmentation.

`segment_boxes` cuts a code's ink into digits by its column profile alone. Where two digits overlap (the
`captcha` package draws them so), the cut at the thinnest joint can fall a few pixels off, and one crop
then holds a slice of its neighbour: on the validation codes (seeds 21 and 22) the classifier reads 99.7% of
the digits in their true boxes but 98.75-98.95% of those cut by the profile. So every cut between two touching
pieces is also tried `CUT_SHIFTS` pixels to either side, in every combination of the cuts (up to 9^3 = 729
variants for a code whose four digits all touch), every variant's crops are normalised, and the model reads
them all. The reading is the digits' probabilities averaged over the variants, each variant weighted by how
sure the model is of all its digits at once (the product of their top probabilities, normalised over the
variants): a cut that splits a digit badly gives unsure digits and little weight, and no single overconfident
variant decides alone. Shifts and rule were chosen on the validation codes, seeds 21 and 22, and checked on
their codes 501-1,500 (`scripts/tune_cuts.py`; docs/robustness.md, choices 5 and 8).

Training data is unchanged by this: `segmented_crops` (the cut crops mixed into training) uses the profile's
cut alone, as before.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable

import numpy as np
from PIL import Image

from parity.codes.grayscale import NoDigit, load_image
from parity.codes.normalize import to_mnist
from parity.codes.segment import _column_pieces, _gray_crop, code_ink, piece_box

CUT_SHIFTS = (2, 4, 6, 8)  # px at the working scale (a 160x60 code is cut at its own size)
TOUCHING = 1  # px: pieces at most this far apart share a cut that may move (a gap between digits stays put)
MIN_WIDTH = 3  # px: a variant leaving a narrower piece is no variant


def cut_variants(pieces: list[tuple[int, int]], shifts: tuple[int, ...] = CUT_SHIFTS,
                 joint: bool = True) -> list[list[tuple[int, int]]]:
    """The profile's pieces (first ink column, last + 1), then the same with the cuts between touching pieces
    moved by 0 or +-shifts, every combination of them (`joint`; else one cut at a time, the reader of choice 5,
    kept for scripts/tune_cuts.py's comparison); a piece left under MIN_WIDTH columns wide is no variant."""
    moves = [(0, *(s for d in shifts for s in (-d, d))) if b[0] - a[1] <= TOUCHING else (0,)
             for a, b in zip(pieces, pieces[1:])]
    if joint:
        combos = itertools.product(*moves)
    else:  # the profile's cut, then each cut moved alone
        combos = itertools.chain([(0,) * len(moves)], ((0,) * j + (s,) + (0,) * (len(moves) - j - 1)
                                                       for j, options in enumerate(moves) for s in options[1:]))
    variants = []
    for combo in combos:
        cuts = [(a1 + s, b0 + s) for (_, a1), (b0, _), s in zip(pieces, pieces[1:], combo)]
        starts = [pieces[0][0]] + [b0 for _, b0 in cuts]
        ends = [a1 for a1, _ in cuts] + [pieces[-1][1]]
        if all(x1 - x0 >= MIN_WIDTH for x0, x1 in zip(starts, ends)):
            variants.append(list(zip(starts, ends)))
    return variants


def code_candidates(image: np.ndarray | Image.Image | str | os.PathLike, n_digits: int = 4,
                    shifts: tuple[int, ...] = CUT_SHIFTS, joint: bool = True) -> np.ndarray:
    """A whole code image -> uint8 (k, n_digits, 28, 28): its digits as each cut variant gives them, the
    profile's own cut (`segment_code`'s crops) first; a variant with a piece the normaliser finds no digit in
    is left out. Raises NoDigit if the image cannot be cut into n_digits readable digits at all."""
    gray = load_image(image)
    ink, scale = code_ink(gray)
    digits: dict[tuple[int, int], np.ndarray | None] = {}  # a piece shared by variants is normalised once

    def digit(x0: int, x1: int) -> np.ndarray | None:
        if (x0, x1) not in digits and not ink[:, x0:x1].any():  # moved cuts can leave a piece no ink
            digits[(x0, x1)] = None
        if (x0, x1) not in digits:
            try:
                digits[(x0, x1)] = to_mnist(_gray_crop(gray, piece_box(ink, scale, x0, x1)))
            except NoDigit:
                digits[(x0, x1)] = None
        return digits[(x0, x1)]

    candidates = []
    for variant in cut_variants(_column_pieces(ink.sum(axis=0), n_digits), shifts, joint):
        crops = [digit(x0, x1) for x0, x1 in variant]
        if all(crop is not None for crop in crops):
            candidates.append(np.stack(crops))
    if not candidates:
        raise NoDigit(f"no cut of the ink gives {n_digits} readable digits")
    return np.stack(candidates)


def cut_scores(probabilities: np.ndarray) -> np.ndarray:
    """Each of k candidates' summed log confidence, given the model's (k, n_digits, 10) probabilities: the log
    of the product of its digits' top probabilities; -inf for a candidate with a non-finite output."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.log(np.clip(probabilities.max(axis=2), 1e-12, 1.0)).sum(axis=1)
    score[~np.isfinite(probabilities).all(axis=(1, 2))] = -np.inf
    return score


def cut_weights(probabilities: np.ndarray) -> np.ndarray:
    """Each of k candidates' weight: the product of its digits' top probabilities, normalised to sum to 1 (a
    softmax of `cut_scores`). A candidate with a non-finite output weighs 0; if the first (the profile's cut)
    has one, it alone weighs 1, so its NaN shows."""
    score = cut_scores(probabilities)
    if not np.isfinite(score[0]):
        return np.eye(len(score))[0]
    weights = np.exp(score - score.max())
    return weights / weights.sum()


def averaged_over_cuts(probabilities: np.ndarray) -> np.ndarray:
    """The (n_digits, 10) reading of a code from its k cut variants' (k, n_digits, 10) probabilities: their
    average, each variant weighted by `cut_weights`. Non-finite only when the profile's cut's output is."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    weights = cut_weights(probabilities)
    used = weights > 0  # 0 x NaN would be NaN: a variant of weight 0 is left out, not multiplied
    return np.tensordot(weights[used], probabilities[used], axes=1)


def read_code(
    image: np.ndarray | Image.Image | str | os.PathLike,
    classify: Callable[[np.ndarray], np.ndarray],
    n_digits: int = 4,
) -> str:
    """Cut, normalise and classify a code: its n_digits digits as a string. `classify` takes uint8 (k, 28, 28)
    digits and returns (k, 10) probabilities. Raises NoDigit if unreadable, ValueError if the model's output
    for the profile's cut is not finite (no made-up digits)."""
    candidates = code_candidates(image, n_digits)
    probabilities = np.asarray(classify(candidates.reshape(-1, 28, 28))).reshape(len(candidates), n_digits, -1)
    reading = averaged_over_cuts(probabilities)
    if not np.isfinite(reading).all():
        raise ValueError("the model's output is not finite (NaN or infinity), so it names no digit")
    return "".join(str(int(d)) for d in reading.argmax(axis=1))
