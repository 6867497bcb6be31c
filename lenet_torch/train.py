"""Train LeNet-5 with Lightning: `train(config)` -> RunMetrics, model.ckpt and metrics.json in the run folder."""

from __future__ import annotations

import time

import lightning as L
import torch
import torchmetrics
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger

from lenet_torch.data import MNISTDataModule, SetEpoch
from lenet_torch.module import LitLeNet5
from parity.config import TrainConfig
from parity.weights.convert import keras_to_torch
from parity.data.splits import Splits, make_splits
from parity.weights.init import starting_weights
from parity.runs.metrics import EpochMetrics, RunMetrics
from parity.runs.stages import run_metrics, with_run_dir


class EpochHistory(Callback):
    """Collects each epoch's metrics in the shared metrics.json shape.

    The module logs its training metrics in its own on_train_epoch_end, which Lightning calls after
    this callback's, so an epoch is written down when the next one starts (or training ends)."""

    def __init__(self):
        self.history: list[EpochMetrics] = []
        self._pending: tuple[int, float] | None = None

    def on_train_epoch_start(self, trainer, pl_module):
        self._record(trainer)
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self._pending = (trainer.current_epoch + 1, round(time.perf_counter() - self._start, 3))

    def on_train_end(self, trainer, pl_module):
        self._record(trainer)

    def _record(self, trainer) -> None:
        if self._pending is None:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        epoch, seconds = self._pending
        self.history.append(
            EpochMetrics(
                epoch=epoch,
                train_loss=metrics["train_loss"],
                train_accuracy=metrics["train_accuracy"],
                seconds=seconds,
                val_loss=metrics.get("val_loss"),
                val_accuracy=metrics.get("val_accuracy"),
            )
        )
        self._pending = None


class StepLosses(Callback):
    """Every training step's loss (one host sync per step, so only when asked for)."""

    def __init__(self):
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def device_name(device: torch.device) -> str:
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"


def train(config: TrainConfig, splits: Splits | None = None) -> RunMetrics:
    config = with_run_dir(config)
    out = config.out
    L.seed_everything(config.seed, verbose=False)
    dtype = torch.float64 if config.precision == "float64" else torch.float32
    splits = splits or make_splits(config)
    data = MNISTDataModule(config, splits, dtype)
    module = LitLeNet5(config.to_dict())
    # The same initial weights the Keras run draws for this seed (parity.weights.init), not torch's own init,
    # or the model being fine-tuned.
    module.model.to(dtype)  # before loading: a float64 fine-tune must not start from float32-rounded weights
    module.model.load_state_dict({k: torch.from_numpy(v) for k, v in keras_to_torch(starting_weights(config)).items()})
    history, steps = EpochHistory(), StepLosses()
    trainer = L.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=1,
        precision="64-true" if dtype == torch.float64 else "32-true",
        logger=CSVLogger(out, name="", version=""),
        callbacks=[SetEpoch(data.batcher), history, *([steps] if config.record_steps else [])],
        enable_checkpointing=False,  # the final model is saved below, where metrics.json points
        enable_progress_bar=config.progress,
        enable_model_summary=config.progress,
        num_sanity_val_steps=0,
        **({} if config.val_split else {"limit_val_batches": 0}),  # --val-split 0: no validation loop
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    train_seconds = time.perf_counter() - start
    (test,) = trainer.test(module, datamodule=data, verbose=False)
    trainer.save_checkpoint(out / "model.ckpt", weights_only=False)  # with optimizer state: resumable
    metrics = run_metrics(
        config,
        params=sum(p.numel() for p in module.model.parameters()),
        history=history.history,
        test_accuracy=test["test_accuracy"],
        test_loss=test["test_loss"],
        test_images=len(splits.test_y),
        train_seconds=train_seconds,
        device=device_name(trainer.strategy.root_device),
        versions={"torch": torch.__version__, "lightning": L.__version__, "torchmetrics": torchmetrics.__version__},
        step_losses=steps.losses if config.record_steps else None,
    )
    metrics.write(out / "metrics.json")
    return metrics
