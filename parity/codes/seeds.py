"""Which seeds of the project's own sets are for what: one table, so that no tuning script can pick a test seed.

Codes (`parity.codes.generate`) and unseen-style digits (`fonts.unseen_style_digits`) share a code seed; the
style stress set (`parity.codes.stress`) has seeds of its own per split. Training codes use seeds from
`generate.TRAIN_SEED_BASE` (1000) up and the stress set's train split its own salt, so neither meets these.
Validation seeds are for choices; test seeds are scored once, after the choices (Makefile: best-test,
best-test-cuts, best-test-views, best-test-seeds, best-test-reader, best-test-teachers), and never tuned on.
"""

from __future__ import annotations

VALIDATION_CODE_SEEDS = (21, 22)
VALIDATION_STRESS_SEEDS = (31, 32)
MORE_VALIDATION_STRESS_SEEDS = (33, 34)  # looked at for trials rejected on validation: validation seeds too, never test
DEVELOPMENT_CODE_SEED = 7  # looked at while the reader was built, before the protocol: never a validation seed
TEST_CODE_SEEDS = frozenset({77, 91, 113, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215})
TEST_STRESS_SEEDS = frozenset({53, 59, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70})
NOT_FOR_TUNING = {"codes": TEST_CODE_SEEDS | {DEVELOPMENT_CODE_SEED}, "stress": TEST_STRESS_SEEDS}
#
# Choice 9 (`best` learns from two MNIST-only teachers) retrained the models after seeds 206-210 were scored: its
# test is codes and unseen-style digits of seeds 211-215 and stress test splits of seeds 66-70, named here and
# committed before any was scored, scored ONCE (runs/best-*/test-teachers/, runs/test-teachers.json).
