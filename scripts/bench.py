#!/usr/bin/env python
"""Benchmark training and inference speed of both frameworks on the same data and batch size.

    python scripts/bench.py --epochs 3 --rounds 2 --out runs/bench

Runners, each in its own process, alternating over --rounds so machine noise hits all alike:
  torch_loop           a minimal hand-written PyTorch loop (torch.optim.Adam; same model and memory layout)
  lightning            the project's real Lightning path (lenet_torch.train)
  keras                the project's real Keras path (lenet_keras.train)
  torch_loop_compiled  the loop with torch.compile on the model
  lightning_compiled   the Lightning path with --compile (model and optimizer update compiled)
Training: one 60,000-image MNIST epoch at a time; the first epoch of each process is warm-up, the rest
are timed; the table shows the median. Inference: images/second over the 10,000 test images.
Writes bench.json (per runner figures, ratios, machine) into --out.

    python scripts/bench.py --profile      # where a torch training step's time goes, eager and compiled

--profile runs torch.profiler over 50 steps of the loop (model, memory layout and Adam as above) and
prints each kind of operation's share of the step; it writes profile.json instead of bench.json.

    python scripts/bench.py --inference --rounds 5 --out runs/bench    # reading speed, end to end

--inference times the project's reading CLIs as a user runs them, each call its own process, wall clock:
  predict   scripts/predict.py --model M FOLDER > /dev/null on a folder of --images digit PNGs, per runtime
            (torch .ckpt, Keras .keras, onnxruntime .onnx), and on its first image alone
  codes     scripts/codes.py solve --model M CODES... > /dev/null on --codes generated 4-digit code PNGs, and on one
  normalizer  parity.codes.normalize.to_mnist alone in one process over the same decoded digit images
A rate is the marginal one, (t_N - t_1) / (N - 1) per round, median over --rounds (runtimes alternate within a
round); start-up is the 1-image run's seconds. No trained model is needed: the models hold the seeded initial
weights (parity.weights.init), the .onnx is made from the .ckpt by scripts/export.py. The inputs are made
once, deterministically, and kept in --out/inputs for reruns. The figures go into bench.json's "inference"
section (the training figures beside it are kept, and kept by a training run too). A runtime whose model a CLI
refuses by name (exit code 2: it does not read that format) is reported as not read, the rest still timed.
--predict-args passes flags on to predict.py (e.g. its worker count), and bench.json records them.

    python scripts/bench.py --devices 2 --epochs 2 --rounds 2 --out runs/bench    # data-parallel overhead

--devices N times scripts/train.py as a user runs it (--val-split 0, one warm-up epoch more than --epochs) on 1
and on N devices, for each path: Lightning (DDP, gloo on a CPU), Keras on TensorFlow (MirroredStrategy) and
Keras on JAX (DataParallel); each path's median seconds per timed epoch, median over --rounds, and the ratio
N / 1 go into bench.json's "data_parallel" section. On a CPU the N devices share its cores: the ratio is the
cost of splitting each batch and summing gradients, not a speed-up.

Exit codes: 0 done; 1 a bad --out or data folder, an unreadable bench.json, a runner or timed command that
failed; 2 bad flags; 130 / 143 Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from parity import cli
from parity.bench.devices import DATA_PARALLEL_PATHS, bench_data_parallel
from parity.bench.inference import RUNTIMES, bench_inference, time_normalizer, write_model
from parity.bench.training import RUNNERS, bench_training, load_splits, op_shares, time_inference, write_profile
from parity.config import BATCH_SIZE, DEVICES, EPOCHS

INFERENCE_IMAGES = cli.Number(int, low=2, high=100_000, why="the benchmark needs a 1-image run and an N-image run; more is only a longer wait")
INFERENCE_CODES = cli.Number(int, low=2, high=10_000, why="codes.py solve takes the files by name, and that many fill a command line")

# Each process trains one warm-up epoch more than it times, within what a run may have.
TIMED_EPOCHS = cli.Number(int, low=1, high=EPOCHS.high - 1, why=f"with its warm-up epoch a process trains at most {EPOCHS.high:,}")


def parse_args(argv=None):
    parser = cli.ArgumentParser(description=__doc__, formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=TIMED_EPOCHS, default=3, help="timed epochs per process, after one warm-up (default 3)")
    parser.add_argument("--rounds", type=cli.positive_int, default=2, help="processes per runner, alternating (default 2)")
    parser.add_argument("--batch-size", type=BATCH_SIZE, default=200)
    parser.add_argument("--runners", nargs="+", default=list(RUNNERS), choices=RUNNERS)
    parser.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "gpu"))
    parser.add_argument("--data-dir", type=cli.existing_folder)
    parser.add_argument("--limit-train", type=cli.positive_int, help="fewer training images (smoke runs; figures then not comparable)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--profile", action="store_true", help="profile a torch training step instead (profile.json)")
    inference = parser.add_argument_group("reading speed (--inference)")
    inference.add_argument("--inference", action="store_true", help="time predict.py, codes.py solve and the normaliser end to end instead")
    inference.add_argument("--images", type=INFERENCE_IMAGES, help="digit PNGs predict.py reads (default 2,000)")
    inference.add_argument("--codes", type=INFERENCE_CODES, help="code PNGs codes.py solve reads (default 500)")
    inference.add_argument("--runtimes", nargs="+", choices=tuple(RUNTIMES), help="default: all (torch keras onnx)")
    inference.add_argument("--predict-args", metavar="'FLAGS'", help="more flags for predict.py, as one string: --predict-args='--workers 2'")
    devices = parser.add_argument_group("data-parallel overhead (--devices N)")
    devices.add_argument("--devices", type=DEVICES, metavar="N", help="time scripts/train.py on 1 and N devices instead")
    devices.add_argument("--paths", nargs="+", choices=tuple(DATA_PARALLEL_PATHS), help="default: all (lightning keras_tensorflow keras_jax)")
    parser.add_argument("--runner", choices=RUNNERS, help=cli.argparse.SUPPRESS)  # internal: run one runner, print JSON
    parser.add_argument("--write-model", type=Path, help=cli.argparse.SUPPRESS)  # internal: write the seeded model file
    parser.add_argument("--time-normalizer", type=Path, help=cli.argparse.SUPPRESS)  # internal: to_mnist over a folder
    parser.add_check(check_inference_flags)
    args = parser.parse_args(argv)
    args.runners = list(dict.fromkeys(args.runners))
    args.paths = list(dict.fromkeys(args.paths or DATA_PARALLEL_PATHS))
    if args.devices == 1:
        parser.error("--devices 1: give 2 or more (it times 1 device beside N)")
    if args.inference:
        args.images = args.images or 2_000
        args.codes = args.codes or 500
        args.runtimes = list(dict.fromkeys(args.runtimes or RUNTIMES))
        args.predict_args = shlex.split(args.predict_args or "")
    return args


def check_inference_flags(args) -> None:
    """The reading-speed flags belong to --inference, which is neither training bench nor --profile."""
    given = [flag for flag, value in (("--images", args.images), ("--codes", args.codes), ("--runtimes", args.runtimes),
                                      ("--predict-args", args.predict_args)) if value is not None]
    if given and not args.inference:
        raise ValueError(f"{given[0]} is a flag of --inference")
    if args.inference and args.profile:
        raise ValueError("--inference and --profile are two different benchmarks: give one")
    if args.predict_args is not None:
        try:
            shlex.split(args.predict_args)
        except ValueError as error:
            raise ValueError(f"--predict-args {args.predict_args!r}: {error}") from None


# ------------------------------------------------------------------ the runners, each in a child process (--runner)
# They train and predict in this process, so they import lenet_torch and lenet_keras (of parity, only
# parity/frameworks/ may); what is framework-neutral is in parity.bench.training.
def torch_loop(splits, device, compiled: bool):
    """The minimal loop: its labels, its model and its training step on a batch index (Adam inside).
    The same model, memory layout and (if compiled) compilation as the Lightning path, so the ratio
    between them is Lightning's own overhead."""
    import torch
    import torch.nn.functional as F

    from lenet_torch.model import LeNet5

    x = torch.from_numpy(splits.train_x[:, None]).to(device).contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(splits.train_y).to(device)
    model = LeNet5().to(device, memory_format=torch.channels_last)
    if compiled:
        model.compile()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(idx) -> None:
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return y, model, step


def run_torch_loop(args, splits) -> dict:
    import torch

    from lenet_torch.model import predict_probabilities

    device = torch.device("cuda" if args.accelerator != "cpu" and torch.cuda.is_available() else "cpu")
    y, model, step = torch_loop(splits, device, compiled=args.runner.endswith("_compiled"))
    seconds = []
    for _ in range(args.epochs + 1):  # the first is warm-up
        start = time.perf_counter()
        order = torch.randperm(len(y), device=device)
        for i in range(0, len(y), args.batch_size):
            step(order[i : i + args.batch_size])
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    ips = time_inference(lambda images: predict_probabilities(model, images), splits.test_x)
    return {"epoch_seconds": seconds, "inference_images_per_second": ips, "device": str(device)}


def profile_torch_step(splits, batch_size: int, compiled: bool, steps: int = 50) -> dict:
    """Each kind of operation's share of a torch training step's CPU time (self time, so no double counting)."""
    import torch
    from torch.profiler import profile

    y, _, train_step = torch_loop(splits, torch.device("cpu"), compiled)

    def step(i: int) -> None:
        start = i * batch_size % (len(y) - batch_size + 1)
        train_step(slice(start, start + batch_size))

    for i in range(100):  # warm-up (and compilation)
        step(i)
    with profile() as prof:
        for i in range(steps):
            step(i)
    return op_shares(prof.key_averages(), steps)


def run_project(args, splits, framework: str) -> dict:
    from parity.config import recipe_config

    with tempfile.TemporaryDirectory() as out:
        config = recipe_config(
            "seed", framework=framework, epochs=args.epochs + 1, batch_size=args.batch_size, val_split=0,
            accelerator=args.accelerator, out=Path(out), progress=False, compile=args.runner == "lightning_compiled" or None,
        )
        if framework == "torch":
            from lenet_torch.checkpoint import load_model
            from lenet_torch.model import predict_probabilities
            from lenet_torch.train import train

            metrics = train(config, splits)
            model = load_model(Path(out) / "model.ckpt")
            predict = lambda images: predict_probabilities(model, images)  # noqa: E731
        else:
            import keras

            from lenet_keras.model import predict_probabilities
            from lenet_keras.train import train

            metrics = train(config, splits)
            model = keras.saving.load_model(Path(out) / "model.keras")
            predict = lambda images: predict_probabilities(model, images)  # noqa: E731
        ips = time_inference(predict, splits.test_x)
    return {"epoch_seconds": [e.seconds for e in metrics.history], "inference_images_per_second": ips, "device": metrics.device}


def run_one(args) -> None:
    """Child process: run one runner and print its figures as JSON on the last line."""
    cli.quiet_frameworks()
    cli.select_accelerator("keras" if args.runner == "keras" else "torch", args.accelerator)
    splits = load_splits(args)
    if args.runner.startswith("torch_loop"):
        result = run_torch_loop(args, splits)
    else:
        result = run_project(args, splits, "keras" if args.runner == "keras" else "torch")
    print(json.dumps({**result, "train_images": len(splits.train_y)}))


def run_profile(args) -> int:
    cli.quiet_frameworks()
    splits = load_splits(args)
    result = {name: profile_torch_step(splits, args.batch_size, compiled) for name, compiled in (("eager", False), ("compiled", True))}
    return write_profile(args, result)


# ------------------------------------------------------------------------------------------------- dispatch
def bench(args) -> int:
    if args.inference:
        cli.output_folder(args.out)  # where to write: checked before minutes of timing, not after
        return bench_inference(args)
    from parity.data.mnist import require_mnist

    require_mnist(args.data_dir)  # the data and where to write: checked before minutes of timing, not after
    cli.output_folder(args.out)
    if args.profile:
        return run_profile(args)
    if args.devices:
        return bench_data_parallel(args)
    return bench_training(args)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.runner:
        run_one(args)
        return 0
    if args.write_model:
        write_model(args.write_model)
        return 0
    if args.time_normalizer:
        time_normalizer(args.time_normalizer)
        return 0
    from parity.runs.stops import Interrupted, interruptible

    try:
        with interruptible():  # SIGTERM as Ctrl-C: the runner in progress is stopped with this process
            return bench(args)
    except Interrupted as stop:
        cli.fail(f"{stop}; nothing was written", code=stop.exit_code)


if __name__ == "__main__":
    sys.exit(main())
