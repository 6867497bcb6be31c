"""MNIST for Keras `fit`, in the batch order the Lightning run uses (parity.data.epoch_order).

With the TensorFlow backend: a tf.data pipeline that gathers each batch from resident tensors and
prefetches. With other backends (JAX on a GPU machine without TensorFlow), and for augmented
recipes (fresh images every epoch, from parity.data.epoch_images): a `keras.utils.PyDataset`.
"""

from __future__ import annotations

import keras
import numpy as np

from parity.config import TrainConfig
from parity.data.splits import Splits, epoch_images, epoch_order, num_batches
from parity.data.preprocess import channels_last


class OrderedBatches(keras.utils.PyDataset):
    """Backend-neutral: batch i of the current epoch, in the shared order."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, images_for_epoch=None):
        super().__init__()
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.images_for_epoch = images_for_epoch  # epoch -> that epoch's (augmented) images, NHWC
        self.set_epoch(0)  # also what Keras's look at the first batch, before any epoch, sees

    def __len__(self) -> int:
        return num_batches(len(self.y), self.batch_size)

    def __getitem__(self, i: int):
        idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        return self.x[idx], self.y[idx]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order = epoch_order(self.seed, epoch, len(self.y))
        if self.images_for_epoch is not None:
            self.x = self.images_for_epoch(epoch)

    def epoch_callback(self) -> keras.callbacks.Callback:
        """Tells this dataset which epoch fit() is in. Counting PyDataset.on_epoch_begin/end calls is not
        enough: fit() wraps its first look at a batch in extra calls (TensorFlow and JAX differently),
        which put Keras's augmentation one epoch ahead of Lightning's until this was fixed."""
        dataset = self

        class FollowEpochs(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                dataset.set_epoch(epoch)

        return FollowEpochs()


def train_data(splits: Splits, config: TrainConfig):
    """Something `model.fit` iterates, one epoch per pass, in the shared order (and augmentation)."""
    x, y, batch_size, seed = channels_last(splits.train_x), splits.train_y, config.batch_size, config.seed
    if config.augment:
        return OrderedBatches(x, y, batch_size, seed, lambda epoch: channels_last(epoch_images(splits, config, epoch)))
    if keras.backend.backend() != "tensorflow":
        return OrderedBatches(x, y, batch_size, seed)
    import tensorflow as tf

    orders = np.stack([epoch_order(seed, epoch, len(y)) for epoch in range(config.epochs)])
    images, labels = tf.constant(x), tf.constant(y)
    return (
        tf.data.Dataset.from_tensor_slices(orders)
        .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
        .map(lambda idx: (tf.gather(images, idx), tf.gather(labels, idx)), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
