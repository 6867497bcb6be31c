"""Bits every CLI in scripts/ shares: one-line errors, framework set-up before its import, validators, and
flags built from a config dataclass's fields (scripts/train.py's from parity.config.TrainConfig)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
import os
import sys
import typing
from pathlib import Path


class ArgumentParser(argparse.ArgumentParser):
    """Bad flags -> one clear line on stderr and exit code 2 (argparse's usage block stays in --help).

    `add_check(check)`: `check(args)` runs after parsing; a ValueError it raises is a bad flag too, so
    what only the flags together can tell (e.g. a whole config's own validation) is refused the same way."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._checks = []

    def add_check(self, check) -> None:
        self._checks.append(check)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        for check in self._checks:
            try:
                check(namespace)
            except ValueError as error:
                self.error(str(error))
        return namespace, extras

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def fail(message: str, code: int = 1):
    sys.stderr.write(f"error: {message}\n")
    sys.exit(code)


def run(main: typing.Callable[[], int]) -> typing.NoReturn:
    """A script's entry: exit with main()'s status. Ctrl-C ends in "interrupted" and 130 (a reader pool's
    processes ignore it; leaving main's `with` has ended them); a reader of the output that left (`| head`)
    ends it quietly, with 1 and without a second error as Python exits."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def quiet_frameworks() -> None:
    """Keep TensorFlow's C++ start-up chatter out of the output; set before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (for Keras on its TensorFlow backend) without its start-up notes. TensorFlow logs
    them before absl's logging is set up, where TF_CPP_MIN_LOG_LEVEL cannot hold them back, so the import
    runs with file descriptor 2 on /dev/null. Python-level errors still surface, as the exception."""
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow" or "tensorflow" in sys.modules:
        return
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") < "2":  # the user asked to see them
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            except ImportError:
                pass  # Keras reports a missing backend its own way
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def select_accelerator(framework: str, accelerator: str) -> None:
    """Keras's backends pick their device at import time, so hide the GPU before the import for --accelerator cpu."""
    if framework == "keras" and accelerator == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        os.environ["JAX_PLATFORMS"] = "cpu"


@dataclasses.dataclass(frozen=True)
class Number:
    """An int or float flag's type and allowed range, one object for both uses: argparse's type= (text ->
    value, or ArgumentTypeError: exit 2 with one line) and a config's own check of a value given in code
    (`check`: ValueError). Floats must be finite; `low`/`high` are inclusive, `above` an exclusive floor."""

    kind: type  # int or float
    low: float | None = None
    high: float | None = None
    above: float | None = None
    why: str = ""  # why the upper bound is what it is, shown with a value above it

    @property
    def __name__(self) -> str:  # argparse names a type by it in some messages
        return self.kind.__name__

    def describe(self) -> str:
        if self.kind is float:
            if self.low is not None and self.high is not None:
                return f"a number from {self.low:g} to {self.high:g}"
            return "a finite " + ("positive number" if self.above == 0 else "number")
        if self.low == 1:
            return "a positive integer" + (f" no larger than {self.high:,}" if self.high is not None else "")
        if self.low == 0:
            return "0 or more" + (f" and at most {self.high:,}" if self.high is not None else "")
        return f"an integer from {self.low:,} to {self.high:,}"

    def _refusal(self, shown: str, value=None) -> str:
        too_large = self.high is not None and value is not None and value > self.high
        return f"must be {self.describe()}, got {shown}" + (f": {self.why}" if too_large and self.why else "")

    def check(self, value, name: str = "value"):
        """`value` if it is of the kind and in range, else ValueError naming `name`."""
        integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        real = integral or (isinstance(value, numbers.Real) and not isinstance(value, bool))
        if not (integral if self.kind is int else real):
            raise ValueError(f"{name} {self._refusal(repr(value))}")
        if not self._fits(value):
            raise ValueError(f"{name} {self._refusal(repr(value), value)}")
        return value

    def _fits(self, value) -> bool:
        return ((isinstance(value, numbers.Integral) or math.isfinite(value))  # math.isfinite(10**400) overflows
                and (self.low is None or value >= self.low) and (self.high is None or value <= self.high)
                and (self.above is None or value > self.above))

    def __call__(self, text: str):
        try:
            value = self.kind(text)
        except (ValueError, OverflowError):  # "ten", "1e3" for an int, a 5,000-digit number
            value = None
        if value is None:
            raise argparse.ArgumentTypeError(f"invalid {'integer' if self.kind is int else 'number'} {text!r}: must be {self.describe()}")
        if not self._fits(value):
            raise argparse.ArgumentTypeError(self._refusal(text, value))
        return value


positive_int = Number(int, low=1)
non_negative_int = Number(int, low=0)
positive_float = Number(float, above=0)


def existing_folder(text: str) -> Path:
    """A flag naming a folder that must exist (its content is checked where it is read)."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder" + ("" if path.exists() else ": it does not exist"))
    return path


def model_file(suffixes: tuple[str, ...]):
    """A `type=` for a flag naming a model file (--model): the Path if its suffix is one of `suffixes` and it
    is an existing regular file, else one line saying which of the three it is not (exit 2). The file's
    content is checked where it is read."""

    def check(text: str) -> Path:
        path = Path(text)
        if path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{text}: unknown model format {path.suffix or '(no suffix)'!r}; "
                                             f"use one of {', '.join(suffixes)}")
        if not path.exists():
            raise argparse.ArgumentTypeError(f"{text}: no such file")
        if not path.is_file():
            raise argparse.ArgumentTypeError(f"{text}: not a regular file")
        return path

    check.__name__ = "model file"  # argparse names a type by it in some messages
    return check


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or taskset may narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def single_threaded_numpy() -> None:
    """One BLAS/OpenMP thread per process, unless the user chose otherwise: set before NumPy is imported, as
    OpenBLAS reads it once, when it loads. For CLIs that run several processes (predict.py, codes.py read
    images in one per core); each model framework's own threads are set explicitly where it is loaded."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def output_folder(path: Path, flag: str = "--out") -> Path:
    """`path` made (with its parents) and writable, else one line and exit 1: checked before any work
    starts, so a long run never fails at its very end for want of a place to write its results."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        fail(f"{flag} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        fail(f"{flag} {path}: cannot create the folder ({error.strerror or error})")
    if not os.access(path, os.W_OK | os.X_OK):
        fail(f"{flag} {path}: the folder is not writable")
    return path


# ------------------------------------------------------------------- flags from a config dataclass
# Each field's metadata (parity.config.option) holds its help and CLI hints; see add_config_arguments.


def unwritable_reason(path: Path) -> str | None:
    """Why a file cannot be written at `path`, told before any framework is loaded, or None: a file is really
    created in its folder and removed (permission bits do not stop root, a read-only mount stops everyone)."""
    import tempfile

    folder = path.parent
    if not folder.is_dir():
        return f"its folder {folder} does not exist" if not folder.exists() else f"{folder} is not a folder"
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".probe")
    except OSError as error:
        return f"{error.strerror or error} (folder {folder})"
    os.close(fd)
    os.unlink(probe)
    return None


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


def add_config_arguments(parser: argparse.ArgumentParser, config_class, recipes: dict[str, dict] | None = None, names=None,
                         build=None):
    """One flag per CLI field of the dataclass `config_class` (or of those in `names`), in field order:
    type from the annotation (or metadata type=), choices/metavar/required from metadata, a bool as
    --x/--no-x (or its one fixed spelling). Help shows the class's default and where each recipe (a dict
    of overrides) differs. A flag not given parses to None, so it never overrides a recipe.
    On a parity.cli.ArgumentParser, the config the flags make is also built once after parsing, so its
    own validation (a ValueError) ends as a bad flag too, never as a traceback later."""
    hints = typing.get_type_hints(config_class)
    for field in _cli_fields(config_class, names):
        meta, kind = field.metadata, _value_type(hints[field.name])
        options = {"dest": field.name, "default": None, "help": (meta["help"] + _default_note(field, recipes or {})).replace("%", "%%")}
        if kind is bool and "flag" in meta:
            options.update(action="store_const", const=not meta["flag"].startswith("--no-"))
        elif kind is bool:
            options.update(action=argparse.BooleanOptionalAction)
        else:
            if "nargs" in meta:  # a list of values, e.g. tuple[Path, ...]: each value is of the element type
                kind = typing.get_args(kind)[0]
                options["nargs"] = meta["nargs"]
            options.update(type=meta.get("type", kind), choices=meta.get("choices"), metavar=meta.get("metavar"))
            options["required"] = bool(meta.get("required"))
        parser.add_argument(flag_of(field), **options)
    if isinstance(parser, ArgumentParser):
        build = build or (lambda given: _build(config_class, recipes or {}, given))
        parser.add_check(lambda args: build(config_values(args, config_class, names)))
    return parser


def _build(config_class, recipes: dict[str, dict], given: dict):
    """config_class(...) from a recipe's overrides and the values given (the recipe: given, else the field's default)."""
    default_recipe = next((f.default for f in dataclasses.fields(config_class) if f.name == "recipe"), None)
    return config_class(**{**recipes.get(given.get("recipe", default_recipe), {}), **given})


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
        elif "nargs" in field.metadata:
            flags += [flag, *map(str, value)]
        else:
            flags += [flag, str(value)]
    return flags
