"""Shared test set-up: quiet TensorFlow, the repository root on sys.path, helpers."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(*args: str, env=None, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Runs ``python main.py ARGS`` in a real process from the repository root."""
    full_env = dict(os.environ)
    full_env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    full_env.update(env or {})
    # Tests compare numbers computed in float32; --precision=auto would choose bfloat16 on CPUs with
    # bfloat16 instructions (this project's CI machines). Given first, a test's own --precision (or a
    # flag file's) overrides it.
    proc = subprocess.run([sys.executable, "main.py", "--precision=fp32", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"main.py {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def main_runner():
    return run_main


# Per-model tests run every zoo model under `make test-slow`; the default suite runs one or two of each family
# (every kind of block, layer and head), so that it stays within CI's time budget on 2 cores. The rest are the
# same blocks at other depths and widths (ResNet-34/101/152, Wide ResNet, VGG-16/19, MobileNetV3-Large).
DEFAULT_SUITE_MODELS = ("alexnet", "alexnet_modelzoo", "convnext_tiny", "densenet121", "efficientnet_b0",
                        "inception_v3", "mobilenet_v2", "mobilenet_v3_small", "resnet18", "resnet50", "resnext50_32x4d",
                        "vgg11", "vit_b_16")


# The models whose per-model tests also run under Keras 2: one of each kind of layer the NPU path's Keras builds
# differently (plain convolutions, batch norm, grouped and depthwise convolutions, squeeze-excitation, stochastic
# depth, concatenation, auxiliary heads, layer norm and layer scale, attention).
KERAS2_MODELS = ("alexnet", "convnext_tiny", "densenet121", "efficientnet_b0", "inception_v3", "mobilenet_v3_small",
                 "resnext50_32x4d", "vit_b_16")


def zoo_params(names, default=DEFAULT_SUITE_MODELS, marks=None):
    """``pytest.param`` per model name, marked ``slow`` unless in ``default``, plus ``marks[name]`` if given."""
    def marks_of(name):
        return ([] if name in default else [pytest.mark.slow]) + list((marks or {}).get(name, ()))
    return [pytest.param(n, id=n, marks=marks_of(n)) for n in names]


def pytest_runtest_logreport(report):
    """With ``MODELZOO_TEST_TIMES=FILE``, appends each test's phase durations to FILE (for sizing the suite)."""
    path = os.environ.get("MODELZOO_TEST_TIMES")
    if os.environ.get("PYTEST_XDIST_WORKER"):  # under pytest-xdist the controller writes every worker's reports
        return
    if path and report.when in ("setup", "call", "teardown"):
        with open(path, "a") as f:
            f.write(f"{report.duration:.2f} {report.when} {report.nodeid}\n")
