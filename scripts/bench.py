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

Exit codes: 0 done; 1 a bad --out or data folder, or a runner that failed; 2 bad flags; 130 / 143 Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from parity import cli
from parity.config import BATCH_SIZE, EPOCHS
from parity.files import write_json

RUNNERS = ("torch_loop", "lightning", "keras", "torch_loop_compiled", "lightning_compiled")
# bench.json's ratios of seconds per epoch: name -> (numerator, denominator)
RATIOS = {
    "lightning_over_keras": ("lightning", "keras"),
    "lightning_over_torch_loop": ("lightning", "torch_loop"),
    "lightning_compiled_over_keras": ("lightning_compiled", "keras"),
    "lightning_compiled_over_torch_loop_compiled": ("lightning_compiled", "torch_loop_compiled"),
}


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
    parser.add_argument("--runner", choices=RUNNERS, help=cli.argparse.SUPPRESS)  # internal: run one runner, print JSON
    args = parser.parse_args(argv)
    args.runners = list(dict.fromkeys(args.runners))
    return args


def time_inference(predict, images, repeats: int = 3) -> float:
    """Images per second of predict(images) (best of a few, after one warm-up call)."""
    predict(images[:1000])
    best = min(_timed(predict, images) for _ in range(repeats))
    return len(images) / best


def _timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


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


# torch.profiler op names -> what they are in LeNet-5 (the rest is "other")
OP_KINDS = {
    "convolution": ("convolution", "conv2d"),
    "pooling": ("avg_pool2d",),
    "relu": ("clamp_min", "threshold_backward", "relu"),
    "dense": ("aten::mm", "aten::addmm", "aten::linear"),
    "optimizer": ("Optimizer.", "_foreach", "addcdiv", "addcmul", "lerp", "sqrt"),
    "compiled kernels": ("CompiledFxGraph",),
}


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
    shares: dict[str, float] = {}
    for event in prof.key_averages():
        kind = next((k for k, names in OP_KINDS.items() if any(n in event.key for n in names)), "other")
        shares[kind] = shares.get(kind, 0.0) + event.self_cpu_time_total
    total = sum(shares.values())
    return {
        "profiled_step_ms": round(total / steps / 1000, 3),
        "share": {k: round(v / total, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
    }


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


def load_splits(args):
    """All training images (no validation split), or one line and exit 1 if MNIST cannot be read."""
    from parity.config import TrainConfig
    from parity.data.mnist import MNISTError
    from parity.data.splits import make_splits

    try:
        return make_splits(TrainConfig(val_split=0, data_dir=args.data_dir, limit_train=args.limit_train))
    except MNISTError as error:
        cli.fail(str(error))


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


def machine() -> dict:
    info = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor() or platform.machine()}
    try:
        model = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name"))
        info["cpu_model"] = model.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    return info


def summarize(results: dict[str, list[dict]], args) -> dict:
    runners = {}
    for name, runs in results.items():
        timed = [s for run in runs for s in run["epoch_seconds"][1:]]  # drop each process's warm-up epoch
        median = statistics.median(timed)
        runners[name] = {
            "seconds_per_epoch": round(median, 4),
            "epoch_seconds": [round(s, 4) for s in timed],
            "train_images_per_second": round(runs[0]["train_images"] / median, 1),
            "inference_images_per_second": round(statistics.median(r["inference_images_per_second"] for r in runs), 1),
            "device": runs[0]["device"],
        }
    summary = {
        "batch_size": args.batch_size,
        "timed_epochs_per_runner": {name: len(r["epoch_seconds"]) for name, r in runners.items()},
        "train_images_per_epoch": next(iter(results.values()))[0]["train_images"],
        "machine": machine(),
        "runners": runners,
    }
    for name, (a, b) in RATIOS.items():
        if {a, b} <= set(runners):
            summary[name] = round(runners[a]["seconds_per_epoch"] / runners[b]["seconds_per_epoch"], 3)
    return summary


def table(summary: dict) -> str:
    lines = ["| runner | s / epoch (median) | train images/s | inference images/s | device |", "|---|---|---|---|---|"]
    for name, r in summary["runners"].items():
        lines.append(f"| {name} | {r['seconds_per_epoch']:.3f} | {r['train_images_per_second']:,.0f} | {r['inference_images_per_second']:,.0f} | {r['device']} |")
    return "\n".join(lines)


def run_profile(args) -> int:
    cli.quiet_frameworks()
    splits = load_splits(args)
    result = {name: profile_torch_step(splits, args.batch_size, compiled) for name, compiled in (("eager", False), ("compiled", True))}
    result["machine"] = machine()
    write_json(args.out / "profile.json", result)
    kinds = list(dict.fromkeys(k for mode in ("eager", "compiled") for k in result[mode]["share"]))
    print("| share of a training step | eager | compiled |\n|---|---|---|")
    for kind in kinds:
        print(f"| {kind} | " + " | ".join(f"{result[m]['share'].get(kind, 0):.0%}" for m in ("eager", "compiled")) + " |")
    print(f"| step under the profiler | {result['eager']['profiled_step_ms']:.2f} ms | {result['compiled']['profiled_step_ms']:.2f} ms |")
    print(f"wrote {args.out / 'profile.json'}")
    return 0


def run_child(name: str, child_args: list[str]) -> dict:
    """One runner in its own process: its figures, or one line naming it and why it failed, and exit 1."""
    done = subprocess.run([sys.executable, __file__, "--runner", name, *child_args], capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    reason = (done.stderr.strip().splitlines() or [f"no result on its output (exit code {done.returncode})"])[-1]
    cli.fail(f"runner {name} failed (exit code {done.returncode}): {reason.removeprefix('error: ')}")


def bench(args) -> int:
    from parity.data.mnist import require_mnist

    require_mnist(args.data_dir)  # the data and where to write: checked before minutes of timing, not after
    cli.output_folder(args.out)
    if args.profile:
        return run_profile(args)
    child_args = ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--accelerator", args.accelerator]
    child_args += ["--data-dir", str(args.data_dir)] if args.data_dir else []
    child_args += ["--limit-train", str(args.limit_train)] if args.limit_train else []
    results: dict[str, list[dict]] = {name: [] for name in args.runners}
    for round_ in range(args.rounds):
        for name in args.runners:
            print(f"round {round_ + 1}/{args.rounds}: {name} ...", flush=True)
            results[name].append(run_child(name, child_args))
    summary = summarize(results, args)
    write_json(args.out / "bench.json", summary)
    print(table(summary))
    for key in RATIOS:
        if key in summary:
            print(f"{key}: {summary[key]}")
    print(f"machine: {summary['machine'].get('cpu_model', '?')}, {summary['machine']['cpu_count']} CPUs; wrote {args.out / 'bench.json'}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.runner:
        run_one(args)
        return 0
    from parity.runs.stops import Interrupted, interruptible

    try:
        with interruptible():  # SIGTERM as Ctrl-C: the runner in progress is stopped with this process
            return bench(args)
    except Interrupted as stop:
        cli.fail(f"{stop}; nothing was written", code=stop.exit_code)


if __name__ == "__main__":
    sys.exit(main())
