"""Writing files so that a crash never leaves half of one under its final name.

Every file the project writes goes through here: a temporary file in the destination's folder,
flushed and fsynced, then `os.replace`d over the destination. A kill at any instant leaves the old
complete file or the new complete one, never a mix or a stub.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every filesystem lets a folder be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `dest` (same suffix, so libraries that pick a format by suffix accept it)
    for a library to save into; on success it is fsynced and replaces `dest`, on failure it is removed."""
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=f".part{dest.suffix}")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the result is an ordinary data file
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_write(dest: str | os.PathLike) -> Iterator[BinaryIO]:
    """Write `dest` through a binary file object that replaces it only if the block finishes."""
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        yield f
        f.flush()


def write_text(dest: str | os.PathLike, text: str) -> Path:
    with atomic_write(dest) as f:
        f.write(text.encode("utf-8"))
    return Path(dest)


def strict_json(data):
    """`data` with every non-finite float as None: JSON has no NaN or Infinity, and a parser that meets
    Python's `NaN` token fails. null says "no finite value" without inventing one."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: strict_json(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict_json(value) for value in data]
    return data


def write_json(dest: str | os.PathLike, data) -> Path:
    return write_text(dest, json.dumps(strict_json(data), indent=2, allow_nan=False) + "\n")


def save_figure(fig, dest: str | os.PathLike, **savefig_kwargs) -> Path:
    """A matplotlib figure saved atomically, in the format its suffix names."""
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, **savefig_kwargs)
    return Path(dest)
