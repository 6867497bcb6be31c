"""scripts/bench.py runs every runner and writes a complete bench.json (figures are not asserted:
speed is measured by the script, never by the tests)."""

from __future__ import annotations

import json
import subprocess
import sys


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
    assert bench["lightning_over_keras"] > 0 and bench["lightning_over_torch_loop"] > 0
    assert bench["machine"]["cpu_count"] >= 1
    assert "lightning_over_keras" in done.stdout
