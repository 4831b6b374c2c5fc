"""Runs one test module with pytest under Bazel: the main of every ``pytest_test`` (tests/pytest.bzl).

    bazel_pytest_main.py [--keras2] tests/test_x.py [pytest arguments]

It runs in the test's runfiles tree, which holds only the test's declared deps, so an import
that its BUILD target does not declare fails here as it would for a user of that target.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional

NO_TESTS_COLLECTED = 5  # pytest's exit code when the marker selection leaves nothing to run


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    here = os.path.dirname(os.path.abspath(__file__))  # in the runfiles tree (symlinks not resolved)
    root = os.path.dirname(here)
    # Python put this script's real directory (the source tree, all modules in it) first on
    # sys.path; only the runfiles tree may be importable.
    real = os.path.dirname(os.path.realpath(__file__))
    if real != here:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != real]
    if args and args[0] == "--keras2":  # before TensorFlow is imported by any test
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        args = args[1:]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # What pytest's prepend import mode gives a module outside a package: its own directory on
    # sys.path (for `from conftest import ...`), here the runfiles one, not the source tree's.
    modules = [a for a in args if a.endswith(".py")]
    for module_dir in dict.fromkeys(os.path.dirname(os.path.join(root, m)) for m in modules):
        sys.path.insert(0, module_dir)
    os.chdir(root)  # as `make test`, from the repository root
    import pytest  # after sys.path is cleaned

    options = ["-c", os.path.join(root, "pytest.ini"), "--rootdir", root, "-p", "no:cacheprovider"]
    if os.environ.get("TEST_TMPDIR"):
        options.append(f"--basetemp={os.path.join(os.environ['TEST_TMPDIR'], 'pytest')}")
    if os.environ.get("XML_OUTPUT_FILE"):
        options.append(f"--junitxml={os.environ['XML_OUTPUT_FILE']}")
    code = pytest.main(options + args)
    if code == NO_TESTS_COLLECTED:
        print("bazel_pytest_main: no test of this module is in this marker selection", file=sys.stderr)
        return 0
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
