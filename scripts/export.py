#!/usr/bin/env python
"""Export a LeNet-5 model file to ONNX, through torch.onnx or through Keras's exporter (tf2onnx).

    python scripts/export.py runs/torch/model.ckpt runs/torch/model.onnx --check
    python scripts/export.py ../shared/seed/lenet-5.h5 seed.onnx --framework torch

MODEL: .ckpt (Lightning checkpoint), .pt/.pth (LeNet5 state_dict), .keras (Keras 3), .h5 (Keras legacy HDF5). It is
checked before anything is exported (parity.weights.reading.read_weights: LeNet-5's architecture, every weight
finite), then built in the chosen framework (--framework, default the file's own) and exported. Either way the
file has one contract (parity/frameworks/onnx_runtime.py): input `images`, float32 (batch, 32, 32, 1) in [0, 1]
channels last, any batch; output `probabilities`, float32 (batch, 10), softmax applied; the weights inside.
OUT is written atomically (complete or not at all); its folder must exist. Only the chosen framework is imported,
and torch too for a torch file exported through Keras (torch reads the file).

--check runs OUT in onnxruntime on the 10,000 MNIST test images against the model it was exported from, in
its framework, and prints one JSON line instead of the "wrote" line: framework, opset, path, bytes, parameters,
images, max_abs_diff, argmax_agreement, test_accuracy_native, test_accuracy_onnx, tolerance, ok.

Exit codes: 0 done (and --check passed); 1 a bad model file, an unwritable OUT, a failed export or a failed
--check; 2 bad flags (unknown suffix, OUT not .onnx, a missing MODEL, an opset the exporter cannot write);
130 Ctrl-C.
"""

from __future__ import annotations

import json
from pathlib import Path

from parity import cli
from parity.files import strict_json

CHECK_TOLERANCE = 1e-5  # max |softmax difference| --check accepts between the ONNX file and its framework
MODEL_SUFFIXES = (".ckpt", ".pt", ".pth", ".keras", ".h5")  # parity.weights.reading's, without importing h5py to parse
DEFAULT_OPSET = 18
# The opsets each exporter really writes, as installed (requirements/constraints.txt): torch.onnx's op library is
# opset 18 and converts from there (below 16 its converter fails); tf2onnx 1.17 writes 9 to 18.
OPSETS = {"torch": (16, 25), "keras": (9, 18)}
EXPORTER = {"torch": "torch.onnx", "keras": "Keras (tf2onnx)"}


def kind(path: Path) -> str:
    return "torch" if path.suffix.lower() in (".ckpt", ".pt", ".pth") else "keras"


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="model file to export (.ckpt/.pt/.pth/.keras/.h5)")
    parser.add_argument("out", type=Path, help="ONNX file to write (.onnx)")
    parser.add_argument("--framework", choices=("torch", "keras"), help="the exporter to use (default: the model file's own)")
    parser.add_argument("--opset", type=cli.Number(int, low=1), default=DEFAULT_OPSET,
                        help=f"ONNX opset (default {DEFAULT_OPSET}; torch {OPSETS['torch'][0]}-{OPSETS['torch'][1]}, "
                             f"keras {OPSETS['keras'][0]}-{OPSETS['keras'][1]})")
    parser.add_argument("--check", action="store_true",
                        help="run OUT in onnxruntime against its framework on the MNIST test set; print one JSON line")
    parser.add_argument("--data-dir", type=Path, help="MNIST folder for --check (else $LENET_DATA_DIR, else data/mnist)")
    args = parser.parse_args(argv)
    if args.model.suffix.lower() not in MODEL_SUFFIXES:
        parser.error(f"MODEL {args.model}: unknown model format {args.model.suffix or '(no suffix)'!r}; "
                     f"use one of {', '.join(MODEL_SUFFIXES)}")
    if args.out.suffix.lower() != ".onnx":
        parser.error(f"OUT {args.out}: an ONNX file's name ends in .onnx")
    if not args.model.exists():
        parser.error(f"MODEL {args.model}: no such file")
    if not args.model.is_file():
        parser.error(f"MODEL {args.model}: not a file")
    if args.out.is_dir():
        parser.error(f"OUT {args.out} is a folder; give a file name")
    if args.data_dir is not None and not args.check:
        parser.error("--data-dir is only used with --check")
    args.framework = args.framework or kind(args.model)
    low, high = OPSETS[args.framework]
    if not low <= args.opset <= high:
        parser.error(f"--opset {args.opset}: {EXPORTER[args.framework]} writes opsets {low} to {high}")
    return args


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]


def build_model(weights, framework: str):
    """The framework's own LeNet-5 holding `weights` (Keras layout), and its predict_probabilities."""
    if framework == "torch":
        from lenet_torch.checkpoint import model_from_weights
        from lenet_torch.model import predict_probabilities

        return model_from_weights(weights), predict_probabilities
    cli.import_tensorflow_quietly()
    from lenet_keras.checkpoint import model_from_weights
    from lenet_keras.model import predict_probabilities

    return model_from_weights(weights), predict_probabilities


def export(model, framework: str, out: Path, opset: int) -> None:
    if framework == "torch":
        from lenet_torch.export import export_onnx
    else:
        from lenet_keras.export import export_onnx
    try:
        export_onnx(model, out, opset=opset)
    except OSError as error:  # a full disk, a folder made read-only since the probe
        cli.fail(f"cannot write {out}: {error.strerror or one_line(error)} (nothing was written)")
    except Exception as error:  # noqa: BLE001 -- the exporters raise what their converters raise; one line, never a traceback
        cli.fail(f"cannot export to {out} with {EXPORTER[framework]}: {type(error).__name__}: {one_line(error)} (nothing was written)")


def test_images(data_dir: Path | None):
    """The 10,000 MNIST test images as model input and their labels, or one line and exit 1."""
    import numpy as np

    from parity.data.mnist import MNISTError, load_mnist
    from parity.data.preprocess import to_model_input

    try:
        mnist = load_mnist(data_dir)
    except MNISTError as error:
        cli.fail(f"--check: {one_line(error)}")
    return to_model_input(mnist.test_images), mnist.test_labels.astype(np.int64)


def check(args, model, predict_probabilities, images, labels) -> dict:
    """OUT in onnxruntime against the model it was exported from, on every test image."""
    import numpy as np

    from parity.frameworks.equivalence import compare_outputs
    from parity.frameworks.onnx_runtime import load_onnx
    from parity.weights.reading import WeightFileError

    try:
        onnx_model = load_onnx(args.out)
    except WeightFileError as error:  # the exporter wrote something that is not the contract's LeNet-5
        cli.fail(one_line(error))
    onnx_out = onnx_model.predict_probabilities(images)
    native = predict_probabilities(model, images)
    diff = compare_outputs(onnx_out, native)
    return {
        "path": str(args.out), "model": str(args.model), "framework": args.framework, "opset": args.opset,
        "bytes": args.out.stat().st_size, "parameters": onnx_model.parameters, "images": diff.images,
        "max_abs_diff": diff.max_abs_diff, "argmax_agreement": diff.argmax_agreement,
        "test_accuracy_native": float(np.mean(native.argmax(1) == labels)),
        "test_accuracy_onnx": float(np.mean(onnx_out.argmax(1) == labels)),
        "tolerance": CHECK_TOLERANCE,
        "ok": diff.max_abs_diff <= CHECK_TOLERANCE and diff.argmax_agreement == 1.0,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if problem := cli.unwritable_reason(args.out):
        cli.fail(f"cannot write {args.out}: {problem}")
    cli.quiet_frameworks()
    from parity.weights.reading import WeightFileError, read_weights

    try:  # before any framework beyond torch for a torch file: a refused file costs no TensorFlow start-up
        weights = read_weights(args.model)
    except WeightFileError as error:
        message = one_line(error)
        cli.fail(message if str(args.model) in message else f"{args.model}: {message}")
    images = labels = None
    if args.check:  # a bad MNIST folder is told before the export, not after it
        images, labels = test_images(args.data_dir)
    if args.framework == "keras" and kind(args.model) == "torch":
        import torch._dynamo  # noqa: F401  -- torch read the file; _dynamo must precede TensorFlow (parity/frameworks/both.py)

        from parity.frameworks.both import load_both

        cli.import_tensorflow_quietly()  # without its start-up notes, which load_both's plain import would print
        load_both()
    model, predict_probabilities = build_model(weights, args.framework)
    export(model, args.framework, args.out, args.opset)
    if not args.check:
        params = sum(array.size for layer in weights.values() for array in layer.values())
        print(f"wrote {args.out} (ONNX opset {args.opset} via {EXPORTER[args.framework]}, {params:,} params, "
              f"{args.out.stat().st_size:,} bytes) from {args.model}")
        return 0
    result = check(args, model, predict_probabilities, images, labels)
    print(json.dumps(strict_json(result), allow_nan=False), flush=True)
    if not result["ok"]:
        cli.fail(f"--check failed: max |softmax diff| {result['max_abs_diff']:.2e} (tolerance {CHECK_TOLERANCE:g}), "
                 f"argmax agreement {result['argmax_agreement']:.2%}")
    return 0


if __name__ == "__main__":
    cli.run(main)
