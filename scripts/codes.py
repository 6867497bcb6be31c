#!/usr/bin/env python
"""Verification codes: make a seeded set, score a model on it, read code images, draw a picture.

    python scripts/codes.py generate --n 20 --out runs/codes
    python scripts/codes.py eval --model runs/best-torch/model.ckpt --n 1000
    python scripts/codes.py solve --model runs/best-keras/model.keras runs/codes/*.png
    python scripts/codes.py picture --model runs/best-torch/model.ckpt --out runs/picture.png

Codes are 4-digit images drawn by the `captcha` package (160x60 unless --width/--height), seeded so a
seed always gives the same images; the test seed (7) is disjoint from the training seeds. `eval`
prints JSON with digit_accuracy (each digit in its place) and code_accuracy (all four right).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from parity import cli


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
    generate.add_argument("--seed", type=int, default=7, help="default 7, the test seed")
    generate.add_argument("--out", type=Path, required=True)

    evaluate = commands.add_parser("eval", parents=[size, model], help="digit and whole-code accuracy on N seeded codes")
    evaluate.add_argument("--n", type=cli.positive_int, default=1000)
    evaluate.add_argument("--seed", type=int, default=7)
    evaluate.add_argument("--unseen", type=cli.non_negative_int, default=0, help="also score N single digits in unseen styles")

    solve = commands.add_parser("solve", parents=[model], help="read code images")
    solve.add_argument("images", nargs="+", type=Path)
    solve.add_argument("--digits", type=cli.positive_int, default=4)

    picture = commands.add_parser("picture", parents=[model], help="a grid of digits with both frameworks' readings")
    picture.add_argument("--out", type=Path, required=True)
    picture.add_argument("--n", type=cli.positive_int, default=8, help="codes (4 digits each) and as many unseen-style digits")
    args = parser.parse_args(argv)
    if getattr(args, "model", None) is not None and not args.model.is_file():
        parser.error(f"--model {args.model}: no such file")
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
        cli.fail(str(error))


def cmd_generate(args) -> dict:
    from PIL import Image

    from parity.codes.generate import generate_codes

    codes = generate_codes(args.n, args.seed, width=args.width, height=args.height)
    args.out.mkdir(parents=True, exist_ok=True)
    for i, (image, code) in enumerate(zip(codes.images, codes.codes)):
        Image.fromarray(image).save(args.out / f"{i:04d}-{code}.png")
    return {"out": str(args.out), "n": args.n, "seed": args.seed, "size": [args.width, args.height]}


def read_codes(images, classify, n_digits: int = 4) -> list[str | None]:
    """Like parity.codes.segment.read_code for many images, with one classifier call for all their digits."""
    from parity.codes.normalize import NoDigit, to_mnist_batch
    from parity.codes.segment import segment_code

    crops: list[np.ndarray | None] = []
    for image in images:
        try:
            crops.append(to_mnist_batch(segment_code(image, n_digits)))
        except NoDigit:
            crops.append(None)
    readable = [c for c in crops if c is not None]
    digits = iter(classify(np.concatenate(readable)).argmax(1).tolist() if readable else [])
    return [None if c is None else "".join(str(next(digits)) for _ in range(n_digits)) for c in crops]


def cmd_eval(args) -> dict:
    from parity.codes.fonts import unseen_style_digits
    from parity.codes.generate import load_or_generate
    from parity.codes.normalize import to_mnist_batch

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
        predicted = classify(to_mnist_batch(images)).argmax(1)
        result["unseen_digits"] = args.unseen
        result["unseen_digit_accuracy"] = float(np.mean(predicted == labels))
    return result


def cmd_solve(args) -> None:
    classify, _ = classifier(args)
    for path, code in zip(args.images, read_codes([str(p) for p in args.images], classify, args.digits)):
        print(json.dumps({"path": str(path), "code": code}), flush=True)


def cmd_picture(args) -> dict:
    from parity.frameworks.both import load_both
    from parity.runs.report import plot_digit_grid

    load_both()
    from parity.codes.crops import box_crop
    from parity.codes.fonts import unseen_style_digits
    from parity.codes.generate import TEST_SEED, load_or_generate
    from parity.codes.normalize import to_mnist_batch

    codes = load_or_generate(args.n, TEST_SEED)
    crops = [box_crop(image, box) for image, boxes in zip(codes.images, codes.boxes) for box in boxes]
    truth = [int(d) for code in codes.codes for d in code]
    unseen, unseen_labels = unseen_style_digits(4 * args.n, seed=TEST_SEED)
    images = crops + list(unseen)
    labels = truth + [int(v) for v in unseen_labels]
    digits = to_mnist_batch(images)
    predictions = {name: classifier(args, name)[0](digits).argmax(1) for name in ("torch", "keras")}
    plot_digit_grid(images, labels, predictions, args.out, title=f"{args.model.name}: code digits, then unseen styles")
    return {"out": str(args.out), "digits": len(images), **{f"{k}_correct": int(np.sum(v == labels)) for k, v in predictions.items()}}


def main(argv=None) -> int:
    args = parse_args(argv)
    cli.quiet_frameworks()
    if args.command == "solve":
        cmd_solve(args)
    else:
        print(json.dumps({"generate": cmd_generate, "eval": cmd_eval, "picture": cmd_picture}[args.command](args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
