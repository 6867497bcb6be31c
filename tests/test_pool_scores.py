"""Pooling eval scores over seeds (parity/runs/pooled.py, scripts/pool_scores.py): counts, errors, the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from parity.runs.pooled import PoolError, pooled, table

ROOT = Path(__file__).resolve().parents[1]


def score(seed: int, digits_right: int, codes_right: int, stress_seed: int | None = None, model: str = "m.ckpt",
          classes: dict | None = None) -> dict:
    """An eval JSON of 100 codes (400 digits), 50 unseen digits and, with stress_seed, a stress part."""
    out = {"model": model, "framework": "torch", "codes": 100, "seed": seed, "size": [160, 60],
           "digit_accuracy": digits_right / 400, "code_accuracy": codes_right / 100,
           "unseen_digits": 50, "unseen_digit_accuracy": 49 / 50}
    if stress_seed is not None:
        classes = classes or {"grid": (10, 9), "tiny": (10, 7)}
        out["stress"] = {"split": "test", "seed": stress_seed, "n": sum(n for n, _ in classes.values()),
                         "overall": sum(r for _, r in classes.values()) / sum(n for n, _ in classes.values()),
                         "classes": {c: {"n": n, "accuracy": r / n, "no_digit": 0.0} for c, (n, r) in classes.items()}}
    return out


def test_pooled_counts_every_right_answer_over_all_items():
    pool = pooled([score(1, 396, 97, 11), score(2, 390, 90, 12, classes={"grid": (10, 10), "tiny": (11, 5)})])
    assert pool["code_seeds"] == [1, 2]
    assert pool["code_digits"]["items"] == 800
    assert pool["code_digits"]["accuracy"] == pytest.approx(786 / 800)
    assert pool["code_digits"]["standard_error"] == pytest.approx(math.sqrt(786 / 800 * 14 / 800 / 800))
    assert (pool["code_digits"]["lowest"], pool["code_digits"]["highest"]) == (390 / 400, 396 / 400)
    assert pool["whole_codes"]["accuracy"] == pytest.approx(187 / 200)
    assert pool["unseen_digits"]["accuracy"] == pytest.approx(98 / 100)
    stress = pool["stress"]
    assert stress["seeds"] == [11, 12] and stress["split"] == "test"
    assert stress["overall"]["items"] == 41 and stress["overall"]["accuracy"] == pytest.approx(31 / 41)
    # weighted by each seed's own class size, not a mean of the two accuracies (0.7 and 5/11)
    assert stress["classes"]["tiny"]["accuracy"] == pytest.approx(12 / 21)
    assert stress["classes"]["grid"]["accuracy"] == pytest.approx(19 / 20)


def test_a_set_is_pooled_only_when_every_seed_has_it():
    pool = pooled([score(1, 396, 97, 11), score(2, 390, 90)])
    assert "stress" not in pool and pool["code_digits"]["seeds"] == 2


@pytest.mark.parametrize("scores, message", [
    ([], "no scores"),
    ([{"seed": 1}], "not the JSON"),
    ([score(1, 396, 97), score(1, 390, 90)], "code seed 1 is given twice"),
    ([score(1, 396, 97), score(2, 390, 90, model="other.keras")], "different models"),
    ([score(1, 396, 97, 11), score(2, 390, 90, 11)], "stress seed 11 is given twice"),
])
def test_scores_that_cannot_be_pooled_are_refused(scores, message):
    with pytest.raises(PoolError, match=message):
        pooled(scores)


def test_table_has_a_row_a_set_and_the_gap_in_points():
    a = pooled([score(1, 396, 97, 11), score(2, 390, 90, 12)])
    b = pooled([score(1, 394, 95, 11, model="k.keras"), score(2, 388, 90, 12, model="k.keras")])
    lines = table([a, b], ["torch", "keras"]).splitlines()
    assert lines[0] == "| set | torch | keras | gap (points) |"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    assert list(rows) == ["code_digits", "whole_codes", "unseen_digits", "stress overall", "stress: grid", "stress: tiny"]
    assert rows["code_digits"].endswith(f"| {100 * (786 - 782) / 800:.2f} |")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "pool_scores.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


def test_cli_pools_folders_side_by_side_and_writes_json(tmp_path):
    for name, model in (("a", "m.ckpt"), ("b", "k.keras")):
        (tmp_path / name).mkdir()
        for seed, stress_seed in ((1, 11), (2, 12)):
            (tmp_path / name / f"seed-{seed}.json").write_text(json.dumps(score(seed, 396 - seed, 97, stress_seed, model=model)))
    result = run(str(tmp_path / "a"), str(tmp_path / "b"), "--json", str(tmp_path / "pooled.json"))
    assert result.returncode == 0, result.stderr
    assert "| stress: tiny |" in result.stdout
    written = json.loads((tmp_path / "pooled.json").read_text())
    assert written[str(tmp_path / "a")]["code_digits"]["items"] == 800


@pytest.mark.parametrize("content, message", [(None, "no .json files"), ("{not json", "not readable JSON"),
                                              ("[1, 2]", "not the JSON of scripts/codes.py eval")])
def test_cli_errors_are_one_line(tmp_path, content, message):
    if content is not None:
        (tmp_path / "seed-1.json").write_text(content)
    result = run(str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_cli_refuses_a_missing_folder(tmp_path):
    result = run(str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr
