"""The normaliser's style clean-up steps (parity.codes.cleanup, issue 13), each on synthetic cases of its own.

- hollow (outline) glyphs: the body of an outlined 8, 4 and 1 is filled back to the solid glyph while the
  8's and 4's counters stay empty (and to_mnist reads the outlined 8 and 4 like the solid ones); a solid 8 and the printed 0/6/8/9 of two fonts are left alone.
- halftone glyphs: a lattice of dots is found with its spacing and merged back into a connected glyph close to
  the clean rendering; specks around a solid digit are no lattice.
- a picture drawn in one colour with the image in its alpha (a grid behind a 7) is read, not blank (load_image).
- crossing lines: a straight line across the whole picture (0.4-0.6 of the stroke width, four angles, three fonts)
  is cut out where it runs alone, the digit kept, and to_mnist reads much closer to the clean digit; the long
  straight strokes of 1, 4 and 7 (three fonts, tight and loose crops) and a bar from border to border are no line.
- grid backgrounds: a lattice of thin lines behind the digit (square and diamond, 0-45 degrees, lighter than or
  as dark as the ink, three fonts) is opened away and to_mnist reads much closer to the clean digit.
- crossing curves: a sine curve across the whole picture, 0.5 of the stroke width, is cut out where it runs alone
  and the digit kept (three fonts).
- plain digits of four fonts, cropped tight (0, 1, 3 px) and loose (12 px), have neither a grid nor crossing curves:
  the output is the same to the bit as without the clean-up steps.
Each test also checks the step's effect against `to_mnist(..., cleanup=False)`, so it fails if the step is
taken out. Shapes are compared by IoU of their ink (pixels over 64) in MNIST style.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from parity.codes import cleanup
from parity.codes.grayscale import load_image
from parity.codes.normalize import _stroke_width, to_mnist
from parity.codes.stress import _grid_pattern, _halftone, _lines_layer, glyph


def iou(a: np.ndarray, b: np.ndarray, level: int = 64) -> float:
    a, b = a > level, b > level
    return float((a & b).sum() / max((a | b).sum(), 1))


def erode(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(r):
        inner = np.zeros_like(out)
        inner[1:-1, 1:-1] = out[1:-1, 1:-1] & out[:-2, 1:-1] & out[2:, 1:-1] & out[1:-1, :-2] & out[1:-1, 2:]
        out = inner
    return out


def solid(kind: str) -> np.ndarray:
    """A bold digit as a bool mask (120 x 90): 8 = two thick rings, 4 = a thick polyline, 1 = a thick bar with a flag."""
    canvas = Image.new("L", (90, 120), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "8":
        draw.ellipse((22, 8, 68, 56), outline=255, width=15)
        draw.ellipse((17, 50, 73, 112), outline=255, width=15)
    elif kind == "4":
        draw.line([(60, 110), (60, 10), (12, 78), (82, 78)], fill=255, width=16, joint="curve")
    else:
        draw.line([(30, 30), (50, 10), (50, 110)], fill=255, width=18, joint="curve")
    return np.asarray(canvas) > 127


def outline_of(mask: np.ndarray, ring: int = 3) -> np.ndarray:
    return mask & ~erode(mask, ring)


def picture(mask: np.ndarray, pad: int = 10) -> np.ndarray:
    """Dark ink on light paper, uint8."""
    return np.pad(np.where(mask, 30, 225).astype(np.uint8), pad, constant_values=225)


@pytest.mark.parametrize("kind", ["8", "4", "1"])
def test_an_outlined_glyph_gets_its_body_back_and_keeps_its_counters(kind):
    body = solid(kind)
    contour = outline_of(body)
    filled = cleanup.fill_hollow(contour, _stroke_width(contour))
    assert filled is not None
    assert iou(filled, body, 0) > 0.9  # the solid glyph again (the contour's own rim included)
    counters = erode(~body, 2)  # the counters of 8 and 4 (and the outside), safely away from the strokes
    counters[:3] = counters[-3:] = False
    counters[:, :3] = counters[:, -3:] = False
    assert not (filled & counters).any()  # nothing of the counters (or the outside) was filled
    if kind in "84":
        assert counters[20:100, 20:70].sum() > 100  # there are counters in the glyph to keep
    if kind == "1":
        return  # (a hollow bar this narrow stays below the body-width bar in to_mnist's own width estimate)
    trace = []
    read = to_mnist(picture(contour), trace=trace)
    assert trace == ["outline"]
    reference = to_mnist(picture(body), cleanup=False)
    assert iou(read, reference) > 0.75
    assert iou(read, reference) > iou(to_mnist(picture(contour), cleanup=False), reference) + 0.2


def test_a_solid_glyph_has_no_hollow_body():
    body = solid("8")
    assert cleanup.fill_hollow(body, _stroke_width(body)) is None
    trace = []
    assert np.array_equal(to_mnist(picture(body), trace=trace), to_mnist(picture(body), cleanup=False))
    assert trace == []


@pytest.mark.parametrize("font", ["pillow:aileron", "mpl:cmmi10.ttf", "pen"])
@pytest.mark.parametrize("label", [0, 6, 8, 9])
def test_real_counters_of_0_6_8_9_are_not_filled(font, label):
    alpha = glyph(font, label, 90, np.random.default_rng(label))
    image = np.pad(np.round(255 - 220 * alpha).astype(np.uint8), 12, constant_values=255)
    trace = []
    out = to_mnist(image, trace=trace)
    assert trace == []
    assert np.array_equal(out, to_mnist(image, cleanup=False))


def halftone_digit(label: int, period: float) -> tuple[np.ndarray, np.ndarray]:
    """(the clean glyph, the same glyph as dots on a square lattice `period` px apart), uint8 dark on light."""
    alpha = glyph("pillow:aileron", label, 80, np.random.default_rng(0), bold=0.04)
    dots = _halftone(alpha, period, diagonal=False)
    page = lambda a: np.pad(np.round(250 - 230 * a).astype(np.uint8), 10, constant_values=250)  # noqa: E731
    return page(alpha), page(dots)


def largest_share(digit: np.ndarray) -> float:
    from scipy import ndimage

    labels, n = ndimage.label(digit > 64, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    return float(sizes.max() / sizes.sum())


@pytest.mark.parametrize("label", [3, 5])
def test_a_halftone_digit_becomes_one_connected_glyph(label):
    clean, dots = halftone_digit(label, 7.0)
    gray = 1 - load_image(dots)
    from scipy import ndimage

    labels, n = ndimage.label(gray > 0.5, structure=np.ones((3, 3)))
    spacing = cleanup.lattice_period(labels, np.bincount(labels.ravel())[1:])
    assert spacing is not None and abs(spacing - 7.0) < 1.0
    trace = []
    read = to_mnist(dots, trace=trace)
    assert trace == ["halftone"]
    assert largest_share(read) > 0.95  # one glyph, not a cloud of dots
    before = to_mnist(dots, cleanup=False)  # the speck removal keeps a few dots of it
    reference = to_mnist(clean)
    assert iou(read, reference) > 0.6 and iou(read, reference) > iou(before, reference) + 0.1


def test_specks_around_a_solid_digit_are_no_lattice():
    rng = np.random.default_rng(3)
    image = np.full((100, 100), 240, np.uint8)
    image[20:80, 44:56] = 20  # a "1"
    for y, x in rng.integers(0, 97, (40, 2)):
        image[y : y + 3, x : x + 3] = 20
    trace = []
    to_mnist(image, trace=trace)
    assert trace == []


def test_a_one_colour_picture_in_its_alpha_is_not_blank():
    """A dense grid and a 7 drawn in one ink colour on a transparent canvas, the grid covering most of it:
    the median opaque colour is the ink, so compositing onto it made a blank image ("contrast 0.000")."""
    h, w = 60, 50
    yy, xx = np.mgrid[0:h, 0:w]
    coverage = np.where((yy % 4 < 2) | (xx % 4 < 2), 0.6, 0.0)  # three quarters of the canvas
    seven = np.zeros((h, w), bool)
    seven[10:16, 10:40] = True
    for y in range(16, 52):
        x = 38 - (y - 16) * 0.5
        seven[y, int(x) - 3 : int(x) + 3] = True
    coverage[seven] = 1.0
    rgba = np.dstack([np.full((h, w, 3), (20, 30, 140), np.uint8), np.round(coverage * 255).astype(np.uint8)])
    gray = load_image(Image.fromarray(rgba, "RGBA"))
    assert gray.max() - gray.min() > 0.5
    assert gray[seven].mean() < 0.3 and gray[coverage == 0].mean() > 0.9  # dark ink on white
    assert 0.3 < gray[~seven & (coverage > 0)].mean() < 0.8  # the grid in between


def crossed(label: int, font: str, angle: float, width_share: float,
            pad: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a glyph dark on light, the same with a straight line drawn across the whole picture through its middle,
    the line's own mask), uint8; the line is `width_share` of the glyph's stroke width wide."""
    alpha = glyph(font, label, 80, np.random.default_rng(label), bold=0.04 if font != "pen" else 0.0)
    alpha = np.pad(alpha, pad)
    h, w = alpha.shape
    width = max(1, round(width_share * _stroke_width(alpha > 0.5)))
    t, r = np.radians(angle), h + w
    cy, cx = h * 0.45, w * 0.55
    layer = Image.new("L", (w, h), 0)
    ImageDraw.Draw(layer).line([(cx - r * np.cos(t), cy - r * np.sin(t)), (cx + r * np.cos(t), cy + r * np.sin(t))],
                               fill=255, width=width)
    line = np.asarray(layer, dtype=np.float64) / 255
    page = lambda a: np.round(245 - 225 * a).astype(np.uint8)  # noqa: E731
    return page(alpha), page(np.maximum(alpha, line)), line > 0.5


@pytest.mark.parametrize("label, font, angle, share", [(0, "pillow:aileron", 20, 0.5), (3, "mpl:cmmi10.ttf", 125, 0.4),
                                                        (5, "pen", 70, 0.6), (6, "mpl:cmmi10.ttf", 40, 0.6)])
def test_a_line_across_the_picture_is_cut_out_and_the_digit_kept(label, font, angle, share):
    clean, lined, line = crossed(label, font, angle, share)
    ink = 1 - load_image(lined) > 0.5
    # the line is gone (but for a few pixels of its antialiased rim), the digit kept
    assert_stroke_cut(cleanup.remove_crossing_lines(ink, ink), clean, lined, line, "crossing_lines", left=0.05, kept=0.98)


def assert_stroke_cut(cut, clean, drawn, stroke, step: str, left: float, kept: float) -> None:
    """`cut` (a step's ink mask of `drawn`, the digit `clean` with `stroke` across it) keeps under `left` of the
    stroke where it runs away from the glyph and over `kept` of the glyph; to_mnist runs `step` and reads much
    closer to the clean digit than without the style steps."""
    assert cut is not None
    glyph_ink = 1 - load_image(clean) > 0.5
    alone = stroke & ~ndimage.binary_dilation(glyph_ink, iterations=3)  # the stroke where it runs away from the glyph
    assert (cut & alone).sum() < left * alone.sum()
    assert (cut & glyph_ink).sum() > kept * glyph_ink.sum()
    trace = []
    read = to_mnist(drawn, trace=trace)
    assert step in trace
    reference = to_mnist(clean)
    before = to_mnist(drawn, cleanup=False)
    assert iou(read, reference) > 0.6 and iou(read, reference) > iou(before, reference) + 0.25


@pytest.mark.parametrize("font", ["pillow:aileron", "mpl:cmmi10.ttf", "pen"])
@pytest.mark.parametrize("label", [1, 4, 7])
@pytest.mark.parametrize("pad", [0, 1, 12])
def test_long_straight_strokes_of_1_4_7_are_no_crossing_lines(font, label, pad):
    alpha = glyph(font, label, 90, np.random.default_rng(label))
    image = np.pad(np.round(255 - 220 * alpha).astype(np.uint8), pad, constant_values=255)
    trace = []
    out = to_mnist(image, trace=trace)
    assert "crossing_lines" not in trace
    if not trace:
        assert np.array_equal(out, to_mnist(image, cleanup=False))


@pytest.mark.parametrize("kind", ["1", "4"])
def test_a_bar_from_border_to_border_is_the_glyph_not_a_line(kind):
    body = solid(kind)
    rows = np.flatnonzero(body.any(axis=1))
    tight = body[rows[0] : rows[-1] + 1]  # the stem runs from the top border to the bottom one
    assert cleanup.remove_crossing_lines(tight, tight) is None
    trace = []
    to_mnist(picture(tight, pad=0), trace=trace)
    assert trace == []


def gridded(label: int, font: str, period: float, angle: float, strength: float,
            diamond: bool) -> tuple[np.ndarray, np.ndarray]:
    """(a glyph dark on light, the same on a lattice of lines 2 px wide, `period` px apart, `strength` of the ink's
    darkness, behind it), uint8."""
    alpha = np.pad(glyph(font, label, 80, np.random.default_rng(label), bold=0.04 if font != "pen" else 0.0), 20)
    h, w = alpha.shape
    lattice = _grid_pattern(np.random.default_rng(1), h, w, period, angle, 2, diamond)
    page = lambda a: np.round(245 - 225 * a).astype(np.uint8)  # noqa: E731
    return page(alpha), page(np.maximum(alpha, strength * lattice))


@pytest.mark.parametrize("label, font, period, angle, strength, diamond",
                         [(2, "pillow:aileron", 10, 0, 0.5, False), (5, "pen", 14, 20, 0.9, True),
                          (7, "mpl:cmmi10.ttf", 12, 45, 0.7, False), (3, "pillow:aileron", 9, 10, 0.9, False),
                          (4, "pen", 16, 35, 0.5, True)])
def test_a_grid_behind_the_digit_is_opened_away(label, font, period, angle, strength, diamond):
    clean, lattice = gridded(label, font, period, angle, strength, diamond)
    gray = np.clip((245 - lattice.astype(np.float32)) / 225, 0, 1)  # ink bright, paper 0, max 1, as _clean has it
    cleaned = cleanup.remove_grid(gray)
    assert cleaned is not None
    lines = (gray > 0.3) & ~ndimage.binary_dilation(clean < 240, iterations=2)
    left, _ = ndimage.label((cleaned > cleanup.GRID_LEVEL) & lines, structure=np.ones((3, 3)))
    assert np.bincount(left.ravel())[1:].max(initial=0) <= 40  # where they run alone, specks of the crossings at most
    trace = []
    read = to_mnist(lattice, trace=trace)
    assert "grid" in trace
    reference = to_mnist(clean)
    before = to_mnist(lattice, cleanup=False)
    assert iou(read, reference) > 0.7 and iou(read, reference) > iou(before, reference) + 0.25


def curved(label: int, font: str, share: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a glyph dark on light, the same with a sine curve across the whole picture `share` of the stroke width
    wide, the curve's own mask), uint8."""
    alpha = np.pad(glyph(font, label, 80, np.random.default_rng(label), bold=0.04 if font != "pen" else 0.0), 30)
    h, w = alpha.shape
    width = max(1, round(share * _stroke_width(alpha > 0.5)))
    x = np.linspace(-2, w + 2, 60)
    y = h * 0.5 + h * 0.2 * np.sin(2 * np.pi * x / (1.2 * w) + np.random.default_rng(seed).uniform(0, 2 * np.pi))
    curve = _lines_layer((w, h), [list(zip(x, y))], width)
    page = lambda a: np.round(245 - 225 * a).astype(np.uint8)  # noqa: E731
    return page(alpha), page(np.maximum(alpha, curve)), curve > 0.5


@pytest.mark.parametrize("label, font, seed", [(3, "mpl:cmmi10.ttf", 2), (5, "pillow:aileron", 4), (4, "pen", 5)])
def test_a_thin_curve_across_the_picture_is_cut_out_and_the_digit_kept(label, font, seed):
    clean, drawn, curve = curved(label, font, 0.5, seed)
    ink = 1 - load_image(drawn) > 0.5
    # most of the curve is gone (what is left lies between strokes), the digit kept
    assert_stroke_cut(cleanup.remove_crossing_curves(ink), clean, drawn, curve, "crossing_curves", left=0.2, kept=0.97)


@pytest.mark.parametrize("font", ["pillow:aileron", "mpl:cmmi10.ttf", "pen", "pillow:bitmap"])
@pytest.mark.parametrize("pad", [0, 1, 3, 12])
def test_plain_digits_have_no_grid_and_no_crossing_curves(font, pad):
    for label in range(10):
        alpha = glyph(font, label, 90, np.random.default_rng(label))
        image = np.pad(np.round(255 - 220 * alpha).astype(np.uint8), pad, constant_values=255)
        trace = []
        out = to_mnist(image, trace=trace)
        assert trace == [], (label, trace)
        assert np.array_equal(out, to_mnist(image, cleanup=False))


def test_cleanup_steps_counts_each_step_per_class_and_switches_one_off(repo_root):
    """scripts/cleanup_steps.py: the grid step fires on grid digits of the validation split (63 of 77 on seed 31,
    README), and `--without remove_grid` leaves no grid row; every count is out of the class's digits. Its second
    table, the digits still carrying their class's addition, counts more grid digits with the grid step off."""
    import subprocess
    import sys

    def tables(*extra: str) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
        done = subprocess.run([sys.executable, "scripts/cleanup_steps.py", "--n", "260", "--stress-seeds", "31",
                               "--code-seeds", *extra], cwd=repo_root, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        fired_text, left_text = done.stdout.split("\n\n")
        rows = [line.strip("|").split("|") for line in fired_text.splitlines() if line.startswith("| ") and "---" not in line]
        left = [line.strip("|").split("|") for line in left_text.splitlines() if line.startswith("| ") and "---" not in line]
        return ({(case.strip(), step.strip()): count.strip() for case, step, count in rows[1:]},
                {case.strip(): count.strip() for case, count in left[1:]})

    counts, left = tables()
    fired, of = counts["grid", "grid"].split(" / ")
    assert of == "20" and 10 <= int(fired) <= 20  # 20 grid digits among 260; the step finds most
    assert ("halftone", "halftone") in counts
    assert all(count.split(" / ")[1] == "20" for count in counts.values())
    assert sorted(left) == ["crossing_curves", "crossing_lines", "dots", "grid"]
    assert all(count.split(" / ")[1] == "20" for count in left.values())
    without, left_without = tables("--without", "remove_grid")
    assert ("grid", "grid") not in without and without["halftone", "halftone"] == counts["halftone", "halftone"]
    grid_left, grid_left_without = (int(table["grid"].split(" / ")[0]) for table in (left, left_without))
    assert grid_left_without >= grid_left + 3, (grid_left, grid_left_without)  # the grid stays in most without the step
