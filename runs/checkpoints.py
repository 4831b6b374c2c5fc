"""Checkpoints ``model.ckpt-<step>``: save, keep exactly the newest N, resume from the newest readable one.

Beside each checkpoint lies ``model.ckpt-<step>.settings.json``: the run settings that give its
step meaning (model, classes, image size, global batch, optimizer, schedule; see
:mod:`runs.resume_check`), written atomically before the checkpoint itself is complete.

What can go wrong, and what happens (docs/failures.md):

* an interrupted save (kill, preemption, full disk) leaves TensorFlow's ``model.ckpt-N_temp``
  folder, data files without an index, or the project's own temporary files: they are removed when
  the chief starts (the run lock guarantees no other run is writing) and after a failed save;
* a save that fails (full disk, quota, file-size limit) raises :class:`CheckpointSaveError`, one
  line with the directory and the space needed; the previous checkpoint is untouched;
* a newest checkpoint that cannot be read (truncated, damaged) is skipped with a warning, and the
  previous one is restored instead;
* a checkpoint of another model, class count or optimizer is refused with a one-line message that
  names the flags, not TensorFlow's shape error.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, List, Optional

import tensorflow as tf
from absl import logging

from atomic import TEMP_MARKER, write_text

__all__ = ["CHECKPOINT_NAME", "READ_ERRORS", "CheckpointMismatchError", "CheckpointSaveError", "Checkpointer",
           "SETTINGS_SUFFIX", "checkpoint_files", "has_object", "list_checkpoints", "previous_checkpoint",
           "read_settings", "remove_incomplete", "step_of"]

CHECKPOINT_NAME = "model.ckpt"
SETTINGS_SUFFIX = ".settings.json"


# What reading a truncated or damaged checkpoint raises (a truncated data file: IndexError "Read less
# bytes than requested"); a checkpoint of another model raises ValueError or AssertionError instead.
READ_ERRORS = (tf.errors.DataLossError, tf.errors.OutOfRangeError, tf.errors.NotFoundError, tf.errors.InternalError,
               tf.errors.UnknownError, IndexError, OSError)


def previous_checkpoint(prefix: str) -> Optional[str]:
    """The newest complete checkpoint of ``prefix``'s directory older than ``prefix``, or None."""
    older = [p for p in list_checkpoints(os.path.dirname(prefix) or ".") if step_of(p) < step_of(prefix)]
    return older[-1] if older else None


class CheckpointSaveError(OSError):
    """A checkpoint could not be written; the message says where, why and what to do."""


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model and optimizer built from the flags."""


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
    return sorted((p for p in prefixes if _is_step_prefix(p)), key=step_of)


def _is_step_prefix(prefix: str) -> bool:
    try:
        step_of(prefix)
        return True
    except ValueError:
        return False


def checkpoint_files(prefix: str) -> List[str]:
    """Every file of one checkpoint: index, data shards and settings sidecar (those that exist)."""
    return sorted(glob.glob(glob.escape(prefix) + ".data-*")) + [
        p for p in (prefix + ".index", prefix + SETTINGS_SUFFIX) if os.path.exists(p)]


def read_settings(prefix: str) -> Optional[Dict[str, Any]]:
    """The settings stored beside checkpoint ``prefix``; None for checkpoints written without them."""
    path = prefix + SETTINGS_SUFFIX
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def remove_incomplete(directory: str) -> List[str]:
    """Removes what interrupted saves left in ``directory``; returns the removed paths.

    That is TensorFlow's ``model.ckpt-N_temp`` folders, data files and sidecars of a step whose
    index is missing (the index is written last), and temporary files of :mod:`atomic`. Call it
    only while holding the directory's run lock: another run's save in progress looks the same.
    """
    if not os.path.isdir(directory):
        return []
    complete = {os.path.basename(p) for p in list_checkpoints(directory)}
    removed = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        stale = name.endswith("_temp") or TEMP_MARKER in name
        if not stale and name.startswith(CHECKPOINT_NAME + "-") and not name.endswith(".index"):
            prefix = name.split(".data-", 1)[0] if ".data-" in name else name[: -len(SETTINGS_SUFFIX)] \
                if name.endswith(SETTINGS_SUFFIX) else None
            stale = prefix is not None and prefix not in complete
        if stale:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass
            removed.append(path)
    return removed


class Checkpointer:
    """Saves and restores the model and optimizer state (the step is the optimizer's iterations).

    TensorFlow writes a checkpoint's data to temporary files and renames them, and writes the
    index last, so an interrupted save never counts as a checkpoint (:func:`list_checkpoints`).

    Args:
        directory: where checkpoints live.
        max_to_keep: newest checkpoints kept; older ones are deleted (exactly: by step, whatever
            earlier runs left).
        is_chief: only the chief writes to ``directory``; other workers of a multi-worker
            strategy must take part in the save (it may run collectives) and write to a temporary
            directory that is removed again.
        settings: run settings stored beside each checkpoint (:mod:`runs.resume_check`).
        check_settings: called as ``check_settings(stored, prefix)`` before a checkpoint is
            restored (``stored`` None for checkpoints without settings); raises to refuse it.
        log: where warnings go (a fallback to an older checkpoint, removed leftovers).
        **objects: trackables to save (``model=..., optimizer=...``).
    """

    def __init__(self, directory: str, *, max_to_keep: int = 5, is_chief: bool = True,
                 settings: Optional[Dict[str, Any]] = None,
                 check_settings: Optional[Callable[[Optional[Dict[str, Any]], str], None]] = None,
                 log: Optional[Callable[[str], None]] = None, **objects) -> None:
        self.directory = directory
        self.is_chief = is_chief
        self.max_to_keep = max_to_keep
        self.settings = settings
        self.check_settings = check_settings
        self._log = log or logging.warning
        self._objects = objects
        self.checkpoint = tf.train.Checkpoint(**objects)
        target = directory if is_chief else tempfile.mkdtemp(prefix="ckpt-worker-")
        self._target = target
        self._last_saved: Optional[str] = None
        if is_chief:
            os.makedirs(directory, exist_ok=True)
            removed = remove_incomplete(directory)
            if removed:
                self._log(f"Removed {len(removed)} leftover(s) of interrupted saves in {directory}: "
                          + ", ".join(os.path.basename(p) for p in removed[:5]) + (" ..." if len(removed) > 5 else ""))
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, target, max_to_keep=max_to_keep, checkpoint_name=CHECKPOINT_NAME
        )

    @property
    def latest(self) -> Optional[str]:
        """Prefix of the newest complete checkpoint in the directory, or None."""
        found = list_checkpoints(self.directory)
        return found[-1] if found else None

    def restore_latest(self) -> Optional[str]:
        """Restores the newest readable checkpoint if there is one; returns its prefix.

        A checkpoint that cannot be read (truncated or damaged files) is skipped with a warning and
        the one before it is tried.

        Raises:
            CheckpointMismatchError: the checkpoint was written for another model or optimizer.
            ValueError: raised by ``check_settings`` (changed run settings).
        """
        found = list_checkpoints(self.directory)
        for i, path in enumerate(reversed(found)):
            if self.check_settings is not None:
                self.check_settings(read_settings(path), path)
            try:
                self._restorable(path).restore(path).assert_existing_objects_matched()
            except READ_ERRORS as e:
                older = found[-2 - i] if i + 1 < len(found) else None
                self._log(f"Checkpoint {path} cannot be read ({_first_line(e)}); "
                          + (f"falling back to the previous one, {older}." if older else "no older checkpoint to "
                             "fall back to: training starts afresh.")
                          + " Delete the damaged files to silence this warning.")
                continue
            except (ValueError, AssertionError, tf.errors.InvalidArgumentError) as e:
                raise CheckpointMismatchError(
                    f"checkpoint {path} does not fit the model and optimizer built from the flags "
                    f"({_first_line(e)}): it was written with another --model, --num_classes, --image_size or "
                    "--optimizer. Pass the values of the run that wrote it, or a new --checkpoint_dir."
                ) from None
            return path
        return None

    def _restorable(self, path: str) -> tf.train.Checkpoint:
        """What to restore ``path`` into: every object but the optional ones ``path`` lacks (a run that
        switched ``--model_ema`` on resumes a checkpoint written without the weight average ``ema``; the
        average starts from the restored weights)."""
        missing = [k for k in self._objects if k not in ("model", "optimizer") and not has_object(path, k)]
        if not missing:
            return self.checkpoint
        return tf.train.Checkpoint(**{k: v for k, v in self._objects.items() if k not in missing})

    def saved_path(self, step: int) -> Optional[str]:
        """The prefix this checkpointer saved for ``step``, if its last save was of that step."""
        if self._last_saved is not None and step_of(self._last_saved) == step:
            return self._last_saved
        return None

    def save(self, step: int) -> str:
        """Writes ``model.ckpt-<step>`` and prunes old ones; returns the prefix (chief's path).

        Raises:
            CheckpointSaveError: the files could not be written (e.g. the disk is full); what the
                attempt wrote is removed and the previous checkpoints are intact.
        """
        prefix = os.path.join(self._target, f"{CHECKPOINT_NAME}-{step}")
        try:
            if self.settings is not None and self.is_chief:
                write_text(prefix + SETTINGS_SUFFIX, json.dumps(dict(self.settings, step=step), indent=1) + "\n")
            path = self.manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as e:
            self._discard_failed(prefix)
            raise self._save_error(prefix, e) from None
        if not self.is_chief:
            shutil.rmtree(self._target, ignore_errors=True)
            path = os.path.join(self.directory, os.path.basename(path))
        else:
            self._prune()
        self._last_saved = path
        return path

    def _discard_failed(self, prefix: str) -> None:
        for p in checkpoint_files(prefix):
            try:
                os.remove(p)
            except OSError:
                pass
        if self.is_chief:
            remove_incomplete(self.directory)

    def _prune(self) -> None:
        """Deletes all but the newest ``max_to_keep`` checkpoints, index first (then they no longer count).

        By step over the directory, not only the checkpoints TensorFlow's manager remembers: one an
        earlier run wrote just before it was killed would otherwise escape ``max_to_keep``.
        """
        for old in list_checkpoints(self.directory)[: -self.max_to_keep]:
            files = checkpoint_files(old)
            files.sort(key=lambda p: not p.endswith(".index"))
            for p in files:
                try:
                    os.remove(p)
                except FileNotFoundError:
                    pass
        remove_incomplete(self.directory)  # the sidecars of checkpoints the manager deleted

    def _save_error(self, prefix: str, error: BaseException) -> CheckpointSaveError:
        needed = self._expected_size()
        try:
            free = shutil.disk_usage(self.directory).free
            free_text = f", {_mb(free)} free"
        except OSError:
            free_text = ""
        reason = _space_reason(error) or _first_line(error)
        if _is_space_error(error):
            advice = "free some space or pass --checkpoint_dir on a disk with room"
        else:
            advice = "check that the directory is writable and has room"
        previous = list_checkpoints(self.directory)
        kept = f"the previous checkpoint {previous[-1]} is intact" if previous else "no earlier checkpoint exists"
        return CheckpointSaveError(
            f"cannot write checkpoint {os.path.basename(prefix)} in {self.directory}: {reason} (about {_mb(needed)} "
            f"needed{free_text}); {advice}, then run again to resume; {kept}."
        )

    def _expected_size(self) -> int:
        """Bytes one checkpoint takes: the previous one's files, else the variables' sizes."""
        previous = list_checkpoints(self.directory)
        if previous:
            return sum(os.path.getsize(p) for p in checkpoint_files(previous[-1]))
        total = 0
        for obj in self._objects.values():
            for v in getattr(obj, "variables", []) or []:
                try:
                    total += int(tf.size(v)) * v.dtype.size
                except (TypeError, ValueError, AttributeError):
                    pass
        return total


def _is_space_error(error: BaseException) -> bool:
    text = str(error)
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return True
    return isinstance(error, tf.errors.ResourceExhaustedError) or any(
        s in text for s in ("No space left", "File too large", "quota", "Disk quota"))


def _space_reason(error: BaseException) -> Optional[str]:
    """"No space left on device" and the like, without TensorFlow's op and temporary file names."""
    text = str(error)
    for reason in ("No space left on device", "File too large", "Disk quota exceeded"):
        if reason in text:
            return reason + (" (a file-size limit, ulimit -f)" if reason == "File too large" else "")
    return None


def has_object(path: str, name: str) -> bool:
    """Whether checkpoint ``path`` holds variables of the object saved as ``name`` (e.g. ``ema``)."""
    prefix = name + "/"
    return any(key.startswith(prefix) for key in tf.train.load_checkpoint(path).get_variable_to_shape_map())


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"
