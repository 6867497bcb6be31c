"""Interrupted runs: signals sent to a running scripts/train.py, and --resume reproducing the run.

A recipe with a fine-tune stage, in float64, in each framework: one uninterrupted run, and one run stopped
twice on its way (a chain of three processes, whose steps the two signal tests check):
- SIGTERM during the first stage (after its first epoch's checkpoint): exit 143, status "interrupted";
- then `--resume`, SIGKILLed during the fine-tune stage: nothing can be written, status stays "running";
- then `--resume` again, with no other flag, which must end where the uninterrupted run ends: every
  epoch's losses and the test loss within 1e-12 relative, in both stages.
The runs keep an average of the weights (--ema-decay), which is validated and tested: it must come back
from the checkpoint too. And they learn from a teacher (--distil-from, the suite's trained model), which
the resumed run must read again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# 3 + 2 epochs on 3,000 images, float64: long enough epochs (~0.5 s) for a signal to land inside one.
FLAGS = [
    "--epochs", "3", "--finetune-epochs", "2", "--limit-train", "3000", "--val-split", "500", "--batch-size", "100",
    "--precision", "float64", "--lr-schedule", "cosine", "--seed", "5", "--no-progress",
    "--ema-decay", "0.9",  # the weights' average (and its step count) must come back from the checkpoints too
]
MAX_RELATIVE_GAP = 1e-12
# One thread per framework: these small runs gain nothing from two, and on a busy machine two spinning
# OpenMP threads make them many times slower. (Same threads in every run compared, so the same numbers.)
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def train(repo_root, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "scripts/train.py", *args], cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=ONE_THREAD,
    )


def finished(process: subprocess.Popen, timeout: float = 1200) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def wait_for_checkpoint(stage: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    """Until the stage's first epoch is in metrics.json and its checkpoint (not a .part) is in place."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-2000:]
        checkpoints = stage / "checkpoints"
        if checkpoints.is_dir() and any(p.name.startswith("last.") for p in checkpoints.iterdir()):
            return
        time.sleep(0.02)
    raise TimeoutError(f"no checkpoint in {stage}")


def relative_gap(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), 1e-300)


def assert_same_run(resumed: dict, uninterrupted: dict) -> None:
    assert resumed["status"] == "done"
    assert len(resumed["history"]) == len(uninterrupted["history"])
    for mine, theirs in zip(resumed["history"], uninterrupted["history"]):
        for key in ("train_loss", "val_loss"):
            assert relative_gap(mine[key], theirs[key]) <= MAX_RELATIVE_GAP, (mine["epoch"], key, mine[key], theirs[key])
    assert relative_gap(resumed["test_loss"], uninterrupted["test_loss"]) <= MAX_RELATIVE_GAP
    assert resumed["test_accuracy"] == uninterrupted["test_accuracy"]


@pytest.fixture(scope="module")
def flags(trained_model) -> list[str]:
    return [*FLAGS, "--distil-from", str(trained_model.ckpt)]


@pytest.fixture(scope="module", params=["torch", "keras"])
def uninterrupted(request, repo_root, tmp_path_factory, flags):
    out = tmp_path_factory.mktemp(f"whole-{request.param}")
    code, stderr = finished(train(repo_root, "--framework", request.param, *flags, "--out", str(out), "--overwrite"))
    assert code == 0, stderr[-3000:]
    assert not (out / "checkpoints").exists()  # a finished run keeps its model, not its epoch checkpoint
    return request.param, out


@pytest.fixture(scope="module")
def stopped_twice(uninterrupted, repo_root, tmp_path_factory, flags) -> dict:
    """The run stopped twice, step by step (the tests below check each step): started, SIGTERM once its first
    stage has a checkpoint; `--resume`, SIGKILL once its fine-tune stage has one; `--resume` to the end.
    The SIGKILLed process is a resumed one: it finishes the first stage, then starts the fine-tune as a fresh run would."""
    framework, whole = uninterrupted
    out = tmp_path_factory.mktemp(f"stopped-{framework}") / "run"
    seen = {"framework": framework, "whole": whole, "out": out}
    process = train(repo_root, "--framework", framework, *flags, "--out", str(out))
    wait_for_checkpoint(out / "pretrained", process)
    process.send_signal(signal.SIGTERM)
    seen["sigterm"] = finished(process)
    seen["after_sigterm"] = read(out / "pretrained" / "metrics.json")
    seen["model_after_sigterm"] = (out / "pretrained" / {"torch": "model.ckpt", "keras": "model.keras"}[framework]).exists()
    assert seen["sigterm"][0] == 143, seen["sigterm"][1][-2000:]  # else there is nothing to resume below

    process = train(repo_root, "--resume", str(out))
    wait_for_checkpoint(out, process)  # the fine-tune stage's own checkpoint: the first stage is done
    process.kill()
    seen["sigkill"] = finished(process)
    seen["after_sigkill"] = read(out / "metrics.json")
    seen["first_stage"] = (out / "pretrained" / "metrics.json").read_bytes()

    seen["resumed"] = finished(train(repo_root, "--resume", str(out)))
    return seen


def test_sigterm_in_first_stage_then_resume(stopped_twice):
    framework, whole, out = stopped_twice["framework"], stopped_twice["whole"], stopped_twice["out"]
    code, stderr = stopped_twice["sigterm"]
    assert code == 143, stderr[-2000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert "interrupted by SIGTERM" in last and f"--resume {out}" in last
    stopped = stopped_twice["after_sigterm"]
    assert stopped["status"] == "interrupted" and 1 <= len(stopped["history"]) < 3
    assert not stopped_twice["model_after_sigterm"]

    code, stderr = stopped_twice["resumed"]
    assert code == 0, stderr[-3000:]
    first = read(out / "pretrained" / "metrics.json")
    # Resumed, not restarted: the epochs before the signal are the interrupted session's own records.
    kept = first["history"][0]
    assert kept == stopped["history"][0]
    assert_same_run(first, read(whole / "pretrained" / "metrics.json"))
    assert_same_run(read(out / "metrics.json"), read(whole / "metrics.json"))


def test_sigkill_in_finetune_stage_then_resume(stopped_twice):
    whole, out = stopped_twice["whole"], stopped_twice["out"]
    code, _ = stopped_twice["sigkill"]
    assert code == -signal.SIGKILL
    stopped = stopped_twice["after_sigkill"]
    assert stopped["status"] == "running"  # nothing runs after SIGKILL: the status is stale, the lock free

    code, stderr = stopped_twice["resumed"]
    assert code == 0, stderr[-3000:]
    assert (out / "pretrained" / "metrics.json").read_bytes() == stopped_twice["first_stage"]  # done stages are not run again
    resumed = read(out / "metrics.json")
    assert resumed["history"][0] == stopped["history"][0]
    assert_same_run(resumed, read(whole / "metrics.json"))
    assert_same_run(read(out / "pretrained" / "metrics.json"), read(whole / "pretrained" / "metrics.json"))


# The stages are framework-neutral (parity.runs.stages) and each stage's resume is checked in both frameworks
# above: Keras's run of this one is in the slow suite.
@pytest.mark.parametrize("framework", ["torch", pytest.param("keras", marks=pytest.mark.slow)])
def test_sigterm_in_the_second_teacher_then_resume(repo_root, tmp_path, framework):
    """--mnist-teachers 2 (the `best` recipe's stages, small): stopped while the second teacher trains, then
    --resume: the first teacher is not trained again, the second goes on from its checkpoint, and every stage,
    the student's too, ends where the uninterrupted run's ends."""
    flags = ["--framework", framework, "--mnist-teachers", "2", "--distil-weight", "0.65", "--epochs", "3",
             "--limit-train", "3000", "--val-split", "500", "--batch-size", "100", "--precision", "float64",
             "--seed", "5", "--no-progress"]
    whole, out = tmp_path / "whole", tmp_path / "run"
    code, stderr = finished(train(repo_root, *flags, "--out", str(whole)))
    assert code == 0, stderr[-3000:]
    process = train(repo_root, *flags, "--out", str(out))
    wait_for_checkpoint(out / "teachers" / "seed-6", process)
    process.send_signal(signal.SIGTERM)
    code, stderr = finished(process)
    assert code == 143 and f"--resume {out}" in stderr.strip().splitlines()[-1], stderr[-2000:]
    first_teacher = (out / "teachers" / "seed-5" / "metrics.json").read_bytes()
    assert read(out / "teachers" / "seed-6" / "metrics.json")["status"] == "interrupted"
    assert not (out / "metrics.json").exists()  # the student had not started

    code, stderr = finished(train(repo_root, "--resume", str(out)))
    assert code == 0, stderr[-3000:]
    assert (out / "teachers" / "seed-5" / "metrics.json").read_bytes() == first_teacher  # done: not run again
    for stage in ("teachers/seed-5", "teachers/seed-6", "."):
        assert_same_run(read(out / stage / "metrics.json"), read(whole / stage / "metrics.json"))
    assert read(out / "metrics.json")["config"]["distil_from"][1].endswith("teachers/seed-6/" + ("model.ckpt" if framework == "torch" else "model.keras"))


def test_ctrl_c_exits_130(repo_root, tmp_path):
    out = tmp_path / "run"
    flags = ["--framework", "torch", "--epochs", "30", "--limit-train", "2000", "--val-split", "0", "--no-progress"]
    process = train(repo_root, *flags, "--out", str(out))
    wait_for_checkpoint(out, process)
    process.send_signal(signal.SIGINT)
    code, stderr = finished(process)
    assert code == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "interrupted by SIGINT" in stderr.strip().splitlines()[-1]
    assert read(out / "metrics.json")["status"] == "interrupted"
