#!/usr/bin/env python
"""Verification codes: make a seeded set, score a model on it, read code images, draw a picture.

    python scripts/codes.py generate --n 20 --out runs/codes
    python scripts/codes.py stress --n 130 --split validation --out runs/stress
    python scripts/codes.py eval --model runs/best-torch/model.ckpt --n 1000
    python scripts/codes.py eval --model runs/best-torch/model.ckpt --n 500 --seed 21 --stress 1000 --stress-split validation --json val.json
    python scripts/codes.py solve --model runs/best-keras/model.keras runs/codes/*.png
    python scripts/codes.py solve --model runs/model.onnx --workers 2 runs/codes/*.png
    python scripts/codes.py picture --model runs/best-torch/model.ckpt --out runs/picture.png
    python scripts/codes.py picture --model runs/best-torch/model.ckpt --stress --n 3 --out runs/stress.png

Codes are 4-digit images drawn by the `captcha` package (160x60 unless --width/--height), seeded so a seed
always gives the same images (which seed is for what: parity/codes/seeds.py). `eval` prints JSON (and writes it
to --json FILE) with digit_accuracy (each digit in its place) and code_accuracy (all four right).

`stress` writes single digits of the style stress set (parity/codes/stress.py: 13 named classes of
difficulty, such as grid backgrounds, crossing lines, tiny, outline and halftone digits) as PNGs, with
labels.csv (file, digit, class, mode, font). Its validation split is for every choice; its test split (other
fonts, other settings) is scored once, at the end. `eval --stress N` adds {"stress": {"split", "seed",
"overall", "no_digit", "classes": {class: {"n", "accuracy", "no_digit"}}}}: each digit normalised by
to_mnist and classified, a digit the normaliser refuses (no_digit) counted as wrong. `picture --stress`
draws the validation split instead of codes, a column a class.

--model is a .ckpt, .pt, .keras or .h5 file, run in torch or Keras (--framework, default the file's own),
or an .onnx file (scripts/export.py), which `eval` and `solve` run in onnxruntime alone, importing neither
torch nor TensorFlow (`picture` shows the torch and Keras readings of one model's weights, so it takes no
.onnx). `eval` and `solve` cut codes (by the ink profile, and with the cuts between touching digits moved 2-8 px
in every combination, the variants averaged by the model's confidence: parity/codes/cuts.py) and normalise them
in --workers processes (default: one per core; 0: in this one), the model reading --batch-size digits a call.

`solve` prints one JSON line per image, in the order given, a batch at a time: {"path": ..., "code":
"0123"}; a code it cannot read is null, with an "error" saying why (the file is no readable image, or no
code could be cut from it), never made up. Exit status: 0 when every file was read (a row with no code for
an unreadable code included), 1 when any file could not be read or a run failed (one line on stderr), 2
for bad flags, 130 on Ctrl-C. Every file written (code images, pictures, caches) is written atomically.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path

from parity import cli

cli.single_threaded_numpy()  # before NumPy loads OpenBLAS: the reader processes share the cores

import numpy as np  # noqa: E402

from parity.files import strict_json, write_json  # noqa: E402
from parity.frameworks.predictor import FRAMEWORKS, MODEL_SUFFIXES, framework_mismatch, model_kind  # noqa: E402

BATCH_SIZE = 256  # digits per model call
PICTURE_CODES = cli.Number(int, low=1, high=100, why="a bigger grid is too large to draw or look at")
STRESS_SPLITS = ("validation", "test")  # parity.codes.stress.SPLITS, named here so parsing flags loads no Pillow


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    size = cli.argparse.ArgumentParser(add_help=False)
    size.add_argument("--width", type=cli.positive_int, default=160)
    size.add_argument("--height", type=cli.positive_int, default=60)
    model = cli.argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", type=cli.model_file(MODEL_SUFFIXES), required=True, help=".ckpt, .pt, .keras, .h5 or .onnx")
    model.add_argument("--framework", choices=FRAMEWORKS, help="default: the model file's own (onnx: onnxruntime, for .onnx only)")
    model.add_argument("--no-views", action="store_true", help="read single digits (--unseen, --stress) once, not also "
                       "turned 10 degrees either way; code digits are always read once")
    speed = cli.argparse.ArgumentParser(add_help=False)
    speed.add_argument("--workers", type=cli.non_negative_int, default=None,
                       help=f"processes cutting and normalising codes (default: the usable cores, here {cli.usable_cores()}; "
                            "0: in this process)")
    speed.add_argument("--batch-size", type=cli.positive_int, default=BATCH_SIZE, help=f"digits per model call (default {BATCH_SIZE})")

    generate = commands.add_parser("generate", parents=[size], help="write a seeded set of code images (PNG)")
    generate.add_argument("--n", type=cli.positive_int, default=20)
    generate.add_argument("--seed", type=cli.non_negative_int, default=7, help="default 7, the test seed")
    generate.add_argument("--out", type=Path, required=True)

    evaluate = commands.add_parser("eval", parents=[size, model, speed], help="digit and whole-code accuracy on N seeded codes")
    evaluate.add_argument("--n", type=cli.positive_int, default=1000)
    evaluate.add_argument("--seed", type=cli.non_negative_int, default=7)
    evaluate.add_argument("--unseen", type=cli.non_negative_int, default=0, help="also score N single digits in unseen styles")
    evaluate.add_argument("--stress", type=cli.non_negative_int, default=0, help="also score N style stress digits, per class")
    evaluate.add_argument("--stress-split", choices=STRESS_SPLITS, help="the stress set's split (default validation; "
                          "score test once, after every choice is made)")
    evaluate.add_argument("--stress-seed", type=cli.non_negative_int, help="default: the split's own seed")
    evaluate.add_argument("--json", type=Path, metavar="FILE", help="also write the scores to FILE (atomically)")

    stress = commands.add_parser("stress", help="write a seeded style stress set (PNG) and its labels.csv")
    stress.add_argument("--n", type=cli.positive_int, default=130)
    stress.add_argument("--split", choices=STRESS_SPLITS, default="validation")
    stress.add_argument("--seed", type=cli.non_negative_int, default=None, help="default: the split's own seed")
    stress.add_argument("--out", type=Path, required=True)

    solve = commands.add_parser("solve", parents=[model, speed], help="read code images")
    solve.add_argument("images", nargs="+", type=Path)
    solve.add_argument("--digits", type=cli.positive_int, default=4)

    picture = commands.add_parser("picture", parents=[model], help="a grid of digits with both frameworks' readings")
    picture.add_argument("--out", type=Path, required=True, help="the picture; its suffix picks the format (.png, .svg, .pdf, ...)")
    picture.add_argument("--n", type=PICTURE_CODES, default=8, help="codes (4 digits each) and as many unseen-style digits (at most 100); "
                         "with --stress: rows of the 13 classes")
    picture.add_argument("--stress", action="store_true", help="show the style stress set's validation split instead, a column a class")
    args = parser.parse_args(argv)
    if getattr(args, "model", None) is not None:
        mismatch = framework_mismatch(args.model, args.framework)
        if mismatch:
            parser.error(mismatch)
        if args.command == "picture" and model_kind(args.model) == "onnx":
            parser.error(f"picture shows the torch and Keras readings of one model's weights; {args.model} runs in "
                         "onnxruntime only: give the .ckpt/.keras it was exported from (eval and solve take it)")
    if args.command == "eval" and not args.stress:
        for flag, value in (("--stress-split", args.stress_split), ("--stress-seed", args.stress_seed)):
            if value is not None:
                parser.error(f"{flag} needs --stress N (how many stress digits to score)")
    if getattr(args, "json", None) is not None:
        if args.json.is_dir():
            parser.error(f"--json {args.json} is a folder; give a file name")
        if reason := cli.unwritable_reason(args.json):
            parser.error(f"--json {args.json}: cannot write there: {reason}")
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


def classifier(args, framework: str | None = None, threads: int | None = None):
    from parity.frameworks.predictor import load_classifier
    from parity.weights.reading import WeightFileError

    framework = framework or args.framework or model_kind(args.model)
    if framework == "keras" and model_kind(args.model) == "torch":
        from parity.frameworks.both import load_both

        load_both()
    try:
        classify = load_classifier(args.model, framework, threads=threads)
    except WeightFileError as error:
        message = " ".join(str(error).split())
        cli.fail(message if str(args.model) in message else f"--model {args.model}: {message}")
    return classify, framework


def single_digit_reader(args, classify):
    """Single digits are read from their views (parity.codes.views) unless --no-views; code digits never are."""
    from parity.codes.views import averaged_over_views
    return classify if args.no_views else averaged_over_views(classify)


def reader_pool(args, items: int):
    """(the reader processes for `items` inputs, or a null context for --workers 0, their number)."""
    from parity.codes.workers import ReaderPool

    workers = min(cli.usable_cores() if args.workers is None else args.workers, items)
    return (ReaderPool(workers) if workers else nullcontext()), workers


def model_threads(workers: int) -> int:
    """The model's threads: the cores the reader processes leave (at least one)."""
    return max(1, cli.usable_cores() - workers)


def digits_read(probabilities: np.ndarray) -> str | None:
    """The digits a classifier's (k, 10) output names, or None if any row is not finite (no made-up digit)."""
    from parity.codes.reading import digits_read as named

    return named(probabilities)


def classify_all(digits: np.ndarray, classify, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """(k, 10) probabilities of uint8 (k, 28, 28) digits, batch_size digits per classify call."""
    if not len(digits):
        return np.zeros((0, 10), dtype=np.float32)
    return np.concatenate([classify(digits[i : i + batch_size]) for i in range(0, len(digits), batch_size)])


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


def cmd_stress(args) -> dict:
    from parity.codes.stress import DEFAULT_SEEDS, stress_set
    from parity.files import atomic_path, write_text

    out = cli.output_folder(args.out)
    seed = DEFAULT_SEEDS[args.split] if args.seed is None else args.seed
    rows = ["file,digit,class,mode,font"]
    for i, digit in enumerate(stress_set(args.n, args.split, seed)):
        name = f"{i:04d}-{digit.label}-{digit.cls}.png"
        with atomic_path(out / name) as tmp:
            digit.image.save(tmp, format="PNG")
        rows.append(f"{name},{digit.label},{digit.cls},{digit.image.mode},{digit.font}")
    write_text(out / "labels.csv", "\n".join(rows) + "\n")
    return {"out": str(out), "n": args.n, "split": args.split, "seed": seed, "labels": str(out / "labels.csv")}


def score_stress(args, classify, pool) -> dict:
    """eval's "stress" part: the set's digits through to_mnist (in `pool`'s processes, or here) and the model."""
    from parity.codes.stress import DEFAULT_SEEDS, score, stress_set

    split = args.stress_split or "validation"
    seed = DEFAULT_SEEDS[split] if args.stress_seed is None else args.stress_seed
    stress = stress_set(args.stress, split, seed)
    digits, kept = mnist_style([digit.image for digit in stress], pool=pool)
    read: list[int | None] = [None] * len(stress)  # None: refused by the normaliser
    if len(kept):
        probabilities = classify_all(digits, classify, args.batch_size)
        finite = np.isfinite(probabilities).all(axis=1)
        for i, row, ok in zip(kept, probabilities.argmax(axis=1), finite):
            read[i] = int(row) if ok else -1  # no finite reading: wrong, but not refused
    return {"split": split, "seed": seed, "n": args.stress, **score(stress, read)}


def read_codes(images, classify, n_digits: int = 4, pool=None, batch_size: int = BATCH_SIZE) -> list[str | None]:
    """Like parity.codes.cuts.read_code for many images, their digits classified batch_size at a time (the
    images cut and normalised in `pool`'s processes, or here, 500 codes at a time: a code may have hundreds of
    cut variants): every variant's digits are classified and their confidence-weighted average is read. None
    for a code that cannot be cut into n_digits digits or whose digits the model gives no finite reading."""
    from parity.codes.reading import code_probabilities, cut_candidates
    from parity.codes.workers import chunk_size, ordered_map

    workers, read = len(pool.workers) if pool is not None else 0, []
    for part in (images[start : start + 500] for start in range(0, len(images), 500)):
        cuts = list(ordered_map(partial(cut_candidates, n_digits=n_digits), part, pool, chunk_size(len(part), workers, 4)))
        readable = [c for c in cuts if c is not None]
        if readable:
            flat = classify_all(np.concatenate([c.reshape(-1, 28, 28) for c in readable]), classify, batch_size)
            probabilities = iter(np.split(flat, np.cumsum([c.shape[0] * c.shape[1] for c in readable])[:-1]))
        read += [None if c is None else digits_read(code_probabilities(next(probabilities), len(c))) for c in cuts]
    return read


def mnist_style(images, pool=None) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (k, 28, 28) digits, indices of the images they come from): an image with no readable digit is
    left out. Normalised in `pool`'s processes, or here."""
    from parity.codes.reading import mnist_digit
    from parity.codes.workers import chunk_size, ordered_map

    workers = len(pool.workers) if pool is not None else 0
    digits, kept = [], []
    for i, digit in enumerate(ordered_map(mnist_digit, images, pool, chunk_size(len(images), workers))):
        if digit is not None:
            digits.append(digit)
            kept.append(i)
    return np.array(digits, dtype=np.uint8).reshape(-1, 28, 28), np.array(kept, dtype=np.int64)


def cmd_eval(args) -> dict:
    from parity.codes.fonts import unseen_style_digits
    from parity.codes.generate import load_or_generate

    pool, workers = reader_pool(args, max(args.n, args.unseen, args.stress))
    with pool:  # started before the model's framework is imported
        classify, framework = classifier(args, threads=model_threads(workers))
        codes = load_or_generate(args.n, args.seed, width=args.width, height=args.height)
        start = time.perf_counter()
        read = read_codes(codes.images, classify, pool=pool if workers else None, batch_size=args.batch_size)
        seconds = time.perf_counter() - start
        if args.unseen:
            images, labels = unseen_style_digits(args.unseen, seed=args.seed)
            digits, kept = mnist_style(images, pool=pool if workers else None)
            read_unseen = digits_read(classify_all(digits, single_digit_reader(args, classify), args.batch_size)) if len(kept) else ""
        stress = score_stress(args, single_digit_reader(args, classify), pool if workers else None) if args.stress else None
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
        correct = 0 if read_unseen is None else sum(int(d) == labels[i] for d, i in zip(read_unseen, kept))
        result["unseen_digits"] = args.unseen
        result["unseen_digit_accuracy"] = correct / args.unseen  # an unreadable digit counts as wrong
    if stress is not None:
        result["stress"] = stress
    return result


def cmd_solve(args) -> None:
    from parity.codes.reading import classify_in_batches, name_code, read_code
    from parity.codes.workers import chunk_size, ordered_map

    pool, workers = reader_pool(args, len(args.images))
    failed = 0
    with pool:  # started before the model's framework is imported; reading begins while the model loads
        reads = ordered_map(partial(read_code, n_digits=args.digits), args.images, pool if workers else None,
                            chunk_size(len(args.images), workers, 4))
        classify, _ = classifier(args, threads=model_threads(workers))
        for batch in classify_in_batches(reads, classify, args.batch_size):
            for read, probabilities in batch:
                row, ok = name_code(read, probabilities)
                failed += not ok
                sys.stdout.write(json.dumps(strict_json(row), allow_nan=False) + "\n")
            sys.stdout.flush()
    if failed:
        cli.fail(f"{failed} of {len(args.images)} files could not be read or classified (their rows say why)")


def cmd_picture(args) -> dict:
    from parity.frameworks.both import load_both
    from parity.runs.report import plot_digit_grid

    load_both()
    if args.stress:
        return stress_picture(args)
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


def stress_picture(args) -> dict:
    from PIL import Image

    from parity.codes.stress import CLASSES, DEFAULT_SEEDS, stress_set
    from parity.runs.report import plot_digit_grid

    def viewable(image):  # as a person sees it, in RGB (a gray array would be contrast-stretched): transparency on white
        if image.mode == "I;16":
            image = Image.fromarray((np.asarray(image, dtype=np.uint32) // 257).astype(np.uint8))
        return Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA")).convert("RGB")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    shown = stress_set(len(CLASSES) * args.n, "validation")  # digit i is of class i % 13: a column a class
    digits, kept = mnist_style([d.image for d in shown])
    images, labels = [viewable(d.image) for d in shown], [d.label for d in shown]
    predictions = {}
    for name in ("torch", "keras"):  # a digit the normaliser refuses keeps its place, read as -1 (wrong)
        predictions[name] = np.full(len(shown), -1)
        if len(kept):
            predictions[name][kept] = single_digit_reader(args, classifier(args, name)[0])(digits).argmax(1)
    plot_digit_grid(images, labels, predictions, args.out, columns=len(CLASSES), column_titles=[c.replace("_", " ") for c in CLASSES],
                    title=f"{args.model.name}: style stress set, validation split (seed {DEFAULT_SEEDS['validation']})")
    return {"out": str(args.out), "digits": len(images), **{f"{k}_correct": int(np.sum(v == labels)) for k, v in predictions.items()}}


def main(argv=None) -> int:
    from parity.codes.workers import WorkerDied, WorkerFailed

    args = parse_args(argv)
    cli.quiet_frameworks()
    try:
        if args.command == "solve":
            cmd_solve(args)
        else:
            result = {"generate": cmd_generate, "stress": cmd_stress, "eval": cmd_eval, "picture": cmd_picture}[args.command](args)
            if getattr(args, "json", None) is not None:
                write_json(args.json, result)
            print(json.dumps(strict_json(result), allow_nan=False))
    except (WorkerDied, WorkerFailed) as error:  # e.g. a reader killed by the system for memory
        cli.fail(f"{args.command}: {error}")
    except BrokenPipeError:  # the reader of our output left: quiet, handled below
        raise
    except OSError as error:  # a full disk, a read-only folder: one line, not a traceback
        where = f"{error.filename}: " if error.filename else ""
        cli.fail(f"{args.command}: {where}{error.strerror or ' '.join(str(error).split())}")
    return 0


if __name__ == "__main__":
    cli.run(main)
