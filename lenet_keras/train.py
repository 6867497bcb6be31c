"""Train LeNet-5 with Keras: `train(config)` -> RunMetrics, model.keras and metrics.json in the run folder."""

from __future__ import annotations

import time
from contextlib import contextmanager

import keras

from lenet_keras.data import SetEpoch, train_data
from lenet_keras.checkpoint import model_from_weights
from parity.config import TrainConfig, learning_rate
from parity.data.batches import EpochBatcher
from parity.data.splits import Splits, make_splits
from parity.weights.init import starting_weights
from parity.runs.metrics import EpochMetrics, RunMetrics
from parity.data.preprocess import channels_last
from parity.runs.stages import run_metrics, with_run_dir


class EpochHistory(keras.callbacks.Callback):
    """Collects Keras's epoch logs in the shared metrics.json shape."""

    def __init__(self):
        super().__init__()
        self.history: list[EpochMetrics] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.history.append(
            EpochMetrics(
                epoch=epoch + 1,
                train_loss=float(logs["loss"]),
                train_accuracy=float(logs["accuracy"]),
                seconds=round(time.perf_counter() - self._start, 3),
                val_loss=float(logs["val_loss"]) if "val_loss" in logs else None,
                val_accuracy=float(logs["val_accuracy"]) if "val_accuracy" in logs else None,
            )
        )


class StepLosses(keras.callbacks.Callback):
    """Every training step's loss. Keras reports the epoch's running mean (weighted by batch size),
    so each step's own loss is taken back out of it; in float64 that costs ~1e-14 relative."""

    def __init__(self, batch_size: int, n_train: int):
        super().__init__()
        self.batch_size, self.n_train = batch_size, n_train
        self.losses: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._seen, self._total = 0, 0.0

    def on_train_batch_end(self, batch, logs=None):
        size = min(self.batch_size, self.n_train - self._seen)
        seen = self._seen + size
        total = float(logs["loss"]) * seen
        self.losses.append((total - self._total) / size)
        self._seen, self._total = seen, total


def device_name() -> str:
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"gpu ({tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU')}, tensorflow)" if gpus else "cpu (tensorflow)"
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform} ({device.device_kind}, jax)"
    return f"{backend}"


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=config.lr)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=config.lr)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")


@contextmanager
def floatx(precision: str):
    """Keras's default float type for the run: float64 parity runs need it for the optimizer's
    learning rate and the loss tracker too, not only the layers."""
    previous = keras.config.floatx()
    keras.config.set_floatx(precision)
    try:
        yield
    finally:
        keras.config.set_floatx(previous)


def train(config: TrainConfig, splits: Splits | None = None) -> RunMetrics:
    with floatx(config.precision):
        return _train(config, splits)


def _train(config: TrainConfig, splits: Splits | None) -> RunMetrics:
    config = with_run_dir(config)
    out = config.out
    keras.utils.set_random_seed(config.seed)
    splits = splits or make_splits(config)
    # The seeded float32 draw for every precision (or the model being fine-tuned): the values torch starts from.
    model = model_from_weights(starting_weights(config), dtype=config.precision)
    model.compile(optimizer=make_optimizer(config), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = EpochHistory()
    callbacks: list[keras.callbacks.Callback] = [history, keras.callbacks.CSVLogger(str(out / "history.csv"))]
    steps = StepLosses(config.batch_size, len(splits.train_y))
    if config.record_steps:
        callbacks.append(steps)
    if config.lr_schedule != "constant":
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch: learning_rate(config, epoch)))
    validation = (channels_last(splits.val_x), splits.val_y) if len(splits.val_y) else None
    batcher = EpochBatcher.training(splits, config)
    callbacks.insert(0, SetEpoch(batcher))
    start = time.perf_counter()
    model.fit(
        train_data(batcher, config.epochs),
        epochs=config.epochs,
        steps_per_epoch=len(batcher),
        validation_data=validation,
        validation_batch_size=config.batch_size,
        shuffle=False,  # the data already come in the shared epoch order
        callbacks=callbacks,
        verbose="auto" if config.progress else 0,
    )
    train_seconds = time.perf_counter() - start
    # evaluate() scores every image: Keras keeps the last, partial batch.
    test_loss, test_accuracy = model.evaluate(channels_last(splits.test_x), splits.test_y, batch_size=config.batch_size, verbose=0)
    model.save(out / "model.keras")
    metrics = run_metrics(
        config,
        params=model.count_params(),
        history=history.history,
        test_accuracy=test_accuracy,
        test_loss=test_loss,
        test_images=len(splits.test_y),
        train_seconds=train_seconds,
        device=device_name(),
        versions={"keras": keras.__version__, "backend": keras.backend.backend()},
        step_losses=steps.losses if config.record_steps else None,
    )
    metrics.write(out / "metrics.json")
    return metrics
