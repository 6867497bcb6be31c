#!/usr/bin/env python
"""Which of the normaliser's clean-up steps (parity/codes/cleanup.py) fire, per stress class and on code digits.

    python scripts/cleanup_steps.py                                  # stress validation seeds 31, 32; codes 21, 22
    python scripts/cleanup_steps.py --without lattice_period         # the same with one test switched off

A step that fires on its own class and nowhere else is what each step's choice asks for: this counts, with no
model, how many digits of each class every step fired on (`to_mnist(..., trace=...)`), and how many pieces of
codes (the ink profile's cut, as reading and training cut them). `--without NAME` makes the cleanup function
NAME find nothing (e.g. `lattice_period`, `remove_grid`): what fires without that test.
Validation seeds by default; prints a Markdown table, a column per seed.

A step that fires may still leave some of what it removes, and one that does not fire leaves all of it. So for
the classes that add something to a digit (grid, crossing lines and curves, specks), the second table counts
the digits whose normalised image still carries it: ink more than 2 px from any ink of its twin drawn without
the addition (`stress_digit(..., plain=True)`), at least RESIDUE of the twin's ink.
"""

from __future__ import annotations

from collections import Counter

from parity import cli
from parity.codes.seeds import VALIDATION_CODE_SEEDS, VALIDATION_STRESS_SEEDS

# the cleanup functions whose finding nothing turns their step off
TESTS = ("remove_grid", "remove_crossing_lines", "remove_crossing_curves", "lattice_period", "fill_hollow")
ADDED = ("grid", "crossing_lines", "crossing_curves", "dots")  # the classes whose addition a plain twin leaves off
RESIDUE = 0.05  # of the twin's ink: a digit with this much ink astray still carries its addition


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stress-seeds", type=cli.non_negative_int, nargs="*", default=list(VALIDATION_STRESS_SEEDS),
                        help="seeds of the stress validation split (default 31 32)")
    parser.add_argument("--n", type=cli.non_negative_int, default=1000, help="stress digits a seed (default 1000)")
    parser.add_argument("--code-seeds", type=cli.non_negative_int, nargs="*", default=list(VALIDATION_CODE_SEEDS),
                        help="seeds of codes (default 21 22)")
    parser.add_argument("--codes", type=cli.non_negative_int, default=500, help="codes a seed (default 500)")
    parser.add_argument("--without", choices=TESTS, nargs="+", default=[], help="switch these tests off")
    return parser.parse_args(argv)


def fired(images, cases: list[str]) -> dict[str, Counter]:
    """{case: Counter of the steps fired (and "no_digit", "digits")}, each image normalised with a trace."""
    from parity.codes.normalize import NoDigit, to_mnist

    counts: dict[str, Counter] = {}
    for image, case in zip(images, cases):
        count = counts.setdefault(case, Counter())
        count["digits"] += 1
        trace: list[str] = []
        try:
            to_mnist(image, trace=trace)
        except NoDigit:
            count["no_digit"] += 1
        count.update(set(trace))
    return counts


def residue(digit, twin) -> float | None:
    """The ink (over a quarter bright: faint lines count) of normalised `digit` more than 2 px from any ink (over
    an eighth) of its normalised plain `twin`, as a share of the twin's ink (over half); None if the twin holds no
    digit."""
    import numpy as np
    from scipy import ndimage

    from parity.codes.normalize import NoDigit, to_mnist

    try:
        plain = to_mnist(twin.image)
    except NoDigit:
        return None
    clean, near = plain > 127, ndimage.binary_dilation(plain > 31, iterations=2)
    try:
        ink = to_mnist(digit.image) > 63
    except NoDigit:
        return 0.0  # refused: nothing astray (fired() counts it as no_digit)
    return float(np.count_nonzero(ink & ~near)) / max(int(np.count_nonzero(clean)), 1)


def pieces_of(image) -> list:
    from parity.codes.normalize import NoDigit
    from parity.codes.segment import segment_code

    try:
        return segment_code(image)
    except NoDigit:  # too little ink to cut: no pieces
        return []


def main(argv=None) -> int:
    args = parse_args(argv)
    from parity.codes import cleanup
    from parity.codes.generate import load_or_generate
    from parity.codes.stress import CLASSES, stress_digit, stress_set

    for name in args.without:
        setattr(cleanup, name, lambda *_, **__: None)
    columns = {}
    for seed in args.stress_seeds:
        digits = stress_set(args.n, "validation", seed)
        columns[f"stress {seed}"] = fired([d.image for d in digits], [d.cls for d in digits])
    for seed in args.code_seeds:
        pieces = [piece for image in load_or_generate(args.codes, seed).images for piece in pieces_of(image)]
        columns[f"codes {seed}"] = fired(pieces, ["code pieces"] * len(pieces))
    steps = sorted({step for column in columns.values() for count in column.values() for step in count} - {"digits"})
    cases = list(dict.fromkeys(case for column in columns.values() for case in column))
    print(f"steps fired, of the digits in each case{' (without ' + ', '.join(args.without) + ')' if args.without else ''}")
    print("| case | step | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for case in cases:
        for step in steps:
            if any(column[case][step] for column in columns.values() if case in column):  # rows of zeros left out
                cells = [f"{c[case][step]} / {c[case]['digits']}" if case in c else "" for c in columns.values()]
                print(f"| {case} | {step} | " + " | ".join(cells) + " |")
    left = {}
    for seed in args.stress_seeds:
        for i in range(args.n):
            cls = CLASSES[i % len(CLASSES)]
            if cls in ADDED and (share := residue(stress_digit("validation", seed, i),
                                                   stress_digit("validation", seed, i, plain=True))) is not None:
                left.setdefault(cls, {}).setdefault(seed, Counter()).update(digits=1, left=share >= RESIDUE)
    if left:
        print(f"\ndigits whose normalised image still carries its addition (ink astray >= {RESIDUE:g} of the plain twin's)")
        print("| class | " + " | ".join(f"stress {seed}" for seed in args.stress_seeds) + " |")
        print("|---|" + "---|" * len(args.stress_seeds))
        for cls, seeds in left.items():
            print(f"| {cls} | " + " | ".join(f"{seeds[s]['left']} / {seeds[s]['digits']}" for s in args.stress_seeds) + " |")
    return 0


if __name__ == "__main__":
    cli.run(main)
