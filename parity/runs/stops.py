"""How a training run stops early, the same in both frameworks: a signal, or a loss that is not finite.

Both are exceptions raised into the training loop, so each framework's `train` catches them in one place,
writes metrics.json with the run's status and re-raises; scripts/train.py turns them into one line and
the conventional exit code (128 + signal number: 130 for Ctrl-C, 143 for SIGTERM; 1 for a failed run).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A stop signal arrived. A BaseException, as KeyboardInterrupt: no library's `except Exception` may
    swallow it and carry on training."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


class Diverged(Exception):
    """The training loss stopped being finite: nothing after this step is worth saving."""

    def __init__(self, loss: float, epoch: int, step: int):
        self.loss, self.epoch, self.step = loss, epoch, step
        super().__init__(f"the training loss became {loss} at epoch {epoch}, step {step}")


def check_loss(loss: float, epoch: int, step: int) -> None:
    """Raise Diverged for nan/inf. `epoch` counts from 1, `step` from 1 within the epoch."""
    if loss != loss or loss in (float("inf"), float("-inf")):
        raise Diverged(loss, epoch, step)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` in the main thread, once. A second signal then takes the
    default action, so it stops a stuck clean-up at once (the run stays resumable from its last
    finished epoch, as after a kill). The previous handlers come back on exit."""
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def stop(signum, frame):
        for s in STOP_SIGNALS:
            signal.signal(s, again)
        raise Interrupted(signum)

    def again(signum, frame):
        # The second stop: the default action, at once. Installed as a Python handler, not as SIG_DFL
        # directly: a second signal that arrived before the first one's handler ran would otherwise end in
        # CPython's "OSError: Signal 15 ignored due to race condition" (e.g. Ctrl-C to a data-parallel run,
        # whose first rank also sends SIGTERM to the ranks it started).
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
