"""What every training run does the same way in both frameworks: its folder, its stages, its metrics.json
(rewritten after every epoch, with the run's status) and resuming from the last finished epoch.

A run folder after `scripts/train.py --out OUT`:

    OUT/config.json              the whole run's TrainConfig: what `--resume OUT` continues
    OUT/metrics.json             status running | interrupted | failed | done, the history so far
    OUT/checkpoints/last.ckpt    (Lightning) or last.keras (Keras): the last finished epoch, with optimizer
                                 state and schedule position
    OUT/model.ckpt / model.keras the trained model, once the run is done
    OUT/pretrained/...           a recipe's first stage (with a fine-tune), laid out the same way
    OUT/teachers/seed-S/...      with --mnist-teachers, each teacher, trained first, laid out the same way

Each epoch end writes metrics.json first and the checkpoint second. A kill between the two leaves a
checkpoint one epoch behind the history: resuming takes the history up to the checkpoint and runs that
epoch again, which gives the same numbers (the data order and augmentation of an epoch depend only on the
seed and the epoch).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import platform
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from parity.config import TrainConfig, finetune_config, teacher_config
from parity.files import write_json
from parity.runs.folder import CHECKPOINT_DIR, CONFIG_FILE, RunFolderError
from parity.runs.metrics import EpochMetrics, RunMetrics, median_epoch_seconds
from parity.runs.ranks import is_rank_zero
from parity.runs.stops import Diverged, Interrupted
from parity.spec import NUM_PARAMS

RUNS_DIR = Path("runs")
MODEL_FILE = {"torch": "model.ckpt", "keras": "model.keras"}  # what each framework's train() saves
CHECKPOINT_FILE = {"torch": "last.ckpt", "keras": "last.keras"}  # the last finished epoch, resumable
PRETRAINED_DIR = "pretrained"  # where a fine-tuned run keeps its first stage
TEACHERS_DIR = "teachers"  # where a --mnist-teachers run keeps its teachers, one folder each: seed-S/
METRICS_FILE = "metrics.json"


def with_run_dir(config: TrainConfig) -> TrainConfig:
    """The config with its run folder made (by rank 0; see parity.runs.ranks): --out, or
    runs/<framework>-<timestamp>/ under the current directory."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(config.out) if config.out else RUNS_DIR / f"{config.framework}-{stamp}"
    if is_rank_zero():
        out.mkdir(parents=True, exist_ok=True)
    return config.replace(out=out)


def checkpoint_path(config: TrainConfig) -> Path:
    return Path(config.out) / CHECKPOINT_DIR / CHECKPOINT_FILE[config.framework]


@dataclass
class Resumed:
    """Where a stage continues: its last finished epoch's checkpoint and the history up to it."""

    checkpoint: Path
    history: list[EpochMetrics]
    step_losses: list[float] | None


def stage_state(config: TrainConfig) -> RunMetrics | Resumed | None:
    """For --resume: the stage's metrics if it is done, where to continue it, or None to start it afresh."""
    path = Path(config.out) / METRICS_FILE
    try:
        metrics = RunMetrics.read(path) if path.is_file() else None
    except (ValueError, TypeError, KeyError) as error:  # JSONDecodeError is a ValueError
        raise RunFolderError(f"{path}: not a readable metrics file ({error})") from None
    if metrics is not None and metrics.status == "done":
        return metrics
    if metrics is not None and metrics.status == "failed":
        raise RunFolderError(f"{path.parent}: the run failed ({metrics.error}); start it again with other flags instead of resuming")
    checkpoint = checkpoint_path(config)
    if not checkpoint.is_file():
        return None  # killed before its first epoch ended: nothing to keep
    history = metrics.history if metrics else []
    return Resumed(checkpoint, history, metrics.step_losses if metrics else None)


def resumed_history(resumed: Resumed | None, epochs_done: int) -> list[EpochMetrics]:
    """The history of the `epochs_done` epochs the checkpoint holds."""
    if resumed is None:
        return []
    if len(resumed.history) < epochs_done:
        raise RunFolderError(f"{resumed.checkpoint}: holds {epochs_done} epochs but metrics.json only {len(resumed.history)}")
    return resumed.history[:epochs_done]


@dataclass
class RunRecord:
    """One stage's metrics.json as the run goes: after every epoch with status "running", and once more at
    the end: "done" with the test scores, or "interrupted"/"failed" with why."""

    config: TrainConfig
    params: int
    device: str
    versions: dict[str, str]
    history: list[EpochMetrics] = field(default_factory=list)
    step_losses: list[float] | None = None
    writes: bool = field(default_factory=is_rank_zero)  # False on the other ranks of a data-parallel run

    def __post_init__(self):
        self.resumed_epochs = len(self.history)  # epochs of earlier sessions, when resumed
        if self.params != NUM_PARAMS:  # a build that drifted from the spec must not report as LeNet-5
            raise AssertionError(f"{self.config.framework} model has {self.params} parameters, the spec {NUM_PARAMS}")

    def metrics(self, status: str, **fields) -> RunMetrics:
        history = self.history
        return RunMetrics(
            framework=self.config.framework,
            params=self.params,
            test_accuracy=fields.pop("test_accuracy", None),
            test_loss=fields.pop("test_loss", None),
            test_images=fields.pop("test_images", 0),
            epochs=len(history),
            train_seconds=round(fields.pop("train_seconds", sum(e.seconds for e in history)), 3),
            seconds_per_epoch=round(median_epoch_seconds(history), 3),
            device=self.device,
            seed=self.config.seed,
            recipe=self.config.recipe,
            config=self.config.to_dict(),
            history=list(history),
            versions={"python": platform.python_version(), **self.versions},
            step_losses=self.step_losses if self.config.record_steps else None,
            status=status,
            **fields,
        )

    def write(self, status: str, **fields) -> RunMetrics:
        metrics = self.metrics(status, **fields)
        if self.writes:
            metrics.write(Path(self.config.out) / METRICS_FILE)
        return metrics

    def epoch_done(self, epoch: EpochMetrics) -> None:
        self.history.append(epoch)
        self.write("running")

    @contextlib.contextmanager
    def stops_recorded(self) -> Iterator[None]:
        """A signal or a diverged loss inside the block: metrics.json says so, then the exception goes on."""
        try:
            yield
        except Interrupted as stop:
            self.write("interrupted", error=str(stop))
            raise
        except Diverged as stop:
            self.write("failed", error=str(stop))
            raise

    def done(self, *, test_accuracy: float, test_loss: float, test_images: int, train_seconds: float) -> RunMetrics:
        """Called once the model file is saved: metrics.json says done, and the epoch checkpoint goes (the
        model file holds the same state)."""
        metrics = self.write(
            "done", test_accuracy=float(test_accuracy), test_loss=float(test_loss), test_images=int(test_images),
            train_seconds=sum(e.seconds for e in self.history[: self.resumed_epochs]) + train_seconds,
        )
        if self.writes:
            shutil.rmtree(checkpoint_path(self.config).parent, ignore_errors=True)
        return metrics


def train_stages(config: TrainConfig, train: Callable[..., RunMetrics], *, resume: bool = False) -> list[tuple[str, RunMetrics]]:
    """Run `train` (one framework's) for the recipe: with mnist_teachers, first each teacher into
    <out>/teachers/seed-S/; then the run, once, or with finetune_epochs, first into <out>/pretrained/ and then
    fine-tuning that model into <out>/. Returns each stage's label ("" for a lone stage) and metrics.
    With `resume`, a stage that is done is read back, not run again, and the others continue."""
    config = with_run_dir(config)
    if not resume and is_rank_zero():
        write_json(config.out / CONFIG_FILE, config.to_dict())
    stages = []
    for index in range(config.mnist_teachers):
        teacher = teacher_config(config, index)
        teacher = teacher.replace(out=config.out / TEACHERS_DIR / f"seed-{teacher.seed}")
        stages.append((f"teacher {index + 1} of {config.mnist_teachers}: ", train(teacher, resume=resume)))
    if stages:
        models = tuple(Path(metrics.config["out"]) / MODEL_FILE[config.framework] for _, metrics in stages)
        config = config.replace(mnist_teachers=0, distil_from=models)
    if not config.finetune_epochs:
        return [*stages, ("", train(config, resume=resume))]
    pretrained = config.out / PRETRAINED_DIR
    first = train(config.replace(out=pretrained, finetune_epochs=0), resume=resume)
    return [*stages, ("pretrained: ", first),
            ("fine-tuned: ", train(finetune_config(config, pretrained / MODEL_FILE[config.framework]), resume=resume))]


def saved_config(out: Path) -> TrainConfig:
    """The TrainConfig a run folder was started with (its config.json)."""
    path = Path(out) / CONFIG_FILE
    if not path.is_file():
        raise RunFolderError(f"--resume {out}: no run to resume there (no {CONFIG_FILE})")
    try:
        values = json.loads(path.read_text())
        config = TrainConfig(**values)
    except (OSError, ValueError, TypeError) as error:
        raise RunFolderError(f"{path}: not a readable run config ({error})") from None
    for name in ("init_from", "data_dir"):  # Paths in the dataclass, strings in JSON
        if getattr(config, name) is not None:
            config = config.replace(**{name: Path(getattr(config, name))})
    return config.replace(out=Path(out))


TRAIN_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train.py"


def train_in_subprocess(framework: str, out: Path, flags: list[str], *, overwrite: bool = True) -> RunMetrics:
    """`scripts/train.py --framework F --out OUT FLAGS...` in its own process (TensorFlow and torch
    never share one), its output shown as it comes; returns the run's metrics.json. `overwrite`: the
    caller owns OUT, so a run left there by an earlier call is replaced."""
    import subprocess
    import sys

    command = [sys.executable, str(TRAIN_SCRIPT), "--framework", framework, "--out", str(out), *flags]
    if overwrite:
        command.append("--overwrite")
    if subprocess.run(command).returncode != 0:
        raise RuntimeError(f"training {framework} failed: {' '.join(command)}")
    return RunMetrics.read(Path(out) / METRICS_FILE)
