#!/usr/bin/env python
"""Convert a LeNet-5 model file between torch and Keras formats; the suffixes pick the formats.

    python scripts/convert.py ../shared/seed/lenet-5.h5 runs/seed.ckpt          # Keras -> Lightning
    python scripts/convert.py runs/torch/model.ckpt runs/model.keras --check    # Lightning -> Keras, then verify

Formats: .ckpt (Lightning checkpoint), .pt/.pth (LeNet5 state_dict), .keras (Keras 3), .h5 (Keras legacy HDF5).
SRC is checked before anything is written (parity.weights.reading.read_weights): its architecture record
must be LeNet-5's (a wrong one is refused, naming the first difference; a file without one, such as a .pt,
is taken on its weight shapes with a warning), and every weight finite. DST is written atomically: it
appears complete or not at all, and its folder must exist.
Only the frameworks a conversion needs are imported: reading any file needs neither (Keras files are read
with h5py), writing a torch file needs torch, writing a Keras file needs Keras. So .h5 -> .ckpt runs without
TensorFlow. --check runs the written model in both frameworks on the 10,000 MNIST test images.
"""

from __future__ import annotations

import sys
from pathlib import Path

from parity import cli

CHECK_TOLERANCE = 1e-5  # max |softmax difference| --check accepts between the two frameworks

FORMAT_NAMES = {
    ".ckpt": "Lightning checkpoint",
    ".pt": "torch state_dict",
    ".pth": "torch state_dict",
    ".keras": "Keras model",
    ".h5": "Keras HDF5 model",
}


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path, help="model file to read (.ckpt/.pt/.pth/.keras/.h5)")
    parser.add_argument("dst", type=Path, help="model file to write; its suffix picks the format")
    parser.add_argument("--check", action="store_true",
                        help="run the written model in torch and in Keras on the MNIST test set and compare")
    parser.add_argument("--data-dir", type=Path, help="MNIST folder for --check (else $LENET_DATA_DIR, else data/mnist)")
    args = parser.parse_args(argv)
    for role, path in (("SRC", args.src), ("DST", args.dst)):
        if path.suffix.lower() not in FORMAT_NAMES:
            parser.error(f"{role} {path}: unknown model format {path.suffix or '(no suffix)'!r}; "
                         f"use one of {', '.join(FORMAT_NAMES)}")
    if not args.src.exists():
        parser.error(f"SRC {args.src}: no such file")
    if not args.src.is_file():
        parser.error(f"SRC {args.src}: not a file")
    if args.dst.exists() and args.dst.resolve() == args.src.resolve():
        parser.error(f"DST {args.dst} is SRC; write to another file")
    if args.dst.is_dir():
        parser.error(f"DST {args.dst} is a folder; give a file name")
    if args.data_dir is not None and not args.check:
        parser.error("--data-dir is only used with --check")
    return args


def kind(path: Path) -> str:
    return "torch" if path.suffix.lower() in (".ckpt", ".pt", ".pth") else "keras"


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def native_probabilities(path: Path, images):
    """Softmax outputs of the file loaded the way its own framework loads it."""
    if kind(path) == "keras":
        import keras

        from lenet_keras.model import predict_probabilities

        return predict_probabilities(keras.saving.load_model(path, compile=False), images)
    import torch

    from lenet_torch.model import LeNet5, predict_probabilities

    if path.suffix.lower() == ".ckpt":
        from lenet_torch.module import LitLeNet5

        model = LitLeNet5.load_from_checkpoint(path, map_location="cpu", weights_only=True).model
    else:
        model = LeNet5()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return predict_probabilities(model, images)


def check(path: Path, data_dir: Path | None) -> bool:
    """Run the written file in its own framework (native loader) and, converted, in the other one."""
    import numpy as np

    from parity.frameworks.equivalence import compare_outputs
    from parity.data.mnist import MNISTError, load_mnist
    from parity.data.preprocess import to_model_input
    from parity.weights.reading import read_weights

    try:
        mnist = load_mnist(data_dir)
    except MNISTError as error:
        cli.fail(f"--check: {one_line(error)}")
    images, labels = to_model_input(mnist.test_images), mnist.test_labels.astype(np.int64)
    own = native_probabilities(path, images)
    weights = read_weights(path)
    if kind(path) == "keras":
        from lenet_torch.checkpoint import model_from_weights
        from lenet_torch.model import predict_probabilities

        torch_out, keras_out = predict_probabilities(model_from_weights(weights), images), own
    else:
        from lenet_keras.checkpoint import set_weights
        from lenet_keras.model import build_lenet5, predict_probabilities

        torch_out, keras_out = own, predict_probabilities(set_weights(build_lenet5(), weights), images)
    diff = compare_outputs(torch_out, keras_out)
    ok = diff.max_abs_diff <= CHECK_TOLERANCE and diff.argmax_agreement == 1.0
    print(
        f"check on {diff.images:,} MNIST test images: max |softmax diff| torch vs keras {diff.max_abs_diff:.2e}, "
        f"argmax agreement {diff.argmax_agreement:.2%}, accuracy torch {np.mean(torch_out.argmax(1) == labels):.4f} "
        f"keras {np.mean(keras_out.argmax(1) == labels):.4f}: {'OK' if ok else f'FAILED (tolerance {CHECK_TOLERANCE:g})'}"
    )
    return ok


def main(argv=None) -> int:
    args = parse_args(argv)
    if problem := cli.unwritable_reason(args.dst):
        cli.fail(f"cannot write {args.dst}: {problem}")
    cli.quiet_frameworks()
    from parity.weights.reading import WeightFileError, read_weights

    try:  # first, with no framework loaded beyond torch for a torch file: a refused file costs no TensorFlow start-up
        weights = read_weights(args.src)
    except WeightFileError as error:
        message = one_line(error)
        cli.fail(message if str(args.src) in message else f"{args.src}: {message}")
    if args.check or (kind(args.src) == "torch" and kind(args.dst) == "keras"):
        from parity.frameworks.both import load_both

        load_both()  # torch (with _dynamo) before TensorFlow, see parity/frameworks/both.py
    from parity.frameworks.models import write_weights

    try:
        write_weights(weights, args.dst)
    # OSError: a read-only folder or a full disk (h5py, zipfile); torch's writer reports the same as RuntimeError.
    except (OSError, RuntimeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else one_line(error)
        cli.fail(f"cannot write {args.dst}: {reason} (nothing was written)")
    params = sum(array.size for layer in weights.values() for array in layer.values())
    print(f"wrote {args.dst} ({FORMAT_NAMES[args.dst.suffix.lower()]}, {params:,} params) "
          f"from {args.src} ({FORMAT_NAMES[args.src.suffix.lower()]})")
    if args.check and not check(args.dst, args.data_dir):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
