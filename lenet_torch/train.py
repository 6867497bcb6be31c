"""Train LeNet-5 with Lightning: `train(config)` -> RunMetrics, model.ckpt and metrics.json in the run folder.

Every epoch end writes metrics.json and checkpoints/last.ckpt (`EpochEnd`, a ModelCheckpoint); `resume`
continues from that checkpoint through `Trainer.fit(ckpt_path=...)`. Checkpoints are written through
`lenet_torch.checkpoint_io.AtomicCheckpointIO` and read with `weights_only=True`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
import warnings

import lightning as L
import torch
import torchmetrics
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy

from lenet_torch.checkpoint import load_model
from lenet_torch.checkpoint_io import AtomicCheckpointIO
from lenet_torch.data import MNISTDataModule, SetEpoch
from lenet_torch.module import LitLeNet5
from parity.cli import usable_cores
from parity.config import TrainConfig
from parity.data.splits import Splits, make_splits
from parity.runs.metrics import EpochMetrics, RunMetrics
from parity.runs.stages import MODEL_FILE, RunRecord, checkpoint_path, resumed_history, stage_state, with_run_dir
from parity.runs.stops import check_loss
from parity.weights.convert import keras_to_torch
from parity.weights.init import starting_weights


class EpochEnd(ModelCheckpoint):
    """At every epoch's end, after the module has logged the epoch (Lightning calls checkpoint callbacks
    last): the epoch into metrics.json, then the resumable checkpoints/last.ckpt."""

    def __init__(self, record: RunRecord):
        super().__init__(
            dirpath=checkpoint_path(record.config).parent, filename=checkpoint_path(record.config).stem,
            save_top_k=1, save_on_train_epoch_end=True, enable_version_counter=False,
        )
        self.record = record

    def on_train_start(self, trainer, pl_module):
        self.record.device = device_name(trainer)  # once the ranks run, with their share of the threads

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.record.epoch_done(
            EpochMetrics(
                epoch=trainer.current_epoch + 1,
                train_loss=metrics["train_loss"],
                train_accuracy=metrics["train_accuracy"],
                seconds=round(time.perf_counter() - self._start, 3),
                val_loss=metrics.get("val_loss"),
                val_accuracy=metrics.get("val_accuracy"),
            )
        )
        super().on_train_epoch_end(trainer, pl_module)


class LossWatch(Callback):
    """Every step's loss over the whole global batch: the run stops at the first non-finite one
    (parity.runs.stops.Diverged), and with --record-steps each is kept. One host sync per step, a few
    microseconds on the CPU; data-parallel, one small all-reduce more, so every rank sees the same loss
    and all stop at the same step (none is left waiting for the others)."""

    def __init__(self, steps: list[float] | None):
        self.steps = steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        total = trainer.strategy.reduce(outputs["loss_sum"], reduce_op="sum") if trainer.world_size > 1 else outputs["loss_sum"]
        loss = float(total) / outputs["batch_images"]
        check_loss(loss, trainer.current_epoch + 1, batch_idx + 1)
        if self.steps is not None:
            self.steps.append(loss)


def weight_average(config: TrainConfig) -> list[Callback]:
    """--ema-decay: Lightning's EMA of the weights, updated after every optimizer step (the first step's weights,
    then decay * average + (1 - decay) * weights, as Keras's use_ema). It is swapped in for validation, copied into
    the model when training ends (so tested and saved), and kept in every checkpoint to resume from."""
    return [EMAWeightAveraging(decay=config.ema_decay)] if config.ema_decay else []


def device_name(trainer: L.Trainer) -> str:
    device = trainer.strategy.root_device
    name = f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    if trainer.world_size == 1 and not isinstance(trainer.strategy, DDPStrategy):
        return name
    backend = "nccl" if device.type == "cuda" else "gloo"  # what Lightning's DDP picks
    return f"{trainer.world_size} x {name}, DDP ({backend}, {trainer.num_nodes} node{'s' * (trainer.num_nodes > 1)})"


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def stop_launched_ranks(trainer: L.Trainer) -> None:
    """The ranks Lightning started for `--devices N` (re-running this command) get SIGTERM when this one stops
    early, so none is left waiting in a collective for it. torchrun and SLURM stop their own."""
    launcher = trainer.strategy.launcher
    if getattr(launcher, "procs", None):  # Lightning's _SubprocessScriptLauncher, in the first process
        launcher.kill(signal.SIGTERM)


def epochs_in(checkpoint) -> int:
    """Epochs finished in a checkpoint that EpochEnd wrote (Lightning counts the epoch it was saved in)."""
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"]) + 1


def train(config: TrainConfig, splits: Splits | None = None, *, resume: bool = False) -> RunMetrics:
    config = with_run_dir(config)
    state = stage_state(config) if resume else None
    if isinstance(state, RunMetrics):
        return state  # this stage finished before the interruption
    L.seed_everything(config.seed, verbose=False)
    if not config.progress:  # --no-progress: Lightning's start-up notes and tips go too, warnings stay
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    dtype = torch.float64 if config.precision == "float64" else torch.float32
    teachers = [load_model(path, dtype) for path in config.distil_from or ()]  # --distil-from, checked by scripts/train.py
    module = LitLeNet5(config.to_dict(), teachers)
    epochs_done = epochs_in(state.checkpoint) if state else 0
    record = RunRecord(
        config, params=sum(p.numel() for p in module.model.parameters()), device="",
        versions={"torch": torch.__version__, "lightning": L.__version__, "torchmetrics": torchmetrics.__version__},
        history=resumed_history(state, epochs_done), step_losses=state.step_losses if state else None,
    )
    with record.stops_recorded():
        if state:
            record.write("running")  # continuing: no longer "interrupted"
        return _fit(config, splits or make_splits(config), module, dtype, record, state)


def share_cpu_threads(config: TrainConfig) -> None:
    """Data-parallel on a CPU: each process on this machine gets its share of the cores (2 processes with
    all cores each run several times slower). OMP_NUM_THREADS, when set, decides; torchrun tells how many
    processes this machine runs (LOCAL_WORLD_SIZE), Lightning's own launcher starts --devices of them."""
    if not config.data_parallel or "OMP_NUM_THREADS" in os.environ or torch.cuda.is_available() and config.accelerator != "cpu":
        return
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", config.devices))
    threads = max(1, usable_cores() // processes)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for the ranks Lightning starts


def _fit(config: TrainConfig, splits: Splits, module: LitLeNet5, dtype: torch.dtype, record: RunRecord, state) -> RunMetrics:
    share_cpu_threads(config)
    data = MNISTDataModule(config, splits, dtype)
    # The same initial weights the Keras run draws for this seed (parity.weights.init), not torch's own init,
    # or the model being fine-tuned. A resumed run then loads its checkpoint over them.
    module.model.to(dtype)  # before loading: a float64 fine-tune must not start from float32-rounded weights
    module.model.load_state_dict({k: torch.from_numpy(v) for k, v in keras_to_torch(starting_weights(config)).items()})
    if config.record_steps:  # the steps of the epochs the checkpoint holds, then this session's
        record.step_losses = (record.step_losses or [])[: record.resumed_epochs * len(data.batcher)]
    trainer = L.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        # Data-parallel: Lightning's DDP (gloo on a CPU, NCCL on GPUs), each rank taking its part of every batch.
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=DDPStrategy() if config.data_parallel else "auto",
        precision="64-true" if dtype == torch.float64 else "32-true",
        # logs/version_N/metrics.csv: N counts the sessions of a resumed run, Lightning's own convention
        logger=CSVLogger(config.out, name="logs"),
        callbacks=[SetEpoch(data.batcher), LossWatch(record.step_losses), *weight_average(config), EpochEnd(record)],
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=config.progress,
        enable_model_summary=config.progress and not state,
        num_sanity_val_steps=0,
        log_every_n_steps=min(50, len(data.batcher)),  # the module logs per epoch; this only quiets a warning
        **({} if config.val_split else {"limit_val_batches": 0}),  # --val-split 0: no validation loop
    )
    if record.writes:
        checkpoint_path(config).parent.mkdir(exist_ok=True)
    start = time.perf_counter()
    with warnings.catch_warnings(), contextlib.ExitStack() as stack:
        warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")  # resumed: by design
        warnings.filterwarnings("ignore", message=".*LeafSpec.* is deprecated")  # Lightning 2.6 on torch 2.10+, not ours
        # DDP: the epoch figures logged are torchmetrics' compute(), already summed over the ranks
        warnings.filterwarnings("ignore", message="It is recommended to use `self.log\\('train_")
        try:
            # Lightning keeps logged values in the default dtype: float64 runs must log float64 figures.
            stack.enter_context(default_dtype(dtype))
            trainer.fit(module, datamodule=data, ckpt_path=state.checkpoint if state else None, weights_only=True)
            train_seconds = time.perf_counter() - start
            (test,) = trainer.test(module, datamodule=data, verbose=False)
        except BaseException:
            stop_launched_ranks(trainer)
            raise
    trainer.save_checkpoint(config.out / MODEL_FILE["torch"], weights_only=False)  # rank 0 writes; atomic
    return record.done(
        test_accuracy=test["test_accuracy"], test_loss=test["test_loss"], test_images=round(test["test_images"]),
        train_seconds=train_seconds,
    )
