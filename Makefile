# Everything runs in place from .venv, installed from the project's own pinned requirements.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-keras2 lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

# The main job on the embedded default: no download, no accelerator.
demo: setup
	$(PY) main.py --flagfile=configs/demo_cpu.flags

# The whole test suite (what CI runs).
test: setup
	$(PY) -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/vermin --target=3.9- --no-tips --violations --exclude-regex '^\.venv' .

clean:
	rm -rf results .pytest_cache
