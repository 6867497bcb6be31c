"""Fuzzing the weight-file readers with hypothesis: real model files, truncated or with a byte flipped, give a
WeightFileError of one line naming the file, or the original weights bit for bit; never another exception,
never a hang, never silently different weights.

The files are made here, as the project writes them: a Lightning .ckpt and a .pt (torch zips, whose CRC-32s
read_weights checks, as torch's reader does not), a .keras (a zip: zipfile checks the CRC-32s) and a .h5
(sealed with a digest of its weights, as lenet_keras.checkpoint.save_model writes one). HDF5 itself has no
checksum: a .h5 written by Keras alone (the seed's kind) is fuzzed too, and there a flip inside a weight's
raw bytes does load, changing that one number and nothing else. That is the limit the test states: a foreign
.h5 can carry a damaged weight unnoticed, the project's files cannot. The fuzzer also found a flip that
crashes the HDF5 library itself (a segmentation fault, which Python cannot catch): Keras files are now parsed
in a forked child (parity.weights.sandbox), and that file is tested on purpose below. A bounded, fixed set of
examples runs in the default suite; `-m slow` runs many more, freshly drawn.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity.frameworks.models import write_weights
from parity.weights.init import initial_weights
from parity.weights.reading import WeightFileError, read_weights
from parity.weights.sandbox import Crashed, Failed, call_isolated

SECONDS_PER_READ = 30  # far above the ~10 ms a read takes: only a hang reaches it
DEFAULT = settings(max_examples=25, deadline=None, derandomize=True, database=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(DEFAULT, max_examples=1000, derandomize=False)
SEALED = ["ckpt", "pt", "keras", "h5"]  # every file the project writes: damage never loads unnoticed
ALL = SEALED + ["foreign.h5"]


@contextlib.contextmanager
def time_limit(seconds: float):
    def stop(signum, frame):
        raise TimeoutError(f"over {seconds} s for one read: a hang")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def weights():
    weights = initial_weights(0)
    rng = np.random.default_rng(1)
    for arrays in weights.values():  # biases that are not all zero, so a flipped bias bit shows as much as a kernel's
        arrays["bias"][:] = rng.normal(size=arrays["bias"].shape)
    return weights


@pytest.fixture(scope="module")
def originals(tmp_path_factory, weights) -> dict[str, bytes]:
    from lenet_keras.checkpoint import model_from_weights

    folder = tmp_path_factory.mktemp("originals")
    files = {fmt: write_weights(weights, folder / f"model.{fmt}") for fmt in SEALED}
    model_from_weights(weights).save(folder / "foreign.h5")  # Keras's own save: no digest
    files["foreign.h5"] = folder / "foreign.h5"
    return {fmt: path.read_bytes() for fmt, path in files.items()}


@pytest.fixture(scope="module")
def raw_extents(tmp_path_factory, originals) -> list[tuple[int, int, str, str, int]]:
    """(start, end, layer, part, item size) of every weight's raw bytes in the foreign .h5."""
    path = tmp_path_factory.mktemp("extents") / "foreign.h5"
    path.write_bytes(originals["foreign.h5"])
    extents = []
    with h5py.File(path) as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.id.get_offset() is not None:
                start = obj.id.get_offset()
                part = "kernel" if name.rsplit("/", 1)[-1].startswith("kernel") else "bias"
                extents.append((start, start + obj.id.get_storage_size(), name.split("/")[1], part, obj.dtype.itemsize))
        f["model_weights"].visititems(lambda name, obj: visit(f"model_weights/{name}", obj))
    assert len(extents) == 10  # 5 weighted layers, kernel and bias
    return extents


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mutants")


def read_mutant(folder: Path, fmt: str, content: bytes):
    """read_weights of `content` saved under the format's suffix: the weights, or None for a proper refusal."""
    path = folder / f"mutant.{fmt.rsplit('.', 1)[-1]}"
    path.write_bytes(content)
    try:
        with time_limit(SECONDS_PER_READ):
            return read_weights(path)
    except WeightFileError as error:
        message = str(error)
        assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 600, message
        return None


def differences(loaded, weights) -> dict[tuple[str, str], np.ndarray]:
    """(layer, part) -> the flat indices where the loaded array differs (dtype and shape must match)."""
    found = {}
    for name in weights:
        for part in ("kernel", "bias"):
            got, want = loaded[name][part], weights[name][part]
            assert got.dtype == want.dtype and got.shape == want.shape, (name, part, got.dtype, got.shape)
            if (changed := np.flatnonzero(got.ravel() != want.ravel())).size:
                found[name, part] = changed
    return found


def check_flip(target, originals, weights, raw_extents, fmt: str, position: int, mask: int) -> None:
    content = bytearray(originals[fmt])
    position %= len(content)
    content[position] ^= mask
    loaded = read_mutant(target, fmt, bytes(content))
    if loaded is None:
        return
    changed = differences(loaded, weights)
    if fmt in SEALED or not changed:
        assert not changed, f"{fmt}: a flip at byte {position} loaded different weights: {sorted(changed)}"
        return
    # The foreign .h5: only the one number whose bytes the flip landed in may differ.
    inside = [(start, layer, part, size) for start, end, layer, part, size in raw_extents if start <= position < end]
    assert inside, f"a flip at byte {position}, outside every weight's raw bytes, changed {sorted(changed)}"
    ((start, layer, part, size),) = inside
    assert set(changed) == {(layer, part)} and changed[layer, part].tolist() == [(position - start) // size], changed


def check_truncation(target, originals, weights, fmt: str, length: int) -> None:
    length %= len(originals[fmt])
    loaded = read_mutant(target, fmt, originals[fmt][:length])
    assert loaded is None or not differences(loaded, weights), f"{fmt} cut to {length} bytes loaded different weights"


FLIPS = dict(position=st.integers(0, 2**31), mask=st.integers(1, 255))
CUTS = dict(length=st.integers(0, 2**31))


@pytest.mark.parametrize("fmt", ALL)
@DEFAULT
@given(**FLIPS)
def test_a_flipped_byte_is_refused_or_harmless(target, originals, weights, raw_extents, fmt, position, mask):
    check_flip(target, originals, weights, raw_extents, fmt, position, mask)


@pytest.mark.parametrize("fmt", ALL)
@DEFAULT
@given(**CUTS)
def test_a_truncated_file_is_refused(target, originals, weights, fmt, length):
    check_truncation(target, originals, weights, fmt, length)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ALL)
@SLOW
@given(**FLIPS)
def test_many_flipped_bytes(target, originals, weights, raw_extents, fmt, position, mask):
    check_flip(target, originals, weights, raw_extents, fmt, position, mask)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ALL)
@SLOW
@given(**CUTS)
def test_many_truncations(target, originals, weights, fmt, length):
    check_truncation(target, originals, weights, fmt, length)


@pytest.mark.parametrize("fmt", SEALED)
def test_a_flip_inside_a_weight_is_refused_in_every_project_file(target, originals, weights, fmt):
    """Deterministic: one bit of dense_1's kernel, wherever the format keeps it. Found by its bytes, so the test
    does not depend on the layout (the .keras zip stores its inner .h5 uncompressed)."""
    from parity.weights.convert import keras_to_torch

    array = weights["dense_1"]["kernel"] if fmt in ("keras", "h5") else keras_to_torch(weights)["dense_1.weight"]
    position = originals[fmt].find(np.ascontiguousarray(array).tobytes()[:64])
    assert position > 0, "the weight's bytes are stored as they are"
    assert read_mutant(target, fmt, originals[fmt]) is not None  # the unflipped file loads
    content = bytearray(originals[fmt])
    content[position + 10] ^= 0x01
    with pytest.raises(WeightFileError, match="damaged"):
        read_weights(write_to(target / f"flipped.{fmt}", bytes(content)))


def test_the_same_flip_in_a_foreign_h5_changes_one_number(target, originals, weights):
    """The documented limit: HDF5 has no checksum, so without the project's digest the flip loads."""
    array = weights["dense_1"]["kernel"]
    position = originals["foreign.h5"].find(array.tobytes()[:64])
    content = bytearray(originals["foreign.h5"])
    content[position + 10] ^= 0x01
    changed = differences(read_weights(write_to(target / "flipped-foreign.h5", bytes(content))), weights)
    assert list(changed) == [("dense_1", "kernel")] and changed["dense_1", "kernel"].tolist() == [10 // 4]


def write_to(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


# ----------------------------------------------------------------------- what the fuzzer found: a C crash


def test_a_file_that_crashes_the_hdf5_library_is_refused_in_one_line(repo_root, target, originals):
    """The crash the fuzzer found, made on purpose: one flipped byte in the type of the model_config attribute
    (a variable-length string) makes HDF5 dereference a bad address. The parse runs in a forked child
    (parity.weights.sandbox), so this process lives and the reader says what happened in one line."""
    content = bytearray(originals["foreign.h5"])
    name = content.find(b"model_config\x00")
    assert content[name + 16] == 0x19, "the attribute's datatype: version 1, variable-length"
    content[name + 17] ^= 0x93
    path = write_to(target / "crashes-hdf5.h5", bytes(content))
    crash = subprocess.run([sys.executable, "-c", "import sys, h5py; h5py.File(sys.argv[1]).attrs.get('model_config')",
                            str(path)], capture_output=True, timeout=300)
    assert crash.returncode == -signal.SIGSEGV  # h5py alone: the process dies
    with pytest.raises(WeightFileError, match=r"the HDF5 library crashed \(SIGSEGV\) reading it$"):
        read_weights(path)
    done = subprocess.run([sys.executable, "scripts/convert.py", str(path), str(target / "out.ckpt")], cwd=repo_root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "SIGSEGV" in done.stderr, done.stderr


def _sleep(seconds):
    time.sleep(seconds)
    return {}, ""


def _segfault():
    os.kill(os.getpid(), signal.SIGSEGV)


def _object_array():
    return {"x": np.array([{"not": "numbers"}], dtype=object)}, ""


def _refuse():
    raise WeightFileError("no, thank you")


def test_the_sandbox_turns_crashes_hangs_and_errors_into_exceptions():
    assert call_isolated(lambda: ({"x": np.arange(3.0)}, "text"))[1] == "text"
    with pytest.raises(Crashed, match="SIGSEGV"):
        call_isolated(_segfault)
    started = time.monotonic()
    with pytest.raises(Crashed, match="ran for over 1 s"):
        call_isolated(_sleep, 60, timeout=1)
    assert time.monotonic() - started < 30
    with pytest.raises(Failed, match="no, thank you") as info:
        call_isolated(_refuse)
    assert info.value.kind == "WeightFileError"
    with pytest.raises(ValueError, match="allow_pickle"):  # nothing the child sends is unpickled
        call_isolated(_object_array)
