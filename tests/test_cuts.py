"""Reading a code by cut variants (parity.codes.cuts): which variants, which one is read, and that the
profile's own cut is the first and stays the reading unless the model is clearly surer of another."""

from __future__ import annotations

import numpy as np
import pytest

from parity.codes.cuts import CUT_SHIFTS, SWITCH_MARGIN, choose_cut, code_candidates, cut_variants, read_code
from parity.codes.generate import generate_codes
from parity.codes.grayscale import NoDigit
from parity.codes.normalize import to_mnist
from parity.codes.reading import chosen_cut, cut_candidates
from parity.codes.segment import segment_code


def test_cut_variants_move_one_touching_cut_at_a_time():
    pieces = [(0, 10), (10, 20), (25, 35), (36, 46)]  # touching, a 5 px gap, 1 px apart
    variants = cut_variants(pieces)
    assert variants[0] == pieces
    assert len(variants) == 1 + 2 * 2 * len(CUT_SHIFTS)  # the gap's cut stays put
    assert [(0, 7), (7, 20), (25, 35), (36, 46)] in variants and [(0, 16), (16, 20), (25, 35), (36, 46)] in variants
    assert [(0, 10), (10, 20), (25, 41), (42, 46)] in variants
    for variant in variants[1:]:
        changed = [j for j in range(4) if variant[j] != pieces[j]]
        assert len(changed) == 2 and changed[1] == changed[0] + 1  # two neighbours, nothing else
        assert all(b - a >= 3 for a, b in variant)
    # a piece under 3 columns is no variant: only the shifts to the right are left
    assert cut_variants([(0, 5), (5, 20)]) == [[(0, 5), (5, 20)], [(0, 8), (8, 20)], [(0, 11), (11, 20)]]


def confident(digits: list[int], confidence: float) -> np.ndarray:
    rows = np.full((len(digits), 10), (1 - confidence) / 9)
    rows[np.arange(len(digits)), digits] = confidence
    return rows


def test_choose_cut_keeps_the_profiles_cut_unless_another_is_surer_by_the_margin():
    base = confident([1, 2, 3, 4], 0.6)
    much = confident([1, 2, 8, 4], 0.6)
    much[2] = confident([8], 0.99)[0]  # one digit far surer: log(0.99 / 0.6) = 0.5 > margin
    slightly = confident([1, 2, 3, 4], 0.6)
    slightly[1] = confident([2], 0.6 * np.exp(SWITCH_MARGIN / 2))[0]  # surer, by half the margin
    assert choose_cut(np.stack([base, slightly])) == 0
    assert choose_cut(np.stack([base, slightly, much])) == 2
    assert choose_cut(np.stack([base])) == 0
    broken = much.copy()
    broken[0, 0] = np.nan
    assert choose_cut(np.stack([base, broken])) == 0  # a non-finite variant is never read
    assert choose_cut(np.stack([broken, much])) == 0  # nor replaces a non-finite first: that one's NaN shows
    grouped = np.concatenate([base, much])  # reading.chosen_cut: all variants' rows, flat, as a batch gives them
    assert np.array_equal(chosen_cut(grouped, 2), much)


@pytest.fixture(scope="module")
def codes():
    return generate_codes(12, seed=7)


def test_code_candidates_start_with_the_profiles_cut(codes):
    for image in codes.images:
        candidates = code_candidates(image)
        assert candidates.dtype == np.uint8 and candidates.shape[1:] == (4, 28, 28) and len(candidates) >= 1
        assert np.array_equal(candidates[0], np.stack([to_mnist(crop) for crop in segment_code(image)]))
        for variant in candidates[1:]:  # one cut moved: its two neighbours change, the rest are the same digits
            same = [np.array_equal(variant[j], candidates[0][j]) for j in range(4)]
            assert sum(same) >= 2
    assert max(len(code_candidates(image)) for image in codes.images) > 1  # touching digits give variants


def test_a_blank_code_has_no_candidates():
    with pytest.raises(NoDigit):
        code_candidates(np.full((60, 160, 3), 240, np.uint8))
    assert cut_candidates(np.full((60, 160, 3), 240, np.uint8)) is None


def test_read_code_reads_the_variant_the_model_is_surest_of(codes):
    """A classifier that is unsure of every digit of the profile's cut and sure of one variant's: that variant
    is read; a classifier equally sure of all keeps the profile's cut."""
    image = next(im for im in codes.images if len(code_candidates(im)) > 1)
    candidates = code_candidates(image)
    first = candidates[0].reshape(4, -1)
    favourite = [row for row in candidates[-1].reshape(4, -1) if not any(np.array_equal(row, f) for f in first)]
    assert favourite  # the last variant moved a cut: at least one of its digits is not the profile's

    def classify(batch: np.ndarray) -> np.ndarray:
        out = confident([7] * len(batch), 0.5)
        for i, row in enumerate(batch.reshape(len(batch), -1)):
            if any(np.array_equal(row, f) for f in favourite):
                out[i] = confident([3], 0.99)[0]
        return out

    read = read_code(image, classify)
    assert len(read) == 4 and "3" in read and read.replace("3", "") == "7" * read.count("7")

    def unsure(batch: np.ndarray) -> np.ndarray:
        return confident([5] * len(batch), 0.5)

    assert read_code(image, unsure) == "5555"
    with pytest.raises(ValueError, match="not finite"):
        read_code(image, lambda batch: np.full((len(batch), 10), np.nan))
