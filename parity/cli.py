"""Bits every CLI in scripts/ shares: one-line errors, framework set-up before its import, validators, and
flags built from a config dataclass's fields (scripts/train.py's from parity.config.TrainConfig)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing


class ArgumentParser(argparse.ArgumentParser):
    """Bad flags -> one clear line on stderr and exit code 2 (argparse's usage block stays in --help)."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def fail(message: str, code: int = 1):
    sys.stderr.write(f"error: {message}\n")
    sys.exit(code)


def quiet_frameworks() -> None:
    """Keep TensorFlow's C++ start-up chatter out of the output; set before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def select_accelerator(framework: str, accelerator: str) -> None:
    """Keras's backends pick their device at import time, so hide the GPU before the import for --accelerator cpu."""
    if framework == "keras" and accelerator == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        os.environ["JAX_PLATFORMS"] = "cpu"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


# ------------------------------------------------------------------- flags from a config dataclass
# Each field's metadata (parity.config.option) holds its help and CLI hints; see add_config_arguments.


def _cli_fields(config_class, names=None) -> list[dataclasses.Field]:
    fields = [f for f in dataclasses.fields(config_class) if f.metadata.get("cli", True)]
    return fields if names is None else [f for f in fields if f.name in names]


def flag_of(field: dataclasses.Field) -> str:
    """The field's flag: `batch_size` -> --batch-size, unless its metadata fixes another spelling."""
    return field.metadata.get("flag", "--" + field.name.replace("_", "-"))


def _value_type(annotation) -> type:
    """int -> int; `int | None` -> int."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 else annotation


def _shown(value) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def _default_note(field: dataclasses.Field, recipes: dict[str, dict]) -> str:
    """ (default: 10; best: 60): the field's default, then each recipe's value where it differs."""
    quiet = field.default is None or field.metadata.get("required") or "flag" in field.metadata  # --compile: off unless given
    notes = [] if quiet else [f"default: {_shown(field.default)}"]
    notes += [f"{name}: {_shown(changes[field.name])}" for name, changes in recipes.items()
              if field.name in changes and changes[field.name] != field.default]
    return f" ({'; '.join(notes)})" if notes else ""


def add_config_arguments(parser: argparse.ArgumentParser, config_class, recipes: dict[str, dict] | None = None, names=None):
    """One flag per CLI field of the dataclass `config_class` (or of those in `names`), in field order:
    type from the annotation (or metadata type=), choices/metavar/required from metadata, a bool as
    --x/--no-x (or its one fixed spelling). Help shows the class's default and where each recipe (a dict
    of overrides) differs. A flag not given parses to None, so it never overrides a recipe."""
    hints = typing.get_type_hints(config_class)
    for field in _cli_fields(config_class, names):
        meta, kind = field.metadata, _value_type(hints[field.name])
        options = {"dest": field.name, "default": None, "help": (meta["help"] + _default_note(field, recipes or {})).replace("%", "%%")}
        if kind is bool and "flag" in meta:
            options.update(action="store_const", const=not meta["flag"].startswith("--no-"))
        elif kind is bool:
            options.update(action=argparse.BooleanOptionalAction)
        else:
            options.update(type=meta.get("type", kind), choices=meta.get("choices"), metavar=meta.get("metavar"))
            options["required"] = bool(meta.get("required"))
        parser.add_argument(flag_of(field), **options)
    return parser


def config_values(args: argparse.Namespace, config_class, names=None) -> dict:
    """The config values the user gave on the command line (flags not given are left out)."""
    return {f.name: getattr(args, f.name) for f in _cli_fields(config_class, names) if getattr(args, f.name, None) is not None}


def config_flags(config_class, **values) -> list[str]:
    """The flags that give these config values (None: left out): the inverse of config_values, e.g. to call
    scripts/train.py in a subprocess. config_flags(TrainConfig, batch_size=100, progress=False)
    -> ['--batch-size', '100', '--no-progress']."""
    fields, hints = {f.name: f for f in _cli_fields(config_class)}, typing.get_type_hints(config_class)
    flags = []
    for name, value in values.items():
        if name not in fields:
            raise TypeError(f"{config_class.__name__} has no command-line field {name!r}")
        if value is None:
            continue
        field = fields[name]
        flag, is_bool = flag_of(field), _value_type(hints[name]) is bool
        if is_bool and "flag" in field.metadata:
            if value != (not flag.startswith("--no-")):
                raise ValueError(f"{flag} cannot set {name}={value}")
            flags.append(flag)
        elif is_bool:
            flags.append(f"--{'' if value else 'no-'}{flag[2:]}")
        else:
            flags += [flag, str(value)]
    return flags
