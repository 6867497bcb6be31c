"""scripts/bench.py runs every runner and writes a complete bench.json (figures are not asserted:
speed is measured by the script, never by the tests)."""

from __future__ import annotations

import json
import subprocess
import sys

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
