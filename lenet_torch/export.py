"""LeNet5 to an ONNX file through torch.onnx (the torch.export-based exporter), side by side with lenet_keras/export.py.

Both exporters write the same contract (parity/frameworks/onnx_runtime.py), so their files are interchangeable:
input `images`, float32 (batch, 32, 32, 1) in [0, 1], channels last like the Keras model, the batch dynamic;
output `probabilities`, float32 (batch, 10), softmax applied; the weights inside the file. The torch model takes
NCHW and returns logits, so a small wrapper transposes the input and applies the softmax: the graph starts with
a Transpose and ends in Softmax. The file is written atomically (parity.files.atomic_path).

`intermediate_diffs` uses torch's own per-node verification (torch.onnx.verification): every value the
exported graph computes, against the same fx node run in torch, so a drifting layer is named.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import logging
from pathlib import Path

import torch
from torch import nn

from lenet_torch.model import LeNet5
from parity.files import atomic_path

DEFAULT_OPSET = 18  # what torch.onnx's op library is written in (older opsets go through a version converter)
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"  # parity/frameworks/onnx_runtime.py's contract
EXAMPLE_BATCH = 2  # torch.export specialises a batch of 1 to a constant; 2 keeps the dimension symbolic


class ProbabilitiesNHWC(nn.Module):
    """LeNet5 behind the ONNX contract: (N, 32, 32, 1) channels last in, softmax out."""

    def __init__(self, model: LeNet5):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.probabilities(images.permute(0, 3, 1, 2))


@contextlib.contextmanager
def _quiet(verbose: bool):
    """torch.onnx prints its progress to stdout and logs notes; neither is the user's business unless asked."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]  # onnxscript: the opset converter
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)  # a failure still surfaces: as the exception, or as the opset check below
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def written_opset(proto) -> int:
    """The default-domain opset an ONNX ModelProto declares."""
    return next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))


def onnx_program(model: LeNet5, opset: int = DEFAULT_OPSET, verbose: bool = False) -> torch.onnx.ONNXProgram:
    """The exported program (in memory): a float32, eval-mode copy of `model` behind ProbabilitiesNHWC."""
    wrapped = ProbabilitiesNHWC(copy.deepcopy(model).float().eval()).eval()
    example = torch.rand(EXAMPLE_BATCH, 32, 32, 1)
    with _quiet(verbose), torch.no_grad():
        program = torch.onnx.export(
            wrapped, (example,), dynamo=True, opset_version=opset, verbose=verbose, external_data=False,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    # Below its own opset torch.onnx converts the graph, and where the converter fails it keeps opset 18 with
    # only a log line: a file of another opset than the one asked for is an error here.
    if (wrote := written_opset(program.model_proto)) != opset:
        raise ValueError(f"torch.onnx cannot write ONNX opset {opset} (it wrote opset {wrote})")
    return program


def save_program(program: torch.onnx.ONNXProgram, path: str | Path, verbose: bool = False) -> Path:
    """An exported program to `path`, weights inside, atomically (complete or not at all)."""
    path = Path(path)
    with atomic_path(path) as tmp, _quiet(verbose):
        program.save(tmp, external_data=False)
    return path


def export_onnx(model: LeNet5, path: str | Path, opset: int = DEFAULT_OPSET, verbose: bool = False) -> Path:
    """Write `model` as an ONNX file at `path` (atomically: complete or not at all); returns the path."""
    return save_program(onnx_program(model, opset, verbose), path, verbose)


def intermediate_diffs(program: torch.onnx.ONNXProgram, images) -> dict[str, float]:
    """Max abs difference of every intermediate value of an exported program (`onnx_program`), run by
    onnxruntime inside torch.onnx.verification, against the same node run in torch, on (N, 32, 32) images.
    Keyed by torch.export's node names in graph order (permute, conv2d, relu, avg_pool2d, conv2d_1, relu_1,
    avg_pool2d_1, _unsafe_view (the flatten), linear, relu_2, linear_1, relu_3, linear_2), then OUTPUT_NAME
    (the softmax). One onnxruntime session per node: a thousand images take about a second."""
    import numpy as np
    import torch.onnx.verification as verification

    batch = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[..., None]
    # Quiet: its log warns of every value whose *relative* difference is large, i.e. of near-zero activations.
    # gc.freeze: it runs a full gc.collect() twice per node (to free a >1.5 GB model's temporary files), 0.3 s
    # each with torch loaded; frozen, the objects that already exist are not scanned again (8 s -> 0.4 s).
    gc.freeze()
    try:
        with _quiet(verbose=False):
            infos = verification.verify_onnx_program(program, args=(batch,), compare_intermediates=True)
            output, = verification.verify_onnx_program(program, args=(batch,))
    finally:
        gc.unfreeze()
    diffs = {info.name: float(info.max_abs_diff) for info in infos}
    diffs[OUTPUT_NAME] = float(output.max_abs_diff)
    return diffs
