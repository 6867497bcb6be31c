"""--mnist-teachers (the `best` recipe's first stages): parity.runs.stages trains each teacher into
OUT/teachers/seed-S/, then the student learns from their model files. A stand-in `train` records what each
stage was asked to do, so the order, folders and configs are checked in a fraction of a second; the real
runs of both frameworks are tests/test_training_parity.py's and the recipe's own."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from parity.config import recipe_config
from parity.runs.stages import MODEL_FILE, train_stages


class RecordingTrain:
    def __init__(self):
        self.calls = []

    def __call__(self, config, *, resume=False):
        self.calls.append((config, resume))
        return SimpleNamespace(config=config.to_dict())


@pytest.mark.parametrize("framework", ["torch", "keras"])
@pytest.mark.parametrize("resume", [False, True])
def test_teachers_train_first_then_the_student_learns_from_their_files(tmp_path, framework, resume):
    out = tmp_path / "run"
    config = recipe_config("best", framework=framework, seed=3, out=out)
    train = RecordingTrain()
    stages = train_stages(config, train, resume=resume)

    teachers, student = [call[0] for call in train.calls[:2]], train.calls[2][0]
    assert len(train.calls) == 3 and all(call[1] is resume for call in train.calls)
    assert [t.out for t in teachers] == [out / "teachers" / "seed-3", out / "teachers" / "seed-4"]
    assert [t.seed for t in teachers] == [3, 4]
    assert all(t.code_digits == t.printed_digits == t.style_digits == t.mnist_teachers == 0 and t.distil_from is None for t in teachers)
    assert student.out == out and student.seed == 3 and student.mnist_teachers == 0
    assert student.distil_from == tuple(t.out / MODEL_FILE[framework] for t in teachers)
    assert (student.distil_weight, student.distil_images, student.code_digits) == (0.65, "mnist", 20_000)
    assert [label for label, _ in stages] == ["teacher 1 of 2: ", "teacher 2 of 2: ", ""]
    if not resume:  # the run's config.json: what --resume continues, teachers and all
        assert json.loads((out / "config.json").read_text())["mnist_teachers"] == 2


def test_teachers_then_a_fine_tune_from_the_taught_first_stage(tmp_path):
    config = recipe_config("best", framework="torch", mnist_teachers=1, finetune_epochs=2, out=tmp_path)
    train = RecordingTrain()
    labels = [label for label, _ in train_stages(config, train)]
    assert labels == ["teacher 1 of 1: ", "pretrained: ", "fine-tuned: "]
    teacher, first, tune = (call[0] for call in train.calls)
    assert first.out == tmp_path / "pretrained" and first.distil_from == (tmp_path / "teachers" / "seed-0" / "model.ckpt",)
    assert tune.init_from == tmp_path / "pretrained" / "model.ckpt" and tune.epochs == 2


def test_a_run_without_teachers_is_one_stage(tmp_path):
    train = RecordingTrain()
    stages = train_stages(recipe_config("seed", framework="keras", out=tmp_path), train)
    assert [label for label, _ in stages] == [""] and train.calls[0][0].distil_from is None
    assert not Path(tmp_path / "teachers").exists()
