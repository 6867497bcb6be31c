"""The metrics.json schema, shared by both frameworks, and the side-by-side table."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from parity.files import write_json


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float
    seconds: float
    val_loss: float | None = None
    val_accuracy: float | None = None


STATUSES = ("running", "interrupted", "failed", "done")  # "done": the model file beside it is the trained one


@dataclass
class RunMetrics:
    framework: str
    params: int
    test_accuracy: float | None  # on all 10,000 MNIST test images; None until the run is done
    test_loss: float | None
    test_images: int
    epochs: int
    train_seconds: float
    seconds_per_epoch: float  # median over epochs (the first one includes warm-up)
    device: str
    seed: int
    recipe: str
    config: dict
    history: list[EpochMetrics] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    step_losses: list[float] | None = None  # with --record-steps: the loss of every training step, in order
    status: str = "done"  # one of STATUSES; written after every epoch while "running"
    error: str | None = None  # why the run is "failed" or "interrupted"

    def to_dict(self) -> dict:
        return asdict(self)

    def write(self, path: Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> "RunMetrics":
        names = {f.name for f in fields(cls)}
        missing = names - set(data) - {"versions", "step_losses", "status", "error"}
        if missing:
            raise ValueError(f"metrics.json lacks {sorted(missing)}")
        values = {k: v for k, v in data.items() if k in names}
        values["history"] = [EpochMetrics(**entry) for entry in data["history"]]
        return cls(**values)

    @classmethod
    def read(cls, path: Path) -> "RunMetrics":
        return cls.from_dict(json.loads(Path(path).read_text()))


def median_epoch_seconds(history: list[EpochMetrics]) -> float:
    return statistics.median(e.seconds for e in history) if history else 0.0


def side_by_side(runs: list[RunMetrics]) -> str:
    """A small Markdown table of runs, one column each."""
    rows = [
        ("framework", lambda r: r.framework),
        ("params", lambda r: f"{r.params:,}"),
        ("test accuracy", lambda r: f"{r.test_accuracy:.4f}"),
        ("test loss", lambda r: f"{r.test_loss:.4f}"),
        ("epochs", lambda r: str(r.epochs)),
        ("s / epoch (median)", lambda r: f"{r.seconds_per_epoch:.2f}"),
        ("train seconds", lambda r: f"{r.train_seconds:.1f}"),
        ("device", lambda r: r.device),
    ]
    lines = []
    for i, (label, cell) in enumerate(rows):
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in runs) + " |")
        if i == 0:
            lines.append("|---|" + "---|" * len(runs))
    return "\n".join(lines)
