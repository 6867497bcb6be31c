"""ONNX in the parity suite: the same weights exported through torch.onnx and through Keras (tf2onnx) give two
interchangeable files that agree with each other and with both native frameworks on all 10,000 MNIST test images.

Tolerance as for the frameworks themselves (tests/test_convert.py): max |softmax difference| <= 1e-5, every
argmax the same. The weights are trained-like (He-normal kernels, a confident last layer, nonzero biases, so
no exporter can fold a bias away): their softmax outputs spread like a trained model's, so float32 rounding
shows as it would in one (a few 1e-6; a fresh Glorot init's near-uniform outputs would hide it). Negative
controls: a torch model with the flatten permutation missing, and files with a MaxPool or a Tanh swapped in.
torch.onnx's own per-node verification names a drifting layer. scripts/export.py runs in real processes
(each suffix, the imports each export makes, --check's JSON line, one-line errors), and scripts/compare.py's
ONNX figures are checked on a compare folder made without training. Only `test_seed_model_*` needs the seed's
file (../shared/seed/) and skips without it. Figures: run with -rP to see them.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import lenet_keras.export as keras_export
import lenet_torch.export as torch_export
from lenet_keras.checkpoint import model_from_weights as keras_model
from lenet_keras.model import predict_probabilities as keras_predict
from lenet_torch.checkpoint import model_from_weights as torch_model
from lenet_torch.model import predict_probabilities as torch_predict
from parity.frameworks.equivalence import compare_outputs
from parity.frameworks.models import write_weights
from parity.frameworks.onnx_runtime import load_onnx
from parity.spec import NUM_PARAMS, Weights, kernel_shapes
from parity.weights.reading import WeightFileError

TOLERANCE = 1e-5  # the hard limit; the figures printed are the measured ones (goal 1e-6)
VERIFY_IMAGES = 1_000  # torch.onnx's per-node verification runs one onnxruntime session per node
SCRIPT = "scripts/export.py"
FRAMEWORK_MODULES = {"torch": {"torch", "lightning"}, "keras": {"tensorflow", "keras", "tf2onnx"}}


def trained_like_weights(seed: int = 0) -> Weights:
    """He-normal kernels (the last layer 3x: confident outputs, median top softmax ~0.5), N(0, 0.1) biases."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in kernel_shapes().items():
        gain = 3.0 if name == "dense_2" else 1.0
        std = gain * np.sqrt(2.0 / np.prod(shape[:-1]))
        weights[name] = {"kernel": rng.normal(0, std, shape).astype(np.float32),
                         "bias": rng.normal(0, 0.1, shape[-1]).astype(np.float32)}
    return weights


def assert_same(a: np.ndarray, b: np.ndarray, what: str):
    diff = compare_outputs(a, b)
    print(f"{what}: max abs diff {diff.max_abs_diff:.2e}, argmax agreement {diff.argmax_agreement:.2%} ({diff.images:,} images)")
    assert diff.max_abs_diff <= TOLERANCE, (what, diff)
    assert diff.argmax_agreement == 1.0, (what, diff)
    return diff


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(probabilities.argmax(1) == labels))


@dataclass
class Exports:
    torch_file: Path
    keras_file: Path
    torch_program: object  # the torch.onnx.ONNXProgram the torch file was saved from
    outputs: dict[str, np.ndarray]  # torch, keras (native), torch_onnx, keras_onnx: softmax on the test images


def export_both(weights: Weights, folder: Path, images: np.ndarray) -> Exports:
    """The weights exported through both exporters, and all four runs of them on `images`."""
    program = torch_export.onnx_program(torch_model(weights))
    torch_file = torch_export.save_program(program, folder / "torch.onnx")
    keras_file = keras_export.export_onnx(keras_model(weights), folder / "keras.onnx")
    outputs = {
        "torch": torch_predict(torch_model(weights), images),
        "keras": keras_predict(keras_model(weights), images),
        "torch_onnx": load_onnx(torch_file).predict_probabilities(images),
        "keras_onnx": load_onnx(keras_file).predict_probabilities(images),
    }
    return Exports(torch_file, keras_file, program, outputs)


# ----------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def weights() -> Weights:
    return trained_like_weights()


@pytest.fixture(scope="module")
def exports(weights, mnist_test, tmp_path_factory) -> Exports:
    return export_both(weights, tmp_path_factory.mktemp("onnx"), mnist_test[0])


# ------------------------------------------------------------------------------------ the exporters


@pytest.mark.parametrize("exporter", ["torch", "keras"])
def test_each_export_follows_the_contract(exports, exporter):
    """One float32 input `images` (batch, 32, 32, 1), one output `probabilities` (batch, 10), opset 18, every
    weight inside; and parity's own checker (load_onnx: LeNet-5's graph, in a forked child) accepts it."""
    path = exports.torch_file if exporter == "torch" else exports.keras_file
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    (given,), (produced,) = proto.graph.input, proto.graph.output
    shape = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    assert (given.name, given.type.tensor_type.elem_type, shape(given)) == ("images", onnx.TensorProto.FLOAT, ["batch", 32, 32, 1])
    assert (produced.name, produced.type.tensor_type.elem_type, shape(produced)) == ("probabilities", onnx.TensorProto.FLOAT, ["batch", 10])
    assert torch_export.written_opset(proto) == 18
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    assert [node.op_type for node in proto.graph.node][-1] == "Softmax"
    model = load_onnx(path)
    assert model.channels_last and model.parameters == NUM_PARAMS  # nonzero biases: nothing folded away
    assert model.predict_probabilities(np.zeros((3, 32, 32), np.float32)).shape == (3, 10)  # any batch, not 2


def test_exports_agree_with_each_other_and_with_both_frameworks(exports, mnist_test):
    """All 10,000 test images, every pairing of the two ONNX files and the two native frameworks."""
    out, labels = exports.outputs, mnist_test[1]
    assert_same(out["torch_onnx"], out["torch"], "torch export vs torch")
    assert_same(out["keras_onnx"], out["keras"], "keras export vs keras")
    assert_same(out["torch_onnx"], out["keras_onnx"], "torch export vs keras export")
    assert_same(out["torch_onnx"], out["keras"], "torch export vs keras")
    assert_same(out["keras_onnx"], out["torch"], "keras export vs torch")
    assert len({accuracy(p, labels) for p in out.values()}) == 1  # the same digits read right, all four ways


def test_torch_export_per_node_verification(exports, mnist_test):
    """torch.onnx.verification: every value the exported graph computes, against the same node in torch."""
    diffs = torch_export.intermediate_diffs(exports.torch_program, mnist_test[0][:VERIFY_IMAGES])
    print("per node, max abs diff ONNX vs torch:", ", ".join(f"{name} {diff:.1e}" for name, diff in diffs.items()))
    for layer in ("conv2d", "avg_pool2d", "conv2d_1", "avg_pool2d_1", "linear", "linear_1", "linear_2", "probabilities"):
        assert layer in diffs, sorted(diffs)
    assert max(diffs.values()) <= TOLERANCE, diffs


def test_a_missing_flatten_permutation_fails_the_same_check(weights, exports, mnist_test, tmp_path):
    """Negative control: the dense kernel handed to torch in Keras's (H, W, C) row order, unpermuted. The export
    runs and looks like LeNet-5, but no longer matches Keras: the check above must fail, and loudly."""
    model = torch_model(weights)
    with torch.no_grad():
        model.dense.weight.copy_(torch.from_numpy(weights["dense"]["kernel"].T.copy()))
    wrong = load_onnx(torch_export.export_onnx(model, tmp_path / "wrong.onnx")).predict_probabilities(mnist_test[0])
    diff = compare_outputs(wrong, exports.outputs["keras"])
    print(f"unpermuted flatten, torch export vs keras: max abs diff {diff.max_abs_diff:.2e}, argmax agreement {diff.argmax_agreement:.2%}")
    assert diff.max_abs_diff > 1_000 * TOLERANCE and diff.argmax_agreement < 0.9, diff
    with pytest.raises(AssertionError):
        assert_same(wrong, exports.outputs["keras"], "unpermuted torch export vs keras")


@pytest.mark.parametrize("swap, message", [(("AveragePool", "MaxPool"), "1 AveragePool ops, LeNet-5 has 2"),
                                           (("Relu", "Tanh"), "3 Relu ops, LeNet-5 has 4")])
def test_a_file_with_another_layer_swapped_in_is_refused(exports, tmp_path, swap, message):
    """The exporters' files pass load_onnx; the same file with one MaxPool or one Tanh swapped in does not."""
    proto = onnx.load(exports.keras_file)
    node = next(node for node in proto.graph.node if node.op_type == swap[0])
    node.op_type = swap[1]
    if swap[1] == "MaxPool":  # a well-formed MaxPool: AveragePool's count_include_pad is not one of its attributes
        kept = [a for a in node.attribute if a.name != "count_include_pad"]
        del node.attribute[:]
        node.attribute.extend(kept)
    onnx.save(proto, tmp_path / "swapped.onnx")
    with pytest.raises(WeightFileError, match=f"swapped.onnx: not LeNet-5: {message}"):
        load_onnx(tmp_path / "swapped.onnx")


def test_a_failed_export_leaves_the_old_file_and_no_temporary(weights, tmp_path):
    """An opset the exporter cannot write is an error (tf2onnx stops at 18), and nothing is replaced."""
    target = tmp_path / "model.onnx"
    target.write_bytes(b"the previous file")
    with pytest.raises(ValueError, match="Opset 19 is not supported"):
        keras_export.export_onnx(keras_model(weights), target, opset=19)
    assert target.read_bytes() == b"the previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_keras_export_at_its_lowest_opset(weights, mnist_test, exports, tmp_path):
    """--opset's lower bound for Keras (scripts/export.py OPSETS) really writes that opset, and computes the same."""
    path = keras_export.export_onnx(keras_model(weights), tmp_path / "opset9.onnx", opset=9)
    assert torch_export.written_opset(onnx.load(path)) == 9
    assert_same(load_onnx(path).predict_probabilities(mnist_test[0]), exports.outputs["keras"], "keras export opset 9 vs keras")


def test_seed_model_exports_score_as_the_seed(seed_weights, mnist_test, tmp_path):
    """The seed's trained model (tf.keras 2.7 .h5): both exports read the test set exactly as the frameworks do."""
    images, labels = mnist_test
    out = export_both(seed_weights, tmp_path, images).outputs
    assert_same(out["torch_onnx"], out["torch"], "seed: torch export vs torch")
    assert_same(out["keras_onnx"], out["keras"], "seed: keras export vs keras")
    assert_same(out["torch_onnx"], out["keras_onnx"], "seed: torch export vs keras export")
    assert_same(out["torch_onnx"], out["keras"], "seed: torch export vs keras")
    assert_same(out["keras_onnx"], out["torch"], "seed: keras export vs torch")
    assert_same(out["torch"], out["keras"], "seed: torch vs keras")
    scores = {name: accuracy(p, labels) for name, p in out.items()}
    print("seed test accuracy:", scores)
    assert len(set(scores.values())) == 1 and scores["torch"] > 0.98, scores


# -------------------------------------------------------------------------------- scripts/export.py


@pytest.fixture(scope="module")
def model_files(weights, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {suffix: write_weights(weights, folder / f"model.{suffix}") for suffix in ("ckpt", "pt", "keras", "h5")}


def imported_modules(importtime_stderr: str) -> set[str]:
    """Top-level module names from `python -X importtime` output ('import time: self | cumulative | name')."""
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in importtime_stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


# suffix, extra flags, the framework that exports, the frameworks the process may import
CLI_CASES = {
    "ckpt": (["--check"], "torch", {"torch"}),
    "keras": (["--check"], "keras", {"keras"}),
    "pt": (["--framework", "keras"], "keras", {"torch", "keras"}),  # torch reads the file, Keras exports it
    "h5": (["--framework", "torch"], "torch", {"torch"}),  # a Keras file into torch: no TensorFlow at all
}


@pytest.fixture(scope="module")
def cli_runs(repo_root, model_files, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """scripts/export.py on each suffix, in real processes (run side by side: most of each is start-up)."""
    folder = tmp_path_factory.mktemp("cli")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": "1"}
    started = {}
    for suffix, (flags, _, _) in CLI_CASES.items():
        out = folder / f"{suffix}.onnx"
        command = [sys.executable, "-X", "importtime", SCRIPT, str(model_files[suffix]), str(out), *flags]
        started[suffix] = (subprocess.Popen(command, cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), out)
    runs = {}
    for suffix, (process, out) in started.items():
        stdout, stderr = process.communicate(timeout=600)
        runs[suffix] = (subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), out)
    return runs


@pytest.mark.parametrize("suffix", list(CLI_CASES))
def test_cli_exports_each_model_format(cli_runs, exports, mnist_test, suffix):
    """Each suffix exports; the file runs like the in-process exports; only the frameworks it needs are imported."""
    done, out = cli_runs[suffix]
    flags, framework, allowed = CLI_CASES[suffix]
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "WARNING" not in done.stderr, done.stderr[-3000:]  # quiet
    modules = imported_modules(done.stderr)
    for name, names in FRAMEWORK_MODULES.items():
        assert bool(names & modules) == (name in allowed), (name, sorted(names & modules))
    assert "onnxruntime" in modules if "--check" in flags else "onnxruntime" not in modules
    assert_same(load_onnx(out).predict_probabilities(mnist_test[0]), exports.outputs[f"{framework}_onnx"], f"CLI .{suffix} -> {framework} export vs in-process export")
    if "--check" not in flags:
        assert done.stdout.startswith(f"wrote {out} (ONNX opset 18 via "), done.stdout


@pytest.mark.parametrize("suffix", ["ckpt", "keras"])
def test_cli_check_prints_one_json_line(cli_runs, mnist_test, exports, suffix):
    done, out = cli_runs[suffix]
    framework = CLI_CASES[suffix][1]
    (line,) = done.stdout.splitlines()
    result = json.loads(line)
    print(f"--check .{suffix}: {line}")
    assert result["path"] == str(out) and result["framework"] == framework and result["opset"] == 18
    assert result["images"] == 10_000 and result["bytes"] == out.stat().st_size and result["parameters"] == NUM_PARAMS
    assert 0 <= result["max_abs_diff"] <= TOLERANCE and result["argmax_agreement"] == 1.0 and result["ok"] is True
    native = accuracy(exports.outputs[framework], mnist_test[1])
    assert result["test_accuracy_onnx"] == result["test_accuracy_native"] == native


@pytest.fixture(scope="module")
def export_script(repo_root) -> dict:
    """scripts/export.py's globals, to call main() in this process (a parse error costs no start-up)."""
    return runpy.run_path(str(repo_root / SCRIPT))


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "the following arguments are required"),
        (["{tmp}/model.txt", "{tmp}/out.onnx"], "unknown model format '.txt'"),
        (["{tmp}/model.onnx", "{tmp}/out.onnx"], "unknown model format '.onnx'"),
        (["{tmp}/absent.keras", "{tmp}/out.onnx"], "absent.keras: no such file"),
        (["{tmp}/model.keras", "{tmp}/out.ckpt"], "an ONNX file's name ends in .onnx"),
        (["{tmp}/model.keras", "{tmp}"], "an ONNX file's name ends in .onnx"),
        (["{tmp}/model.keras", "{tmp}/out.onnx", "--framework", "jax"], "invalid choice: 'jax'"),
        (["{tmp}/model.keras", "{tmp}/out.onnx", "--opset", "19"], "--opset 19: Keras (tf2onnx) writes opsets 9 to 18"),
        (["{tmp}/model.keras", "{tmp}/out.onnx", "--framework", "torch", "--opset", "13"], "torch.onnx writes opsets 16 to 25"),
        (["{tmp}/model.keras", "{tmp}/out.onnx", "--opset", "x"], "argument --opset: invalid integer 'x'"),
        (["{tmp}/model.keras", "{tmp}/out.onnx", "--data-dir", "{tmp}"], "only used with --check"),
    ],
)
def test_usage_errors_exit_2(export_script, capsys, tmp_path, argv, message):
    (tmp_path / "model.keras").write_bytes(b"not checked while parsing")
    (tmp_path / "model.txt").write_bytes(b"")
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(SystemExit) as info:
        export_script["main"]([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert len(err.strip().splitlines()) == 1 and message in err and err.endswith("(see --help)\n"), err
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("case", ["garbage model", "missing folder"])
def test_bad_files_exit_1_with_one_line(repo_root, tmp_path, case):
    """In a real process: one line naming the file, exit 1, no traceback; a bad flag imports no framework."""
    (tmp_path / "model.keras").write_bytes(b"not a zip")
    out = tmp_path / ("absent/out.onnx" if case == "missing folder" else "out.onnx")
    done = subprocess.run([sys.executable, SCRIPT, str(tmp_path / "model.keras"), str(out)], cwd=repo_root,
                          capture_output=True, text=True, timeout=300)
    expected = "does not exist" if case == "missing folder" else "model.keras: not a LeNet-5 keras model file"
    assert done.returncode == 1 and done.stderr.startswith("error: ") and expected in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not out.exists()


def test_a_bad_flag_imports_no_framework(repo_root, tmp_path):
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['export.py', {str(tmp_path / 'm.keras')!r}, 'out.txt']\n"
        "try:\n"
        f"    runpy.run_path({SCRIPT!r}, run_name='__main__')\n"
        "except SystemExit as exit_:\n"
        "    assert exit_.code == 2, exit_.code\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'onnx', 'onnxruntime', 'h5py') if m in sys.modules))\n"
    )
    (tmp_path / "m.keras").write_bytes(b"")
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_failed_check_exits_1_after_its_json_line(export_script, model_files, tmp_path, capsys, monkeypatch):
    """--check is a real check: with no tolerance at all (float32 rounding is never exactly 0), it fails."""
    monkeypatch.setitem(export_script["main"].__globals__, "CHECK_TOLERANCE", 0.0)  # run_path returns a copy
    with pytest.raises(SystemExit) as info:
        export_script["main"]([str(model_files["keras"]), str(tmp_path / "m.onnx"), "--check"])
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert info.value.code == 1 and result["ok"] is False and result["tolerance"] == 0.0 and result["max_abs_diff"] > 0
    assert captured.err.startswith("error: --check failed: max |softmax diff|") and len(captured.err.splitlines()) == 1


# -------------------------------------------------------------------------------- scripts/compare.py


def test_compare_records_onnx_figures(repo_root, weights, mnist_test, tmp_path):
    """compare.py's cross-check and report on a compare folder as training leaves it (seed-0 models, metrics.json):
    each model's own export kept as model.onnx, the ONNX figures in parity.json and report.md."""
    from parity.runs.metrics import EpochMetrics, RunMetrics
    from parity.runs.report import summarize, write_report

    compare = runpy.run_path(str(repo_root / "scripts" / "compare.py"))
    images, labels = mnist_test
    runs = {}
    for name, file in (("torch", "model.ckpt"), ("keras", "model.keras")):
        folder = tmp_path / "runs" / f"{name}-seed0"
        folder.mkdir(parents=True)
        write_weights(weights, folder / file)
        runs[name] = [RunMetrics(name, NUM_PARAMS, 0.1, 2.3, 10_000, 1, 1.0, 1.0, "cpu", 0, "seed", {},
                                 [EpochMetrics(1, 2.3, 0.1, 1.0)])]
    args = type("Args", (), {"frameworks": ["torch", "keras"], "out": tmp_path})()
    figures, matrices = compare["cross_check"](args, images, labels)
    write_report(tmp_path, summarize(runs, figures), runs, matrices)

    parity = json.loads((tmp_path / "parity.json").read_text())
    report = (tmp_path / "report.md").read_text()
    assert "ONNX export" in report
    for name in ("torch", "keras"):
        onnx_figures = parity["onnx"][name]
        print(f"compare, {name} seed 0: {onnx_figures}")
        assert onnx_figures["path"] == f"runs/{name}-seed0/model.onnx" and onnx_figures["exported_by"] == name
        assert onnx_figures["images"] == 10_000 and onnx_figures["argmax_agreement"] == 1.0
        for what in ("torch_export_vs_torch", "keras_export_vs_keras", "torch_export_vs_keras_export"):
            assert 0 <= onnx_figures[f"max_abs_diff_{what}"] <= TOLERANCE, (name, what, onnx_figures)
        load_onnx(tmp_path / onnx_figures["path"])
        assert f"| {name} seed 0 | `runs/{name}-seed0/model.onnx` |" in report
        assert sorted(p.name for p in (tmp_path / "runs" / f"{name}-seed0").iterdir()) == sorted(
            ["model.onnx", "model.ckpt" if name == "torch" else "model.keras"])  # no scratch export left
