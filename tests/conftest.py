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
