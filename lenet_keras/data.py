"""MNIST for Keras `fit`: `parity.data.batches.EpochBatcher`'s batches, the ones the Lightning run takes.

`SetEpoch` tells the batcher the epoch at each epoch's start, as Lightning's callback does. Two ways to
feed `fit`:
- `BatcherDataset`, a `keras.utils.PyDataset` handing out the batcher's batches: any backend (JAX on a
  GPU machine without TensorFlow), and augmented recipes (fresh images every epoch).
- With TensorFlow and fixed images, a tf.data pipeline that gathers each batch in-graph from resident
  tensors and prefetches: the faster path. It prefetches across epoch boundaries, before any callback
  could tell it the epoch, so it takes every epoch's order up front from the batcher's `epoch_order`.

When the teachers teach only some images (--distil-images mnist), those images' labels come `tagged`
(lenet_keras.distil), which the loss and metrics undo.

On N devices (lenet_keras.distribute) every batch that does not split evenly over them is padded with
blank, zero-weight images up to the next multiple of N, and the batches carry sample weights (`pad`):
b_p / b for the b real samples of a padded batch, 1 for a full batch. In a multi-process JAX run each
process hands out its own part of every global batch.

Keras's `fit` looks at a batch before epoch 0 (and wraps that look in extra PyDataset.on_epoch_begin/end
calls, differently on TensorFlow and JAX). Counting those calls put the Keras augmented run one epoch
ahead of Lightning's once; the batcher ignores them: a new batcher is at epoch 0 and only `set_epoch`
moves it.
"""

from __future__ import annotations

import keras
import numpy as np

from lenet_keras.distil import tagged
from parity.data.batches import EpochBatcher, epoch_order


def padded_size(size: int, replicas: int) -> int:
    """A batch of `size` padded to split evenly over `replicas` devices."""
    return -(-size // replicas) * replicas


def pad(x: np.ndarray, y: np.ndarray, replicas: int, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch (x channels last, y) padded with blank images (label 0) to split evenly over `replicas`, and
    its sample weights in `dtype`: b_p / b for the b real samples, 0 for the pads (all 1 when none are
    needed). A replica's weighted mean over its b_p / replicas samples, times 1 / replicas and summed over
    the replicas, is then the mean over the real samples: what one device computes."""
    size = len(y)
    padded = padded_size(size, replicas)
    weights = np.zeros(padded, dtype=dtype)
    weights[:size] = np.asarray(padded, dtype=dtype) / np.asarray(size, dtype=dtype)
    if padded == size:
        return x, y, weights
    x = np.concatenate([x, np.zeros((padded - size, *x.shape[1:]), dtype=x.dtype)])
    y = np.concatenate([y, np.zeros(padded - size, dtype=y.dtype)])
    return x, y, weights


class BatcherDataset(keras.utils.PyDataset):
    """Backend-neutral: batch i of the batcher's current epoch, channels last. With `replicas` > 1, padded
    and weighted (`pad`) in `dtype`; `process` = (index, count) hands out that process's part of it."""

    def __init__(self, batcher: EpochBatcher, replicas: int = 1, process: tuple[int, int] = (0, 1), dtype: str = "float32"):
        super().__init__()
        self.batcher, self.replicas, self.process, self.dtype = batcher, replicas, process, dtype
        self.labels = training_labels(batcher)

    def __len__(self) -> int:
        return len(self.batcher)

    def __getitem__(self, i: int):
        idx = self.batcher.indices(i)
        x, y = self.batcher.images[idx], self.labels[idx]
        if self.replicas == 1:
            return x[..., None], y
        x, y, w = pad(x[..., None], y, self.replicas, self.dtype)
        index, count = self.process
        if count > 1:
            part = slice(index * len(y) // count, (index + 1) * len(y) // count)
            x, y, w = x[part], y[part], w[part]
        return x, y, w


class SetEpoch(keras.callbacks.Callback):
    """Tells the training batcher each epoch as it begins: the one way it learns the epoch (the Lightning
    run: lenet_torch.data.SetEpoch)."""

    def __init__(self, batcher: EpochBatcher):
        super().__init__()
        self.batcher = batcher

    def on_epoch_begin(self, epoch, logs=None):
        self.batcher.set_epoch(epoch)


def training_labels(batcher: EpochBatcher) -> np.ndarray:
    """The labels `fit` takes: the batcher's, `tagged` where it marks the images the teachers teach."""
    return batcher.labels if batcher.taught is None else tagged(batcher.labels, batcher.taught)


def train_data(batcher: EpochBatcher, epochs: int, first_epoch: int = 0, *, replicas: int = 1,
               process: tuple[int, int] = (0, 1), dtype: str = "float32"):
    """Something `model.fit` iterates, `len(batcher)` steps per epoch, in the batcher's batches, for
    epochs `first_epoch` (a resumed run's `initial_epoch`) to `epochs`. With `replicas` > 1: padded and
    weighted batches in `dtype` (`pad`), this process's part of them (`process`, multi-process JAX)."""
    if batcher.augments or keras.backend.backend() != "tensorflow":
        return BatcherDataset(batcher, replicas, process, dtype)
    import tensorflow as tf

    n, batch_size = len(batcher.labels), batcher.batch_size
    orders = np.stack([epoch_order(batcher.seed, epoch, n) for epoch in range(first_epoch, epochs)])
    images, labels = tf.constant(batcher.images[..., None]), tf.constant(training_labels(batcher))
    batches = tf.data.Dataset.from_tensor_slices(orders).flat_map(
        lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
    if replicas == 1:
        gathered = batches.map(lambda idx: (tf.gather(images, idx), tf.gather(labels, idx)), num_parallel_calls=tf.data.AUTOTUNE)
        return gathered.prefetch(tf.data.AUTOTUNE)

    def padded(idx):  # `pad`, in-graph
        size = tf.shape(idx)[0]
        extra = (replicas - size % replicas) % replicas
        weight = tf.cast(size + extra, dtype) / tf.cast(size, dtype)
        x = tf.pad(tf.gather(images, idx), [[0, extra], [0, 0], [0, 0], [0, 0]])
        y = tf.pad(tf.gather(labels, idx), [[0, extra]])
        w = tf.concat([tf.fill([size], weight), tf.zeros([extra], dtype)], axis=0)
        return x, y, w

    options = tf.data.Options()  # a multi-worker run splits every global batch over all replicas of all workers
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return batches.map(padded, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE).with_options(options)


def eval_data(images: np.ndarray, labels: np.ndarray, batch_size: int, *, replicas: int,
              process: tuple[int, int] = (0, 1), dtype: str = "float32") -> BatcherDataset:
    """Evaluation batches for N devices: (N, 32, 32) images in index order, every one scored, each batch
    padded and weighted as in training (the run reads the real-sample metrics, lenet_keras.distribute)."""
    return BatcherDataset(EpochBatcher(labels, batch_size, images=images), replicas, process, dtype)
