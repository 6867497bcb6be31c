"""Train LeNet-5 with Keras: `train(config)` -> RunMetrics, model.keras and metrics.json in the run folder.

Side by side with lenet_torch/train.py: every epoch end writes metrics.json and checkpoints/last.keras
(`EpochEnd`, where Lightning has a ModelCheckpoint); `resume` loads that checkpoint's weights and optimizer
state and continues with `fit(initial_epoch=...)`, where Lightning has `fit(ckpt_path=...)`.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import keras

from lenet_keras.data import SetEpoch, train_data
from lenet_keras.checkpoint import model_from_weights, save_model
from parity.config import TrainConfig, learning_rate
from parity.data.batches import EpochBatcher
from parity.data.splits import Splits, make_splits
from parity.weights.init import starting_weights
from parity.data.preprocess import channels_last
from parity.runs.folder import RunFolderError
from parity.runs.metrics import EpochMetrics, RunMetrics
from parity.runs.stages import MODEL_FILE, RunRecord, checkpoint_path, resumed_history, stage_state, with_run_dir
from parity.runs.stops import check_loss


class EpochEnd(keras.callbacks.Callback):
    """At every epoch's end: the epoch into metrics.json, then the resumable checkpoints/last.keras (the
    model with its optimizer state; the epoch is the optimizer's step count over the steps per epoch)."""

    def __init__(self, record: RunRecord):
        super().__init__()
        self.record = record

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.record.epoch_done(
            EpochMetrics(
                epoch=epoch + 1,
                train_loss=float(logs["loss"]),
                train_accuracy=float(logs["accuracy"]),
                seconds=round(time.perf_counter() - self._start, 3),
                val_loss=float(logs["val_loss"]) if "val_loss" in logs else None,
                val_accuracy=float(logs["val_accuracy"]) if "val_accuracy" in logs else None,
            )
        )
        save_model(self.model, checkpoint_path(self.record.config))


class LossWatch(keras.callbacks.Callback):
    """Every step's loss: the run stops at the first non-finite one (parity.runs.stops.Diverged), and with
    --record-steps each is kept. Keras reports the epoch's running mean (weighted by batch size), so each
    step's own loss is taken back out of it; in float64 that costs ~1e-14 relative. A non-finite step makes
    the running mean non-finite at once."""

    def __init__(self, batch_size: int, n_train: int, steps: list[float] | None):
        super().__init__()
        self.batch_size, self.n_train, self.steps = batch_size, n_train, steps

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._seen, self._total = epoch, 0, 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = float(logs["loss"])
        check_loss(mean, self._epoch + 1, batch + 1)
        if self.steps is None:
            return
        size = min(self.batch_size, self.n_train - self._seen)
        seen = self._seen + size
        total = mean * seen
        self.steps.append((total - self._total) / size)
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


def train(config: TrainConfig, splits: Splits | None = None, *, resume: bool = False) -> RunMetrics:
    with floatx(config.precision):
        return _train(config, splits, resume)


def _train(config: TrainConfig, splits: Splits | None, resume: bool) -> RunMetrics:
    config = with_run_dir(config)
    state = stage_state(config) if resume else None
    if isinstance(state, RunMetrics):
        return state  # this stage finished before the interruption
    keras.utils.set_random_seed(config.seed)
    # The seeded float32 draw for every precision (or the model being fine-tuned): the values torch starts from.
    model = model_from_weights(starting_weights(config), dtype=config.precision)
    model.compile(optimizer=make_optimizer(config), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if state:  # the checkpoint's weights and optimizer state, read from its HDF5 part (no config deserialised)
        model.optimizer.build(model.trainable_variables)
        model.load_weights(state.checkpoint)
    record = RunRecord(
        config, params=model.count_params(), device=device_name(),
        versions={"keras": keras.__version__, "backend": keras.backend.backend()},
        history=list(state.history) if state else [],  # cut to the checkpoint's epochs once they are known
        step_losses=state.step_losses if state else None,
    )
    with record.stops_recorded():
        if state:
            record.write("running")  # continuing: no longer "interrupted"
        return _fit(config, splits or make_splits(config), model, record, state)


def _fit(config: TrainConfig, splits: Splits, model: keras.Model, record: RunRecord, state) -> RunMetrics:
    batcher = EpochBatcher.training(splits, config)
    epochs_done = 0
    if state:
        steps = int(model.optimizer.iterations.numpy())
        epochs_done, partial = divmod(steps, len(batcher))
        if partial:
            raise RunFolderError(f"{state.checkpoint}: {steps} steps is not a whole number of {len(batcher)}-step epochs")
        record.history = resumed_history(state, epochs_done)
        record.resumed_epochs = epochs_done
    if config.record_steps:  # the steps of the epochs the checkpoint holds, then this session's
        record.step_losses = (record.step_losses or [])[: epochs_done * len(batcher)]
    callbacks: list[keras.callbacks.Callback] = [
        SetEpoch(batcher),
        LossWatch(config.batch_size, len(splits.train_y), record.step_losses),
        keras.callbacks.CSVLogger(str(config.out / "history.csv"), append=state is not None),
    ]
    if config.lr_schedule != "constant":
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch: learning_rate(config, epoch)))
    callbacks.append(EpochEnd(record))
    checkpoint_path(config).parent.mkdir(exist_ok=True)
    validation = (channels_last(splits.val_x), splits.val_y) if len(splits.val_y) else None
    start = time.perf_counter()
    if epochs_done < config.epochs:
        model.fit(
            train_data(batcher, config.epochs, first_epoch=epochs_done),
            epochs=config.epochs,
            initial_epoch=epochs_done,
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
    save_model(model, config.out / MODEL_FILE["keras"])
    return record.done(
        test_accuracy=test_accuracy, test_loss=test_loss, test_images=len(splits.test_y), train_seconds=train_seconds,
    )
