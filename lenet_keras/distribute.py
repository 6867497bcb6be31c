"""Data-parallel Keras with the backends' own engines: one training, split over N devices.

- TensorFlow: `tf.distribute.MirroredStrategy` over N GPUs, or over N logical CPU devices made here, after
  `import tensorflow` and before its runtime starts; `MultiWorkerMirroredStrategy` (its cluster from
  TF_CONFIG) over several machines.
- JAX: `keras.distribution.DataParallel` over N devices (on a CPU, the host devices XLA_FLAGS asks for:
  lenet_keras.devices.prepare); over several machines after `jax.distributed.initialize()`.

The same training as on one device, to float64 rounding. Keras reduces the loss per replica (the mean
over the replica's own samples, times 1 / replicas, gradients summed), which is the global batch's mean
only when every replica has as many samples; JAX refuses a batch that does not split evenly at all. So
every batch whose size b is not a multiple of the device count is padded up to the next multiple b_p
with blank images, and the samples are weighted: b_p / b for the real ones, 0 for the pads, 1 for all of a
full batch (lenet_keras.data). Each replica's weighted mean times 1 / replicas then sums to the mean
over the b real samples. What Keras reports as "loss" is still a mean over padded batch sizes, and its
"accuracy" would count the pads, so the run reads `real_sample_metrics()` instead: per-sample means over
the real samples only, whose totals and counts sum over the replicas.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import ops

from lenet_keras.devices import HOST_DEVICE_FLAG, DeviceSetupError, tensorflow_worker

SAMPLE_LOSS, SAMPLE_ACCURACY, REAL_SAMPLES = "sample_loss", "sample_accuracy", "real_samples"


@dataclass
class Parallel:
    """Where a data-parallel run trains: `replicas` devices in all, over `processes` processes (machines)."""

    backend: str
    replicas: int
    processes: int
    process_index: int
    description: str  # e.g. "cpu x2 (tensorflow, MirroredStrategy)", metrics.json's device
    _scope: Callable[[], contextlib.AbstractContextManager]
    step_sync: bool = False  # see StepSync
    saves_everywhere: bool = False  # every process saves when process 0 does (a save runs collectives)

    def scope(self) -> contextlib.AbstractContextManager:
        """Model building, compile, fit, evaluate and saving go inside it."""
        return self._scope()

    def callbacks(self) -> list[keras.callbacks.Callback]:
        """For every fit and evaluate: JAX's CPU devices take one step at a time (`StepSync`)."""
        return [StepSync()] if self.step_sync else []

    @property
    def process_slice(self) -> tuple[int, int]:
        """(this process, processes) for the input pipeline: JAX takes each process's part of every
        global batch from that process; TensorFlow's multi-worker input splits the global batch itself."""
        return (self.process_index, self.processes) if self.backend == "jax" else (0, 1)


_ACTIVE: dict[tuple, Parallel] = {}  # one process trains on one set of devices; later stages reuse it


def data_parallel(config) -> Parallel | None:
    """The devices `config` trains on, data-parallel, or None for a one-device run (`not config.data_parallel`:
    the plain Keras path). Call it before anything else runs on the backend: TensorFlow's logical CPU
    devices and JAX's multi-process start can only be set up before then. Raises DeviceSetupError (a
    RuntimeError) with one line when the devices cannot be had."""
    if not config.data_parallel:
        return None
    backend = keras.backend.backend()
    key = (backend, config.devices, config.num_nodes, config.accelerator)
    if key not in _ACTIVE:
        if _ACTIVE:
            (other,) = _ACTIVE
            raise DeviceSetupError(f"this process already trains on {other[1]} device(s) x {other[2]} node(s); "
                                   f"{config.devices} x {config.num_nodes} needs a new process")
        if backend == "tensorflow":
            _ACTIVE[key] = _tensorflow(config)
        elif backend == "jax":
            _ACTIVE[key] = _jax(config)
        else:
            raise DeviceSetupError(f"data-parallel Keras runs on the TensorFlow or JAX backend, not {backend!r} "
                                   f"(set KERAS_BACKEND=tensorflow or jax)")
    return _ACTIVE[key]


# ------------------------------------------------------------------------------------------ TensorFlow


def _tensorflow(config) -> Parallel:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    on_gpu = config.accelerator == "gpu" or (config.accelerator == "auto" and bool(gpus))
    if on_gpu and len(gpus) < config.devices:
        raise DeviceSetupError(f"--devices {config.devices} on GPUs: TensorFlow sees {len(gpus)} GPU(s) here"
                               + ("" if config.accelerator == "gpu" else "; --accelerator cpu trains on CPU devices"))
    if config.num_nodes > 1:
        strategy = _multi_worker_strategy(tf, config, on_gpu, len(gpus))
        kind = "gpu" if on_gpu else "cpu"
        description = f"{kind} x{strategy.num_replicas_in_sync} over {config.num_nodes} nodes (tensorflow, MultiWorkerMirroredStrategy)"
        worker = tensorflow_worker(config.num_nodes)
        # Saving a model under MultiWorkerMirroredStrategy runs collectives: worker 0 saving alone broke the
        # next step on both ("Collective instance ... expected type 0 ... but got type 1"). So the other
        # workers save a throwaway copy at the same time, as TensorFlow's multi-worker guide has them do.
        return Parallel("tensorflow", strategy.num_replicas_in_sync, config.num_nodes, worker, description,
                        strategy.scope, saves_everywhere=True)
    if on_gpu:
        devices = [f"/gpu:{i}" for i in range(config.devices)]
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        description = f"gpu x{config.devices} ({name}, tensorflow, MirroredStrategy)"
    else:
        devices = [f"/cpu:{i}" for i in range(_logical_cpus(tf, config.devices))]
        description = f"cpu x{config.devices} (tensorflow, MirroredStrategy)"
    strategy = tf.distribute.MirroredStrategy(devices)
    return Parallel("tensorflow", strategy.num_replicas_in_sync, 1, 0, description, strategy.scope)


def _logical_cpus(tf, count: int) -> int:
    """Split the CPU into `count` logical devices, once, before TensorFlow's runtime starts."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return count
    if count == 1 and current is None:
        return 1
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # "Virtual devices cannot be modified after being initialized"
        raise DeviceSetupError(f"--devices {count}: TensorFlow's runtime started before its CPU could be split into "
                               f"{count} logical devices; create the strategy (lenet_keras.distribute.data_parallel) "
                               f"before any TensorFlow op") from None
    return count


def _multi_worker_strategy(tf, config, on_gpu: bool, gpus: int):
    tensorflow_worker(config.num_nodes)  # TF_CONFIG names this many workers, this one among them
    if not on_gpu and config.devices > 1:
        raise DeviceSetupError("MultiWorkerMirroredStrategy trains on one CPU device per worker: "
                               "use --devices 1 with --num-nodes on CPUs")
    if on_gpu and gpus != config.devices:
        raise DeviceSetupError(f"MultiWorkerMirroredStrategy trains on every GPU a worker sees ({gpus} here), "
                               f"not --devices {config.devices}: set CUDA_VISIBLE_DEVICES to {config.devices} GPUs")
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as error:
        raise DeviceSetupError(f"MultiWorkerMirroredStrategy could not start: {str(error).splitlines()[0]}") from None
    _fix_keras_multi_worker(tf)
    return strategy


def _fix_keras_multi_worker(tf) -> None:
    """Keras 3's TensorFlow trainer does not run under MultiWorkerMirroredStrategy as released (3.15; see
    keras-team/keras#20585, tensorflow/tensorflow#72388), for two reasons, both mended here for this
    process only:
    - `fit` first builds the model from one batch taken as `strategy.reduce("MEAN", batch, axis=None)`,
      which the multi-worker strategy cannot do eagerly ("Attempt to convert a value (PerReplica...)"):
      the first replica's part of the batch builds it instead (only its shapes matter);
    - every step's logs (scalars) are averaged over the replicas with `strategy.reduce("MEAN", v, axis=0)`,
      which fails for a scalar ("Invalid reduction dimension 0 for input with 0 dimensions"): axis=None.
    The logs are then the mean over replicas of each replica's own running metric, which with equal
    replicas (the padded batches split evenly) is the running metric over all of them; the epoch's logs
    are read from the metrics themselves, summed over all replicas."""
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_lenet_multi_worker_fixed", False):
        return
    reduce_per_replica = trainer.reduce_per_replica

    def reduce_scalars(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: self.distribute_strategy.experimental_local_results(v)[0], next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = reduce_scalars
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer._lenet_multi_worker_fixed = True


# ------------------------------------------------------------------------------------------------- JAX


def _jax(config) -> Parallel:
    import jax

    if config.num_nodes > 1:
        _jax_initialize(jax, config)
    platform = jax.default_backend()
    if config.accelerator == "gpu" and platform == "cpu":
        raise DeviceSetupError(f"--accelerator gpu --devices {config.devices}: JAX sees no GPU here")
    local = jax.local_devices()
    if len(local) < config.devices:
        hint = (f"; set XLA_FLAGS={HOST_DEVICE_FLAG}={config.devices} before JAX starts (lenet_keras.devices.prepare "
                f"does)" if platform == "cpu" else "")
        raise DeviceSetupError(f"--devices {config.devices}: JAX sees {len(local)} {platform} device(s) here{hint}")
    # The first --devices devices of every process, in process order: process p feeds the p-th part of
    # each global batch, to its own devices.
    mine = {process: [d for d in jax.devices() if d.process_index == process][: config.devices]
            for process in range(jax.process_count())}
    devices = [d for process in sorted(mine) for d in mine[process]]
    # Each process's batches are already its own part of every global batch (lenet_keras.data: `process`).
    distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    kind = local[0].device_kind if platform != "cpu" else None
    over = f" over {jax.process_count()} nodes" if jax.process_count() > 1 else ""
    description = f"{platform} x{len(devices)}{over} ({kind + ', ' if kind else ''}jax, DataParallel)"
    # Saving syncs Keras's JAX training state into the model's variables, which across processes checks that
    # every process puts the same values ("passed to device_put is not the same on each process" when
    # process 0 saves alone): the other processes save a throwaway copy too.
    return Parallel("jax", len(devices), jax.process_count(), jax.process_index(), description, distribution.scope,
                    step_sync=platform == "cpu", saves_everywhere=jax.process_count() > 1)


def _jax_initialize(jax, config) -> None:
    """`jax.distributed.initialize()` for --num-nodes M: JAX reads the coordinator from JAX_COORDINATOR_ADDRESS
    (or a SLURM / Open MPI / Kubernetes / Cloud TPU environment it detects); the process count and id
    from here: JAX_NUM_PROCESSES (default --num-nodes) and JAX_PROCESS_ID, else what it detects."""
    from jax._src import distributed

    if distributed.global_state.client is not None:
        return  # an earlier stage of this run started it
    given = {name: os.environ.get(name, "") for name in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID")}
    for name, value in given.items():
        if value and not value.isdigit():
            raise DeviceSetupError(f"{name}={value!r}: not a process count or id (0, 1, ...)")
    if given["JAX_NUM_PROCESSES"] and int(given["JAX_NUM_PROCESSES"]) != config.num_nodes:
        raise DeviceSetupError(f"--num-nodes {config.num_nodes} but JAX_NUM_PROCESSES={given['JAX_NUM_PROCESSES']}")
    process_id = int(given["JAX_PROCESS_ID"]) if given["JAX_PROCESS_ID"] else None
    try:
        jax.distributed.initialize(num_processes=config.num_nodes, process_id=process_id)
    except (ValueError, TypeError, RuntimeError) as error:
        raise DeviceSetupError(f"--num-nodes {config.num_nodes} on JAX: jax.distributed.initialize() failed: "
                               f"{str(error).splitlines()[0]} (set JAX_COORDINATOR_ADDRESS=host:port and JAX_PROCESS_ID "
                               f"on every process, or run under SLURM / Open MPI)") from None


class StepSync(keras.callbacks.Callback):
    """Waits for each step to finish before the next is dispatched (JAX on several CPU devices).

    With JAX's asynchronous dispatch several steps are in flight at once, and XLA's CPU runtime (jaxlib
    0.10.2 here) then at times deadlocks: a thread dump of the hang shows one device's thread inside a
    step's all-reduce while the other device's part of that step waits behind later work (on its inputs
    and on XLA's in-flight limit), until XLA aborts the process after 40 s ("Termination timeout for
    `all reduce ...` exceeded"). On 2 CPU devices most 100-batch evaluations hit it, with plain Keras
    arrays too; with this callback none did (36 such evaluations, every run since). Having a batch-end
    hook also keeps Keras from moving callbacks to its thread pool (CallbackList's async dispatch)."""

    def on_train_batch_end(self, batch, logs=None):
        self._wait(logs)

    def on_test_batch_end(self, batch, logs=None):
        self._wait(logs)

    @staticmethod
    def _wait(logs):
        import jax

        jax.block_until_ready(logs)


# --------------------------------------------------------------------------------------------- metrics


class RealSampleMean(keras.metrics.Mean):
    """The epoch's mean of `per_sample(y_true, y_pred)` over the real samples only: a sample counts when its
    weight is positive (pads weigh 0), whatever that weight is. Total and count sum over the replicas."""

    def __init__(self, per_sample: Callable, name: str, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.per_sample = per_sample

    def update_state(self, y_true, y_pred, sample_weight=None):
        real = None if sample_weight is None else ops.cast(ops.greater(sample_weight, 0), self.dtype)
        return super().update_state(self.per_sample(y_true, y_pred), sample_weight=real)


class RealSamples(keras.metrics.Sum):
    """How many real samples were scored (weight > 0)."""

    def __init__(self, name=REAL_SAMPLES, dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        real = ops.ones(ops.shape(y_true)[:1], dtype=self.dtype)
        if sample_weight is not None:
            real = ops.cast(ops.greater(sample_weight, 0), self.dtype)
        return super().update_state(real)


def real_sample_metrics() -> list[keras.metrics.Metric]:
    """`compile(weighted_metrics=...)` for a data-parallel run."""
    return [RealSampleMean(keras.losses.sparse_categorical_crossentropy, SAMPLE_LOSS),
            RealSampleMean(keras.metrics.sparse_categorical_accuracy, SAMPLE_ACCURACY), RealSamples()]

