"""Seeded 4-digit verification codes ("captchas") with the true box of every digit, and their cache.

`captcha` 0.7.1 draws every random number through the module-level `secrets` in `captcha.image`
(`secrets.randbelow`, `secrets.choice`, `secrets.randbits`; nothing from `random`). `seeded_secrets`
swaps that module attribute for an object whose three methods come from a `random.Random`, under a
lock, and puts the real module back afterwards, so one seed gives byte-identical images in any process.
Each image i of a set draws from its own `image_rng(seed, i)`, a `Random(f"codes:{seed}:{i}")` (string
seeds are hashed with SHA-512, independent of PYTHONHASHSEED), so sets are prefix-stable and seeds
never share streams.

Train and test codes come from different seed streams: training sets use seeds TRAIN_SEED_BASE + k
(k = 0, 1, ...), the test set uses TEST_SEED, so no test image is ever a training image.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import threading
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import captcha
import captcha.image as captcha_image
import numpy as np
from PIL import Image, ImageDraw

from parity.files import atomic_write

TRAIN_SEED_BASE = 1_000
TEST_SEED = 7
DEFAULT_CACHE = Path(__file__).resolve().parents[2] / "data" / "codes"
CAPTCHA_VERSION = getattr(captcha, "__version__", "0.7")
# What np.load of a damaged or old .npz raises (truncated zip, bad CRC, missing array): the cache is made again.
CACHE_ERRORS = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
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
def seeded_secrets(rng: random.Random) -> Iterator[None]:
    """Make captcha.image draw from `rng` inside the block; restores the real `secrets` after."""
    with _patch_lock:
        original = captcha_image.secrets
        captcha_image.secrets = _SeededSecrets(rng)
        try:
            yield
        finally:
            captcha_image.secrets = original


def image_rng(seed: int, index: int) -> random.Random:
    """The random stream of image `index` of the set made from `seed`: it draws the code, then the image."""
    return random.Random(f"codes:{seed}:{index}")


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
        rng = image_rng(seed, i)
        code = "".join(rng.choice("0123456789") for _ in range(length))
        with seeded_secrets(rng):
            images[i] = np.asarray(maker.generate_image(code).convert("RGB"))
            boxes[i], visible[i] = maker.last_boxes, maker.last_visible
        codes.append(code)
    return CodeSet(images=images, codes=np.array(codes, dtype=f"<U{length}"), boxes=boxes, seed=seed, visible=visible)


def cache_name(
    n: int,
    seed: int,
    width: int = 160,
    height: int = 60,
    fonts: list[str] | tuple[str, ...] | None = None,
    length: int = 4,
) -> str:
    """The .npz file name of a code set: every argument and captcha's version are in it."""
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
    """`generate_codes`, cached as .npz in `cache_dir` under `cache_name`. Written to a temporary file
    and renamed, so a crash never leaves half a cache behind; an unreadable cache is made again."""
    fonts_t = tuple(fonts) if fonts else None
    path = Path(cache_dir) / cache_name(n, seed, width, height, fonts_t, length)
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
        except CACHE_ERRORS:
            pass  # unreadable or old cache: make it again
    codeset = generate_codes(n, seed, width=width, height=height, fonts=fonts_t, length=length)
    save_cache(path, images=codeset.images, codes=codeset.codes, boxes=codeset.boxes, seed=np.int64(seed),
               visible=codeset.visible)
    return codeset


def save_cache(path: Path, **arrays: np.ndarray) -> bool:
    """The arrays as a compressed .npz at `path`, written atomically. A cache only saves time, so one that
    cannot be written (a read-only or full disk) is skipped with a one-line warning, not an error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as fh:
            np.savez_compressed(fh, **arrays)
    except OSError as error:
        sys.stderr.write(f"warning: cache {path} not written ({error.strerror or error}); carrying on without it\n")
        return False
    return True
