"""Read LeNet-5 weights from every format the project meets, as raw arrays, trusting nothing in the file.

| suffix        | written by                         | read with            | architecture record            |
|---------------|------------------------------------|----------------------|--------------------------------|
| .h5           | Keras `model.save` (legacy HDF5), tf.keras 2.x too (the seed) | h5py | attrs["model_config"] |
| .weights.h5   | Keras 3 `model.save_weights`       | h5py                 | none                           |
| .keras        | Keras 3 `model.save` (zip)         | zipfile + h5py       | config.json                    |
| .ckpt         | Lightning `Trainer.save_checkpoint`| torch.load(weights_only=True) | checkpoint["architecture"] |
| .pt / .pth    | `torch.save(LeNet5().state_dict())`| torch.load(weights_only=True) | none                  |

`read_weights` accepts a file only if, in this order: it parses (nothing in it is run: torch files are
unpickled with weights_only=True, Keras configs are read as JSON, never deserialised); it is intact (the
CRC-32s of a zip, .keras and torch's format alike, and the weights digest the project adds to its .h5
files); its architecture record is LeNet-5 (parity.spec.first_difference, which names the first
difference) and a .ckpt's hyper-parameters are a TrainConfig; it holds exactly LeNet-5's weights, of
LeNet-5's shapes, floating point and finite. Anything else is a WeightFileError with one line naming the
file. A file with no architecture record is accepted on its weight shapes, with a one-line warning.
Keras files are parsed in a forked child (parity.weights.sandbox): a damaged .h5 can crash the HDF5 library.

Reading a Keras file never imports TensorFlow or Keras, so a Keras model goes into Lightning with torch alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pickle
import sys
import typing
import zipfile
from pathlib import Path

import h5py
import numpy as np

from parity.spec import LENET5, LayerInfo, Spec, Weights, first_difference, kernel_shapes
from parity.weights.architecture import keras_layer_infos
from parity.weights.convert import torch_to_keras
from parity.weights.sandbox import Crashed, Failed, call_isolated

KERAS_SUFFIXES = (".keras", ".h5")
TORCH_SUFFIXES = (".ckpt", ".pt", ".pth")
DIGEST_ATTRIBUTE = "lenet5_weights_sha256"  # on the .h5 files the project writes: HDF5 has no checksum of its own
MAX_ENTRY_BYTES = 64 << 20  # any one zip entry; LeNet-5 in float64 is 0.5 MB, so more is not LeNet-5 (or a bomb)


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


def read_weights(path: str | Path, spec: Spec = LENET5) -> Weights:
    """Weights in Keras layout from any supported file, checked as the module docstring says."""
    path = Path(path)
    if not path.is_file():
        raise WeightFileError(f"{path}: no such model file")
    kind = file_kind(path)
    try:
        weights, recorded = _read_torch(path, spec) if kind == "torch" else _read_keras(path, spec)
    except WeightFileError:
        raise
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):  # torch's refusal; its long advice includes loading unsafely
            raise WeightFileError(f"{path}: not a LeNet-5 torch model file: refused, it holds objects other than "
                                  "tensors and plain values, which could run code if loaded") from None
        raise WeightFileError(f"{path}: not a LeNet-5 torch model file (UnpicklingError: {_one_line(error)})") from None
    # Whatever a parser of damaged or foreign bytes raises (zipfile, h5py, torch, json: KeyError, OSError,
    # BadZipFile, RuntimeError, EOFError, struct.error, zlib.error, RecursionError, ...) means the same thing.
    except Exception as error:
        reason = f"{type(error).__name__}: {_one_line(error)}"
        raise WeightFileError(f"{path}: not a LeNet-5 {kind} model file ({reason})") from None
    check_finite(weights, path)
    if not recorded and str(path) not in _warned:  # once per file and process, and only for a file accepted
        _warned.add(str(path))
        sys.stderr.write(f"warning: {path} has no architecture record: checked on weight shapes only\n")
    return weights


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]  # one line, whatever the library said


# ---------------------------------------------------------------------------------- architecture records

_warned: set[str] = set()


def _check_architecture(path: Path, layers: list[LayerInfo] | None, spec: Spec) -> bool:
    """Whether the file has an architecture record (None: it has not); a record that is not LeNet-5 is refused."""
    if layers is not None and (difference := first_difference(layers, spec)):
        raise WeightFileError(f"{path}: not LeNet-5: {difference}")
    return layers is not None


def _record_layers(path: Path, record) -> list[LayerInfo]:
    """A .ckpt's checkpoint["architecture"] (lenet_torch.module.describe_architecture) as LayerInfos."""
    fields = {field.name: field for field in dataclasses.fields(LayerInfo)}
    if not isinstance(record, list) or not all(isinstance(entry, dict) for entry in record):
        raise WeightFileError(f"{path}: its architecture record is not a list of layers")
    layers = []
    for entry in record:
        if unknown := sorted(map(str, set(entry) - set(fields))):
            raise WeightFileError(f"{path}: its architecture record has an unknown field {unknown[0]!r}")
        if not isinstance(entry.get("name"), str) or not isinstance(entry.get("kind"), str):
            raise WeightFileError(f"{path}: its architecture record has a layer without a name or kind")
        values = {key: tuple(value) if isinstance(value, list) else value for key, value in entry.items()}
        for key, value in values.items():
            if not isinstance(value, (str, int, tuple, type(None))) or isinstance(value, bool):
                raise WeightFileError(f"{path}: its architecture record has {key}={value!r}")
        layers.append(LayerInfo(**values))
    return layers


def _known_hyper_parameters(path: Path, hyper_parameters) -> None:
    """A .ckpt's hyper_parameters must be LitLeNet5's: {"config": None or a dict of TrainConfig fields of their
    types}; Lightning passes them to LitLeNet5 when it opens the file, and a resumed run trains with them."""
    from parity.config import TrainConfig

    if hyper_parameters is None:
        return
    if not isinstance(hyper_parameters, dict) or set(hyper_parameters) - {"config"}:
        unknown = sorted(map(str, set(hyper_parameters) - {"config"})) if isinstance(hyper_parameters, dict) else []
        what = f"an unknown hyper-parameter {unknown[0]!r}" if unknown else "hyper-parameters that are not a dict"
        raise WeightFileError(f"{path}: not a LeNet-5 checkpoint: it has {what}")
    config = hyper_parameters.get("config")
    if config is None:
        return
    if not isinstance(config, dict):
        raise WeightFileError(f"{path}: not a LeNet-5 checkpoint: its config is a {type(config).__name__}, not a dict")
    hints = typing.get_type_hints(TrainConfig)
    for key, value in config.items():
        if key not in hints:
            raise WeightFileError(f"{path}: not a LeNet-5 checkpoint: its config has an unknown field {key!r}")
        kinds = typing.get_args(hints[key]) or (hints[key],)
        if any(typing.get_origin(kind) is tuple for kind in kinds):  # a list of paths (distil_from): strings in a list
            listed = isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)
            if not (value is None or listed):
                raise WeightFileError(f"{path}: not a LeNet-5 checkpoint: its config has {key}={value!r}"[:300])
            continue
        allowed = tuple(str if t is Path else t for t in kinds)
        if float in allowed:
            allowed += (int,)
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise WeightFileError(f"{path}: not a LeNet-5 checkpoint: its config has {key}={value!r}"[:300])
    try:
        TrainConfig(**config)  # its own rules: ranges and choices
    except (TypeError, ValueError) as error:
        raise WeightFileError(f"{path}: not a LeNet-5 checkpoint: its config is not a TrainConfig "
                              f"({_one_line(error)})") from None


# -------------------------------------------------------------------------------------------- torch


def _check_zip_crcs(path: Path) -> None:
    """Every entry of a zip against its CRC-32 (torch's own reader never checks them: a flipped bit in a tensor
    would load silently). Not a zip: nothing to check (torch's legacy format is a bare pickle stream)."""
    if not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as archive:
        _check_entry_sizes(path, archive)
        if (damaged := archive.testzip()) is not None:
            raise WeightFileError(f"{path}: damaged: its entry {damaged} fails its CRC-32 check")


def _check_entry_sizes(path: Path, archive: zipfile.ZipFile) -> None:
    for info in archive.infolist():
        if info.file_size > MAX_ENTRY_BYTES:
            raise WeightFileError(f"{path}: not a LeNet-5 model file: its entry {info.filename} holds "
                                  f"{info.file_size:,} bytes")


def _read_torch(path: Path, spec: Spec) -> tuple[Weights, bool]:
    import torch

    _check_zip_crcs(path)
    # weights_only: tensors, dicts and plain values only. A file whose pickle would build anything else
    # (run code) is refused with UnpicklingError before any of it runs.
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict):
        raise WeightFileError(f"{path}: not a LeNet-5 torch model file (it holds a {type(checkpoint).__name__})")
    if "state_dict" in checkpoint:  # a Lightning checkpoint
        _known_hyper_parameters(path, checkpoint.get("hyper_parameters"))
        record = checkpoint.get("architecture")
        recorded = _check_architecture(path, None if record is None else _record_layers(path, record), spec)
        checkpoint = checkpoint["state_dict"]
    else:  # a bare state_dict: nowhere to keep a record
        recorded = False
    if not isinstance(checkpoint, dict):
        raise WeightFileError(f"{path}: not a LeNet-5 torch model file (its state_dict is a {type(checkpoint).__name__})")
    # A LightningModule stores LeNet5 as `model`; a bare nn.Module state_dict has no prefix. Files written
    # before LeNet5 named its modules as attributes carry `layers.` too (`layers.conv2d.weight`).
    state = {str(key).removeprefix("model.").removeprefix("layers."): value for key, value in checkpoint.items()}
    expected = {f"{layer.name}.{part}" for layer in spec.weighted_layers for part in ("weight", "bias")}
    if extra := sorted(set(state) - expected):
        raise WeightFileError(f"{path}: not LeNet-5: it has a weight {extra[0]!r} LeNet-5 does not")
    if not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise WeightFileError(f"{path}: not a LeNet-5 torch model file: its state_dict holds values other than tensors")
    weights = torch_to_keras({key: value.detach().cpu().numpy() for key, value in state.items()}, spec)
    check_shapes(weights, spec, path)
    return weights, recorded


# -------------------------------------------------------------------------------------------- Keras


def _read_keras(path: Path, spec: Spec) -> tuple[Weights, bool]:
    """A .keras or .h5, parsed in a forked child (parity.weights.sandbox): the HDF5 library is C, and a damaged
    file can crash it or make it loop."""
    try:
        arrays, text = call_isolated(_keras_arrays, path, spec)
    except Failed as error:
        if error.kind == WeightFileError.__name__:
            raise WeightFileError(str(error)) from None
        raise WeightFileError(f"{path}: not a LeNet-5 keras model file ({error.kind}: {_one_line(error)})") from None
    except Crashed as error:
        raise WeightFileError(f"{path}: not a LeNet-5 keras model file: the HDF5 library {error} reading it") from None
    weights: Weights = {}
    for key, array in arrays.items():
        name, part = key.split("/")
        weights.setdefault(name, {})[part] = array
    return weights, text == "recorded"


def _keras_arrays(path: Path, spec: Spec) -> tuple[dict[str, np.ndarray], str]:
    """In the child: the weights as flat arrays ("conv2d/kernel"), and "recorded" if the file had a config."""
    weights, recorded = _read_keras_zip(path, spec) if path.suffix.lower() == ".keras" else _read_h5(path, path, spec)
    check_finite(weights, path)  # floating point only, so no object array has to cross over
    return {f"{name}/{part}": array for name, arrays in weights.items() for part, array in arrays.items()}, \
        "recorded" if recorded else ""


def _model_config(text) -> list[LayerInfo]:
    config = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    if not isinstance(config, dict):
        raise ValueError(f"the model config is a {type(config).__name__}, not a dict")
    return keras_layer_infos(config)


def _read_keras_zip(path: Path, spec: Spec) -> tuple[Weights, bool]:
    """A Keras 3 .keras zip: config.json and model.weights.h5."""
    _check_zip_crcs(path)  # zipfile would check them as it reads, but say "damaged" for any entry, up front
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        layers = _model_config(archive.read("config.json")) if "config.json" in names else None
        recorded = _check_architecture(path, layers, spec)
        weights_file = io.BytesIO(archive.read("model.weights.h5"))
    return _read_h5(weights_file, path, spec, recorded=recorded)[0], recorded


def _h5_datasets(group: h5py.Group) -> dict[str, h5py.Dataset]:
    found = {}
    group.visititems(lambda name, obj: found.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
    return found


def _h5_layer(f: h5py.File, name: str) -> tuple[h5py.Dataset, h5py.Dataset]:
    """(kernel, bias) datasets of one layer, unread."""
    if "model_weights" in f:  # legacy model file: model_weights/<layer>/.../kernel[:0]
        datasets = _h5_datasets(f["model_weights"][name])
        kernel = next(v for k, v in datasets.items() if k.rsplit("/", 1)[-1].startswith("kernel"))
        bias = next(v for k, v in datasets.items() if k.rsplit("/", 1)[-1].startswith("bias"))
        return kernel, bias
    if "layers" in f:  # Keras 3 weights file: layers/<layer>/vars/{0: kernel, 1: bias}
        variables = f["layers"][name]["vars"]
        return variables["0"], variables["1"]
    raise KeyError("no 'model_weights' or 'layers' group")


def _h5_extra_layer(f: h5py.File, spec: Spec) -> str | None:
    """A layer with weights that LeNet-5 does not have (a file without a config says no more than this)."""
    group = f["model_weights"] if "model_weights" in f else f["layers"]
    names = {layer.name for layer in spec.weighted_layers}
    return next((name for name, member in group.items()
                 if name not in names and isinstance(member, h5py.Group) and _h5_datasets(member)), None)


def _read_h5(source, path: Path, spec: Spec, recorded: bool | None = None) -> tuple[Weights, bool]:
    """recorded: whether the architecture was already checked (the config.json beside a .keras's weights)."""
    with h5py.File(source, "r") as f:
        if recorded is None:
            config = f.attrs.get("model_config")
            recorded = _check_architecture(path, None if config is None else _model_config(config), spec)
        datasets = {layer.name: dict(zip(("kernel", "bias"), _h5_layer(f, layer.name))) for layer in spec.weighted_layers}
        if extra := _h5_extra_layer(f, spec):
            raise WeightFileError(f"{path}: not LeNet-5: it has weights for a layer {extra!r}")
        check_shapes(datasets, spec, path)  # before reading: a damaged shape could ask for any amount of memory
        weights = {name: {part: np.asarray(dataset[()]) for part, dataset in parts.items()}
                   for name, parts in datasets.items()}
        digest = f.attrs.get(DIGEST_ATTRIBUTE)
    if isinstance(digest, bytes):
        digest = digest.decode()
    if digest is not None and str(digest) != weights_digest(weights, spec):
        raise WeightFileError(f"{path}: damaged: its weights do not match the digest saved with them")
    return weights, recorded


def weights_digest(weights: Weights, spec: Spec = LENET5) -> str:
    """SHA-256 of every weight array (dtype, shape, bytes) in the spec's order."""
    digest = hashlib.sha256()
    for layer in spec.weighted_layers:
        for part in ("kernel", "bias"):
            array = np.ascontiguousarray(weights[layer.name][part])
            digest.update(f"{layer.name}/{part}:{array.dtype.str}:{array.shape};".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def add_h5_digest(path: str | Path, spec: Spec = LENET5) -> None:
    """Seal a .h5 Keras just wrote (before it replaces its destination) with the digest of its weights, read
    back as readers will read them; read_weights then refuses the file if a bit of a weight changes."""
    path = Path(path)
    with h5py.File(path, "r") as f:
        datasets = {layer.name: dict(zip(("kernel", "bias"), _h5_layer(f, layer.name))) for layer in spec.weighted_layers}
        weights = {name: {part: np.asarray(dataset[()]) for part, dataset in parts.items()}
                   for name, parts in datasets.items()}
    with h5py.File(path, "r+") as f:
        # Fixed-length bytes, kept in the attribute itself: a variable-length string lives in HDF5's global heap,
        # where one damaged reference crashes the library (see parity.weights.sandbox).
        f.attrs[DIGEST_ATTRIBUTE] = np.bytes_(weights_digest(weights, spec))


# --------------------------------------------------------------------------------------- the arrays


def check_shapes(weights, spec: Spec = LENET5, path: str | Path | None = None) -> None:
    """Every weighted layer's kernel and bias (anything with a .shape) of LeNet-5's shapes."""
    where = f"{path}: " if path is not None else ""
    for name, shape in kernel_shapes(spec).items():
        kernel, bias = weights[name]["kernel"], weights[name]["bias"]
        if tuple(kernel.shape) != shape or tuple(bias.shape) != (shape[-1],):
            raise WeightFileError(f"{where}layer {name}: kernel {tuple(kernel.shape)}, bias {tuple(bias.shape)}; "
                                  f"LeNet-5 needs {shape}, ({shape[-1]},)")


def check_finite(weights: Weights, path: str | Path | None = None) -> None:
    """Floating-point weights, every one finite: a NaN or infinite weight makes every output made up."""
    where = f"{path}: " if path is not None else ""
    for name, arrays in weights.items():
        for part, array in arrays.items():
            if not np.issubdtype(array.dtype, np.floating):
                raise WeightFileError(f"{where}layer {name}: its {part} is {array.dtype}, not floating point")
            if bad := int(array.size - np.count_nonzero(np.isfinite(array))):
                values = "value" if bad == 1 else "values"
                raise WeightFileError(f"{where}layer {name}: its {part} holds {bad} non-finite {values} (NaN or "
                                      "infinity): refused, it would make every answer up")
