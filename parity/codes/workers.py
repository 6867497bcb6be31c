"""Reader processes: a function applied to many items on every core, the results back in input order.

`ReaderPool(workers)` starts `workers` processes at once; `pool.imap(function, items, chunksize)` sends them
the items a chunk at a time and yields `function(item)` for each item in input order, as soon as the
results before it are in, so a caller can stream its output. The function and its results are pickled
through pipes; a worker drains its task pipe in a thread of its own, so a chunk or a result larger than a
pipe's buffer (whole images in, a code's cut variants out) cannot leave both ends waiting on each other.

Why this and not multiprocessing.Pool: a worker killed by the system (the OOM killer, a crash in a C
decoder) makes Pool.imap wait forever, and its task feeder reads ahead without bound. Here a dead worker
is a `WorkerDied` naming the items it held, and the main process never holds more than
`ahead_per_worker * workers` chunks of results ahead of what it has yielded (bounded memory, however many
files). Workers ignore SIGINT: Ctrl-C reaches the whole process group, and it is the main process's to
handle (it ends the pool: `terminate`, or leaving a `with` block by an exception), so a worker never prints
a traceback of its own. A worker whose main process is gone (SIGKILL) sees its task pipe closed and ends.

Start method: "fork" when no model framework is loaded in this process yet (the scripts start their
pool before loading the model, so the workers start in milliseconds with nothing re-imported, and never
hold torch or TensorFlow); "forkserver" otherwise, as forking a process that runs TensorFlow's or torch's
thread pools can deadlock the child.
"""

from __future__ import annotations

import itertools
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator

FRAMEWORK_MODULES = ("torch", "tensorflow", "keras", "jax", "onnxruntime")
PRELOAD = ["parity.codes.reading"]  # what a forkserver imports once, so its workers start ready


class WorkerDied(RuntimeError):
    """A reader process ended while it held items; the message says which and how it ended."""


class WorkerFailed(RuntimeError):
    """The function raised in a reader process (a bug: the readers' functions return errors as data)."""


def start_method() -> str:
    return "forkserver" if any(name in sys.modules for name in FRAMEWORK_MODULES) else "fork"


def chunk_size(items: int, workers: int, largest: int = 16) -> int:
    """Items per message: enough to make the cost of a message small beside the work (a small digit takes
    ~1 ms), few enough that every worker gets several chunks and the last ones end together."""
    return max(1, min(largest, items // max(1, 4 * workers)))


def _serve(tasks, results, inherited) -> None:
    """A worker: (chunk id, function, items) in, (chunk id, results, None) or (chunk id, None, error) out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the parent across the fork
    for connection in inherited:  # the main process's ends of the pipes: only it may hold them open
        connection.close()
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_receive_tasks, args=(tasks, inbox), daemon=True).start()
    while True:
        message = inbox.get()
        if message is None:  # the end, or the main process is gone
            return
        chunk, function, items = message
        try:
            answer = (chunk, [function(item) for item in items], None)
        except Exception as error:  # noqa: BLE001 -- a bug in `function`: reported in the main process, one line
            answer = (chunk, None, " ".join(f"{type(error).__name__}: {error}".split())[:500])
        try:
            results.send(answer)
        except OSError:  # the main process is gone
            return
        except Exception as error:  # noqa: BLE001 -- a result that cannot be pickled: a bug, reported as one
            results.send((chunk, None, " ".join(f"cannot send the result: {type(error).__name__}: {error}".split())[:500]))


def _receive_tasks(tasks, inbox: queue.SimpleQueue) -> None:
    """A worker's task pipe, drained as messages come (at most two are held: one running, one waiting). A
    message bigger than the pipe's buffer (a chunk of large images) would otherwise leave the main process
    blocked in send while the worker is blocked sending a large result that the main process is not reading."""
    while True:
        try:
            message = tasks.recv()
        except (EOFError, OSError):  # the main process is gone
            message = None
        inbox.put(message)
        if message is None:
            return


class _Worker:
    def __init__(self, context, inherited: list):
        self.tasks, task_end = context.Pipe(duplex=False)  # (reader, writer): the worker reads tasks
        result_end, self.results = context.Pipe(duplex=False)
        self.task_end, self.result_end = task_end, result_end
        mine = [task_end, result_end]
        # With fork the child inherits every open descriptor: it closes the main process's ends of its own
        # pipes and of earlier workers', else a pipe would never close when the main process dies.
        close = inherited + mine if context.get_start_method() == "fork" else []
        self.process = context.Process(target=_serve, args=(self.tasks, self.results, close), daemon=True)
        self.process.start()
        self.tasks.close()  # the worker's ends, now the worker's alone
        self.results.close()
        self.held: deque[int] = deque()  # chunk ids sent and not yet answered, in order


class ReaderPool:
    """`workers` reader processes; use as a context manager (closed on leaving, terminated on an exception)."""

    def __init__(self, workers: int, ahead_per_worker: int = 4):
        if workers < 1:
            raise ValueError(f"a pool needs at least one worker, got {workers}")
        method = start_method()
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(PRELOAD)
        self.ahead = ahead_per_worker * workers
        self.workers: list[_Worker] = []
        sys.stdout.flush()  # a forked child flushes its copy of these buffers when it ends: they must be empty
        sys.stderr.flush()
        # SIGINT blocked across the forks: a Ctrl-C then reaches a child only once it ignores it.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for _ in range(workers):
                inherited = [end for worker in self.workers for end in (worker.task_end, worker.result_end)]
                self.workers.append(_Worker(context, inherited))
        except BaseException:
            self.terminate()
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def __enter__(self) -> ReaderPool:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.close()
        else:
            self.terminate()

    def imap(self, function: Callable, items: Iterable, chunksize: int = 1) -> Iterator:
        """function(item) for each item, in input order. The first chunks go out at once, before the first
        result is asked for, so the workers read while the caller loads its model. Raises WorkerDied if a
        worker ends while holding items, WorkerFailed with the worker's one-line error if `function` raised."""
        chunks = enumerate(iter(lambda it=iter(items): list(itertools.islice(it, chunksize)), []))
        held_items: dict[int, list] = {}  # chunk id -> its items until answered (to name them if a worker dies)
        answers: dict[int, list] = {}
        state = {"sent": 0, "wanted": 0, "exhausted": False}

        def send_more() -> None:
            while not state["exhausted"] and state["sent"] < state["wanted"] + self.ahead:
                worker = min(self.workers, key=lambda w: len(w.held))
                if len(worker.held) >= 2:  # one running, one waiting: enough to keep each busy
                    return
                try:
                    chunk, part = next(chunks)
                except StopIteration:
                    state["exhausted"] = True
                    return
                worker.held.append(chunk)
                held_items[chunk] = part
                state["sent"] += 1
                try:
                    worker.task_end.send((chunk, function, part))
                except OSError:  # its end of the pipe is closed: it is gone
                    self._died(worker, held_items, chunksize)

        def receive() -> None:
            busy = [w for w in self.workers if w.held]
            ready = multiprocessing.connection.wait([w.result_end for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                if worker.result_end in ready or worker.result_end.poll():
                    try:
                        chunk, results, error = worker.result_end.recv()
                    except (EOFError, OSError):
                        self._died(worker, held_items, chunksize)
                    worker.held.remove(chunk)
                    if error is not None:
                        raise WorkerFailed(f"a reader process failed: {error}")
                    answers[chunk] = results
                elif worker.process.sentinel in ready:
                    self._died(worker, held_items, chunksize)

        def collect() -> Iterator:
            while True:
                while state["wanted"] in answers:
                    results = answers.pop(state["wanted"])
                    del held_items[state["wanted"]]
                    state["wanted"] += 1
                    send_more()
                    yield from results
                if state["exhausted"] and state["wanted"] == state["sent"]:
                    return
                receive()
                send_more()

        send_more()
        return collect()

    def _died(self, worker: _Worker, chunk_items: dict[int, list], chunksize: int) -> None:
        worker.process.join(1)
        code = worker.process.exitcode
        how = (f"was killed by {signal.Signals(-code).name}" if code is not None and code < 0
               else f"ended with status {code}")
        held = [_describe(item, chunk * chunksize + i)
                for chunk in worker.held for i, item in enumerate(chunk_items.get(chunk, []))]
        shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise WorkerDied(f"a reader process {how} while reading {shown or 'nothing'}")

    def close(self) -> None:
        """Let the workers finish and end (they hold nothing once imap is done)."""
        for worker in self.workers:
            try:
                worker.task_end.send(None)
            except OSError:
                pass
        for worker in self.workers:
            worker.process.join(5)
        self.terminate()

    def terminate(self) -> None:
        """End every worker now, whatever it is doing."""
        for worker in self.workers:
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in self.workers:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            for end in (worker.task_end, worker.result_end):
                end.close()
        self.workers = []


def _describe(item, index: int) -> str:
    """A path as itself, anything else (an image array) by its place in the input."""
    return str(item)[:300] if isinstance(item, (str, os.PathLike)) else f"item {index}"


def ordered_map(function: Callable, items: Iterable, pool: ReaderPool | None, chunksize: int = 1) -> Iterator:
    """function(item) for each item in input order: in `pool`, or here when it is None (--workers 0)."""
    if pool is None:
        return map(function, items)
    return pool.imap(function, items, chunksize)
