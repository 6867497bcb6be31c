"""parity.config and the flags scripts/train.py builds from TrainConfig's fields (parity.cli)."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from parity import cli
from parity.config import MAX_SEED, RECIPES, TrainConfig, finetune_config, learning_rate, recipe_config, teacher_config

CLI_FIELDS = [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)]


@pytest.fixture(scope="module")
def train_script(repo_root):
    """scripts/train.py as a module (its main() not run)."""
    spec = importlib.util.spec_from_file_location("train_script", repo_root / "scripts" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def full(tmp_path) -> tuple[list[str], TrainConfig]:
    """Every flag train.py takes, each away from its default, and the TrainConfig they mean."""
    model = tmp_path / "model.keras"
    model.write_bytes(b"")
    teacher = tmp_path / "teacher.ckpt"
    teacher.write_bytes(b"")
    argv = [
        "--framework", "keras", "--recipe", "best", "--epochs", "3", "--batch-size", "64", "--lr", "0.02",
        "--optimizer", "sgd", "--seed", "7", "--val-split", "100", "--limit-train", "900", "--no-augment",
        "--code-digits", "11", "--printed-digits", "12", "--style-digits", "13", "--mnist-repeats", "3", "--ema-decay", "0.99",
        "--distil-from", str(model), str(teacher), "--distil-weight", "0.3", "--distil-temperature", "4", "--distil-images", "all", "--lr-schedule", "constant", "--finetune-epochs", "2",
        "--finetune-lr", "0.005", "--finetune-batch-size", "32", "--finetune-style-digits", "14", "--init-from", str(model), "--precision", "float64",
        "--compile", "--accelerator", "cpu", "--devices", "2", "--num-nodes", "2", "--strategy", "ddp",
        "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"), "--no-progress", "--record-steps",
    ]
    config = TrainConfig(
        framework="keras", recipe="best", epochs=3, batch_size=64, lr=0.02, optimizer="sgd", seed=7, val_split=100,
        limit_train=900, augment=False, code_digits=11, printed_digits=12, style_digits=13, mnist_repeats=3, ema_decay=0.99,
        distil_from=(model, teacher), distil_weight=0.3, distil_temperature=4.0, distil_images="all", lr_schedule="constant", finetune_epochs=2,
        finetune_lr=0.005, finetune_batch_size=32, finetune_style_digits=14, init_from=model, precision="float64", compile=True,
        accelerator="cpu", devices=2, num_nodes=2, strategy="ddp", data_dir=tmp_path, out=tmp_path / "run",
        progress=False, record_steps=True,
    )
    return argv, config


def parse(train_script, argv) -> TrainConfig:
    return train_script.config_from_args(train_script.parse_args(argv))


def parse_without_out(train_script, argv) -> TrainConfig:
    """The config the flags give, but for --out (unset, train.py picks a timestamped folder)."""
    return parse(train_script, argv).replace(out=None)


def test_every_field_says_whether_and_how_it_is_a_flag():
    """A new field cannot be forgotten: it has help text for its flag, or says cli=False."""
    for field in dataclasses.fields(TrainConfig):
        assert field.metadata.get("cli") is False or field.metadata.get("help", "").strip(), field.name


def test_every_cli_field_has_its_flag_and_help(train_script, capsys):
    with pytest.raises(SystemExit) as exit_:
        train_script.parse_args(["--help"])
    assert exit_.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for field in CLI_FIELDS:
        assert f" {cli.flag_of(field)} " in shown or f" {cli.flag_of(field)}," in shown, field.name
        assert " ".join(field.metadata["help"].split()) in shown, field.name


def test_a_full_set_of_flags_gives_the_config_built_directly(train_script, full):
    argv, config = full
    # every flag counts: each value differs from the one its recipe would give (and the recipe from the default)
    recipes_own = recipe_config(config.recipe)
    assert [f.name for f in CLI_FIELDS if f.name != "recipe" and getattr(config, f.name) == getattr(recipes_own, f.name)] == []
    assert config.recipe != TrainConfig().recipe
    assert parse(train_script, argv) == config
    assert parse(train_script, cli.config_flags(TrainConfig, **{f.name: getattr(config, f.name) for f in CLI_FIELDS})) == config


def test_flags_not_given_keep_the_recipe(train_script):
    assert parse_without_out(train_script, ["--framework", "torch"]) == recipe_config("seed", framework="torch")
    assert parse_without_out(train_script, ["--framework", "keras", "--recipe", "best"]) == recipe_config("best", framework="keras")
    given = parse_without_out(train_script, ["--framework", "keras", "--recipe", "best", "--epochs", "2", "--no-augment"])
    assert given == recipe_config("best", framework="keras").replace(epochs=2, augment=False)


def test_help_notes_where_each_recipe_differs(train_script):
    helps = {action.dest: action.help for action in train_script.make_parser()._actions}
    for recipe, changes in RECIPES.items():
        for name, value in changes.items():
            shown = ("on" if value else "off") if isinstance(value, bool) else str(value)
            if value != getattr(TrainConfig(), name):
                assert f"{recipe}: {shown}" in helps[name], name
    assert f"default: {TrainConfig().epochs}" in helps["epochs"]


def test_config_flags_refuses_what_train_py_cannot_take():
    with pytest.raises(TypeError, match="no command-line field"):
        cli.config_flags(TrainConfig, epoch=3)
    with pytest.raises(ValueError, match="--no-progress"):
        cli.config_flags(TrainConfig, progress=True)
    assert cli.config_flags(TrainConfig, augment=False, lr=None, batch_size=5) == ["--no-augment", "--batch-size", "5"]


def test_unknown_recipe_is_refused():
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe_config("fastest")


@pytest.mark.parametrize("finetune_batch_size, batch_size, finetune_style", [(None, 64, 0), (32, 32, 7)])
def test_finetune_stage_is_mnist_and_its_style_digits_from_the_given_model(finetune_batch_size, batch_size, finetune_style):
    config = TrainConfig(
        framework="keras", epochs=9, batch_size=64, lr=0.01, seed=4, augment=True, code_digits=10, printed_digits=20,
        style_digits=30, finetune_epochs=3, finetune_lr=2e-4, finetune_batch_size=finetune_batch_size,
        finetune_style_digits=finetune_style, mnist_repeats=2, out=Path("runs/x"),
    )
    stage = finetune_config(config, "runs/x/pretrained/model.keras")
    assert (stage.epochs, stage.lr, stage.lr_schedule, stage.batch_size) == (3, 2e-4, "cosine", batch_size)
    assert stage.code_digits == stage.printed_digits == stage.finetune_epochs == 0  # no codes, and no third stage
    assert (stage.style_digits, stage.finetune_style_digits) == (finetune_style, 0)
    assert stage.mnist_repeats == 1  # the fine-tune is MNIST alone: copies would only lengthen its epochs
    assert stage.init_from == Path("runs/x/pretrained/model.keras")
    assert (stage.framework, stage.seed, stage.augment, stage.out) == ("keras", 4, True, Path("runs/x"))


def test_best_recipe_trains_mnist_only_teachers_and_learns_from_them_on_mnist_images():
    best = recipe_config("best", framework="torch")
    assert (best.mnist_teachers, best.distil_weight, best.distil_images, best.distil_from) == (2, 0.65, "mnist", None)
    # the recipe's teacher settings go with its teachers; teachers given replace the ones it trains
    alone = recipe_config("best", framework="torch", mnist_teachers=0)
    assert (alone.distil_weight, alone.distil_images) == (TrainConfig().distil_weight, "all")
    given = recipe_config("best", framework="torch", distil_from=["t.ckpt"])
    assert (given.mnist_teachers, given.distil_from, given.distil_weight, given.distil_images) == (0, (Path("t.ckpt"),), 0.65, "mnist")
    with pytest.raises(ValueError, match="not both"):
        recipe_config("best", framework="torch", distil_from=["t.ckpt"], mnist_teachers=1)
    with pytest.raises(ValueError, match="distil_weight is for distillation"):
        recipe_config("best", framework="torch", mnist_teachers=0, distil_weight=0.5)


def test_a_teacher_is_the_recipe_on_mnist_alone_with_its_own_seed():
    config = recipe_config("best", framework="keras", seed=7, finetune_epochs=2, finetune_style_digits=5, ema_decay=0.9,
                           init_from="start.keras", out=Path("runs/x"))
    first, second = teacher_config(config, 0), teacher_config(config, 1)
    assert (first.seed, second.seed) == (7, 8)
    assert teacher_config(config.replace(seed=MAX_SEED), 1).seed == 0  # still a valid seed
    for teacher in (first, second):
        assert teacher.code_digits == teacher.printed_digits == teacher.style_digits == 0  # MNIST's images alone
        assert (teacher.mnist_teachers, teacher.distil_from, teacher.finetune_epochs, teacher.init_from) == (0, None, 0, None)
        assert (teacher.distil_weight, teacher.distil_images) == (TrainConfig().distil_weight, "all")  # valid with no teachers
        # the rest of the recipe is the student's: epochs, schedule, augmentation, batch, the weights' average
        same = ("framework", "epochs", "batch_size", "lr", "lr_schedule", "augment", "val_split", "ema_decay", "precision")
        assert [getattr(teacher, name) for name in same] == [getattr(config, name) for name in same]


def test_learning_rate_schedules():
    constant = TrainConfig(lr=0.1, epochs=4)
    assert [learning_rate(constant, e) for e in range(4)] == [0.1] * 4
    cosine = constant.replace(lr_schedule="cosine")
    rates = [learning_rate(cosine, e) for e in range(4)]
    assert rates[0] == 0.1 and rates[2] == pytest.approx(0.05) and rates == sorted(rates, reverse=True) and rates[-1] > 0
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, cosine, got 'step'"):
        constant.replace(lr_schedule="step")
    broken = constant.replace()
    broken.lr_schedule = "step"  # assigned after the check, as code could
    with pytest.raises(ValueError, match="unknown lr schedule"):
        learning_rate(broken, 0)


def test_to_dict_writes_paths_as_text():
    values = TrainConfig(data_dir=Path("d"), out=Path("o")).to_dict()
    assert values["data_dir"] == "d" and values["out"] == "o" and values["init_from"] is None


# ------------------------------------------------------------------------- TrainConfig's own checks


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"seed": -1}, "seed must be 0 or more and at most 4,294,967,295"),
        ({"seed": MAX_SEED + 1}, "NumPy"),
        ({"val_split": 60_000}, "val_split must be 0 or more and at most 59,999"),
        ({"val_split": -5}, "val_split must be"),
        ({"lr": float("inf")}, "lr must be a finite positive number"),
        ({"lr": float("nan")}, "lr must be a finite positive number"),
        ({"lr": 0.0}, "lr must be a finite positive number"),
        ({"finetune_lr": -1e-3}, "finetune_lr must be a finite positive number"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"epochs": 2.0}, "epochs must be a positive integer"),  # a float, even a whole one, is not an epoch count
        ({"epochs": None}, "epochs must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"batch_size": True}, "batch_size must be a positive integer"),
        ({"limit_train": 0}, "limit_train must be a positive integer"),
        ({"finetune_batch_size": -1}, "finetune_batch_size must be"),
        ({"code_digits": 10**9}, "code_digits must be 0 or more and at most 100,000"),
        ({"mnist_repeats": 0}, "mnist_repeats must be"),
        ({"mnist_repeats": 21}, "mnist_repeats must be"),
        ({"ema_decay": -0.1}, "ema_decay must be a number from 0 to 0.99999, got -0.1"),
        ({"ema_decay": 1.0}, "ema_decay must be a number from 0 to 0.99999, got 1.0: the average would barely move"),
        ({"ema_decay": float("nan")}, "ema_decay must be a number from 0 to 0.99999"),
        ({"distil_from": "a.ckpt"}, "distil_from must be a list of model files, got 'a.ckpt'"),
        ({"distil_from": [3]}, "distil_from must be a list of model files, got [3]"),
        ({"distil_from": 3}, "distil_from must be a list of model files, got 3"),
        ({"distil_from": []}, "distil_from must name 1 to 16 model files, got 0"),
        ({"distil_weight": 0.5}, "distil_weight is for distillation: give distil_from (--distil-from) or mnist_teachers (--mnist-teachers) too"),
        ({"distil_temperature": 3.0}, "distil_temperature is for distillation"),
        ({"distil_images": "mnist"}, "distil_images is for distillation"),
        ({"distil_from": ["a.ckpt"], "distil_images": "codes"}, "distil_images must be one of all, mnist, got 'codes'"),
        ({"distil_from": ["a.ckpt"], "distil_weight": -0.1}, "distil_weight must be a number from 0 to 1, got -0.1"),
        ({"distil_from": ["a.ckpt"], "distil_temperature": float("inf")}, "distil_temperature must be a number from 0.1 to 100"),
        ({"framework": "jax"}, "framework must be one of torch, keras"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of adam, sgd"),
        ({"augment": "yes"}, "augment must be True or False"),
    ],
)
def test_train_config_refuses_what_the_flags_refuse(changes, message):
    """For a config made in code or read back from a run's config.json: one ValueError naming the field."""
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig(**changes)
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig().replace(**changes)


def test_train_config_takes_every_allowed_extreme():
    config = TrainConfig(seed=MAX_SEED, val_split=59_999, lr=1e-300, epochs=1_000, batch_size=1_000_000, limit_train=10**30,
                         finetune_epochs=0, finetune_batch_size=1, code_digits=100_000, printed_digits=0,
                         mnist_repeats=20, ema_decay=0.99999)
    assert config.seed == 2**32 - 1
    assert TrainConfig(seed=np.uint32(7)).seed == 7  # NumPy integers count as integers
    assert TrainConfig(**TrainConfig().to_dict()) == TrainConfig()  # what config.json holds reads back (paths as text)
    teachers = TrainConfig(distil_from=["a.ckpt", Path("b.keras")], distil_weight=1.0, distil_temperature=100.0,
                           distil_images="mnist")
    assert teachers.distil_from == (Path("a.ckpt"), Path("b.keras")) and teachers.to_dict()["distil_from"] == ["a.ckpt", "b.keras"]
    assert TrainConfig(**teachers.to_dict()) == teachers


def test_a_val_split_that_leaves_nothing_of_other_files_is_one_line(monkeypatch, tmp_path):
    """TrainConfig allows 59,999 of MNIST's 60,000; files with fewer images (only if the digests were not
    MNIST's) get the data layer's one-line error, not a traceback."""
    import parity.data.splits as splits
    from parity.data.mnist import MNIST, MNISTError

    tiny = MNIST(*(np.zeros(shape, np.uint8) for shape in ((3, 28, 28), (3,), (2, 28, 28), (2,))))
    monkeypatch.setattr(splits, "load_mnist", lambda data_dir: tiny)
    with pytest.raises(MNISTError, match="--val-split 3 leaves none of the 3 training images"):
        splits.make_splits(TrainConfig(val_split=3, data_dir=tmp_path))
    assert len(splits.make_splits(TrainConfig(val_split=2)).train_y) == 1


def test_the_recipes_pass_their_own_checks():
    for recipe in RECIPES:
        recipe_config(recipe)


@pytest.mark.parametrize("seed", [0, 1, 2**31 - 1, 2**31, MAX_SEED])
def test_the_projects_seeded_draws_take_every_allowed_seed(seed):
    """The seed range's ends in the project's own draws: initial weights, batch order and augmentation are
    made, reproducible, and differ from a neighbouring seed's."""
    from parity.data.augment import augmented_epoch
    from parity.data.batches import epoch_order
    from parity.weights.init import initial_weights

    def kernels(seed):
        return [layer["kernel"] for layer in initial_weights(seed).values()]

    weights, again, other = kernels(seed), kernels(seed), kernels(seed - 1 if seed else 1)
    assert all(np.array_equal(w, a) and np.isfinite(w).all() for w, a in zip(weights, again))
    assert not any(np.array_equal(w, o) for w, o in zip(weights, other))
    order = epoch_order(seed, 999, 1000)
    assert sorted(order) == list(range(1000)) and np.array_equal(order, epoch_order(seed, 999, 1000))
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    augmented = augmented_epoch(images, seed, 3)
    assert augmented.shape == (4, 32, 32) and np.isfinite(augmented).all()
    assert np.array_equal(augmented, augmented_epoch(images, seed, 3))


def test_the_seed_limit_is_the_frameworks_own():
    """MAX_SEED is the largest seed NumPy's legacy seeding takes, which Lightning's seed_everything and
    keras.utils.set_random_seed both call: one more is refused by NumPy itself."""
    np.random.seed(MAX_SEED)
    with pytest.raises(ValueError):
        np.random.seed(MAX_SEED + 1)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e400", "0", "-1", "ten", "0x10", ""])
def test_positive_float_flags_refuse_non_finite_and_non_positive(text):
    with pytest.raises(cli.argparse.ArgumentTypeError, match="finite positive number"):
        cli.positive_float(text)


@pytest.mark.parametrize("text", ["nan", "inf", "1.5", "1e3", "-1", "0", "ten", "9" * 5000])
def test_positive_int_flags_refuse_what_is_not_a_count(text):
    with pytest.raises(cli.argparse.ArgumentTypeError, match="positive integer"):
        cli.positive_int(text)


def test_a_config_that_refuses_the_flags_together_is_a_bad_flag(capsys):
    """What no single flag's type can tell, the config's own check does, through the parser: exit 2, one line."""

    @dataclasses.dataclass
    class Pair:
        low: int = cli_option(0)
        high: int = cli_option(1)

        def __post_init__(self):
            if self.low >= self.high:
                raise ValueError(f"low ({self.low}) must be below high ({self.high})")

    parser = cli.add_config_arguments(cli.ArgumentParser(prog="pair"), Pair)
    assert parser.parse_args(["--low", "3", "--high", "4"]).low == 3
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--low", "5"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "pair: error: low (5) must be below high (1) (see --help)\n"


def cli_option(default):
    return dataclasses.field(default=default, metadata={"help": "a number"})
