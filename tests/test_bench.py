"""scripts/bench.py runs every runner and writes a complete bench.json (figures are not asserted:
speed is measured by the script, never by the tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def test_bench_writes_complete_json(repo_root, tmp_path):
    done = subprocess.run(
        [sys.executable, "scripts/bench.py", "--epochs", "1", "--rounds", "1", "--limit-train", "2000", "--out", str(tmp_path),
         "--runners", "torch_loop", "lightning", "keras"],
        cwd=repo_root, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert set(bench["runners"]) == {"torch_loop", "lightning", "keras"}
    assert bench["train_images_per_epoch"] == 2000 and bench["batch_size"] == 200
    for runner in bench["runners"].values():
        assert len(runner["epoch_seconds"]) == 1  # the warm-up epoch is not counted
        assert runner["seconds_per_epoch"] > 0 and runner["inference_images_per_second"] > 0
    assert {"lightning_over_keras", "lightning_over_torch_loop"} <= bench.keys()
    assert bench["machine"]["cpu_count"] >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]  # written atomically: no temporary left


def test_bench_profile_splits_a_step_by_operation(repo_root, tmp_path):
    """--profile: each kind of operation's share of an eager and a compiled torch step."""
    done = subprocess.run(
        [sys.executable, "scripts/bench.py", "--profile", "--limit-train", "2000", "--out", str(tmp_path)],
        cwd=repo_root, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile.json"]
    eager, compiled = profile["eager"]["share"], profile["compiled"]["share"]
    assert sum(eager.values()) == pytest.approx(1, abs=0.01) and sum(compiled.values()) == pytest.approx(1, abs=0.01)
    # eager runs every layer as its own ATen op; compiled, pooling and ReLU live inside generated kernels
    assert eager["convolution"] > 0 and eager["pooling"] > 0 and eager["relu"] > 0
    assert compiled["compiled kernels"] > 0 and compiled.get("pooling", 0) == 0 and compiled.get("relu", 0) == 0


def test_a_failing_runner_is_one_line_naming_it(repo_root, tmp_path):
    """A runner that fails in its own process (here Lightning asked for a GPU the machine lacks) ends the
    bench with one line naming the runner and its own last word, exit 1, and no bench.json."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU, so --accelerator gpu does not fail")
    done = subprocess.run(
        [sys.executable, "scripts/bench.py", "--runners", "lightning", "--accelerator", "gpu", "--epochs", "1", "--rounds", "1",
         "--limit-train", "200", "--out", str(tmp_path)],
        cwd=repo_root, capture_output=True, text=True, timeout=600,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: runner lightning failed (exit code 1): ") and "gpu" in lines[0].lower()
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.slow  # ~45 s of start-ups (every reading CLI, per runtime): kept out of the ~15-minute default suite
def test_bench_inference_times_every_reading_cli(repo_root, tmp_path):
    """--inference, tiny: predict.py and codes.py solve per runtime (a 1-item and an N-item run each), the
    normaliser alone; bench.json's "inference" section complete, counts exact, figures finite. A marginal rate
    is null when the N-item run was no slower than the 1-item one (start-up noise; 20 images cannot outweigh
    it on a loaded machine), so it is checked against its own seconds, never against a speed."""
    import math
    import statistics

    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "scripts/bench.py", "--inference", "--images", "20", "--codes", "5", "--rounds", "1", "--out", str(out)],
        cwd=repo_root, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    bench = json.loads((out / "bench.json").read_text())
    assert list(bench) == ["inference"]
    inference = bench["inference"]
    assert (inference["images"], inference["codes"], inference["rounds"]) == (20, 5, 1)
    assert inference["runtimes"] == ["torch", "keras", "onnx"] and inference["predict_args"] == []
    assert inference["predict_workers"] is None and inference["usable_cores"] >= 1  # None: predict.py's own default
    assert inference["target_images_per_second"] == 1000 and inference["machine"]["cpu_count"] >= 1
    # the inputs, made once and kept for reruns; nothing else left behind
    assert sorted(p.name for p in out.iterdir()) == ["bench.json", "inputs"]
    assert sorted(p.name for p in (out / "inputs").iterdir()) == ["codes-5-seed11", "digits-20-seed11"]
    assert len(list((out / "inputs" / "digits-20-seed11").glob("*.png"))) == 20
    assert len(list((out / "inputs" / "codes-5-seed11").glob("*.png"))) == 5

    def positive(x) -> bool:
        return isinstance(x, (int, float)) and math.isfinite(x) and x > 0

    for section, rate_key, n in (("predict", "images_per_second", 20), ("codes_solve", "codes_per_second", 5)):
        assert list(inference[section]) == ["torch", "keras", "onnx"]
        for runtime, row in inference[section].items():
            assert "unsupported" not in row, f"{section} {runtime}: {row.get('unsupported')}"  # both CLIs read every runtime
            assert len(row["seconds_one"]) == len(row["seconds_all"]) == 1
            assert all(positive(s) for s in row["seconds_one"] + row["seconds_all"]) and positive(row["startup_seconds"])
            extra = statistics.median(b - a for a, b in zip(row["seconds_one"], row["seconds_all"]))
            if row[rate_key] is None:
                assert extra <= 0
            else:
                assert positive(row[rate_key]) and row[rate_key] == pytest.approx((n - 1) / extra, rel=0.02, abs=0.2)
    normalizer = inference["normalizer"]
    assert normalizer["images"] == 20 and len(normalizer["seconds"]) == 1 and normalizer["processes"] == 1
    assert positive(normalizer["images_per_second"]) and positive(normalizer["decode_images_per_second"])
    assert 0 <= normalizer["no_digit"] <= 20
    assert "| runtime | images/s end to end" in done.stdout


def test_bench_inference_flags_and_bench_json(repo_root, tmp_path):
    """bench.json as it stands is read, so each section can replace only its own part; a CLI that refuses the
    model by name is told apart from one that fails; flags of --inference are refused without it; a bad --out
    or an unreadable bench.json is one line before any work."""
    (tmp_path / "bench.json").write_text(json.dumps({"runners": {"keras": {}}, "inference": {"old": True}}))
    from parity.bench.common import read_existing
    from parity.bench.inference import Refused, run_timed

    assert read_existing(tmp_path / "bench.json")["runners"] == {"keras": {}}
    assert read_existing(tmp_path / "missing.json") == {}
    # a CLI refusing the model file by name (exit code 2) marks that runtime as not read; any other failure ends the bench
    refuse = [sys.executable, "-c", "import sys; sys.stderr.write('x.py: error: --model /m.onnx: unknown format (see --help)\\n'); sys.exit(2)"]
    with pytest.raises(Refused, match=r"^x.py: error: --model /m.onnx: unknown format$"):
        run_timed(refuse, "x.py (onnx)", model=Path("/m.onnx"))
    with pytest.raises(SystemExit) as stop:
        run_timed(refuse, "x.py (onnx)")
    assert stop.value.code == 1

    for flags, code, words in (
        (["--images", "20"], 2, "--images is a flag of --inference"),
        (["--inference", "--images", "1"], 2, "--images"),
        (["--inference", "--profile"], 2, "give one"),
        (["--inference", "--predict-args", "'unclosed"], 2, "--predict-args"),
        (["--inference", "--out", str(tmp_path / "bench.json")], 1, "is a file, not a folder"),
    ):
        done = subprocess.run([sys.executable, "scripts/bench.py", *flags], cwd=repo_root, capture_output=True, text=True, timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == code and len(lines) == 1 and words in lines[0], (flags, done.stderr)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "bench.json").write_text("{half")
    done = subprocess.run([sys.executable, "scripts/bench.py", "--inference", "--out", str(tmp_path / "bad")],
                          cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("error: ") and "move it away" in done.stderr, done.stderr
    assert sorted(p.name for p in (tmp_path / "bad").iterdir()) == ["bench.json"]  # refused before making any input
