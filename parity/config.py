"""Training recipes: the one place their defaults are defined. Both frameworks read `TrainConfig`.

Each field carries its --help text and CLI hints in its metadata (see `option`), from which
scripts/train.py builds its flags (parity.cli.add_config_arguments): a new field is a new flag.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass
from pathlib import Path

from parity.cli import Number, existing_folder, positive_float, positive_int

FRAMEWORKS = ("torch", "keras")
ACCELERATORS = ("auto", "cpu", "gpu")
OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("float32", "float64")
LR_SCHEDULES = ("constant", "cosine")
DISTIL_IMAGES = ("all", "mnist")  # which training images the teachers teach (TrainConfig.distil_images)
STRATEGIES = ("auto", "ddp")

# The ranges of the numeric flags, each with why (TrainConfig checks them too, for configs made in code).
MNIST_TRAIN_IMAGES = 60_000
MAX_SEED = 2**32 - 1
SEED = Number(int, low=0, high=MAX_SEED, why="NumPy, and so Lightning's and Keras's seeding, take 0 to 2**32 - 1")
VAL_SPLIT = Number(int, low=0, high=MNIST_TRAIN_IMAGES - 1,
                   why=f"MNIST has {MNIST_TRAIN_IMAGES:,} training images and at least one must be left to train on")
EPOCHS = Number(int, low=1, high=1_000, why="the Keras run lays out every epoch's batch order in memory before it starts")
FINETUNE_EPOCHS = Number(int, low=0, high=EPOCHS.high, why=EPOCHS.why)
BATCH_SIZE = Number(int, low=1, high=1_000_000, why="more images than any training set here holds")
CODE_DIGITS = Number(int, low=0, high=100_000, why="each code is a 29 KB picture held in memory while its digits are cut")
DEVICES = Number(int, low=1, high=1_024, why="more devices than any one machine here holds")
NUM_NODES = Number(int, low=1, high=1_024, why="more machines than the launchers here were tried with")
PRINTED_DIGITS = Number(int, low=0, high=1_000_000, why="each printed digit is drawn one by one and held in memory")
STYLE_DIGITS = Number(int, low=0, high=1_000_000, why="each style digit is drawn one by one and held in memory")
EMA_DECAY = Number(float, low=0, high=0.99999,
                   why="the average would barely move from the first step's weights (its horizon is 1 / (1 - decay) steps)")
MNIST_REPEATS = Number(int, low=1, high=20, why="each copy of MNIST's 60,000 is held in memory and lengthens every epoch")
DISTIL_WEIGHT = Number(float, low=0, high=1, why="the soft targets' share of the loss; the labels keep the rest")
DISTIL_TEMPERATURE = Number(float, low=0.1, high=100, why="softmax at a temperature beyond 100 makes every teacher's answer uniform")
MAX_TEACHERS = 16  # each teacher is one more forward pass in every training step
MNIST_TEACHERS = Number(int, low=0, high=MAX_TEACHERS, why="each teacher is one more forward pass in every training step")
DISTIL_SETTINGS = ("distil_weight", "distil_temperature", "distil_images")  # what a run with teachers sets

# Each recipe is a set of overrides of TrainConfig's defaults below, which are the seed recipe.
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
        "style_digits": 20_000,
        "val_split": 0,
        # Two teachers trained first on MNIST alone teach MNIST's images (W 0.65, T 2); the mixed-in digits learn
        # from their labels alone (choice 9, docs/robustness.md: MNIST +0.2-0.3 points on validation).
        "mnist_teachers": 2,
        "distil_weight": 0.65,
        "distil_images": "mnist",
        # One stage after the teachers. A fine-tune on MNIST alone (5 epochs, 3e-4) won back 0.1-0.2 points of
        # MNIST but undid what the style digits taught; one keeping them cost validation codes 0.4-0.6 points for
        # MNIST's 0.0002-0.0014 (README, "the stress set and the protocol"). --finetune-epochs still adds one.
    },
}


def option(default, help: str, **cli):
    """A TrainConfig field: its default, its --help text, and how the CLI takes it (parity.cli.add_config_arguments):
    type= a parser/validator (else the annotation's type), choices=, metavar=, required=True, nargs= for a list,
    flag= one fixed spelling of a bool ("--no-progress" sets False, "--compile" sets True; else --x/--no-x),
    cli=False for a field with no flag."""
    return dataclasses.field(default=default, metadata={"help": help, **cli})


@dataclass
class TrainConfig:
    framework: str = option("torch", "which framework trains: Lightning or Keras", choices=FRAMEWORKS, required=True)
    recipe: str = option("seed", "the defaults below: seed, the original Keras recipe; best, the one that "
                                 "reads verification codes", choices=tuple(RECIPES))
    # The seed recipe: what the original Keras project trained with.
    epochs: int = option(10, "training epochs", type=EPOCHS, metavar="N")
    batch_size: int = option(200, "images per training batch", type=BATCH_SIZE, metavar="N")
    lr: float = option(1e-3, "learning rate", type=positive_float)
    optimizer: str = option("adam", "adam follows Keras's update rule in both frameworks", choices=OPTIMIZERS)
    seed: int = option(0, "initial weights and batch order", type=SEED, metavar="N")
    val_split: int = option(5_000, "images held out of the 60,000 for validation; 0 trains on all, as the seed did",
                            type=VAL_SPLIT, metavar="N")
    limit_train: int | None = option(None, "train on the first N training images only (quick runs)", type=positive_int, metavar="N")
    # What the "best" recipe turns on (see RECIPES).
    augment: bool = option(False, "fresh random affine and stroke-width changes every epoch")
    code_digits: int = option(0, "mix in the digits of N generated training codes",
                              type=CODE_DIGITS, metavar="N")
    printed_digits: int = option(0, "mix in N digits printed in training fonts", type=PRINTED_DIGITS, metavar="N")
    style_digits: int = option(0, "mix in N digits in the style stress classes (grids, crossing strokes, outlines, "
                                  "halftone, ...), training fonts and settings only", type=STYLE_DIGITS, metavar="N")
    mnist_repeats: int = option(1, "each epoch holds N copies of MNIST's training images (each augmented afresh): "
                                   "MNIST's weight against the mixed-in digits", type=MNIST_REPEATS, metavar="N")
    ema_decay: float = option(0.0, "keep an exponential moving average of the weights, updated after every step with "
                                   "this decay (Lightning's EMAWeightAveraging, Keras's Adam(use_ema=True)); the average "
                                   "is validated, tested and saved. 0: none", type=EMA_DECAY, metavar="DECAY")
    # Knowledge distillation (Hinton et al. 2015): the loss mixes the labels' cross-entropy with one towards the
    # teachers' mean softmax at a temperature, on the same augmented batches (lenet_torch.module, lenet_keras.distil).
    distil_from: tuple[Path, ...] | None = option(None, "learn also from these trained LeNet-5 model files (.ckpt/.pt/.keras/.h5, "
                                                        "any framework's): their mean softmax at --distil-temperature, run "
                                                        "on every training batch", metavar="MODEL", nargs="+")
    distil_weight: float = option(0.8, "with --distil-from: the teachers' share of each image's loss (the labels' is 1 - this)",
                                  type=DISTIL_WEIGHT, metavar="W")
    distil_temperature: float = option(2.0, "with --distil-from: the softmax temperature of teachers and student "
                                            "(the teachers' term is scaled by its square)", type=DISTIL_TEMPERATURE, metavar="T")
    distil_images: str = option("all", "with --distil-from: the training images the teachers teach: all, or mnist "
                                       "(MNIST's own; the mixed-in digits learn from their labels alone)", choices=DISTIL_IMAGES)
    mnist_teachers: int = option(0, "first train N teachers, each this recipe on MNIST's images alone (no mixed-in "
                                    "digits) with seeds --seed to --seed + N - 1, into OUT/teachers/seed-S/, then learn "
                                    "from them as --distil-from would. 0: none", type=MNIST_TEACHERS, metavar="N")
    lr_schedule: str = option("constant", "per-epoch learning rate: constant, or a cosine decay from --lr", choices=LR_SCHEDULES)
    # Fine-tuning: after the epochs above, this many more on MNIST alone (augmented as above), from the
    # trained weights with a fresh optimizer and a cosine schedule from finetune_lr (see finetune_config).
    finetune_epochs: int = option(0, "then fine-tune N more epochs on MNIST (with the style digits below), fresh optimizer, cosine schedule; "
                                     "0: no fine-tune", type=FINETUNE_EPOCHS, metavar="N")
    finetune_lr: float = option(3e-4, "the fine-tune's starting learning rate", type=positive_float, metavar="LR")
    finetune_batch_size: int | None = option(None, "the fine-tune's batch size; unset: --batch-size", type=BATCH_SIZE, metavar="N")
    finetune_style_digits: int = option(0, "the fine-tune's MNIST keeps the first N of the style digits (0: MNIST alone)",
                                        type=STYLE_DIGITS, metavar="N")
    init_from: Path | None = option(None, "start from this model file's weights (.ckpt/.pt/.keras/.h5) instead of "
                                          "the seeded draw, e.g. to fine-tune it", metavar="MODEL")
    # Where and how.
    precision: str = option("float32", "float64 for the step-by-step training-parity checks", choices=PRECISIONS)
    compile: bool = option(False, "torch only: torch.compile the model and optimizer update; "
                                  "faster epochs, 5-20 s to compile", flag="--compile")
    accelerator: str = option("auto", "auto: a GPU if there is one", choices=ACCELERATORS)
    # Data-parallel training: --batch-size stays the global batch, each device takes batch / (devices x nodes).
    devices: int = option(1, "devices per machine, data-parallel (Lightning DDP; Keras: MirroredStrategy on "
                             "TensorFlow, DataParallel on JAX); on a CPU, N processes (Lightning) or N logical "
                             "devices (Keras)", type=DEVICES, metavar="N")
    num_nodes: int = option(1, "machines, each with --devices devices: started by torchrun or SLURM (Lightning), "
                               "TF_CONFIG or jax.distributed (Keras); see README", type=NUM_NODES, metavar="M")
    strategy: str = option("auto", "auto: data-parallel when --devices or --num-nodes ask for more than one; "
                                   "ddp: always (Lightning's DDP, Keras's data-parallel strategy)", choices=STRATEGIES)
    data_dir: Path | None = option(None, "folder with the MNIST IDX files; unset: $LENET_DATA_DIR, else data/mnist, "
                                         "fetched if missing", type=existing_folder, metavar="DIR")
    out: Path | None = option(None, "run folder; unset: runs/<framework>-<timestamp>/", metavar="DIR")
    progress: bool = option(True, "hide the framework's progress bar", flag="--no-progress")
    record_steps: bool = option(False, "keep every step's training loss in metrics.json, for the training-parity checks",
                                flag="--record-steps")

    def __post_init__(self) -> None:
        """The rules the flags enforce, also for a config made in code or read back from a run's
        config.json: a ValueError naming the first field that breaks them."""
        if self.distil_from is not None:  # any sequence of paths (JSON gives a list of strings): a tuple of Paths
            if not isinstance(self.distil_from, (list, tuple)) or not all(isinstance(p, (str, Path)) for p in self.distil_from):
                raise ValueError(f"distil_from must be a list of model files, got {self.distil_from!r}"[:300])
            if not 1 <= len(self.distil_from) <= MAX_TEACHERS:
                raise ValueError(f"distil_from must name 1 to {MAX_TEACHERS} model files, got {len(self.distil_from)}: "
                                 "each teacher is one more forward pass in every training step")
            self.distil_from = tuple(Path(p) for p in self.distil_from)
        for field in dataclasses.fields(self):
            value, meta = getattr(self, field.name), field.metadata
            if value is None and field.default is None:
                continue  # optional, unset
            if isinstance(meta.get("type"), Number):
                meta["type"].check(value, field.name)
            elif "choices" in meta and value not in meta["choices"]:
                raise ValueError(f"{field.name} must be one of {', '.join(meta['choices'])}, got {value!r}")
            elif _annotations()[field.name] is bool and not isinstance(value, bool):
                raise ValueError(f"{field.name} must be True or False, got {value!r}")
        if self.distil_from is not None and self.mnist_teachers:
            raise ValueError("give teachers by distil_from (--distil-from) or train them by mnist_teachers (--mnist-teachers), not both")
        if self.distil_from is None and not self.mnist_teachers:
            for name in DISTIL_SETTINGS:
                if getattr(self, name) != _defaults()[name]:
                    raise ValueError(f"{name} is for distillation: give distil_from (--distil-from) or mnist_teachers (--mnist-teachers) too")
        world = self.world_size
        for name in ("batch_size", "finetune_batch_size"):
            size = getattr(self, name)
            if size is not None and size % world:
                raise ValueError(f"{name} {size} does not split over {world} devices ({self.devices} x {self.num_nodes} "
                                 f"nodes): the global batch must be a multiple of the device count")

    @property
    def world_size(self) -> int:
        """Devices in all: the global batch is split into this many equal parts."""
        return self.devices * self.num_nodes

    @property
    def data_parallel(self) -> bool:
        return self.strategy == "ddp" or self.world_size > 1

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON's types: Paths as strings, the teachers as a list of them."""
        return {k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if k == "distil_from" and v is not None else v)
                for k, v in dataclasses.asdict(self).items()}


@functools.cache
def _defaults() -> dict[str, object]:
    return {field.name: field.default for field in dataclasses.fields(TrainConfig)}


@functools.cache
def _annotations() -> dict[str, object]:
    return typing.get_type_hints(TrainConfig)


def recipe_config(recipe: str = "seed", **overrides) -> TrainConfig:
    """The config for a named recipe, with explicit overrides (None means 'keep the recipe's value')."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    values = {**RECIPES[recipe], **given}
    if given.get("distil_from") and "mnist_teachers" not in given:
        values["mnist_teachers"] = 0  # teachers given replace the ones the recipe trains
    if not values.get("distil_from") and not values.get("mnist_teachers"):
        for name in DISTIL_SETTINGS:  # the recipe's settings for its teachers go with them (e.g. --mnist-teachers 0)
            if name not in given:
                values.pop(name, None)
    return TrainConfig(recipe=recipe, **values)


def finetune_config(config: TrainConfig, init_from: Path) -> TrainConfig:
    """The fine-tuning stage of `config`: MNIST (and finetune_style_digits style digits), from the model in
    `init_from`, cosine from finetune_lr."""
    return config.replace(
        epochs=config.finetune_epochs, lr=config.finetune_lr, lr_schedule="cosine",
        batch_size=config.finetune_batch_size or config.batch_size, code_digits=0, printed_digits=0,
        style_digits=config.finetune_style_digits, finetune_style_digits=0, finetune_epochs=0, mnist_repeats=1,
        init_from=Path(init_from),
    )


def teacher_config(config: TrainConfig, index: int) -> TrainConfig:
    """The index-th (0-based) MNIST-only teacher of a --mnist-teachers run: the same recipe on MNIST's images
    alone, seed --seed + index, with no teachers, fine-tune or starting weights of its own."""
    return config.replace(
        seed=(config.seed + index) % (MAX_SEED + 1), code_digits=0, printed_digits=0, style_digits=0,
        mnist_teachers=0, distil_from=None, **{name: _defaults()[name] for name in DISTIL_SETTINGS},
        finetune_epochs=0, finetune_style_digits=0, init_from=None,
    )


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """The learning rate for a 0-based epoch; both frameworks' schedulers call this."""
    if config.lr_schedule == "constant":
        return config.lr
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
    raise ValueError(f"unknown lr schedule {config.lr_schedule!r}")
