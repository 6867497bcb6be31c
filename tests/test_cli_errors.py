"""Every ordinary mistake on a command line ends in ONE line on stderr and the right exit code: 2 for a bad
flag, 1 for a bad file or folder; never a traceback, never a silent exit 0. Each row runs the real script in
its own process. (train.py's --out problems and predict.py, codes.py, convert.py have their own tests.)

Flag mistakes are caught while parsing, before torch or TensorFlow is imported: they take a fraction of a
second, and `test_a_bad_flag_imports_no_framework` checks that no framework module was loaded.

Permissions do not stop root, so when the suite runs as root the rows about folders without permission run
their script as the unprivileged user nobody; where that is impossible they skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from parity.data.idx import FILES, TRAIN_IMAGES

AS_ROOT = os.geteuid() == 0
NOBODY = 65534
PARSE_SECONDS = 2.0  # a parse error: well under this (about 0.1 s on an idle core), no framework imported
TIMEOUT = 300


@dataclass(frozen=True)
class Row:
    script: str  # scripts/<script>, or "-m parity.data.mnist"
    args: tuple[str, ...]  # {name} is replaced by the path of the `places` fixture's entry `name`
    code: int
    says: str  # a piece of the one error line
    env: dict[str, str] = field(default_factory=dict)
    unprivileged: bool = False  # about permissions: run as nobody when the suite runs as root

    @property
    def parse_error(self) -> bool:
        return self.code == 2


def flag_rows(script: str, cases: list[tuple[list[str], str]], prefix: tuple[str, ...] = ()) -> list[Row]:
    return [Row(script, (*prefix, *args), 2, says) for args, says in cases]


TRAIN_FLAGS = [
    (["--seed", "-1"], "argument --seed: must be 0 or more and at most 4,294,967,295"),
    (["--seed", "4294967296"], "NumPy"),
    (["--seed", "1.5"], "argument --seed"),
    (["--seed", "nan"], "argument --seed"),
    (["--val-split", "60000"], "MNIST has 60,000 training images"),
    (["--val-split", "-1"], "argument --val-split"),
    (["--val-split", "inf"], "argument --val-split"),
    (["--lr", "inf"], "argument --lr: must be a finite positive number, got inf"),
    (["--lr=-inf"], "argument --lr: must be a finite positive number"),
    (["--lr", "nan"], "argument --lr: must be a finite positive number, got nan"),
    (["--lr", "1e400"], "argument --lr: must be a finite positive number"),
    (["--ema-decay", "1"], "argument --ema-decay: must be a number from 0 to 0.99999, got 1: the average would barely move"),
    (["--distil-from", "{nowhere}"], "no/such/folder: no such file"),
    (["--distil-from"], "argument --distil-from: expected at least one argument"),
    (["--distil-weight", "0.5"], "distil_weight is for distillation: give distil_from (--distil-from) or mnist_teachers (--mnist-teachers) too"),
    (["--distil-temperature", "2"], "distil_temperature is for distillation: give distil_from (--distil-from) or mnist_teachers (--mnist-teachers) too"),  # the default
    (["--distil-images", "all"], "distil_images is for distillation: give distil_from (--distil-from) or mnist_teachers (--mnist-teachers) too"),  # the default
    (["--distil-from", "{junk_ckpt}", "--distil-images", "codes"], "argument --distil-images: invalid choice: 'codes'"),
    (["--distil-from", "{junk_ckpt}", "--distil-weight", "1.5"], "argument --distil-weight: must be a number from 0 to 1, got 1.5"),
    (["--distil-from", "{junk_ckpt}", "--distil-temperature", "0"], "argument --distil-temperature: must be a number from 0.1 to 100"),
    (["--distil-from", *["{junk_ckpt}"] * 17], "distil_from must name 1 to 16 model files, got 17"),
    (["--mnist-teachers", "17"], "argument --mnist-teachers: must be 0 or more and at most 16, got 17: each teacher is one more forward pass"),
    (["--mnist-teachers", "-1"], "argument --mnist-teachers"),
    (["--distil-from", "{junk_ckpt}", "--mnist-teachers", "1"], "give teachers by distil_from (--distil-from) or train them by mnist_teachers"),
    (["--recipe", "best", "--mnist-teachers", "0", "--distil-weight", "0.5"], "distil_weight is for distillation"),
    (["--lr", "0"], "argument --lr"),
    (["--lr", "-0.001"], "argument --lr"),
    (["--finetune-lr", "inf"], "argument --finetune-lr"),
    (["--finetune-lr", "nan"], "argument --finetune-lr"),
    (["--epochs", "0"], "argument --epochs: must be a positive integer"),
    (["--epochs", "-3"], "argument --epochs"),
    (["--epochs", "nan"], "argument --epochs"),
    (["--epochs", "1e12"], "argument --epochs"),
    (["--epochs", "1000000000000"], "argument --epochs: must be a positive integer no larger than 1,000"),
    (["--batch-size", "0"], "argument --batch-size: must be a positive integer"),
    (["--batch-size", "inf"], "argument --batch-size"),
    (["--batch-size", "100000000000000000000"], "argument --batch-size"),
    (["--finetune-batch-size", "0"], "argument --finetune-batch-size"),
    (["--finetune-epochs", "-1"], "argument --finetune-epochs"),
    (["--limit-train", "0"], "argument --limit-train"),
    (["--limit-train", "nan"], "argument --limit-train"),
    (["--code-digits", "-1"], "argument --code-digits"),
    (["--code-digits", "1000000000"], "argument --code-digits"),
    (["--printed-digits", "inf"], "argument --printed-digits"),
    (["--printed-digits", "1000000000"], "argument --printed-digits"),
    (["--style-digits", "-5"], "argument --style-digits"),
    (["--optimizer", "rmsprop"], "invalid choice"),
    (["--precision", "float16"], "invalid choice"),
    (["--accelerator", "tpu"], "invalid choice"),
    (["--lr-schedule", "step"], "invalid choice"),
    (["--recipe", "fastest"], "invalid choice"),
    (["--data-dir", "{file}"], "is not a folder"),
    (["--data-dir", "{nowhere}"], "is not a folder"),
    (["--frobnicate"], "unrecognized arguments"),
    (["--epochs"], "expected one argument"),
]

ROWS: list[Row] = [
    # ------------------------------------------------------------------------ train.py: bad flags (2)
    # Each after a short run's flags (the later value counts), so a regression that let one through would
    # end in seconds, in a scratch folder, not start a ten-epoch run in runs/.
    *flag_rows("train.py", TRAIN_FLAGS, prefix=("--framework", "torch", "--out", "{scratch}", "--epochs", "1",
                                                "--limit-train", "100", "--val-split", "0", "--no-progress")),
    Row("train.py", ("--framework", "jax"), 2, "invalid choice"),
    # a teacher that is not a model: read before the run folder is claimed or a framework imported (1)
    Row("train.py", ("--framework", "keras", "--distil-from", "{junk_ckpt}", "--out", "{fresh}", "--no-progress"), 1,
        "junk.ckpt: not a LeNet-5 torch model file"),
    Row("train.py", ("--epochs", "3"), 2, "--framework"),
    # train.py: data that cannot be read (1), through the whole CLI (a framework is imported: a few seconds)
    Row("train.py", ("--framework", "torch", "--data-dir", "{eio_data}", "--out", "{fresh}", "--no-progress"), 1,
        "Input/output error"),
    # ------------------------------------------------------------------------------------- compare.py
    *flag_rows("compare.py", [
        (["--seeds", "0"], "argument --seeds"),
        (["--seeds", "nan"], "argument --seeds"),
        (["--seeds", "4294967297"], "argument --seeds"),
        (["--frameworks", "jax"], "invalid choice"),
        (["--frameworks"], "expected at least one argument"),
        (["--epochs", "0"], "argument --epochs"),
        (["--val-split", "60000"], "argument --val-split"),
        (["--limit-train", "-5"], "argument --limit-train"),
        (["--recipe", "fastest"], "invalid choice"),
        (["--data-dir", "{nowhere}"], "is not a folder"),
        (["--data-dir", "{file}"], "is not a folder"),
        (["--lr", "0.1"], "unrecognized arguments"),  # not one of the flags compare passes on
    ]),
    Row("compare.py", ("--out", "{file}"), 1, "is a file, not a folder"),
    Row("compare.py", ("--out", "{file}/sub"), 1, "cannot create the folder"),
    Row("compare.py", ("--out", "{readonly}/sub"), 1, "cannot create the folder (Permission denied)", unprivileged=True),
    Row("compare.py", ("--data-dir", "{empty}"), 1, "lacks the MNIST files"),
    Row("compare.py", ("--data-dir", "{eio_data}"), 1, "Input/output error"),
    Row("compare.py", ("--data-dir", "{fifo_data}"), 1, "is not a regular file"),
    Row("compare.py", ("--data-dir", "{locked}"), 1, "Permission denied", unprivileged=True),
    Row("compare.py", ("--data-dir", "{unreadable_data}"), 1, "Permission denied", unprivileged=True),
    Row("compare.py", (), 1, "is not a folder", env={"LENET_DATA_DIR": "{file}"}),
    # --------------------------------------------------------------------------------------- bench.py
    *flag_rows("bench.py", [
        (["--epochs", "0"], "argument --epochs"),
        (["--epochs", "1000"], "warm-up"),
        (["--rounds", "0"], "argument --rounds"),
        (["--rounds", "inf"], "argument --rounds"),
        (["--batch-size", "0"], "argument --batch-size"),
        (["--runners", "jax_loop"], "invalid choice"),
        (["--accelerator", "tpu"], "invalid choice"),
        (["--limit-train", "0"], "argument --limit-train"),
        (["--data-dir", "{nowhere}"], "is not a folder"),
    ]),
    Row("bench.py", ("--out", "{file}"), 1, "is a file, not a folder"),
    Row("bench.py", ("--profile", "--out", "{file}"), 1, "is a file, not a folder"),
    Row("bench.py", ("--out", "{readonly}/sub"), 1, "Permission denied", unprivileged=True),
    Row("bench.py", ("--data-dir", "{empty}"), 1, "lacks the MNIST files"),
    Row("bench.py", ("--profile", "--data-dir", "{eio_data}"), 1, "Input/output error"),
    # -------------------------------------------------------------------------------- train_parity.py
    *flag_rows("train_parity.py", [
        (["--seed", "-1"], "argument --seed"),
        (["--seed", "4294967296"], "argument --seed"),
        (["--epochs", "0"], "argument --epochs"),
        (["--limit-train", "nan"], "argument --limit-train"),
        (["--data-dir", "{file}"], "is not a folder"),
    ]),
    Row("train_parity.py", ("--out", "{file}"), 1, "is a file, not a folder"),
    Row("train_parity.py", ("--out", "{readonly}/sub"), 1, "Permission denied", unprivileged=True),
    Row("train_parity.py", ("--data-dir", "{empty}"), 1, "lacks the MNIST files"),
    # ---------------------------------------------------------------------------------- tune_cuts.py
    *flag_rows("tune_cuts.py", [
        (["--seeds", "77"], "--seeds 77 is a test or development seed"),
        (["--seeds", "21", "91"], "--seeds 91 is a test or development seed"),
        (["--seeds", "203"], "--seeds 203 is a test or development seed"),
        (["--shifts", "3,x"], "argument --shifts: '3,x': give positive whole pixels"),
        (["--shifts", "0,3"], "argument --shifts"),
        (["--margins", "-0.1"], "argument --margins"),
        (["--margins", "nan"], "argument --margins"),
        (["--n", "0"], "argument --n"),
    ], prefix=("--model", "{junk_ckpt}")),
    *flag_rows("tune_cuts.py", [(["--model", "{file}"], "unknown model format"), ([], "the following arguments are required: --model")]),
    # --------------------------------------------------------------------------------- tune_views.py
    *flag_rows("tune_views.py", [
        (["--stress-seeds", "59"], "--stress-seeds 59 is a test or development seed"),
        (["--code-seeds", "21", "113"], "--code-seeds 113 is a test or development seed"),
        (["--stress-seeds", "31", "64"], "--stress-seeds 64 is a test or development seed"),
        (["--code-seeds", "205"], "--code-seeds 205 is a test or development seed"),
        (["--angles", "10,x"], "argument --angles: '10,x': give angles in degrees"),
        (["--angles", "90"], "argument --angles"),
        (["--extra", "blur"], "argument --extra: invalid choice: 'blur'"),
    ], prefix=("--model", "{junk_ckpt}")),
    # ------------------------------------------------------------------------------ cleanup_steps.py
    *flag_rows("cleanup_steps.py", [
        (["--without", "bogus"], "argument --without: invalid choice: 'bogus'"),
        (["--n", "-1"], "argument --n"),
        (["--stress-seeds", "x"], "argument --stress-seeds"),
    ]),
    # --------------------------------------------------------------- python -m parity.data.mnist (data)
    Row("-m parity.data.mnist", ("--data-folder", "x"), 2, "unrecognized arguments"),
    Row("-m parity.data.mnist", ("--data-dir", "{nowhere}"), 1, "does not exist"),
    Row("-m parity.data.mnist", ("--data-dir", "{file}"), 1, "is not a folder"),
    Row("-m parity.data.mnist", (), 1, "is not a folder", env={"LENET_DATA_DIR": "{file}"}),
    Row("-m parity.data.mnist", ("--data-dir", "{empty}"), 1, "lacks the MNIST files"),
    Row("-m parity.data.mnist", ("--data-dir", "{eio_data}"), 1, "Input/output error"),
    Row("-m parity.data.mnist", ("--data-dir", "{fifo_data}"), 1, "is not a regular file"),
    Row("-m parity.data.mnist", ("--data-dir", "{folder_data}"), 1, "is not a regular file"),
    Row("-m parity.data.mnist", ("--data-dir", "{corrupt_data}"), 1, "is not the published MNIST"),
    Row("-m parity.data.mnist", ("--data-dir", "{locked}"), 1, "Permission denied", unprivileged=True),
    Row("-m parity.data.mnist", ("--data-dir", "{locked}/inner"), 1, "Permission denied", unprivileged=True),
    Row("-m parity.data.mnist", ("--data-dir", "{unreadable_data}"), 1, "Permission denied", unprivileged=True),
]


def row_id(row: Row) -> str:
    env = " ".join(f"{k}={v}" for k, v in row.env.items())
    return f"{row.script} {' '.join(row.args)} {env}".strip()


def data_folder(parent: Path, name: str, train_images) -> Path:
    """A folder with MNIST's four file names: the training images as `train_images(path)` makes them, the
    rest empty (never read: the training images are read and verified first)."""
    folder = parent / name
    folder.mkdir()
    for file in FILES:
        if file != TRAIN_IMAGES:
            (folder / file).write_bytes(b"")
    train_images(folder / TRAIN_IMAGES)
    return folder


@pytest.fixture(scope="module")
def places():
    """The paths rows refer to, in a folder of its own that the user nobody can reach (a pytest tmp_path
    is private to its owner)."""
    root = Path(tempfile.mkdtemp(prefix="cli-errors-"))
    root.chmod(0o755)
    paths = {"file": root / "a-file", "nowhere": root / "no" / "such" / "folder", "empty": root / "empty",
             "readonly": root / "readonly", "locked": root / "locked", "fresh": root / "fresh-run",
             "scratch": root / "scratch-run"}
    paths["file"].write_text("not a folder\n")
    paths["junk_ckpt"] = root / "junk.ckpt"  # a model file by its name; never read by a row that stops at its flags
    paths["junk_ckpt"].write_text("not a checkpoint\n")
    paths["empty"].mkdir()
    paths["readonly"].mkdir(mode=0o555)
    paths["readonly"].chmod(0o555)  # mkdir's mode is masked by the umask
    # EIO on read for any user, root too: /proc/self/mem read at offset 0.
    paths["eio_data"] = data_folder(root, "eio", lambda p: p.symlink_to("/proc/self/mem"))
    paths["fifo_data"] = data_folder(root, "fifo", os.mkfifo)  # opening it would wait for a writer forever
    paths["folder_data"] = data_folder(root, "folder", Path.mkdir)  # a folder is not "missing"
    paths["corrupt_data"] = data_folder(root, "corrupt", lambda p: p.write_bytes(b"\0\0\x08\x03" + b"\0" * 12))
    paths["unreadable_data"] = data_folder(root, "unreadable", lambda p: (p.write_bytes(b"x"), p.chmod(0)))
    data_folder(root, "locked", lambda p: p.write_bytes(b"x"))
    paths["locked"].chmod(0)
    try:
        yield paths
    finally:
        for path in (paths["locked"], paths["readonly"]):
            path.chmod(0o755)
        shutil.rmtree(root)


AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]  # util-linux


def can_drop_to_nobody(repo_root: Path) -> bool:
    if shutil.which("setpriv") is None:
        return False
    done = subprocess.run([*AS_NOBODY, sys.executable, "-c", "import parity.cli"], cwd=repo_root, capture_output=True, timeout=60)
    return done.returncode == 0


def snapshot(paths: dict[str, Path]) -> dict[str, object]:
    """What the rows must leave as it was: every place's entries and their contents (no cache, no stub)."""
    state = {}
    for name, path in paths.items():
        if name in ("locked", "fresh", "scratch"):
            continue  # unreadable by design; train.py's run folders
        if path.is_dir() and not path.is_symlink():
            state[name] = sorted((p.name, p.stat().st_size if p.is_file() and os.access(p, os.R_OK) else None)
                                 for p in path.iterdir() if not p.is_fifo())
        elif path.is_file():
            state[name] = path.read_bytes()
    return state


def run(repo_root: Path, row: Row, places: dict[str, Path]) -> tuple[subprocess.CompletedProcess, float]:
    fill = {name: str(path) for name, path in places.items()}
    args = [a.format(**fill) for a in row.args]
    command = [sys.executable, *(row.script.split() if row.script.startswith("-m") else [f"scripts/{row.script}"]), *args]
    env = {k: v for k, v in os.environ.items() if k != "LENET_DATA_DIR"}
    env.update({k: v.format(**fill) for k, v in row.env.items()})
    if row.unprivileged and AS_ROOT:
        if not can_drop_to_nobody(repo_root):
            pytest.skip("running as root and cannot run the script as nobody, whom permissions stop")
        command = [*AS_NOBODY, *command]
        env["HOME"] = str(places["empty"].parent)  # nobody's own HOME does not exist
    start = time.perf_counter()
    done = subprocess.run(command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    return done, time.perf_counter() - start


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_an_ordinary_mistake_is_one_line_and_the_right_exit_code(repo_root, places, row):
    before = snapshot(places)
    done, seconds = run(repo_root, row, places)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.returncode == row.code, done.stderr
    assert len(lines) == 1, done.stderr
    assert row.says in lines[0], lines[0]
    if row.code == 1:
        assert lines[0].startswith("error: "), lines[0]
    else:  # through the parser: "<script>: error: ... (see --help)"
        assert ": error: " in lines[0] and lines[0].endswith("(see --help)"), lines[0]
    assert snapshot(places) == before  # nothing cached, written or left half-done in any place it names
    if row.parse_error:
        assert seconds < PARSE_SECONDS, f"{seconds:.2f} s: a framework imported before parsing?"


@pytest.mark.parametrize("script", ["train.py", "compare.py", "bench.py", "train_parity.py", "tune_cuts.py", "cleanup_steps.py", "tune_views.py"])
def test_a_bad_flag_imports_no_framework(repo_root, script):
    """A parse error ends the process before torch, TensorFlow, Keras, Lightning or JAX is imported."""
    code = (
        "import sys, runpy\n"
        f"sys.argv = [{script!r}, '--epochs', '0']\n"
        "try:\n"
        f"    runpy.run_path('scripts/{script}', run_name='__main__')\n"
        "except SystemExit as exit_:\n"
        "    assert exit_.code == 2, exit_.code\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'lightning', 'jax', 'matplotlib') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_compare_stopped_by_sigterm_exits_143_and_leaves_no_training_behind(repo_root, tmp_path):
    """SIGTERM to compare.py while its train.py child trains: compare ends at once with exit 143 and one
    last line saying so, and takes the child with it (no orphaned run left training)."""
    out = tmp_path / "compare"
    command = [sys.executable, "scripts/compare.py", "--frameworks", "torch", "--epochs", "50", "--limit-train", "2000",
               "--val-split", "0", "--no-progress", "--out", str(out)]
    compare = subprocess.Popen(command, cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert compare.stdout.readline().startswith("== torch, seed 0")  # the child is being started
        deadline = time.monotonic() + 120
        while not training_processes(out) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert training_processes(out), "train.py never started"
        time.sleep(1)
        compare.send_signal(signal.SIGTERM)
        _, stderr = compare.communicate(timeout=60)
    finally:
        compare.kill()
    assert compare.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted by SIGTERM; run it again to start over"
    assert "Traceback" not in stderr
    assert training_processes(out) == []


def training_processes(out: Path) -> list[int]:
    """The pids of live processes whose command line names `out` but is not compare.py itself."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(out).encode() in a for a in args) and not any(a.endswith(b"compare.py") for a in args):
            pids.append(int(cmdline.parent.name))
    return pids
