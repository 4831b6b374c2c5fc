"""Resume checks: the settings that give a checkpoint's step its meaning must not change silently.

A checkpoint stores weights, optimizer slots and a step count. The step means "this many global
batches of this size, at this point of this lr schedule, for this model with this input". Beside
each checkpoint lies the run's configuration document (``run_config.persist``); resuming compares
it with this run's, group by group (:mod:`run_config.compare`: every setting whose role is
``meaning`` or ``resume``, and the global batch), and refuses with one line naming each setting and
both values, unless ``--allow_recipe_change`` names them (a setting, its group, or ``all``). Then the
log says what changed and how the step, epoch and lr are now read.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from run_config.compare import accepted_names, differences, split_allowed
from run_config.fields import SettingError
from run_config.persist import from_document

__all__ = ["RecipeChangeError", "make_check"]


class RecipeChangeError(ValueError):
    """Resuming with settings that change the checkpoint's meaning, without --allow_recipe_change naming them."""


def make_check(current: Mapping[str, Any], *, allow: Sequence[str], log: Callable[[str], None],
               lr_at: Optional[Callable[[int], float]] = None) -> Callable[[Optional[Dict[str, Any]], str], None]:
    """A ``check_settings(stored, prefix)`` for :class:`runs.checkpoints.Checkpointer`.

    Args:
        current: this run's configuration document (:func:`run_config.persist.document`).
        allow: ``--allow_recipe_change``: names of settings or groups whose change is accepted, or ``all``.
        log: where the explanation of allowed changes goes.
        lr_at: the lr of this run's schedule at a step, for the explanation.
    """
    current_config, current_derived, _ = from_document(current)
    split_allowed([], allow)  # an unknown name is an error before anything is read

    def check(stored: Optional[Dict[str, Any]], prefix: str) -> None:
        if stored is None or "config" not in stored:
            return  # written before configurations were stored: nothing to compare
        try:
            saved_config, saved_derived, _ = from_document(stored)
        except SettingError as e:
            log(f"The configuration stored with {prefix} cannot be compared ({e}); resuming without the check.")
            return
        diffs = differences(saved_config, current_config, saved_derived, current_derived)
        if not diffs:
            return
        allowed, refused = split_allowed(diffs, allow)
        if refused:
            names = ",".join(sorted({d.flag if d.group == "derived" else d.flag for d in refused}))
            raise RecipeChangeError(
                f"cannot resume from {prefix}: {'; '.join(d.describe() for d in refused)}. Pass the checkpoint's "
                f"values, a new --checkpoint_dir to start afresh, or --allow_recipe_change={names} to continue "
                f"with the new ones (it accepts setting or group names, or all)."
            )
        step = int(stored.get("step", 0))
        note = [f"--allow_recipe_change: resuming {prefix} with changed settings: "
                f"{'; '.join(d.describe() for d in allowed)}. The step count {step} is kept"]
        old_batch, new_batch = saved_derived.get("global_batch"), current_derived.get("global_batch")
        examples = current_derived.get("num_train_examples") or saved_derived.get("num_train_examples")
        if examples and new_batch:
            new_epoch = step * new_batch / examples
            if old_batch and old_batch != new_batch:
                old_examples = saved_derived.get("num_train_examples") or examples
                note.append(f"; it now means epoch {new_epoch:.4g} (it was epoch {step * old_batch / old_examples:.4g}"
                            f" with the old global batch of {old_batch})")
            else:
                note.append(f" (epoch {new_epoch:.4g})")
        if lr_at is not None:
            note.append(f"; the lr continues on the new schedule at that step: {lr_at(step):.6g}")
        log("".join(note) + ".")

    return check


def accepted() -> str:
    """What ``--allow_recipe_change`` accepts, for messages and docs."""
    return ", ".join(accepted_names())
