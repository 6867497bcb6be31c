"""Fuzzing the digit normaliser with hypothesis: any array, PIL image or image file, whole or damaged, gives a
28x28 uint8 MNIST-style digit or NoDigit, never another exception and never a hang.

Inputs: sides of 1 to 4,000 px; arrays of bool, uint8, uint16, int32, float32 and float64 in ranges from [0, 1]
to the dtype's extremes, with NaN and infinities; every Pillow mode the normaliser names; files in every
format that takes the mode; encoded files truncated or with bytes flipped. Contents: constant, noise, a
stroke, a stroke under noise, specks. Every example also checks `load_image`: finite float32 gray in [0, 1]
whose long side is at most imagefile.MAX_SIDE. A bounded, fixed set of examples runs in the default suite;
`-m slow` runs many more, freshly drawn.
"""

from __future__ import annotations

import contextlib
import io
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from parity.codes.grayscale import NoDigit, load_image
from parity.codes.imagefile import MAX_SIDE
from parity.codes.normalize import to_mnist

SECONDS_PER_EXAMPLE = 60  # far above the ~1 s a 4,000 px image takes: only a hang reaches it
MAX_ARRAY_BYTES = 48 * 2**20  # bigger arrays are made as broadcast views, so the suite stays light
DEFAULT = settings(max_examples=60, deadline=None, derandomize=True, database=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
SLOW = settings(DEFAULT, max_examples=1500, derandomize=False)

SIDES = st.one_of(st.integers(1, 64), st.integers(65, 600), st.integers(601, 4000))
DTYPES = ["bool", "uint8", "uint16", "int32", "float32", "float64"]
CONTENTS = ["constant", "noise", "stroke", "stroke+noise", "specks"]
MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16", "I;16B", "F"]
FORMATS = ["PNG", "GIF", "BMP", "TIFF", "WEBP", "JPEG", "PPM"]


@contextlib.contextmanager
def time_limit(seconds: float):
    """Fail (TimeoutError) instead of stalling when the block runs longer than `seconds`."""

    def stop(signum, frame):
        raise TimeoutError(f"over {seconds} s for one image: a hang")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_normalises(image) -> None:
    """The property: load_image gives clean gray or NoDigit; to_mnist a 28x28 uint8 digit or NoDigit."""
    with time_limit(SECONDS_PER_EXAMPLE):
        try:
            gray = load_image(image)
        except NoDigit:
            gray = None
        else:
            assert gray.dtype == np.float32 and gray.ndim == 2 and max(gray.shape) <= MAX_SIDE, (gray.dtype, gray.shape)
            assert np.isfinite(gray).all() and gray.min() >= 0 and gray.max() <= 1
        try:
            digit = to_mnist(image)
        except NoDigit as error:
            assert str(error), "NoDigit must say why"
            return
        assert gray is not None, "to_mnist read an image load_image refused"
        assert digit.dtype == np.uint8 and digit.shape == (28, 28) and digit.any()


# ------------------------------------------------------------------------------------------ contents
def pattern(rng: np.random.Generator, h: int, w: int, content: str) -> np.ndarray:
    """float32 (h, w) in [0, 1]: what the image shows, 1 = ink."""
    if content == "constant":
        return np.full((h, w), rng.random(), np.float32)
    if content == "noise":
        return rng.random((h, w), dtype=np.float32)
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    if content == "specks":
        for _ in range(int(rng.integers(1, 30))):
            x, y = int(rng.integers(w)), int(rng.integers(h))
            draw.point((x, y), fill=255)
    else:  # a digit-like stroke: a bar and a diagonal, of random thickness and place
        points = [(float(rng.random() * w), float(rng.random() * h)) for _ in range(3)]
        draw.line(points, fill=255, width=max(1, int(rng.random() * 0.2 * min(h, w))))
    u = np.asarray(canvas, dtype=np.float32) / 255
    if content == "stroke+noise":
        u = np.clip(u + rng.normal(0, rng.random() * 0.5, (h, w)).astype(np.float32), 0, 1)
    return u


def small_pattern(rng, h: int, w: int, content: str) -> np.ndarray:
    """The pattern drawn at up to 512 px a side: typed and coloured there, then `upscale`d (cheap at 4,000 px)."""
    return pattern(rng, min(h, 512), min(w, 512), content)


def upscale(small: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour scaling of the first two axes to (h, w), in the array's own dtype."""
    sh, sw = small.shape[:2]
    if (sh, sw) == (h, w):
        return small
    return small[(np.arange(h) * sh // h)[:, None], (np.arange(w) * sw // w)[None, :]]


@st.composite
def value_ranges(draw, dtype: str) -> tuple[float, float]:
    """(value of no ink, value of full ink) in `dtype`, polarity either way."""
    if dtype == "bool":
        return 0.0, 1.0
    if dtype.startswith("float"):
        big = float(np.finfo(dtype).max)
        choices = [(0, 1), (0, 255), (0, 65535), (-1, 1), (-1e6, 1e6), (-big, big), (3, 3), (0, 1e-30)]
    else:
        info = np.iinfo(dtype)
        choices = [(0, 1), (0, 255), (0, 65535), (-500, 500), (int(info.min), int(info.max)), (7, 7)]
        choices = [(max(lo, int(info.min)), min(hi, int(info.max))) for lo, hi in choices]
    lo, hi = draw(st.sampled_from(choices))
    return (float(hi), float(lo)) if draw(st.booleans()) else (float(lo), float(hi))


def typed(u: np.ndarray, dtype: str, lo: float, hi: float) -> np.ndarray:
    if dtype == "bool":
        return u > 0.5
    u = u.astype(np.float64)  # float32 * a Python float stays float32 and would overflow
    values = lo * (1 - u) + hi * u  # no overflow even at the dtype's extremes
    if dtype.startswith("float"):
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(values), info.min, info.max).astype(dtype)


@st.composite
def arrays(draw) -> np.ndarray:
    h, w = draw(SIDES), draw(SIDES)
    channels = draw(st.sampled_from([0, 1, 2, 3, 4]))  # 0: (h, w)
    dtype = draw(st.sampled_from(DTYPES))
    content = draw(st.sampled_from(CONTENTS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lo, hi = draw(value_ranges(dtype))
    special = draw(st.sampled_from(["none", "nan", "inf", "-inf"])) if dtype.startswith("float") else "none"
    planes = max(channels, 1)
    huge = h * w * planes * np.dtype(dtype).itemsize > MAX_ARRAY_BYTES
    rows = 1 if huge else h  # a huge array is one row broadcast down: a read-only view with stride 0
    layers = []
    base = small_pattern(rng, rows, w, content)
    for _ in range(planes):
        kind = draw(st.sampled_from(["same", "inverted", "flat"]))
        layers.append(base if kind == "same" else 1 - base if kind == "inverted" else np.full_like(base, rng.random()))
    a = typed(np.stack(layers, axis=-1) if channels else layers[0], dtype, lo, hi)
    if special != "none":
        a[tuple(int(rng.integers(n)) for n in a.shape)] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[special]
    a = upscale(a, rows, w)
    return np.broadcast_to(a, (h,) + a.shape[1:]) if huge else a


@st.composite
def pil_images(draw) -> Image.Image:
    h, w = draw(SIDES), draw(SIDES)
    mode = draw(st.sampled_from(MODES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    u = small_pattern(rng, h, w, draw(st.sampled_from(CONTENTS)))
    if mode in ("I", "F", "I;16", "I;16B"):
        dtype = {"I": "int32", "F": "float32"}.get(mode, "uint16")
        lo, hi = draw(value_ranges(dtype))
        a = typed(u, dtype, lo, hi)
        if mode == "F" and draw(st.booleans()):
            a[int(rng.integers(a.shape[0])), int(rng.integers(a.shape[1]))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        image = Image.fromarray(upscale(a, h, w), "I" if mode == "I" else "F" if mode == "F" else None)
        return image.convert(mode) if mode == "I;16B" else image
    ink, paper = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    rgb = (paper * (1 - u[..., None]) + ink * u[..., None]).astype(np.uint8)
    alpha = (255 * (u if draw(st.booleans()) else 1 - u)).astype(np.uint8)
    with_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa")
    image = Image.fromarray(upscale(np.dstack([rgb, alpha]) if with_alpha else rgb, h, w), "RGBA" if with_alpha else "RGB")
    return image.convert(mode)


def encoded(image: Image.Image, fmt: str) -> bytes:
    """`image` in `fmt`; as a PNG of a mode PNG takes if `fmt` does not take its mode."""
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
        return buffer.getvalue()
    except (OSError, KeyError, ValueError, TypeError):
        pass
    for chain in (["RGBA"], ["LA", "RGBA"], ["L"]):  # La converts to LA only; F and I to L
        with contextlib.suppress(ValueError):
            for mode in chain:
                image = image.convert(mode)
            break
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# -------------------------------------------------------------------------------------------- tests
@DEFAULT
@given(arrays())
def test_arrays(image):
    check_normalises(image)


@DEFAULT
@given(pil_images())
def test_pil_images(image):
    check_normalises(image)


@settings(DEFAULT, max_examples=30)
@given(image=pil_images(), fmt=st.sampled_from(FORMATS))
def test_image_files(fuzz_dir, image, fmt):
    path = fuzz_dir / f"fuzz.{fmt.lower()}"
    path.write_bytes(encoded(image, fmt))
    check_normalises(path)


@st.composite
def damaged(draw) -> bytes:
    """A small real image file, encoded in one format, then truncated or with bytes flipped."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h, w = draw(st.integers(8, 200)), draw(st.integers(8, 200))
    u = pattern(rng, h, w, "stroke")
    image = Image.fromarray((255 * (1 - u)).astype(np.uint8)).convert(draw(st.sampled_from(["L", "RGB", "RGBA", "P"])))
    data = bytearray(encoded(image, draw(st.sampled_from(FORMATS))))
    if draw(st.booleans()):
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] ^= draw(st.integers(1, 255))
    return bytes(data)


@settings(DEFAULT, max_examples=40)
@given(data=damaged())
def test_damaged_image_files(fuzz_dir, data):
    path = fuzz_dir / "damaged.img"
    path.write_bytes(data)
    check_normalises(path)


@pytest.mark.slow
@SLOW
@given(arrays())
def test_arrays_many(image):
    check_normalises(image)


@pytest.mark.slow
@SLOW
@given(pil_images())
def test_pil_images_many(image):
    check_normalises(image)


@pytest.mark.slow
@settings(SLOW, max_examples=600)
@given(image=pil_images(), fmt=st.sampled_from(FORMATS))
def test_image_files_many(fuzz_dir, image, fmt):
    path = fuzz_dir / f"fuzz-many.{fmt.lower()}"
    path.write_bytes(encoded(image, fmt))
    check_normalises(path)


@pytest.mark.slow
@settings(SLOW, max_examples=1500)
@given(data=damaged())
def test_damaged_image_files_many(fuzz_dir, data):
    path = fuzz_dir / "damaged-many.img"
    path.write_bytes(data)
    check_normalises(path)
