#!/usr/bin/env python
"""Train LeNet-5 in either framework with the same flags.

    python scripts/train.py --framework torch
    python scripts/train.py --framework keras --epochs 3 --limit-train 10000 --out runs/quick
    python scripts/train.py --resume runs/quick     # continue an interrupted run where it stopped

Writes into --out (default runs/<framework>-<timestamp>/): config.json, metrics.json after every epoch
(status running, then done, interrupted or failed), checkpoints/ (the last finished epoch, resumable)
and, when done, the model (Lightning model.ckpt / Keras model.keras); with --mnist-teachers (best: 2), the
teachers first, each in teachers/seed-S/ laid out the same way. Every flag but --framework
defaults to the recipe's value: the defaults shown are the seed recipe's, "best: ..." where --recipe best
differs (parity/config.py).

Data-parallel: --devices N [--num-nodes M] trains on N devices (per machine) with Lightning's DDP or Keras's
MirroredStrategy (TensorFlow) / DataParallel (JAX, KERAS_BACKEND=jax); --batch-size stays the global batch.
On several machines, start this command on each with torchrun or srun (Lightning), or with TF_CONFIG or
JAX's coordinator set (Keras): README, "Training on several devices". Only rank 0 writes the run folder.

Exit codes: 0 done; 1 a bad file or a failed run (e.g. a loss that is not finite); 2 bad flags;
130 / 143 interrupted by Ctrl-C / SIGTERM (resume with --resume OUT).
"""

from __future__ import annotations

import datetime as dt
import errno
import sys
from pathlib import Path

from parity import cli
from parity.config import DISTIL_SETTINGS, RECIPES, TrainConfig, recipe_config

DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def make_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    cli.add_config_arguments(parser, TrainConfig, RECIPES, build=lambda given: recipe_config(**given))  # one flag per TrainConfig field
    for action in parser._actions:  # --framework is required, except with --resume (the run knows it)
        if action.dest == "framework":
            action.required = False
    runs = parser.add_argument_group("run folders")
    exclusive = runs.add_mutually_exclusive_group()
    exclusive.add_argument("--resume", type=Path, metavar="RUN_DIR",
                           help="continue the run in RUN_DIR from its last finished epoch, with its own config (no other flags but --[no-]progress)")
    exclusive.add_argument("--overwrite", action="store_true", help="replace the run that --out holds (refused without it)")
    return parser


def parse_args(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.resume is not None:
        # The run's own config, but how it is shown (--progress/--no-progress) is this session's choice.
        given = [cli.flag_of(f) for f in cli._cli_fields(TrainConfig) if f.name != "progress" and getattr(args, f.name) is not None]
        if given:
            parser.error(f"--resume continues with the run's own config: drop {', '.join(given)}")
        if not args.resume.is_dir():
            parser.error(f"--resume {args.resume}: no such folder")
        return args
    if args.framework is None:
        parser.error("the following arguments are required: --framework (or --resume RUN_DIR)")
    if args.init_from is not None and not args.init_from.is_file():
        parser.error(f"--init-from {args.init_from}: no such file")
    for teacher in args.distil_from or ():
        if not teacher.is_file():
            parser.error(f"--distil-from {teacher}: no such file")
    mnist_teachers = args.mnist_teachers if args.mnist_teachers is not None else RECIPES[args.recipe or "seed"].get("mnist_teachers", 0)
    for flag in DISTIL_SETTINGS:  # also at their defaults, which TrainConfig cannot tell
        if args.distil_from is None and not mnist_teachers and getattr(args, flag) is not None:
            parser.error(f"{flag} is for distillation: give distil_from (--distil-from) or mnist_teachers (--mnist-teachers) too")
    if args.data_dir is not None and not args.data_dir.is_dir():
        parser.error(f"--data-dir {args.data_dir} is not a folder")
    return args


def config_from_args(args) -> TrainConfig:
    """The recipe's config with the flags given on top (a flag not given keeps the recipe's value)."""
    config = recipe_config(**cli.config_values(args, TrainConfig))
    if config.out is None:
        config = config.replace(out=Path("runs") / f"{config.framework}-{dt.datetime.now():%Y%m%d-%H%M%S}")
    return config


def run(args) -> list:
    """Claim the run folder, then train every stage of the recipe (or continue them)."""
    from parity.data.mnist import require_mnist
    from parity.runs.folder import claim
    from parity.runs.ranks import is_rank_zero
    from parity.runs.stages import saved_config, train_stages

    from parity.weights.reading import read_weights

    config = saved_config(args.resume) if args.resume else config_from_args(args)
    if args.resume and args.progress is not None:
        config = config.replace(progress=args.progress)
    # Fail fast and leave nothing behind: the models to start from and to learn from and the data are checked before the run
    # folder is claimed and a framework is imported.
    if config.init_from is not None and not args.resume:
        read_weights(config.init_from)
    for teacher in config.distil_from or ():  # read again by the run, also when it resumes
        read_weights(teacher)
    require_mnist(config.data_dir)
    if config.framework == "keras":
        from lenet_keras.devices import prepare

        prepare(config)  # device counts, float64 and TF_CONFIG for the backend: checked before it starts or the folder is claimed
    if is_rank_zero():  # the other ranks of a data-parallel run write nothing (parity.runs.ranks)
        claim(config.out, overwrite=args.overwrite, resume=args.resume is not None)
        if config.data_parallel and not args.resume and args.out is None:
            # Lightning starts ranks 1..N-1 by re-running this command: they must find the same run folder.
            sys.argv += ["--out", str(config.out)]
    cli.quiet_frameworks()
    cli.select_accelerator(config.framework, config.accelerator)
    if config.framework == "torch":
        from lenet_torch.train import train
    else:
        cli.import_tensorflow_quietly()
        from lenet_keras.train import train
    return train_stages(config, train, resume=args.resume is not None)


def main(argv=None) -> int:
    args = parse_args(argv)
    from parity.runs.ranks import process_rank

    if process_rank():
        return other_rank(args)
    return rank_zero(args)


def other_rank(args) -> int:
    """Ranks 1..N-1 of a data-parallel run: train their part, write and print nothing (rank 0 tells the
    user); a stop ends in the same exit code, an error in one line naming the rank."""
    from parity.runs.ranks import process_rank
    from parity.runs.stops import Diverged, Interrupted, interruptible

    try:
        with interruptible():
            run(args)
    except Interrupted as stop:
        return stop.exit_code
    except Diverged:
        return 1
    except Exception as error:  # e.g. rank 0 stopped and the collective it left lost its peer
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        cli.fail(f"rank {process_rank()}: {first_line}")
    return 0


def rank_zero(args) -> int:
    from parity.data.mnist import MNISTError
    from parity.runs.folder import RunFolderError
    from parity.runs.stops import Diverged, Interrupted, interruptible
    from parity.weights.reading import WeightFileError

    from lenet_keras.devices import DeviceSetupError  # imports no framework

    out = args.resume or args.out
    try:
        with interruptible():
            stages = run(args)
    except Interrupted as stop:
        where = f"; continue with: python scripts/train.py --resume {out}" if out else ""
        sys.stderr.write(f"error: {stop}: metrics.json says interrupted, the last finished epoch is kept{where}\n")
        return stop.exit_code
    except Diverged as stop:
        cli.fail(f"training stopped: {stop}; no model was saved and metrics.json says failed (try a lower --lr)")
    except (RunFolderError, MNISTError, WeightFileError) as error:
        cli.fail(str(error))
    except DeviceSetupError as error:  # Keras: devices or a cluster this machine cannot give (lenet_keras.devices)
        cli.fail(str(error), code=2)
    except OSError as error:
        if error.errno in DISK_ERRORS:  # a full disk or a folder turned read-only mid-run
            cli.fail(f"{error.filename or 'writing the run'}: {error.strerror}")
        raise
    except RuntimeError as error:  # e.g. --accelerator gpu on a machine without one
        if "gpu" in str(error).lower() or "cuda" in str(error).lower():
            cli.fail(str(error).splitlines()[0], code=2)
        raise
    for label, metrics in stages:
        last = metrics.history[-1] if metrics.history else None
        validation = (f"validation accuracy {last.val_accuracy:.4f} ({metrics.config['val_split']:,} images), "
                      if last is not None and last.val_accuracy is not None else "")  # what choices are made on
        print(
            f"{metrics.framework}: {label}{validation}test accuracy {metrics.test_accuracy:.4f}, test loss {metrics.test_loss:.4f}, "
            f"{metrics.epochs} epochs, {metrics.seconds_per_epoch:.2f} s/epoch on {metrics.device}; saved in {metrics.config['out']}/"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
