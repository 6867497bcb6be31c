"""Reading speed end to end (bench.py --inference): the project's reading CLIs timed as a user runs them, each call
a process of its own, on inputs made once (seeded model files, digit and code PNGs); the marginal rates, start-up
seconds and the normaliser alone into bench.json's "inference" section and a table."""

from __future__ import annotations

import contextlib
import json
import os
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
from parity.bench.common import BENCH_SCRIPT, SCRIPTS, child_json, load_average, machine, read_existing
from parity.files import write_json

EXPORT_SCRIPT = SCRIPTS / "export.py"  # scripts/export.py MODEL OUT.onnx
RUNTIMES = {"torch": "model.ckpt", "keras": "model.keras", "onnx": "model.onnx"}  # runtime -> the model file it reads
TARGET_IMAGES_PER_SECOND, GOAL_IMAGES_PER_SECOND = 1_000, 2_000  # issue 11: predict.py end to end
INPUT_SEED = 11  # the benchmark's digit and code images and model weights (any fixed seed: only speed is measured)
CLIS = {"predict": "scripts/predict.py", "codes": "scripts/codes.py solve"}


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


def make_models(folder: Path, runtimes: list[str]) -> tuple[dict[str, Path], dict[str, str]]:
    """(the seeded model file of each runtime, runtime -> why it has none): .ckpt and .keras each written in
    its framework's own process, the .onnx exported from the .ckpt by scripts/export.py."""
    paths = {runtime: folder / name for runtime, name in RUNTIMES.items()}
    missing = {}
    for runtime in ("torch", "keras"):
        if runtime in runtimes or (runtime == "torch" and "onnx" in runtimes):
            child_json([sys.executable, str(BENCH_SCRIPT), "--write-model", str(paths[runtime])], f"writing the {runtime} model")
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
            normalizer.append(child_json([sys.executable, str(BENCH_SCRIPT), "--time-normalizer", str(digits)], "the normalizer"))
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
