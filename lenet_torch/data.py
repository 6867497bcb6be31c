"""MNIST for Lightning: whole tensors in memory, indexed a batch at a time.

A `Dataset.__getitem__` + collate per image costs more than LeNet-5's arithmetic on it, so batches
are sliced from resident tensors instead (on the GPU when training there). The batch order is
`parity.data.epoch_order` and augmented images come from `parity.data.epoch_images`: the same
ones the Keras run sees.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import numpy as np
import torch

from parity.config import TrainConfig
from parity.data.splits import Splits, epoch_images, epoch_order, make_splits, num_batches
from parity.data.preprocess import channels_first


class InMemoryBatches:
    """An iterable of (images, labels) batches over resident tensors; keeps the last partial batch.

    seed=None: in order (evaluation). Otherwise shuffled by `epoch_order(seed, current_epoch())`, and,
    given `images_for_epoch`, the images are replaced by that epoch's (augmented) ones first.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        seed: int | None = None,
        images_for_epoch: Callable[[int], torch.Tensor] | None = None,
    ):
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.images_for_epoch = images_for_epoch
        self.current_epoch: Callable[[], int] = lambda: 0  # MNISTDataModule points this at the trainer's epoch

    def __len__(self) -> int:
        return num_batches(len(self.y), self.batch_size)

    def to(self, device: torch.device) -> "InMemoryBatches":
        self.x, self.y = self.x.to(device), self.y.to(device)
        return self

    def __iter__(self):
        n = len(self.y)
        if self.seed is None:  # evaluation: in order, contiguous slices, no copy
            for start in range(0, n, self.batch_size):
                yield self.x[start : start + self.batch_size], self.y[start : start + self.batch_size]
            return
        epoch = self.current_epoch()
        if self.images_for_epoch is not None:
            self.x = self.images_for_epoch(epoch).to(self.y.device)
        order = torch.from_numpy(epoch_order(self.seed, epoch, n)).to(self.x.device)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self.x[idx], self.y[idx]


class MNISTDataModule(L.LightningDataModule):
    def __init__(self, config: TrainConfig, splits: Splits | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.config, self.dtype = config, dtype
        self.splits = splits
        self.train_batches = self.val_batches = self.test_batches = None

    def _tensor(self, images: np.ndarray) -> torch.Tensor:
        # channels_last: oneDNN's fast layout on CPU (for 1 channel it is the same memory as NCHW)
        return torch.from_numpy(channels_first(images)).to(self.dtype).contiguous(memory_format=torch.channels_last)

    def setup(self, stage: str | None = None) -> None:
        if self.train_batches is not None:
            return
        splits = self.splits = self.splits or make_splits(self.config)
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

        def batches(x: np.ndarray, y: np.ndarray, seed: int | None, per_epoch=None) -> InMemoryBatches:
            return InMemoryBatches(self._tensor(x), torch.from_numpy(y), self.config.batch_size, seed, per_epoch).to(device)

        per_epoch = (lambda epoch: self._tensor(epoch_images(splits, self.config, epoch))) if self.config.augment else None
        self.train_batches = batches(splits.train_x, splits.train_y, self.config.seed, per_epoch)
        self.val_batches = batches(splits.val_x, splits.val_y, None) if len(splits.val_y) else None
        self.test_batches = batches(splits.test_x, splits.test_y, None)

    def train_dataloader(self):
        if self.trainer is not None:  # Lightning asks for the loader once; the order follows each epoch
            self.train_batches.current_epoch = lambda: self.trainer.current_epoch
        return self.train_batches

    def val_dataloader(self):
        return self.val_batches if self.val_batches is not None else []

    def test_dataloader(self):
        return self.test_batches
