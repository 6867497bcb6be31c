"""One run on 1 device beside the same run on N devices: how far apart their figures are (compare.py --devices N).

Data-parallel training splits every global batch over the devices and sums their gradients, so it is the
1-device training up to the order of additions: in float64 every figure agrees to ~1e-15 relative (the
suite's bound is 1e-10); in float32 the rounding differences grow over the epochs like any two float32 runs'.
"""

from __future__ import annotations

from parity.runs.metrics import RunMetrics


def _relative(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return abs(a - b) / abs(b) if b else abs(a - b)


def _worst(gaps: list[float | None]) -> float | None:
    known = [gap for gap in gaps if gap is not None]
    return max(known) if known else None


def device_gaps(one: RunMetrics, many: RunMetrics) -> dict:
    """The largest relative gap over the epochs of each loss, the test loss's, and the rest side by side."""
    pairs = list(zip(many.history, one.history))
    if len(one.history) != len(many.history):
        raise ValueError(f"the runs trained {len(one.history)} and {len(many.history)} epochs: not the same training")
    return {
        "devices": [one.config.get("devices", 1) * one.config.get("num_nodes", 1),
                    many.config.get("devices", 1) * many.config.get("num_nodes", 1)],
        "device": [one.device, many.device],
        "precision": one.config.get("precision"),
        "epochs": len(pairs),
        "max_relative_gap_train_loss": _worst([_relative(m.train_loss, o.train_loss) for m, o in pairs]),
        "max_relative_gap_val_loss": _worst([_relative(m.val_loss, o.val_loss) for m, o in pairs]),
        "relative_gap_test_loss": _relative(many.test_loss, one.test_loss),
        "test_accuracy": [one.test_accuracy, many.test_accuracy],
        "test_images": [one.test_images, many.test_images],
        "seconds_per_epoch": [one.seconds_per_epoch, many.seconds_per_epoch],
    }


def _gap(value: float | None) -> str:
    return "—" if value is None else f"{value:.1e}"


def data_parallel_lines(gaps: dict[str, dict]) -> list[str]:
    """report.md's section: per framework, its seed-0 run on 1 device beside the same run on N."""
    lines = ["", "Data-parallel: each framework's seed-0 run again on several devices, beside its 1-device run "
                 "(largest relative gap over the epochs):", "",
             "| framework | devices | train loss gap | val loss gap | test loss gap | test accuracy | s / epoch |",
             "|---|---|---|---|---|---|---|"]
    for name, g in gaps.items():
        lines.append(
            f"| {name} ({g['precision']}) | {g['devices'][0]} → {g['devices'][1]} | {_gap(g['max_relative_gap_train_loss'])} | "
            f"{_gap(g['max_relative_gap_val_loss'])} | {_gap(g['relative_gap_test_loss'])} | "
            f"{g['test_accuracy'][0]:.4f} → {g['test_accuracy'][1]:.4f} | "
            f"{g['seconds_per_epoch'][0]:.2f} → {g['seconds_per_epoch'][1]:.2f} |")
    lines += ["", f"Devices: {'; '.join(f'{name}: ' + ' → '.join(g['device']) for name, g in gaps.items())}. "
                  "On a CPU the devices share its cores, so more devices show the overhead of splitting, not a speed-up."]
    return lines
