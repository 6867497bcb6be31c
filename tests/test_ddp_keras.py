"""Keras on 2 devices is the same training as on 1: float64, the same global batch, on each backend's own engine.

TensorFlow: MirroredStrategy over 2 logical CPU devices; JAX (KERAS_BACKEND=jax): DataParallel over 2 host
devices. Every run goes through scripts/train.py in its own process (TensorFlow never shares the test
process's torch). 1,001 training images at batch 100 end each epoch with a batch of 1, padded to 2 with a
zero-weight blank (lenet_keras.data.pad); the 301 validation images end with one too. Slow tests: two
"nodes" on 127.0.0.1 (TF_CONFIG workers; jax.distributed processes), and an interrupted 2-device run resumed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

BACKENDS = ("tensorflow", "jax")
# The Keras run of conftest.py's FLOAT64_RUN (its float64_keras_run is the 1-device run on TensorFlow here)
FLAGS = ("--framework", "keras", "--epochs", "2", "--limit-train", "1001", "--batch-size", "100", "--val-split", "301",
         "--precision", "float64", "--record-steps", "--no-progress")
STEPS = 2 * 11  # 10 batches of 100 and one of 1, per epoch
GAP = 1e-10  # relative, the bound
DEVICE = {"tensorflow": "cpu x2 (tensorflow, MirroredStrategy)", "jax": "cpu x2 (jax, DataParallel)"}


def environment(backend: str, **extra: str) -> dict:
    # One OpenMP thread: the runs here are small, often two at once on 2 cores.
    return {**os.environ, "KERAS_BACKEND": backend, "OMP_NUM_THREADS": "1", **extra}


def start(repo_root: Path, backend: str, out: Path, *flags: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "scripts/train.py", *flags, "--out", str(out)], cwd=repo_root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or environment(backend))


def finish(process: subprocess.Popen, timeout: float = 900) -> str:
    """The run's stdout, once it has ended well."""
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr[-3000:]
    return stdout


def metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def relative_gap(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


@pytest.fixture(scope="module", params=BACKENDS)
def runs(request, repo_root, tmp_path_factory):
    """The same run on 1 and on 2 devices, side by side (both at once: each mostly waits on Python). On TensorFlow
    the 1-device run is conftest's float64_keras_run, FLAGS' own run, which test_training_parity reads too."""
    backend, folder = request.param, tmp_path_factory.mktemp(f"ddp-keras-{request.param}")
    two = start(repo_root, backend, folder / "two", *FLAGS, "--devices", "2")
    if backend == "tensorflow":
        one = request.getfixturevalue("float64_keras_run")
    else:
        one = folder / "one"
        finish(start(repo_root, backend, one, *FLAGS))
    stdout = finish(two)
    one_config, two_config = metrics(one)["config"], metrics(folder / "two")["config"]
    assert {**one_config, "out": None, "devices": 2} == {**two_config, "out": None}  # FLAGS in both
    return backend, metrics(one), folder / "two", stdout


def assert_same_training(run: dict, reference: dict, steps: int = STEPS) -> None:
    """Every epoch's train and validation loss, the test loss and every step's loss within 1e-10 relative;
    the accuracies equal; all 10,000 test images scored once."""
    assert run["status"] == "done" and len(run["history"]) == len(reference["history"])
    for epoch, expected in zip(run["history"], reference["history"]):
        assert relative_gap(epoch["train_loss"], expected["train_loss"]) <= GAP, (epoch, expected)
        assert epoch["train_accuracy"] == expected["train_accuracy"], (epoch, expected)
        if expected["val_loss"] is not None:
            assert relative_gap(epoch["val_loss"], expected["val_loss"]) <= GAP, (epoch, expected)
            assert epoch["val_accuracy"] == expected["val_accuracy"], (epoch, expected)
    assert relative_gap(run["test_loss"], reference["test_loss"]) <= GAP
    assert run["test_accuracy"] == reference["test_accuracy"]
    assert run["test_images"] == reference["test_images"] == 10_000  # counted by a metric, not assumed
    mine, expected_steps = np.array(run["step_losses"]), np.array(reference["step_losses"])
    assert len(mine) == len(expected_steps) == steps
    assert np.max(np.abs(mine - expected_steps) / expected_steps) <= GAP


def assert_written_once(out: Path) -> None:
    """One writer: one metrics.json, one model, one history; no checkpoint left behind by a finished run."""
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [".lock", "config.json", "history.csv", "metrics.json", "model.keras"], files


def model_file(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """A .keras file's compile config and its layers' arrays (read with zipfile and h5py, no Keras)."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        with archive.open("model.weights.h5") as raw, h5py.File(raw) as weights:
            arrays = {}

            def keep(name, item):  # returns None: visititems stops at the first value returned
                if isinstance(item, h5py.Dataset):
                    arrays[name] = item[()]

            weights["layers"].visititems(keep)
    return config["compile_config"], arrays


def test_two_devices_train_as_one(runs):
    backend, one_device, out, stdout = runs
    run = metrics(out)
    assert_same_training(run, one_device)
    assert run["device"] == DEVICE[backend] and run["config"]["devices"] == 2
    assert run["versions"]["backend"] == backend
    assert_written_once(out)
    assert stdout.count("test accuracy") == 1 and DEVICE[backend] in stdout


def test_the_model_file_is_a_one_device_model(runs):
    """model.keras compiles as a 1-device run's does (no class of lenet_keras in it, so keras.saving.load_model
    opens it anywhere) and holds float64 weights: on JAX too, which without x64 would have made them float32."""
    backend, one_device, out, _ = runs
    compile_config, weights = model_file(out / "model.keras")
    reference_config, reference = model_file(Path(one_device["config"]["out"]) / "model.keras")
    assert compile_config["metrics"] == ["accuracy"] and compile_config["weighted_metrics"] is None
    assert compile_config == reference_config
    assert weights.keys() == reference.keys() and len(weights) == 10
    for name, array in weights.items():
        assert array.dtype == np.float64, (backend, name, array.dtype)
        np.testing.assert_allclose(array, reference[name], rtol=1e-9, atol=1e-12)


def test_the_best_recipe_trains_on_two_devices_as_on_one(best_recipe_run):
    """The two MNIST-only teachers, then augmentation (the PyDataset path on TensorFlow), code, printed and style
    digits taught on MNIST's images by those teachers, the cosine schedule, then
    the fine-tune on MNIST and style digits from the first stage's model (conftest's BEST_RECIPE, whose 1-device
    run test_training_parity also compares with Lightning's): both stages the same on 2 devices as on 1. The
    first stage's 1,331 images end each epoch with a batch of 31, the fine-tune's 1,001 at batch 200 with a
    padded batch of 1."""
    one, _ = best_recipe_run("keras", 1)
    two, stdout = best_recipe_run("keras", 2)
    assert stdout.count("on cpu x2 (tensorflow, MirroredStrategy)") == 4  # two teachers, both stages
    for stage, steps in (("teachers/seed-0", 2 * 10), ("teachers/seed-1", 2 * 10), ("pretrained", 2 * 14), ("", 6)):
        run, reference = metrics(two / stage), metrics(one / stage)
        assert_same_training(run, reference, steps=steps)
    assert metrics(two)["config"]["init_from"] == str(two / "pretrained" / "model.keras")


def test_padding_makes_every_replica_sum_to_the_global_mean():
    """lenet_keras.data.pad: each replica's weighted mean over its equal share, times 1 / replicas and summed,
    is the mean over the real samples; the pads weigh 0 and a full batch weighs 1 throughout."""
    from lenet_keras.data import pad

    rng = np.random.default_rng(0)
    for size in (1, 7, 99, 100):
        for replicas in (1, 2, 4):
            x, y = rng.random((size, 32, 32, 1)).astype(np.float32), rng.integers(0, 10, size)
            losses = rng.random(size)
            px, py, w = pad(x, y, replicas, "float64")
            padded = len(py)
            assert padded % replicas == 0 and padded - size < replicas and w.dtype == np.float64
            assert not w[size:].any() and not px[size:].any() and (py[:size] == y).all()
            assert (w[:size] == 1).all() if padded == size else (w[:size] == padded / size).all()
            per_sample = np.concatenate([losses, np.zeros(padded - size)])
            share = padded // replicas
            replica_means = [(w * per_sample)[r * share:(r + 1) * share].sum() / share for r in range(replicas)]
            assert abs(sum(replica_means) / replicas - losses.mean()) <= 1e-15 * losses.mean()


def test_prepare_sets_what_jax_reads_at_start(monkeypatch):
    """lenet_keras.devices.prepare: the host device count (an earlier count replaced, other XLA flags kept) and
    x64 for float64, on JAX only; nothing for TensorFlow, whose logical devices are made in-process."""
    from parity.config import TrainConfig
    from lenet_keras.devices import prepare

    for name in ("XLA_FLAGS", "JAX_ENABLE_X64"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    prepare(TrainConfig(framework="keras", devices=2, precision="float64"))
    assert "XLA_FLAGS" not in os.environ and "JAX_ENABLE_X64" not in os.environ
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    prepare(TrainConfig(framework="keras", devices=1))
    assert "XLA_FLAGS" not in os.environ and "JAX_ENABLE_X64" not in os.environ
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false --xla_force_host_platform_device_count=8")
    prepare(TrainConfig(framework="keras", devices=2, precision="float64"))
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false --xla_force_host_platform_device_count=2"
    assert os.environ["JAX_ENABLE_X64"] == "1"


@pytest.mark.parametrize("tf_config, message", [
    (None, "set TF_CONFIG on every worker"),
    ("{not json", "TF_CONFIG is not a cluster of workers (JSONDecodeError"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}', "--num-nodes 2 but TF_CONFIG lists 1 worker"),
    ('{"cluster": {"worker": ["a:1", "b:2"], "chief": ["c:3"]}, "task": {"type": "worker", "index": 0}}', "no chief"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "task index 2 is not one of its 2"),
])
def test_a_multi_worker_run_needs_a_cluster_of_workers(monkeypatch, tf_config, message):
    """--num-nodes on TensorFlow: TF_CONFIG is checked by prepare, before TensorFlow is imported."""
    from parity.config import TrainConfig
    from lenet_keras.devices import DeviceSetupError, prepare, tensorflow_worker

    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(DeviceSetupError, match=message.replace("(", r"\(")):
        prepare(TrainConfig(framework="keras", num_nodes=2))
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}')
    assert tensorflow_worker(2) == 1


def test_devices_module_imports_no_framework(repo_root):
    """scripts/train.py calls lenet_keras.devices.prepare before any framework starts: it must import none."""
    probe = "import sys, lenet_keras.devices; print(sorted({'keras', 'tensorflow', 'jax', 'torch'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.parametrize("backend, flags, message", [
    ("tensorflow", ("--num-nodes", "2"), "--num-nodes 2 on TensorFlow: set TF_CONFIG on every worker"),
    ("jax", ("--devices", "2", "--accelerator", "gpu"), "--accelerator gpu --devices 2: JAX sees no GPU here"),
])
def test_devices_that_cannot_be_had_are_refused_in_one_line(repo_root, tmp_path, backend, flags, message):
    env = environment(backend)
    env.pop("TF_CONFIG", None)
    done = subprocess.run([sys.executable, "scripts/train.py", *FLAGS, *flags, "--out", str(tmp_path / "refused")],
                          cwd=repo_root, capture_output=True, text=True, timeout=300, env=env)
    lines = [line for line in done.stderr.strip().splitlines() if line.startswith("error:")]
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(lines) == 1 and message in lines[0], done.stderr[-3000:]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_train_as_one(runs, repo_root, tmp_path):
    """Two "machines" on 127.0.0.1, one device each: TensorFlow workers told by TF_CONFIG
    (MultiWorkerMirroredStrategy), JAX processes by JAX_COORDINATOR_ADDRESS / JAX_PROCESS_ID
    (jax.distributed). Worker 0 alone writes the run, and the training is the 1-device one."""
    backend, one_device, _, _ = runs
    ports, out = [free_port(), free_port()], tmp_path / "nodes"
    workers = []
    for index in (0, 1):
        if backend == "tensorflow":
            cluster = {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]}, "task": {"type": "worker", "index": index}}
            env = environment(backend, TF_CONFIG=json.dumps(cluster))
        else:
            env = environment(backend, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{ports[0]}", JAX_PROCESS_ID=str(index))
        workers.append(start(repo_root, backend, out, *FLAGS, "--num-nodes", "2", env=env))
    outputs = [worker.communicate(timeout=900) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    run = metrics(out)
    assert_same_training(run, one_device)
    assert "x2 over 2 nodes" in run["device"] and run["config"]["num_nodes"] == 2
    assert_written_once(out)
    assert "test accuracy" in outputs[0][0] and "test accuracy" not in outputs[1][0]


@pytest.mark.slow
def test_interrupted_two_device_run_resumes_to_the_same_training(runs, repo_root, tmp_path):
    """SIGTERM once the first epoch's checkpoint is written: exit 143, status interrupted; `--resume` goes on
    on 2 devices and ends where the uninterrupted 1-device run did."""
    backend, one_device, _, _ = runs
    out = tmp_path / "stopped"
    run = start(repo_root, backend, out, *FLAGS, "--devices", "2")
    deadline = time.monotonic() + 600
    while not (out / "checkpoints" / "last.keras").is_file():
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-3000:]
        time.sleep(0.02)
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 143, stderr[-3000:]
    assert metrics(out)["status"] == "interrupted"
    resumed = subprocess.run([sys.executable, "scripts/train.py", "--resume", str(out)], cwd=repo_root,
                             capture_output=True, text=True, timeout=900, env=environment(backend))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_training(metrics(out), one_device)
    assert metrics(out)["device"] == DEVICE[backend]
