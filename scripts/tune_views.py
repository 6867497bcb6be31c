#!/usr/bin/env python
"""The validation sweep behind reading single digits from views (parity/codes/views.py): VIEW_ANGLES.

    python scripts/tune_views.py --model runs/best-torch/model.ckpt
    python scripts/tune_views.py --model runs/best-keras/model.keras --angles none 8 10 12 5,10,15
    python scripts/tune_views.py --model runs/best-torch/model.ckpt --stress-seeds 31 32 33 34 --angles 10 --extra zoom shift stroke

Every digit of the stress set's validation split (1,000 a seed; seeds 31 and 32 unless --stress-seeds) is
normalised once; for each set of angles the model reads it and its turned views (each angle both ways) and
their mean probabilities name the digit. The validation codes (500 a seed; 21 and 22 unless --code-seeds) are
read by cut variants with the same views, to show what views would do to code digits. Prints a Markdown table.
For validation seeds only: a choice made here must be checked on fresh test seeds, once.

`--extra` adds, for each set of angles, a row a kind of view that is not a turn (screened, not chosen:
docs/robustness.md): `zoom` (the digit scaled 0.9 and 1.1 about the centre), `shift` (moved one pixel up,
down, left and right), `stroke` (its strokes a pixel thicker and thinner: grey dilation and erosion, 2x2).
"""

from __future__ import annotations

from parity import cli

cli.single_threaded_numpy()  # before NumPy loads OpenBLAS: the reader processes share the cores

import numpy as np  # noqa: E402

from parity.codes.seeds import NOT_FOR_TUNING, VALIDATION_CODE_SEEDS, VALIDATION_STRESS_SEEDS  # noqa: E402
from parity.frameworks.predictor import MODEL_SUFFIXES  # noqa: E402

TEST_SEEDS = {"--stress-seeds": NOT_FOR_TUNING["stress"], "--code-seeds": NOT_FOR_TUNING["codes"]}  # test and development seeds


def angles_list(text: str) -> tuple[float, ...]:
    if text == "none":
        return ()
    try:
        angles = tuple(float(part) for part in text.split(","))
    except ValueError:
        angles = ()
    if not angles or not all(0 < a < 90 for a in angles):
        raise cli.argparse.ArgumentTypeError(f"{text!r}: give angles in degrees, over 0 and under 90, separated by commas (5,10), or none")
    return angles


def _zoomed(digits: np.ndarray, scale: float) -> np.ndarray:
    from scipy import ndimage

    centre = np.full(2, 13.5)
    out = [ndimage.affine_transform(d, np.eye(2) / scale, offset=centre - centre / scale, order=1) for d in digits.astype(np.float32)]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(digits.shape)


def _stroked(digits: np.ndarray) -> list[np.ndarray]:
    from scipy import ndimage

    return [ndimage.grey_dilation(digits, size=(1, 2, 2)), ndimage.grey_erosion(digits, size=(1, 2, 2))]


# kind -> uint8 (k, 28, 28) digits -> the extra views of them, each (k, 28, 28)
EXTRA_VIEWS = {
    "zoom": lambda digits: [_zoomed(digits, 0.9), _zoomed(digits, 1.1)],
    "shift": lambda digits: [np.roll(digits, step, axis) for axis in (1, 2) for step in (1, -1)],
    "stroke": _stroked,
}


def with_extra(plain, classify, n_turned: int, kind: str):
    """`classify` (the mean over n_turned views, or the `plain` model itself) averaged again with the plain
    model's reading of `kind`'s extra views, each weighing as one turned view."""
    make = EXTRA_VIEWS[kind]

    def read(digits: np.ndarray) -> np.ndarray:
        extra = make(np.asarray(digits, dtype=np.uint8))
        probabilities = np.asarray(plain(np.concatenate(extra))).reshape(len(extra), len(digits), -1)
        return (np.asarray(classify(digits)) * n_turned + probabilities.sum(axis=0)) / (n_turned + len(extra))

    return read


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=cli.model_file(MODEL_SUFFIXES), required=True)
    parser.add_argument("--stress-seeds", type=cli.non_negative_int, nargs="+", default=list(VALIDATION_STRESS_SEEDS))
    parser.add_argument("--code-seeds", type=cli.non_negative_int, nargs="*", default=list(VALIDATION_CODE_SEEDS))
    parser.add_argument("--angles", type=angles_list, nargs="+", default=[(), (5,), (8,), (10,), (12,), (15,), (6, 12), (5, 10, 15)])
    parser.add_argument("--extra", choices=sorted(EXTRA_VIEWS), nargs="*", default=[],
                        help="also a row for each set of angles with these views added (each view weighs as one turned view)")
    args = parser.parse_args(argv)
    for flag, seeds in TEST_SEEDS.items():
        if spent := sorted(seeds.intersection(getattr(args, flag[2:].replace("-", "_")))):
            parser.error(f"{flag} {spent[0]} is a test or development seed: tune on validation seeds")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    cli.quiet_frameworks()
    from parity.codes.generate import load_or_generate
    from parity.codes.reading import code_probabilities, cut_candidates, digits_read, mnist_digit
    from parity.codes.stress import stress_set
    from parity.codes.views import averaged_over_views
    from parity.codes.workers import ReaderPool, chunk_size
    from parity.frameworks.predictor import load_classifier
    from parity.weights.reading import WeightFileError

    workers = cli.usable_cores()
    stress, cuts, codes = {}, {}, {}
    with ReaderPool(workers) as pool:  # started before the model's framework is imported
        for seed in args.stress_seeds:
            drawn = stress_set(1000, "validation", seed)
            found = list(pool.imap(mnist_digit, [d.image for d in drawn], chunk_size(len(drawn), workers)))
            blank = np.zeros((28, 28), np.uint8)  # a digit the normaliser refuses is read as wrong below
            stress[seed] = (np.stack([blank if f is None else f for f in found]),
                            np.array([-1 if f is None else d.label for d, f in zip(drawn, found)]))
        for seed in args.code_seeds:
            codes[seed] = load_or_generate(500, seed)
            cuts[seed] = list(pool.imap(cut_candidates, codes[seed].images, chunk_size(500, workers, 4)))
    try:
        plain = load_classifier(args.model)
    except WeightFileError as error:
        cli.fail(f"--model {args.model}: {' '.join(str(error).split())}")
    columns = [f"stress {s}" for s in args.stress_seeds] + [f"code digits {s} | whole {s}" for s in args.code_seeds]
    print("| views | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * (len(args.stress_seeds) + 2 * len(args.code_seeds)))
    rows = [(angles, kind) for angles in args.angles for kind in [None, *args.extra]]
    for angles, kind in rows:
        classify = averaged_over_views(plain, angles) if angles else plain
        if kind is not None:
            classify = with_extra(plain, classify, 1 + 2 * len(angles), kind)
        cells = [f"{np.mean(classify(digits).argmax(1) == labels):.3f}" for digits, labels in stress.values()]
        for seed, found in cuts.items():
            read = [None if c is None else digits_read(code_probabilities(classify(c.reshape(-1, 28, 28)), len(c))) for c in found]
            right = [sum(a == b for a, b in zip(r or "????", truth)) for r, truth in zip(read, codes[seed].codes)]
            cells += [f"{sum(right) / (4 * len(right)):.4f}", f"{np.mean([r == 4 for r in right]):.3f}"]
        name = "/".join(f"{a:g}" for a in angles) or "none"
        print(f"| {name}{f' + {kind}' if kind else ''} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    cli.run(main)
