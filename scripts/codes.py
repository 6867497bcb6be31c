#!/usr/bin/env python
"""Verification codes: make a seeded set, score a model on it, read code images, draw a picture.

    python scripts/codes.py generate --n 20 --out runs/codes
    python scripts/codes.py eval --model runs/best-torch/model.ckpt --n 1000
    python scripts/codes.py solve --model runs/best-keras/model.keras runs/codes/*.png
    python scripts/codes.py picture --model runs/best-torch/model.ckpt --out runs/picture.png

Codes are 4-digit images drawn by the `captcha` package (160x60 unless --width/--height), seeded so a
seed always gives the same images; the test seed (7) is disjoint from the training seeds. `eval`
prints JSON with digit_accuracy (each digit in its place) and code_accuracy (all four right).

`solve` prints one JSON line per image, {"path": ..., "code": "0123"}; a code it cannot read is null,
with an "error" saying why (the file is no readable image, or no code could be cut from it), never made
up. Exit status: 0 when every file was read (a row with no code for an unreadable code included), 1 when
any file could not be read or a run failed (one line on stderr), 2 for bad flags. Every file written
(code images, pictures, caches) is written atomically.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from parity import cli
from parity.files import strict_json
from parity.weights.reading import KERAS_SUFFIXES, TORCH_SUFFIXES

MODEL_SUFFIXES = TORCH_SUFFIXES + KERAS_SUFFIXES
PICTURE_CODES = cli.Number(int, low=1, high=100, why="a bigger grid is too large to draw or look at")


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    size = cli.argparse.ArgumentParser(add_help=False)
    size.add_argument("--width", type=cli.positive_int, default=160)
    size.add_argument("--height", type=cli.positive_int, default=60)
    model = cli.argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", type=Path, required=True, help=".ckpt, .pt, .keras or .h5")
    model.add_argument("--framework", choices=("torch", "keras"), help="default: the model file's own")

    generate = commands.add_parser("generate", parents=[size], help="write a seeded set of code images (PNG)")
    generate.add_argument("--n", type=cli.positive_int, default=20)
    generate.add_argument("--seed", type=cli.non_negative_int, default=7, help="default 7, the test seed")
    generate.add_argument("--out", type=Path, required=True)

    evaluate = commands.add_parser("eval", parents=[size, model], help="digit and whole-code accuracy on N seeded codes")
    evaluate.add_argument("--n", type=cli.positive_int, default=1000)
    evaluate.add_argument("--seed", type=cli.non_negative_int, default=7)
    evaluate.add_argument("--unseen", type=cli.non_negative_int, default=0, help="also score N single digits in unseen styles")

    solve = commands.add_parser("solve", parents=[model], help="read code images")
    solve.add_argument("images", nargs="+", type=Path)
    solve.add_argument("--digits", type=cli.positive_int, default=4)

    picture = commands.add_parser("picture", parents=[model], help="a grid of digits with both frameworks' readings")
    picture.add_argument("--out", type=Path, required=True, help="the picture; its suffix picks the format (.png, .svg, .pdf, ...)")
    picture.add_argument("--n", type=PICTURE_CODES, default=8, help="codes (4 digits each) and as many unseen-style digits (at most 100)")
    args = parser.parse_args(argv)
    if getattr(args, "model", None) is not None:
        if args.model.suffix.lower() not in MODEL_SUFFIXES:
            parser.error(f"--model {args.model}: unknown model format {args.model.suffix or '(no suffix)'!r}; "
                         f"use one of {', '.join(MODEL_SUFFIXES)}")
        if not args.model.exists():
            parser.error(f"--model {args.model}: no such file")
        if not args.model.is_file():
            parser.error(f"--model {args.model}: not a regular file")
    for path in getattr(args, "images", []):
        if not path.exists():
            parser.error(f"{path}: no such file")
    if args.command == "picture":
        from matplotlib.backend_bases import FigureCanvasBase

        formats = sorted(FigureCanvasBase.get_supported_filetypes())
        if args.out.suffix.lower().lstrip(".") not in formats:
            parser.error(f"--out {args.out}: unknown picture format {args.out.suffix or '(no suffix)'!r}; use one of {', '.join(formats)}")
        if args.out.is_dir():
            parser.error(f"--out {args.out} is a folder; give a file name")
    return args


def classifier(args, framework: str | None = None):
    from parity.frameworks.predictor import load_classifier
    from parity.weights.reading import WeightFileError, file_kind

    framework = framework or args.framework or file_kind(args.model)
    if framework == "keras" and file_kind(args.model) == "torch":
        from parity.frameworks.both import load_both

        load_both()
    try:
        return load_classifier(args.model, framework), framework
    except WeightFileError as error:
        message = " ".join(str(error).split())
        cli.fail(message if str(args.model) in message else f"--model {args.model}: {message}")


def digits_read(probabilities: np.ndarray) -> str | None:
    """The digits a classifier's (k, 10) output names, or None if any row is not finite (no made-up digit)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if not np.isfinite(probabilities).all():
        return None
    return "".join(str(int(d)) for d in probabilities.argmax(1))


def cmd_generate(args) -> dict:
    from PIL import Image

    from parity.codes.generate import generate_codes
    from parity.files import atomic_path

    out = cli.output_folder(args.out)
    codes = generate_codes(args.n, args.seed, width=args.width, height=args.height)
    for i, (image, code) in enumerate(zip(codes.images, codes.codes)):
        with atomic_path(out / f"{i:04d}-{code}.png") as tmp:
            Image.fromarray(image).save(tmp, format="PNG")
    return {"out": str(out), "n": args.n, "seed": args.seed, "size": [args.width, args.height]}


def read_codes(images, classify, n_digits: int = 4) -> list[str | None]:
    """Like parity.codes.segment.read_code for many images, with one classifier call for all their digits;
    None for a code that cannot be cut into n_digits digits or whose digits the model gives no finite reading."""
    from parity.codes.errors import NoDigit
    from parity.codes.normalize import to_mnist_batch
    from parity.codes.segment import segment_code

    crops: list[np.ndarray | None] = []
    for image in images:
        try:
            crops.append(to_mnist_batch(segment_code(image, n_digits)))
        except NoDigit:
            crops.append(None)
    readable = [c for c in crops if c is not None]
    probabilities = iter(np.split(classify(np.concatenate(readable)), len(readable)) if readable else [])
    return [None if c is None else digits_read(next(probabilities)) for c in crops]


def mnist_style(images) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (k, 28, 28) digits, indices of the images they come from): an image with no readable digit is left out."""
    from parity.codes.errors import NoDigit
    from parity.codes.normalize import to_mnist

    digits, kept = [], []
    for i, image in enumerate(images):
        try:
            digits.append(to_mnist(image))
        except NoDigit:
            continue
        kept.append(i)
    return np.array(digits, dtype=np.uint8).reshape(-1, 28, 28), np.array(kept, dtype=np.int64)


def cmd_eval(args) -> dict:
    from parity.codes.fonts import unseen_style_digits
    from parity.codes.generate import load_or_generate

    classify, framework = classifier(args)
    codes = load_or_generate(args.n, args.seed, width=args.width, height=args.height)
    start = time.perf_counter()
    read = read_codes(codes.images, classify)
    seconds = time.perf_counter() - start
    right = [sum(a == b for a, b in zip(r or "????", truth)) for r, truth in zip(read, codes.codes)]
    result = {
        "model": str(args.model),
        "framework": framework,
        "codes": args.n,
        "seed": args.seed,
        "size": [args.width, args.height],
        "digit_accuracy": sum(right) / (4 * args.n),
        "code_accuracy": sum(r == 4 for r in right) / args.n,
        "unreadable": sum(r is None for r in read),
        "seconds_per_code": round(seconds / args.n, 4),
    }
    if args.unseen:
        images, labels = unseen_style_digits(args.unseen, seed=args.seed)
        digits, kept = mnist_style(images)
        read_unseen = digits_read(classify(digits)) if len(kept) else ""
        correct = 0 if read_unseen is None else sum(int(d) == labels[i] for d, i in zip(read_unseen, kept))
        result["unseen_digits"] = args.unseen
        result["unseen_digit_accuracy"] = correct / args.unseen  # an unreadable digit counts as wrong
    return result


def solve_file(path: Path, classify, n_digits: int) -> tuple[dict, bool]:
    """(the file's row, whether the file was read). A row without a code says why in "error"."""
    from parity.codes.errors import NoDigit, UnreadableImage
    from parity.codes.imagefile import read_picture
    from parity.codes.normalize import to_mnist_batch
    from parity.codes.segment import segment_code

    row = {"path": str(path), "code": None}
    try:
        picture = read_picture(path)
    except UnreadableImage as error:
        return {**row, "error": str(error)}, False
    if picture.note:
        row["note"] = picture.note
    try:
        crops = to_mnist_batch(segment_code(picture.image, n_digits))
    except NoDigit as error:  # read, but no code could be cut from it: an answer, not a failure
        return {**row, "error": f"no {n_digits}-digit code found: {error}"}, True
    code = digits_read(classify(crops))
    if code is None:
        return {**row, "error": "the model's output is not finite (NaN or infinity), so it names no digit"}, False
    return {**row, "code": code}, True


def cmd_solve(args) -> None:
    classify, _ = classifier(args)
    failed = 0
    for path in args.images:
        row, ok = solve_file(path, classify, args.digits)
        failed += not ok
        print(json.dumps(strict_json(row), allow_nan=False), flush=True)
    if failed:
        cli.fail(f"{failed} of {len(args.images)} files could not be read or classified (their rows say why)")


def cmd_picture(args) -> dict:
    from parity.frameworks.both import load_both
    from parity.runs.report import plot_digit_grid

    load_both()
    from parity.codes.crops import box_crop
    from parity.codes.fonts import unseen_style_digits
    from parity.codes.generate import TEST_SEED, load_or_generate

    args.out.parent.mkdir(parents=True, exist_ok=True)
    codes = load_or_generate(args.n, TEST_SEED)
    unseen, unseen_labels = unseen_style_digits(4 * args.n, seed=TEST_SEED)
    shown = [box_crop(image, box) for image, boxes in zip(codes.images, codes.boxes) for box in boxes] + list(unseen)
    truth = [int(d) for code in codes.codes for d in code] + [int(v) for v in unseen_labels]
    digits, kept = mnist_style(shown)  # a digit pushed off its canvas has none to show
    images, labels = [shown[i] for i in kept], [truth[i] for i in kept]
    predictions = {name: classifier(args, name)[0](digits).argmax(1) for name in ("torch", "keras")}
    plot_digit_grid(images, labels, predictions, args.out, title=f"{args.model.name}: code digits, then unseen styles")
    return {"out": str(args.out), "digits": len(images), **{f"{k}_correct": int(np.sum(v == labels)) for k, v in predictions.items()}}


def main(argv=None) -> int:
    args = parse_args(argv)
    cli.quiet_frameworks()
    try:
        if args.command == "solve":
            cmd_solve(args)
        else:
            result = {"generate": cmd_generate, "eval": cmd_eval, "picture": cmd_picture}[args.command](args)
            print(json.dumps(strict_json(result), allow_nan=False))
    except OSError as error:  # a full disk, a read-only folder: one line, not a traceback
        where = f"{error.filename}: " if error.filename else ""
        cli.fail(f"{args.command}: {where}{error.strerror or ' '.join(str(error).split())}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except BrokenPipeError:  # the reader left (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
