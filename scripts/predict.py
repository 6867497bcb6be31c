#!/usr/bin/env python
"""Read single digits from image files with a trained LeNet-5, in torch, Keras or onnxruntime.

    python scripts/predict.py --model runs/torch-.../model.ckpt digit.png more_digits/
    python scripts/predict.py --model ../shared/seed/lenet-5.h5 --framework torch digit.png
    python scripts/predict.py --model runs/model.onnx --workers 2 folder_of_digits/

Prints one JSON line per image file, in the order given (folders sorted): {"path": ..., "digit": ...,
"confidence": ...}. Any image works: colour or gray, dark-on-light or light-on-dark, any size; it is
normalised the way MNIST was made (parity.codes.normalize.to_mnist). Folders are searched, with their
subfolders, for image suffixes. --model may be a Lightning .ckpt, a .pt state_dict, a Keras .keras or a
legacy .h5; --framework runs it in torch or Keras (default: the file's own), converting the weights when
needed. An .onnx model (scripts/export.py) runs in onnxruntime alone: neither torch nor TensorFlow is
imported, and --framework torch/keras is refused for it.

Speed: --workers N processes (default: one per usable core; 0 reads in this process) read and normalise
the images while this one runs the model on --batch-size digits at a time (default 256); the lines come
out in input order, a batch at a time. Answers do not depend on either flag, except that a digit's
confidence may differ in its last (sixth) decimal between batch sizes (the frameworks' kernels round a
batch of one differently). Each reader process uses one BLAS thread, the model the cores left over.

No digit is ever made up: a row has "digit": null and an "error" saying why when the file is no
readable image (a FIFO, device or folder is skipped, never waited on; not an image; truncated; larger
than parity.codes.imagefile decodes safely), when the image holds no readable digit (blank, noise, too
small), or when the model's output is not finite. Of a file with several frames (an animated GIF, PNG or
WebP) the first is read, and its row says so in "note". Output is strict JSON (never NaN).

Exit status: 0 when every file was read and classified (a row with no digit for a blank image counts:
that is an answer about an image that was read); 1 when any file could not be read or classified (the
rows say which; one line on stderr counts them), when no image was found, and when the model file is
not a LeNet-5 model; 2 for bad flags (a missing --model or image path, an unknown model suffix, a
framework that cannot run the model); 130 on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import sys
from functools import partial
from pathlib import Path

from parity import cli

cli.single_threaded_numpy()  # before NumPy loads OpenBLAS: the reader processes share the cores

from parity.files import strict_json  # noqa: E402
from parity.frameworks.predictor import FRAMEWORKS, MODEL_SUFFIXES, framework_mismatch  # noqa: E402

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
BATCH_SIZE = 256  # digits per model call: large enough that a call's set-up is nothing beside its work


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=cli.model_file(MODEL_SUFFIXES), required=True, help=".ckpt, .pt, .keras, .h5 or .onnx")
    parser.add_argument("--framework", choices=FRAMEWORKS, help="default: the model file's own (onnx: onnxruntime, for .onnx only)")
    parser.add_argument("--no-normalize", action="store_true", help="only gray + resize to 28x28, as the seed did (for comparison)")
    parser.add_argument("--no-views", action="store_true", help="read each digit once, not also turned 10 degrees either way "
                        "(parity.codes.views)")
    parser.add_argument("--workers", type=cli.non_negative_int, default=None,
                        help=f"processes reading images (default: the usable cores, here {cli.usable_cores()}; "
                             "0: read in this process)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=BATCH_SIZE, help=f"digits per model call (default {BATCH_SIZE})")
    parser.add_argument("images", nargs="+", type=Path, help="image files or folders of them")
    parser.add_check(lambda args: _refuse(framework_mismatch(args.model, args.framework)))
    args = parser.parse_args(argv)
    for path in args.images:
        if not os.path.lexists(path) or not path.exists():  # missing, or a symlink to nothing
            parser.error(f"{path}: no such file or folder")
    return args


def _refuse(why: str | None) -> None:
    if why:
        raise ValueError(why)


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


def load_model(model: Path, framework: str | None, threads: int | None = None):
    from parity.frameworks.predictor import load_classifier, model_kind
    from parity.weights.reading import WeightFileError

    framework = framework or model_kind(model)
    if framework == "keras" and model_kind(model) == "torch":
        from parity.frameworks.both import load_both

        load_both()  # torch reads the checkpoint, Keras runs it (a Keras file run in torch needs only h5py)
    try:
        return load_classifier(model, framework, threads=threads)
    except WeightFileError as error:
        message = " ".join(str(error).split())
        cli.fail(message if str(model) in message else f"--model {model}: {message}")


def reader_count(requested: int | None, files: int) -> int:
    """--workers, else one per usable core; never more than there are files."""
    return min(cli.usable_cores() if requested is None else requested, files)


def model_threads(workers: int) -> int:
    """The model's threads: the cores the reader processes leave (at least one)."""
    return max(1, cli.usable_cores() - workers)


def main(argv=None) -> int:
    from contextlib import nullcontext

    from parity.codes.reading import classify_in_batches, name_digit, read_digit
    from parity.codes.workers import ReaderPool, WorkerDied, WorkerFailed, chunk_size, ordered_map

    args = parse_args(argv)
    files, empty = image_paths(args.images)
    if not files:
        cli.fail(f"no images in {', '.join(map(str, empty))} (looked for {', '.join(IMAGE_SUFFIXES)})")
    for folder in empty:
        sys.stderr.write(f"warning: no images in {folder}\n")
    cli.quiet_frameworks()
    workers = reader_count(args.workers, len(files))
    failed = 0
    # The readers start (forked) before any framework is imported, and begin while the model loads.
    with ReaderPool(workers) if workers else nullcontext() as pool:
        reads = ordered_map(partial(read_digit, normalize=not args.no_normalize), files, pool, chunk_size(len(files), workers))
        classify = load_model(args.model, args.framework, threads=model_threads(workers))
        if not args.no_views:
            from parity.codes.views import averaged_over_views

            classify = averaged_over_views(classify)
        try:
            for batch in classify_in_batches(reads, classify, args.batch_size):
                for read, probabilities in batch:
                    row, ok = name_digit(read, probabilities)
                    failed += not ok
                    sys.stdout.write(json.dumps(strict_json(row), allow_nan=False) + "\n")
                sys.stdout.flush()
        except (WorkerDied, WorkerFailed) as error:  # e.g. killed by the system for memory: one line, exit 1
            cli.fail(f"{error}; the rows above are complete")
    if failed == len(files):
        cli.fail(f"no image could be read and classified: all {len(files)} files failed (their rows say why)")
    if failed:
        cli.fail(f"{failed} of {len(files)} files could not be read or classified (their rows say why)")
    return 0


if __name__ == "__main__":
    cli.run(main)
