"""The digit sets the `best` recipe mixes into MNIST, made once and cached as .npz in data/codes/.

Cache names: code sets as `generate.cache_name` (pictures, not normalised); their digits as
`train-digits-<cut tag>-<that name>`, printed digits as `printed-digits-n<n>-seed<seed>-<fonts tag>-<norm tag>.npz`,
style digits as `style-digits-n<n>-seed<seed>-<style tag>.npz`. The tags are sha1s (10 hex) of the source of
what makes the digits: the normaliser's modules (a change to a step that alters training digits then makes
them anew, instead of training on stale ones), for code digits the cutter's (crops, segment) too, and for
style digits the stress generator's.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

from parity.codes.crops import digit_crops
from parity.codes.fonts import PRINTED_TRAIN_FONTS, print_digits
from parity.codes.generate import CACHE_ERRORS, DEFAULT_CACHE, TRAIN_SEED_BASE, cache_name, load_or_generate, save_cache
from parity.codes.segment import segmented_crops

STYLE_SEED = TRAIN_SEED_BASE  # the stress generator's train split (its settings and fonts are the scored splits' disjoint)


@cache
def source_tag(*modules: str) -> str:
    """sha1 (10 hex) of the source files of `modules` (dotted names), in order."""
    import importlib.util

    digest = hashlib.sha1()
    for name in modules:
        digest.update(Path(importlib.util.find_spec(name).origin).read_bytes())
    return digest.hexdigest()[:10]


NORMALISER = ("parity.codes.grayscale", "parity.codes.normalize", "parity.codes.cleanup")
STYLE_SOURCES = NORMALISER + ("parity.codes.stress", "parity.codes.stress_splits")  # what makes a style digit
CODE_DIGIT_SOURCES = NORMALISER + ("parity.codes.crops", "parity.codes.segment")  # what cuts a code's digits


def cached_digits(path: Path, make: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) from the .npz at `path`, made by `make` and written atomically if absent or
    unreadable (parity.codes.generate.save_cache: a cache that cannot be written is skipped)."""
    if path.exists():
        try:
            with np.load(path) as data:
                return data["images"], data["labels"]
        except CACHE_ERRORS:
            pass  # damaged or old cache: make it again
    images, labels = make()
    save_cache(path, images=images, labels=labels)
    return images, labels


def training_digits(n_codes: int, seed: int = TRAIN_SEED_BASE, *, cache_dir: str | os.PathLike = DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-style digits from n_codes training codes, for mixing into MNIST: each digit twice, as cut
    by its true box and as cut by `segment_boxes` (what reading a code will see). Cached as .npz."""

    def make() -> tuple[np.ndarray, np.ndarray]:
        codeset = load_or_generate(n_codes, seed, cache_dir=cache_dir)
        true_crops, true_labels = digit_crops(codeset)
        cut_crops, cut_labels = segmented_crops(codeset)
        return np.concatenate([true_crops, cut_crops]), np.concatenate([true_labels, cut_labels])

    return cached_digits(Path(cache_dir) / f"train-digits-{source_tag(*CODE_DIGIT_SOURCES)}-{cache_name(n_codes, seed)}", make)


def printed_digits(n: int, seed: int = TRAIN_SEED_BASE, *, cache_dir: str | os.PathLike = DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray]:
    """`fonts.print_digits(n, seed)`, cached as .npz."""
    fonts_tag = hashlib.sha1("\n".join(PRINTED_TRAIN_FONTS).encode()).hexdigest()[:10]
    name = f"printed-digits-n{n}-seed{seed}-{fonts_tag}-{source_tag(*NORMALISER)}.npz"
    return cached_digits(Path(cache_dir) / name, lambda: print_digits(n, seed))


def _style_digit(index_seed: tuple[int, int]) -> tuple[np.ndarray | None, int]:
    """Training style digit `index` of `seed`, normalised (None: the normaliser found no digit in it)."""
    from parity.codes.errors import NoDigit
    from parity.codes.normalize import to_mnist
    from parity.codes.stress import TRAIN, stress_digit

    index, seed = index_seed
    digit = stress_digit(TRAIN, seed, index)
    try:
        return to_mnist(digit.image), digit.label
    except NoDigit:
        return None, digit.label


def make_style_digits(n: int, seed: int = STYLE_SEED, *, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first n digits of the stress generator's train split (parity.codes.stress: 13 style classes in the
    training font families, with generator settings the validation and test splits never draw), normalised by
    `to_mnist` as a read digit would be -> uint8 (m, 28, 28), int64 labels; m <= n, as the few the normaliser
    refuses are left out. Made on every core; the same bytes for any number of workers."""
    from parity.codes.workers import ReaderPool, chunk_size

    workers = workers or len(os.sched_getaffinity(0))
    items = [(i, seed) for i in range(n)]
    with ReaderPool(workers) as pool:
        made = list(pool.imap(_style_digit, items, chunk_size(n, workers, largest=64)))
    kept = [(image, label) for image, label in made if image is not None]
    images = np.stack([image for image, _ in kept]) if kept else np.zeros((0, 28, 28), np.uint8)
    return images, np.array([label for _, label in kept], dtype=np.int64)


def style_digits(n: int, seed: int = STYLE_SEED, *, cache_dir: str | os.PathLike = DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray]:
    """`make_style_digits(n, seed)`, cached as .npz."""
    return cached_digits(Path(cache_dir) / f"style-digits-n{n}-seed{seed}-{source_tag(*STYLE_SOURCES)}.npz", lambda: make_style_digits(n, seed))
