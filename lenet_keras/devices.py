"""The environment Keras's backends need for a run's devices and precision, set before they are imported.

scripts/train.py calls `prepare(config)` for `--framework keras` before Keras, TensorFlow or JAX is imported
(so this module imports none of them): JAX reads what it needs from the environment once, when it starts.
- JAX on a CPU: `--devices N` becomes N host devices (XLA_FLAGS=--xla_force_host_platform_device_count=N,
  added to any XLA_FLAGS already set); on GPUs the flag does nothing, JAX sees the GPUs there are.
- JAX and float64 (`--precision float64`): JAX_ENABLE_X64=1, without which JAX silently makes every
  float64 array float32 (lenet_keras.train also switches it on in-process and checks the model's dtype).
- TensorFlow needs nothing here: its N logical CPU devices are made after `import tensorflow` and before
  its runtime starts, when the strategy is created (lenet_keras.distribute). A multi-worker run
  (--num-nodes M) needs TF_CONFIG, checked here already (`tensorflow_worker`).

Which backend: KERAS_BACKEND, else the "backend" of Keras's own config file ($KERAS_HOME/keras.json or
~/.keras/keras.json), else tensorflow -- the way Keras itself picks it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"


class DeviceSetupError(RuntimeError):
    """The devices a run asks for cannot be had (too few GPUs, a backend started too early, a multi-worker
    run without its cluster description): one line saying what and how to fix it."""


def keras_backend() -> str:
    """The backend Keras will load, read the way Keras reads it, without importing Keras."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        backend = json.loads((Path(home) / "keras.json").read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        backend = None
    return backend if isinstance(backend, str) and backend else "tensorflow"


def with_host_device_count(xla_flags: str, count: int) -> str:
    """XLA_FLAGS with the host device count set to `count`: an earlier count flag is replaced, any other
    flag kept as it was."""
    kept = [flag for flag in xla_flags.split() if not flag.startswith(HOST_DEVICE_FLAG)]
    return " ".join([*kept, f"{HOST_DEVICE_FLAG}={count}"])


def tensorflow_worker(num_nodes: int) -> int:
    """This worker's index in TF_CONFIG, the cluster description TensorFlow's MultiWorkerMirroredStrategy
    reads (one worker per machine, worker 0 writes the run); DeviceSetupError if TF_CONFIG is missing or
    does not describe `num_nodes` workers."""
    shape = '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}'
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise DeviceSetupError(f"--num-nodes {num_nodes} on TensorFlow: set TF_CONFIG on every worker ({shape})")
    try:
        cluster = json.loads(text)
        workers, task = cluster["cluster"]["worker"], cluster["task"]
        kind, index = task.get("type"), int(task["index"])
        others = set(cluster["cluster"]) - {"worker"}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DeviceSetupError(f"TF_CONFIG is not a cluster of workers ({type(error).__name__}: {error}); "
                               f"expected {shape}") from None
    if kind != "worker" or others:
        raise DeviceSetupError(f"TF_CONFIG: this run takes workers only (task type worker; no {', '.join(sorted(others)) or kind}); "
                               f"worker 0 writes the run")
    if len(workers) != num_nodes:
        raise DeviceSetupError(f"--num-nodes {num_nodes} but TF_CONFIG lists {len(workers)} worker(s)")
    if not 0 <= index < len(workers):
        raise DeviceSetupError(f"TF_CONFIG task index {index} is not one of its {len(workers)} workers")
    return index


def prepare(config) -> None:
    """Set the environment `config` (a parity.config.TrainConfig) needs from its Keras backend. Call it
    before Keras, TensorFlow or JAX is imported (and best before the run folder is claimed: what it
    refuses, it refuses before anything is written); it is a no-op for other frameworks. Raises
    DeviceSetupError for a multi-worker TensorFlow run without a usable TF_CONFIG, or when JAX has already
    started and cannot take the settings any more."""
    if getattr(config, "framework", "keras") != "keras":
        return
    backend = keras_backend()
    if backend == "tensorflow" and config.num_nodes > 1:
        tensorflow_worker(config.num_nodes)
    if backend != "jax":
        return
    if config.precision == "float64":
        os.environ["JAX_ENABLE_X64"] = "1"
    if config.devices > 1:
        wanted = with_host_device_count(os.environ.get("XLA_FLAGS", ""), config.devices)
        if wanted != os.environ.get("XLA_FLAGS") and _jax_started():
            raise DeviceSetupError(f"--devices {config.devices}: JAX has already started in this process, too late "
                                   f"to give it {config.devices} CPU devices; set XLA_FLAGS={HOST_DEVICE_FLAG}="
                                   f"{config.devices} before it starts")
        os.environ["XLA_FLAGS"] = wanted


def _jax_started() -> bool:
    """True once JAX has made its backends (after which XLA_FLAGS is not read again)."""
    bridge = sys.modules.get("jax._src.xla_bridge")
    return bool(getattr(bridge, "_backends", None))
