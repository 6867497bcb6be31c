"""MNIST for Keras `fit`, in the batch order the Lightning run uses (parity.data.epoch_order).

With the TensorFlow backend: a tf.data pipeline that gathers each batch from resident tensors and
prefetches. With other backends (JAX on a GPU machine without TensorFlow): a `keras.utils.PyDataset`.
"""

from __future__ import annotations

import keras
import numpy as np

from parity.data import epoch_order, num_batches
from parity.preprocess import channels_last


class OrderedBatches(keras.utils.PyDataset):
    """Backend-neutral: batch i of the current epoch, in the shared order."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
        super().__init__()
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.epoch, self.order = 0, epoch_order(seed, 0, len(y))

    def __len__(self) -> int:
        return num_batches(len(self.y), self.batch_size)

    def __getitem__(self, i: int):
        idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        return self.x[idx], self.y[idx]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = epoch_order(self.seed, self.epoch, len(self.y))


def train_data(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, epochs: int):
    """(N, 32, 32) float images and int labels -> something `model.fit` iterates, one epoch per pass."""
    x = channels_last(x)
    if keras.backend.backend() != "tensorflow":
        return OrderedBatches(x, y, batch_size, seed)
    import tensorflow as tf

    orders = np.stack([epoch_order(seed, epoch, len(y)) for epoch in range(epochs)])
    images, labels = tf.constant(x), tf.constant(y)
    return (
        tf.data.Dataset.from_tensor_slices(orders)
        .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
        .map(lambda idx: (tf.gather(images, idx), tf.gather(labels, idx)), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
