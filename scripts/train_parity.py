#!/usr/bin/env python
"""Same start, same path: do the two frameworks train identically, step by step?

    python scripts/train_parity.py --out runs/train_parity            # one full epoch (55,000 images)
    python scripts/train_parity.py --limit-train 4000 --out /tmp/tp   # quick

Both frameworks start from the same initial weights (parity.weights.init) and take the same batches in the
same order (parity.data.epoch_order). Runs, each `scripts/train.py --record-steps` in its own process:
  float64 with SGD and with Adam (Keras's rule in both): per-step losses must agree to <= 1e-10 relative;
  float32 with Adam: rounding differs, and the gap grows chaotically; its curve is reported.
Writes training_parity.json and divergence.png into --out.

Exit codes: 0 within tolerance; 1 a float64 case above it, a failed run, or a bad --out or data folder;
2 bad flags; 130 / 143 Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from parity import cli
from parity.config import EPOCHS, SEED, TrainConfig
from parity.files import save_figure, write_json
from parity.runs.stages import train_in_subprocess
from parity.runs.stops import Interrupted, interruptible

TOLERANCE = 1e-10
CASES = (("float64", "sgd", 0.05), ("float64", "adam", 1e-3), ("float32", "adam", 1e-3))


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=EPOCHS, default=1, help="epochs per run (default 1)")
    parser.add_argument("--limit-train", type=cli.positive_int, help="train on the first N images only (quick)")
    parser.add_argument("--seed", type=SEED, default=0, help="initial weights and batch order (default 0)")
    parser.add_argument("--data-dir", type=cli.existing_folder, help="folder with the MNIST IDX files")
    parser.add_argument("--out", type=Path, default=Path("runs/train_parity"), help="default runs/train_parity")
    return parser.parse_args(argv)


def relative_gaps(torch_losses: list[float] | None, keras_losses: list[float] | None) -> np.ndarray:
    if torch_losses is None or keras_losses is None:
        raise ValueError("a run recorded no step losses")
    a, b = np.asarray(torch_losses, dtype=np.float64), np.asarray(keras_losses, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"step counts differ: torch {a.shape}, keras {b.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero loss: inf (or nan), reported, not warned about
        return np.abs(a - b) / np.abs(b)


def plot(curves: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, gaps in curves.items():
        ax.plot(np.arange(1, len(gaps) + 1), np.maximum(gaps, 1e-17), label=label, lw=1)
    ax.axhline(TOLERANCE, color="gray", ls="--", lw=1, label="1e-10")
    ax.set(yscale="log", xlabel="training step", ylabel="|loss torch − loss keras| / loss keras",
           title="Per-step loss, Lightning vs Keras, identical start and batches")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        with interruptible():  # SIGTERM as Ctrl-C: the running train.py is stopped with this process
            return train_parity(args)
    except Interrupted as stop:
        cli.fail(f"{stop}; run it again to start over", code=stop.exit_code)


def train_parity(args) -> int:
    from parity.data.mnist import require_mnist

    require_mnist(args.data_dir)  # the data and where to write: checked before six training runs, not after
    cli.output_folder(args.out)
    common = dict(epochs=args.epochs, seed=args.seed, limit_train=args.limit_train, data_dir=args.data_dir,
                  record_steps=True, progress=False)
    results, curves = {}, {}
    for precision, optimizer, lr in CASES:
        case = f"{precision}-{optimizer}"
        runs = {}
        for framework in ("torch", "keras"):
            print(f"== {case}: {framework}", flush=True)
            case_flags = cli.config_flags(TrainConfig, **common, precision=precision, optimizer=optimizer, lr=lr)
            try:
                runs[framework] = train_in_subprocess(framework, args.out / "runs" / f"{case}-{framework}", case_flags)
            except RuntimeError as error:
                cli.fail(f"{error}; see its output above")
        try:
            gaps = relative_gaps(runs["torch"].step_losses, runs["keras"].step_losses)
        except ValueError as error:
            cli.fail(f"{case}: the runs' step losses cannot be compared ({error})")
        curves[case] = gaps
        results[case] = {
            "steps": len(gaps),
            "lr": lr,
            "max_relative_gap": float(gaps.max()),
            "gap_at_step": {str(s): float(gaps[s - 1]) for s in (1, 10, 50, 100, len(gaps)) if s <= len(gaps)},
            "test_accuracy": {name: run.test_accuracy for name, run in runs.items()},
            "within_tolerance": bool(gaps.max() <= TOLERANCE) if precision == "float64" else None,
        }
    summary = {"tolerance": TOLERANCE, "epochs": args.epochs, "seed": args.seed, "cases": results}
    write_json(args.out / "training_parity.json", summary)  # a non-finite gap is written as null
    plot(curves, args.out / "divergence.png")
    print()
    for case, r in results.items():
        verdict = "" if r["within_tolerance"] is None else ("  OK" if r["within_tolerance"] else "  ABOVE 1e-10")
        print(f"{case:14s} {r['steps']} steps, max relative gap {r['max_relative_gap']:.2e}{verdict}")
    print(f"wrote {args.out / 'training_parity.json'} and {args.out / 'divergence.png'}")
    failed = [case for case, r in results.items() if r["within_tolerance"] is False]
    if failed:
        cli.fail(f"{', '.join(failed)}: above the {TOLERANCE:.0e} tolerance (see {args.out / 'training_parity.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
