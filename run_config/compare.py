"""Comparing a run's configuration with the one that wrote a checkpoint (the resume check).

Every setting whose role is ``meaning`` or ``resume`` (:mod:`run_config.groups`) is compared, group by
group, and so are the derived global batch and training-set size (they give a step its epoch). A
difference is refused with one line naming each setting and both values, unless
``--allow_recipe_change`` names it: a setting (``lr``), its group (``schedule``) or ``all``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping, Sequence, Tuple

from run_config.describe import value_text
from run_config.fields import field_meta
from run_config.groups import GROUPS, RunConfig, group_fields
from run_config.resolve import value_of

__all__ = ["COMPARED_DERIVED", "Difference", "accepted_names", "differences", "split_allowed"]

# Derived facts that change what a step means: its epoch, and so the lr schedule's position.
COMPARED_DERIVED = ("global_batch",)


@dataclass(frozen=True)
class Difference:
    """One setting that differs: its group, flag name and the two values."""

    group: str
    flag: str
    saved: Any
    current: Any

    def describe(self) -> str:
        return (f"--{self.flag} ({self.group}): {value_text(self.saved)} in the checkpoint, "
                f"{value_text(self.current)} now")


def differences(saved: RunConfig, current: RunConfig, saved_derived: Mapping[str, Any] = (),
                current_derived: Mapping[str, Any] = ()) -> List[Difference]:
    """Every compared setting (and derived fact) whose value differs, in group order."""
    out: List[Difference] = []
    for group in GROUPS:
        for f in group_fields(group):
            meta = field_meta(f)
            if meta.role not in ("meaning", "resume"):
                continue
            flag = meta.flag or f.name
            old, new = value_of(saved, flag), value_of(current, flag)
            if not _same(old, new):
                out.append(Difference(group, flag, old, new))
    saved_derived, current_derived = dict(saved_derived or {}), dict(current_derived or {})
    for key in COMPARED_DERIVED:
        if key in saved_derived and key in current_derived and not _same(saved_derived[key], current_derived[key]):
            out.append(Difference("derived", key, saved_derived[key], current_derived[key]))
    return out


def accepted_names() -> List[str]:
    """What ``--allow_recipe_change`` accepts: ``all``, group names and compared setting names."""
    names = ["all"] + [g for g in GROUPS if g != "run"] + ["derived"]
    for group in GROUPS:
        names += [field_meta(f).flag or f.name for f in group_fields(group)
                  if field_meta(f).role in ("meaning", "resume")]
    return names + list(COMPARED_DERIVED)


def split_allowed(diffs: Sequence[Difference], allow: Sequence[str]) -> Tuple[List[Difference], List[Difference]]:
    """``(allowed, refused)``: the differences ``--allow_recipe_change=...`` names, and the rest."""
    allow = set(allow)
    unknown = sorted(allow - set(accepted_names()))
    if unknown:
        raise ValueError(f"--allow_recipe_change={','.join(unknown)}: not a setting or group; accepted: "
                         f"{', '.join(accepted_names())}")
    allowed = [d for d in diffs if "all" in allow or d.flag in allow or d.group in allow]
    return allowed, [d for d in diffs if d not in allowed]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(a)))
        except (TypeError, ValueError):
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b
