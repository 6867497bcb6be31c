"""Data-parallel overhead (bench.py --devices N): scripts/train.py on 1 and on N devices for each path, alternating
over the rounds; the median seconds per timed epoch and the ratio N / 1 into bench.json's "data_parallel"."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from parity import cli
from parity.bench.common import SCRIPTS, load_average, machine, read_existing
from parity.files import write_json

# --devices: path -> (train.py --framework, KERAS_BACKEND)
DATA_PARALLEL_PATHS = {"lightning": ("torch", None), "keras_tensorflow": ("keras", "tensorflow"), "keras_jax": ("keras", "jax")}


def epoch_seconds(args, framework: str, backend: str | None, devices: int, out: Path) -> tuple[float, str]:
    """scripts/train.py on `devices` devices, one warm-up epoch and --epochs timed ones: the median seconds of
    the timed epochs (metrics.json) and the device it names."""
    command = [sys.executable, str(SCRIPTS / "train.py"), "--framework", framework, "--epochs", str(args.epochs + 1),
               "--batch-size", str(args.batch_size), "--val-split", "0", "--devices", str(devices),
               "--accelerator", args.accelerator, "--no-progress", "--out", str(out), "--overwrite"]
    command += ["--data-dir", str(args.data_dir)] if args.data_dir else []
    command += ["--limit-train", str(args.limit_train)] if args.limit_train else []
    env = {**os.environ, **({"KERAS_BACKEND": backend} if backend else {})}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        cli.fail(f"train.py ({framework}{', ' + backend if backend else ''}, {devices} devices) failed: {reason.removeprefix('error: ')}")
    metrics = json.loads((out / "metrics.json").read_text())
    return statistics.median(epoch["seconds"] for epoch in metrics["history"][1:]), metrics["device"]


def bench_data_parallel(args) -> int:
    bench_json = args.out / "bench.json"
    existing = read_existing(bench_json)
    load_before = load_average()
    counts = (1, args.devices)
    seconds = {path: {n: [] for n in counts} for path in args.paths}
    devices = {path: {} for path in args.paths}
    with tempfile.TemporaryDirectory(prefix=".bench-devices-", dir=args.out) as scratch:
        for round_ in range(args.rounds):
            for path in args.paths:  # alternating, so machine noise hits all alike
                framework, backend = DATA_PARALLEL_PATHS[path]
                for n in counts:
                    print(f"round {round_ + 1}/{args.rounds}: {path} on {n} device{'s' * (n > 1)} ...", flush=True)
                    value, devices[path][n] = epoch_seconds(args, framework, backend, n, Path(scratch) / f"{path}-{n}")
                    seconds[path][n].append(value)
    summary = {"devices": list(counts), "epochs_timed": args.epochs, "rounds": args.rounds, "batch_size": args.batch_size,
               "train_images": args.limit_train or 60_000, "load_average_before": load_before, "machine": machine(), "paths": {}}
    for path in args.paths:
        medians = [round(statistics.median(seconds[path][n]), 3) for n in counts]
        summary["paths"][path] = {"seconds_per_epoch": medians, "ratio": round(medians[1] / medians[0], 3),
                                  "device": [devices[path][n] for n in counts], "all_seconds": [seconds[path][n] for n in counts]}
    write_json(bench_json, {**existing, "data_parallel": summary})
    print(f"| path | s / epoch, 1 device | s / epoch, {args.devices} devices | ratio |\n|---|---|---|---|")
    for path, row in summary["paths"].items():
        print(f"| {path} | {row['seconds_per_epoch'][0]:.2f} | {row['seconds_per_epoch'][1]:.2f} | {row['ratio']:.2f} |")
    print(f"wrote {bench_json}")
    return 0
