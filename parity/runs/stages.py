"""What every training run does the same way in both frameworks: its folder, its stages and its metrics.json."""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Callable
from pathlib import Path

from parity.config import TrainConfig, finetune_config
from parity.runs.metrics import EpochMetrics, RunMetrics, median_epoch_seconds
from parity.spec import NUM_PARAMS

RUNS_DIR = Path("runs")


def with_run_dir(config: TrainConfig) -> TrainConfig:
    """The config with its run folder made: --out, or runs/<framework>-<timestamp>/ under the current directory."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(config.out) if config.out else RUNS_DIR / f"{config.framework}-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    return config.replace(out=out)


def run_metrics(
    config: TrainConfig,
    *,
    params: int,
    history: list[EpochMetrics],
    test_accuracy: float,
    test_loss: float,
    test_images: int,
    train_seconds: float,
    device: str,
    versions: dict[str, str],
    step_losses: list[float] | None = None,
) -> RunMetrics:
    if params != NUM_PARAMS:  # a build that drifted from the spec must not report as LeNet-5
        raise AssertionError(f"{config.framework} model has {params} parameters, the spec {NUM_PARAMS}")
    return RunMetrics(
        framework=config.framework,
        params=params,
        test_accuracy=float(test_accuracy),
        test_loss=float(test_loss),
        test_images=int(test_images),
        epochs=len(history),
        train_seconds=round(train_seconds, 3),
        seconds_per_epoch=round(median_epoch_seconds(history), 3),
        device=device,
        seed=config.seed,
        recipe=config.recipe,
        config=config.to_dict(),
        history=history,
        versions={"python": platform.python_version(), **versions},
        step_losses=step_losses,
    )


MODEL_FILE = {"torch": "model.ckpt", "keras": "model.keras"}  # what each framework's train() saves
PRETRAINED_DIR = "pretrained"  # where a fine-tuned run keeps its first stage


def train_stages(config: TrainConfig, train: Callable[[TrainConfig], RunMetrics]) -> list[RunMetrics]:
    """Run `train` (one framework's) for the recipe: once, or with finetune_epochs, first into
    <out>/pretrained/ and then fine-tuning that model into <out>/. Returns each stage's metrics."""
    config = with_run_dir(config)
    if not config.finetune_epochs:
        return [train(config)]
    pretrained = config.out / PRETRAINED_DIR
    first = train(config.replace(out=pretrained, finetune_epochs=0))
    return [first, train(finetune_config(config, pretrained / MODEL_FILE[config.framework]))]


TRAIN_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train.py"


def train_in_subprocess(framework: str, out: Path, flags: list[str]) -> RunMetrics:
    """`scripts/train.py --framework F --out OUT FLAGS...` in its own process (TensorFlow and torch
    never share one), its output shown as it comes; returns the run's metrics.json."""
    import subprocess
    import sys

    command = [sys.executable, str(TRAIN_SCRIPT), "--framework", framework, "--out", str(out), *flags]
    if subprocess.run(command).returncode != 0:
        raise RuntimeError(f"training {framework} failed: {' '.join(command)}")
    return RunMetrics.read(Path(out) / "metrics.json")
