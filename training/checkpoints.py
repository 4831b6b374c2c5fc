"""Checkpoints ``model.ckpt-<step>``: save, keep the newest N, resume from the latest."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import List, Optional

import tensorflow as tf

__all__ = ["CHECKPOINT_NAME", "Checkpointer", "list_checkpoints", "step_of"]

CHECKPOINT_NAME = "model.ckpt"


def step_of(path: str) -> int:
    """The step number in a checkpoint prefix ``.../model.ckpt-<step>``."""
    try:
        return int(path.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        raise ValueError(f"not a checkpoint prefix of the form {CHECKPOINT_NAME}-<step>: {path}") from None


def list_checkpoints(directory: str) -> List[str]:
    """Checkpoint prefixes in ``directory`` in step order (complete ones only: index present)."""
    if not tf.io.gfile.isdir(directory):
        return []
    prefixes = [p[: -len(".index")] for p in tf.io.gfile.glob(os.path.join(directory, CHECKPOINT_NAME + "-*.index"))]
    return sorted(prefixes, key=step_of)


class Checkpointer:
    """Saves and restores the model and optimizer state (the step is the optimizer's iterations).

    TensorFlow writes a checkpoint's data to temporary files and renames them, and updates the
    ``checkpoint`` state file only afterwards, so an interrupted save never becomes "latest".

    Args:
        directory: where checkpoints live.
        max_to_keep: newest checkpoints kept; older ones are deleted.
        is_chief: only the chief writes to ``directory``; other workers of a multi-worker
            strategy must take part in the save (it may run collectives) and write to a temporary
            directory that is removed again.
        **objects: trackables to save (``model=..., optimizer=...``).
    """

    def __init__(self, directory: str, *, max_to_keep: int = 5, is_chief: bool = True, **objects) -> None:
        self.directory = directory
        self.is_chief = is_chief
        self.checkpoint = tf.train.Checkpoint(**objects)
        target = directory if is_chief else tempfile.mkdtemp(prefix="ckpt-worker-")
        self._target = target
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, target, max_to_keep=max_to_keep, checkpoint_name=CHECKPOINT_NAME
        )

    @property
    def latest(self) -> Optional[str]:
        """Prefix of the newest complete checkpoint in the directory, or None."""
        found = list_checkpoints(self.directory)
        return found[-1] if found else None

    def restore_latest(self) -> Optional[str]:
        """Restores the newest checkpoint if there is one; returns its prefix."""
        path = self.latest
        if path:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        return path

    def save(self, step: int) -> str:
        """Writes ``model.ckpt-<step>`` and prunes old ones; returns the prefix (chief's path)."""
        path = self.manager.save(checkpoint_number=step)
        if not self.is_chief:
            shutil.rmtree(self._target, ignore_errors=True)
            return os.path.join(self.directory, os.path.basename(path))
        return path
