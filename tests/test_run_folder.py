"""Run folders: refused when they hold a run, replaced with --overwrite, one process at a time, and
--resume's own flag mistakes, each in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

QUICK = ["--framework", "torch", "--epochs", "1", "--limit-train", "1000", "--val-split", "0", "--no-progress"]


def run(repo_root, *args, timeout=300):
    return subprocess.run([sys.executable, "scripts/train.py", *args], cwd=repo_root, capture_output=True, text=True, timeout=timeout)


def one_line(done) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def lock_taken_over(repo_root, tmp_path_factory) -> dict:
    """A finished QUICK run, made the hard way (test_one_process_per_folder_and_a_stale_lock_is_taken_over checks
    each step): a first process holds the folder (30 epochs), a second is refused while it runs, the first is
    killed (its lock file names a dead pid), and a third takes the lock over and trains QUICK to the end."""
    out = tmp_path_factory.mktemp("finished") / "run"
    first = subprocess.Popen(
        [sys.executable, "scripts/train.py", *QUICK[:3], "30", *QUICK[4:], "--out", str(out)], cwd=repo_root,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / ".lock").is_file() or not (out / ".lock").read_text().strip():
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        second = run(repo_root, *QUICK, "--out", str(out), "--overwrite")
    finally:
        first.kill()
        first.communicate()
    stale_lock = (out / ".lock").read_text().strip()
    third = run(repo_root, *QUICK, "--out", str(out), "--overwrite")
    return {"out": out, "holder": first.pid, "second": second, "stale_lock": stale_lock, "third": third,
            "lock_after": (out / ".lock").read_text().strip()}


@pytest.fixture(scope="module")
def finished_run(lock_taken_over):
    assert lock_taken_over["third"].returncode == 0, lock_taken_over["third"].stderr[-2000:]
    return lock_taken_over["out"]


def test_a_folder_holding_a_run_is_refused_then_replaced_with_overwrite(repo_root, finished_run, tmp_path):
    before = (finished_run / "metrics.json").read_bytes()
    refused = run(repo_root, *QUICK, "--out", str(finished_run))
    assert refused.returncode == 1
    assert "holds a run already" in one_line(refused) and "--overwrite" in one_line(refused)
    assert (finished_run / "metrics.json").read_bytes() == before  # untouched

    stray = finished_run / "from-the-old-run.txt"
    stray.write_text("old")
    replaced = run(repo_root, *QUICK, "--seed", "1", "--out", str(finished_run), "--overwrite")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert not stray.exists()  # nothing of the old run is left to mix with the new one
    assert json.loads((finished_run / "metrics.json").read_text())["seed"] == 1


def test_resume_of_a_finished_run_does_not_train_again(repo_root, finished_run):
    before = (finished_run / "metrics.json").read_bytes()
    done = run(repo_root, "--resume", str(finished_run), "--no-progress")  # display flags are this session's
    assert done.returncode == 0, done.stderr[-2000:]
    assert "test accuracy" in done.stdout
    assert (finished_run / "metrics.json").read_bytes() == before


def test_one_process_per_folder_and_a_stale_lock_is_taken_over(lock_taken_over):
    """The steps of lock_taken_over, whose finished run the two tests above use."""
    seen = lock_taken_over
    assert seen["second"].returncode == 1
    assert f"in use by process {seen['holder']}" in one_line(seen["second"])
    # The killed holder's lock file is still there, naming a dead pid: the next run takes it over.
    assert seen["stale_lock"] == str(seen["holder"])
    assert seen["third"].returncode == 0, seen["third"].stderr[-2000:]
    assert seen["lock_after"] != str(seen["holder"])


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--resume", "{tmp}/nowhere"], 2, "no such folder"),
        (["--resume", "{tmp}"], 1, "no run to resume"),
        (["--resume", "{tmp}", "--epochs", "3"], 2, "drop --epochs"),
        (["--resume", "{tmp}", "--overwrite"], 2, "not allowed with"),
        (QUICK + ["--out", "{tmp}/a-file"], 1, "is a file"),
        (QUICK + ["--out", "{tmp}/a-file/run"], 1, "cannot create the folder"),
    ],
)
def test_run_folder_mistakes_give_one_line(repo_root, tmp_path, args, code, message):
    (tmp_path / "a-file").write_text("not a folder")
    done = run(repo_root, *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert done.returncode == code, done.stderr[-2000:]
    assert message in one_line(done)


def test_a_diverging_run_fails_and_saves_no_model(repo_root, tmp_path):
    out = tmp_path / "run"
    done = run(repo_root, *QUICK, "--lr", "1e30", "--out", str(out))
    assert done.returncode == 1
    line = done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr and line.startswith("error: training stopped: the training loss became nan")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "nan" in metrics["error"] and metrics["test_accuracy"] is None
    assert not (out / "model.ckpt").exists()
    refused = run(repo_root, "--resume", str(out))
    assert refused.returncode == 1 and "the run failed" in one_line(refused)
