"""The digit sets the `best` recipe mixes into MNIST, made once and cached as .npz in data/codes/.

Cache names (kept from the first layout, so existing caches still count): code sets as
`generate.cache_name`, their digits as `train-digits-<that name>`, printed digits as
`printed-digits-n<n>-seed<seed>-<sha1 of the font list, 10 hex>.npz`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from parity.codes.crops import digit_crops
from parity.codes.fonts import PRINTED_TRAIN_FONTS, print_digits
from parity.codes.generate import CACHE_ERRORS, DEFAULT_CACHE, TRAIN_SEED_BASE, cache_name, load_or_generate, save_cache
from parity.codes.segment import segmented_crops


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

    return cached_digits(Path(cache_dir) / f"train-digits-{cache_name(n_codes, seed)}", make)


def printed_digits(n: int, seed: int = TRAIN_SEED_BASE, *, cache_dir: str | os.PathLike = DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray]:
    """`fonts.print_digits(n, seed)`, cached as .npz."""
    fonts_tag = hashlib.sha1("\n".join(PRINTED_TRAIN_FONTS).encode()).hexdigest()[:10]
    return cached_digits(Path(cache_dir) / f"printed-digits-n{n}-seed{seed}-{fonts_tag}.npz", lambda: print_digits(n, seed))
