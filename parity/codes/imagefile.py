"""Reading an image file that may be hostile, in bounded time and memory.

`read_picture(path)` -> Picture: the file's first frame as a loaded PIL image whose long side is at most
MAX_SIDE. On the way it refuses what is not a regular file (a FIFO would block the reader forever, a
device never ends), refuses formats Pillow opens by running a program, checks the decoded size against
MAX_DECODED_BYTES before decoding anything (a 1 MB PNG can hold 10,000 x 10,000 pixels), decodes a big
JPEG reduced (`draft`), and box-filters anything larger than MAX_SIDE down strip by strip, so no
full-size copy in a wider mode or as floats is ever made. `shrink(image)` does the last step for an
image already in memory. Every failure is UnreadableImage, one line saying why.
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass

from PIL import Image

from parity.codes.errors import UnreadableImage

# The long side kept. The normaliser works at <= 160 px and takes a second look at a small digit's region
# at full detail; 2048 px keeps that detail for any digit taking a tenth of the picture or more.
MAX_SIDE = 2048
# Decoded size allowed before reduction (Pillow keeps 1, L and P in 1 byte a pixel, I;16 in 2, all else
# in 4): a 10,000 x 10,000 gray or palette image (95 MiB) is read, the same in RGB (381 MiB) is refused.
# Pillow's own decompression-bomb guard (an error above 2 x Image.MAX_IMAGE_PIXELS) stays as a backstop;
# its warning below that is silenced (with Pillow's other warnings) because this check is the deliberate one.
MAX_DECODED_BYTES = 256 * 2**20
STRIP_PIXELS = 2**22  # converted and reduced at a time: 16 MiB in a 4-byte mode
REFUSED_FORMATS = frozenset({"EPS"})  # Pillow reads EPS by running Ghostscript on it
ANIMATED_FORMATS = frozenset({"GIF", "PNG", "WEBP", "FLI", "AVIF"})

_FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


@dataclass(frozen=True)
class Picture:
    image: Image.Image  # loaded, detached from the file, long side <= MAX_SIDE
    frames: int  # frames (or pages) in the file; only the first is read
    format: str | None

    @property
    def note(self) -> str | None:
        if self.frames <= 1:
            return None
        kind = "animated" if self.format in ANIMATED_FORMATS else "multi-frame"
        return f"{kind}: first of {self.frames} frames read"


def bytes_per_pixel(mode: str) -> int:
    """What Pillow keeps per pixel of `mode` in memory (not in the file)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def working_mode(mode: str) -> str:
    """The mode an image of `mode` is converted to before box-filtering (Image.reduce takes no 1, P or
    I;16; a palette means nothing averaged)."""
    if mode in ("1", "L"):
        return "L"
    if mode in ("LA", "La"):
        return "LA"
    if mode in ("P", "PA", "RGBA", "RGBa"):
        return "RGBA"  # P -> RGBA applies the palette and its transparency in one step
    if mode.startswith("I;16") or mode == "I":
        return "I"
    return "F" if mode == "F" else "RGB"


def shrink(image: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """`image` itself if its long side is at most `max_side`, else a box-filtered copy (factor
    ceil(long side / max_side)) in its working mode, made strip by strip so no full-size converted copy
    exists. 16-bit images stay 16-bit, so their values keep their meaning."""
    width, height = image.size
    factor = -(-max(width, height) // max_side)
    if factor <= 1:
        return image
    mode = working_mode(image.mode)
    out = Image.new(mode, (-(-width // factor), -(-height // factor)))
    rows = factor * max(1, STRIP_PIXELS // (width * factor))
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(top + rows, height))).convert(mode).reduce(factor)
        out.paste(strip, (0, top // factor))
    return out.convert("I;16") if image.mode.startswith("I;16") else out


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:300]


def _frame_count(image: Image.Image) -> int:
    try:
        return max(1, int(getattr(image, "n_frames", 1)))
    except Exception:  # a damaged later frame: the first may still be fine, and it is all that is read
        return 1


def _check_decoded_size(image: Image.Image) -> None:
    width, height = image.size
    size = width * height * bytes_per_pixel(image.mode)
    if size > MAX_DECODED_BYTES:
        raise UnreadableImage(f"too large to decode safely: {width}x{height} {image.mode} takes {size / 2**20:,.0f} MiB "
                              f"decoded, over the {MAX_DECODED_BYTES // 2**20} MiB limit; scale it down first")


def _open(path: str) -> Picture:
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        for is_kind, kind in _FILE_KINDS:
            if is_kind(mode):
                raise UnreadableImage(f"{kind}, not a regular file")
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    # Pillow warns (to stderr) about damaged metadata it skips; the file either loads or fails, and says so once.
    with file, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Image.init()
        image = Image.open(file, formats=[f for f in Image.OPEN if f not in REFUSED_FORMATS])
        try:
            frames = _frame_count(image)
            if frames > 1:
                image.seek(0)
            width, height = image.size
            if image.format in ("JPEG", "MPO") and max(width, height) > MAX_SIDE:
                ratio = MAX_SIDE / max(width, height)  # decode at 1/2, 1/4 or 1/8, still >= MAX_SIDE
                image.draft(None, (max(1, round(width * ratio)), max(1, round(height * ratio))))
            _check_decoded_size(image)
            image.load()
            small = shrink(image)
            return Picture(small.copy() if small is image else small, frames, image.format)  # copy: detached from the file
        finally:
            image.close()


def read_picture(path: str | os.PathLike) -> Picture:
    """The first frame of the image file at `path`, decoded within the bounds above. Raises
    UnreadableImage("cannot read image 'path': why")."""
    name = os.fspath(path)
    try:
        return _open(name)
    except UnreadableImage as error:
        raise UnreadableImage(f"cannot read image {name!r}: {error}") from None
    except Image.UnidentifiedImageError:
        raise UnreadableImage(f"cannot read image {name!r}: not an image file of a format read here") from None
    except OSError as error:  # the system's reason (no such file, permission denied), else Pillow's (truncated, ...)
        raise UnreadableImage(f"cannot read image {name!r}: {error.strerror or _one_line(error)}") from None
    except Exception as error:  # Pillow raises many types for bad files (SyntaxError, ValueError, struct.error, ...)
        raise UnreadableImage(f"cannot read image {name!r}: {_one_line(error)}") from None
