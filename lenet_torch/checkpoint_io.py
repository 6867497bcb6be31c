"""Lightning's checkpoint writing made atomic and durable: the Trainer plugin and a whole-run save.

Each save goes to a temporary file beside the destination, is fsynced, then replaces it (parity.files.atomic_path).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from parity.files import atomic_path


def save_trainer_checkpoint(trainer: L.Trainer, path: str | Path, weights_only: bool = False) -> Path:
    """`trainer.save_checkpoint(path)`, atomically: the whole trained run (with optimizer state unless
    weights_only), its architecture record included (LitLeNet5.on_save_checkpoint)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        trainer.save_checkpoint(tmp, weights_only=weights_only)
    return path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, atomic and durable: `L.Trainer(plugins=[AtomicCheckpointIO()])` makes every
    checkpoint the trainer writes (ModelCheckpoint's each epoch, trainer.save_checkpoint) go through
    parity.files.atomic_path. Lightning's own `_atomic_save` stages the file in the system temp folder and
    moves it without an fsync, which is neither atomic across filesystems nor durable."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)  # as TorchCheckpointIO does
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
