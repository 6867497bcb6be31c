"""Fast batched reading: scripts/predict.py and codes.py solve with reader processes and batched model calls
give the rows the one-at-a-time path gives, and the sped-up digit normaliser gives its old output to the bit.

- The normaliser (parity.codes.normalize, grayscale, segment; parity.codes.quick_stats) against a frozen copy
  of its code from before the speed-up (the bottom of this file) on varied inputs: font digits, code crops and
  whole codes, MNIST digits in several modes, arrays of every dtype with NaN and infinities, every Pillow
  mode, damaged files; the style clean-up steps (parity.codes.cleanup) switched off, and switched on where
  none of them runs (see the test's docstring). quick_stats against numpy itself.
- predict.py and codes.py solve, default (a reader per core, 256 digits per model call) against --workers 0
  --batch-size 1 (today's path: one image read and classified at a time) on a few hundred varied files with
  error rows: identical rows but for a confidence's last decimal (1e-6).
- Ctrl-C (SIGINT to the process group, as a terminal sends it): exit 130, "interrupted", no traceback, no
  reader left; a closed pipe: quiet exit 1.
- parity.codes.workers.ReaderPool: input order, a worker killed (WorkerDied naming what it held), a bug in
  the function (WorkerFailed).
No timing is asserted: scripts/bench.py measures speed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from parity.codes import grayscale, quick_stats
from parity.codes.crops import box_crop
from parity.codes.fonts import unseen_style_digits
from parity.codes.generate import generate_codes
from parity.codes.grayscale import MIN_CONTRAST, LUMA, NoDigit, load_image
from parity.codes.normalize import ink_map, to_mnist
from parity.codes.segment import _column_pieces, _gray_crop, segment_code
from parity.codes.workers import ReaderPool, WorkerDied, WorkerFailed
from parity.data.mnist import load_mnist

TIMEOUT = 300


def run(repo_root, script, *args):
    return subprocess.run([sys.executable, f"scripts/{script}", *map(str, args)], cwd=repo_root, capture_output=True,
                          text=True, timeout=TIMEOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})


def rows_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.strip().splitlines()]


def same_rows(fast: list[dict], slow: list[dict], answer: str) -> None:
    """Identical rows, but a confidence may differ in its sixth decimal (a batch rounds unlike a single image)."""
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow):
        assert {k: v for k, v in a.items() if k != "confidence"} == {k: v for k, v in b.items() if k != "confidence"}, (a, b)
        if a.get("confidence") is not None or b.get("confidence") is not None:
            assert abs(a["confidence"] - b["confidence"]) <= 1e-6 + 1e-12, (a, b)
    assert any(row[answer] is not None for row in fast)


# ------------------------------------------------------------------------------------------ inputs
def stroke(rng, h: int, w: int) -> np.ndarray:
    """float32 (h, w) in [0, 1], 1 = ink: a digit-like polyline of random width."""
    canvas = Image.new("L", (w, h), 0)
    points = [(float(rng.random() * w), float(rng.random() * h)) for _ in range(3)]
    ImageDraw.Draw(canvas).line(points, fill=255, width=max(1, int(rng.random() * 0.2 * min(h, w))))
    return np.asarray(canvas, dtype=np.float32) / 255


def varied_inputs() -> list:
    """~350 images of every kind the normaliser meets (see the module docstring), fixed by seeds."""
    rng = np.random.default_rng(11)
    images = list(unseen_style_digits(110, seed=21)[0])
    codes = generate_codes(10, seed=7)
    images += [box_crop(image, box) for image, boxes in zip(codes.images, codes.boxes) for box in boxes]
    mnist = load_mnist().test_images[:24]
    images += [Image.fromarray(255 - d).resize((112, 112), Image.Resampling.BILINEAR) for d in mnist[:8]]
    images += [Image.fromarray(np.dstack([np.full_like(d, 255)] * 3 + [d]), mode="RGBA") for d in mnist[8:16]]
    images += [Image.fromarray(255 - d).convert("P") for d in mnist[16:]]
    for i in range(90):  # arrays: dtype, channels, range, polarity, noise, NaN / infinity
        h, w = (int(rng.integers(2, 200)), int(rng.integers(2, 200))) if i % 15 else (1200, 2600)
        u = stroke(rng, min(h, 256), min(w, 256))
        if i % 3 == 1:
            u = np.clip(u + rng.normal(0, 0.3, u.shape).astype(np.float32), 0, 1)
        u = u[(np.arange(h) * u.shape[0] // h)[:, None], (np.arange(w) * u.shape[1] // w)[None, :]]
        dtype = ["bool", "uint8", "uint16", "int32", "float32", "float64"][i % 6]
        lo, hi = [(0, 1), (255, 0), (0, 65535), (-500, 500), (-1e6, 3e6), (0.2, 0.9)][i % 6]
        a = u > 0.5 if dtype == "bool" else (lo * (1 - u.astype(np.float64)) + hi * u).astype(dtype)
        channels = i % 5
        if channels:
            a = np.stack([a if c % 2 == 0 else (a if dtype == "bool" else a[::-1]) for c in range(channels)], axis=-1)
        if dtype.startswith("float") and i % 4 == 0:
            a[0, 0] = [np.nan, np.inf][i % 8 // 4]
        images.append(a)
    modes = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16", "F"]
    for i, mode in enumerate(modes * 3):
        h, w = int(rng.integers(10, 300)), int(rng.integers(10, 300))
        u = stroke(rng, h, w)
        ink, paper = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        rgb = (paper * (1 - u[..., None]) + ink * u[..., None]).astype(np.uint8)
        if mode in ("I", "I;16", "F"):
            image = Image.fromarray((u * [65535, 60000, 3.5][("I", "I;16", "F").index(mode)]).astype(
                {"I": np.int32, "I;16": np.uint16, "F": np.float32}[mode]))
        else:
            alpha = (255 * (u if i % 2 else 1 - u)).astype(np.uint8)
            image = Image.fromarray(np.dstack([rgb, alpha]), "RGBA").convert(mode)
        images.append(image)
    return images


def damaged_files(folder) -> list:
    """Small image files, whole, truncated, or with bytes flipped, in several formats: paths."""
    rng = np.random.default_rng(5)
    paths = []
    for i in range(24):
        image = Image.fromarray((255 * (1 - stroke(rng, 60, 40))).astype(np.uint8)).convert(["L", "RGB", "P"][i % 3])
        buffer = io.BytesIO()
        image.save(buffer, ["PNG", "BMP", "GIF", "JPEG", "TIFF", "WEBP"][i % 6])
        data = bytearray(buffer.getvalue())
        if i % 3 == 1:
            data = data[: len(data) * 2 // 3]
        elif i % 3 == 2:
            for at in rng.integers(0, len(data), 4):
                data[at] ^= 0x5A
        path = folder / f"file{i}.img"
        path.write_bytes(bytes(data))
        paths.append(path)
    return paths


def outcome(function, *args):
    try:
        out = function(*args)
    except NoDigit as error:
        return "NoDigit", str(error)
    if isinstance(out, tuple):
        return tuple(o.tobytes() if isinstance(o, np.ndarray) else o for o in out)
    if isinstance(out, list):
        return [o.tobytes() for o in out]
    return out.dtype.str, out.shape, out.tobytes()


# ------------------------------------------------------------------------------- the normaliser
def test_the_normaliser_gives_its_old_output_to_the_bit(tmp_path):
    """Every input: the same uint8 digit (or the same NoDigit message) as the code before the speed-up, the
    same gray from load_image, and for whole codes the same ink map and the same segmented crops.

    Since the style clean-up steps (parity.codes.cleanup, issue 13) the normaliser's output differs from the
    frozen code by design where a step runs, so the comparison is made twice: with the steps switched off
    (`to_mnist(..., cleanup=False)`) on every input, and with them on (the default) on every input where
    none of them ran (to_mnist's `trace` stays empty): those must still match the frozen code to the bit.
    load_image changed in one case only: a picture whose drawn pixels are all one colour (the image is in
    its alpha) now goes onto the opposite tone; before, it came out blank and the normaliser refused it, so
    its gray may differ only where the frozen code refused the image as blank."""
    inputs = varied_inputs() + damaged_files(tmp_path)
    codes = list(generate_codes(10, seed=7).images)
    compared = unchanged = 0
    for image in inputs:
        old = outcome(old_to_mnist, image)
        gray_same = outcome(load_image, image) == outcome(old_load_image, image)
        if not gray_same:  # only a one-colour picture in the alpha, which the frozen code found blank
            assert old[0] == "NoDigit" and old[1].startswith("blank image"), (getattr(image, "mode", None), old)
            continue
        new = outcome(lambda im: to_mnist(im, cleanup=False), image)
        assert new == old, (type(image), getattr(image, "shape", None), getattr(image, "mode", None), new[:2], old[:2])
        trace = []
        with_steps = outcome(lambda im: to_mnist(im, trace=trace), image)
        if not trace:
            assert with_steps == old, (type(image), getattr(image, "mode", None), with_steps[:2], old[:2])
            unchanged += 1
        compared += new[0] != "NoDigit"
    for code in codes:
        assert outcome(ink_map, code, ) == outcome(old_ink_map, code)
        assert outcome(lambda c: ink_map(c, keep_fraction=0.03, edge_fraction=0.0), code) == \
            outcome(lambda c: old_ink_map(c, keep_fraction=0.03, edge_fraction=0.0), code)
        assert outcome(segment_code, code) == outcome(old_segment_code, code)
    assert compared > 200  # most inputs hold a digit: the comparison is about real work, not only refusals
    assert unchanged > 0.9 * len(inputs)  # the steps run on few ordinary inputs: most are compared with them on


def test_quick_stats_are_numpys_to_the_bit():
    """median, percentile(s) and the unit histogram against numpy on float32/float64 data with ties, every size
    from 1 up, the percentiles the normaliser asks for and others, along axis 0 of (n, 3) samples too."""
    rng = np.random.default_rng(0)

    def same(a, b):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()

    for trial in range(3000):
        n = int(rng.integers(1, 40)) if trial % 2 else int(rng.integers(1, 5000))
        dtype = np.float32 if trial % 5 else np.float64
        x = [rng.random(n), rng.integers(0, 5, n) / 4, rng.random(n) ** 4, np.round(rng.random(n) * 64) / 64][trial % 4].astype(dtype)
        assert same(quick_stats.median(x), np.median(x)), n
        for q in (0, 1, 37.5, 50, 60, 99, 100):
            assert same(quick_stats.percentile(x, q), np.percentile(x, q)), (n, q)
        if trial % 3 == 0:
            y = rng.random((n, 3)).astype(dtype)
            high, low = quick_stats.percentiles(y, (99, 1), axis=0)
            assert same(high, np.percentile(y, 99, axis=0)) and same(low, np.percentile(y, 1, axis=0)), n
        counts, edges = quick_stats.unit_histogram(x)
        expected = np.histogram(x, bins=64, range=(0.0, 1.0))
        assert same(counts, expected[0]) and same(edges, expected[1]), n
    edge_values = np.array([0, 1, 0.5, 1 / 64, 63 / 64, np.nextafter(np.float32(1 / 64), 0)], np.float32)
    assert same(quick_stats.unit_histogram(edge_values)[0], np.histogram(edge_values, 64, (0.0, 1.0))[0])
    with_nan = np.array([0.5, np.nan, 0.25], np.float32)
    assert np.isnan(quick_stats.median(with_nan)) and np.isnan(quick_stats.percentile(with_nan, 60))


# ----------------------------------------------------------------------------- the scripts, fast vs one at a time
@pytest.fixture(scope="module")
def varied_folder(tmp_path_factory):
    """A few hundred files as people have them, and the trouble: blank images, unreadable and truncated files,
    a FIFO named like an image, an animated GIF, a text file."""
    folder = tmp_path_factory.mktemp("varied")
    images, _ = unseen_style_digits(200, seed=3)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"d{i:03d}.{['png', 'jpg', 'bmp', 'webp'][i % 4]}")
    mnist = load_mnist().test_images
    for i in range(20):
        Image.fromarray(255 - mnist[i]).resize((56, 56)).convert(["L", "RGB", "P", "RGBA"][i % 4]).save(folder / f"m{i:02d}.png")
    for i in range(4):
        Image.new("L", (30 + i, 40), 200 + 10 * i).save(folder / f"blank{i}.png")
    (folder / "text.png").write_text("not an image")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.png").write_bytes((folder / "m00.png").read_bytes()[:70])
    os.mkfifo(folder / "fifo.png")
    frames = [Image.fromarray(255 - mnist[i]) for i in range(5)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    return folder


def test_predict_fast_rows_are_the_one_at_a_time_rows(repo_root, trained_files, varied_folder):
    """Reader processes and 256-digit batches against one image read and classified at a time: the same rows,
    in the same order, with the same errors (FIFO, truncated, empty, text, blank) and notes (animated)."""
    fast = run(repo_root, "predict.py", "--model", trained_files["ckpt"], varied_folder)
    slow = run(repo_root, "predict.py", "--model", trained_files["ckpt"], "--workers", "0", "--batch-size", "1", varied_folder)
    assert fast.returncode == slow.returncode == 1, fast.stderr + slow.stderr  # four files cannot be read
    assert fast.stderr == slow.stderr and fast.stderr.startswith("error: 4 of 229 files"), fast.stderr
    fast_rows, slow_rows = rows_of(fast.stdout), rows_of(slow.stdout)
    same_rows(fast_rows, slow_rows, "digit")
    by_name = {os.path.basename(row["path"]): row for row in fast_rows}
    assert "a FIFO" in by_name["fifo.png"]["error"] and "blank" in by_name["blank0.png"]["error"]
    assert by_name["animated.gif"]["note"].startswith("animated")
    assert sum(row["digit"] is not None for row in fast_rows) > 190


def test_solve_fast_rows_are_the_one_at_a_time_rows(repo_root, trained_files, tmp_path, varied_folder):
    """codes.py solve: the same codes and errors, in the same order, with a reader process and batches as one
    at a time (a truncated file, a FIFO and a blank image among the codes)."""
    codes = generate_codes(24, seed=7)
    paths = []
    for i, image in enumerate(codes.images):
        paths.append(tmp_path / f"code{i:02d}.png")
        Image.fromarray(image).save(paths[-1])
    paths[3:3] = [varied_folder / "truncated.png", varied_folder / "fifo.png", varied_folder / "blank0.png"]
    # One reader and 7-digit batches: chunks, batches and code boundaries all fall out of step.
    fast = run(repo_root, "codes.py", "solve", "--model", trained_files["ckpt"], "--workers", "1", "--batch-size", "7", *paths)
    slow = run(repo_root, "codes.py", "solve", "--model", trained_files["ckpt"], "--workers", "0", "--batch-size", "1", *paths)
    assert fast.returncode == slow.returncode == 1 and fast.stderr == slow.stderr
    assert fast.stderr.startswith("error: 2 of 27 files"), fast.stderr
    same_rows(rows_of(fast.stdout), rows_of(slow.stdout), "code")
    assert [row["path"] for row in rows_of(fast.stdout)] == list(map(str, paths))


@pytest.fixture(scope="module")
def many_digits(tmp_path_factory):
    """A folder of 10,000 digit files (links to 40 PNGs): far more than a test lets a run read."""
    root = tmp_path_factory.mktemp("many")
    originals, folder = root / "originals", root / "many"
    originals.mkdir()
    folder.mkdir()
    for i, image in enumerate(unseen_style_digits(40, seed=9)[0]):
        Image.fromarray(image).save(originals / f"{i:02d}.png")
    for i in range(10_000):
        (folder / f"{i:05d}.png").symlink_to(originals / f"{i % 40:02d}.png")
    return folder


def sigint_as_in_a_terminal() -> None:
    """SIGINT's default action in the child, as a foreground job in a terminal has it. A job started in the
    background by a non-interactive shell (`cmd &`) inherits SIGINT ignored, and Python then keeps ignoring it,
    as it should: such a job is not Ctrl-C's to stop. The suite may run under such a shell."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_ends_every_process_with_130_and_no_traceback(repo_root, trained_files, many_digits):
    """SIGINT to the whole process group mid-run (what Ctrl-C in a terminal does): one line, exit 130, and
    neither the main process nor a reader process prints a traceback or lives on."""
    process = subprocess.Popen([sys.executable, "scripts/predict.py", "--model", str(trained_files["ckpt"]), "--workers", "2",
                                str(many_digits)], cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=sigint_as_in_a_terminal)
    try:
        assert process.stdout.readline().startswith("{")  # reading and classifying
        children = child_pids(process.pid)
        assert len(children) >= 2, children
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert stderr == "interrupted\n", stderr
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") and not zombie(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if os.path.exists(f"/proc/{pid}") and not zombie(pid)]


def child_pids(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as file:
            return [int(p) for p in file.read().split()]
    except OSError:
        return []


def zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_closed_pipe_ends_quietly(repo_root, trained_files, many_digits):
    """`predict.py ... | head -1`: the reader leaves after one line (the rows to come are far more than a pipe
    holds); predict.py ends with exit 1 and says nothing."""
    process = subprocess.Popen([sys.executable, "scripts/predict.py", "--model", str(trained_files["ckpt"]), str(many_digits)],
                               cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout.readline().startswith(b"{")
        process.stdout.close()
        stderr = process.stderr.read()
        process.wait(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 1 and stderr == b"", stderr


# ----------------------------------------------------------------------------------------- the pool
def test_reader_pool_keeps_order_and_reports_a_dead_or_failing_worker():
    """Results in input order for every chunk size; a worker killed mid-run is WorkerDied naming the items it
    held; an exception in the function is WorkerFailed, one line. (This process has torch loaded, so the pool
    starts by forkserver: that path is covered here, fork by the scripts.)"""
    with ReaderPool(2) as pool:
        for chunk in (1, 3, 16):
            assert list(pool.imap(abs, range(-200, 200), chunk)) == [abs(i) for i in range(-200, 200)]
        assert list(pool.imap(abs, [], 4)) == []
        with pytest.raises(WorkerFailed, match="ValueError: invalid literal"):
            list(pool.imap(int, ["1", "2", "x"], 1))
    with ReaderPool(2) as pool, pytest.raises(WorkerDied, match="killed by SIGKILL while reading item 2"):
        list(pool.imap(signal.raise_signal, [0, 0, signal.SIGKILL, 0], 1))


def big_result(item: np.ndarray) -> np.ndarray:
    """Far more back than a pipe's buffer holds (64 KiB), as a chunk of codes' cut variants is."""
    return np.full(300_000, item[0], dtype=np.uint8)


def test_reader_pool_passes_chunks_and_results_larger_than_a_pipe_holds():
    """A chunk bigger than a pipe's buffer goes out while the worker is sending a result bigger than one: the
    worker drains its task pipe in a thread, so neither end waits on the other for ever (it did, before)."""
    items = [np.full(100_000, i, dtype=np.uint8) for i in range(12)]

    def stuck(signum, frame):
        raise TimeoutError("the pool deadlocked on large messages")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(120)
    try:
        with ReaderPool(2) as pool:
            out = list(pool.imap(big_result, items, 4))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert [len(r) for r in out] == [300_000] * 12 and [int(r[-1]) for r in out] == list(range(12))


# ==================================================================================================
# The normaliser as it was before the speed-up (parity/codes/normalize.py, grayscale._to_gray and
# segment.segment_code), frozen here as the oracle of the test above. Only names were changed.
# ==================================================================================================
def _old_to_gray(rgb: np.ndarray) -> np.ndarray:
    luma = rgb @ LUMA
    flat = rgb.reshape(-1, 3)
    sample = flat[:: max(1, len(flat) // 4096)]
    spread = np.percentile(sample, 99, axis=0) - np.percentile(sample, 1, axis=0)
    luma_spread = np.percentile(sample @ LUMA, 99) - np.percentile(sample @ LUMA, 1)
    if luma_spread >= 0.5 * spread.max() or spread.max() < MIN_CONTRAST:
        return luma.astype(np.float32)
    centred = sample - sample.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    axis = vectors[:, -1] * (1 if vectors[:, -1] @ LUMA >= 0 else -1)
    proj = (flat - sample.mean(axis=0)) @ axis
    proj = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-6)
    return proj.reshape(luma.shape).astype(np.float32)


@contextlib.contextmanager
def _old_gray():
    new, grayscale._to_gray = grayscale._to_gray, _old_to_gray
    try:
        yield
    finally:
        grayscale._to_gray = new


def old_load_image(image):
    with _old_gray():
        return load_image(image)


def _old_resize(g, width, height, resample):
    out = Image.fromarray(np.ascontiguousarray(g, dtype=np.float32)).resize((width, height), resample)
    return np.asarray(out, dtype=np.float32)


def _old_otsu(values):
    hist, edges = np.histogram(values, bins=64, range=(0.0, 1.0))
    p = hist / max(hist.sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m0[-1] * w0 - m0) ** 2 / (w0 * (1 - w0))
    between[~np.isfinite(between)] = -1
    return float(edges[int(np.argmax(between)) + 1])


def _old_opening(g, k):
    return ndimage.grey_opening(g, size=(k, k), origin=-(k // 2), mode="nearest")


def _old_stroke_width(mask):
    area = int(mask.sum())
    if area == 0:
        return 0.0
    boundary = area - int(ndimage.binary_erosion(mask).sum())
    return 2.0 * area / max(boundary, 1)


def _old_noise_sigma(values):
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def _old_remove_background(g):
    span = max(float(np.ptp(g)), 1e-6)
    background = (g - g.min()) / span <= _old_otsu((g - g.min()) / span)
    residual = g - _old_background_surface(g, background)
    sigma = _old_noise_sigma(residual[background])
    background = residual <= 3 * sigma + 1e-3
    return np.maximum(g - _old_background_surface(g, background), 0)


def _old_background_surface(g, background):
    h, w = g.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy / max(h - 1, 1) - 0.5, xx / max(w - 1, 1) - 0.5
    basis = np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy], axis=-1)
    rows = basis[background]
    if len(rows) < 12:
        return np.full_like(g, float(np.median(g)))
    step = max(1, len(rows) // 2000)
    a = rows[::step].astype(np.float64)
    b = g[background][::step].astype(np.float64)
    coef = np.linalg.solve(a.T @ a + 1e-6 * len(a) * np.eye(6), a.T @ b)
    return (basis @ coef.astype(np.float32)).astype(np.float32)


def old_ink_map(image, *, denoise=True, keep_fraction=0.1, edge_fraction=0.35):
    eight = np.ones((3, 3), dtype=bool)
    g = old_load_image(image)
    h, w = g.shape
    if h * w < 4 or min(h, w) < 2:
        raise NoDigit(f"image too small ({w}x{h} px); a digit needs at least 2x2")
    contrast = float(g.max() - g.min())
    if contrast < MIN_CONTRAST:
        raise NoDigit(f"blank image: contrast {contrast:.3f} < {MIN_CONTRAST}")
    long_side = max(h, w)
    scale = 1.0
    if long_side > 160 or long_side < 48:
        scale = (160 if long_side > 160 else 48) / long_side
        method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        g = _old_resize(g, max(2, round(w * scale)), max(2, round(h * scale)), method)
    border = np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]])
    if np.median(border) > g.mean():
        g = 1.0 - g
    g = _old_remove_background(g)
    top = float(g.max())
    if top < MIN_CONTRAST:
        raise NoDigit(f"blank image: no ink stands out from the background (contrast {top:.3f})")
    g = g / top
    threshold = _old_otsu(g)
    mask = g > threshold
    if denoise:
        width = _old_stroke_width(mask)
        ink_fraction = float(mask.mean())
        if ink_fraction > 0.2 and width < 2.6:
            raise NoDigit(f"looks like noise, not a digit ({ink_fraction:.0%} of pixels, stroke ~{width:.1f} px)")
        low = max(min(6 * _old_noise_sigma(g[g <= threshold]), 0.5 * threshold), 0.02)
        half_ink = 0.5 * float(np.median(g[g > low]))
        base = int((g > half_ink).sum())
        opened = g
        for k in range(2, 6):
            trial = _old_opening(g, k)
            if (trial > half_ink).sum() < 0.75 * base or not (trial > low).any():
                break
            opened = trial
        threshold = 0.5 * float(np.median(opened[opened > low]))
        mask = opened > threshold
        width = _old_stroke_width(mask)
        labels, n_components = ndimage.label(mask, structure=eight)
        sizes = np.bincount(labels.ravel(), minlength=n_components + 1)[1:]
        if n_components == 0:
            raise NoDigit("no ink left after removing noise")
        largest = int(sizes.max())
        if largest < max(12, 1.5 * width * width):
            hint = f"; the image was shrunk {1 / scale:.0f}x for speed, crop it closer to the digit" if scale < 1 else ""
            raise NoDigit(f"only specks of noise (largest blob {largest} px), no digit-sized stroke{hint}")
        keep = sizes >= max(keep_fraction * largest, 1.5 * width * width)
        if edge_fraction > 0:
            edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
            edge = edge[edge > 0] - 1
            keep[edge] &= sizes[edge] >= edge_fraction * largest
        keep[int(np.argmax(sizes))] = True
        mask = np.concatenate([[False], keep])[labels]
        core = mask
        mask = ndimage.binary_dilation(mask, structure=eight)
    elif not mask.any():
        raise NoDigit("no ink found")
    else:
        core = mask
    floor = 0.5 * threshold
    level = float(np.percentile(g[core], 60))
    out = np.clip((g - floor) / max(level - floor, 1e-6), 0, 1) * mask
    if not out.any():
        raise NoDigit("no ink left after thresholding")
    return out.astype(np.float32), scale


def _old_fit_and_centre(ink):
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    s = 20 / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = np.clip(_old_resize(crop, nw, nh, Image.Resampling.LANCZOS), 0, 1)
    small[small < 1 / 255] = 0
    if not small.any():
        raise NoDigit("digit vanished when scaled to 20x20")
    cy, cx = ndimage.center_of_mass(small)
    oy = int(np.clip(round(14 - cy), 0, 28 - nh))
    ox = int(np.clip(round(14 - cx), 0, 28 - nw))
    field = np.zeros((28, 28), dtype=np.float32)
    field[oy : oy + nh, ox : ox + nw] = small
    return np.round(field * 255).astype(np.uint8)


def old_to_mnist(image, *, denoise=True):
    gray = old_load_image(image)
    ink, scale = old_ink_map(gray, denoise=denoise)
    if scale < 1:
        rows = np.flatnonzero(ink.any(axis=1)) / scale
        cols = np.flatnonzero(ink.any(axis=0)) / scale
        h, w = gray.shape
        my, mx = 0.25 * (rows[-1] - rows[0]) + 2 / scale, 0.25 * (cols[-1] - cols[0]) + 2 / scale
        y0, y1 = int(max(rows[0] - my, 0)), int(min(rows[-1] + my, h))
        x0, x1 = int(max(cols[0] - mx, 0)), int(min(cols[-1] + mx, w))
        if (y1 - y0) < 0.6 * h and (x1 - x0) < 0.6 * w:
            try:
                ink, _ = old_ink_map(gray[y0:y1, x0:x1], denoise=denoise)
            except NoDigit:
                pass
    return _old_fit_and_centre(ink)


def old_segment_code(image, n_digits=4):
    gray = old_load_image(image)
    ink, scale = old_ink_map(gray, keep_fraction=0.03, edge_fraction=0.0)
    boxes = []
    for x0, x1 in _column_pieces(ink.sum(axis=0), n_digits):
        rows = np.flatnonzero(ink[:, x0:x1].any(axis=1))
        box = np.array([x0, rows[0], x1, rows[-1] + 1]) / scale
        boxes.append([np.floor(box[0]), np.floor(box[1]), np.ceil(box[2]), np.ceil(box[3])])
    return [_gray_crop(gray, box) for box in np.array(boxes, dtype=np.int64)]
