"""parity.json, plots and report.md for a side-by-side comparison of the two frameworks."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from parity.files import save_figure, write_json, write_text
from parity.runs.data_parallel import data_parallel_lines
from parity.runs.metrics import RunMetrics

COLORS = {"torch": "tab:red", "keras": "tab:blue"}


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarize(runs: dict[str, list[RunMetrics]], conversion: dict) -> dict:
    """The parity.json content: per framework mean/std over seeds, the gap, and the conversion check."""
    frameworks = {}
    for name, metrics in runs.items():
        frameworks[name] = {
            "seeds": [m.seed for m in metrics],
            "test_accuracy": _mean_std([m.test_accuracy for m in metrics]),
            "test_loss": _mean_std([m.test_loss for m in metrics]),
            "seconds_per_epoch": _mean_std([m.seconds_per_epoch for m in metrics]),
            "params": metrics[0].params,
            "device": metrics[0].device,
        }
    summary = {"recipe": next(iter(runs.values()))[0].recipe, "epochs": next(iter(runs.values()))[0].epochs, "frameworks": frameworks}
    if {"torch", "keras"} <= set(frameworks):
        gap = frameworks["torch"]["test_accuracy"]["mean"] - frameworks["keras"]["test_accuracy"]["mean"]
        summary["accuracy_gap_pp"] = round(100 * gap, 4)  # torch minus keras, percentage points
    summary.update(conversion)
    return summary


def plot_learning_curves(runs: dict[str, list[RunMetrics]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, metrics in runs.items():
        for i, run in enumerate(metrics):
            epochs = [e.epoch for e in run.history]
            def label(what: str, name=name, first=i == 0) -> str | None:  # one legend entry per line kind
                return f"{name} {what}" if first else None

            loss_ax.plot(epochs, [e.train_loss for e in run.history], color=COLORS.get(name), alpha=0.8, marker=".", label=label("train"))
            acc_ax.plot(epochs, [e.train_accuracy for e in run.history], color=COLORS.get(name), alpha=0.8, marker=".", label=label("train"))
            if run.history and run.history[0].val_loss is not None:
                loss_ax.plot(epochs, [e.val_loss for e in run.history], "--", color=COLORS.get(name), alpha=0.8, marker=".", label=label("validation"))
                acc_ax.plot(epochs, [e.val_accuracy for e in run.history], "--", color=COLORS.get(name), alpha=0.8, marker=".", label=label("validation"))
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="Loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("LeNet-5, Lightning vs Keras (every seed drawn)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int = 10) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def plot_confusions(matrices: dict[str, np.ndarray], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(matrices), figsize=(5.5 * len(matrices), 5))
    for ax, (name, matrix) in zip(np.atleast_1d(axes), matrices.items()):
        errors = matrix.copy()
        np.fill_diagonal(errors, 0)  # the diagonal would swamp the colour scale; it is printed instead
        ax.imshow(errors, cmap="Reds")
        for true in range(10):
            for pred in range(10):
                if matrix[true, pred]:
                    ax.text(pred, true, matrix[true, pred], ha="center", va="center", fontsize=7,
                            color="black" if true != pred else "tab:green")
        accuracy = np.trace(matrix) / matrix.sum()
        ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true", title=f"{name}: accuracy {accuracy:.4f}")
    fig.suptitle("MNIST test confusion matrices (10,000 images; errors shaded)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def per_class_accuracy(matrix: np.ndarray) -> list[float]:
    return (np.diag(matrix) / matrix.sum(1)).tolist()


def _row(label: str, summary: dict, cell) -> str:
    return f"| {label} | " + " | ".join(cell(stats) for stats in summary["frameworks"].values()) + " |"


def _pm(stats: dict, digits: int = 4) -> str:
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def onnx_lines(onnx: dict[str, dict]) -> list[str]:
    """report.md's ONNX table: each seed-0 model exported through both exporters, run in onnxruntime."""
    images = next(iter(onnx.values()))["images"]
    lines = [
        "",
        f"ONNX export (each seed-0 model exported through torch.onnx and through Keras/tf2onnx, run in onnxruntime on "
        f"all {images:,} test images; max abs diff of softmax):",
        "",
        "| model | file | torch export vs torch | Keras export vs Keras | torch export vs Keras export | argmax agreement |",
        "|---|---|---|---|---|---|",
    ]
    for name, figures in onnx.items():
        lines.append(f"| {name} seed 0 | `{figures['path']}` | {figures['max_abs_diff_torch_export_vs_torch']:.2e} | "
                     f"{figures['max_abs_diff_keras_export_vs_keras']:.2e} | {figures['max_abs_diff_torch_export_vs_keras_export']:.2e} | "
                     f"{figures['argmax_agreement']:.2%} |")
    return lines


def write_report(out: Path, summary: dict, runs: dict[str, list[RunMetrics]], matrices: dict[str, np.ndarray]) -> Path:
    """Write parity.json, the two plots and report.md (which shows them) into `out`."""
    write_json(out / "parity.json", summary)
    plot_learning_curves(runs, out / "learning_curves.png")
    plot_confusions(matrices, out / "confusion.png")
    names = list(summary["frameworks"])
    lines = [
        f"# LeNet-5: Lightning vs Keras ({summary['recipe']} recipe, {summary['epochs']} epochs)",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        _row("seeds", summary, lambda f: ", ".join(map(str, f["seeds"]))),
        _row("parameters", summary, lambda f: f"{f['params']:,}"),
        _row("test accuracy (mean ± std)", summary, lambda f: _pm(f["test_accuracy"])),
        _row("test loss (mean ± std)", summary, lambda f: _pm(f["test_loss"])),
        _row("seconds per epoch", summary, lambda f: _pm(f["seconds_per_epoch"], 2)),
        _row("device", summary, lambda f: f["device"]),
        "",
    ]
    if "accuracy_gap_pp" in summary:
        lines.append(f"Accuracy gap (torch − keras): **{summary['accuracy_gap_pp']:+.3f} percentage points**.")
    if "max_abs_diff_keras_to_torch" in summary:
        lines += [
            "",
            "Conversion check (a trained model's weights run in the other framework, all 10,000 test images):",
            "",
            "| direction | max abs diff of softmax | argmax agreement |",
            "|---|---|---|",
            f"| Keras → torch | {summary['max_abs_diff_keras_to_torch']:.2e} | {summary['argmax_agreement_keras_to_torch']:.2%} |",
            f"| torch → Keras | {summary['max_abs_diff_torch_to_keras']:.2e} | {summary['argmax_agreement_torch_to_keras']:.2%} |",
        ]
    if "onnx" in summary:
        lines += onnx_lines(summary["onnx"])
    if "data_parallel" in summary:
        lines += data_parallel_lines(summary["data_parallel"])
    lines += [
        "",
        "Per-class test accuracy (seed 0):",
        "",
        "| digit | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    per_class = {name: per_class_accuracy(matrix) for name, matrix in matrices.items()}
    for digit in range(10):
        lines.append(f"| {digit} | " + " | ".join(f"{per_class[n][digit]:.4f}" for n in names if n in per_class) + " |")
    lines += ["", "![learning curves](learning_curves.png)", "", "![confusion matrices](confusion.png)", ""]
    write_text(out / "report.md", "\n".join(lines))
    return out / "report.md"


def plot_digit_grid(images, labels, predictions: dict[str, np.ndarray], path: Path, title: str = "", columns: int = 8,
                    column_titles: list[str] | None = None) -> Path:
    """Input images in a grid, each titled with every framework's reading (green right, red wrong; -1: no
    reading); `column_titles` head the top row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.75 * rows))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i >= len(images):
            continue
        image = np.asarray(images[i])
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
        readings = [f"{name[0].upper()}:{int(p[i]) if p[i] >= 0 else '-'}" for name, p in predictions.items()]
        right = all(int(p[i]) == labels[i] for p in predictions.values())
        heading = f"{column_titles[i]}\n" if column_titles and i < columns else ""
        ax.set_title(heading + " ".join(readings), fontsize=9, color="tab:green" if right else "tab:red")
    fig.suptitle(title + "  (T: Lightning, K: Keras)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path
