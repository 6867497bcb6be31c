"""scripts/predict.py and scripts/codes.py under hostile input, as real processes: FIFOs, a 10,000 x 10,000 PNG
of under 1.5 MB, empty folders, nothing readable, animated images, unknown model suffixes, --no-normalize on
broken files, a model whose output overflows. Every row must be strict JSON, no digit is ever made up, and
every failure ends in one line on stderr with the exit status the scripts' docstrings promise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from parity.data.mnist import load_mnist

TIMEOUT = 300  # a FIFO that blocked the reader would hang here, and fail, instead of stalling the suite
PEAK_MB_LIMIT = 500


def run(repo_root, script, *args, timeout=TIMEOUT):
    return subprocess.run([sys.executable, f"scripts/{script}", *map(str, args)], cwd=repo_root, capture_output=True,
                          text=True, timeout=timeout)


def strict_rows(stdout: str) -> list[dict]:
    """The JSON lines, parsed strictly: a NaN or Infinity token fails."""

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return [json.loads(line, parse_constant=refuse) for line in stdout.strip().splitlines()]


def one_line(stderr: str) -> str:
    """The one error line (warnings about the model file may precede it); never a traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.strip().splitlines() if not line.startswith("warning: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def png_with_huge_rgb(path, size: int = 10_000) -> None:
    """A valid size x size RGB PNG, written row by row (Pillow would need the whole image in memory):
    white, with a dark bar. About 1 MB on disk, 381 MiB decoded."""
    white, dark = b"\x00" + b"\xff" * (3 * size), b"\x00" + (b"\xff" * (3 * size // 3) + b"\x20" * (3 * size // 3)).ljust(3 * size, b"\xff")
    compress = zlib.compressobj(9)
    data = b"".join(compress.compress(dark if size // 5 < y < 4 * size // 5 else white) for y in range(size)) + compress.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = size.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])  # 8 bits, RGB, deflate, no filter, no interlace
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Files as a hostile but fair user has them (see each name)."""
    root = tmp_path_factory.mktemp("hostile")
    mnist = load_mnist()
    digits = root / "digits"  # two good digits, then the trouble
    digits.mkdir()
    for i in range(2):
        Image.fromarray(255 - mnist.test_images[i]).resize((84, 84)).save(digits / f"good{i}-{mnist.test_labels[i]}.png")
    os.mkfifo(digits / "fifo.png")  # nobody ever writes to it: opening it for reading would block forever
    frames = [Image.fromarray(255 - mnist.test_images[i]) for i in range(12)]
    frames[0].save(digits / "animated.gif", save_all=True, append_images=frames[1:], duration=100)
    (digits / "truncated.png").write_bytes((digits / "good0-7.png").read_bytes()[:80])
    (digits / "folder.png").mkdir()  # a folder with an image suffix: searched, not read as an image
    Image.new("L", (40, 40), 255).save(digits / "blank.png")
    (root / "empty").mkdir()
    bad = root / "bad"  # nothing here can be read
    bad.mkdir()
    (bad / "text.png").write_text("not an image")
    (bad / "zero.jpg").write_bytes(b"")
    os.mkfifo(bad / "pipe.png")
    big = root / "big"
    big.mkdir()
    image = Image.new("L", (10_000, 10_000), 235)
    ImageDraw.Draw(image).line([(2500, 1500), (7500, 1500), (4200, 8800)], fill=20, width=1000)  # a 7
    image.save(big / "huge-gray.png", compress_level=1)
    png_with_huge_rgb(big / "huge-rgb.png")
    image.resize((100, 100), Image.Resampling.BOX).save(root / "small-gray.png")
    return root


def test_fifos_folders_truncated_and_animated_files_each_get_their_row(repo_root, trained_files, hostile):
    """A folder with good digits, a FIFO named *.png, an animated GIF, a truncated PNG, a folder named *.png
    and a blank image, beside an empty folder: no hang, one strict-JSON row per file, the FIFO and the
    truncated file refused by name, the GIF read from its first frame and said so, no made-up digit; exit 1
    because two files could not be read, and the empty folder named."""
    done = run(repo_root, "predict.py", "--model", trained_files["ckpt"], hostile / "digits", hostile / "empty")
    rows = {os.path.basename(row["path"]): row for row in strict_rows(done.stdout)}
    assert sorted(rows) == ["animated.gif", "blank.png", "fifo.png", "good0-7.png", "good1-2.png", "truncated.png"], rows
    assert "a FIFO, not a regular file" in rows["fifo.png"]["error"] and rows["fifo.png"]["digit"] is None
    assert "truncated" in rows["truncated.png"]["error"] and rows["truncated.png"]["digit"] is None
    assert rows["animated.gif"]["note"] == "animated: first of 12 frames read"
    assert rows["animated.gif"]["digit"] == 7  # MNIST test image 0, the first frame
    assert rows["blank.png"]["digit"] is None and "blank" in rows["blank.png"]["error"]
    assert rows["good0-7.png"]["digit"] == 7 and rows["good1-2.png"]["digit"] == 2
    assert all(row["confidence"] is None for row in rows.values() if row["digit"] is None)
    assert done.returncode == 1
    assert f"no images in {hostile / 'empty'}" in done.stderr
    assert one_line(done.stderr).startswith("error: 2 of 6 files could not be read")


def test_nothing_readable_exits_1(repo_root, trained_files, hostile):
    """A folder of unreadable files and a FIFO given by name: a row each, then exit 1 with one line."""
    done = run(repo_root, "predict.py", "--model", trained_files["ckpt"], hostile / "bad", hostile / "digits" / "fifo.png")
    rows = strict_rows(done.stdout)
    assert len(rows) == 4 and all(row["digit"] is None and row["error"] for row in rows), rows
    assert done.returncode == 1
    assert "no image could be read" in one_line(done.stderr)


def test_empty_folder_says_so(repo_root, trained_files, hostile):
    done = run(repo_root, "predict.py", "--model", trained_files["ckpt"], hostile / "empty")
    assert done.returncode == 1 and done.stdout == ""
    assert one_line(done.stderr).startswith(f"error: no images in {hostile / 'empty'}")


def test_unknown_model_suffix_is_a_flag_error(repo_root, hostile, tmp_path):
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    for script, args in (("predict.py", ["--model", model, hostile / "small-gray.png"]),
                         ("codes.py", ["solve", "--model", model, hostile / "small-gray.png"])):
        done = run(repo_root, script, *args)
        assert done.returncode == 2 and done.stdout == ""
        assert "unknown model format '.bin'" in one_line(done.stderr)


def test_no_normalize_reads_on_past_a_broken_file(repo_root, trained_files, hostile):
    """--no-normalize (the seed's plain resize) on a truncated PNG, a FIFO, then a good digit: rows for all three."""
    digits = hostile / "digits"
    done = run(repo_root, "predict.py", "--model", trained_files["ckpt"], "--no-normalize",
               digits / "truncated.png", digits / "fifo.png", digits / "good1-2.png")
    rows = strict_rows(done.stdout)
    assert [os.path.basename(r["path"]) for r in rows] == ["truncated.png", "fifo.png", "good1-2.png"]
    assert rows[0]["digit"] is None and rows[1]["digit"] is None and isinstance(rows[2]["digit"], int)
    assert done.returncode == 1 and one_line(done.stderr).startswith("error: 2 of 3 files")


def test_overflowing_model_output_names_no_digit(repo_root, trained_weights, hostile, tmp_path):
    """Finite weights so large that the logits overflow: NaN probabilities. The row says so, digit null,
    confidence null (no NaN in the JSON), exit 1."""
    from parity.frameworks.models import write_weights

    weights = {name: dict(layer) for name, layer in trained_weights.items()}
    for name in ("dense_1", "dense_2"):
        weights[name]["kernel"] = weights[name]["kernel"] * np.float32(1e20)
    model = write_weights(weights, tmp_path / "overflow.ckpt")
    done = run(repo_root, "predict.py", "--model", model, hostile / "digits" / "good0-7.png")
    (row,) = strict_rows(done.stdout)
    assert row["digit"] is None and row["confidence"] is None and "not finite" in row["error"]
    assert done.returncode == 1 and one_line(done.stderr)


def peak_mb(repo_root, *command) -> tuple[float, subprocess.CompletedProcess]:
    """Peak RSS (MB) of `command` run as the only child of a fresh process: RUSAGE_CHILDREN of this test
    process would also count the suite's earlier children (the training run)."""
    probe = ("import resource, subprocess, sys, json; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(json.dumps([resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, done.returncode, done.stdout, done.stderr]))")
    outer = subprocess.run([sys.executable, "-c", probe, sys.executable, *map(str, command)], cwd=repo_root,
                           capture_output=True, text=True, timeout=TIMEOUT)
    peak, code, stdout, stderr = json.loads(outer.stdout)
    return peak, subprocess.CompletedProcess(command, code, stdout, stderr)


def test_huge_png_is_read_in_bounded_memory(repo_root, trained_files, hostile):
    """A 10,000 x 10,000 gray PNG (0.5 MB on disk, 95 MiB decoded) is read within the decoded-size limit; the
    same in RGB (1 MB, 381 MiB decoded) is refused by its header before decoding. Reading both costs well under
    500 MB in a process of its own, and adds little to predict.py's peak over a run on a 100 x 100 image (the
    framework's own start-up sets that peak)."""
    big = hostile / "big"
    reader, done = peak_mb(repo_root, "-c", "import sys\nfrom parity.codes.grayscale import NoDigit\n"
                           "from parity.codes.normalize import to_mnist\nfor path in sys.argv[1:]:\n"
                           "    try: print(int(to_mnist(path).astype(bool).sum()))\n"
                           "    except NoDigit as error: print(error)", big / "huge-gray.png", big / "huge-rgb.png")
    gray, rgb = done.stdout.strip().splitlines()
    assert int(gray) > 50 and "too large to decode safely: 10000x10000 RGB" in rgb, done.stdout + done.stderr
    print(f"reading both 10,000 x 10,000 PNGs: peak RSS {reader:.0f} MB")
    assert reader < PEAK_MB_LIMIT

    huge, done = peak_mb(repo_root, "scripts/predict.py", "--model", trained_files["ckpt"], big / "huge-gray.png", big / "huge-rgb.png")
    rows = strict_rows(done.stdout)
    assert rows[0]["digit"] == 7, rows  # the 7 drawn on it, read at a reduced size
    assert rows[1]["digit"] is None and "too large to decode safely" in rows[1]["error"]
    assert done.returncode == 1
    small, done = peak_mb(repo_root, "scripts/predict.py", "--model", trained_files["ckpt"], hostile / "small-gray.png")
    assert done.returncode == 0, done.stderr
    print(f"predict.py peak RSS: {huge:.0f} MB on the huge PNGs, {small:.0f} MB on a 100 x 100 PNG")
    assert huge - small < 200


def test_solve_says_why_a_file_cannot_be_read(repo_root, trained_files, hostile, tmp_path):
    """codes.py solve: a missing file is a flag error (exit 2, one line); a truncated file and a FIFO get a row
    with the reason, a blank image a row saying no code was found; exit 1 because two files could not be read."""
    done = run(repo_root, "codes.py", "solve", "--model", trained_files["ckpt"], tmp_path / "missing.png")
    assert done.returncode == 2 and "missing.png: no such file" in one_line(done.stderr)
    digits = hostile / "digits"
    done = run(repo_root, "codes.py", "solve", "--model", trained_files["ckpt"], digits / "truncated.png",
               digits / "fifo.png", digits / "blank.png")
    rows = strict_rows(done.stdout)
    assert [row["code"] for row in rows] == [None, None, None]
    assert "truncated" in rows[0]["error"] and "a FIFO" in rows[1]["error"] and "no 4-digit code found" in rows[2]["error"]
    assert done.returncode == 1 and one_line(done.stderr).startswith("error: 2 of 3 files")


def test_codes_cli_mistakes_are_one_line(repo_root, tmp_path):
    """generate into a file, a negative seed, a picture in an unknown format: one line each, no traceback."""
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    done = run(repo_root, "codes.py", "generate", "--n", "2", "--out", a_file)
    assert done.returncode == 1 and "is a file, not a folder" in one_line(done.stderr)
    done = run(repo_root, "codes.py", "generate", "--n", "2", "--seed", "-3", "--out", tmp_path / "codes")
    assert done.returncode == 2 and "--seed" in one_line(done.stderr)
    model = tmp_path / "model.ckpt"
    model.write_bytes(b"")
    done = run(repo_root, "codes.py", "picture", "--model", model, "--out", tmp_path / "picture.xyz")
    assert done.returncode == 2 and "unknown picture format '.xyz'" in one_line(done.stderr)
