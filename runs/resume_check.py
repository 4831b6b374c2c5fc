"""Resume checks: the settings that give a checkpoint's step its meaning must not change silently.

A checkpoint stores weights, optimizer slots and a step count. The step means "this many global
batches of this size, at this point of this lr schedule, for this model": resuming with another
global batch moves the epoch and the lr, another image size or model changes what the weights
compute. The settings below are stored beside each checkpoint (:mod:`runs.checkpoints`);
resuming with different ones is refused with a message naming the flags and both values, unless
``--allow_recipe_change`` says the change is intended (then the log says what changed and how the
step, epoch and lr are now read).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["FLAG_OF", "RecipeChangeError", "differences", "make_check", "run_settings"]

# Setting -> the flag(s) that set it, for messages.
FLAG_OF = {
    "model": "--model",
    "num_classes": "--num_classes",
    "image_size": "--image_size",
    "global_batch": "--batch_size x replicas (global batch)",
    "optimizer": "--optimizer",
    "lr": "--lr",
    "lr_schedule": "--lr_schedule",
    "warmup_epochs": "--warmup_epochs",
    "max_epochs": "--max_epochs (cosine decay length)",
    "lr_decay_boundaries": "--lr_decay_boundaries",
    "lr_decay_factor": "--lr_decay_factor",
    "lr_decay_epochs": "--lr_decay_epochs",
}

# Stored for the log's explanation of a change; not compared.
_INFO = ("num_train_examples", "step")


class RecipeChangeError(ValueError):
    """Resuming with settings that change the checkpoint's meaning, without --allow_recipe_change."""


def run_settings(flags: Any, *, num_classes: int, image_size: int, global_batch: int, lr: float,
                 num_train_examples: int) -> Dict[str, Any]:
    """The settings of this run that a checkpoint's meaning depends on."""
    settings: Dict[str, Any] = {
        "model": flags.model, "num_classes": int(num_classes), "image_size": int(image_size),
        "global_batch": int(global_batch), "optimizer": flags.optimizer, "lr": float(lr),
        "lr_schedule": flags.lr_schedule, "warmup_epochs": float(flags.warmup_epochs),
        "num_train_examples": int(num_train_examples),
    }
    if flags.lr_schedule == "cosine":
        settings["max_epochs"] = float(flags.max_epochs)
    elif flags.lr_schedule == "piecewise":
        settings["lr_decay_boundaries"] = [float(b) for b in flags.lr_decay_boundaries or ()]
        settings["lr_decay_factor"] = float(flags.lr_decay_factor)
    elif flags.lr_schedule == "exponential":
        settings["lr_decay_factor"] = float(flags.lr_decay_factor)
        settings["lr_decay_epochs"] = float(flags.lr_decay_epochs)
    return settings


def differences(stored: Dict[str, Any], current: Dict[str, Any]) -> List[Tuple[str, Any, Any]]:
    """``(setting, stored value, current value)`` for every compared setting that differs."""
    out = []
    for key in FLAG_OF:
        if key in stored or key in current:
            old, new = stored.get(key), current.get(key)
            if isinstance(old, float) or isinstance(new, float):
                same = old is not None and new is not None and abs(float(old) - float(new)) <= 1e-12 * max(
                    1.0, abs(float(old)))
            else:
                same = old == new
            if not same:
                out.append((key, old, new))
    return out


def _describe(diffs: List[Tuple[str, Any, Any]]) -> str:
    return "; ".join(f"{FLAG_OF[k]}: {_text(old)} in the checkpoint, {_text(new)} now" for k, old, new in diffs)


def _text(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) or "(none)"
    return str(value)


def make_check(current: Dict[str, Any], *, allow_change: bool, log: Callable[[str], None],
               lr_at: Optional[Callable[[int], float]] = None) -> Callable[[Optional[Dict[str, Any]], str], None]:
    """A ``check_settings(stored, prefix)`` for :class:`runs.checkpoints.Checkpointer`.

    Args:
        current: this run's :func:`run_settings`.
        allow_change: ``--allow_recipe_change``: log the changes instead of refusing them.
        log: where the explanation of allowed changes goes.
        lr_at: the lr of this run's schedule at a step, for the explanation.
    """

    def check(stored: Optional[Dict[str, Any]], prefix: str) -> None:
        if stored is None:
            return  # written before settings were stored: nothing to compare
        diffs = differences(stored, current)
        if not diffs:
            return
        if not allow_change:
            raise RecipeChangeError(
                f"cannot resume from {prefix}: {_describe(diffs)}. Pass the checkpoint's values, or a new "
                "--checkpoint_dir to start afresh, or --allow_recipe_change to continue with the new ones."
            )
        step = int(stored.get("step", 0))
        note = [f"--allow_recipe_change: resuming {prefix} with changed settings: {_describe(diffs)}. ",
                f"The step count {step} is kept"]
        old_batch, new_batch = stored.get("global_batch"), current.get("global_batch")
        examples = current.get("num_train_examples") or stored.get("num_train_examples")
        if examples:
            new_epoch = step * new_batch / examples
            if old_batch and old_batch != new_batch:
                old_examples = stored.get("num_train_examples") or examples
                note.append(f"; it now means epoch {new_epoch:.4g} (it was epoch {step * old_batch / old_examples:.4g}"
                            f" with the old global batch of {old_batch})")
            else:
                note.append(f" (epoch {new_epoch:.4g})")
        if lr_at is not None:
            note.append(f"; the lr continues on the new schedule at that step: {lr_at(step):.6g}")
        log("".join(note) + ".")

    return check
