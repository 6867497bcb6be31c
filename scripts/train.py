#!/usr/bin/env python
"""Train LeNet-5 in either framework with the same flags.

    python scripts/train.py --framework torch
    python scripts/train.py --framework keras --epochs 3 --limit-train 10000 --out runs/quick

Writes metrics.json and the model (Lightning model.ckpt / Keras model.keras) into --out
(default runs/<framework>-<timestamp>/). Every flag but --framework defaults to the recipe's value:
the defaults shown are the seed recipe's, "best: ..." where --recipe best differs (parity/config.py).
"""

from __future__ import annotations

import sys

from parity import cli
from parity.config import RECIPES, TrainConfig, recipe_config


def make_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    return cli.add_config_arguments(parser, TrainConfig, RECIPES)  # one flag per TrainConfig field


def parse_args(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.init_from is not None and not args.init_from.is_file():
        parser.error(f"--init-from {args.init_from}: no such file")
    if args.data_dir is not None and not args.data_dir.is_dir():
        parser.error(f"--data-dir {args.data_dir} is not a folder")
    return args


def config_from_args(args) -> TrainConfig:
    """The recipe's config with the flags given on top (a flag not given keeps the recipe's value)."""
    return recipe_config(**cli.config_values(args, TrainConfig))


def main(argv=None) -> int:
    config = config_from_args(parse_args(argv))
    cli.quiet_frameworks()
    cli.select_accelerator(config.framework, config.accelerator)
    from parity.data.mnist import MNISTError
    from parity.runs.stages import train_stages

    try:
        if config.framework == "torch":
            from lenet_torch.train import train
        else:
            from lenet_keras.train import train
        stages = train_stages(config, train)
    except MNISTError as error:
        cli.fail(str(error))
    except RuntimeError as error:  # e.g. --accelerator gpu on a machine without one
        if "gpu" in str(error).lower() or "cuda" in str(error).lower():
            cli.fail(str(error).splitlines()[0], code=2)
        raise
    labels = ("pretrained: ", "fine-tuned: ") if len(stages) > 1 else ("",)
    for label, metrics in zip(labels, stages):
        print(
            f"{metrics.framework}: {label}test accuracy {metrics.test_accuracy:.4f}, test loss {metrics.test_loss:.4f}, "
            f"{metrics.epochs} epochs, {metrics.seconds_per_epoch:.2f} s/epoch on {metrics.device}; saved in {metrics.config['out']}/"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
