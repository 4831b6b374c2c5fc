"""tools/check_build_deps.py: BUILD files match the imports, and the layering holds (no TensorFlow)."""

import os
import shutil
import textwrap

import pytest

from tools import check_build_deps as cbd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Under Bazel the runfiles tree holds only this test's declared files, not the whole repository.
UNDER_BAZEL = "TEST_SRCDIR" in os.environ


def write(root, files):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text).lstrip())


def read(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return f.read()


# A small tree with two layers: high/ may use low/, never the other way round.
TREE = {
    "registry.py": "REGISTRY = {}\n",
    "BUILD": """
        package(default_visibility = ["//visibility:public"])

        py_library(
            name = "registry",
            srcs = ["registry.py"],
        )
    """,
    "low/a.py": "import registry\n",
    "low/BUILD": """
        package(default_visibility = ["//high:__pkg__"])

        py_library(
            name = "a",
            srcs = ["a.py"],
            deps = [
                "//:registry",
            ],
        )
    """,
    "high/b.py": """
        def lazy():
            from low import a  # a lazy import is an import too
            return a
    """,
    "high/BUILD": """
        package(default_visibility = ["//visibility:private"])

        py_library(
            name = "b",
            srcs = ["b.py"],
            deps = [
                "//low:a",
            ],
        )
    """,
}


@pytest.fixture
def tree(tmp_path):
    write(str(tmp_path), TREE)
    return str(tmp_path)


def test_matching_tree_passes(tree, capsys):
    assert cbd.check(tree) == []
    assert cbd.main(["--root", tree]) == 0


def test_missing_dep_is_reported_with_its_fix_and_fixed(tree, capsys):
    build = read(tree, "high/BUILD").replace('        "//low:a",\n', "")
    write(tree, {"high/BUILD": build})
    problems = cbd.check(tree)
    assert [str(p) for p in problems] == [
        'high/BUILD: //high:b: add "//low:a" to deps (high/b.py:2: from low import a)']
    assert cbd.main(["--root", tree]) == 1
    assert "--fix" in capsys.readouterr().err
    assert cbd.main(["--root", tree, "--fix"]) == 0
    assert '"//low:a",' in read(tree, "high/BUILD")
    assert cbd.check(tree) == []


def test_unused_dep_is_removed_unless_kept(tree):
    build = read(tree, "high/BUILD").replace('"//low:a",', '"//low:a",\n        "//:registry",')
    write(tree, {"high/BUILD": build})
    assert [p.remove for p in cbd.check(tree)] == [("//:registry",)]
    write(tree, {"high/BUILD": build.replace('"//:registry",', '"//:registry",  # keep: imported by name')})
    assert cbd.check(tree) == []
    cbd.main(["--root", tree, "--fix"])
    assert "# keep: imported by name" in read(tree, "high/BUILD")


def test_import_across_the_layers_fails_and_is_not_fixed(tree):
    write(tree, {"low/a.py": "import registry\nfrom high import b\n"})
    before = read(tree, "low/BUILD")
    problems = cbd.check(tree)
    assert len(problems) == 1 and problems[0].layering
    assert "//high:b is not visible to //low" in str(problems[0])
    assert cbd.main(["--root", tree, "--fix"]) == 1
    assert read(tree, "low/BUILD") == before


def test_new_module_gets_a_target_from_fix(tree):
    write(tree, {"high/c.py": "import low.a\nimport registry\n"})
    problems = cbd.check(tree)
    assert len(problems) == 1 and "no target has high/c.py" in str(problems[0])
    assert 'name = "c"' in problems[0].stanza
    assert cbd.main(["--root", tree, "--fix"]) == 0
    assert cbd.check(tree) == []
    assert '"//low:a",' in read(tree, "high/BUILD").split('name = "c"')[1]


def test_import_of_a_module_not_in_the_tree_is_reported(tree):
    write(tree, {"high/b.py": "from low.gone import thing\n"})
    problems = cbd.check(tree)
    assert any(p.manual and "from low.gone import thing: no such module" in str(p) for p in problems), problems


def test_deleted_module_loses_its_target(tree):
    os.remove(os.path.join(tree, "high/b.py"))
    assert "does not exist" in str(cbd.check(tree)[0])
    assert cbd.main(["--root", tree, "--fix"]) == 0
    assert 'name = "b"' not in read(tree, "high/BUILD")


def test_pytest_markers_need_their_targets(tree):
    write(tree, {
        "tests/test_x.py": "import pytest\n\n\n@pytest.mark.slow\ndef test_big():\n    pass\n",
        "tests/BUILD": """
            load("//tests:pytest.bzl", "pytest_test")

            pytest_test(
                name = "test_x",
                srcs = ["test_x.py"],
            )
        """,
    })
    problems = cbd.check(tree)
    assert [p.set_attrs for p in problems] == [(("slow", True),)]
    assert cbd.main(["--root", tree, "--fix"]) == 0
    assert "slow = True" in read(tree, "tests/BUILD")


def copy_repo(dst):
    """The repository's modules and BUILD files (top level and one level down), nothing else."""
    for name in os.listdir(ROOT):
        src = os.path.join(ROOT, name)
        if os.path.isfile(src) and (name.endswith(".py") or name == "BUILD"):
            shutil.copy(src, dst)
        elif os.path.isdir(src) and not name.startswith("."):
            files = [f for f in os.listdir(src) if f.endswith(".py") or f == "BUILD"]
            if files:
                os.makedirs(os.path.join(dst, name))
                for f in files:
                    shutil.copy(os.path.join(src, f), os.path.join(dst, name, f))


@pytest.mark.skipif(UNDER_BAZEL, reason="needs the whole source tree; Bazel enforces the same itself")
def test_repository_build_files_match_the_imports():
    problems = cbd.check(ROOT)
    assert not problems, "\n".join(map(str, problems)) + "\nrun: python tools/check_build_deps.py --fix"


@pytest.mark.skipif(UNDER_BAZEL, reason="needs the whole source tree")
def test_repository_layering_rejects_zoo_importing_training(tmp_path):
    copy_repo(str(tmp_path))
    path = tmp_path / "zoo" / "alexnet.py"
    path.write_text("from training.log import TrainLog\n" + path.read_text())
    build = (tmp_path / "zoo" / "BUILD").read_text()
    assert '        "//:registry",\n' in build
    (tmp_path / "zoo" / "BUILD").write_text(build.replace('        "//:registry",\n', "", 1))
    messages = [str(p) for p in cbd.check(str(tmp_path)) if p.target == "//zoo:zoo" or p.target == "//zoo:alexnet"]
    assert any("//training:log is not visible to //zoo" in m for m in messages), messages
    dropped = [p for p in cbd.check(str(tmp_path)) if p.add == ("//:registry",)]
    assert len(dropped) == 1 and dropped[0].target.startswith("//zoo:")
