# Set-up is part of every target: each creates its own virtual environment (.venv) on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# one thread per process: small networks gain nothing from more, and oversubscribed cores
# made the demo 10x slower on a busy machine (measured: 31 s vs 6.5 min)
export OMP_NUM_THREADS ?= 1

.PHONY: demo test bench clean-venv

# .base: the package and what the demo needs; .installed: plus the test extras (make test)
$(VENV)/.base: pyproject.toml
	python3 -m venv $(VENV)
	# the CPU build of torch lies on this machine's disk; install it first so nothing pulls a CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed: $(VENV)/.base
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/lit-ip predict --config configs/predict/demo.yaml

test: $(VENV)/.installed
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(VENV)/.installed
	$(PY) benchmarks/method_speed.py

clean-venv:
	rm -rf $(VENV)
