"""A style stress set: single digits in named classes of difficulty, with a validation and a test split,
and a third split, TRAIN, that the `best` recipe learns from (parity.codes.training.style_digits).

Each image is one plain digit with one difficulty (its class) added: `grid` (line lattices behind it),
`crossing_lines`, `crossing_curves`, `dots` (ink specks around it, paper specks in it), `blur`, `tiny` (ink
under 20 px tall, in a big canvas or a small one), `outline` (only the contour drawn), `halftone` (made of
dots), `neighbour_fragments` (parts of neighbouring digits at the left/right edge), `rotation_shear`,
`low_contrast`, `inverted` (light on dark) and `fonts` (nothing added). Class i % 13 for image i; canvases
28-120 px (`tiny`'s small canvases less); modes L, RGB, RGBA (dark ink: half of them on a transparent canvas),
P and I;16, one in five each. NumPy and Pillow only. Image i of (split, seed) draws from its own stream
`default_rng([SALT[split], seed, i])`: byte-identical in any process, prefix-stable, and no two splits ever
share a stream, even for the same seed (defaults: train 1000, validation 31, test 53; codes use 7 and 1000+).

Fonts (FONT_FAMILIES: split -> typeface family -> fonts). Training uses STIX (printed digits, fonts.py),
captcha's Droid Sans Mono (codes) and, in the TRAIN split, seven families from PyPI font packages that the
project installs (Source Sans / Serif Pro, Caladea, Fredoka One, Hanken Grotesk, Amatic SC, Intuitive):
neither scored split uses any of them. The unseen-style test set (fonts.py) uses
DejaVu Sans / Serif / Sans Mono and Computer Modern cmr10 / cmss10 / cmtt10: those families are the stress
TEST split's too (with cuts it lacks: DejaVu Sans Mono Bold Oblique, cmb10, cmti10 of CM Roman), so one
group of families is held out for testing and nothing tuned on validation saw it. VALIDATION gets the
families left: Pillow's own FreeType font (Aileron), Pillow's bitmap font (upscaled pixels), Computer Modern
Math Italic (cmmi10: old-style figures; a separate design in Knuth's CM collection, which the test split's
CM Roman/Sans/Typewriter also belong to) and a pen font drawn here (jittered polylines). So validation is
narrower in fonts than test: a validation score does not promise the test score.

Generator settings (SETTINGS_SIDE_BY_SIDE, in parity.codes.stress_splits with the other tables): in every class the settings that define it take disjoint values
in the three splits (e.g. grid periods and angles; resampling vs Gaussian vs box blur; hexagonal vs square vs
diagonal halftone lattices; Bezier vs sine vs arc curves). Shared: canvas sizes, margins, the plain classes'
colours, image modes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from parity.codes.fonts import font_paths
from parity.codes.grayscale import LUMA
from parity.codes.normalize import _stroke_width as stroke_width  # the normaliser's own estimate (2 * area / boundary)
from parity.codes.stress_splits import (  # noqa: F401  the splits' tables, re-exported
    CLASSES, DEFAULT_SEEDS, FAMILIES, FONT_FAMILIES, FONTS, MODES, SALT, SETTINGS, SETTINGS_SIDE_BY_SIDE, SPLITS, TRAIN,
    TRAINING_FAMILIES,
)


@dataclass
class StressDigit:
    image: Image.Image  # mode one of MODES
    label: int
    cls: str
    font: str
    params: dict = field(default_factory=dict)  # the class's settings as drawn


def _arc(cx, cy, rx, ry, t0, t1, steps=24):
    t = np.radians(np.linspace(t0, t1, steps))
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t)))


PEN_STROKES = {  # digits on a 6 x 10 box, y down; arcs' angles in degrees, 270 = top
    0: [_arc(3, 5, 3, 5, 0, 360)], 1: [[(1.2, 2.2), (3.6, 0), (3.6, 10)]],
    2: [_arc(3, 3, 3, 3, 200, 380) + [(0, 10), (6, 10)]], 3: [_arc(3, 2.6, 2.8, 2.6, 200, 450), _arc(3, 7.4, 3, 2.6, 270, 520)],
    4: [[(4.5, 10), (4.5, 0), (0, 7), (6, 7)]], 5: [[(5.5, 0), (1, 0), (0.6, 4.3)] + _arc(3, 6.8, 3, 3.2, 235, 500)],
    6: [_arc(3, 7, 3, 3, 0, 360), _arc(4, 7, 4, 7, 290, 180)], 7: [[(0, 0), (6, 0), (2, 10)]],
    8: [_arc(3, 2.5, 2.6, 2.5, 0, 360), _arc(3, 7.3, 3, 2.7, 0, 360)], 9: [_arc(3, 3, 3, 3, 0, 360), _arc(2, 3, 4, 7, 470, 360)],
}


def _pen_glyph(rng: np.random.Generator, label: int, height: int) -> np.ndarray:
    """A digit drawn as jittered, slanted polylines with a round pen, 4x supersampled."""
    s, k = 4, (height - 1) / 10 * 0.82
    pen = max(1.0, height * rng.uniform(0.08, 0.14))
    slant = rng.uniform(-0.25, 0.1)
    pad = int(pen * s) + 2
    canvas = Image.new("L", (int((6 + 2.5) * k * s) + 2 * pad, int(10 * k * s) + 2 * pad), 0)
    draw = ImageDraw.Draw(canvas)
    for stroke in PEN_STROKES[label]:
        pts = np.array(stroke) + rng.normal(0, 0.12, 2)
        pts[:, 0] += 1.2 + slant * (pts[:, 1] - 10)
        pts = [(pad + x * k * s, pad + y * k * s) for x, y in pts]
        draw.line(pts, fill=255, width=int(pen * s), joint="curve")
        for x, y in (pts[0], pts[-1]):
            draw.ellipse((x - pen * s / 2, y - pen * s / 2, x + pen * s / 2, y + pen * s / 2), fill=255)
    return _tight(np.asarray(canvas.reduce(s), dtype=np.float64) / 255)


@lru_cache(maxsize=256)
def _font(spec: str, size: int):
    kind, _, name = spec.partition(":")
    if spec == "pillow:aileron":
        return ImageFont.load_default(size)
    if kind == "captcha":
        return ImageFont.truetype(str(resources.files("captcha") / "data" / name), size)
    if kind == "pkg":  # a font package from PyPI (font-caladea, ...): its fonts lie in its files/ folder
        package, _, file = name.partition("/")
        return ImageFont.truetype(str(resources.files(package) / "files" / file), size)
    return ImageFont.truetype(str(font_paths((name,))[0]), size)


def _tight(alpha: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(alpha.max(1) > 0.05), np.flatnonzero(alpha.max(0) > 0.05)
    return alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] if len(rows) else alpha


def _text(font, label: int, bold: int = 0) -> np.ndarray:
    left, top, right, bottom = font.getbbox(str(label), stroke_width=bold)
    image = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(image).text((2 - left, 2 - top), str(label), font=font, fill=255, stroke_width=bold, stroke_fill=255)
    return _tight(np.asarray(image, dtype=np.float64) / 255)


def glyph(spec: str, label: int, height: int, rng: np.random.Generator, *, bold: float = 0.0,
          supersample: int = 1) -> np.ndarray:
    """Alpha (h, w) in [0, 1] of `label` in font `spec`, cropped to its ink, h <= height (and close to it);
    `bold` thickens by that share of the height, `supersample` renders that many times larger and box-filters."""
    if spec == "pen":
        return _pen_glyph(rng, label, height)
    if spec == "pillow:bitmap":
        cell = _text(ImageFont.load_default_imagefont(), label)
        k = max(1, height // cell.shape[0])
        return np.kron(cell, np.ones((k, k)))
    s, size, best, tried = supersample, max(4, round(1.4 * height)), None, set()
    while size not in tried:
        tried.add(size)
        alpha = _text(_font(spec, size * s), label, int(round(bold * height * s)))
        if s > 1:  # box-filter s x s blocks
            rows, cols = -alpha.shape[0] % s, -alpha.shape[1] % s
            alpha = np.pad(alpha, ((0, rows), (0, cols)))
            alpha = _tight(alpha.reshape(alpha.shape[0] // s, s, alpha.shape[1] // s, s).mean(axis=(1, 3)))
        h = alpha.shape[0]
        if h <= height:
            best = alpha
            if h >= height - max(1, height // 25):
                break
        size = max(size + 1, round(size * height / h)) if h <= height else max(4, min(size - 1, round(size * height / h)))
    return best if best is not None else alpha


def _pick(rng, values):
    return values[int(rng.integers(len(values)))]  # np's choice would turn Python numbers into NumPy ones


def _lines_layer(size, paths, width: int) -> np.ndarray:
    layer = Image.new("L", size, 0)
    for path in paths:
        ImageDraw.Draw(layer).line([(float(x), float(y)) for x, y in path], fill=255, width=width, joint="curve")
    return np.asarray(layer, dtype=np.float64) / 255


def _curve(rng, shape: str, w, h) -> list:
    """A line, sine, circular arc or cubic Bezier curve across the canvas, through a point near its middle."""
    x = np.linspace(-2, w + 2, 60)
    if shape == "line":
        cx, cy, t, r = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.65), rng.uniform(0, np.pi), w + h
        return [(cx - r * np.cos(t), cy - r * np.sin(t)), (cx + r * np.cos(t), cy + r * np.sin(t))]
    if shape == "sine":
        amplitude, period = h * rng.uniform(0.15, 0.3), w * rng.uniform(0.8, 1.6)
        y = h * rng.uniform(0.35, 0.65) + amplitude * np.sin(2 * np.pi * x / period + rng.uniform(0, 2 * np.pi))
        return list(zip(x, y))
    if shape == "bezier":  # from one side to the opposite one, two control points inside
        ends = [(-2, h * rng.uniform(0, 1)), (w + 2, h * rng.uniform(0, 1))]
        if rng.random() < 0.5:
            ends = [(w * rng.uniform(0, 1), -2), (w * rng.uniform(0, 1), h + 2)]
        controls = [(w * rng.uniform(0.2, 0.8), h * rng.uniform(0.2, 0.8)) for _ in range(2)]
        p = np.array([ends[0], *controls, ends[1]])
        t = np.linspace(0, 1, 60)[:, None]
        curve = (1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t**2 * p[2] + t**3 * p[3]
        return [tuple(point) for point in curve]
    radius = max(w, h) * rng.uniform(0.6, 1.2)  # an arc of a circle whose rim crosses the middle
    cx, cy, a = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.3, 0.7), rng.uniform(0, 2 * np.pi)
    centre = (cx + radius * np.cos(a), cy + radius * np.sin(a))
    t = np.linspace(a + np.pi - 1.2, a + np.pi + 1.2, 60)
    return list(zip(centre[0] + radius * np.cos(t), centre[1] + radius * np.sin(t)))


def _grid_pattern(rng, h, w, period, angle, width, diamond) -> np.ndarray:
    """Two families of parallel lines `period` px apart (at `angle` and 90 or 60 degrees more), random phases."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    pattern = np.zeros((h, w))
    for a in (angle, angle + (60 if diamond else 90)):
        t = xx * np.cos(np.radians(a)) + yy * np.sin(np.radians(a)) + rng.uniform(0, period)
        distance = np.abs((t + period / 2) % period - period / 2)
        pattern = np.maximum(pattern, np.clip(width / 2 + 0.5 - distance, 0, 1))
    return pattern


def _halftone(alpha: np.ndarray, period: float, diagonal: bool, hexagonal: bool = False) -> np.ndarray:
    """Dots on a lattice (square, diagonal or hexagonal), each as big as the glyph is dark under it (4x supersampled)."""
    s, pad = 4, int(period) + 1
    a = np.pad(alpha, pad)
    h, w = a.shape
    layer = Image.new("L", (w * s, h * s), 0)
    draw = ImageDraw.Draw(layer)
    step = period / np.sqrt(2) if diagonal else period * np.sqrt(3) / 2 if hexagonal else period
    for j, y in enumerate(np.arange(0, h, step)):
        xs = (np.arange(step * (j % 2), w, 2 * step) if diagonal else np.arange(period / 2 * (j % 2), w, period) if hexagonal
              else np.arange(0, w, period))
        for x in xs:
            v = a[min(int(y), h - 1), min(int(x), w - 1)]
            r = 0.36 * period * np.sqrt(v) * s  # dots at least ~1 px apart
            if v > 0.05:
                draw.ellipse((x * s - r, y * s - r, x * s + r, y * s + r), fill=255)
    return _tight(np.asarray(layer.reduce(s), dtype=np.float64) / 255)


def _affine(alpha: np.ndarray, angle: float, shear: float) -> np.ndarray:
    image = Image.fromarray(np.round(alpha * 255).astype(np.uint8)).rotate(angle, Image.Resampling.BICUBIC, expand=True)
    w, h = image.size
    extra = int(np.ceil(abs(shear) * h))
    image = image.transform((w + extra, h), Image.Transform.AFFINE, (1, shear, -shear * h if shear > 0 else 0, 0, 1, 0),
                            Image.Resampling.BICUBIC)
    return _tight(np.asarray(image, dtype=np.float64) / 255)


def _colour_at(rng, luma: float) -> np.ndarray:
    """A random colour (grey to fully saturated) of the given luma (0-255)."""
    d = rng.normal(0, 1, 3)
    d -= d @ LUMA  # LUMA sums to 1: the change leaves the luma alone
    limits = [((255 - luma) if v > 0 else luma) / abs(v) for v in d if abs(v) > 1e-9]
    return luma + rng.uniform(0.0, 1.0) * min(limits) * d


def _shape(rng, cls, cfg, spec, label) -> tuple[np.ndarray, int, int, dict]:
    """(the digit's alpha with the class's change to its shape, glyph height, canvas height, side fragments)."""
    canvas_h = int(rng.integers(28, 121))
    gh = max(12, int(canvas_h * rng.uniform(0.62, 0.88)))
    bold = _pick(rng, (0.0, 0.0, 0.04)) if spec.startswith(("mpl:", "pkg:", "captcha:")) or spec == "pillow:aileron" else 0.0
    if cls == "tiny":
        gh = cfg["height"]
        cfg["canvas"] = _pick(rng, ("small", "large"))
        canvas_h = gh + int(rng.integers(2, 9)) if cfg["canvas"] == "small" else int(rng.integers(40, 121))
    elif cls in ("neighbour_fragments", "rotation_shear"):  # keep the canvas within ~120 px
        gh = min(gh, 64 if cls == "neighbour_fragments" else 80)
    elif cls in ("halftone", "outline"):
        gh = max(gh, 40)
        canvas_h = max(canvas_h, int(gh * 1.15))
        bold = 0.06 if cls == "outline" else bold  # room for a hollow inside
    if cfg.get("raster") == "lanczos":  # drawn 3x as tall, then shrunk with Lanczos
        big = glyph(spec, label, 3 * gh, rng, bold=bold)
        size = (max(1, round(big.shape[1] / 3)), max(1, round(big.shape[0] / 3)))
        shrunk = Image.fromarray(np.round(big * 255).astype(np.uint8)).resize(size, Image.Resampling.LANCZOS)
        alpha = _tight(np.asarray(shrunk, dtype=np.float64) / 255)
    else:
        alpha = glyph(spec, label, gh, rng, bold=bold, supersample=4 if cfg.get("raster") == "supersampled" else 1)
    if cls == "outline":  # the ring just outside the glyph; the glyph itself stays background
        ring = max(1, round(cfg["ring"] * gh))
        a = np.pad(alpha, ring + 1)
        grown = np.asarray(Image.fromarray(np.round(a * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(2 * ring + 1)))
        alpha = _tight(np.clip(grown / 255 - a, 0, 1))
    elif cls == "halftone":
        alpha = _halftone(alpha, max(4.0, cfg["period"] * gh), cfg["lattice"] == "diagonal", cfg["lattice"] == "hexagonal")
    elif cls == "rotation_shear":
        alpha = _affine(alpha, cfg["angle"], -np.sign(cfg["angle"]) * abs(cfg["shear"]))  # both lean one way
        canvas_h = max(canvas_h, alpha.shape[0] + 2)
    fragments = {}
    if cls == "neighbour_fragments":
        cfg["sides"] = _pick(rng, ("left", "right", "both"))
        for side in ("left", "right"):
            if cfg["sides"] in (side, "both"):
                frag = glyph(spec, int(rng.integers(10)), gh, rng, bold=bold)
                keep = max(1, int(cfg["share"] * frag.shape[1]))
                fragments[side] = frag[:, -keep:] if side == "left" else frag[:, :keep]
    return alpha, gh, canvas_h, fragments


def _canvas(rng, cls, cfg, alpha, gh, canvas_h, fragments) -> np.ndarray:
    """The alpha of everything drawn in ink colour at the glyph's place: glyph and fragments on the canvas."""
    fh, fw = alpha.shape
    h = max(canvas_h, fh + 2)
    if cls == "tiny" and cfg["canvas"] == "large":  # anywhere in a big canvas
        w = int(rng.integers(max(fw + 4, 28), 121))
        top, left = int(rng.integers(1, h - fh)), int(rng.integers(1, w - fw))
    else:
        gap = int(round(cfg.get("gap", 0) * gh))
        room = {side: frag.shape[1] + gap for side, frag in fragments.items()}
        left = room.get("left", 0) + int(rng.integers(1, max(2, int(0.35 * gh))))
        w = left + fw + room.get("right", 0) + int(rng.integers(1, max(2, int(0.35 * gh))))
        top = int(rng.integers(1, h - fh))
    a = np.zeros((h, w))
    a[top : top + fh, left : left + fw] = alpha
    for side, frag in fragments.items():
        y = int(np.clip(top + rng.integers(-(gh // 10), gh // 10 + 1), 0, max(0, h - frag.shape[0])))
        x = 0 if side == "left" else w - frag.shape[1]
        part = frag[: h - y]
        a[y : y + len(part), x : x + part.shape[1]] = np.maximum(a[y : y + len(part), x : x + part.shape[1]], part)
    return a


def _make(rng, split: str, cls: str, label: int, plain: bool = False) -> StressDigit:
    cfg = {key: _pick(rng, values) for key, values in SETTINGS[split][cls].items()}
    # The train split picks a family first (its families have 1 to 5 cuts), the scored splits a font.
    spec = _pick(rng, _pick(rng, list(FONT_FAMILIES[TRAIN].values()))) if split == TRAIN else _pick(rng, FONTS[split])
    alpha, gh, canvas_h, fragments = _shape(rng, cls, cfg, spec, label)
    a = _canvas(rng, cls, cfg, alpha, gh, canvas_h, fragments)
    h, w = a.shape
    paper = _colour_at(rng, rng.uniform(120, 250))
    ink = _colour_at(rng, rng.uniform(0, paper @ LUMA - 90))  # dark ink, at least 90 (of 255) darker
    if cls == "low_contrast":
        paper = np.clip(_colour_at(rng, rng.uniform(40 + cfg["difference"], 235)), cfg["difference"], 255)
        ink = paper - cfg["difference"]  # the same step in every channel: luma differs by exactly that
    elif cls == "inverted":
        low = rng.uniform(0, 255 - cfg["difference"])
        high = low + cfg["difference"] + rng.uniform(0, 255 - cfg["difference"] - low)
        paper, ink = {"gray": lambda: (np.full(3, low), np.full(3, high)),
                      "colour": lambda: (_colour_at(rng, low), _colour_at(rng, high)),
                      "mixed": lambda: (np.full(3, low), _colour_at(rng, high))}[cfg["palette"]]()
    background = np.broadcast_to(paper, (h, w, 3)).copy()
    over = salt = blur = None
    if cls == "grid":
        cfg["pattern"], cfg["period_px"] = _pick(rng, ("square", "diamond")), max(3.0, cfg["period"] * gh)
        pattern = _grid_pattern(rng, h, w, cfg["period_px"], cfg["angle"] + rng.uniform(-1, 1), 1 if gh < 50 else 2,
                                cfg["pattern"] == "diamond")
        background += (not plain) * cfg["strength"] * pattern[..., None] * (ink - paper)
    elif cls in ("crossing_lines", "crossing_curves"):
        width = max(1, round(cfg["width"] * stroke_width(alpha > 0.5)))
        shape = "line" if cls == "crossing_lines" else cfg["shape"]
        over = _lines_layer((w, h), [_curve(rng, shape, w, h) for _ in range(cfg["count"])], width)
    elif cls == "dots":
        side = max(1, round(cfg["size"] * gh)) + (1 if cfg["shape"] in ("disc", "blob") else 0)
        count = max(14 if cfg["shape"] == "blob" else 8, int(cfg["density"] * h * w / side**2))
        layers = []
        for n in (count, count // 3):  # ink specks everywhere, then paper specks
            layer = Image.new("L", (w, h), 0)
            draw = ImageDraw.Draw(layer)
            for x, y in zip(rng.integers(0, w, n).tolist(), rng.integers(0, h, n).tolist()):
                if cfg["shape"] == "blob":  # an ellipse of its own size and aspect
                    bw, bh = (max(1, round(side * f)) for f in rng.uniform(0.7, 1.4, 2))
                    draw.ellipse((x, y, x + bw - 1, y + bh - 1), fill=255)
                else:
                    (draw.rectangle if cfg["shape"] == "square" else draw.ellipse)((x, y, x + side - 1, y + side - 1), fill=255)
            layers.append(np.asarray(layer, dtype=np.float64) / 255)
        over, salt = layers[0], layers[1] * (a > 0.5)  # paper specks only on the digit
    elif cls == "blur":
        radius = cfg["radius"] * gh
        blur = (ImageFilter.GaussianBlur(radius) if cfg["kind"] == "gaussian" else ImageFilter.BoxBlur(radius)
                if cfg["kind"] == "box" else max(2, round(2 * radius)))  # resample: shrink by that factor, enlarge again
    rgb = background * (1 - a[..., None]) + ink * a[..., None]
    over, salt = (None, None) if plain else (over, salt)  # drawn (the same random draws) but left off
    for layer, colour in ((over, ink), (salt, paper)):
        if layer is not None:
            rgb = rgb * (1 - layer[..., None]) + colour * layer[..., None]
    image = Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8), "RGB")
    if isinstance(blur, int):
        image = image.reduce(blur).resize(image.size, Image.Resampling.BICUBIC)
    elif blur is not None:
        image = image.filter(blur)
    transparent_ok = cls not in ("low_contrast", "inverted") and ink @ LUMA < 115  # reads as dark ink on white
    image = _to_mode(rng, image, _pick(rng, MODES), paper, ink, transparent_ok)
    params = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in cfg.items()}
    return StressDigit(image, int(label), cls, spec, params)


def _to_mode(rng, image: Image.Image, mode: str, paper, ink, transparent_ok: bool) -> Image.Image:
    if mode in ("L", "RGB"):
        return image.convert(mode)
    if mode == "P":
        return image.quantize(colors=int(_pick(rng, (16, 64, 256))))
    if mode == "I;16":
        return Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * np.uint16(257))
    if mode == "RGBA":
        if transparent_ok and rng.random() < 0.5:  # drawn on a transparent canvas: ink colour, coverage as alpha
            luma = np.asarray(image, dtype=np.float64) @ LUMA
            alpha = np.clip((luma - paper @ LUMA) / (ink @ LUMA - paper @ LUMA), 0, 1)
            rgba = np.dstack([np.broadcast_to(ink, alpha.shape + (3,)), alpha * 255])
            return Image.fromarray(np.round(rgba).astype(np.uint8), "RGBA")
    return image.convert("RGBA")


def stress_digit(split: str, seed: int, index: int, *, plain: bool = False) -> StressDigit:
    """Image `index` of the stress set (split, seed): class CLASSES[index % 13], its own random stream.
    `split` is one of SPLITS, or TRAIN for training digits. `plain`: its twin without the grid, lines, curves or
    specks its class adds (all else the same), to measure what the normaliser's clean-up leaves of them."""
    if split not in SALT:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    rng = np.random.default_rng([SALT[split], seed, index])
    return _make(rng, split, CLASSES[index % len(CLASSES)], int(rng.integers(10)), plain)


def stress_set(n: int, split: str, seed: int | None = None) -> list[StressDigit]:
    """The first n images of the stress set (split, seed); seed None is the split's DEFAULT_SEEDS entry."""
    seed = DEFAULT_SEEDS[split] if seed is None and split in DEFAULT_SEEDS else seed
    return [stress_digit(split, seed, i) for i in range(n)]


def score(digits: list[StressDigit], read: list[int | None]) -> dict:
    """Accuracy overall and per class of `read` (a digit per image; None where the normaliser refused the
    image, which counts as wrong), and the share refused (no_digit). A class with no image has None."""
    n, right, refused = Counter(), Counter(), Counter()
    for digit, got in zip(digits, read):
        n[digit.cls] += 1
        right[digit.cls] += got == digit.label
        refused[digit.cls] += got is None
    share = lambda count, total: count / total if total else None  # noqa: E731
    return {"overall": share(sum(right.values()), len(digits)), "no_digit": share(sum(refused.values()), len(digits)),
            "classes": {c: {"n": n[c], "accuracy": share(right[c], n[c]), "no_digit": share(refused[c], n[c])} for c in CLASSES}}
