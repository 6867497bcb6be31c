"""A run folder: claimed by one process at a time, never silently mixed with another run.

- A folder that holds a run (its config.json, metrics.json, a model or checkpoints) is refused unless the
  run is to be replaced (`overwrite`: everything in the folder goes first) or continued (`resume`).
- One process per folder: an exclusive `flock` on `<out>/.lock`, which names the holder's pid. The kernel
  drops the lock when its process dies however it dies, so a lock left by a killed run is stale by
  construction: the next run takes it over.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from pathlib import Path

CONFIG_FILE = "config.json"  # the whole run's TrainConfig, written first: what --resume continues
LOCK_FILE = ".lock"
CHECKPOINT_DIR = "checkpoints"  # the last finished epoch's resumable checkpoint
RUN_MARKERS = (CONFIG_FILE, "metrics.json", "model.ckpt", "model.keras", CHECKPOINT_DIR)

_held: dict[Path, int] = {}  # folder -> open lock fd, for this process's lifetime


class RunFolderError(Exception):
    """A run folder that cannot be used, in one line."""


def holds_run(out: Path) -> bool:
    return any((out / name).exists() for name in RUN_MARKERS)


def _make(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunFolderError(f"--out {out}: cannot create the folder ({error.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise RunFolderError(f"--out {out}: the folder is not writable")


def _lock(out: Path) -> None:
    """Hold `<out>/.lock` until this process ends; refuse if a live process holds it."""
    if out.resolve() in _held:
        return
    path = out / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise RunFolderError(f"--out {out}: cannot create {LOCK_FILE} ({error.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        if error.errno in (errno.EAGAIN, errno.EACCES):
            raise RunFolderError(f"--out {out} is in use by process {holder} (lock {path}); wait for it or stop it") from None
        raise RunFolderError(f"--out {out}: cannot lock {path} ({error.strerror})") from None
    # Ours now, stale or new: say whose it is.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[out.resolve()] = fd


def _clear(out: Path) -> None:
    """Everything in `out` but the lock: a replaced run leaves nothing of itself to mix with the new one."""
    for entry in out.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def claim(out: Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Make and lock `out` for a new run (refused if it holds one, unless `overwrite`), or for `resume`."""
    out = Path(out)
    if resume:
        if not (out / CONFIG_FILE).is_file():
            raise RunFolderError(f"--resume {out}: no run to resume there (no {CONFIG_FILE})")
        _lock(out)
        return out
    _make(out)
    _lock(out)
    if holds_run(out):
        if not overwrite:
            raise RunFolderError(f"--out {out} holds a run already; add --overwrite to replace it or use --resume {out} to continue it")
        _clear(out)
    return out


def release(out: Path) -> None:
    fd = _held.pop(Path(out).resolve(), None)
    if fd is not None:
        os.close(fd)
