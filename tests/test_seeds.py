"""The seeds table (parity/codes/seeds.py) against what the Makefile scores and the generators' defaults: a test
seed the table does not list could be tuned on by scripts/tune_*.py without a word."""

from __future__ import annotations

import re
from pathlib import Path

from parity.codes.generate import TRAIN_SEED_BASE
from parity.codes.seeds import (DEVELOPMENT_CODE_SEED, NOT_FOR_TUNING, TEST_CODE_SEEDS, TEST_STRESS_SEEDS,
                                MORE_VALIDATION_STRESS_SEEDS, VALIDATION_CODE_SEEDS, VALIDATION_STRESS_SEEDS)
from parity.codes.stress_splits import DEFAULT_SEEDS

MAKEFILE = (Path(__file__).resolve().parents[1] / "Makefile").read_text()


def scored_seeds(kind: str) -> tuple[set[int], set[int]]:
    """(code seeds, stress seeds) the Makefile's eval lines of `kind` ("validation" or "test") score."""
    variables = dict(re.findall(r"^(\w+) := (.*)$", MAKEFILE, flags=re.M))
    lines = [line for line in MAKEFILE.splitlines() if "codes.py eval" in line]
    lines = [re.sub(r"\$\((\w+)\)", lambda m: variables.get(m[1], m[0]), line) for line in lines]
    mine = [line for line in lines if ("validation.json" in line or "validation-seeds" in line) == (kind == "validation")]
    codes = {int(s) for line in mine for s in re.findall(r"--seed (\d+)", line)}
    stress = {int(s) for line in mine for s in re.findall(r"--stress-seed (\d+)", line)}
    stress |= {DEFAULT_SEEDS[kind] for line in mine if f"--stress-split {kind}" in line and "--stress-seed" not in line}
    # the pairs best-test-seeds, best-test-teachers and validation-seeds loop over
    pairs = re.findall(r"(\d+):(\d+)", variables["FRESH_SEEDS"] + " " + variables["TEACHERS_TEST_SEEDS"]
                       if kind == "test" else variables["VALIDATION_PAIRS"])
    codes |= {int(c) for c, _ in pairs}
    stress |= {int(s) for _, s in pairs}
    if kind == "test":  # the code seeds best-test-reader loops over
        codes |= {int(s) for s in variables["READER_TEST_SEEDS"].split()}
    return codes, stress


def test_every_seed_the_makefile_tests_on_is_listed_as_a_test_seed():
    codes, stress = scored_seeds("test")
    assert len(codes) >= 18 and len(stress) >= 12  # 77, 91, 113, 201-215; 53, 59, 61-70
    assert codes <= TEST_CODE_SEEDS and stress <= TEST_STRESS_SEEDS


def test_the_makefile_validates_on_validation_seeds_only():
    codes, stress = scored_seeds("validation")
    assert codes == set(VALIDATION_CODE_SEEDS)  # 21, 22: best-validation and validation-seeds
    assert stress and stress <= set(VALIDATION_STRESS_SEEDS)


def test_each_list_of_seed_pairs_is_scored_on_its_own_split():
    """fresh-seeds, best-test-teachers and validation-seeds share one eval loop (score-pairs): each hands it its
    pairs and split."""
    assert re.search(r'PAIRS="\$\(FRESH_SEEDS\)" SPLIT=test ', MAKEFILE)
    assert re.search(r'PAIRS="\$\(TEACHERS_TEST_SEEDS\)" SPLIT=test ', MAKEFILE)
    assert re.search(r'PAIRS="\$\(VALIDATION_PAIRS\)" SPLIT=validation ', MAKEFILE)
    assert len(re.findall(r"PAIRS=", MAKEFILE)) == 3  # no other caller


def test_no_seed_has_two_roles():
    assert not set(VALIDATION_CODE_SEEDS) & NOT_FOR_TUNING["codes"]
    assert not set(VALIDATION_STRESS_SEEDS + MORE_VALIDATION_STRESS_SEEDS) & NOT_FOR_TUNING["stress"]
    assert DEVELOPMENT_CODE_SEED in NOT_FOR_TUNING["codes"]
    assert DEFAULT_SEEDS["test"] in TEST_STRESS_SEEDS and DEFAULT_SEEDS["validation"] in VALIDATION_STRESS_SEEDS
    assert max(TEST_CODE_SEEDS | set(VALIDATION_CODE_SEEDS)) < TRAIN_SEED_BASE  # training codes start there
