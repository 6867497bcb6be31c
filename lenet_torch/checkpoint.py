"""Loading and saving LeNet5 weights in torch from any supported model file."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from lenet_torch.model import LeNet5
from parity.weights.convert import keras_to_torch
from parity.spec import Weights


def model_from_weights(weights: Weights, dtype: torch.dtype = torch.float32) -> LeNet5:
    """A LeNet5 holding weights given in Keras layout (converted by parity.weights.convert's table)."""
    model = LeNet5()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in keras_to_torch(weights).items()})
    return model.to(dtype, memory_format=torch.channels_last).eval()  # oneDNN's fast layout, as in training


def load_model(path: str | Path, dtype: torch.dtype = torch.float32) -> LeNet5:
    """A LeNet5 from a .ckpt/.pt or a Keras .keras/.h5 file (read with h5py: no TensorFlow needed)."""
    from parity.weights.reading import read_weights

    return model_from_weights(read_weights(path), dtype)


def save_checkpoint(state: dict[str, torch.Tensor], path: Path, config: dict | None = None) -> None:
    """.ckpt: a Lightning checkpoint `LitLeNet5.load_from_checkpoint` opens; .pt/.pth: a bare state_dict."""
    if path.suffix.lower() != ".ckpt":
        torch.save(state, path)
        return
    from lenet_torch.module import LitLeNet5

    module = LitLeNet5(config)
    module.model.load_state_dict(state)
    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": L.__version__,
        "epoch": 0,
        "global_step": 0,
    }
    torch.save(checkpoint, path)


def save_weights(weights: Weights, path: Path, config: dict | None = None) -> None:
    """Weights in Keras layout -> a .ckpt (Lightning) or .pt/.pth (state_dict) file."""
    save_checkpoint({k: torch.from_numpy(v) for k, v in keras_to_torch(weights).items()}, path, config)
