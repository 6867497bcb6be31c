"""Run a parser of untrusted bytes in a forked child, so a crash or a hang in a C library costs one error.

The HDF5 library (under h5py) is C: a damaged .h5 can make it dereference a bad address (found by
tests/test_fuzz_weights.py: one flipped byte in a variable-length string attribute's heap reference, a
segmentation fault) or loop. Python cannot catch either. `call_isolated` runs the parse in a child made by
os.fork (a few milliseconds: nothing is re-imported) and brings back only arrays and text, as an .npz read
with allow_pickle=False: nothing the child sends is unpickled, so even a child the file took over cannot
make the parent run code. A child that dies of a signal, or overruns `timeout`, is `Crashed`.
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import time
from collections.abc import Callable

import numpy as np

TEXT_KEY = "__text__"


class Crashed(Exception):
    """The child died of a signal or ran out of time: what a crash or a hang of the parser looks like here."""


class Failed(Exception):
    """The child's function raised; `kind` is its exception's class name."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _child(function: Callable, args: tuple, write_fd: int) -> None:
    try:
        arrays, text = function(*args)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays, **{TEXT_KEY: np.frombuffer(text.encode(), np.uint8)})
        payload = b"O" + buffer.getvalue()
    except BaseException as error:  # noqa: BLE001 -- every outcome goes back to the parent as data
        payload = b"E" + json.dumps({"kind": type(error).__name__, "message": str(error)}).encode()
    with os.fdopen(write_fd, "wb") as pipe:
        pipe.write(payload)


def _read_all(read_fd: int, pid: int, timeout: float) -> bytes:
    chunks, deadline = [], time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([read_fd], [], [], left)[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise Crashed(f"ran for over {timeout:g} s")
        chunk = os.read(read_fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def call_isolated(function: Callable[..., tuple[dict[str, np.ndarray], str]], *args,
                  timeout: float = 60.0) -> tuple[dict[str, np.ndarray], str]:
    """function(*args) -> (arrays, text), computed in a forked child. Raises what it raised as `Failed`, or
    `Crashed`. Without os.fork (not POSIX) it runs here, unprotected."""
    if not hasattr(os, "fork"):
        return function(*args)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: parse, send, and leave without running the parent's exit handlers
        status = 0
        try:
            os.close(read_fd)
            _child(function, args, write_fd)
        except BaseException:  # noqa: BLE001
            status = 1
        os._exit(status)
    os.close(write_fd)
    try:
        payload = _read_all(read_fd, pid, timeout)
    finally:
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise Crashed(f"crashed ({signal.Signals(os.WTERMSIG(status)).name})")
    if payload[:1] == b"E":
        error = json.loads(payload[1:])
        raise Failed(error["kind"], error["message"])
    if payload[:1] != b"O":
        raise Crashed(f"ended with status {os.waitstatus_to_exitcode(status)} and no answer")
    with np.load(io.BytesIO(payload[1:]), allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    return {key: value for key, value in arrays.items() if key != TEXT_KEY}, arrays[TEXT_KEY].tobytes().decode()
