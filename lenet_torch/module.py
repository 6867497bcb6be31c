"""The LightningModule: LeNet5 plus the recipe's loss, optimizer, schedule and metrics.

Side by side with lenet_keras/train.py:
- loss: cross-entropy on logits here; Keras's sparse_categorical_crossentropy on the softmax output,
  which its TensorFlow backend computes from the logits behind that softmax: the same function (float64
  training agrees to ~1e-13 per step, see scripts/train_parity.py);
- optimizer: Adam with Keras's update rule (lenet_torch/optim.py) or plain SGD, as keras.optimizers;
- schedule: per epoch, from parity.config.learning_rate, as Keras's LearningRateScheduler;
- distillation (--distil-from): the teachers run in `training_step` on the student's batch, as Keras's
  `compute_loss` has them (lenet_keras/distil.py).
"""

from __future__ import annotations

import copy
import dataclasses

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn

from lenet_torch.model import LeNet5
from lenet_torch.optim import KerasAdam
from parity.config import TrainConfig, learning_rate
from parity.spec import LayerInfo

PROGRESS_EVERY = 25  # steps between progress-bar loss updates


class LitLeNet5(L.LightningModule):
    def __init__(self, config: dict | None = None, teachers: list[nn.Module] | None = None):
        super().__init__()
        # The whole TrainConfig, so a checkpoint says how it was trained. Not the teachers (--distil-from): their
        # files are named in the config, and opening a distilled model needs none of them.
        self.save_hyperparameters(ignore=["teachers"])
        self.config = TrainConfig(**{**TrainConfig().to_dict(), **(config or {})})
        self.model = LeNet5().to(memory_format=torch.channels_last)  # oneDNN's fast layout on CPU; same results
        if self.config.compile:
            self.model.compile()  # in place: state_dict keys stay as they are
        # Training metrics accumulate on the device and are logged once per epoch: each `self.log` call
        # costs ~0.5 ms of Lightning bookkeeping, as much as a tenth of a LeNet-5 training step.
        self.train_loss = torchmetrics.MeanMetric()
        # validate_args=False: the per-step input checks cost more than the update itself
        self.train_accuracy = torchmetrics.classification.MulticlassAccuracy(num_classes=10, average="micro", validate_args=False)
        # Per stage: mean loss, accuracy, images scored.
        self.eval_metrics = nn.ModuleDict({
            stage: nn.ModuleList([torchmetrics.MeanMetric(), self.train_accuracy.clone(), torchmetrics.SumMetric()])
            for stage in ("val", "test")
        })
        # A plain list, not submodules: the teachers are in no checkpoint, parameter count or optimizer.
        self.teachers: list[nn.Module] = [teacher.eval().requires_grad_(False) for teacher in teachers or ()]
        if self.config.precision == "float64":  # torchmetrics keeps float32 states through module.double()
            for metric in self.modules():
                if isinstance(metric, torchmetrics.Metric):
                    metric.set_dtype(torch.float64)

    def __setattr__(self, name, value):
        # Lightning sets `_current_fx_name` around every hook call (~12 per training step). nn.Module's
        # __setattr__ checks each value against parameters, buffers and submodules, which for a string
        # is ~5 us wasted per call: 0.15 ms per step, 3% of a compiled CPU step. Plain attribute here.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Every .ckpt says what wrote it, so a reader can tell LeNet-5 from a same-shaped impostor.
        checkpoint["architecture"] = describe_architecture(self.model)

    def on_fit_start(self) -> None:
        for teacher in self.teachers:  # a plain list: Lightning moves the student, this moves the teachers
            teacher.to(self.device)

    def soft_target_losses(self, images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Per image: the cross-entropy from the teachers' mean softmax at temperature T to the student's, times
        T^2 (so its gradients keep their size as T changes; Hinton et al. 2015)."""
        temperature = self.config.distil_temperature
        with torch.no_grad():
            targets = torch.stack([F.softmax(teacher(images) / temperature, dim=1) for teacher in self.teachers]).mean(0)
        return F.cross_entropy(logits / temperature, targets, reduction="none") * temperature**2

    def training_step(self, batch, batch_idx):
        # (images, labels, global batch size[, taught]) from lenet_torch.data: this rank's part of a global batch;
        # a plain (images, labels) loader (one device) works too.
        images, labels, *extra = batch
        batch_images = extra[0] if extra else len(labels)
        logits = self.model(images)
        labels_losses = losses = F.cross_entropy(logits, labels, reduction="none")
        if self.teachers:  # --distil-from: each image's loss mixes its label's and the teachers' view of it
            weight = self.config.distil_weight
            if len(extra) > 1:  # --distil-images mnist: the images they don't teach learn from their labels alone
                weight = weight * extra[1].to(logits.dtype)
            losses = (1 - weight) * labels_losses + weight * self.soft_target_losses(images, logits)
        # The mean over the whole global batch. DDP averages the ranks' gradients, so each rank gives its
        # sum x world / global count: exact for any split, also an epoch's uneven last batch (world 1: the mean).
        loss = losses.sum() / batch_images * self.trainer.world_size
        self.train_loss.update(labels_losses.detach())  # the labels' cross-entropy, with teachers or without
        if len(labels):  # a rank's part is empty only when a last batch holds fewer images than ranks
            self.train_accuracy.update(logits.detach(), labels)
        if batch_idx % PROGRESS_EVERY == 0:  # a running loss for the progress bar, cheaply
            self.log("loss", losses.detach().mean(), prog_bar=True, on_step=True, on_epoch=False, logger=False,
                     batch_size=len(labels))
        return {"loss": loss, "loss_sum": losses.detach().sum(), "batch_images": batch_images}

    def on_train_epoch_end(self):
        # torchmetrics sums each metric's state over the ranks in compute(): every rank logs the global figure.
        self.log("train_loss", self.train_loss.compute(), prog_bar=True)
        self.log("train_accuracy", self.train_accuracy.compute(), prog_bar=True)
        self.train_loss.reset()
        self.train_accuracy.reset()

    def _evaluate(self, batch, stage: str) -> None:
        images, labels = batch[0], batch[1]
        logits = self.model(images)
        loss, accuracy, count = self.eval_metrics[stage]
        # Metric objects, not values: Lightning computes them at the epoch's end, summed over the ranks and
        # weighted per image, so a partial last batch and each rank's part count for what they hold.
        loss.update(F.cross_entropy(logits, labels, reduction="none"))
        count.update(torch.tensor(float(len(labels)), dtype=logits.dtype, device=logits.device))
        if len(labels):
            accuracy.update(logits, labels)
        self.log(f"{stage}_loss", loss, prog_bar=True, on_epoch=True)
        self.log(f"{stage}_accuracy", accuracy, prog_bar=True, on_epoch=True)
        self.log(f"{stage}_images", count, on_epoch=True)  # images scored, over all ranks: each once

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def predict_step(self, batch, batch_idx):
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.model.probabilities(images)

    def configure_optimizers(self):
        config = self.config
        if config.optimizer == "adam":
            optimizer = KerasAdam(self.parameters(), lr=config.lr, compile=config.compile)
        elif config.optimizer == "sgd":
            optimizer = torch.optim.SGD(self.parameters(), lr=config.lr)
        else:
            raise ValueError(f"unknown optimizer {config.optimizer!r}")
        if config.lr_schedule == "constant":
            return optimizer
        # Per-epoch schedule, defined once in parity.config for both frameworks.
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: learning_rate(config, epoch) / config.lr)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


# ------------------------------------------------------------------ the architecture record of a .ckpt

_KINDS = ((nn.Conv2d, "conv"), (nn.AvgPool2d, "avgpool"), (nn.MaxPool2d, "maxpool"), (nn.Flatten, "flatten"),
          (nn.Linear, "dense"))
# Tried in this order: after a pooling layer, relu of its (non-negative) input is the identity, and the identity wins.
_ACTIVATIONS = {None: lambda t: t, "relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
                "softmax": lambda t: F.softmax(t, dim=1)}


def _square(value):
    sides = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    return int(sides[0]) if len(set(sides)) == 1 else [int(side) for side in sides]


def _padding(padding) -> str:
    if isinstance(padding, str):  # Conv2d(padding="same")
        return padding
    return "valid" if _square(padding) == 0 else str(padding)


def layer_info(name: str, module: nn.Module, activation: str | None) -> LayerInfo:
    kind = next((kind for cls, kind in _KINDS if isinstance(module, cls)), "other")
    info = LayerInfo(name, kind, activation=activation, class_name=type(module).__name__)
    if kind in ("conv", "avgpool", "maxpool"):
        info = dataclasses.replace(info, kernel=_square(module.kernel_size), stride=_square(module.stride),
                                   padding=_padding(module.padding), units=module.out_channels if kind == "conv" else 0)
    elif kind == "dense":
        info = dataclasses.replace(info, units=module.out_features)
    return info


def measured_activation(output: torch.Tensor, received: torch.Tensor) -> str | None:
    """Which function turned a layer's output into what came next (the next layer's input, or the probabilities)."""
    for name, function in _ACTIVATIONS.items():
        if received.shape == output.shape and torch.allclose(function(output), received):
            return name
    return f"unknown, {tuple(output.shape[1:])} -> {tuple(received.shape[1:])}"


@torch.no_grad()
def describe_architecture(model: LeNet5) -> list[dict]:
    """The model as it really computes, measured, not copied from parity.spec: each child layer in the
    order `probabilities` calls it (forward hooks), with the function applied to its output. Plain
    dicts of LayerInfo's fields (lists for tuples), so `torch.load(weights_only=True)` reads them back.

    Measured on a copy with fresh zero-mean random weights in float64 on the CPU: trained (or NaN) weights
    could hide an activation (a ReLU whose inputs all happen to be positive looks like none)."""
    probe = copy.deepcopy(model)
    if getattr(probe, "_compiled_call_impl", None) is not None:
        probe._compiled_call_impl = None  # Module.compile()'s copy would still run the original's forward
    probe = probe.to("cpu", torch.float64, memory_format=torch.contiguous_format).eval()
    generator = torch.Generator().manual_seed(0)
    for parameter in probe.parameters():
        parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    calls = []  # (name, module, its input, its raw output), in call order; clones: forward's relu_ works in place
    hooks = [child.register_forward_hook(lambda module, args, output, name=name: calls.append(
                 (name, module, args[0].clone(), output.clone())))
             for name, child in probe.named_children()]
    try:
        probabilities = probe.probabilities(torch.rand(2, 1, 32, 32, generator=generator, dtype=torch.float64))
    finally:
        for hook in hooks:
            hook.remove()
    received = [inputs for _, _, inputs, _ in calls[1:]] + [probabilities]
    infos = [layer_info(name, module, measured_activation(output, after))
             for (name, module, _, output), after in zip(calls, received)]
    return [{key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(info).items()}
            for info in infos]
