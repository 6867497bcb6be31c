"""The style stress set (parity/codes/stress.py) and its CLI (scripts/codes.py stress, eval --stress).

Determinism in and across processes, the class list, the three splits (train, validation, test) disjoint in
seeds, fonts and settings, no training font in a scored split, every training font installed and drawn, the
CLI's files, eval's JSON and the picture, and for every class one check, on the images themselves (read as gray by the normaliser's own load_image), that it draws what its name says.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from functools import lru_cache

import numpy as np
import pytest
from PIL import Image, ImageFont
from scipy import ndimage

from parity.codes import stress
from parity.codes.fonts import PRINTED_TRAIN_FONTS, UNSEEN_FONTS, font_paths
from parity.codes.grayscale import load_image

CLASSES = ("grid", "crossing_lines", "crossing_curves", "dots", "blur", "tiny", "outline", "halftone",
           "neighbour_fragments", "rotation_shear", "low_contrast", "inverted", "fonts")
PER_CLASS = 40  # images of each class per split for the behaviour checks


def run(repo_root, *args, timeout=300):
    return subprocess.run([sys.executable, "scripts/codes.py", *map(str, args)], cwd=repo_root, capture_output=True,
                          text=True, timeout=timeout)


def fingerprint(digits) -> str:
    h = hashlib.sha256()
    for d in digits:
        buffer = io.BytesIO()
        d.image.save(buffer, format="PNG")
        h.update(f"{d.label}{d.cls}{d.image.mode}{d.image.size}".encode() + buffer.getvalue())
    return h.hexdigest()


@lru_cache(maxsize=3)
def sample(split: str) -> dict[str, list[tuple[stress.StressDigit, np.ndarray]]]:
    """PER_CLASS digits of each class of the split's default set, each with its gray image."""
    by_class = {c: [] for c in CLASSES}
    for d in stress.stress_set(13 * PER_CLASS, split):
        by_class[d.cls].append((d, load_image(d.image)))
    return by_class


def border(g: np.ndarray) -> np.ndarray:
    return np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])


def ink(g: np.ndarray, share: float = 0.5) -> np.ndarray:
    """Pixels at least `share` of the way from the background (the border's median) to the extreme farthest from it."""
    bg = float(np.median(border(g)))
    far = g.min() if bg - g.min() >= g.max() - bg else g.max()
    return np.abs(g - bg) > share * abs(far - bg)


def dips(line: np.ndarray) -> list[float]:
    """Centres of the dark runs along one row or column (darker than halfway from its light level to its darkest)."""
    light = float(np.percentile(line, 90))
    if light - line.min() < 0.05:
        return []
    low = np.concatenate([[0], (line < light - 0.5 * (light - line.min())).astype(int), [0]])
    edges = np.flatnonzero(np.diff(low))
    return [(a + b - 1) / 2 for a, b in zip(edges[::2], edges[1::2])]


def slant(mask: np.ndarray) -> float:
    yy, xx = np.nonzero(mask)
    yy, xx = yy - yy.mean(), xx - xx.mean()
    return abs(float((xx * yy).mean() / max((yy * yy).mean(), 1e-9)))


# ------------------------------------------------------------------------------- set and splits
def test_class_list_complete_and_every_class_in_both_splits():
    assert stress.CLASSES == CLASSES
    for split in stress.SPLITS:
        assert set(stress.SETTINGS[split]) == set(CLASSES)
        digits = stress.stress_set(26, split)
        assert [d.cls for d in digits] == list(CLASSES) * 2
        assert {d.image.mode for d in stress.stress_set(60, split)} == set(stress.MODES)
        assert all(0 <= d.label <= 9 for d in digits)


def test_same_seed_byte_identical_in_any_process_other_seed_or_split_differs(repo_root):
    here = fingerprint(stress.stress_set(26, "validation", 5))
    assert fingerprint(stress.stress_set(26, "validation", 5)) == here
    code = ("from parity.codes import stress; import tests.test_stress as t; "
            "print(t.fingerprint(stress.stress_set(26, 'validation', 5)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONHASHSEED": "123"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == here
    assert fingerprint(stress.stress_set(26, "validation", 6)) != here
    assert fingerprint(stress.stress_set(26, "test", 5)) != here
    assert fingerprint(stress.stress_set(13, "validation", 5)) == fingerprint(stress.stress_set(26, "validation", 5)[:13])


@pytest.mark.parametrize("one, other", [("validation", "test"), (stress.TRAIN, "validation"), (stress.TRAIN, "test")])
def test_train_validation_and_test_disjoint_in_seeds_fonts_and_settings(one, other):
    assert stress.DEFAULT_SEEDS[one] != stress.DEFAULT_SEEDS[other]
    assert stress.SALT[one] != stress.SALT[other]  # never one stream, even for one seed
    assert not set(stress.FONTS[one]) & set(stress.FONTS[other])
    families = {split: {stress.FAMILIES[f] for f in stress.FONTS[split]} for split in (one, other)}
    assert not families[one] & families[other]
    for cls in CLASSES:
        a, b = stress.SETTINGS[one][cls], stress.SETTINGS[other][cls]
        assert set(a) == set(b)
        if cls != "fonts":  # the fonts class is set apart by the fonts alone
            assert any(not set(a[key]) & set(b[key]) for key in a), cls
    for split in (one, other):
        assert {d.font for d in stress.stress_set(130, split)} <= set(stress.FONTS[split])


def test_train_split_draws_every_training_family_and_they_are_installed():
    assert set(stress.FONT_FAMILIES[stress.TRAIN]) == set(stress.TRAINING_FAMILIES) and len(stress.TRAINING_FAMILIES) >= 9
    for spec in stress.FONTS[stress.TRAIN]:  # each one loads and draws every digit (the install brings the packages)
        assert all(stress.glyph(spec, label, 30, np.random.default_rng(0)).shape[0] >= 20 for label in range(10)), spec
    drawn_families = {stress.FAMILIES[d.font] for d in stress.stress_set(400, stress.TRAIN)}
    assert drawn_families == set(stress.TRAINING_FAMILIES)


def test_no_training_font_family_and_no_unseen_test_family_in_validation():
    for split in stress.SPLITS:
        for spec in stress.FONTS[split]:
            kind, _, name = spec.partition(":")
            assert name not in PRINTED_TRAIN_FONTS and "Droid" not in name
            if kind == "mpl":
                family = ImageFont.truetype(str(font_paths((name,))[0]), 20).getname()[0]
            elif spec == "pillow:aileron":
                family = ImageFont.load_default(20).getname()[0]
            else:
                family = stress.FAMILIES[spec]
            assert not family.startswith(stress.TRAINING_FAMILIES), (spec, family)
    validation = stress.FONTS["validation"]
    for name in UNSEEN_FONTS:  # the unseen-style test set's fonts are test fonts, never validation ones
        assert f"mpl:{name}" not in validation
    assert not any(spec.startswith(("mpl:DejaVu", "mpl:cmr", "mpl:cmss", "mpl:cmtt")) for spec in validation)


# ------------------------------------------------------------------------------- the CLI
def test_cli_writes_n_images_with_labels(repo_root, tmp_path):
    done = run(repo_root, "stress", "--n", 26, "--split", "test", "--seed", 3, "--out", tmp_path / "set")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["seed"] == 3
    with open(tmp_path / "set" / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 26 and sorted(p.name for p in (tmp_path / "set").glob("*.png")) == [r["file"] for r in rows]
    assert [r["class"] for r in rows] == list(CLASSES) * 2
    expected = stress.stress_set(26, "test", 3)
    for row, digit in zip(rows, expected):
        assert int(row["digit"]) == digit.label and row["mode"] == digit.image.mode
        with Image.open(tmp_path / "set" / row["file"]) as image:
            assert np.array_equal(load_image(image), load_image(digit.image))
    for argv, says in ((["stress", "--n", 2, "--split", "train", "--out", tmp_path], "invalid choice"),
                       (["stress", "--n", 0, "--out", tmp_path], "positive"),
                       (["stress", "--out", tmp_path / "set" / "labels.csv"], "is a file")):
        done = run(repo_root, *argv)
        assert done.returncode != 0 and says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_eval_json_has_every_class(repo_root, trained_model, tmp_path):
    done = run(repo_root, "eval", "--model", trained_model.ckpt, "--n", 2, "--stress", 39, "--workers", 1,
               "--json", tmp_path / "scores.json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "scores.json").read_text()) == json.loads(done.stdout)  # --json: the same scores
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]  # no temporary file left
    part = json.loads(done.stdout)["stress"]
    assert (part["split"], part["seed"], part["n"]) == ("validation", stress.DEFAULT_SEEDS["validation"], 39)
    assert set(part["classes"]) == set(CLASSES)
    for scores in part["classes"].values():
        assert scores["n"] == 3 and 0 <= scores["accuracy"] <= 1 and 0 <= scores["no_digit"] <= 1
    mean = sum(scores["accuracy"] for scores in part["classes"].values()) / 13
    assert part["overall"] == pytest.approx(mean) and part["overall"] > 0.3  # a trained model reads many
    done = run(repo_root, "eval", "--model", trained_model.ckpt, "--n", 2, "--stress-split", "test")
    assert done.returncode == 2 and "--stress-split needs --stress" in done.stderr
    for where, says in ((tmp_path, "is a folder"), (tmp_path / "nowhere" / "s.json", "does not exist")):
        done = run(repo_root, "eval", "--model", trained_model.ckpt, "--n", 2, "--json", where)
        assert done.returncode == 2 and says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_picture_shows_a_column_a_class_with_both_readings(repo_root, trained_model, tmp_path):
    done = run(repo_root, "picture", "--model", trained_model.ckpt, "--stress", "--n", 1, "--out", tmp_path / "stress.png")
    assert done.returncode == 0, done.stderr[-2000:]
    shown = json.loads(done.stdout)
    assert shown["digits"] == 13 and 0 <= shown["torch_correct"] <= 13 and shown["torch_correct"] == shown["keras_correct"]
    with Image.open(tmp_path / "stress.png") as picture:
        assert picture.format == "PNG" and picture.width > 2.5 * picture.height  # one row of 13 columns


# ------------------------------------------------------------------------------- each class draws what it says
@pytest.fixture(scope="module", params=(stress.TRAIN,) + stress.SPLITS)
def drawn(request):
    return sample(request.param), request.param


def test_grid_lines_cross_the_whole_canvas_at_their_period(drawn):
    by_class, split = drawn
    reach = [max(len(dips(line)) for line in (g[0], g[-1], g[:, 0], g[:, -1])) >= 3 for _, g in by_class["grid"]]
    assert np.mean(reach) >= 0.9
    assert not any(dips(line) for _, g in by_class["fonts"] for line in (g[0], g[-1], g[:, 0], g[:, -1]))
    if split == "validation":  # axis-aligned square grids: dark dips along the border, one period apart
        aligned = [(d, g) for d, g in by_class["grid"] if d.params["angle"] == 0 and d.params["pattern"] == "square"]
        on_period = [any(len(found := dips(line)) >= 3 and abs(np.median(np.diff(found)) - d.params["period_px"])
                         <= 0.15 * d.params["period_px"] for line in (g[0], g[-1], g[:, 0], g[:, -1])) for d, g in aligned]
        assert len(aligned) >= 5 and np.mean(on_period) >= 0.85


@pytest.mark.parametrize("cls", ["crossing_lines", "crossing_curves"])
def test_lines_and_curves_cross_the_glyph_to_the_canvas_edge(drawn, cls):
    by_class, _ = drawn
    assert np.mean([border(ink(g)).any() for _, g in by_class[cls]]) >= (1.0 if cls == "crossing_lines" else 0.9)
    assert not any(border(ink(g)).any() for _, g in by_class["fonts"])


def test_dots_are_many_small_specks(drawn):
    by_class, _ = drawn
    components = [ndimage.label(ink(g), np.ones((3, 3)))[1] for _, g in by_class["dots"]]
    assert np.mean(np.array(components) >= 5) >= 0.9
    assert max(ndimage.label(ink(g), np.ones((3, 3)))[1] for _, g in by_class["fonts"]) <= 3


def test_blur_has_no_sharp_edges(drawn):
    by_class, _ = drawn

    def sharpness(g):
        return max(np.abs(np.diff(g, axis=0)).max(), np.abs(np.diff(g, axis=1)).max()) / max(float(np.ptp(g)), 1e-6)

    assert np.median([sharpness(g) for _, g in by_class["blur"]]) < 0.4
    assert min(sharpness(g) for _, g in by_class["fonts"]) > 0.8


def test_tiny_digits_are_under_20_px_tall(drawn):
    by_class, _ = drawn
    heights = [np.ptp(np.flatnonzero(ink(g).any(axis=1))) + 1 for _, g in by_class["tiny"]]
    assert max(heights) < 20 and min(heights) >= 5
    assert any(max(g.shape) >= 60 for _, g in by_class["tiny"]) and any(max(g.shape) < 28 for _, g in by_class["tiny"])


def test_outline_glyphs_are_hollow(drawn):
    by_class, _ = drawn

    def hollow(g):  # the share of the glyph's filled shape that is background inside its contour
        mask = ink(g)
        filled = ndimage.binary_fill_holes(mask)
        return (filled & ~mask).sum() / max(filled.sum(), 1)

    outline = [hollow(g) for _, g in by_class["outline"]]
    assert min(outline) > 0.3 and np.mean(outline) > np.mean([hollow(g) for _, g in by_class["fonts"]]) + 0.3


def test_halftone_glyphs_are_made_of_dots(drawn):
    by_class, _ = drawn
    components = [ndimage.label(ink(g), np.ones((3, 3)))[1] for _, g in by_class["halftone"]]
    assert np.mean(np.array(components) >= 8) >= 0.9


def test_neighbour_fragments_touch_the_sides_they_name(drawn):
    by_class, _ = drawn
    for d, g in by_class["neighbour_fragments"]:
        mask = ink(g, 0.3)  # a thin font's sliver of a fragment is faint
        assert mask[:, 0].any() == (d.params["sides"] in ("left", "both")), d.params
        assert mask[:, -1].any() == (d.params["sides"] in ("right", "both")), d.params


def test_rotation_shear_leans_the_digits(drawn):
    by_class, _ = drawn
    leaning = np.mean([slant(ink(g)) for _, g in by_class["rotation_shear"]])
    assert leaning > np.mean([slant(ink(g)) for _, g in by_class["fonts"]]) + 0.2


def test_low_contrast_is_faint_but_there(drawn):
    by_class, _ = drawn
    spans = [float(np.ptp(g)) for _, g in by_class["low_contrast"]]
    assert 10 / 255 < min(spans) and max(spans) < 45 / 255
    assert min(float(np.ptp(g)) for _, g in by_class["fonts"]) > 90 / 255


def test_inverted_digits_are_light_on_dark(drawn):
    by_class, _ = drawn
    for cls, dark in (("inverted", True), ("fonts", False)):
        for _, g in by_class[cls]:
            middle = (g.min() + g.max()) / 2
            assert (np.median(border(g)) < middle) == dark, cls


def test_fonts_are_plain_single_digits_in_the_split_fonts(drawn):
    by_class, split = drawn
    assert len({d.font for d, _ in by_class["fonts"]}) >= 3
    for d, g in by_class["fonts"]:
        assert d.font in stress.FONTS[split] and not border(ink(g)).any()


@pytest.mark.parametrize("split", (stress.TRAIN,) + stress.SPLITS)
def test_a_plain_twin_leaves_off_only_the_classes_addition(split):
    """stress_digit(..., plain=True): the same digit (label, font, size, mode) without its grid, lines, curves or
    specks; for the classes that add nothing, the same image to the byte."""
    for index in range(2 * len(stress.CLASSES)):
        digit, twin = stress.stress_digit(split, 31, index), stress.stress_digit(split, 31, index, plain=True)
        assert (twin.label, twin.font, twin.cls, twin.image.size, twin.image.mode) == (
            digit.label, digit.font, digit.cls, digit.image.size, digit.image.mode)
        same = digit.image.tobytes() == twin.image.tobytes()
        assert same == (digit.cls not in ("grid", "crossing_lines", "crossing_curves", "dots")), (index, digit.cls)
        if digit.cls in ("crossing_lines", "crossing_curves"):  # the twin's border is bare: the lines reached it
            assert border(ink(load_image(digit.image))).any() and not border(ink(load_image(twin.image))).any(), index
