"""The batches of every epoch, in NumPy, for either framework: which images, in which order, cut where.

`EpochBatcher` is the one place that knows an epoch's images (fresh augmentations of the uint8 originals,
or the same preprocessed images every epoch) and its order (`epoch_order`), and cuts both into batches,
keeping the last partial one. Each framework wraps it thinly (lenet_torch/data.py, lenet_keras/data.py)
and tells it the epoch the same way: a callback at the start of each epoch calls `set_epoch`.

NumPy only: never import torch or TensorFlow here.
"""

from __future__ import annotations

import numpy as np

from parity.config import TrainConfig
from parity.data.splits import Splits


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled order of n training images in one epoch; both frameworks take batches in it."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def rank_part(span: slice, rank: int, world: int) -> slice:
    """Rank `rank` of `world`'s contiguous part of a batch's positions `span`: parts differ in size by at most
    one (an uneven last batch) and together are the span, in order."""
    n = span.stop - span.start
    return slice(span.start + n * rank // world, span.start + n * (rank + 1) // world)


def num_batches(n: int, batch_size: int) -> int:
    return -(-n // batch_size)  # the last, partial batch is kept


class EpochBatcher:
    """One epoch's batches (images, labels) at a time; `set_epoch` is how it learns the epoch.

    The images are either `images`, model-ready float32 (N, 32, 32) used as they are every epoch, or
    `raw`, uint8 (N, 28, 28) originals from which every epoch makes its own augmented, model-ready copy
    (`parity.data.augment.augmented_epoch(raw, seed, epoch)`). With a `seed` the batches follow
    `epoch_order(seed, epoch, N)`; without one (evaluation) they come in index order.

    `taught` (bool, one per image) marks the images the teachers teach when they teach only some
    (--distil-images mnist); None: all of them, or no teachers.

    A new batcher is at epoch 0. The epoch's images and order are made when first asked for, once per
    epoch, so telling it the same epoch again (or looking at a batch before training starts, as Keras's
    `fit` does) costs nothing and changes nothing.
    """

    def __init__(self, labels: np.ndarray, batch_size: int, *, images: np.ndarray | None = None,
                 raw: np.ndarray | None = None, seed: int | None = None, taught: np.ndarray | None = None):
        if (images is None) == (raw is None):
            raise ValueError("give exactly one of images (preprocessed) and raw (uint8, augmented every epoch)")
        if raw is not None and seed is None:
            raise ValueError("augmentation is seeded: raw images need a seed")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        source = images if images is not None else raw
        if len(source) != len(labels):
            raise ValueError(f"{len(source)} images but {len(labels)} labels")
        if taught is not None and taught.shape != labels.shape:
            raise ValueError(f"{len(taught)} taught flags for {len(labels)} labels")
        self.labels, self.batch_size, self.seed = labels, batch_size, seed
        self.raw, self.taught = raw, taught
        self.epoch = 0
        self._images = images
        self._order: np.ndarray | None = None

    @classmethod
    def training(cls, splits: Splits, config: TrainConfig) -> EpochBatcher:
        """The training batches of a run: shuffled by the run's seed, augmented when `splits` holds raw images,
        MNIST's images marked taught with --distil-images mnist."""
        taught = None
        if config.distil_from and config.distil_images == "mnist":
            if splits.train_mnist is None:
                raise ValueError("--distil-images mnist: these splits do not say which training images are MNIST's")
            taught = splits.train_mnist
        return cls(splits.train_y, config.batch_size, images=splits.train_x, raw=splits.train_raw, seed=config.seed,
                   taught=taught)

    @property
    def augments(self) -> bool:
        """True when every epoch has its own images (`images` then changes with `set_epoch`)."""
        return self.raw is not None

    def set_epoch(self, epoch: int) -> None:
        """The one way to tell the batcher the epoch (0-based); the next batches are that epoch's."""
        if epoch == self.epoch:
            return
        self.epoch = epoch
        self._order = None
        if self.augments:
            self._images = None  # dropped now: the next epoch's are made when first asked for

    @property
    def images(self) -> np.ndarray:
        """This epoch's images, float32 (N, 32, 32), in index order (before shuffling)."""
        if self._images is None:
            from parity.data.augment import augmented_epoch

            self._images = augmented_epoch(self.raw, self.seed, self.epoch)
        return self._images

    @property
    def order(self) -> np.ndarray | None:
        """This epoch's order of the image indices; None for in-order (evaluation) batches."""
        if self.seed is None:
            return None
        if self._order is None:
            self._order = epoch_order(self.seed, self.epoch, len(self.labels))
        return self._order

    def __len__(self) -> int:
        return num_batches(len(self.labels), self.batch_size)

    def span(self, i: int) -> slice:
        """Batch i's positions in the epoch's order (the last batch may be shorter)."""
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} of {len(self)}")
        return slice(i * self.batch_size, min((i + 1) * self.batch_size, len(self.labels)))

    def indices(self, i: int) -> np.ndarray | slice:
        """Batch i's image indices: a slice of the order, or a plain slice for in-order batches."""
        span, order = self.span(i), self.order
        return span if order is None else order[span]

    def batch(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch i of the epoch: float32 images (B, 32, 32) and int64 labels (B,)."""
        idx = self.indices(i)
        return self.images[idx], self.labels[idx]

    def __iter__(self):
        for i in range(len(self)):
            yield self.batch(i)
