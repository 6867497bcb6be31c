"""Train LeNet-5 with Keras: `train(config)` -> RunMetrics, model.keras and metrics.json in the run folder.

Side by side with lenet_torch/train.py: every epoch end writes metrics.json and checkpoints/last.keras
(`EpochEnd`, where Lightning has a ModelCheckpoint); `resume` loads that checkpoint's weights and optimizer
state and continues with `fit(initial_epoch=...)`, where Lightning has `fit(ckpt_path=...)`.

On N devices (`config.data_parallel`: --devices / --num-nodes / --strategy ddp) the same training runs
under the backend's own data-parallel engine (lenet_keras.distribute): MirroredStrategy on TensorFlow,
DataParallel on JAX, with padded, weighted batches so every step is the global batch's mean, and the epoch
and test figures read from real-sample metrics (`sample_loss`, `sample_accuracy`, `real_samples`) instead
of Keras's "loss" and "accuracy". Only rank 0 writes (parity.runs.ranks).
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import keras

from lenet_keras.data import SetEpoch, eval_data, padded_size, train_data
from lenet_keras.checkpoint import model_from_weights, save_model
from lenet_keras.devices import DeviceSetupError
from lenet_keras.distil import LABELS_LOSS, distil, labels_loss, load_teachers
from lenet_keras.distribute import REAL_SAMPLES, SAMPLE_ACCURACY, SAMPLE_LOSS, Parallel, data_parallel, real_sample_metrics
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

    def __init__(self, record: RunRecord, loss: str = "loss", accuracy: str = "accuracy", parallel: Parallel | None = None):
        super().__init__()
        self.record, self.parallel = record, parallel
        self.loss, self.accuracy = loss, accuracy  # the logs' names: the real-sample metrics on N devices

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        loss, accuracy = self.loss, self.accuracy
        self.record.epoch_done(
            EpochMetrics(
                epoch=epoch + 1,
                train_loss=float(logs[loss]),
                train_accuracy=float(logs[accuracy]),
                seconds=round(time.perf_counter() - self._start, 3),
                val_loss=float(logs[f"val_{loss}"]) if f"val_{loss}" in logs else None,
                val_accuracy=float(logs[f"val_{accuracy}"]) if f"val_{accuracy}" in logs else None,
            )
        )
        save_run_file(self.model, checkpoint_path(self.record.config), self.record, self.parallel)


class LossWatch(keras.callbacks.Callback):
    """Every step's loss: the run stops at the first non-finite one (parity.runs.stops.Diverged), and with
    --record-steps each is kept. Keras reports the epoch's running mean (weighted by batch size), so each
    step's own loss is taken back out of it; in float64 that costs ~1e-14 relative. A non-finite step makes
    the running mean non-finite at once. On `replicas` devices Keras weighs each step by its padded size
    (lenet_keras.data.pad), while the step's loss itself is still the mean over its real samples."""

    def __init__(self, batch_size: int, n_train: int, steps: list[float] | None, replicas: int = 1):
        super().__init__()
        self.batch_size, self.n_train, self.steps, self.replicas = batch_size, n_train, steps, replicas

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._seen, self._total, self._real = epoch, 0, 0.0, 0

    def on_train_batch_end(self, batch, logs=None):
        mean = float(logs["loss"])
        check_loss(mean, self._epoch + 1, batch + 1)
        if self.steps is None:
            return
        real = min(self.batch_size, self.n_train - self._real)
        size = padded_size(real, self.replicas)  # = real on one device
        seen = self._seen + size
        total = mean * seen
        self.steps.append((total - self._total) / size)
        self._seen, self._total, self._real = seen, total, self._real + real


def device_name(parallel: Parallel | None = None) -> str:
    if parallel is not None:
        return parallel.description
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


ONE_DEVICE_METRICS = {"metrics": ["accuracy"], "weighted_metrics": None}  # what _train compiles on one device


@contextmanager
def one_device_compile_config(model: keras.Model):
    """The model's compile config as a one-device run's would be (metrics "accuracy") while it is saved: the
    data-parallel run's real-sample metrics (lenet_keras.distribute) are its own classes, which
    `keras.saving.load_model` elsewhere would not find. The weights file is the same either way (layers
    and optimizer; Keras saves no metric state)."""
    config = {**model.get_compile_config(), **ONE_DEVICE_METRICS}
    object.__setattr__(model, "get_compile_config", lambda: config)  # past Keras's attribute tracking
    try:
        yield
    finally:
        object.__delattr__(model, "get_compile_config")


def save_run_file(model: keras.Model, path, record: RunRecord, parallel: Parallel | None) -> None:
    """Rank 0 saves `path`; in a multi-worker TensorFlow or multi-process JAX run the other processes save a
    throwaway copy at the same time (lenet_keras.distribute.Parallel.saves_everywhere)."""
    if record.writes:
        save_plain(model, path)
    elif parallel is not None and parallel.saves_everywhere:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="lenet-worker-") as folder:
            save_plain(model, Path(folder) / Path(path).name)


def save_plain(model: keras.Model, path) -> None:
    """lenet_keras.checkpoint.save_model, with a one-device compile config (a one-device run's model is saved as it is)."""
    if not model.get_compile_config().get("weighted_metrics"):
        save_model(model, path)
        return
    with one_device_compile_config(model):
        save_model(model, path)


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    # --ema-decay: the optimizer keeps the EMA (the first step's weights, then decay * average + (1 - decay) *
    # weights, as Lightning's EMAWeightAveraging); fit's end puts it in the model, so it is tested and saved.
    ema = {"use_ema": True, "ema_momentum": config.ema_decay} if config.ema_decay else {}
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=config.lr, **ema)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=config.lr, **ema)
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


def jax_float64(precision: str) -> None:
    """JAX makes every float64 array float32 unless x64 is on (JAX_ENABLE_X64, which
    lenet_keras.devices.prepare sets before JAX starts); switched on here too for callers that did not."""
    if precision != "float64" or keras.backend.backend() != "jax":
        return
    import jax

    if not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)


def train(config: TrainConfig, splits: Splits | None = None, *, resume: bool = False) -> RunMetrics:
    """Raises DeviceSetupError (a RuntimeError, one line) when the devices or precision asked for cannot be had."""
    jax_float64(config.precision)
    parallel = data_parallel(config)  # before anything runs on the backend: its devices are set up here
    with floatx(config.precision), (parallel.scope() if parallel else nullcontext()):
        return _train(config, splits, resume, parallel)


def _train(config: TrainConfig, splits: Splits | None, resume: bool, parallel: Parallel | None) -> RunMetrics:
    config = with_run_dir(config)
    state = stage_state(config) if resume else None
    if isinstance(state, RunMetrics):
        return state  # this stage finished before the interruption
    keras.utils.set_random_seed(config.seed)
    # The seeded float32 draw for every precision (or the model being fine-tuned): the values torch starts from.
    model = model_from_weights(starting_weights(config), dtype=config.precision)
    dtype = keras.backend.standardize_dtype(model.weights[0].value.dtype)
    if dtype != config.precision:
        raise DeviceSetupError(f"--precision {config.precision}: the {keras.backend.backend()} backend made the model {dtype} "
                               f"(on JAX, set JAX_ENABLE_X64=1 before it starts)")
    if parallel is None:  # with teachers, Keras's "loss" is the mixed loss: the labels' part is a metric of its own
        metrics = ["accuracy", labels_loss()] if config.distil_from else ["accuracy"]
        model.compile(optimizer=make_optimizer(config), loss="sparse_categorical_crossentropy", metrics=metrics)
    else:  # Keras's "accuracy" would count the pads, its "loss" weighs padded batches: see lenet_keras.distribute
        model.compile(optimizer=make_optimizer(config), loss="sparse_categorical_crossentropy",
                      weighted_metrics=real_sample_metrics())
    if config.distil_from:
        distil(model, load_teachers(config.distil_from, config.precision), config.distil_weight, config.distil_temperature,
               some_images=config.distil_images != "all")
    if state:  # the checkpoint's weights and optimizer state, read from its HDF5 part (no config deserialised)
        model.optimizer.build(model.trainable_variables)
        model.load_weights(state.checkpoint)
    record = RunRecord(
        config, params=model.count_params(), device=device_name(parallel),
        versions={"keras": keras.__version__, "backend": keras.backend.backend()},
        history=list(state.history) if state else [],  # cut to the checkpoint's epochs once they are known
        step_losses=state.step_losses if state else None,
    )
    with record.stops_recorded():
        if state:
            record.write("running")  # continuing: no longer "interrupted"
        return _fit(config, splits or make_splits(config), model, record, state, parallel)


def _fit(config: TrainConfig, splits: Splits, model: keras.Model, record: RunRecord, state, parallel: Parallel | None) -> RunMetrics:
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
    replicas = parallel.replicas if parallel else 1
    callbacks: list[keras.callbacks.Callback] = [
        *(parallel.callbacks() if parallel else []),
        SetEpoch(batcher),
        LossWatch(config.batch_size, len(splits.train_y), record.step_losses, replicas),
    ]
    if record.writes:
        callbacks.append(keras.callbacks.CSVLogger(str(config.out / "history.csv"), append=state is not None))
    if config.lr_schedule != "constant":
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch: learning_rate(config, epoch)))
    if config.ema_decay:  # validation scores the average, as Lightning's callback has it
        callbacks.append(keras.callbacks.SwapEMAWeights())
    if parallel is not None:  # the real-sample metrics: the labels' loss, with teachers or without
        callbacks.append(EpochEnd(record, SAMPLE_LOSS, SAMPLE_ACCURACY, parallel))
    else:
        callbacks.append(EpochEnd(record, LABELS_LOSS) if config.distil_from else EpochEnd(record))
    if record.writes:
        checkpoint_path(config).parent.mkdir(exist_ok=True)
    if parallel is None:
        validation = (channels_last(splits.val_x), splits.val_y) if len(splits.val_y) else None
        batches = train_data(batcher, config.epochs, first_epoch=epochs_done)
    else:  # padded and weighted batches (lenet_keras.data.pad), this process's part of each
        padding = dict(replicas=replicas, process=parallel.process_slice, dtype=config.precision)
        validation = eval_data(splits.val_x, splits.val_y, config.batch_size, **padding) if len(splits.val_y) else None
        batches = train_data(batcher, config.epochs, first_epoch=epochs_done, **padding)
    start = time.perf_counter()
    if epochs_done < config.epochs:
        model.fit(
            batches,
            epochs=config.epochs,
            initial_epoch=epochs_done,
            steps_per_epoch=len(batcher),
            validation_data=validation,
            validation_batch_size=config.batch_size if parallel is None else None,
            shuffle=False,  # the data already come in the shared epoch order
            callbacks=callbacks,
            verbose="auto" if config.progress and record.writes else 0,
        )
    elif config.ema_decay:  # resumed after its last epoch: fit's end, which puts the average in the model, never ran
        model.optimizer.finalize_variable_values(model.trainable_variables)
    if config.ema_decay and keras.backend.backend() == "jax":
        # finalize_variable_values makes each weight and its average share one JAX array, which the next jitted call
        # donates (deletes): the weights get their own copy, or saving the optimizer's average fails.
        for variable in model.trainable_variables:
            variable.assign(keras.ops.copy(variable.value))
    train_seconds = time.perf_counter() - start
    if parallel is None:
        # evaluate() scores every image: Keras keeps the last, partial batch.
        scores = model.evaluate(channels_last(splits.test_x), splits.test_y, batch_size=config.batch_size, verbose=0, return_dict=True)
        test_loss, test_accuracy = scores["loss"], scores["accuracy"]
        test_images = len(splits.test_y)
    else:  # the real-sample metrics, and how many real images they scored
        scores = model.evaluate(eval_data(splits.test_x, splits.test_y, config.batch_size, **padding), verbose=0,
                                return_dict=True, callbacks=parallel.callbacks())
        test_loss, test_accuracy, test_images = scores[SAMPLE_LOSS], scores[SAMPLE_ACCURACY], round(scores[REAL_SAMPLES])
    save_run_file(model, config.out / MODEL_FILE["keras"], record, parallel)
    return record.done(
        test_accuracy=test_accuracy, test_loss=test_loss, test_images=test_images, train_seconds=train_seconds,
    )
