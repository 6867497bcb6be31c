"""Digits drawn in TrueType fonts: printed training digits, and a test set in styles never trained on.

Printed digits for training come from other font families (captcha's Droid Sans Mono and STIX), so
the unseen-style test set (DejaVu and Computer Modern) stays unseen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from parity.codes.grayscale import LUMA
from parity.codes.normalize import to_mnist

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


def font_paths(names: tuple[str, ...]) -> list[Path]:
    """The named fonts among those matplotlib ships (a dependency, so every install has them; none
    of them is captcha's). Raises FileNotFoundError if none of them is there."""
    import matplotlib  # only here: plotting is not otherwise needed to make codes

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    paths = [font_dir / name for name in names if (font_dir / name).exists()]
    if not paths:
        raise FileNotFoundError(f"no TrueType fonts found in {font_dir}")
    return paths


def print_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n MNIST-style digits printed in PRINTED_TRAIN_FONTS (never the unseen-style fonts): random
    font, size, stroke weight and slight rotation, normalised by `to_mnist` -> uint8 (n, 28, 28)
    and int64 labels. Reproducible from `seed`."""
    rng = np.random.default_rng([seed, 2])
    fonts = [str(p) for p in font_paths(PRINTED_TRAIN_FONTS)]
    labels = rng.integers(0, 10, n)
    images = []
    for label in labels:
        size = int(rng.integers(28, 64))
        font = ImageFont.truetype(fonts[int(rng.integers(len(fonts)))], size)
        canvas = Image.new("L", (2 * size, 2 * size), 0)
        ImageDraw.Draw(canvas).text((size // 2, size // 4), str(label), fill=255, font=font, stroke_width=int(rng.integers(0, 3)), stroke_fill=255)
        canvas = canvas.rotate(float(rng.uniform(-10, 10)), resample=Image.Resampling.BILINEAR)
        images.append(to_mnist(np.asarray(canvas)))
    return np.stack(images), labels.astype(np.int64)


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
        if (paper @ LUMA - ink @ LUMA) * (1 if dark_ink else -1) > 90:
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
    """n single-digit crops in styles captcha's default font never makes: matplotlib's DejaVu and
    Computer Modern fonts (UNSEEN_FONTS), random dark-on-light or light-on-dark colours, flat /
    gradient / noisy / striped backgrounds, rotation up to 15 degrees, noise lines and dots, crop sizes
    ~15-150 px, and a trip through L / P / CMYK modes. Returns an object array of RGB uint8 (H, W, 3)
    arrays of varying size, and int64 labels. Reproducible from `seed`."""
    fonts = font_paths(UNSEEN_FONTS)
    rng = np.random.default_rng([seed, 0x5EED])
    labels = rng.integers(0, 10, n)
    images = np.empty(n, dtype=object)
    for i, label in enumerate(labels):
        images[i] = _unseen_digit(rng, fonts, int(label))
    return images, labels.astype(np.int64)
