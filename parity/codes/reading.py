"""One image -> its MNIST-style digits and the start of its output row: the work a reader process does.

scripts/predict.py reads one digit per file (`read_digit`), scripts/codes.py solve one code per file
(`read_code`) and eval codes and digits held in memory (`cut_candidates`, `mnist_digit`). Each returns a `Read`:
the row as far as the image alone decides it (path, a note about extra frames, the error of an unreadable
file or of an image with no digit), the uint8 (k, 28, 28) digits the model is to classify, and whether the
file counts as read. The model's part (digit, confidence, code) is filled in by `name_digit` / `name_code`,
once `classify_in_batches` has run the digits of many reads through the model in one call. A code's digits
come as every cut variant of parity.codes.cuts gives them, and `name_code` reads their weighted average.

These functions are what the reader processes of parity.codes.workers run, so they are module-level (a
pool started by forkserver finds them by name) and they never raise for a bad image: every failure of the
image is in the row. Files are read by parity.codes.imagefile: bounded memory, a FIFO never waited on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from parity.codes.errors import NoDigit, UnreadableImage
from parity.codes.imagefile import read_picture
from parity.codes.cuts import CUT_SHIFTS, averaged_over_cuts, code_candidates
from parity.codes.normalize import to_mnist

NOT_FINITE = "the model's output is not finite (NaN or infinity), so it names no digit"


@dataclass
class Read:
    row: dict  # the output row so far; its answer (digit / code) None until the model's part is filled in
    digits: np.ndarray | None  # uint8 (k, 28, 28) to classify; None when the image gave none
    ok: bool  # the file was read (an image with no digit in it counts: that is an answer about it)
    candidates: int = 1  # the digits are this many equal groups (a code's cut variants), one of which is read


def plain_digit(image) -> np.ndarray:
    """The seed's way: gray, resized to 28x28, nothing else."""
    from PIL import Image

    try:
        gray = image.convert("L") if image.mode != "LAB" else image.convert("RGB").convert("L")
        return np.asarray(gray.resize((28, 28), Image.Resampling.BILINEAR))
    except (ValueError, OSError) as error:
        raise NoDigit(f"cannot make mode {image.mode} gray: {error}") from None


def _read_file(path, row: dict, digits_of: Callable, no_digit: str = "{}") -> Read:
    """Read the image at `path` into `row` (its note about extra frames, or the error of an unreadable file),
    then `digits_of(image)` (uint8 (k, 28, 28), or (groups, k, 28, 28) for cut variants); a NoDigit from it is
    the row's error, formatted by `no_digit`."""
    try:
        picture = read_picture(path)
    except UnreadableImage as error:
        return Read({**row, "error": str(error)}, None, False)
    if picture.note:
        row["note"] = picture.note
    try:
        digits = digits_of(picture.image)
    except NoDigit as error:  # read, but no digit in it: an answer, not a failure
        return Read({**row, "error": no_digit.format(error)}, None, True)
    if digits.ndim == 4:
        return Read(row, digits.reshape(-1, *digits.shape[2:]), True, candidates=len(digits))
    return Read(row, digits, True)


def read_digit(path, normalize: bool = True) -> Read:
    """predict.py's row for one file: {"path", "digit": None, "confidence": None[, "note"][, "error"]}."""
    one_digit = to_mnist if normalize else plain_digit
    return _read_file(path, {"path": str(path), "digit": None, "confidence": None}, lambda image: one_digit(image)[None])


def name_digit(read: Read, probabilities: np.ndarray | None) -> tuple[dict, bool]:
    """(the finished row, whether the file was read and classified), given the (1, 10) probabilities of
    its digit (None when it had none)."""
    if read.digits is None:
        return read.row, read.ok
    probabilities = np.asarray(probabilities[0], dtype=np.float64)
    if not np.isfinite(probabilities).all():
        return {**read.row, "error": NOT_FINITE}, False
    best = int(probabilities.argmax())
    return {**read.row, "digit": best, "confidence": round(float(probabilities[best]), 6)}, True


def read_code(path, n_digits: int = 4) -> Read:
    """codes.py solve's row for one file: {"path", "code": None[, "note"][, "error"]}."""
    return _read_file(path, {"path": str(path), "code": None}, lambda image: code_candidates(image, n_digits),
                      no_digit=f"no {n_digits}-digit code found: {{}}")


def digits_read(probabilities: np.ndarray) -> str | None:
    """The digits a classifier's (k, 10) output names, or None if any row is not finite (no made-up digit)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if not np.isfinite(probabilities).all():
        return None
    return "".join(str(int(d)) for d in probabilities.argmax(1))


def name_code(read: Read, probabilities: np.ndarray | None) -> tuple[dict, bool]:
    """(the finished row, whether the file was read and classified), given its digits' (k, 10) probabilities
    (every cut variant's, averaged by `code_probabilities`)."""
    if read.digits is None:
        return read.row, read.ok
    code = digits_read(code_probabilities(probabilities, read.candidates))
    if code is None:
        return {**read.row, "error": NOT_FINITE}, False
    return {**read.row, "code": code}, True


def code_probabilities(probabilities: np.ndarray, candidates: int) -> np.ndarray:
    """A code's (n_digits, 10) reading from all its cut variants' (candidates * n_digits, 10) rows, as a batch
    gives them: their average weighted by the model's confidence (parity.codes.cuts.averaged_over_cuts)."""
    probabilities = np.asarray(probabilities)
    return averaged_over_cuts(probabilities.reshape(candidates, -1, probabilities.shape[-1]))


def cut_candidates(image, n_digits: int = 4, shifts: tuple[int, ...] = CUT_SHIFTS, joint: bool = True) -> np.ndarray | None:
    """A code image held in memory -> uint8 (k, n_digits, 28, 28), its MNIST-style digits as each of k cut
    variants gives them (parity.codes.cuts), or None if it cannot be cut into n_digits readable digits."""
    try:
        return code_candidates(image, n_digits, shifts, joint)
    except NoDigit:
        return None


def mnist_digit(image) -> np.ndarray | None:
    """One digit image held in memory -> uint8 (28, 28), or None if it holds no readable digit."""
    try:
        return to_mnist(image)
    except NoDigit:
        return None


def classify_in_batches(reads: Iterable[Read], classify: Callable[[np.ndarray], np.ndarray],
                        batch_size: int) -> Iterator[list[tuple[Read, np.ndarray | None]]]:
    """The reads in input order, in lists of consecutive reads holding about `batch_size` digits (or as many
    reads without any), each read paired with its digits' (k, 10) probabilities (None when it has none):
    one classify call per list, so a caller can print and flush a list at a time."""
    pending: list[Read] = []
    digits = 0
    for read in reads:
        pending.append(read)
        digits += 0 if read.digits is None else len(read.digits)
        if digits >= batch_size or len(pending) >= batch_size:
            yield _classified(pending, classify)
            pending, digits = [], 0
    if pending:
        yield _classified(pending, classify)


def _classified(reads: list[Read], classify) -> list[tuple[Read, np.ndarray | None]]:
    held = [read.digits for read in reads if read.digits is not None]
    probabilities = classify(np.concatenate(held)) if held else None
    paired, at = [], 0
    for read in reads:
        if read.digits is None:
            paired.append((read, None))
        else:
            paired.append((read, probabilities[at : at + len(read.digits)]))
            at += len(read.digits)
    return paired
