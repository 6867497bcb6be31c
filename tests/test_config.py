"""parity.config and the flags scripts/train.py builds from TrainConfig's fields (parity.cli)."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from parity import cli
from parity.config import RECIPES, TrainConfig, finetune_config, learning_rate, recipe_config

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
    argv = [
        "--framework", "keras", "--recipe", "best", "--epochs", "3", "--batch-size", "64", "--lr", "0.02",
        "--optimizer", "sgd", "--seed", "7", "--val-split", "100", "--limit-train", "900", "--no-augment",
        "--code-digits", "11", "--printed-digits", "12", "--lr-schedule", "constant", "--finetune-epochs", "2",
        "--finetune-lr", "0.005", "--finetune-batch-size", "32", "--init-from", str(model), "--precision", "float64",
        "--compile", "--accelerator", "cpu", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"),
        "--no-progress", "--record-steps",
    ]
    config = TrainConfig(
        framework="keras", recipe="best", epochs=3, batch_size=64, lr=0.02, optimizer="sgd", seed=7, val_split=100,
        limit_train=900, augment=False, code_digits=11, printed_digits=12, lr_schedule="constant", finetune_epochs=2,
        finetune_lr=0.005, finetune_batch_size=32, init_from=model, precision="float64", compile=True,
        accelerator="cpu", data_dir=tmp_path, out=tmp_path / "run", progress=False, record_steps=True,
    )
    return argv, config


def parse(train_script, argv) -> TrainConfig:
    return train_script.config_from_args(train_script.parse_args(argv))


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
    assert parse(train_script, ["--framework", "torch"]) == recipe_config("seed", framework="torch")
    assert parse(train_script, ["--framework", "keras", "--recipe", "best"]) == recipe_config("best", framework="keras")
    given = parse(train_script, ["--framework", "keras", "--recipe", "best", "--epochs", "2", "--no-augment"])
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


@pytest.mark.parametrize("finetune_batch_size, batch_size", [(None, 64), (32, 32)])
def test_finetune_stage_is_mnist_only_from_the_given_model(finetune_batch_size, batch_size):
    config = TrainConfig(
        framework="keras", epochs=9, batch_size=64, lr=0.01, seed=4, augment=True, code_digits=10, printed_digits=20,
        finetune_epochs=3, finetune_lr=2e-4, finetune_batch_size=finetune_batch_size, out=Path("runs/x"),
    )
    stage = finetune_config(config, "runs/x/pretrained/model.keras")
    assert (stage.epochs, stage.lr, stage.lr_schedule, stage.batch_size) == (3, 2e-4, "cosine", batch_size)
    assert stage.code_digits == stage.printed_digits == stage.finetune_epochs == 0  # MNIST alone, and no third stage
    assert stage.init_from == Path("runs/x/pretrained/model.keras")
    assert (stage.framework, stage.seed, stage.augment, stage.out) == ("keras", 4, True, Path("runs/x"))


def test_learning_rate_schedules():
    constant = TrainConfig(lr=0.1, epochs=4)
    assert [learning_rate(constant, e) for e in range(4)] == [0.1] * 4
    cosine = constant.replace(lr_schedule="cosine")
    rates = [learning_rate(cosine, e) for e in range(4)]
    assert rates[0] == 0.1 and rates[2] == pytest.approx(0.05) and rates == sorted(rates, reverse=True) and rates[-1] > 0
    with pytest.raises(ValueError, match="unknown lr schedule"):
        learning_rate(constant.replace(lr_schedule="step"), 0)


def test_to_dict_writes_paths_as_text():
    values = TrainConfig(data_dir=Path("d"), out=Path("o")).to_dict()
    assert values["data_dir"] == "d" and values["out"] == "o" and values["init_from"] is None
