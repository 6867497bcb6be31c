"""Read and write LeNet-5 weights in every format the project meets, as raw arrays.

| suffix        | written by                         | read with            | needs        |
|---------------|------------------------------------|----------------------|--------------|
| .h5           | Keras `model.save` (legacy HDF5), tf.keras 2.x too (the seed) | h5py | h5py |
| .weights.h5   | Keras 3 `model.save_weights`       | h5py                 | h5py         |
| .keras        | Keras 3 `model.save` (zip)         | zipfile + h5py       | h5py         |
| .ckpt         | Lightning `Trainer.save_checkpoint`| torch.load           | torch        |
| .pt / .pth    | `torch.save(LeNet5().state_dict())`| torch.load           | torch        |

Reading a Keras file never imports TensorFlow or Keras, so a Keras model goes into Lightning with
torch alone. Writing .keras/.h5 goes through Keras (so the file carries a loadable model config).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import h5py
import numpy as np

from parity.weights.convert import torch_to_keras
from parity.spec import LENET5, Spec, Weights

KERAS_SUFFIXES = (".keras", ".h5")
TORCH_SUFFIXES = (".ckpt", ".pt", ".pth")


class WeightFileError(ValueError):
    pass


def file_kind(path: str | Path) -> str:
    """'keras' or 'torch', from the suffix."""
    suffix = Path(path).suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return "keras"
    if suffix in TORCH_SUFFIXES:
        return "torch"
    raise WeightFileError(f"{path}: unknown model format {suffix!r}; use one of {', '.join(KERAS_SUFFIXES + TORCH_SUFFIXES)}")


def _datasets(group: h5py.Group) -> dict[str, np.ndarray]:
    found = {}
    group.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return found


def _read_h5(source, spec: Spec) -> Weights:
    with h5py.File(source, "r") as f:
        weights: Weights = {}
        for layer in spec.weighted_layers:
            if "model_weights" in f:  # legacy model file: model_weights/<layer>/.../kernel[:0]
                arrays = _datasets(f["model_weights"][layer.name])
                kernel = next(v for k, v in arrays.items() if k.rsplit("/", 1)[-1].startswith("kernel"))
                bias = next(v for k, v in arrays.items() if k.rsplit("/", 1)[-1].startswith("bias"))
            elif "layers" in f:  # Keras 3 weights file: layers/<layer>/vars/{0: kernel, 1: bias}
                variables = f["layers"][layer.name]["vars"]
                kernel, bias = variables["0"][()], variables["1"][()]
            else:
                raise KeyError("no 'model_weights' or 'layers' group")
            weights[layer.name] = {"kernel": np.asarray(kernel), "bias": np.asarray(bias)}
        return weights


def _read_torch_state(path: Path) -> dict[str, np.ndarray]:
    import torch

    # weights_only: tensors, dicts and plain values only. A file whose pickle would build anything else
    # (run code) is refused with UnpicklingError before any of it runs.
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict", checkpoint)
    # A LightningModule stores LeNet5 as `model`; a bare nn.Module state_dict has no prefix. Files written
    # before LeNet5 named its modules as attributes carry `layers.` too (`layers.conv2d.weight`).
    return {key.removeprefix("model.").removeprefix("layers."): value.detach().cpu().numpy()
            for key, value in state.items()}


def read_weights(path: str | Path, spec: Spec = LENET5) -> Weights:
    """Weights in Keras layout from any supported file."""
    path = Path(path)
    if not path.is_file():
        raise WeightFileError(f"{path}: no such model file")
    kind = file_kind(path)
    try:
        if kind == "torch":
            weights = torch_to_keras(_read_torch_state(path), spec)
        elif path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as archive:
                weights = _read_h5(io.BytesIO(archive.read("model.weights.h5")), spec)
        else:
            weights = _read_h5(path, spec)
    # Garbage or foreign files: torch.load raises UnpicklingError/EOFError/IndexError, a non-dict .pt AttributeError,
    # a wrong-rank array ValueError from the conversion's transpose/reshape.
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):  # torch's refusal; its long advice includes loading unsafely
            raise WeightFileError(f"{path}: not a LeNet-5 torch model file: refused, it holds objects other than "
                                  "tensors and plain values, which could run code if loaded") from None
        raise WeightFileError(f"{path}: not a LeNet-5 {kind} model file (UnpicklingError: {error})") from None
    except (KeyError, IndexError, StopIteration, OSError, zipfile.BadZipFile, RuntimeError, EOFError,
            AttributeError, TypeError, ValueError) as error:
        reason = " ".join(str(error).split())[:300]  # one line, whatever the library said
        raise WeightFileError(f"{path}: not a LeNet-5 {kind} model file ({type(error).__name__}: {reason})") from None
    check_shapes(weights, spec)
    return weights


def check_shapes(weights: Weights, spec: Spec = LENET5) -> None:
    from parity.spec import kernel_shapes

    for name, shape in kernel_shapes(spec).items():
        kernel, bias = weights[name]["kernel"], weights[name]["bias"]
        if kernel.shape != shape or bias.shape != (shape[-1],):
            raise WeightFileError(f"layer {name}: kernel {kernel.shape}, bias {bias.shape}; LeNet-5 needs {shape}, ({shape[-1]},)")
