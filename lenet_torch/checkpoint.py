"""Loading and saving LeNet5 weights in torch from any supported model file; every save is atomic.

A save goes to a temporary file beside the destination, is fsynced, then replaces it (parity.files.atomic_path):
a kill or a full disk during a save leaves the previous complete file, never a stub under its name.
Lightning is imported only to write a .ckpt: reading a model (predict, export) needs torch alone. The trainer's
own checkpoint writing is in lenet_torch/checkpoint_io.py.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lenet_torch.model import LeNet5
from parity.files import atomic_path
from parity.spec import Weights
from parity.weights.convert import keras_to_torch


def model_from_weights(weights: Weights, dtype: torch.dtype = torch.float32) -> LeNet5:
    """A LeNet5 holding weights given in Keras layout (converted by parity.weights.convert's table)."""
    model = LeNet5().to(dtype)  # first: loading into float32 parameters would round float64 weights
    model.load_state_dict({k: torch.from_numpy(v) for k, v in keras_to_torch(weights).items()})
    return model.to(memory_format=torch.channels_last).eval()  # oneDNN's fast layout, as in training


def load_model(path: str | Path, dtype: torch.dtype = torch.float32) -> LeNet5:
    """A LeNet5 from a .ckpt/.pt or a Keras .keras/.h5 file (read with h5py: no TensorFlow needed), its
    architecture, weight shapes and finiteness checked (parity.weights.reading.read_weights)."""
    from parity.weights.reading import read_weights

    return model_from_weights(read_weights(path), dtype)


def save_checkpoint(state: dict[str, torch.Tensor], path: Path, config: dict | None = None) -> None:
    """.ckpt: a Lightning checkpoint `LitLeNet5.load_from_checkpoint` opens, with its architecture record;
    .pt/.pth: a bare state_dict (no room for a record: readers check it on weight shapes only)."""
    path = Path(path)
    if path.suffix.lower() != ".ckpt":
        checkpoint = state
    else:
        import lightning as L

        from lenet_torch.module import LitLeNet5, describe_architecture

        module = LitLeNet5(config)
        module.model.load_state_dict(state)
        checkpoint = {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "architecture": describe_architecture(module.model),
            "pytorch-lightning_version": L.__version__,
            "epoch": 0,
            "global_step": 0,
        }
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def save_weights(weights: Weights, path: Path, config: dict | None = None) -> None:
    """Weights in Keras layout -> a .ckpt (Lightning) or .pt/.pth (state_dict) file."""
    save_checkpoint({k: torch.from_numpy(v) for k, v in keras_to_torch(weights).items()}, path, config)
