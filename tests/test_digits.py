"""parity.codes.grayscale and parity.codes.normalize: any digit image -> MNIST-style 28x28."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from parity.codes.grayscale import NoDigit, UnreadableImage, load_image
from parity.codes.normalize import ink_map, to_mnist, to_mnist_batch

MODES = ["1", "L", "LA", "P", "P-transparent", "RGB", "RGBA", "I;16", "I", "F"]


def seven_mask(height: int, width: int) -> np.ndarray:
    """A "7" (top bar and a diagonal) filling most of a (height, width) canvas, as floats in [0, 1]."""
    scale = 4  # draw big, then shrink: antialiased like a real glyph
    im = Image.new("L", (width * scale, height * scale), 0)
    w, h = im.size
    pen = max(1, int(0.12 * min(w, h)))
    draw = ImageDraw.Draw(im)
    draw.line([(0.25 * w, 0.2 * h), (0.75 * w, 0.2 * h), (0.45 * w, 0.85 * h)], fill=255, width=pen, joint="curve")
    return np.asarray(im.resize((width, height), Image.Resampling.BOX), dtype=np.float32) / 255


def render(mask: np.ndarray, mode: str, dark_on_light: bool) -> Image.Image:
    """The digit mask as a PIL image of `mode`; ink and paper colours per polarity."""
    ink, paper = (np.array([30, 40, 120]), np.array([235, 230, 220])) if dark_on_light else (
        np.array([250, 240, 200]),
        np.array([20, 30, 25]),
    )
    rgb = paper * (1 - mask[..., None]) + ink * mask[..., None]
    rgb8 = np.round(rgb).astype(np.uint8)
    gray = rgb8 @ np.array([0.299, 0.587, 0.114])
    if mode == "1":
        return Image.fromarray(gray > 128)
    if mode == "L":
        return Image.fromarray(np.round(gray).astype(np.uint8), "L")
    if mode in ("LA", "RGBA"):
        # The worst case for naive compositing: every pixel has the ink's colour, only alpha draws the
        # digit, so the transparent background must be made the opposite tone of the ink.
        alpha = np.round(mask * 255).astype(np.uint8)
        colour = np.broadcast_to(ink, mask.shape + (3,)).astype(np.uint8)
        if mode == "LA":
            return Image.fromarray(np.dstack([np.round(colour @ np.array([0.299, 0.587, 0.114])).astype(np.uint8), alpha]), "LA")
        return Image.fromarray(np.dstack([colour, alpha]), "RGBA")
    if mode == "P":
        return Image.fromarray(rgb8, "RGB").quantize(colors=16)
    if mode == "P-transparent":
        # Palette index 0 is transparent and fills the background; its RGB is the ink colour.
        index = np.where(mask > 0.5, 1, 0).astype(np.uint8)
        im = Image.fromarray(index, "P")
        im.putpalette(list(ink) + list(ink) + [0] * 762)
        im.info["transparency"] = 0
        return im
    if mode == "I;16":
        return Image.fromarray((np.round(gray) * 257).astype(np.uint16))  # uint16 -> mode I;16
    if mode == "I":
        return Image.fromarray((np.round(gray) * 1000).astype(np.int32), "I")
    if mode == "F":
        return Image.fromarray((gray / 255).astype(np.float32), "F")
    return Image.fromarray(rgb8, "RGB")


def assert_mnist_like(out: np.ndarray) -> None:
    assert out.dtype == np.uint8 and out.shape == (28, 28)
    assert out.max() >= 200, "strokes should saturate like MNIST's"
    # Background exactly 0. (The outer rows may hold ink: centring the mass of a top-heavy "7" at
    # (14, 14) pushes its foot down, as in MNIST.)
    corners = np.concatenate([out[:3, :3].ravel(), out[:3, -3:].ravel(), out[-3:, :3].ravel(), out[-3:, -3:].ravel()])
    assert (corners == 0).all() and (out == 0).mean() > 0.5, "background must be exactly 0"
    cy, cx = ndimage.center_of_mass(out)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1, (cy, cx)
    rows = np.flatnonzero(out.any(axis=1))
    cols = np.flatnonzero(out.any(axis=0))
    assert rows[-1] - rows[0] + 1 <= 20 and cols[-1] - cols[0] + 1 <= 20


@pytest.mark.parametrize("dark_on_light", [True, False], ids=["dark-on-light", "light-on-dark"])
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_and_polarity(mode: str, dark_on_light: bool) -> None:
    image = render(seven_mask(40, 30), mode, dark_on_light)
    expect = image.mode if mode != "P-transparent" else "P"
    assert image.mode == expect
    reference = to_mnist(render(seven_mask(40, 30), "L", True))
    out = to_mnist(image)
    assert_mnist_like(out)
    # Same drawing whatever the mode: the normalised images agree closely ("1" loses antialiasing).
    assert np.abs(out.astype(int) - reference).mean() < (25 if mode in ("1", "P-transparent") else 8)


@pytest.mark.parametrize("size", [(5, 3), (28, 28), (60, 160), (2000, 2000)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dark_on_light", [True, False], ids=["dark-on-light", "light-on-dark"])
def test_sizes(size: tuple[int, int], dark_on_light: bool) -> None:
    h, w = size
    if size == (5, 3):
        mask = np.array([[1, 1, 1], [0, 0, 1], [0, 1, 0], [0, 1, 0], [0, 1, 0]], dtype=np.float32)
    elif size == (60, 160):  # a wide strip with the digit somewhere off-centre
        mask = np.zeros((h, w), dtype=np.float32)
        mask[8:52, 100:130] = seven_mask(44, 30)
    else:
        mask = seven_mask(h, w)
    assert_mnist_like(to_mnist(render(mask, "RGB", dark_on_light)))


def test_inverted_seven_normalises_the_same() -> None:
    mask = seven_mask(48, 36)
    dark = to_mnist(render(mask, "L", True)).astype(int)
    light = to_mnist(Image.fromarray(255 - np.asarray(render(mask, "L", True)), "L")).astype(int)
    assert np.abs(dark - light).mean() < 2


def test_arrays_of_any_dtype() -> None:
    mask = seven_mask(40, 30)
    reference = to_mnist((mask * 255).astype(np.uint8))
    variants = [
        mask,  # float in [0, 1]
        mask.astype(np.float64) * 255,  # float in [0, 255]
        (mask * 65535).astype(np.uint16),
        (mask * 65535).astype(np.int32),  # integers up to 65535: 16-bit
        (mask * 1000 - 500).astype(np.int32),  # signed, arbitrary range
        mask > 0.5,
        np.dstack([mask] * 3),
        np.dstack([mask] * 3 + [np.ones_like(mask)]),
        mask[..., None],
    ]
    for variant in variants:
        assert np.abs(to_mnist(variant).astype(int) - reference).mean() < 25, variant.dtype


@pytest.mark.parametrize(
    "image, reason",
    [
        (np.zeros((1, 1), np.uint8), "too small"),
        (np.full((40, 30), 200, np.uint8), "blank"),
        (np.full((40, 30, 4), 255, np.uint8), "blank"),
        (np.zeros((0, 5), np.uint8), "empty"),
        (np.zeros((4, 4, 7), np.uint8), "shape"),
        (np.array([[np.nan, 1.0], [0.0, 1.0]]), "NaN"),
        (np.random.default_rng(0).integers(0, 256, (60, 60), dtype=np.uint8), "noise"),
        (np.where(np.random.default_rng(1).random((60, 60)) < 0.03, 0, 255).astype(np.uint8), "noise"),
    ],
    ids=["1x1", "uniform", "transparent", "empty", "bad-shape", "nan", "uniform-noise", "salt"],
)
def test_degenerate_inputs_raise_nodigit(image: np.ndarray, reason: str) -> None:
    with pytest.raises(NoDigit, match=reason):
        to_mnist(image)
    with pytest.raises(ValueError):  # callers may catch NoDigit as the ValueError it is
        to_mnist(image)


def test_unreadable_files(tmp_path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(NoDigit, match="cannot read image"):
        load_image(bad)
    with pytest.raises(NoDigit, match="cannot read image"):
        to_mnist(tmp_path / "missing.png")
    with pytest.raises(NoDigit, match="cannot read image"):
        to_mnist(tmp_path)  # a directory
    good = tmp_path / "seven.png"
    render(seven_mask(40, 30), "RGBA", True).save(good)
    assert_mnist_like(to_mnist(str(good)))


def test_random_inputs_never_raise_anything_but_nodigit() -> None:
    rng = np.random.default_rng(0)
    for _ in range(150):
        h, w = (int(v) for v in rng.integers(1, 90, 2))
        kind = rng.integers(4)
        if kind == 0:
            image = rng.integers(0, 256, (h, w), dtype=np.uint8)
        elif kind == 1:
            image = (rng.random((h, w, int(rng.choice([2, 3, 4])))) * rng.choice([1, 255, 1e6])).astype(rng.choice([np.float32, np.float64]))
        elif kind == 2:  # sparse blobs
            image = np.zeros((h, w), np.uint8)
            for _ in range(int(rng.integers(1, 5))):
                y, x = int(rng.integers(h)), int(rng.integers(w))
                image[y : y + int(rng.integers(1, 12)), x : x + int(rng.integers(1, 12))] = 255
        else:
            image = np.full((h, w), int(rng.integers(256)), np.uint8)
            image[rng.random((h, w)) < 0.5] = int(rng.integers(256))
        try:
            out = to_mnist(image)
        except NoDigit:
            continue
        assert out.dtype == np.uint8 and out.shape == (28, 28)


def test_batch() -> None:
    images = [render(seven_mask(40, 30), "RGB", True), np.asarray(render(seven_mask(30, 50), "L", False))]
    out = to_mnist_batch(images)
    assert out.shape == (2, 28, 28) and out.dtype == np.uint8
    assert to_mnist_batch([]).shape == (0, 28, 28)
    with pytest.raises(NoDigit, match="image 1"):
        to_mnist_batch([images[0], np.zeros((10, 10), np.uint8)])


def test_noise_lines_and_dots_are_removed() -> None:
    """A captcha-like crop: a pale digit crossed by a darker thin line and dotted with dark specks."""
    mask = seven_mask(50, 36)
    clean = to_mnist(render(mask, "L", True)).astype(int)
    gray = 240 - 90 * mask  # a faint digit: noise darker than the ink, as captcha draws it
    im = Image.fromarray(np.round(gray).astype(np.uint8), "L")
    draw = ImageDraw.Draw(im)
    draw.line([(0, 30), (35, 26)], fill=40, width=1)
    for x, y in [(3, 5), (30, 44), (5, 40), (32, 3)]:
        draw.line([(x, y), (x - 1, y - 1)], fill=40, width=3)
    noisy = to_mnist(im).astype(int)
    assert_mnist_like(noisy.astype(np.uint8))
    assert np.abs(noisy - clean).mean() < 12


def test_load_image_gray_in_unit_range() -> None:
    mask = seven_mask(40, 30)
    for mode in MODES:
        gray = load_image(render(mask, mode, True))
        assert gray.dtype == np.float32 and gray.shape == (40, 30), mode
        assert 0 <= gray.min() and gray.max() <= 1, mode
    rgb = load_image(np.dstack([np.full((4, 5), v, np.uint8) for v in (255, 0, 0)]))
    assert np.allclose(rgb, 0.299, atol=1e-6)  # Pillow's luma
    # A white digit on a transparent canvas: the transparent part becomes black, the digit stays white.
    white = np.dstack([np.full((40, 30, 3), 255, np.uint8), np.round(mask * 255).astype(np.uint8)])
    gray = load_image(white)
    assert gray[mask > 0.9].min() > 0.85 and gray[mask == 0].max() < 0.05


def test_ink_map_drops_specks_and_edge_fragments() -> None:
    """A digit, a speck and a neighbour's fragment cut by the crop's edge: only the digit is ink."""
    image = np.full((60, 50), 230, np.uint8)
    image[10:50, 10:40][seven_mask(40, 30) > 0.5] = 20
    image[52:55, 45:48] = 20  # a 3x3 speck
    image[24:34, 0:4] = 20  # a bar at the left edge, a quarter of the digit's ink
    ink, scale = ink_map(image)
    assert ink.dtype == np.float32 and scale == 1.0 and ink.shape == (60, 50)
    assert ink.min() == 0 and ink.max() == 1
    assert not ink[50:, 42:].any() and not ink[:, :5].any()
    assert ink[10:50, 10:40].sum() > 100
    # With edge_fraction=0 (characters may touch the edge, as in a whole code) the bar stays.
    kept, _ = ink_map(image, edge_fraction=0.0)
    assert kept[24:34, 0:4].any() and not kept[50:, 42:].any()


# ------------------------------------------------------------------ reading files within time and memory bounds
def test_shrink_in_strips_equals_one_reduce(monkeypatch) -> None:
    """A picture over MAX_SIDE is box-filtered strip by strip in its working mode: the same pixels as one
    Image.reduce of the whole converted image, 16-bit staying 16-bit, a palette's transparency applied."""
    from parity.codes import imagefile

    monkeypatch.setattr(imagefile, "STRIP_PIXELS", 50_000)  # many strips, one partial at the bottom
    mask = seven_mask(301, 500)
    wide = np.zeros((301, 5000), np.float32)
    wide[:, 2000:2500] = mask
    for mode in ["1", "L", "P-transparent", "RGBA", "I;16", "F"]:
        image = render(wide, mode, True)
        small = imagefile.shrink(image, max_side=2048)
        assert small.size == (1667, 101), mode  # factor ceil(5000 / 2048) = 3, partial blocks kept
        working = imagefile.working_mode(image.mode)
        whole = image.convert(working).reduce(3)
        assert small.mode == ("I;16" if mode == "I;16" else working), mode
        expected = np.asarray(whole.convert("I;16") if mode == "I;16" else whole)
        assert np.array_equal(np.asarray(small), expected), mode
    plain = render(seven_mask(40, 30), "L", True)
    assert imagefile.shrink(plain) is plain


def test_big_arrays_are_box_filtered_in_strips(monkeypatch) -> None:
    """An array over MAX_SIDE is scaled to [0, 1] and box-filtered a strip at a time: the same as filtering the
    whole float image at once, with the scale rule taken from the whole array (not from each strip)."""
    from parity.codes import grayscale, imagefile

    monkeypatch.setattr(grayscale, "STRIP_ELEMENTS", 20_000)
    rng = np.random.default_rng(3)
    a = rng.integers(-300, 40_000, (2 * imagefile.MAX_SIDE + 5, 700), dtype=np.int32)
    a[: 2 * imagefile.MAX_SIDE, :] = np.clip(a[: 2 * imagefile.MAX_SIDE, :], 0, 255)  # only the last rows set the range
    gray = load_image(a)
    unit = (a.astype(np.float64) - a.min()) / (a.max() - a.min())
    rows, cols = np.arange(0, a.shape[0], 3), np.arange(0, a.shape[1], 3)
    sums = np.add.reduceat(np.add.reduceat(unit, rows, axis=0), cols, axis=1)
    counts = np.outer(np.diff(np.append(rows, a.shape[0])), np.diff(np.append(cols, a.shape[1])))
    assert gray.shape == (1367, 234) and np.allclose(gray, sums / counts, atol=1e-6)
    view = np.broadcast_to(np.arange(3000, dtype=np.uint8)[None, :] % 200, (3000, 3000))  # stride 0, read-only
    assert load_image(view).shape == (1500, 1500)


def png_header_only(path, width: int, height: int, colour_type: int = 2) -> None:
    """A PNG that declares width x height but holds almost no pixel data."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, colour_type, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def test_decoded_size_is_checked_before_decoding(tmp_path) -> None:
    """The limit is checked on the header, so a bomb is refused at once; under it, a short file is truncated."""
    import time

    from parity.codes.imagefile import MAX_DECODED_BYTES, read_picture

    bomb = tmp_path / "bomb.png"
    png_header_only(bomb, 9_000, 9_000)  # RGB: 309 MiB decoded, under Pillow's own guard
    start = time.perf_counter()
    with pytest.raises(UnreadableImage, match=r"too large to decode safely: 9000x9000 RGB takes 309 MiB decoded, over the 256 MiB"):
        read_picture(bomb)
    assert time.perf_counter() - start < 1 and MAX_DECODED_BYTES == 256 * 2**20
    png_header_only(bomb, 9_000, 9_000, colour_type=0)  # the same in gray: 77 MiB, allowed, but there is no data
    with pytest.raises(UnreadableImage, match="cannot read image"):
        read_picture(bomb)
    png_header_only(bomb, 100_000, 100_000, colour_type=0)  # Pillow's own guard
    with pytest.raises(UnreadableImage, match="DecompressionBombError"):
        read_picture(bomb)


def test_big_jpeg_is_decoded_reduced(tmp_path) -> None:
    from parity.codes.imagefile import MAX_SIDE, read_picture

    path = tmp_path / "photo.jpg"
    image = Image.new("RGB", (6000, 4000), (230, 225, 210))
    ImageDraw.Draw(image).line([(2000, 800), (4000, 800), (2800, 3400)], fill=(30, 40, 120), width=400)
    image.save(path, quality=80)
    picture = read_picture(path)
    assert picture.image.mode == "RGB" and max(picture.image.size) <= MAX_SIDE and picture.note is None
    assert_mnist_like(to_mnist(path))


def test_non_regular_files_and_programs_are_refused(tmp_path) -> None:
    """A FIFO (opening it would block for a writer), a device, a folder: refused at once, by kind. An EPS
    file is refused before Pillow could run Ghostscript on it."""
    import os

    fifo = tmp_path / "digit.png"
    os.mkfifo(fifo)
    for path, kind in [(fifo, "a FIFO"), ("/dev/zero", "a character device"), (tmp_path, "a folder")]:
        with pytest.raises(UnreadableImage, match=f"{kind}, not a regular file"):
            load_image(path)
    eps = tmp_path / "digit.eps"
    eps.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nnewpath 4 4 moveto 24 24 lineto stroke\n")
    with pytest.raises(UnreadableImage, match="not an image file of a format read here"):
        load_image(eps)


def test_animated_files_read_their_first_frame(tmp_path) -> None:
    from parity.codes.imagefile import read_picture

    first = render(seven_mask(40, 30), "L", True)
    frames = [first] + [Image.new("L", (30, 40), 255 - 10 * i) for i in range(1, 5)]
    for suffix in ("gif", "png", "webp"):
        path = tmp_path / f"anim.{suffix}"
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
        picture = read_picture(path)
        assert picture.frames == 5 and picture.note == "animated: first of 5 frames read", suffix
        assert np.abs(to_mnist(picture.image).astype(int) - to_mnist(first)).mean() < 8, suffix
