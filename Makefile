# The two commands: `make train` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
SEEDS ?= 1

.PHONY: train test test-slow data bench compare clean

$(INSTALLED): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --constraint requirements/constraints.txt --editable ".[all]"
	touch $@

data: $(INSTALLED)  ## fetch and verify MNIST into data/ (once)
	$(PY) -m parity.mnist

train: data  ## seed recipe in both frameworks, then their metrics side by side
	$(PY) scripts/compare.py --seeds $(SEEDS) --out runs/compare

test: data  ## the default suite (about 10 minutes on 2 CPU cores)
	$(PY) -m pytest

test-slow: data  ## the slow tests only: full-MNIST training and parity runs
	$(PY) -m pytest -m slow

bench: data
	$(PY) scripts/bench.py --out runs/bench

clean:
	rm -rf $(VENV) runs lightning_logs .pytest_cache
