#!/usr/bin/env python
"""The validation sweep behind reading codes by cut variants (parity/codes/cuts.py): CUT_SHIFTS and SWITCH_MARGIN.

    python scripts/tune_cuts.py --model runs/best-torch/model.ckpt
    python scripts/tune_cuts.py --model runs/best-keras/model.keras --seeds 21 22 --shifts 3,6 2,4,6 4 --margins 0 0.1 0.3

For each set of shifts, every validation code (500 a seed, 160x60; seeds 21 and 22 unless --seeds) is cut as
each variant gives it and the model reads all of them; then for each margin the variant `choose_cut` picks is
scored. The row "none" is the ink profile's cut alone (what reading did before), the row "true boxes" each
digit cut by its true box (what a perfect cutter would give the model: a bound). Prints a Markdown table of
digit and whole-code accuracy per seed, and how many codes the margin let a variant replace the profile's
cut. For validation seeds only: a choice made here must be checked on a fresh test seed, once.
"""

from __future__ import annotations

from functools import partial

from parity import cli

cli.single_threaded_numpy()  # before NumPy loads OpenBLAS: the reader processes share the cores

import numpy as np  # noqa: E402

from parity.codes.seeds import NOT_FOR_TUNING, VALIDATION_CODE_SEEDS  # noqa: E402
from parity.frameworks.predictor import MODEL_SUFFIXES  # noqa: E402


def shifts_list(text: str) -> tuple[int, ...]:
    if text == "none":
        return ()
    try:
        shifts = tuple(int(part) for part in text.split(","))
    except ValueError:
        shifts = ()
    if not shifts or min(shifts) < 1:
        raise cli.argparse.ArgumentTypeError(f"{text!r}: give positive whole pixels separated by commas (3,6), or none")
    return shifts


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=cli.model_file(MODEL_SUFFIXES), required=True)
    parser.add_argument("--seeds", type=cli.non_negative_int, nargs="+", default=list(VALIDATION_CODE_SEEDS))
    parser.add_argument("--n", type=cli.positive_int, default=500, help="codes a seed (default 500)")
    parser.add_argument("--shifts", type=shifts_list, nargs="+", default=[(3,), (3, 6), (2, 4, 6), (4,)])
    parser.add_argument("--margins", type=cli.Number(float, low=0), nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.3])
    args = parser.parse_args(argv)
    if tuned := sorted(NOT_FOR_TUNING["codes"].intersection(args.seeds)):
        parser.error(f"--seeds {tuned[0]} is a test or development seed: tune on validation seeds ({', '.join(map(str, VALIDATION_CODE_SEEDS))})")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    cli.quiet_frameworks()
    from parity.codes.crops import digit_crops
    from parity.codes.cuts import choose_cut
    from parity.codes.generate import load_or_generate
    from parity.codes.reading import cut_candidates
    from parity.codes.workers import ReaderPool, chunk_size
    from parity.frameworks.predictor import load_classifier
    from parity.weights.reading import WeightFileError

    codes = {seed: load_or_generate(args.n, seed) for seed in args.seeds}
    workers = cli.usable_cores()
    cut = {}
    with ReaderPool(workers) as pool:  # started before the model's framework is imported
        for shifts in [()] + [s for s in args.shifts if s]:
            for seed, codeset in codes.items():
                read = partial(cut_candidates, shifts=shifts)
                cut[shifts, seed] = list(pool.imap(read, codeset.images, chunk_size(len(codeset.images), workers, 4)))
    try:
        classify = load_classifier(args.model)
    except WeightFileError as error:
        cli.fail(f"--model {args.model}: {' '.join(str(error).split())}")
    print("| shifts | margin | " + " | ".join(f"digits {s} | whole {s} | replaced {s}" for s in args.seeds) + " |")
    print("|---|---|" + "---|---|---|" * len(args.seeds))
    cells = []
    for codeset in codes.values():
        crops, labels = digit_crops(codeset)  # an unreadable true crop is left out: it counts as wrong here
        right = classify(crops).argmax(axis=1) == labels
        cells += [f"{right.sum() / (4 * len(codeset.codes)):.4f}", "", ""]
    print("| true boxes | | " + " | ".join(cells) + " |")
    for shifts in [()] + [s for s in args.shifts if s]:
        probabilities = {key: [None if c is None else classify(c.reshape(-1, 28, 28)).reshape(*c.shape[:2], -1)
                               for c in found] for key, found in cut.items() if key[0] == shifts}
        for margin in args.margins if shifts else [0.0]:
            cells = []
            for seed, codeset in codes.items():
                picks = [None if p is None else choose_cut(p, margin) for p in probabilities[shifts, seed]]
                read = ["" if p is None else "".join(map(str, p[k].argmax(axis=1))) for p, k in zip(probabilities[shifts, seed], picks)]
                right = [sum(a == b for a, b in zip(r, truth)) for r, truth in zip(read, codeset.codes)]
                cells += [f"{sum(right) / (4 * len(right)):.4f}", f"{np.mean([r == 4 for r in right]):.3f}",
                          str(sum(bool(k) for k in picks))]
            print(f"| {','.join(map(str, shifts)) or 'none'} | {margin:g} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    cli.run(main)
