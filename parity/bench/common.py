"""What the speed benchmarks share: where the scripts they run are, the machine and its load, bench.json as it
stands, and a helper process's JSON answer."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from pathlib import Path

from parity import cli

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
BENCH_SCRIPT = SCRIPTS / "bench.py"  # its hidden flags run one runner or helper in a process of its own


def machine() -> dict:
    info = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor() or platform.machine()}
    try:
        model = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name"))
        info["cpu_model"] = model.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    return info


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


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


def child_json(command: list[str], what: str) -> dict:
    """A helper process's JSON last line, or one line naming `what` and why it failed, and exit 1."""
    done = subprocess.run(command, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        with contextlib.suppress(ValueError):
            return json.loads(lines[-1])
    reason = (done.stderr.strip().splitlines() or [f"no result on its output (exit code {done.returncode})"])[-1]
    cli.fail(f"{what} failed (exit code {done.returncode}): {reason.removeprefix('error: ')}")
