"""MNIST for Lightning: `parity.data.batches.EpochBatcher`'s batches, sliced from resident tensors.

A `Dataset.__getitem__` + collate per image costs more than LeNet-5's arithmetic on it, so each epoch's
images become one tensor (channels_last, on the training device, in the run's dtype) once, and batches
are index slices of it. Which images, in which order, cut where, is the batcher's: the same batches the
Keras run takes (lenet_keras/data.py). `SetEpoch` tells the batcher the epoch, as Keras's callback does.

Data-parallel (DDP), every rank holds the same tensors and takes its contiguous part of each global batch
(`parity.data.batches.rank_part`), so the ranks together see exactly the 1-device batches, each image once,
and every rank takes the same number of steps. Lightning shards only DataLoaders, never these iterables.
Each batch comes with the global batch's size, which the loss divides by, and, when the teachers teach only
some images (--distil-images mnist), which of its images they teach.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from parity.config import TrainConfig
from parity.data.batches import EpochBatcher, rank_part
from parity.data.preprocess import channels_first
from parity.data.splits import Splits


def to_tensor(images: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """float32 (N, H, W) -> (N, 1, H, W) in channels_last (oneDNN's fast layout on CPU; for 1 channel it is
    the same memory as NCHW, so float32 on the CPU shares the NumPy array's memory)."""
    return torch.from_numpy(channels_first(images)).to(dtype).contiguous(memory_format=torch.channels_last).to(device)


class ResidentBatches:
    """An iterable of (images, labels, global batch size) batches of an `EpochBatcher`, sliced from tensors on
    `device`: rank `rank` of `world`'s part of each batch; (..., taught) when the batcher marks taught images."""

    def __init__(self, batcher: EpochBatcher, dtype: torch.dtype, device: torch.device, rank: int = 0, world: int = 1):
        self.batcher, self.dtype, self.device = batcher, dtype, device
        self.rank, self.world = rank, world
        self.y = torch.from_numpy(batcher.labels).to(device)
        self.taught = None if batcher.taught is None else torch.from_numpy(batcher.taught).to(device)
        self._x: torch.Tensor | None = None
        self._x_epoch: int | None = None  # the epoch whose images self._x holds (augmented batchers)

    def __len__(self) -> int:
        return len(self.batcher)

    def images(self) -> torch.Tensor:
        """The batcher's images of its current epoch as a resident tensor, converted once per change."""
        epoch = self.batcher.epoch if self.batcher.augments else None
        if self._x is None or epoch != self._x_epoch:
            self._x = None  # frees the previous epoch's tensor before the next one is made
            self._x = to_tensor(self.batcher.images, self.dtype, self.device)
            self._x_epoch = epoch
        return self._x

    def __iter__(self):
        # A generator: its body runs at the first next(), after this epoch's SetEpoch (Lightning calls iter()
        # on the first epoch's loader before on_train_epoch_start).
        batcher = self.batcher
        x, y = self.images(), self.y
        order = None if batcher.order is None else torch.from_numpy(batcher.order).to(self.device)
        for i in range(len(batcher)):
            span = batcher.span(i)
            part = rank_part(span, self.rank, self.world)
            idx = part if order is None else order[part]  # in order: contiguous slices, no copy
            batch = x[idx], y[idx], span.stop - span.start
            yield batch if self.taught is None else (*batch, self.taught[idx])


class SetEpoch(Callback):
    """Tells the training batcher each epoch as it starts: the one way it learns the epoch (the Keras run:
    lenet_keras.data.SetEpoch)."""

    def __init__(self, batcher: EpochBatcher):
        self.batcher = batcher

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.batcher.set_epoch(trainer.current_epoch)


class MNISTDataModule(L.LightningDataModule):
    """Training batches from `batcher` (pass `SetEpoch(datamodule.batcher)` to the Trainer); validation and
    test batches in order. Tensors are made in `setup`, on the trainer's device."""

    def __init__(self, config: TrainConfig, splits: Splits, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.config, self.splits, self.dtype = config, splits, dtype
        self.batcher = EpochBatcher.training(splits, config)
        self.train_batches = self.val_batches = self.test_batches = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_batches is not None:
            return
        splits, batch_size = self.splits, self.config.batch_size
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        ranks = {"rank": trainer.global_rank, "world": trainer.world_size} if trainer is not None else {}

        def in_order(x: np.ndarray, y: np.ndarray) -> ResidentBatches:
            return ResidentBatches(EpochBatcher(y, batch_size, images=x), self.dtype, device, **ranks)

        self.train_batches = ResidentBatches(self.batcher, self.dtype, device, **ranks)
        self.val_batches = in_order(splits.val_x, splits.val_y) if len(splits.val_y) else None
        self.test_batches = in_order(splits.test_x, splits.test_y)

    def train_dataloader(self):
        return self.train_batches

    def val_dataloader(self):
        return self.val_batches if self.val_batches is not None else []

    def test_dataloader(self):
        return self.test_batches
