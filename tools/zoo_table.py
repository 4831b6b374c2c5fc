"""Prints the README's zoo table (markdown) from the model registry: one place for each model's facts.

    python tools/zoo_table.py

The README carries the output between the markers ``<!-- zoo-table -->`` and ``<!-- /zoo-table -->``;
``tests/test_docs.py`` fails when the two drift apart.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, List

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["zoo_table"]


def _flag_files() -> Dict[str, List[str]]:
    """model -> the recipe flag files in configs/ that set ``--model`` to it (the demo's and the fine-tuning
    files, whose model is only their default, excluded)."""
    configs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    found: Dict[str, List[str]] = {}
    for name in sorted(os.listdir(configs)):
        if not name.endswith(".flags") or name.startswith(("demo", "finetune_")):
            continue
        with open(os.path.join(configs, name), encoding="utf-8") as f:
            for line in f:
                if line.startswith("--model="):
                    found.setdefault(line.split("=", 1)[1].strip(), []).append(name)
    return found


def zoo_table() -> str:
    """The markdown table of the zoo's own models (not plugins'), sorted by name."""
    import zoo
    from registry import MODELS

    lines: List[str] = [
        "| model | parameters | input / eval resize | reference top-1 / top-5: the weights | flag file | notes |",
        "|---|---|---|---|---|---|",
    ]
    by_model = _flag_files()
    for name in zoo.list_models(builtin_only=True):
        meta, recipe = MODELS.metadata(name), zoo.get_recipe(name)
        params = f"{meta['params']:,}" if meta.get("params") else "?"
        resize = f"{recipe.input_size} / {recipe.eval_resize}" + (" bicubic" if recipe.interpolation == "bicubic"
                                                                  else "")
        accuracy = (f"{recipe.reference_top1:.3f} / {recipe.reference_top5:.3f}" if recipe.reference_top1 and
                    recipe.reference_top5 else "-")
        if recipe.reference_top1 and recipe.reference_weights:  # whose accuracy it is
            weights = recipe.reference_weights
            accuracy += f": `{weights}`" if weights.endswith("_V1") else f": {weights}"
        flagfile = ", ".join(f"`configs/{f}`" for f in by_model.get(name, [])) or "-"
        lines.append(f"| `{name}` | {params} | {resize} | {accuracy} | {flagfile} | {meta.get('description', '')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(zoo_table())
