"""MNIST for Keras `fit`: `parity.data.batches.EpochBatcher`'s batches, the ones the Lightning run takes.

`SetEpoch` tells the batcher the epoch at each epoch's start, as Lightning's callback does. Two ways to
feed `fit`:
- `BatcherDataset`, a `keras.utils.PyDataset` handing out the batcher's batches: any backend (JAX on a
  GPU machine without TensorFlow), and augmented recipes (fresh images every epoch).
- With TensorFlow and fixed images, a tf.data pipeline that gathers each batch in-graph from resident
  tensors and prefetches: the faster path. It prefetches across epoch boundaries, before any callback
  could tell it the epoch, so it takes every epoch's order up front from the batcher's `epoch_order`.

Keras's `fit` looks at a batch before epoch 0 (and wraps that look in extra PyDataset.on_epoch_begin/end
calls, differently on TensorFlow and JAX). Counting those calls put the Keras augmented run one epoch
ahead of Lightning's once; the batcher ignores them: a new batcher is at epoch 0 and only `set_epoch`
moves it.
"""

from __future__ import annotations

import keras
import numpy as np

from parity.data.batches import EpochBatcher, epoch_order


class BatcherDataset(keras.utils.PyDataset):
    """Backend-neutral: batch i of the batcher's current epoch, channels last."""

    def __init__(self, batcher: EpochBatcher):
        super().__init__()
        self.batcher = batcher

    def __len__(self) -> int:
        return len(self.batcher)

    def __getitem__(self, i: int):
        x, y = self.batcher.batch(i)
        return x[..., None], y


class SetEpoch(keras.callbacks.Callback):
    """Tells the training batcher each epoch as it begins: the one way it learns the epoch (the Lightning
    run: lenet_torch.data.SetEpoch)."""

    def __init__(self, batcher: EpochBatcher):
        super().__init__()
        self.batcher = batcher

    def on_epoch_begin(self, epoch, logs=None):
        self.batcher.set_epoch(epoch)


def train_data(batcher: EpochBatcher, epochs: int, first_epoch: int = 0):
    """Something `model.fit` iterates, `len(batcher)` steps per epoch, in the batcher's batches, for
    epochs `first_epoch` (a resumed run's `initial_epoch`) to `epochs`."""
    if batcher.augments or keras.backend.backend() != "tensorflow":
        return BatcherDataset(batcher)
    import tensorflow as tf

    n, batch_size = len(batcher.labels), batcher.batch_size
    orders = np.stack([epoch_order(batcher.seed, epoch, n) for epoch in range(first_epoch, epochs)])
    images, labels = tf.constant(batcher.images[..., None]), tf.constant(batcher.labels)
    return (
        tf.data.Dataset.from_tensor_slices(orders)
        .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
        .map(lambda idx: (tf.gather(images, idx), tf.gather(labels, idx)), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
