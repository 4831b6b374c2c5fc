"""Readable views of the configuration: the log's table of a run, and ``--help`` grouped by concern."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from run_config.fields import field_meta, field_type
from run_config.groups import GROUPS, group_fields
from run_config.resolve import Resolved, value_of

__all__ = ["GROUP_TITLES", "config_table", "help_text", "value_text"]

GROUP_TITLES = {
    "run": "Run",
    "model": "Model",
    "finetune": "Fine-tuning and pretrained weights",
    "data": "Data",
    "augment": "Augmentation and input transforms",
    "optimizer": "Optimizer",
    "schedule": "Schedule and learning rate",
    "regularization": "Regularisation",
    "precision": "Precision",
    "distribution": "Distribution and devices",
    "npu": "Ascend NPU",
    "loop": "Training loop",
    "checkpoint": "Checkpoints and resuming",
    "logging": "Logging",
    "evaluation": "Evaluation",
    "predict": "Prediction",
    "export": "Export",
}


def value_text(value: Any) -> str:
    """A setting's value as the command line would write it."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ",".join(value_text(v) for v in value) or "(none)"
    return str(value)


def config_table(resolved: Resolved, *, only_set: bool = False,
                 derived: Optional[Dict[str, Any]] = None) -> List[str]:
    """The configuration as lines of a table: group, setting, value, source.

    Args:
        resolved: the configuration and its sources.
        only_set: leave out settings at their default (the log shows them all).
        derived: facts the run derived (global batch, the lr it trains with), shown last.
    """
    rows = []
    for group in GROUPS:
        for f in group_fields(group):
            flag = field_meta(f).flag or f.name
            source = resolved.source(flag)
            if only_set and source == "default":
                continue
            rows.append((GROUP_TITLES[group], flag, value_text(value_of(resolved.config, flag)), source))
    for key, value in (derived or {}).items():
        rows.append(("Derived at start", key, value_text(value), "run"))
    widths = [max(len(r[i]) for r in rows + [("group", "setting", "value", "source")]) for i in range(3)]
    widths = [min(w, cap) for w, cap in zip(widths, (36, 28, 48))]
    head = f"{'group':{widths[0]}s}  {'setting':{widths[1]}s}  {'value':{widths[2]}s}  source"
    lines = [head, "-" * len(head)]
    for group, flag, value, source in rows:
        lines.append(f"{group:{widths[0]}s}  {flag:{widths[1]}s}  {value:{widths[2]}s}  {source}")
    return lines


def help_text(resolved: Resolved, *, program: str = "main.py") -> str:
    """``--help``: every setting, grouped by concern, with the defaults of the chosen model.

    Args:
        resolved: the configuration without the command line's own values, so that the defaults
            shown are those of the model (and flag file) named.
        program: the program's name for the usage line.
    """
    model = resolved.config.model.name
    out = [f"usage: python {program} [--flagfile=FILE] [--setting=VALUE ...]", "",
           f"Settings, grouped by concern, with their defaults for --model={model} (the recipe's values are marked).",
           "Precedence: defaults < the model's recipe < --flagfile < the command line (docs/configuration.md).",
           "Also: --list (the zoo), --print_config (the resolved configuration, then exit), --help.", ""]
    for group in GROUPS:
        out.append(f"{GROUP_TITLES[group]}:")
        for f in group_fields(group):
            meta = field_meta(f)
            flag = meta.flag or f.name
            kind, optional, sequence = field_type(GROUPS[group], f)
            value = value_of(resolved.config, flag)
            source = resolved.source(flag)
            mark = "" if source == "default" else f" [{source}]"
            choices = meta.choice_list()
            what = "|".join(map(str, choices)) if choices else kind.__name__ + ("s" if sequence else "")
            names = ", ".join(f"--{n}" for n in (flag,) + meta.aliases)
            out.append(f"  {names}={what}  (default: {value_text(value)}{mark})")
            out.append(f"      {meta.help}")
        out.append("")
    return "\n".join(out)
