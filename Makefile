# Everything runs in place from .venv, installed from the project's own pinned requirements.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup setup-runtime demo test test-slow test-keras2 lint bench clean

# The runtime (what training, evaluation and export need) and, for tests and benchmarks, the development
# requirements on top (PyTorch and torchvision as references, pytest, linters).
setup-runtime: $(VENV)/.runtime
setup: $(VENV)/.installed

$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed: $(VENV)/.runtime requirements-dev.txt requirements-export.txt
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

# The main job on the embedded default: no download, no accelerator, runtime requirements only.
demo: setup-runtime
	$(PY) main.py --flagfile=configs/demo_cpu.flags

# Code the Ascend NPU path imports or runs there, where Python is at most 3.9.
PY39_SOURCES := main.py registry.py keras_compat.py atomic.py run_dir.py exit_codes.py backends datasets training zoo tools

# Test processes (pytest-xdist). Each test file runs whole in one of them, so a file's module fixtures (a trained
# run, an export) are built once. Most of a test's time is single-threaded (imports, tracing, subprocess start-up),
# so two processes on 2 cores take about half of one's time (README, Tests); more need more memory (each runs
# TensorFlow and starts main.py processes): `make test TEST_WORKERS=4` on a bigger machine, 0 for one process.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The whole test suite (what CI runs): Python 3.9 syntax of the NPU path, every test under Keras 3,
# then the tests marked keras2 again under Keras 2 (tf_keras), which the NPU adapter runs on.
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/vermin --target=3.9- --no-tips --violations $(PY39_SOURCES)
	$(PY) tools/check_build_deps.py
	$(PYTEST) --durations=30 tests
	TF_USE_LEGACY_KERAS=1 $(PYTEST) -m keras2 tests

# The tests marked slow (deselected by default): the biggest parity checks and end-to-end zoo runs.
test-slow: setup
	$(PYTEST) -m slow tests

# Only the Keras 2 pass.
test-keras2: setup
	TF_USE_LEGACY_KERAS=1 $(PYTEST) -m keras2 tests

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/vermin --target=3.9- --no-tips --violations --exclude-regex '^\.venv' .
	$(PY) tools/check_build_deps.py

# Benchmarks (not tests). `make bench`: the training step of six zoo models in fp32 and bf16 against PyTorch and
# the machine's GEMM-bound limit, evaluation from JPEGs against torchvision's loader, 2-worker scaling; one table
# (bench/suite.py; results and the machine they were measured on: bench/RESULTS.md). Run it on a quiet machine.
bench: setup
	$(PY) bench/suite.py
.PHONY: bench-train-step
# AlexNet alone at batches 64 and 128 in fp32 and mixed bf16, two alternating rounds.
bench-train-step: setup
	$(PY) bench/train_step.py --model=alexnet --batches=64,128 --precisions=fp32,bf16

# Bazel 2.1.0 from the npm registry into .bazel/ (ignored); offline from then on (README, "Bazel").
BAZEL := .bazel/bazel
.PHONY: bazel-setup bazel-test bazel-test-all
bazel-setup: setup
	third_party/bazel_offline/setup.sh

# Every target built, and the quick tests (tag ci) of each layer, importing only their declared deps.
bazel-test: bazel-setup
	$(BAZEL) build --config=ci //...
	$(BAZEL) test --config=ci --test_tag_filters=ci //...

# Every Bazel test but the slow ones: as long as make test's Keras 3 and Keras 2 passes.
bazel-test-all: bazel-setup
	$(BAZEL) test --config=ci --test_tag_filters=-slow //...

clean:
	rm -rf results .pytest_cache
