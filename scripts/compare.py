#!/usr/bin/env python
"""Train both frameworks with the same recipe for K seeds and compare them side by side.

    python scripts/compare.py --seeds 3 --out runs/compare
    python scripts/compare.py --devices 2 --precision float64 --epochs 3 --out runs/compare-devices

Each training run is `scripts/train.py` in its own process (so TensorFlow and torch never share one).
Then the seed-0 models are cross-checked: each one's weights run in the other framework on all 10,000
test images, and are exported to ONNX through both exporters (torch.onnx, Keras's tf2onnx) and run in
onnxruntime; the export by the model's own framework stays beside it (runs/<framework>-seed0/model.onnx).
With --devices N, each framework's seed-0 run is trained again on N devices (Lightning DDP; Keras
MirroredStrategy, or DataParallel with KERAS_BACKEND=jax) and put beside its 1-device run: the largest
relative gap of every loss (float64: ~1e-15) and the seconds per epoch (parity.json "data_parallel").
Writes into --out: parity.json, report.md, learning_curves.png, confusion.png, runs/.

Exit codes: 0 done; 1 a bad --out or data folder, or a failed run; 2 bad flags; 130 / 143 Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from parity import cli
from parity.config import DEVICES, FRAMEWORKS, MAX_SEED, RECIPES, TrainConfig, recipe_config
from parity.runs.metrics import RunMetrics, side_by_side
from parity.runs.stages import MODEL_FILE, train_in_subprocess
from parity.runs.stops import Interrupted, interruptible

SEEDS = cli.Number(int, low=1, high=MAX_SEED + 1, why="seeds 0..K-1 must each be a seed train.py takes")

ONNX_FILE = "model.onnx"  # each seed-0 model's ONNX export, beside it in its run folder
TRAIN_FIELDS = ("recipe", "epochs", "val_split", "limit_train", "precision", "data_dir", "progress")  # passed on to scripts/train.py


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=SEEDS, default=1, metavar="K", help="seeds 0..K-1 (default 1)")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"), help="report folder (default runs/compare)")
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    parser.add_argument("--devices", type=DEVICES, default=1, metavar="N",
                        help="also train each framework's seed 0 on N devices, beside its 1-device run (default 1: not)")
    cli.add_config_arguments(parser, TrainConfig, RECIPES, names=TRAIN_FIELDS, build=lambda given: recipe_config(**given))  # train.py's own flags and checks
    args = parser.parse_args(argv)
    args.frameworks = list(dict.fromkeys(args.frameworks))  # "torch torch" trains torch once per seed
    return args


def train_flags(args) -> list[str]:
    return cli.config_flags(TrainConfig, **cli.config_values(args, TrainConfig, TRAIN_FIELDS))


def train_all(args) -> dict[str, list[RunMetrics]]:
    runs: dict[str, list[RunMetrics]] = {name: [] for name in args.frameworks}
    for seed in range(args.seeds):
        for name in args.frameworks:  # alternate, so machine noise hits both alike
            out = args.out / "runs" / f"{name}-seed{seed}"
            print(f"== {name}, seed {seed} -> {out}", flush=True)
            try:
                runs[name].append(train_in_subprocess(name, out, ["--seed", str(seed), *train_flags(args)]))
            except RuntimeError as error:
                cli.fail(f"{error}; see its output above")
    return runs


def train_on_devices(args, runs: dict[str, list[RunMetrics]]) -> dict[str, dict]:
    """--devices N: each framework's seed-0 run again on N devices; its gaps to the 1-device run."""
    from parity.runs.data_parallel import device_gaps

    gaps = {}
    for name in args.frameworks:
        out = args.out / "runs" / f"{name}-seed0-devices{args.devices}"
        print(f"== {name}, seed 0, {args.devices} devices -> {out}", flush=True)
        try:
            many = train_in_subprocess(name, out, ["--seed", "0", "--devices", str(args.devices), *train_flags(args)])
        except RuntimeError as error:
            cli.fail(f"{error}; see its output above")
        gaps[name] = device_gaps(runs[name][0], many)
    return gaps


def cross_check(args, test_x: np.ndarray, test_y: np.ndarray) -> tuple[dict, dict[str, np.ndarray]]:
    """Run each framework's seed-0 model in both frameworks; returns (conversion figures, confusion matrices)."""
    from parity.frameworks.equivalence import compare_outputs, probabilities_both
    from parity.runs.report import confusion_matrix
    from parity.weights.reading import read_weights

    import torch._dynamo  # noqa: F401  -- before TensorFlow (parity/frameworks/both.py), which then loads without its start-up notes
    cli.import_tensorflow_quietly()
    figures, matrices = {}, {}
    for name in args.frameworks:
        folder = args.out / "runs" / f"{name}-seed0"
        weights = read_weights(folder / MODEL_FILE[name])
        torch_out, keras_out = probabilities_both(weights, test_x)
        own = torch_out if name == "torch" else keras_out
        matrices[name] = confusion_matrix(test_y, own.argmax(1))
        diff = compare_outputs(torch_out, keras_out)
        direction = "keras_to_torch" if name == "keras" else "torch_to_keras"
        figures[f"max_abs_diff_{direction}"] = diff.max_abs_diff
        figures[f"argmax_agreement_{direction}"] = diff.argmax_agreement
        figures.setdefault("onnx", {})[name] = onnx_check(weights, name, folder, test_x, torch_out, keras_out, args.out)
    if len(args.frameworks) == 2:
        figures["argmax_agreement"] = min(figures["argmax_agreement_keras_to_torch"], figures["argmax_agreement_torch_to_keras"])
    return figures, matrices


def onnx_check(weights, own: str, folder: Path, test_x: np.ndarray, torch_out: np.ndarray, keras_out: np.ndarray,
               out: Path) -> dict:
    """Export one model's weights through torch.onnx and through Keras (tf2onnx), run both files in onnxruntime and
    compare each with its framework's own outputs and with each other. The export by the model's own framework
    is kept as `folder`/model.onnx; the other one is made in a scratch folder and removed."""
    from lenet_keras.checkpoint import model_from_weights as keras_model
    from lenet_keras.export import export_onnx as keras_export
    from lenet_torch.checkpoint import model_from_weights as torch_model
    from lenet_torch.export import export_onnx as torch_export
    from parity.frameworks.equivalence import compare_outputs
    from parity.frameworks.onnx_runtime import load_onnx

    outputs = {}
    with tempfile.TemporaryDirectory(dir=folder, prefix=".onnx-") as scratch:
        for exporter, export, build in (("torch", torch_export, torch_model), ("keras", keras_export, keras_model)):
            path = folder / ONNX_FILE if exporter == own else Path(scratch) / f"{exporter}.onnx"
            outputs[exporter] = load_onnx(export(build(weights), path)).predict_probabilities(test_x)
    diffs = {"torch_export_vs_torch": compare_outputs(outputs["torch"], torch_out),
             "keras_export_vs_keras": compare_outputs(outputs["keras"], keras_out),
             "torch_export_vs_keras_export": compare_outputs(outputs["torch"], outputs["keras"])}
    return {"path": str((folder / ONNX_FILE).relative_to(out)), "exported_by": own, "images": len(test_x),
            **{f"max_abs_diff_{what}": diff.max_abs_diff for what, diff in diffs.items()},
            "argmax_agreement": min(diff.argmax_agreement for diff in diffs.values())}


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        with interruptible():  # SIGTERM as Ctrl-C: the running train.py is stopped with this process
            return compare(args)
    except Interrupted as stop:
        cli.fail(f"{stop}; run it again to start over", code=stop.exit_code)


def compare(args) -> int:
    from parity.data.mnist import load_mnist, require_mnist

    # What would otherwise fail only after hours of training, checked first: the data, where to write.
    require_mnist(args.data_dir)
    cli.output_folder(args.out)
    cli.quiet_frameworks()
    runs = train_all(args)
    from parity.data.preprocess import to_model_input
    from parity.runs.report import summarize, write_report

    mnist = load_mnist(args.data_dir)
    conversion, matrices = cross_check(args, to_model_input(mnist.test_images), mnist.test_labels.astype(np.int64))
    summary = summarize(runs, conversion)
    if args.devices > 1:
        summary["data_parallel"] = train_on_devices(args, runs)
    report = write_report(args.out, summary, runs, matrices)
    print()
    print(side_by_side([runs[name][0] for name in args.frameworks]) if args.seeds == 1 else report.read_text().split("\n\n")[1])
    if "accuracy_gap_pp" in summary:
        print(f"\naccuracy gap (torch - keras): {summary['accuracy_gap_pp']:+.3f} pp;", end=" ")
    if "argmax_agreement" in summary:
        print(
            f"conversion: max |diff| keras->torch {summary['max_abs_diff_keras_to_torch']:.1e}, "
            f"torch->keras {summary['max_abs_diff_torch_to_keras']:.1e}, argmax agreement {summary['argmax_agreement']:.2%}"
        )
    for name, onnx in summary.get("onnx", {}).items():
        print(f"onnx ({name} seed 0, {onnx['path']}): max |diff| torch export vs torch {onnx['max_abs_diff_torch_export_vs_torch']:.1e}, "
              f"keras export vs keras {onnx['max_abs_diff_keras_export_vs_keras']:.1e}, torch vs keras export "
              f"{onnx['max_abs_diff_torch_export_vs_keras_export']:.1e}, argmax agreement {onnx['argmax_agreement']:.2%}")
    for name, gaps in summary.get("data_parallel", {}).items():
        print(f"{name} on {gaps['devices'][1]} devices vs 1: largest relative gap train loss {gaps['max_relative_gap_train_loss']:.1e}, "
              f"test loss {gaps['relative_gap_test_loss']:.1e}; s/epoch {gaps['seconds_per_epoch'][0]:.2f} -> {gaps['seconds_per_epoch'][1]:.2f}")
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
