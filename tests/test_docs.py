"""The README against the code: its zoo table is the registry's, its library example runs as written."""

import os
import subprocess
import sys

from conftest import ROOT

from tools.zoo_table import zoo_table


def test_readme_zoo_table_matches_the_registry():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    start, end = "<!-- zoo-table -->\n", "\n<!-- /zoo-table -->"
    table = text[text.index(start) + len(start):text.index(end)]
    assert table == zoo_table(), "README's zoo table is stale: paste the output of python tools/zoo_table.py"


def test_every_flag_file_names_a_registered_model():
    import zoo

    for name in sorted(os.listdir(os.path.join(ROOT, "configs"))):
        if not name.endswith(".flags"):
            continue
        lines = open(os.path.join(ROOT, "configs", name), encoding="utf-8").read().splitlines()
        models = [line.split("=", 1)[1].strip() for line in lines if line.startswith("--model=")]
        assert len(models) <= 1, name
        for model in models:
            assert model in zoo.list_models(), f"{name}: --model={model} is not registered"


def test_readme_library_example_runs(tmp_path):
    """The README's "Use as a library" example, as written, in a fresh process from the repository root."""
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = readme.split("<!-- library-example -->", 1)[1].split("<!-- /library-example -->", 1)[0]
    code = block.split("```python", 1)[1].split("```", 1)[0].replace("/tmp/zoo_api", str(tmp_path / "api"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert "resnet18" in lines[0] and "resnet50" in lines[0]
    assert "(1, 10)" in out.stdout and lines[-1] == "2 True"
    assert os.path.isfile(tmp_path / "api" / "config.json")
