"""The LightningModule: LeNet5 plus the seed recipe's loss, optimizer and metrics."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics

from lenet_torch.model import LeNet5
from lenet_torch.optim import KerasAdam
from parity.config import TrainConfig, learning_rate


class LitLeNet5(L.LightningModule):
    def __init__(self, config: dict | None = None):
        super().__init__()
        self.save_hyperparameters()  # the whole TrainConfig, so a checkpoint says how it was trained
        self.config = TrainConfig(**{**TrainConfig().to_dict(), **(config or {})})
        self.model = LeNet5().to(memory_format=torch.channels_last)  # oneDNN's fast layout on CPU; same results
        if self.config.compile:
            self.model.compile()  # in place: state_dict keys stay as they are
        # validate_args=False: the per-step input checks cost more than the update itself
        self.train_accuracy = torchmetrics.classification.MulticlassAccuracy(num_classes=10, average="micro", validate_args=False)
        self.val_accuracy = self.train_accuracy.clone()
        self.test_accuracy = self.train_accuracy.clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch, stage: str, accuracy: torchmetrics.Metric) -> torch.Tensor:
        images, labels = batch
        logits = self.model(images)
        loss = F.cross_entropy(logits, labels)
        accuracy(logits, labels)
        # Epoch means are weighted by batch size, so a partial last batch counts for what it holds.
        self.log(f"{stage}_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(labels))
        self.log(f"{stage}_accuracy", accuracy, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train", self.train_accuracy)

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val", self.val_accuracy)

    def test_step(self, batch, batch_idx):
        self._step(batch, "test", self.test_accuracy)

    def predict_step(self, batch, batch_idx):
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.model.probabilities(images)

    def configure_optimizers(self):
        config = self.config
        if config.optimizer == "adam":
            optimizer = KerasAdam(self.parameters(), lr=config.lr)
        elif config.optimizer == "sgd":
            optimizer = torch.optim.SGD(self.parameters(), lr=config.lr)
        else:
            raise ValueError(f"unknown optimizer {config.optimizer!r}")
        if config.lr_schedule == "constant":
            return optimizer
        # Per-epoch schedule, defined once in parity.config for both frameworks.
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: learning_rate(config, epoch) / config.lr)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
