"""Seeded 4-digit verification codes ("captchas"), their digit boxes, and reading a code back.

`captcha` 0.7.1 draws every random number through the module-level `secrets` in `captcha.image`
(`secrets.randbelow`, `secrets.choice`, `secrets.randbits`; nothing from `random`). `_seeded` swaps
that module attribute for an object whose three methods come from a `random.Random`, under a lock,
and puts the real module back afterwards, so one seed gives byte-identical images in any process.
Each image i of a set draws from its own `Random(f"codes:{seed}:{i}")` (string seeds are hashed
with SHA-512, independent of PYTHONHASHSEED), so sets are prefix-stable and seeds never share streams.

Train and test codes come from different seed streams: training sets use seeds TRAIN_SEED_BASE + k
(k = 0, 1, ...), the test set uses TEST_SEED, so no test image is ever a training image.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import captcha
import captcha.image as captcha_image
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from parity.codes import normalize as digits
from parity.files import atomic_write



__all__ = [
    "CodeSet",
    "TRAIN_SEED_BASE",
    "TEST_SEED",
    "DEFAULT_CACHE",
    "generate_codes",
    "load_or_generate",
    "digit_crops",
    "segment_boxes",
    "segment_code",
    "read_code",
    "segmented_crops",
    "training_digits",
    "printed_digits",
    "unseen_style_digits",
]

TRAIN_SEED_BASE = 1_000
TEST_SEED = 7
DEFAULT_CACHE = Path(__file__).resolve().parents[2] / "data" / "codes"
CAPTCHA_VERSION = getattr(captcha, "__version__", "0.7")
INK_SHARE = 0.5  # a pasted character's pixel is ink where its mask is at least this share of its body's

_patch_lock = threading.RLock()


@dataclass
class CodeSet:
    images: np.ndarray  # uint8 (N, H, W, 3) RGB code images
    codes: np.ndarray  # '<U4' strings, e.g. "0371"
    boxes: np.ndarray  # int (N, length, 4): per digit (x0, y0, x1, y1), x1/y1 exclusive, in the image
    seed: int
    visible: np.ndarray | None = None  # float (N, length): share of each digit's ink inside the image


class _SeededSecrets:
    """The three `secrets` functions captcha.image calls, drawn from a seeded `random.Random`."""

    def __init__(self, rng: random.Random) -> None:
        self.randbelow = rng.randrange  # secrets.randbelow(n) is uniform on [0, n), as randrange(n)
        self.choice = rng.choice
        self.randbits = rng.getrandbits


@contextmanager
def _seeded(rng: random.Random) -> Iterator[None]:
    """Make captcha.image draw from `rng` inside the block; restores the real `secrets` after."""
    with _patch_lock:
        original = captcha_image.secrets
        captcha_image.secrets = _SeededSecrets(rng)
        try:
            yield
        finally:
            captcha_image.secrets = original


class _RecordingCaptcha(captcha_image.ImageCaptcha):
    """ImageCaptcha whose composing step also records where each character's ink lands.

    `create_captcha_image` is 0.7.1's method line for line (same random draws in the same order, so
    the pixels are identical to the stock class's: tests check that), plus the bookkeeping.
    """

    last_boxes: list[tuple[int, int, int, int]]
    last_visible: list[float]

    def create_captcha_image(self, chars, color, background):  # type: ignore[override]
        secrets = captcha_image.secrets
        image = Image.new("RGB", (self._width, self._height), background)
        draw = ImageDraw.Draw(image)

        images: list[Image.Image] = []
        is_char: list[bool] = []
        for c in chars:
            if secrets.randbits(32) / (2**32) > self.word_space_probability:
                images.append(self._draw_character(" ", draw, color))
                is_char.append(False)
            images.append(self._draw_character(c, draw, color))
            is_char.append(True)

        text_width = sum([im.size[0] for im in images])
        width = max(text_width, self._width)
        image = image.resize((width, self._height))

        average = int(text_width / len(chars))
        rand = int(self.word_offset_dx * average)
        offset = int(average * 0.1)

        boxes: list[tuple[int, int, int, int]] = []
        visible: list[float] = []
        sx = self._width / width  # the canvas is squeezed back to self._width at the end
        for im, real in zip(images, is_char):
            w, h = im.size
            mask = im.convert("L").point(self.lookup_table)
            top = int((self._height - h) / 2)
            image.paste(im, (offset, top), mask)
            if real:
                box, share = self._ink_box(np.asarray(mask), offset, top, width)
                x0, y0, x1, y1 = box
                left_x = int(np.floor(x0 * sx))
                right_x = int(np.ceil(x1 * sx)) if x1 > x0 else left_x  # an invisible digit stays empty
                boxes.append((left_x, y0, right_x, y1))
                visible.append(share)
            offset = offset + w + (-secrets.randbelow(rand + 1))

        if width > self._width:
            image = image.resize((self._width, self._height))
        self.last_boxes, self.last_visible = boxes, visible
        return image

    def _ink_box(self, mask: np.ndarray, left: int, top: int, width: int) -> tuple[tuple[int, int, int, int], float]:
        """Ink box of one pasted character in canvas pixels (clipped), and how much of its ink is on it."""
        # Dark ink colours make faint characters (the paste mask is 1.97 x the glyph's luma), so
        # "ink" is relative to the character's own typical mask value (a high percentile: a few
        # resampling artefacts at the glyph's edge reach far above the body).
        body = mask[mask > 0]
        peak = float(np.percentile(body, 90)) if body.size else 0.0
        ys, xs = np.nonzero(mask >= max(INK_SHARE * peak, 4))
        if len(xs) == 0:
            return (left, max(top, 0), left, max(top, 0)), 0.0
        xs, ys = xs + left, ys + top
        inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < self._height)
        if not inside.any():
            return (min(left, width), max(top, 0), min(left, width), max(top, 0)), 0.0
        xs, ys = xs[inside], ys[inside]
        return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), float(inside.mean())


@lru_cache(maxsize=8)
def _captcha(width: int, height: int, fonts: tuple[str, ...] | None) -> _RecordingCaptcha:
    return _RecordingCaptcha(width=width, height=height, fonts=list(fonts) if fonts else None)


def _image_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"codes:{seed}:{index}")


def generate_codes(
    n: int,
    seed: int,
    *,
    width: int = 160,
    height: int = 60,
    fonts: list[str] | tuple[str, ...] | None = None,
    length: int = 4,
) -> CodeSet:
    """n random `length`-digit codes drawn by captcha's ImageCaptcha, reproducible from `seed`."""
    maker = _captcha(width, height, tuple(fonts) if fonts else None)
    images = np.zeros((n, height, width, 3), dtype=np.uint8)
    codes: list[str] = []
    boxes = np.zeros((n, length, 4), dtype=np.int64)
    visible = np.zeros((n, length), dtype=np.float32)
    for i in range(n):
        rng = _image_rng(seed, i)
        code = "".join(rng.choice("0123456789") for _ in range(length))
        with _seeded(rng):
            images[i] = np.asarray(maker.generate_image(code).convert("RGB"))
            boxes[i], visible[i] = maker.last_boxes, maker.last_visible
        codes.append(code)
    return CodeSet(images=images, codes=np.array(codes, dtype=f"<U{length}"), boxes=boxes, seed=seed, visible=visible)


def _cache_name(n: int, seed: int, width: int, height: int, fonts: tuple[str, ...] | None, length: int) -> str:
    font_tag = "default" if not fonts else hashlib.sha1("\n".join(fonts).encode()).hexdigest()[:10]
    return f"codes-v{CAPTCHA_VERSION}-n{n}-seed{seed}-{width}x{height}-len{length}-fonts-{font_tag}.npz"


def load_or_generate(
    n: int,
    seed: int,
    *,
    cache_dir: str | os.PathLike = DEFAULT_CACHE,
    width: int = 160,
    height: int = 60,
    fonts: list[str] | tuple[str, ...] | None = None,
    length: int = 4,
) -> CodeSet:
    """`generate_codes`, cached as .npz in `cache_dir` (the name encodes every argument and captcha's
    version). Written to a temporary file and renamed, so a crash never leaves half a cache behind."""
    fonts_t = tuple(fonts) if fonts else None
    path = Path(cache_dir) / _cache_name(n, seed, width, height, fonts_t, length)
    if path.exists():
        try:
            with np.load(path) as data:
                return CodeSet(
                    images=data["images"],
                    codes=data["codes"],
                    boxes=data["boxes"],
                    seed=int(data["seed"]),
                    visible=data["visible"],
                )
        except (OSError, KeyError, ValueError):
            pass  # unreadable or old cache: make it again
    codeset = generate_codes(n, seed, width=width, height=height, fonts=fonts_t, length=length)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        np.savez_compressed(
            fh,
            images=codeset.images,
            codes=codeset.codes,
            boxes=codeset.boxes,
            seed=np.int64(seed),
            visible=codeset.visible,
        )
    return codeset


# ------------------------------------------------------------------------------- digits of a code
def _box_crop(image: np.ndarray, box: np.ndarray, pad: int = 2) -> np.ndarray:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    return image[max(y0 - pad, 0) : min(y1 + pad, h), max(x0 - pad, 0) : min(x1 + pad, w)]


def digit_crops(codeset: CodeSet, *, min_visible: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Each ground-truth digit box (padded 2 px) through `digits.to_mnist` -> uint8 (M, 28, 28) and
    int64 labels. M = N * length unless a digit is unreadable (e.g. pushed off the canvas): such crops
    are left out, as are digits with less than `min_visible` of their ink inside the image."""
    crops, labels = [], []
    for i, (image, code) in enumerate(zip(codeset.images, codeset.codes)):
        for j, box in enumerate(codeset.boxes[i]):
            if codeset.visible is not None and codeset.visible[i, j] < min_visible:
                continue
            try:
                crops.append(digits.to_mnist(_box_crop(image, box)))
            except digits.NoDigit:
                continue
            labels.append(int(code[j]))
    if not crops:
        return np.zeros((0, 28, 28), dtype=np.uint8), np.zeros(0, dtype=np.int64)
    return np.stack(crops), np.array(labels, dtype=np.int64)


def _cuts(profile: np.ndarray, n: int) -> list[tuple[int, int]]:
    """Split the columns of an ink profile into n left-to-right pieces, each holding ink.

    Dynamic programming over cut columns: a cut costs the ink it slices (relative to a typical
    column); a piece costs how far its ink width strays from the mean digit width, and how far its
    ink falls short of half an average digit's. Gaps cost nothing, so separate digits split at gaps,
    and touching digits split at the thinnest joint near where a digit's width says it should be.
    Returns (first, last + 1) ink columns of each piece.
    """
    cols = np.flatnonzero(profile > 0)
    if len(cols) < n:
        raise digits.NoDigit(f"only {len(cols)} ink columns for {n} digits")
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
        raise digits.NoDigit(f"cannot split the ink into {n} digits")
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
    pieces (see `_cuts`), and each box spans its piece's ink columns and the rows they hold ink in.
    """
    ink, scale = digits.ink_map(image, keep_fraction=0.03, edge_fraction=0.0)
    boxes = []
    for x0, x1 in _cuts(ink.sum(axis=0), n_digits):
        rows = np.flatnonzero(ink[:, x0:x1].any(axis=1))
        box = np.array([x0, rows[0], x1, rows[-1] + 1]) / scale
        boxes.append([np.floor(box[0]), np.floor(box[1]), np.ceil(box[2]), np.ceil(box[3])])
    return np.array(boxes, dtype=np.int64)


def segment_code(image: np.ndarray | Image.Image | str | os.PathLike, n_digits: int = 4) -> list[np.ndarray]:
    """Split a whole code image into n_digits crops, left to right, without ground truth: uint8 gray
    crops of `segment_boxes` with the same 2 px margin `digit_crops` uses, so `digits.to_mnist` sees
    what it saw for ground-truth boxes. Raises digits.NoDigit if the image holds too little ink."""
    gray = digits.load_image(image)
    return [np.round(_box_crop(gray, box) * 255).astype(np.uint8) for box in segment_boxes(gray, n_digits)]


def read_code(
    image: np.ndarray | Image.Image | str | os.PathLike,
    classify: Callable[[np.ndarray], np.ndarray],
    n_digits: int = 4,
) -> str:
    """Segment, normalise to MNIST style and classify: the code as a string of n_digits digits.
    `classify` takes uint8 (k, 28, 28) crops and returns k digits. Raises NoDigit if unreadable."""
    crops = digits.to_mnist_batch(segment_code(image, n_digits))
    return "".join(str(int(d)) for d in np.asarray(classify(crops)).reshape(-1))


def segmented_crops(codeset: CodeSet) -> tuple[np.ndarray, np.ndarray]:
    """Crops as `read_code` makes them (segmentation, not ground truth), labelled by position; a piece
    whose centre misses the true box of its position is left out, so no label is wrong."""
    crops, labels = [], []
    for image, code, true_boxes in zip(codeset.images, codeset.codes, codeset.boxes):
        try:
            found = segment_boxes(image, len(code))
        except digits.NoDigit:
            continue
        gray = digits.load_image(image)
        for j, (box, true) in enumerate(zip(found, true_boxes)):
            centre = (box[0] + box[2]) / 2
            if not true[0] <= centre <= true[2]:
                continue
            try:
                crops.append(digits.to_mnist(np.round(_box_crop(gray, box) * 255).astype(np.uint8)))
            except digits.NoDigit:
                continue
            labels.append(int(code[j]))
    return np.stack(crops), np.array(labels, dtype=np.int64)


def _cached_digits(path: Path, make: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) from the .npz at `path`, made by `make` and written atomically if absent."""
    if path.exists():
        with np.load(path) as data:
            return data["images"], data["labels"]
    images, labels = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        np.savez_compressed(fh, images=images, labels=labels)
    return images, labels


def training_digits(n_codes: int, seed: int = TRAIN_SEED_BASE, *, cache_dir: str | os.PathLike = DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-style digits from n_codes training codes, for mixing into MNIST: each digit twice, as cut
    by its true box and as cut by `segment_boxes` (what reading a code will see). Cached as .npz."""

    def make() -> tuple[np.ndarray, np.ndarray]:
        codeset = load_or_generate(n_codes, seed, cache_dir=cache_dir)
        true_crops, true_labels = digit_crops(codeset)
        cut_crops, cut_labels = segmented_crops(codeset)
        return np.concatenate([true_crops, cut_crops]), np.concatenate([true_labels, cut_labels])

    return _cached_digits(Path(cache_dir) / f"train-digits-{_cache_name(n_codes, seed, 160, 60, None, 4)}", make)


# ------------------------------------------------------------------------- digits in unseen styles
# Printed digits for training come from other font families (captcha's Droid Sans Mono and STIX),
# so the unseen-style test set below (DejaVu and Computer Modern) stays unseen.
PRINTED_TRAIN_FONTS = (
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
)

UNSEEN_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
)


def _font_paths(names: tuple[str, ...] = UNSEEN_FONTS) -> list[Path]:
    """Fonts matplotlib ships (a dependency, so every install has them), none of them captcha's."""
    import matplotlib  # only here: plotting is not otherwise needed to make codes

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    paths = [font_dir / name for name in names if (font_dir / name).exists()]
    if not paths:
        raise FileNotFoundError(f"no TrueType fonts found in {font_dir}")
    return paths


def _background(rng: np.random.Generator, size: tuple[int, int], base: np.ndarray, style: str) -> np.ndarray:
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    if style == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
        field = base + rng.uniform(-60, 60, 3) * (ramp - ramp.mean())
    elif style == "noise":
        field = base + rng.normal(0, rng.uniform(5, 18), (h, w, 1))
    elif style == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(3, 9)
        wave = np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) * max(h, w) / period)[..., None]
        field = base + rng.uniform(8, 25) * wave
    else:  # flat
        field = np.broadcast_to(base, (h, w, 3))
    return np.clip(field, 0, 255)


def _unseen_digit(rng: np.random.Generator, fonts: list[Path], label: int) -> np.ndarray:
    font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), int(rng.integers(18, 72)))
    dark_ink = rng.random() < 0.6
    while True:  # colours with a clear luma difference, one light and one dark
        ink = rng.integers(0, 256, 3).astype(np.float64)
        paper = rng.integers(0, 256, 3).astype(np.float64)
        if (paper @ digits.LUMA - ink @ digits.LUMA) * (1 if dark_ink else -1) > 90:
            break
    # The glyph as an alpha mask, rotated a little, then cut with a random margin.
    left, top, right, bottom = font.getbbox(str(label))
    glyph = Image.new("L", (right - left + 8, bottom - top + 8), 0)
    ImageDraw.Draw(glyph).text((4 - left, 4 - top), str(label), font=font, fill=255)
    glyph = glyph.rotate(float(rng.uniform(-15, 15)), Image.Resampling.BICUBIC, expand=True)
    glyph = glyph.crop(glyph.getbbox())
    gw, gh = glyph.size
    mx, my = (int(rng.integers(1, max(2, int(0.5 * gw)))) for _ in range(2))
    h, w = gh + my + int(rng.integers(1, max(2, int(0.5 * gh)))), gw + mx + int(rng.integers(1, max(2, int(0.5 * gw))))
    style = ("flat", "gradient", "noise", "stripes")[int(rng.integers(4))]
    canvas = _background(rng, (h, w), paper, style)
    alpha = np.zeros((h, w), dtype=np.float64)
    alpha[my : my + gh, mx : mx + gw] = np.asarray(glyph) / 255.0
    canvas = canvas * (1 - alpha[..., None]) + ink * alpha[..., None]
    image = Image.fromarray(np.round(canvas).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    noise_colour = tuple(int(v) for v in ink)
    for _ in range(int(rng.integers(0, 3))):  # thin noise lines across the digit
        draw.line([(int(rng.integers(w)), int(rng.integers(h))), (int(rng.integers(w)), int(rng.integers(h)))], fill=noise_colour, width=1)
    for _ in range(int(rng.integers(0, 6))):  # dots
        x, y = int(rng.integers(w)), int(rng.integers(h))
        draw.point([(x, y), (x + 1, y)], fill=noise_colour)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.SMOOTH)
    # Round-trip through another image mode now and then, as real crops come in all of them.
    mode = ("RGB", "RGB", "L", "P", "CMYK")[int(rng.integers(5))]
    if mode == "P":
        image = image.quantize(colors=int(rng.integers(8, 64)))
    elif mode != "RGB":
        image = image.convert(mode)
    return np.asarray(image.convert("RGB"))


def unseen_style_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n single-digit crops in styles captcha's default font never makes: matplotlib's DejaVu, STIX
    and Computer Modern fonts, random dark-on-light or light-on-dark colours, flat / gradient / noisy /
    striped backgrounds, rotation up to 15 degrees, noise lines and dots, crop sizes ~15-150 px, and
    a trip through L / P / CMYK modes. Returns an object array of RGB uint8 (H, W, 3) arrays of varying
    size, and int64 labels. Reproducible from `seed`."""
    fonts = _font_paths()
    rng = np.random.default_rng([seed, 0x5EED])
    labels = rng.integers(0, 10, n)
    images = np.empty(n, dtype=object)
    for i, label in enumerate(labels):
        images[i] = _unseen_digit(rng, fonts, int(label))
    return images, labels.astype(np.int64)


def printed_digits(n: int, seed: int = TRAIN_SEED_BASE, *, cache_dir: str | os.PathLike = DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray]:
    """n MNIST-style training digits printed in PRINTED_TRAIN_FONTS (never the unseen-style fonts):
    random font, size, stroke weight and slight rotation, normalised by `digits.to_mnist`. Cached."""
    name = f"printed-digits-n{n}-seed{seed}-" + hashlib.sha1("\n".join(PRINTED_TRAIN_FONTS).encode()).hexdigest()[:10] + ".npz"
    return _cached_digits(Path(cache_dir) / name, lambda: _print_digits(n, seed))


def _print_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 2])
    fonts = [str(p) for p in _font_paths(PRINTED_TRAIN_FONTS)]
    labels = rng.integers(0, 10, n)
    images = []
    for label in labels:
        size = int(rng.integers(28, 64))
        font = ImageFont.truetype(fonts[int(rng.integers(len(fonts)))], size)
        canvas = Image.new("L", (2 * size, 2 * size), 0)
        ImageDraw.Draw(canvas).text((size // 2, size // 4), str(label), fill=255, font=font, stroke_width=int(rng.integers(0, 3)), stroke_fill=255)
        canvas = canvas.rotate(float(rng.uniform(-10, 10)), resample=Image.Resampling.BILINEAR)
        images.append(digits.to_mnist(np.asarray(canvas)))
    return np.stack(images), labels.astype(np.int64)
