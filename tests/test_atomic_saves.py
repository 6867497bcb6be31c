"""A kill or a full disk during a save leaves the previous complete file under its name, in every format.

Real kills: a child process saves model A to DEST, then saves model B to DEST with os.fsync replaced by a
SIGKILL of itself (first cutting the file being written to half its size: the state a kill in the middle of
the library's write leaves), or with os.replace replaced by it (a kill between the write and the rename).
The parent checks the child died of SIGKILL, DEST still reads as model A, and the only other file left is
the hidden temporary one. A negative control writes in place the way the project used to, and loses DEST.
"""

from __future__ import annotations

import concurrent.futures
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from parity.files import write_json
from parity.weights.init import initial_weights
from parity.weights.reading import WeightFileError, read_weights

CHILD = textwrap.dedent('''
    import os, signal, sys
    from pathlib import Path

    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    kind, dest, instant = sys.argv[1], Path(sys.argv[2]), sys.argv[3]

    def save(seed):
        if kind == "json":
            from parity.files import write_json
            write_json(dest, {"status": "done", "model": seed, "history": [0.5, 0.25]})
            return
        from parity.weights.init import initial_weights
        weights = initial_weights(seed)
        if instant == "in-place":  # the negative control: how files were written before, straight into DEST
            import torch
            from parity.weights.convert import keras_to_torch
            torch.save({k: torch.from_numpy(v) for k, v in keras_to_torch(weights).items()}, dest)
            with open(dest, "rb+") as f:
                os.ftruncate(f.fileno(), os.fstat(f.fileno()).st_size // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        if kind in ("keras", "h5"):
            from lenet_keras.checkpoint import save_weights
        else:
            from lenet_torch.checkpoint import save_weights
        save_weights(weights, dest)

    def killed_mid_write(fd):  # called on the temporary file once the library has written it
        os.ftruncate(fd, os.fstat(fd).st_size // 2)
        os.kill(os.getpid(), signal.SIGKILL)

    def killed_before_rename(*args):
        os.kill(os.getpid(), signal.SIGKILL)

    save(0)  # model A, saved normally
    if instant == "mid-write":
        os.fsync = killed_mid_write
    elif instant == "before-rename":
        os.replace = killed_before_rename
    save(1)  # model B: the process dies inside this save
    sys.exit("the save finished: nothing killed it")
''')

A_JSON = {"status": "done", "model": 0, "history": [0.5, 0.25]}


def run_child(repo_root: Path, kind: str, dest: Path, instant: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, kind, str(dest), instant], cwd=repo_root,
                          capture_output=True, text=True, timeout=600)


def assert_reads_as_model_a(dest: Path) -> None:
    if dest.suffix == ".json":
        assert json.loads(dest.read_text()) == A_JSON
        return
    weights, expected = read_weights(dest), initial_weights(0)
    for name in expected:
        for part in ("kernel", "bias"):
            np.testing.assert_array_equal(weights[name][part], expected[name][part], err_msg=f"{name}.{part}")


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir() if p != dest)


KILLS = [("ckpt", "model.ckpt", "mid-write"), ("pt", "model.pt", "mid-write"), ("keras", "model.keras", "mid-write"),
         ("h5", "model.h5", "mid-write"), ("json", "metrics.json", "mid-write"), ("json", "metrics.json", "before-rename"),
         ("pt", "model.pt", "in-place")]


@pytest.fixture(scope="module")
def killed(repo_root, tmp_path_factory) -> dict[tuple[str, str], tuple[subprocess.CompletedProcess, Path]]:
    """Every kill above, each child in its own folder, three at a time: (kind, instant) -> (process, DEST)."""
    jobs = {(kind, instant): tmp_path_factory.mktemp(f"{kind}-{instant}") / name for kind, name, instant in KILLS}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = {key: pool.submit(run_child, repo_root, key[0], dest, key[1]) for key, dest in jobs.items()}
        return {key: (future.result(), jobs[key]) for key, future in futures.items()}


@pytest.mark.parametrize("kind, instant", [(kind, instant) for kind, _, instant in KILLS if instant != "in-place"])
def test_a_kill_during_a_save_leaves_the_old_file(killed, kind, instant):
    done, dest = killed[kind, instant]
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-2000:])
    assert_reads_as_model_a(dest)
    # What is left beside it is the hidden temporary file (half written), never anything under DEST's name.
    assert all(left.startswith(f".{dest.name}.") and ".part" in left for left in leftovers(dest)), leftovers(dest)


def test_the_kill_harness_catches_an_in_place_write(killed):
    """Negative control: the same kill in the middle of an in-place torch.save loses DEST."""
    done, dest = killed["pt", "in-place"]
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    with pytest.raises(WeightFileError):
        assert_reads_as_model_a(dest)


# ------------------------------------------------------------------------------------------ a full disk


def disk_full(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def save(kind: str, dest: Path, seed: int) -> None:
    if kind == "json":
        write_json(dest, {**A_JSON, "model": seed})
        return
    from parity.frameworks.models import write_weights

    write_weights(initial_weights(seed), dest)


@pytest.mark.parametrize("name", ["model.ckpt", "model.pt", "model.keras", "model.h5", "metrics.json"])
def test_a_full_disk_during_a_save_leaves_the_old_file_and_nothing_else(tmp_path, monkeypatch, name):
    dest = tmp_path / name
    save(dest.suffix.lstrip("."), dest, 0)
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        save(dest.suffix.lstrip("."), dest, 1)
    monkeypatch.undo()
    assert_reads_as_model_a(dest)
    assert leftovers(dest) == []  # the temporary file is removed when the save fails


# ---------------------------------------------------------------------------- Lightning's own checkpoints


@pytest.fixture(scope="module")
def fitted_trainer(tmp_path_factory):
    """One epoch of two tiny batches through a real Trainer with AtomicCheckpointIO and a ModelCheckpoint."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader, TensorDataset

    from lenet_torch.checkpoint_io import AtomicCheckpointIO
    from lenet_torch.module import LitLeNet5

    folder = tmp_path_factory.mktemp("trainer")
    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.rand(8, 1, 32, 32), torch.randint(0, 10, (8,))), batch_size=4)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                        plugins=[AtomicCheckpointIO()],
                        callbacks=[ModelCheckpoint(dirpath=folder / "checkpoints", filename="last")])
    trainer.fit(LitLeNet5({"batch_size": 4, "epochs": 1}), train_dataloaders=data)
    return trainer, folder


def test_lightning_checkpoints_go_through_the_atomic_writer(fitted_trainer, monkeypatch, capfd):
    from lenet_torch.checkpoint_io import save_trainer_checkpoint
    from lenet_torch.module import LitLeNet5

    trainer, folder = fitted_trainer
    epoch_checkpoint = folder / "checkpoints" / "last.ckpt"
    assert epoch_checkpoint.is_file() and leftovers(epoch_checkpoint) == []
    final = save_trainer_checkpoint(trainer, folder / "model.ckpt")
    before = final.read_bytes()
    read_weights(final)
    assert capfd.readouterr().err == ""  # its architecture record is there (LitLeNet5.on_save_checkpoint)
    checkpoint = torch.load(final, weights_only=True)
    assert checkpoint["optimizer_states"] and checkpoint["epoch"] == 1  # resumable, not just weights
    assert LitLeNet5.load_from_checkpoint(final, weights_only=True) is not None

    monkeypatch.setattr(os, "fsync", disk_full)
    for save_again in (lambda: save_trainer_checkpoint(trainer, final), lambda: trainer.save_checkpoint(final)):
        with pytest.raises(OSError, match="No space left on device"):
            save_again()
        assert final.read_bytes() == before and leftovers(final) == ["checkpoints"]
