#!/usr/bin/env python
"""Train LeNet-5 in either framework with the same flags.

    python scripts/train.py --framework torch
    python scripts/train.py --framework keras --epochs 3 --limit-train 10000 --out runs/quick

Writes metrics.json and the model (Lightning model.ckpt / Keras model.keras) into --out
(default runs/<framework>-<timestamp>/).
"""

from __future__ import annotations

import sys
from pathlib import Path

from parity import cli
from parity.config import ACCELERATORS, FRAMEWORKS, OPTIMIZERS, PRECISIONS, RECIPES, recipe_config


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", required=True, choices=FRAMEWORKS)
    parser.add_argument("--recipe", default="seed", choices=list(RECIPES), help="seed: the original Keras recipe (default)")
    parser.add_argument("--epochs", type=cli.positive_int, help="default: the recipe's (seed: 10)")
    parser.add_argument("--batch-size", type=cli.positive_int, help="default 200")
    parser.add_argument("--lr", type=cli.positive_float, help="default 1e-3")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help="default adam (Keras's update rule in both)")
    parser.add_argument("--seed", type=int, help="initial weights and batch order; default 0")
    parser.add_argument("--data-dir", type=Path, help="folder with the MNIST IDX files (else $LENET_DATA_DIR, else fetched into data/)")
    parser.add_argument("--out", type=Path, help="run folder (default runs/<framework>-<timestamp>/)")
    parser.add_argument("--accelerator", default="auto", choices=ACCELERATORS)
    parser.add_argument("--precision", choices=PRECISIONS, help="default float32")
    parser.add_argument("--limit-train", type=cli.positive_int, help="train on the first N training images")
    parser.add_argument("--val-split", type=cli.non_negative_int, help="validation images held out of the 60,000 (default 5000; 0: none)")
    parser.add_argument("--augment", action=cli.argparse.BooleanOptionalAction, help="fresh random affine/stroke changes each epoch (best: on)")
    parser.add_argument("--code-digits", type=cli.non_negative_int, help="mix in the digits of N generated training codes (best: 20000)")
    parser.add_argument("--printed-digits", type=cli.non_negative_int, help="mix in N digits printed in training fonts (best: 20000)")
    parser.add_argument("--finetune-epochs", type=cli.non_negative_int, help="then fine-tune on MNIST alone for N epochs (best: 5; 0: no)")
    parser.add_argument("--init-from", type=Path, help="start from this model's weights (.ckpt/.pt/.keras/.h5), e.g. to fine-tune it")
    parser.add_argument("--compile", action="store_true", help="torch only: torch.compile the model (faster epochs, slower start)")
    parser.add_argument("--record-steps", action="store_true", help="keep every step's loss in metrics.json (training parity)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.init_from is not None and not args.init_from.is_file():
        parser.error(f"--init-from {args.init_from}: no such file")
    if args.data_dir is not None and not args.data_dir.is_dir():
        parser.error(f"--data-dir {args.data_dir} is not a folder")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    config = recipe_config(
        args.recipe,
        framework=args.framework,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        seed=args.seed,
        data_dir=args.data_dir,
        out=args.out,
        accelerator=args.accelerator,
        precision=args.precision,
        limit_train=args.limit_train,
        val_split=args.val_split,
        progress=not args.no_progress,
        compile=args.compile or None,
        augment=args.augment,
        code_digits=args.code_digits,
        printed_digits=args.printed_digits,
        finetune_epochs=args.finetune_epochs,
        init_from=args.init_from,
        record_steps=args.record_steps or None,
    )
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
