"""Train/validation/test splits, made once in NumPy and fed to either framework (batched by parity.data.batches)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.config import TrainConfig
from parity.data.mnist import MNISTError, load_mnist
from parity.data.preprocess import to_model_input


@dataclass
class Splits:
    """int64 labels; validation and test images model-ready, float32 (N, 32, 32) in [0, 1].

    The training images are held in one form only: model-ready in `train_x`, or, when the recipe
    augments (every epoch makes its own images from the originals), as uint8 (N, 28, 28) originals in
    `train_raw`, with `train_x` None: preprocessing them would be thrown away unused. `train_mnist` says which
    training images are MNIST's own (its copies too) and which were mixed in (--distil-images mnist).
    """

    train_x: np.ndarray | None
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    train_raw: np.ndarray | None = None
    train_mnist: np.ndarray | None = None  # bool (N,), one per training image; None: not known

    def __post_init__(self) -> None:
        if (self.train_x is None) == (self.train_raw is None):
            raise ValueError("Splits holds the training images either model-ready (train_x) or raw (train_raw)")
        if self.train_mnist is not None and self.train_mnist.shape != self.train_y.shape:
            raise ValueError(f"train_mnist has {len(self.train_mnist)} flags for {len(self.train_y)} training images")


def make_splits(config: TrainConfig) -> Splits:
    """The validation images are the last `val_split` of the 60,000 (as Keras's validation_split takes
    the tail); `limit_train` then keeps the first N of the rest, `mnist_repeats` copies of them. The test set is
    always all 10,000."""
    mnist = load_mnist(config.data_dir)
    n_train = len(mnist.train_labels) - config.val_split
    if n_train <= 0:  # TrainConfig allows up to 59,999 of MNIST's 60,000: only other files get here
        raise MNISTError(f"--val-split {config.val_split} leaves none of the {len(mnist.train_labels):,} training images "
                         f"in {config.data_dir or 'the MNIST folder'} to train on")
    if config.limit_train is not None:
        n_train = min(n_train, config.limit_train)
    labels = mnist.train_labels.astype(np.int64)
    val_start = len(labels) - config.val_split
    train_raw, train_y = mnist.train_images[:n_train], labels[:n_train]
    if config.mnist_repeats > 1:  # MNIST's weight in the mix; with augment each copy is warped afresh
        train_raw, train_y = np.tile(train_raw, (config.mnist_repeats, 1, 1)), np.tile(train_y, config.mnist_repeats)
    n_mnist = len(train_y)  # MNIST's own come first; the mixed-in digits follow
    if config.code_digits:  # digits cut from generated verification codes, mixed in (the "best" recipe)
        from parity.codes.training import training_digits

        code_images, code_labels = training_digits(config.code_digits)
        train_raw, train_y = np.concatenate([train_raw, code_images]), np.concatenate([train_y, code_labels])
    if config.printed_digits:
        from parity.codes.training import printed_digits

        printed_images, printed_labels = printed_digits(config.printed_digits)
        train_raw, train_y = np.concatenate([train_raw, printed_images]), np.concatenate([train_y, printed_labels])
    if config.style_digits:
        from parity.codes.training import style_digits

        style_images, style_labels = style_digits(config.style_digits)
        train_raw, train_y = np.concatenate([train_raw, style_images]), np.concatenate([train_y, style_labels])
    return Splits(
        train_x=None if config.augment else to_model_input(train_raw),
        train_y=train_y,
        train_raw=train_raw if config.augment else None,
        train_mnist=np.arange(len(train_y)) < n_mnist,
        val_x=to_model_input(mnist.train_images[val_start:]),
        val_y=labels[val_start:],
        test_x=to_model_input(mnist.test_images),
        test_y=mnist.test_labels.astype(np.int64),
    )
