"""Training speed: the runners each in a process of its own, alternating over the rounds, their figures summed up
into bench.json and a table; and the --profile report, each kind of operation's share of a torch step.
The runners themselves train in scripts/bench.py's child processes (--runner), which import the frameworks."""

from __future__ import annotations

import statistics
import sys
import time

from parity import cli
from parity.bench.common import BENCH_SCRIPT, child_json, machine, read_existing
from parity.files import write_json

RUNNERS = ("torch_loop", "lightning", "keras", "torch_loop_compiled", "lightning_compiled")
# bench.json's ratios of seconds per epoch: name -> (numerator, denominator)
RATIOS = {
    "lightning_over_keras": ("lightning", "keras"),
    "lightning_over_torch_loop": ("lightning", "torch_loop"),
    "lightning_compiled_over_keras": ("lightning_compiled", "keras"),
    "lightning_compiled_over_torch_loop_compiled": ("lightning_compiled", "torch_loop_compiled"),
}
# torch.profiler op names -> what they are in LeNet-5 (the rest is "other")
OP_KINDS = {
    "convolution": ("convolution", "conv2d"),
    "pooling": ("avg_pool2d",),
    "relu": ("clamp_min", "threshold_backward", "relu"),
    "dense": ("aten::mm", "aten::addmm", "aten::linear"),
    "optimizer": ("Optimizer.", "_foreach", "addcdiv", "addcmul", "lerp", "sqrt"),
    "compiled kernels": ("CompiledFxGraph",),
}


def time_inference(predict, images, repeats: int = 3) -> float:
    """Images per second of predict(images) (best of a few, after one warm-up call)."""
    predict(images[:1000])
    best = min(_timed(predict, images) for _ in range(repeats))
    return len(images) / best


def _timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def op_shares(events, steps: int) -> dict:
    """Each kind of operation's share of the profiled steps' CPU time (torch.profiler's key averages; self time,
    so no double counting) and the step's milliseconds."""
    shares: dict[str, float] = {}
    for event in events:
        kind = next((k for k, names in OP_KINDS.items() if any(n in event.key for n in names)), "other")
        shares[kind] = shares.get(kind, 0.0) + event.self_cpu_time_total
    total = sum(shares.values())
    return {
        "profiled_step_ms": round(total / steps / 1000, 3),
        "share": {k: round(v / total, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
    }


def load_splits(args):
    """All training images (no validation split), or one line and exit 1 if MNIST cannot be read."""
    from parity.config import TrainConfig
    from parity.data.mnist import MNISTError
    from parity.data.splits import make_splits

    try:
        return make_splits(TrainConfig(val_split=0, data_dir=args.data_dir, limit_train=args.limit_train))
    except MNISTError as error:
        cli.fail(str(error))


def run_child(name: str, child_args: list[str]) -> dict:
    """One runner in its own process: its figures, or one line naming it and why it failed, and exit 1."""
    return child_json([sys.executable, str(BENCH_SCRIPT), "--runner", name, *child_args], f"runner {name}")


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


def bench_training(args) -> int:
    """Every runner --rounds times, alternating; bench.json's training figures (its other sections kept) and the table."""
    existing = read_existing(args.out / "bench.json")
    child_args = ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--accelerator", args.accelerator]
    child_args += ["--data-dir", str(args.data_dir)] if args.data_dir else []
    child_args += ["--limit-train", str(args.limit_train)] if args.limit_train else []
    results: dict[str, list[dict]] = {name: [] for name in args.runners}
    for round_ in range(args.rounds):
        for name in args.runners:
            print(f"round {round_ + 1}/{args.rounds}: {name} ...", flush=True)
            results[name].append(run_child(name, child_args))
    summary = summarize(results, args)
    kept = {key: existing[key] for key in ("inference", "data_parallel") if key in existing}  # the other sections stay
    write_json(args.out / "bench.json", {**summary, **kept})
    print(table(summary))
    for key in RATIOS:
        if key in summary:
            print(f"{key}: {summary[key]}")
    print(f"machine: {summary['machine'].get('cpu_model', '?')}, {summary['machine']['cpu_count']} CPUs; wrote {args.out / 'bench.json'}")
    return 0


def write_profile(args, result: dict) -> int:
    """profile.json (each mode's shares and the machine) and the shares side by side, eager and compiled."""
    result["machine"] = machine()
    write_json(args.out / "profile.json", result)
    kinds = list(dict.fromkeys(k for mode in ("eager", "compiled") for k in result[mode]["share"]))
    print("| share of a training step | eager | compiled |\n|---|---|---|")
    for kind in kinds:
        print(f"| {kind} | " + " | ".join(f"{result[m]['share'].get(kind, 0):.0%}" for m in ("eager", "compiled")) + " |")
    print(f"| step under the profiler | {result['eager']['profiled_step_ms']:.2f} ms | {result['compiled']['profiled_step_ms']:.2f} ms |")
    print(f"wrote {args.out / 'profile.json'}")
    return 0
