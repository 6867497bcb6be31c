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

import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from parity import cli
from parity.config import BATCH_SIZE, DEVICES, EPOCHS
from parity.files import write_json

RUNNERS = ("torch_loop", "lightning", "keras", "torch_loop_compiled", "lightning_compiled")
# bench.json's ratios of seconds per epoch: name -> (numerator, denominator)
RATIOS = {
    "lightning_over_keras": ("lightning", "keras"),
    "lightning_over_torch_loop": ("lightning", "torch_loop"),
    "lightning_compiled_over_keras": ("lightning_compiled", "keras"),
    "lightning_compiled_over_torch_loop_compiled": ("lightning_compiled", "torch_loop_compiled"),
}


SCRIPTS = Path(__file__).resolve().parent
# --devices: path -> (train.py --framework, KERAS_BACKEND)
DATA_PARALLEL_PATHS = {"lightning": ("torch", None), "keras_tensorflow": ("keras", "tensorflow"), "keras_jax": ("keras", "jax")}
EXPORT_SCRIPT = SCRIPTS / "export.py"  # scripts/export.py MODEL OUT.onnx
RUNTIMES = {"torch": "model.ckpt", "keras": "model.keras", "onnx": "model.onnx"}  # runtime -> the model file it reads
TARGET_IMAGES_PER_SECOND, GOAL_IMAGES_PER_SECOND = 1_000, 2_000  # issue 11: predict.py end to end
INPUT_SEED = 11  # the benchmark's digit and code images and model weights (any fixed seed: only speed is measured)
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


# ------------------------------------------------------------------------------------------ reading speed
def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def write_model(path: Path) -> None:
    """Child process: the seeded initial weights as a model file of `path`'s format (torch or Keras, never both)."""
    cli.quiet_frameworks()
    from parity.frameworks.models import write_weights
    from parity.weights.init import initial_weights

    write_weights(initial_weights(INPUT_SEED), path)
    print(json.dumps({"model": str(path)}))


def time_normalizer(folder: Path) -> None:
    """Child process: decode every PNG in `folder`, then time to_mnist over the decoded arrays (after one warm-up)."""
    import numpy as np

    from parity.codes.errors import NoDigit
    from parity.codes.imagefile import read_picture
    from parity.codes.normalize import to_mnist

    paths = sorted(folder.glob("*.png"))
    start = time.perf_counter()
    arrays = [np.asarray(read_picture(p).image) for p in paths]
    decode_seconds = time.perf_counter() - start

    def normalize_all() -> int:
        no_digit = 0
        for array in arrays:
            try:
                to_mnist(array)
            except NoDigit:
                no_digit += 1
        return no_digit

    with contextlib.suppress(NoDigit):
        to_mnist(arrays[0])  # warm-up: lazy imports, first-call set-up
    start = time.perf_counter()
    no_digit = normalize_all()
    seconds = time.perf_counter() - start
    print(json.dumps({"images": len(arrays), "seconds": seconds, "decode_seconds": decode_seconds, "no_digit": no_digit}))


def _save_png(array, path: Path) -> None:
    from PIL import Image

    from parity.files import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def _cached_folder(folder: Path, n: int, make) -> Path:
    """`folder` holding n PNGs: kept from an earlier run, else made by make(tmp_folder) in a hidden sibling and
    renamed into place when complete (a crash never leaves half a set under the final name)."""
    if folder.is_dir() and len(list(folder.glob("*.png"))) == n:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; the images are ordinary data
        make(tmp)
        if len(list(tmp.glob("*.png"))) != n:
            cli.fail(f"made {len(list(tmp.glob('*.png')))} images for {folder}, expected {n}")
        if folder.exists():
            shutil.rmtree(folder)  # an incomplete or other set under our own cache name
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def make_digit_pngs(out: Path, n: int, seed: int = INPUT_SEED) -> None:
    """n small digit PNGs, deterministic: half in unseen type styles (parity.codes.fonts), half cut from
    generated verification codes by their true boxes (noise lines, textured ink), interleaved."""
    from parity.codes.crops import box_crop
    from parity.codes.fonts import unseen_style_digits
    from parity.codes.generate import generate_codes

    n_crops = n // 2
    styled, styled_labels = unseen_style_digits(n - n_crops, seed=seed)
    crops: list[tuple] = []
    n_codes = -(-n_crops // 4) + 4
    while len(crops) < n_crops:  # a digit pushed (almost) off its canvas has no crop: draw more codes
        codes = generate_codes(n_codes, seed)
        crops = [(box_crop(image, box), digit) for image, code, boxes in zip(codes.images, codes.codes, codes.boxes)
                 for box, digit in zip(boxes, code)]
        crops = [(crop, digit) for crop, digit in crops if min(crop.shape[:2]) >= 4][:n_crops]
        n_codes *= 2
    ordered = [None] * n
    ordered[0::2] = [(image, str(label)) for image, label in zip(styled, styled_labels)]
    ordered[1::2] = crops
    for i, (image, label) in enumerate(ordered):
        _save_png(image, out / f"{i:05d}-{label}.png")


class Refused(Exception):
    """A CLI refused the model file among its flags (exit code 2, naming it): it does not read that format."""


def run_timed(command: list[str], what: str, model: Path | None = None) -> float:
    """Wall-clock seconds of `command` in its own process group, output to /dev/null; one line naming `what`
    and the command's own last word, exit 1, if it fails. If its refusal of its flags (exit code 2) names
    `model`, Refused with that word instead. On a stop signal its whole group is ended."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = process.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        reason = (stderr.strip().splitlines() or [f"exit code {process.returncode}"])[-1].removeprefix("error: ")
        if model is not None and process.returncode == 2 and str(model) in reason:
            raise Refused(reason.removesuffix(" (see --help)"))
        cli.fail(f"{what} failed (exit code {process.returncode}): {reason}")
    return seconds


def child_json(command: list[str], what: str) -> dict:
    """A helper process's JSON last line, or one line naming `what` and why it failed, and exit 1."""
    done = subprocess.run(command, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        with contextlib.suppress(ValueError):
            return json.loads(lines[-1])
    reason = (done.stderr.strip().splitlines() or [f"no result on its output (exit code {done.returncode})"])[-1]
    cli.fail(f"{what} failed (exit code {done.returncode}): {reason.removeprefix('error: ')}")


def make_models(folder: Path, runtimes: list[str]) -> tuple[dict[str, Path], dict[str, str]]:
    """(the seeded model file of each runtime, runtime -> why it has none): .ckpt and .keras each written in
    its framework's own process, the .onnx exported from the .ckpt by scripts/export.py."""
    paths = {runtime: folder / name for runtime, name in RUNTIMES.items()}
    missing = {}
    for runtime in ("torch", "keras"):
        if runtime in runtimes or (runtime == "torch" and "onnx" in runtimes):
            child_json([sys.executable, __file__, "--write-model", str(paths[runtime])], f"writing the {runtime} model")
    if "onnx" in runtimes and not EXPORT_SCRIPT.is_file():
        missing["onnx"] = f"no {EXPORT_SCRIPT.relative_to(SCRIPTS.parent)} to make the .onnx"
    elif "onnx" in runtimes:
        run_timed([sys.executable, str(EXPORT_SCRIPT), str(paths["torch"]), str(paths["onnx"])], "scripts/export.py")
    return {runtime: paths[runtime] for runtime in runtimes if runtime not in missing}, missing


def marginal(ones: list[float], alls: list[float], n: int) -> dict:
    """Per round (t_n - t_1) / (n - 1), median over rounds -> items per second; None if the n-item runs were
    not slower than the 1-item ones (then start-up noise swamps the work: use more items or rounds)."""
    per_item = statistics.median((b - a) / (n - 1) for a, b in zip(ones, alls))
    return {
        "per_second": round(1 / per_item, 1) if per_item > 0 else None,
        "startup_seconds": round(statistics.median(ones), 3),
        "seconds_one": [round(s, 4) for s in ones],
        "seconds_all": [round(s, 4) for s in alls],
    }


def read_existing(path: Path) -> dict:
    """bench.json as it stands (its other section is kept), {} if there is none; one line and exit 1 if it
    cannot be read, checked before any timing."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        cli.fail(f"{path} cannot be read to keep its other figures ({getattr(error, 'strerror', None) or error}); move it away")
    if not isinstance(data, dict):
        cli.fail(f"{path} is not a bench.json (no JSON object); move it away")
    return data


CLIS = {"predict": "scripts/predict.py", "codes": "scripts/codes.py solve"}


def bench_inference(args) -> int:
    bench_json = args.out / "bench.json"
    existing = read_existing(bench_json)
    load_before = load_average()
    inputs = args.out / "inputs"
    print(f"inputs: {args.images:,} digit PNGs and {args.codes:,} code PNGs in {inputs} (made once) ...", flush=True)
    try:
        digits = _cached_folder(inputs / f"digits-{args.images}-seed{INPUT_SEED}", args.images,
                                lambda tmp: make_digit_pngs(tmp, args.images))
        codes = _cached_folder(inputs / f"codes-{args.codes}-seed{INPUT_SEED}", args.codes, lambda tmp: child_json(
            [sys.executable, str(SCRIPTS / "codes.py"), "generate", "--n", str(args.codes), "--seed", str(INPUT_SEED), "--out", str(tmp)],
            "scripts/codes.py generate"))
    except OSError as error:  # a full disk, a read-only folder: one line, not a traceback
        cli.fail(f"cannot write the inputs in {inputs}: {error.strerror or error}")
    code_files = sorted(codes.glob("*.png"))
    runs = {"predict": ([sorted(digits.glob("*.png"))[0]], [digits]), "codes": ([code_files[0]], code_files)}
    seconds = {kind: {runtime: ([], []) for runtime in args.runtimes} for kind in CLIS}
    unread: dict[str, dict[str, str]] = {kind: {} for kind in CLIS}  # kind -> runtime -> why that CLI cannot time it
    normalizer = []
    with tempfile.TemporaryDirectory(prefix="bench-models-") as folder:
        print(f"models: seeded initial weights for {', '.join(args.runtimes)} ...", flush=True)
        models, missing = make_models(Path(folder), args.runtimes)
        for kind in CLIS:
            unread[kind].update(missing)
        for round_ in range(args.rounds):
            for runtime, model in models.items():
                print(f"round {round_ + 1}/{args.rounds}: {runtime} ...", flush=True)
                command = {"predict": [sys.executable, str(SCRIPTS / "predict.py"), "--model", str(model), *args.predict_args],
                           "codes": [sys.executable, str(SCRIPTS / "codes.py"), "solve", "--model", str(model)]}
                for kind, (one, all_) in runs.items():
                    if runtime in unread[kind]:
                        continue
                    what = f"{CLIS[kind]} ({runtime})"
                    try:  # a CLI that refuses the model's format has that runtime marked, not the benchmark ended
                        t_one = run_timed([*command[kind], *map(str, one)], what, model=model if round_ == 0 else None)
                    except Refused as refusal:
                        unread[kind][runtime] = str(refusal)
                        print(f"  {what} does not read it: {refusal}", flush=True)
                        continue
                    seconds[kind][runtime][0].append(t_one)
                    seconds[kind][runtime][1].append(run_timed([*command[kind], *map(str, all_)], what))
            print(f"round {round_ + 1}/{args.rounds}: normalizer ...", flush=True)
            normalizer.append(child_json([sys.executable, __file__, "--time-normalizer", str(digits)], "the normalizer"))
    summary = inference_summary(args, seconds, unread, normalizer, load_before)
    write_json(bench_json, {**existing, "inference": summary})
    print(inference_table(summary))
    print(f"wrote {bench_json}")
    return 0


def flag_value(flags: list[str], name: str) -> str | None:
    """The value `flags` give `name` (--name V or --name=V; the last one wins), else None."""
    value = None
    for i, flag in enumerate(flags):
        if flag == name and i + 1 < len(flags):
            value = flags[i + 1]
        elif flag.startswith(name + "="):
            value = flag.split("=", 1)[1]
    return value


def inference_summary(args, seconds: dict, unread: dict, normalizer: list[dict], load_before: float | None) -> dict:
    predict, codes = {}, {}
    for runtime in args.runtimes:
        if runtime in unread["predict"]:
            predict[runtime] = {"images_per_second": None, "unsupported": unread["predict"][runtime]}
        else:
            m = marginal(*seconds["predict"][runtime], args.images)
            rate = m.pop("per_second")
            predict[runtime] = {"images_per_second": rate, **m, "meets_target": rate is not None and rate >= TARGET_IMAGES_PER_SECOND}
        if runtime in unread["codes"]:
            codes[runtime] = {"codes_per_second": None, "unsupported": unread["codes"][runtime]}
        else:
            m = marginal(*seconds["codes"][runtime], args.codes)
            codes[runtime] = {"codes_per_second": m.pop("per_second"), **m}
    normalize_seconds = [r["seconds"] for r in normalizer]
    return {
        "images": args.images,
        "codes": args.codes,
        "rounds": args.rounds,
        "runtimes": args.runtimes,
        "target_images_per_second": TARGET_IMAGES_PER_SECOND,
        "goal_images_per_second": GOAL_IMAGES_PER_SECOND,
        "predict_args": args.predict_args,
        "predict_workers": flag_value(args.predict_args, "--workers"),  # None: predict.py's own default
        "usable_cores": cli.usable_cores() if hasattr(cli, "usable_cores") else os.cpu_count(),
        "models": f"seeded initial weights (parity.weights.init, seed {INPUT_SEED}); the .onnx by scripts/export.py from the .ckpt",
        "predict": predict,
        "codes_solve": codes,
        "normalizer": {
            "images_per_second": round(args.images / statistics.median(normalize_seconds), 1),
            "decode_images_per_second": round(args.images / statistics.median(r["decode_seconds"] for r in normalizer), 1),
            "processes": 1,
            "seconds": [round(s, 4) for s in normalize_seconds],
            "images": normalizer[0]["images"],
            "no_digit": normalizer[0]["no_digit"],
        },
        "load_average": {"before": load_before, "after": load_average()},
        "machine": machine(),
    }


def inference_table(s: dict) -> str:
    def cell(row: dict, key: str, digits: int = 0) -> str:
        if "unsupported" in row:
            return "not read"
        return "n/a (noise > work)" if row[key] is None else f"{row[key]:,.{digits}f}"

    def startup(row: dict) -> str:
        return "–" if "unsupported" in row else f"{row['startup_seconds']:.2f}"

    target = s["target_images_per_second"]
    lines = [
        f"Reading speed end to end: marginal rate over a 1-item run, median of {s['rounds']} round(s); "
        f"{s['images']:,} digit PNGs, {s['codes']:,} code PNGs; target ≥ {target:,} images/s, goal {s['goal_images_per_second']:,}",
        "",
        f"| runtime | images/s end to end (target {target:,}) | of target | 1-image start-up s | codes/s end to end | 1-code start-up s |",
        "|---|---|---|---|---|---|",
    ]
    for runtime in s["runtimes"]:
        p, c = s["predict"][runtime], s["codes_solve"][runtime]
        share = "–" if p["images_per_second"] is None else f"{p['images_per_second'] / target:.0%}"
        lines.append(f"| {runtime} | {cell(p, 'images_per_second')} | {share} | {startup(p)} | {cell(c, 'codes_per_second', 1)} | {startup(c)} |")
    lines.append("")
    for kind, rows in (("scripts/predict.py", s["predict"]), ("scripts/codes.py solve", s["codes_solve"])):
        lines += [f"not read: {kind} with {runtime}: {row['unsupported']}" for runtime, row in rows.items() if "unsupported" in row]
    n = s["normalizer"]
    lines += [
        f"normalizer alone (to_mnist on decoded arrays, 1 process): {n['images_per_second']:,.0f} images/s "
        f"(decoding the PNGs: {n['decode_images_per_second']:,.0f} images/s; {n['no_digit']} of {n['images']:,} have no digit)",
        f"predict.py flags: {shlex.join(s['predict_args']) or '(its defaults)'}; worker processes: "
        f"{s['predict_workers'] or 'its default'}; usable cores: {s['usable_cores']}",
        f"machine: {s['machine'].get('cpu_model', '?')}, {s['machine']['cpu_count']} CPUs; load average "
        f"{s['load_average']['before']} before, {s['load_average']['after']} after",
    ]
    return "\n".join(lines)


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
