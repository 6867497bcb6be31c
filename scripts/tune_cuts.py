#!/usr/bin/env python
"""The validation sweep behind reading codes by cut variants (parity/codes/cuts.py): CUT_SHIFTS and the rule.

    python scripts/tune_cuts.py --model runs/best-torch/model.ckpt
    python scripts/tune_cuts.py --model runs/best-keras/model.keras --seeds 21 22 --shifts 3,6 2,4,6,8 --margins 0 0.05
    python scripts/tune_cuts.py --model runs/best-torch/model.ckpt --n 1000 --skip 500   # the check: codes 501-1,500

For each set of shifts, every validation code (500 a seed, 160x60; seeds 21 and 22 unless --seeds) is cut as
each variant gives it, the cuts moved one at a time (choice 5's reader) or in every combination (choice 8's),
and the model reads all of them. Then each rule is scored: "margin m", choice 5's, reads the one variant whose
digits' summed log confidence is highest if it beats the profile's cut by m, else the profile's cut; "averaged",
choice 8's and the reader's now, averages the variants' probabilities weighted by their confidence
(cuts.averaged_over_cuts). The row "none" is the ink profile's cut alone, the row "true boxes" each digit cut by
its true box (what a perfect cutter would give the model: a bound), the row "any variant" the codes' digits that
some variant reads right (what a perfect rule would give). Prints a Markdown table of digit and whole-code
accuracy per seed. For validation seeds only: a choice made here must be checked on a fresh test seed, once.
"""

from __future__ import annotations

import dataclasses
from functools import partial

from parity import cli

cli.single_threaded_numpy()  # before NumPy loads OpenBLAS: the reader processes share the cores

import numpy as np  # noqa: E402

from parity.codes.seeds import NOT_FOR_TUNING, VALIDATION_CODE_SEEDS  # noqa: E402
from parity.frameworks.predictor import MODEL_SUFFIXES  # noqa: E402


def shifts_list(text: str) -> tuple[int, ...]:
    try:
        shifts = tuple(int(part) for part in text.split(","))
    except ValueError:
        shifts = ()
    if not shifts or min(shifts) < 1:
        raise cli.argparse.ArgumentTypeError(f"{text!r}: give positive whole pixels separated by commas (3,6)")
    return shifts


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=cli.model_file(MODEL_SUFFIXES), nargs="+", required=True,
                        help="one or more model files: the codes are cut once, then each model reads them (a table each)")
    parser.add_argument("--seeds", type=cli.non_negative_int, nargs="+", default=list(VALIDATION_CODE_SEEDS))
    parser.add_argument("--n", type=cli.positive_int, default=500, help="codes a seed (default 500)")
    parser.add_argument("--skip", type=cli.non_negative_int, default=0,
                        help="start at this code of each seed: the --n codes after the first --skip (default 0)")
    parser.add_argument("--shifts", type=shifts_list, nargs="+", default=[(3, 6), (2, 4, 6, 8), (2, 4, 6, 8, 10)])
    parser.add_argument("--margins", type=cli.Number(float, low=0), nargs="+", default=[0.0, 0.05, 0.1, 0.2])
    args = parser.parse_args(argv)
    if tuned := sorted(NOT_FOR_TUNING["codes"].intersection(args.seeds)):
        parser.error(f"--seeds {tuned[0]} is a test or development seed: tune on validation seeds ({', '.join(map(str, VALIDATION_CODE_SEEDS))})")
    return args


def margin_pick(probabilities: np.ndarray, margin: float) -> np.ndarray:
    """Choice 5's rule: the (n_digits, 10) rows of the variant whose digits' summed log confidence is highest, if
    it beats the first (the profile's cut) by `margin`; else the first's."""
    from parity.codes.cuts import cut_scores

    score = cut_scores(probabilities)
    best = int(np.argmax(score))
    return probabilities[best if score[best] > score[0] + margin else 0]


def scored(readings: list[np.ndarray | None], truths) -> list[str]:
    """Digit and whole-code accuracy of (n_digits, 10) readings (None: unreadable, every digit wrong)."""
    right = [0 if r is None else sum(int(d) == int(t) for d, t in zip(r.argmax(axis=1), truth)) for r, truth in zip(readings, truths)]
    return [f"{sum(right) / (4 * len(right)):.4f}", f"{np.mean([r == 4 for r in right]):.3f}"]


def last_codes(codeset, n: int):
    """The last n codes of a CodeSet (a seed's codes are drawn in order: its first ones are any smaller set's)."""
    return dataclasses.replace(codeset, images=codeset.images[-n:], codes=codeset.codes[-n:], boxes=codeset.boxes[-n:],
                               visible=None if codeset.visible is None else codeset.visible[-n:])


def print_table(args, codes: dict, cut: dict, classify) -> None:
    """One model's Markdown table: every set of shifts and kind of variants, every rule, each seed."""
    from parity.codes.crops import digit_crops
    from parity.codes.cuts import averaged_over_cuts

    print("| variants | rule | " + " | ".join(f"digits {s} | whole {s}" for s in args.seeds) + " |")
    print("|---|---|" + "---|---|" * len(args.seeds))
    cells = []
    for codeset in codes.values():
        crops, labels = digit_crops(codeset)  # an unreadable true crop is left out: it counts as wrong here
        right = classify(crops).argmax(axis=1) == labels
        cells += [f"{right.sum() / (4 * len(codeset.codes)):.4f}", ""]
    print("| true boxes | | " + " | ".join(cells) + " |")
    first = True
    for shifts in args.shifts:
        for joint in (False, True):
            probabilities = {seed: [None if c is None else classify(c.reshape(-1, 28, 28)).reshape(*c.shape[:2], -1)
                                    for c in cut[shifts, joint, seed]] for seed in args.seeds}
            kind = f"{','.join(map(str, shifts))}, {'every combination' if joint else 'one at a time'}"
            rules = [("none", "profile's cut alone", lambda p: p[0])] if first else []
            rules += [(kind, f"margin {m:g}", partial(margin_pick, margin=m)) for m in args.margins]
            rules += [(kind, "averaged", averaged_over_cuts), (kind, "any variant", None)]
            first = False
            for variants, name, rule in rules:
                cells = []
                for seed, codeset in codes.items():
                    if rule is None:  # the best any variant does, digit by digit of its code
                        best = [None if p is None else p[int(np.argmax((p.argmax(axis=2) == [int(t) for t in truth]).sum(axis=1)))]
                                for p, truth in zip(probabilities[seed], codeset.codes)]
                        cells += scored(best, codeset.codes)
                    else:
                        cells += scored([None if p is None else rule(p) for p in probabilities[seed]], codeset.codes)
                print(f"| {variants} | {name} | " + " | ".join(cells) + " |", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    cli.quiet_frameworks()
    from parity.codes.generate import load_or_generate
    from parity.codes.reading import cut_candidates
    from parity.codes.workers import ReaderPool, chunk_size
    from parity.frameworks.predictor import load_classifier
    from parity.weights.reading import WeightFileError

    codes = {seed: last_codes(load_or_generate(args.skip + args.n, seed), args.n) for seed in args.seeds}
    workers = cli.usable_cores()
    cut = {}
    with ReaderPool(workers) as pool:  # started before the model's framework is imported
        for shifts in args.shifts:
            for joint in (False, True):
                for seed, codeset in codes.items():
                    read = partial(cut_candidates, shifts=shifts, joint=joint)
                    cut[shifts, joint, seed] = list(pool.imap(read, codeset.images, chunk_size(len(codeset.images), workers, 4)))
    for model in args.model:
        try:
            classify = load_classifier(model)
        except WeightFileError as error:
            cli.fail(f"--model {model}: {' '.join(str(error).split())}")
        print(f"\n{model}\n")
        print_table(args, codes, cut, classify)
    return 0


if __name__ == "__main__":
    cli.run(main)
