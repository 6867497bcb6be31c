"""parity.data.batches: every epoch's batches, and both frameworks' real fit loops taking exactly them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from parity.config import TrainConfig
from parity.data import splits as splits_module
from parity.data.augment import augmented_epoch
from parity.data.batches import EpochBatcher, epoch_order
from parity.data.mnist import load_mnist
from parity.data.preprocess import to_model_input
from parity.data.splits import make_splits

N, BATCH, SEED = 1003, 100, 3  # 10 full batches and a last one of 3
SIZES = [BATCH] * 10 + [3]


@pytest.fixture(scope="module")
def raw() -> np.ndarray:
    return load_mnist().train_images[:N]  # uint8 (N, 28, 28)


def numbered(n: int) -> np.ndarray:
    """float32 (n, 32, 32) images whose every pixel is the image's own index."""
    return np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], (n, 32, 32)).copy()


def test_epoch_order_is_a_seeded_permutation():
    order = epoch_order(5, 2, 1000)
    assert sorted(order) == list(range(1000))
    assert np.array_equal(order, epoch_order(5, 2, 1000))
    assert not np.array_equal(order, epoch_order(5, 3, 1000))
    assert not np.array_equal(order, epoch_order(6, 2, 1000))


def test_every_image_once_per_epoch_in_the_epoch_order():
    batcher = EpochBatcher(np.arange(N), BATCH, images=numbered(N), seed=SEED)
    assert len(batcher) == len(SIZES)
    orders = []
    for epoch in (0, 1, 2):
        batcher.set_epoch(epoch)
        batches = list(batcher)
        assert [len(y) for _, y in batches] == SIZES  # the last, partial batch is kept
        assert all(x.shape == (len(y), 32, 32) and x.dtype == np.float32 for x, y in batches)
        labels = np.concatenate([y for _, y in batches])
        images = np.concatenate([x for x, _ in batches])
        np.testing.assert_array_equal(np.sort(labels), np.arange(N))  # every image exactly once
        np.testing.assert_array_equal(images[:, 5, 7], labels)  # each image with its own label
        np.testing.assert_array_equal(labels, epoch_order(SEED, epoch, N))
        for i in (0, 7, 10):
            np.testing.assert_array_equal(batcher.batch(i)[1], batches[i][1])
        orders.append(labels)
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    batcher.set_epoch(0)  # going back gives the same epoch again
    np.testing.assert_array_equal(np.concatenate([y for _, y in batcher]), orders[0])
    with pytest.raises(IndexError):
        batcher.batch(len(SIZES))


def test_without_a_seed_batches_come_in_order():
    batcher = EpochBatcher(np.arange(N), BATCH, images=numbered(N))
    batcher.set_epoch(4)
    batches = list(batcher)
    assert [len(y) for _, y in batches] == SIZES
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), np.arange(N))
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), numbered(N))


def test_augmented_images_are_each_epochs_own(raw):
    batcher = EpochBatcher(np.arange(N), BATCH, raw=raw, seed=SEED)
    assert batcher.augments
    seen = []
    for epoch in (0, 1):
        batcher.set_epoch(epoch)
        expected = augmented_epoch(raw, SEED, epoch)
        assert batcher.images.tobytes() == expected.tobytes()
        for i in (0, 10):
            x, y = batcher.batch(i)
            assert x.tobytes() == expected[epoch_order(SEED, epoch, N)[batcher.span(i)]].tobytes()
            np.testing.assert_array_equal(y, epoch_order(SEED, epoch, N)[batcher.span(i)])
        images = batcher.images
        batcher.set_epoch(epoch)  # the same epoch again: nothing is remade
        assert batcher.images is images
        seen.append(images)
    assert (np.abs(seen[0] - seen[1]).max(axis=(1, 2)) > 0).all()  # every image changed between epochs


def test_batcher_rejects_inconsistent_sources(raw):
    labels = np.arange(N)
    with pytest.raises(ValueError):
        EpochBatcher(labels, BATCH, images=numbered(N), raw=raw, seed=0)
    with pytest.raises(ValueError):
        EpochBatcher(labels, BATCH)
    with pytest.raises(ValueError):
        EpochBatcher(labels, BATCH, raw=raw)  # augmentation needs a seed
    with pytest.raises(ValueError):
        EpochBatcher(labels[:-1], BATCH, images=numbered(N), seed=0)


def test_with_augmentation_the_training_images_are_not_preprocessed(monkeypatch):
    sizes = []

    def counting(images, *args, **kwargs):
        sizes.append(len(images))
        return to_model_input(images, *args, **kwargs)

    monkeypatch.setattr(splits_module, "to_model_input", counting)
    mnist = load_mnist()
    config = TrainConfig(augment=True, limit_train=1200, val_split=500)
    splits = make_splits(config)
    assert sorted(sizes) == [500, 10_000]  # validation and test only, never the 1,200 training images
    assert splits.train_x is None
    assert splits.train_raw.dtype == np.uint8 and splits.train_raw.shape == (1200, 28, 28)
    np.testing.assert_array_equal(splits.train_raw, mnist.train_images[:1200])
    assert splits.val_x.shape == (500, 32, 32) and splits.test_x.shape == (10_000, 32, 32)
    batcher = EpochBatcher.training(splits, config)
    assert batcher.augments and batcher.images.tobytes() == augmented_epoch(splits.train_raw, config.seed, 0).tobytes()

    sizes.clear()
    plain = make_splits(config.replace(augment=False))
    assert sorted(sizes) == [500, 1200, 10_000] and plain.train_raw is None
    np.testing.assert_array_equal(plain.train_x, to_model_input(mnist.train_images[:1200]))
    assert not EpochBatcher.training(plain, config).augments


def test_mnist_repeats_tiles_mnist_before_the_mixes_and_each_copy_is_augmented_afresh():
    mnist = load_mnist()
    config = TrainConfig(augment=True, limit_train=300, val_split=500, mnist_repeats=3)
    splits = make_splits(config)
    assert splits.train_raw.shape == (900, 28, 28) and splits.train_y.shape == (900,)
    for copy in range(3):
        np.testing.assert_array_equal(splits.train_raw[copy * 300:(copy + 1) * 300], mnist.train_images[:300])
        np.testing.assert_array_equal(splits.train_y[copy * 300:(copy + 1) * 300], mnist.train_labels[:300])
    images = EpochBatcher.training(splits, config).images
    assert np.abs(images[:300] - images[300:600]).max() > 0.5  # the same digit, warped another way
    assert len(make_splits(config.replace(mnist_repeats=1)).train_y) == 300


def test_the_splits_say_which_images_are_mnists_and_the_batcher_marks_them_taught_with_distil_images_mnist():
    config = TrainConfig(limit_train=50, val_split=500, mnist_repeats=2, printed_digits=20)
    splits = make_splits(config)
    assert splits.train_mnist.dtype == bool and splits.train_mnist.tolist() == [True] * 100 + [False] * 20
    teachers = config.replace(distil_from=("teacher.ckpt",))
    assert EpochBatcher.training(splits, teachers.replace(distil_images="mnist")).taught is splits.train_mnist
    assert EpochBatcher.training(splits, teachers).taught is None  # "all": every image, no flags
    assert EpochBatcher.training(splits, config).taught is None  # no teachers
    with pytest.raises(ValueError, match="do not say which training images are MNIST's"):
        EpochBatcher.training(dataclasses.replace(splits, train_mnist=None), teachers.replace(distil_images="mnist"))
    with pytest.raises(ValueError, match="train_mnist has 119 flags for 120 training images"):
        dataclasses.replace(splits, train_mnist=splits.train_mnist[1:])
    with pytest.raises(ValueError, match="119 taught flags for 120 labels"):
        EpochBatcher(splits.train_y, BATCH, images=splits.train_x, seed=0, taught=splits.train_mnist[1:])


# ------------------------------------------------------- both frameworks' real loops take these batches


def lightning_batches(batcher: EpochBatcher, epochs: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """The batches a real Lightning fit takes, epoch by epoch, through lenet_torch.data."""
    import lightning as L
    import torch

    from lenet_torch.data import ResidentBatches, SetEpoch

    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.seen = []

        def training_step(self, batch, batch_idx):
            if batch_idx == 0:
                self.seen.append([])
            x, y, _, *taught = batch  # (this rank's images, labels, the global batch size[, taught])
            y = y.numpy().copy()
            if taught:  # as Keras gets them (lenet_keras.distil.tagged), to compare alike
                y += 10 * taught[0].numpy()
            self.seen[-1].append((x[:, 0].numpy().copy(), y))
            return None  # nothing to optimize

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    module = Recorder()
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[SetEpoch(batcher)])
    trainer.fit(module, train_dataloaders=ResidentBatches(batcher, torch.float32, torch.device("cpu")))
    return module.seen


def keras_batches(batcher: EpochBatcher, epochs: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """The batches a real Keras fit takes, epoch by epoch, through lenet_keras.data (TensorFlow backend:
    tf.data for fixed images, the PyDataset for augmented ones)."""
    import keras

    from lenet_keras.data import SetEpoch, train_data

    class Recorder(keras.Model):
        def __init__(self):
            super().__init__()
            self.seen = []

        def call(self, x):
            return x

        def train_step(self, data):
            x, y = data
            self.seen.append((keras.ops.convert_to_numpy(x)[..., 0], keras.ops.convert_to_numpy(y)))
            return {"loss": keras.ops.zeros(())}

    model = Recorder()
    model.compile(run_eagerly=True)
    model.fit(train_data(batcher, epochs), epochs=epochs, steps_per_epoch=len(batcher), shuffle=False,
              callbacks=[SetEpoch(batcher)], verbose=0)
    return [model.seen[e * len(batcher) : (e + 1) * len(batcher)] for e in range(epochs)]


@pytest.mark.parametrize("augment, teach_some", [(False, False), (True, False), (False, True), (True, True)],
                         ids=["fixed", "augmented", "fixed-some-taught", "augmented-some-taught"])
def test_lightning_and_keras_fit_take_the_same_batches(raw, augment, teach_some):
    """Each epoch's batches in both real fit loops are the batcher's for that epoch: Lightning creates its
    first iterator before on_train_epoch_start, Keras looks at a batch before epoch 0, and neither may
    shift an epoch (the Keras augmented run was once one epoch ahead). When the teachers teach some images
    only (--distil-images mnist), each image comes with its flag: Lightning's fourth tensor, Keras's tagged label."""
    epochs = 3
    labels = np.arange(N)  # each image's own index: a batch of other images shows
    taught = (np.arange(N) % 3 == 0) if teach_some else None

    def batcher() -> EpochBatcher:
        return EpochBatcher(labels, BATCH, raw=raw, seed=SEED, taught=taught) if augment else \
            EpochBatcher(labels, BATCH, images=to_model_input(raw), seed=SEED, taught=taught)

    taken = {"lightning": lightning_batches(batcher(), epochs), "keras": keras_batches(batcher(), epochs)}
    reference = batcher()
    for epoch in range(epochs):
        reference.set_epoch(epoch)
        expected = [(x, y + 10 * taught[reference.indices(i)] if teach_some else y) for i, (x, y) in enumerate(reference)]
        for framework, epochs_taken in taken.items():
            got = epochs_taken[epoch]
            assert [len(y) for _, y in got] == SIZES, framework
            for (x, y), (ex, ey) in zip(got, expected):
                np.testing.assert_array_equal(y, ey, err_msg=f"{framework}, epoch {epoch}")
                assert x.tobytes() == ex.tobytes(), f"{framework}, epoch {epoch}: other images"
