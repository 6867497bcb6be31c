#!/usr/bin/env python
"""Read single digits from image files with a trained LeNet-5, in either framework.

    python scripts/predict.py --model runs/torch-.../model.ckpt digit.png more_digits/
    python scripts/predict.py --model ../shared/seed/lenet-5.h5 --framework torch digit.png

Prints one JSON object per image: {"path": ..., "digit": ..., "confidence": ...}. Any image works:
colour or gray, dark-on-light or light-on-dark, any size; it is normalised the way MNIST was made
(parity.digits.to_mnist). An image with no readable digit gets "digit": null and an "error".
--model may be a Lightning .ckpt, a .pt state_dict, a Keras .keras or a legacy .h5; --framework
runs it in torch or Keras (default: the file's own), converting the weights when needed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from parity import cli

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help=".ckpt, .pt, .keras or .h5")
    parser.add_argument("--framework", choices=("torch", "keras"), help="default: the model file's own")
    parser.add_argument("--no-normalize", action="store_true", help="only gray + resize to 28x28, as the seed did (for comparison)")
    parser.add_argument("images", nargs="+", type=Path, help="image files or folders of them")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        parser.error(f"--model {args.model}: no such file")
    for path in args.images:
        if not path.exists():
            parser.error(f"{path}: no such file or folder")
    return args


def image_paths(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(path)
    return found


def plain_digit(path: Path) -> np.ndarray:
    """The seed's way: gray, resized to 28x28, nothing else."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L").resize((28, 28), Image.Resampling.BILINEAR))


def main(argv=None) -> int:
    args = parse_args(argv)
    cli.quiet_frameworks()
    from parity.codes.normalize import NoDigit, to_mnist
    from parity.frameworks.predictor import load_classifier
    from parity.weights.reading import WeightFileError, file_kind

    framework = args.framework or file_kind(args.model)
    if framework == "torch" and file_kind(args.model) == "keras":
        pass  # h5py reads the Keras file: no TensorFlow in this process
    elif framework == "keras" and file_kind(args.model) == "torch":
        from parity.frameworks.both import load_both

        load_both()  # torch reads the checkpoint, Keras runs it
    try:
        classify = load_classifier(args.model, framework)
    except WeightFileError as error:
        cli.fail(str(error))
    for path in image_paths(args.images):
        try:
            digit = plain_digit(path) if args.no_normalize else to_mnist(path)
        except NoDigit as error:
            print(json.dumps({"path": str(path), "digit": None, "confidence": None, "error": str(error)}), flush=True)
            continue
        probabilities = classify(digit[None])[0]
        best = int(probabilities.argmax())
        print(json.dumps({"path": str(path), "digit": best, "confidence": round(float(probabilities[best]), 6)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
