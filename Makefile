# The two commands: `make train` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
SEEDS ?= 1

.PHONY: train test test-slow data bench best best-stages parity clean

$(INSTALLED): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --constraint requirements/constraints.txt --editable ".[all]"
	touch $@

data: $(INSTALLED)  ## fetch and verify MNIST into data/ (once)
	$(PY) -m parity.data.mnist

train: data  ## seed recipe in both frameworks, then their metrics side by side
	$(PY) scripts/compare.py --seeds $(SEEDS) --out runs/compare

test: data  ## the default suite (about 13 minutes on 2 CPU cores)
	$(PY) -m pytest

test-slow: data  ## the slow tests only: full-MNIST training and parity runs
	$(PY) -m pytest -m slow

bench: data  ## speed of torch_loop, Lightning and Keras side by side (runs/bench/bench.json)
	$(PY) scripts/bench.py --epochs 4 --rounds 3 --out runs/bench

.PHONY: bench-devices
bench-devices: data  ## seconds per epoch on 1 and 2 devices: Lightning DDP, Keras on TensorFlow and on JAX (bench.json "data_parallel")
	$(PY) scripts/bench.py --devices 2 --epochs 2 --rounds 2 --out runs/bench

.PHONY: bench-inference
bench-inference: $(INSTALLED)  ## reading speed end to end: predict.py, codes.py solve, the normaliser (bench.json "inference")
	$(PY) scripts/bench.py --inference --rounds 5 --out runs/bench

parity: data  ## float64 step-by-step training parity over one full epoch (runs/train_parity)
	$(PY) scripts/train_parity.py --out runs/train_parity

best: data  ## the "best" recipe in both frameworks, then MNIST and verification-code scores
	$(PY) scripts/train.py --framework torch --recipe best --out runs/best-torch --overwrite
	$(PY) scripts/train.py --framework keras --recipe best --out runs/best-keras --overwrite
	$(PY) scripts/codes.py eval --model runs/best-torch/model.ckpt --n 1000 --unseen 1000 | tee runs/best-torch/codes.json
	$(PY) scripts/codes.py eval --model runs/best-keras/model.keras --n 1000 --unseen 1000 | tee runs/best-keras/codes.json
	$(PY) scripts/codes.py picture --model runs/best-torch/model.ckpt --out runs/best-torch/digits.png

best-stages:  ## scores of the best recipe's first stage (before the MNIST fine-tune), after `make best`
	$(PY) scripts/codes.py eval --model runs/best-torch/pretrained/model.ckpt --n 1000 --unseen 1000 | tee runs/best-torch/pretrained/codes.json
	$(PY) scripts/codes.py eval --model runs/best-keras/pretrained/model.keras --n 1000 --unseen 1000 | tee runs/best-keras/pretrained/codes.json

clean:
	rm -rf $(VENV) runs lightning_logs .pytest_cache
