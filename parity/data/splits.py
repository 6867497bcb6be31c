"""Train/validation/test splits and batch order, made once in NumPy and fed to either framework."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.config import TrainConfig
from parity.data.mnist import load_mnist
from parity.data.preprocess import to_model_input


@dataclass
class Splits:
    """Model-ready float32 images (N, 32, 32) in [0, 1] and int64 labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    train_raw: np.ndarray | None = None  # uint8 28x28 originals of train_x, for per-epoch augmentation


def make_splits(config: TrainConfig) -> Splits:
    """The validation images are the last `val_split` of the 60,000 (as Keras's validation_split takes
    the tail); `limit_train` then keeps the first N of the rest. The test set is always all 10,000."""
    mnist = load_mnist(config.data_dir)
    n_train = len(mnist.train_labels) - config.val_split
    if n_train <= 0:
        raise ValueError(f"--val-split {config.val_split} leaves no training images")
    if config.limit_train is not None:
        n_train = min(n_train, config.limit_train)
    labels = mnist.train_labels.astype(np.int64)
    val_start = len(labels) - config.val_split
    train_raw, train_y = mnist.train_images[:n_train], labels[:n_train]
    if config.code_digits:  # digits cut from generated verification codes, mixed in (the "best" recipe)
        from parity.codes.captchas import training_digits

        code_images, code_labels = training_digits(config.code_digits)
        train_raw, train_y = np.concatenate([train_raw, code_images]), np.concatenate([train_y, code_labels])
    if config.printed_digits:
        from parity.codes.captchas import printed_digits

        printed_images, printed_labels = printed_digits(config.printed_digits)
        train_raw, train_y = np.concatenate([train_raw, printed_images]), np.concatenate([train_y, printed_labels])
    return Splits(
        train_x=to_model_input(train_raw),
        train_y=train_y,
        train_raw=train_raw if config.augment else None,
        val_x=to_model_input(mnist.train_images[val_start:]),
        val_y=labels[val_start:],
        test_x=to_model_input(mnist.test_images),
        test_y=mnist.test_labels.astype(np.int64),
    )


def epoch_images(splits: Splits, config: TrainConfig, epoch: int) -> np.ndarray:
    """The training images of one epoch (index order, before shuffling): fresh augmentations when the
    recipe augments, the same preprocessed images otherwise. Both frameworks call this."""
    if not config.augment:
        return splits.train_x
    from parity.data.augment import augmented_epoch

    return augmented_epoch(splits.train_raw, config.seed, epoch)


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled order of the n training images in one epoch; both frameworks take batches in it."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def num_batches(n: int, batch_size: int) -> int:
    return -(-n // batch_size)  # the last, partial batch is kept
