"""Training recipes: the one place their defaults are defined. Both frameworks read `TrainConfig`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

FRAMEWORKS = ("torch", "keras")
ACCELERATORS = ("auto", "cpu", "gpu")
OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("float32", "float64")


@dataclass
class TrainConfig:
    framework: str = "torch"
    recipe: str = "seed"
    # The seed recipe: what the original Keras project trained with.
    epochs: int = 10
    batch_size: int = 200
    lr: float = 1e-3
    optimizer: str = "adam"  # Adam with Keras's update rule in both frameworks (see lenet_torch/optim.py)
    seed: int = 0
    val_split: int = 5_000  # images held out of the 60,000 for validation; 0 trains on all, as the seed did
    limit_train: int | None = None  # first N training images, for quick runs
    # What the "best" recipe turns on (see RECIPES).
    augment: bool = False  # fresh random affine / stroke-width changes every epoch (parity.data.augment)
    code_digits: int = 0  # training verification codes whose digits are mixed into MNIST (parity.codes.captchas)
    printed_digits: int = 0  # digits printed in training fonts, mixed in too (parity.codes.printed_digits)
    lr_schedule: str = "constant"  # "constant" or "cosine"
    # Fine-tuning: after the epochs above, this many more on MNIST alone (augmented as above), from the
    # trained weights with a fresh optimizer and a cosine schedule from finetune_lr (see finetune_config).
    finetune_epochs: int = 0
    finetune_lr: float = 3e-4
    finetune_batch_size: int | None = None  # None: the first stage's
    init_from: Path | None = None  # start from this model file's weights (any format) instead of the seeded draw
    # Where and how.
    precision: str = "float32"
    compile: bool = False  # torch.compile the torch model and optimizer update: faster epochs, 5-20 s to compile
    accelerator: str = "auto"
    data_dir: Path | None = None
    out: Path | None = None
    progress: bool = True
    record_steps: bool = False  # keep every step's training loss in metrics.json (training-parity checks)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}


# Each recipe is a set of overrides of the seed defaults above.
RECIPES: dict[str, dict] = {
    "seed": {},
    # Reads verification codes: see README, "Reading verification codes", for what each part is worth.
    "best": {
        "epochs": 60,
        "batch_size": 100,
        "lr": 1.4e-3,
        "lr_schedule": "cosine",
        "augment": True,
        "code_digits": 20_000,
        "printed_digits": 20_000,
        "val_split": 0,
        # The mixed data cost MNIST a little (0.992); a short MNIST-only fine-tune wins it back.
        "finetune_epochs": 5,
        "finetune_lr": 3e-4,
        "finetune_batch_size": 200,
    },
}


def recipe_config(recipe: str = "seed", **overrides) -> TrainConfig:
    """The config for a named recipe, with explicit overrides (None means 'keep the recipe's value')."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    values = {**RECIPES[recipe], **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(recipe=recipe, **values)


def finetune_config(config: TrainConfig, init_from: Path) -> TrainConfig:
    """The fine-tuning stage of `config`: MNIST only, from the model in `init_from`, cosine from finetune_lr."""
    return config.replace(
        epochs=config.finetune_epochs, lr=config.finetune_lr, lr_schedule="cosine",
        batch_size=config.finetune_batch_size or config.batch_size,
        code_digits=0, printed_digits=0, finetune_epochs=0, init_from=Path(init_from),
    )


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """The learning rate for a 0-based epoch; both frameworks' schedulers call this."""
    if config.lr_schedule == "constant":
        return config.lr
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
    raise ValueError(f"unknown lr schedule {config.lr_schedule!r}")
