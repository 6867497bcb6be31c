"""Reading a code by cut variants (parity.codes.cuts): which variants, how the model's readings of them are
weighed, and that the profile's own cut comes first and decides when the model's output is not finite."""

from __future__ import annotations

import numpy as np
import pytest

from parity.codes import cuts
from parity.codes.cuts import CUT_SHIFTS, averaged_over_cuts, code_candidates, cut_variants, cut_weights, read_code
from parity.codes.generate import generate_codes
from parity.codes.grayscale import NoDigit
from parity.codes.normalize import to_mnist
from parity.codes.reading import code_probabilities, cut_candidates
from parity.codes.segment import segment_code


def test_cut_variants_move_the_touching_cuts_in_every_combination():
    pieces = [(0, 10), (10, 20), (25, 35), (36, 46)]  # touching, a 5 px gap, 1 px apart
    assert CUT_SHIFTS == (2, 4, 6, 8)
    variants = cut_variants(pieces)
    assert variants[0] == pieces
    # each touching cut: stays, or moves 2, 4 or 6 px either way (8 would leave a piece 2 px wide): 7 x 7
    assert len(variants) == 7 * 7 and len({tuple(v) for v in variants}) == 49
    assert [(0, 4), (4, 20), (25, 41), (42, 46)] in variants  # both touching cuts moved at once
    assert [(0, 16), (16, 20), (25, 35), (36, 46)] in variants
    for variant in variants:
        assert variant[1][1] == 20 and variant[2][0] == 25  # the gap's cut stays put
        assert variant[0][0] == 0 and variant[3][1] == 46  # the ink's ends too
        assert all(b - a >= 3 for a, b in variant)
        assert all(variant[j][1] - variant[j][0] >= 3 and variant[j + 1][0] >= variant[j][1] for j in range(3))


def test_cut_variants_one_at_a_time_are_choice_5s():
    pieces = [(0, 10), (10, 20), (25, 35), (36, 46)]
    variants = cut_variants(pieces, (3, 6), joint=False)
    assert variants[0] == pieces and len(variants) == 1 + 2 * 2 * 2
    for variant in variants[1:]:
        changed = [j for j in range(4) if variant[j] != pieces[j]]
        assert len(changed) == 2 and changed[1] == changed[0] + 1  # two neighbours, nothing else
    assert variants[1:3] == [[(0, 7), (7, 20), (25, 35), (36, 46)], [(0, 13), (13, 20), (25, 35), (36, 46)]]
    # a piece under 3 columns is no variant: only the shifts to the right are left
    assert cut_variants([(0, 5), (5, 20)], (3, 6), joint=False) == [[(0, 5), (5, 20)], [(0, 8), (8, 20)], [(0, 11), (11, 20)]]
    assert cut_variants([(0, 5), (5, 20)], (3, 6)) == cut_variants([(0, 5), (5, 20)], (3, 6), joint=False)  # one cut: the same
    assert cut_variants([(0, 10), (15, 25)]) == [[(0, 10), (15, 25)]]  # no touching cut: the profile's alone


def confident(digits: list[int], confidence: float) -> np.ndarray:
    rows = np.full((len(digits), 10), (1 - confidence) / 9)
    rows[np.arange(len(digits)), digits] = confidence
    return rows


def test_cut_weights_are_the_variants_joint_confidence_normalised():
    sure, unsure = confident([1, 2, 3, 4], 0.9), confident([1, 2, 3, 4], 0.45)
    weights = cut_weights(np.stack([sure, unsure, sure]))
    ratio = (0.45 / 0.9) ** 4
    assert weights == pytest.approx(np.array([1, ratio, 1]) / (2 + ratio), rel=1e-12)
    assert cut_weights(np.stack([unsure])) == pytest.approx([1.0])


def test_averaged_over_cuts_no_single_overconfident_variant_decides():
    base = confident([1, 2, 3, 4], 0.9)
    outlier = confident([1, 2, 8, 4], 0.9)
    outlier[2] = confident([8], 0.99)[0]  # surer of its third digit than the others are of theirs
    # choice 5 read the outlier (its summed log confidence is the highest by 0.095); three variants agreeing outweigh it
    assert averaged_over_cuts(np.stack([base, outlier, base, base])).argmax(1).tolist() == [1, 2, 3, 4]
    # alone against an unsure profile's cut, a far surer variant is read
    unsure, sure = confident([1, 2, 3, 4], 0.5), confident([1, 2, 8, 4], 0.5)
    sure[2] = confident([8], 0.99)[0]
    reading = averaged_over_cuts(np.stack([unsure, sure]))
    assert reading.argmax(1).tolist() == [1, 2, 8, 4]
    assert reading.shape == (4, 10) and reading.sum(1) == pytest.approx(np.ones(4))
    assert np.array_equal(averaged_over_cuts(np.stack([base])), base)


def test_averaged_over_cuts_never_reads_a_non_finite_output():
    base, other = confident([1, 2, 3, 4], 0.6), confident([5, 6, 7, 8], 0.99)
    broken = other.copy()
    broken[0, 0] = np.nan
    assert np.array_equal(averaged_over_cuts(np.stack([base, broken])), base)  # a non-finite variant weighs 0
    assert np.isnan(averaged_over_cuts(np.stack([broken, other]))).any()  # nor hides a non-finite first: its NaN shows
    flat = np.concatenate([base, other])  # reading.code_probabilities: all variants' rows, flat, as a batch gives them
    assert np.array_equal(code_probabilities(flat, 2), averaged_over_cuts(np.stack([base, other])))


@pytest.fixture(scope="module")
def codes():
    return generate_codes(12, seed=7)


def test_code_candidates_start_with_the_profiles_cut(codes):
    for image in codes.images:
        candidates = code_candidates(image)
        assert candidates.dtype == np.uint8 and candidates.shape[1:] == (4, 28, 28) and len(candidates) >= 1
        assert np.array_equal(candidates[0], np.stack([to_mnist(crop) for crop in segment_code(image)]))
        one_at_a_time = code_candidates(image, joint=False)
        for variant in one_at_a_time[1:]:  # one cut moved: its two neighbours change, the rest are the same digits
            same = [np.array_equal(variant[j], candidates[0][j]) for j in range(4)]
            assert sum(same) >= 2
        joint = {variant.tobytes() for variant in candidates}
        assert all(variant.tobytes() in joint for variant in one_at_a_time)  # every combination holds those
    counts = [len(code_candidates(image)) for image in codes.images]
    assert max(counts) > 1  # touching digits give variants
    assert max(counts) > max(len(code_candidates(image, joint=False)) for image in codes.images)


def test_a_variant_with_a_piece_without_ink_is_left_out(monkeypatch):
    """Moving both cuts of a piece inwards can leave it only blank columns (here its ink is two thin strokes at
    its ends): that variant is no candidate, and no error."""
    image = np.full((60, 160), 255, np.uint8)
    for x0, x1 in ((10, 34), (34, 36), (48, 62)):
        image[15:45, x0:x1] = 0
    pieces = [(10, 22), (22, 34), (34, 50), (50, 62)]  # as a profile could cut them: all touching
    monkeypatch.setattr(cuts, "_column_pieces", lambda profile, n: pieces)
    candidates = code_candidates(image)
    inkless = [v for v in cut_variants(pieces) if v[2][0] >= 36 and v[2][1] <= 48]  # e.g. (36, 48)
    assert inkless and len(candidates) == len(cut_variants(pieces)) - len(inkless)
    assert np.array_equal(candidates[0], np.stack([to_mnist(image[13:47, max(x0 - 2, 0):x1 + 2]) for x0, x1 in pieces]))


def test_a_blank_code_has_no_candidates():
    with pytest.raises(NoDigit):
        code_candidates(np.full((60, 160, 3), 240, np.uint8))
    assert cut_candidates(np.full((60, 160, 3), 240, np.uint8)) is None


def test_read_code_reads_the_variant_the_model_is_far_surest_of(codes):
    """One touching cut (so each moved piece belongs to one variant): a classifier sure of the last variant's
    moved digits and unsure of every other crop reads that variant's digits where it moved the cut, the
    others' elsewhere; a classifier equally sure of all reads what they all say."""
    image = next(im for im in codes.images if 1 < len(code_candidates(im)) <= 9)
    candidates = code_candidates(image)
    first, last = candidates[0].reshape(4, -1), candidates[-1].reshape(4, -1)
    moved = [j for j in range(4) if not np.array_equal(first[j], last[j])]
    assert len(moved) == 2  # the last variant moved the one touching cut: two neighbouring digits changed

    def classify(batch: np.ndarray) -> np.ndarray:
        out = confident([7] * len(batch), 0.2)  # unsure: 0.2 against 0.089 for each other digit
        for i, row in enumerate(batch.reshape(len(batch), -1)):
            if any(np.array_equal(row, last[j]) for j in moved):
                out[i] = confident([3], 0.999)[0]
        return out

    assert read_code(image, classify) == "".join("3" if j in moved else "7" for j in range(4))

    def unsure(batch: np.ndarray) -> np.ndarray:
        return confident([5] * len(batch), 0.5)

    assert read_code(image, unsure) == "5555"
    with pytest.raises(ValueError, match="not finite"):
        read_code(image, lambda batch: np.full((len(batch), 10), np.nan))
