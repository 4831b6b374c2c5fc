"""pytest_test: one test module of tests/, run by pytest under Bazel (tests/bazel_pytest_main.py)."""

def pytest_test(name, srcs, deps = [], data = [], size = "medium", tags = [], slow = False, keras2 = False, **kwargs):
    """A py_test that runs pytest on srcs[0] with the repository's pytest.ini (slow tests deselected).

    Args:
      name: the target; also `name`_slow (tag "slow": the tests marked slow, `-m slow`) when slow is
        True, and `name`_keras2 (tag "keras2": the tests marked keras2 under TF_USE_LEGACY_KERAS=1)
        when keras2 is True.
      srcs: the test module first.
      deps: the first-party targets it imports (tools/check_build_deps.py keeps them exact).
      data: files it reads or runs (flag files, scripts run in a subprocess).
      size: Bazel test size of the default selection.
      tags: tags of every target (but "ci", which marks the default selection only).
      slow: whether the module has tests marked @pytest.mark.slow.
      keras2: whether the module has tests marked @pytest.mark.keras2.
      **kwargs: other py_test attributes.
    """
    path = native.package_name() + "/" + srcs[0]
    common = dict(
        srcs = srcs + ["bazel_pytest_main.py"],
        main = "bazel_pytest_main.py",
        deps = deps + ([":conftest"] if ":conftest" not in deps else []),
        data = data + ["//:pytest.ini"],
        # Only the __init__.py files of declared deps: an undeclared package is not importable.
        legacy_create_init = False,
    )
    common.update(kwargs)
    native.py_test(name = name, args = [path], size = size, tags = tags, **common)
    variant_tags = [t for t in tags if t != "ci"]  # CI's quick subset: the default selection only
    if slow:
        native.py_test(name = name + "_slow", args = [path, "-m", "slow"], size = "enormous",
                       tags = variant_tags + ["slow"], **common)
    if keras2:
        native.py_test(name = name + "_keras2", args = ["--keras2", path, "-m", "keras2"], size = size,
                       tags = variant_tags + ["keras2"], **common)
