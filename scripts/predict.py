#!/usr/bin/env python
"""Read single digits from image files with a trained LeNet-5, in either framework.

    python scripts/predict.py --model runs/torch-.../model.ckpt digit.png more_digits/
    python scripts/predict.py --model ../shared/seed/lenet-5.h5 --framework torch digit.png

Prints one JSON line per image file: {"path": ..., "digit": ..., "confidence": ...}. Any image works:
colour or gray, dark-on-light or light-on-dark, any size; it is normalised the way MNIST was made
(parity.codes.normalize.to_mnist). Folders are searched, with their subfolders, for image suffixes.
--model may be a Lightning .ckpt, a .pt state_dict, a Keras .keras or a legacy .h5; --framework
runs it in torch or Keras (default: the file's own), converting the weights when needed.

No digit is ever made up: a row has "digit": null and an "error" saying why when the file is no
readable image (a FIFO, device or folder is skipped, never waited on; not an image; truncated; larger
than parity.codes.imagefile decodes safely), when the image holds no readable digit (blank, noise, too
small), or when the model's output is not finite. Of a file with several frames (an animated GIF, PNG or
WebP) the first is read, and its row says so in "note". Output is strict JSON (never NaN).

Exit status: 0 when every file was read and classified (a row with no digit for a blank image counts:
that is an answer about an image that was read); 1 when any file could not be read or classified (the
rows say which; one line on stderr counts them), and when no image was found; 2 for bad flags (a missing
--model or image path, an unknown model suffix).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from parity import cli
from parity.files import strict_json
from parity.weights.reading import KERAS_SUFFIXES, TORCH_SUFFIXES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
MODEL_SUFFIXES = TORCH_SUFFIXES + KERAS_SUFFIXES


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help=".ckpt, .pt, .keras or .h5")
    parser.add_argument("--framework", choices=("torch", "keras"), help="default: the model file's own")
    parser.add_argument("--no-normalize", action="store_true", help="only gray + resize to 28x28, as the seed did (for comparison)")
    parser.add_argument("images", nargs="+", type=Path, help="image files or folders of them")
    args = parser.parse_args(argv)
    if args.model.suffix.lower() not in MODEL_SUFFIXES:
        parser.error(f"--model {args.model}: unknown model format {args.model.suffix or '(no suffix)'!r}; "
                     f"use one of {', '.join(MODEL_SUFFIXES)}")
    if not args.model.exists():
        parser.error(f"--model {args.model}: no such file")
    if not args.model.is_file():
        parser.error(f"--model {args.model}: not a regular file")
    for path in args.images:
        if not os.path.lexists(path) or not path.exists():  # missing, or a symlink to nothing
            parser.error(f"{path}: no such file or folder")
    return args


def image_paths(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(the files to read, the folders given that hold none). A file given by name is read whatever its
    suffix; a folder contributes what has an image suffix and is not itself a folder (a FIFO named x.png
    is kept: reading it gives its row an error instead of a hang)."""
    found, empty = [], []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
            found += inside
            if not inside:
                empty.append(path)
        else:
            found.append(path)
    return found, empty


def plain_digit(image) -> np.ndarray:
    """The seed's way: gray, resized to 28x28, nothing else."""
    from PIL import Image

    from parity.codes.errors import NoDigit

    try:
        gray = image.convert("L") if image.mode != "LAB" else image.convert("RGB").convert("L")
        return np.asarray(gray.resize((28, 28), Image.Resampling.BILINEAR))
    except (ValueError, OSError) as error:
        raise NoDigit(f"cannot make mode {image.mode} gray: {error}") from None


def predict_file(path: Path, classify, normalize: bool = True) -> tuple[dict, bool]:
    """(the file's row, whether it was read and classified). A row without a digit says why in "error"."""
    from parity.codes.errors import NoDigit, UnreadableImage
    from parity.codes.imagefile import read_picture
    from parity.codes.normalize import to_mnist

    row = {"path": str(path), "digit": None, "confidence": None}
    try:
        picture = read_picture(path)
    except UnreadableImage as error:
        return {**row, "error": str(error)}, False
    if picture.note:
        row["note"] = picture.note
    try:
        digit = to_mnist(picture.image) if normalize else plain_digit(picture.image)
    except NoDigit as error:  # read, but no digit in it: an answer, not a failure
        return {**row, "error": str(error)}, True
    probabilities = np.asarray(classify(digit[None])[0], dtype=np.float64)
    if not np.isfinite(probabilities).all():
        return {**row, "error": "the model's output is not finite (NaN or infinity), so it names no digit"}, False
    best = int(probabilities.argmax())
    row.update(digit=best, confidence=round(float(probabilities[best]), 6))
    return row, True


def load_model(model: Path, framework: str | None):
    from parity.frameworks.predictor import load_classifier
    from parity.weights.reading import WeightFileError, file_kind

    framework = framework or file_kind(model)
    if framework == "keras" and file_kind(model) == "torch":
        from parity.frameworks.both import load_both

        load_both()  # torch reads the checkpoint, Keras runs it (a Keras file run in torch needs only h5py)
    try:
        return load_classifier(model, framework)
    except WeightFileError as error:
        message = " ".join(str(error).split())
        cli.fail(message if str(model) in message else f"--model {model}: {message}")


def main(argv=None) -> int:
    args = parse_args(argv)
    files, empty = image_paths(args.images)
    if not files:
        cli.fail(f"no images in {', '.join(map(str, empty))} (looked for {', '.join(IMAGE_SUFFIXES)})")
    for folder in empty:
        sys.stderr.write(f"warning: no images in {folder}\n")
    cli.quiet_frameworks()
    classify = load_model(args.model, args.framework)
    failed = 0
    for path in files:
        row, ok = predict_file(path, classify, normalize=not args.no_normalize)
        failed += not ok
        print(json.dumps(strict_json(row), allow_nan=False), flush=True)
    if failed == len(files):
        cli.fail(f"no image could be read and classified: all {len(files)} files failed (their rows say why)")
    if failed:
        cli.fail(f"{failed} of {len(files)} files could not be read or classified (their rows say why)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except BrokenPipeError:  # the reader left (e.g. `| head`): stop quietly, without a second error at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
