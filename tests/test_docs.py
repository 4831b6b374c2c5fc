"""The README's zoo table is the registry's: tools/zoo_table.py prints it, and the two cannot drift."""

import os

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
