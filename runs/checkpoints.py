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
* a checkpoint that cannot be read (a truncated or empty index or data file, a damaged index, a
  data checksum that does not match, an unreadable settings file) is skipped with a warning naming
  it, and the newest readable one is restored instead (:func:`checkpoint_problem` says why one is
  unreadable); retention never counts an unreadable checkpoint and never deletes the newest
  readable one;
* a checkpoint of another model, class count or optimizer is refused with a one-line message that
  names the flags, not TensorFlow's shape error.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import struct
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import tensorflow as tf
from absl import logging
from google.protobuf.message import DecodeError

from atomic import TEMP_MARKER, write_text

__all__ = ["CHECKPOINT_NAME", "READ_ERRORS", "CheckpointMismatchError", "CheckpointSaveError",
           "CheckpointUnreadableError", "Checkpointer", "SETTINGS_SUFFIX", "checkpoint_files", "checkpoint_problem",
           "has_object", "list_checkpoints", "newest_readable", "previous_checkpoint", "read_settings",
           "readable_or_previous", "remove_incomplete", "step_of"]

CHECKPOINT_NAME = "model.ckpt"
SETTINGS_SUFFIX = ".settings.json"


# What reading an unreadable checkpoint raises: any TensorFlow error (a damaged or empty index raises
# the bare OpError "not an sstable", a bad data checksum DataLossError, a missing file NotFoundError),
# IndexError "Read less bytes than requested" for a truncated or empty data file, OS and protobuf or
# JSON decode errors. InvalidArgumentError and ValueError may also mean a checkpoint of another model:
# callers that must tell the two apart ask :func:`checkpoint_problem`, which reads the files themselves.
READ_ERRORS = (tf.errors.OpError, IndexError, OSError, DecodeError, json.JSONDecodeError, struct.error)


class CheckpointUnreadableError(ValueError):
    """No readable checkpoint where one is needed; the message names the damaged ones and why."""


def previous_checkpoint(prefix: str) -> Optional[str]:
    """The newest readable checkpoint of ``prefix``'s directory older than ``prefix``, or None."""
    older = [p for p in list_checkpoints(os.path.dirname(prefix) or ".") if step_of(p) < step_of(prefix)]
    return newest_readable(older)


def newest_readable(prefixes: Sequence[str], *, full: bool = False) -> Optional[str]:
    """The last of ``prefixes`` (in step order) that :func:`checkpoint_problem` finds nothing wrong with."""
    for prefix in reversed(list(prefixes)):
        if checkpoint_problem(prefix, full=full) is None:
            return prefix
    return None


# -- readability ------------------------------------------------------------------------------------
#
# A checkpoint is an index (``.index``: an SSTable of BundleEntryProto records, one per tensor, with its
# data shard, offset and size) and data shards (``.data-NNNNN-of-MMMMM``). TensorFlow's reader opens the
# index, but finds a truncated data file only when it reads the tensor that lies past the end. The index
# is read here to know how long each data file must be: that finds truncated and empty data files
# without reading them.

_TABLE_MAGIC = 0xDB4775248B80FB57  # tensorflow/tsl/lib/io/format.h, kTableMagicNumber
_FOOTER_BYTES = 48                 # two block handles of at most 20 bytes, padding, the magic number


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise struct.error("varint too long")


def _table_block(data: bytes, handle: bytes) -> List[Tuple[bytes, bytes]]:
    """The (key, value) entries of the uncompressed SSTable block ``handle`` points at."""
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    if offset + size + 5 > len(data):
        raise struct.error(f"a block at bytes {offset}-{offset + size} lies past the end of the index")
    if data[offset + size] != 0:
        raise struct.error("a compressed index block (not written by TensorFlow's checkpoint writer)")
    contents = data[offset:offset + size]
    restarts = struct.unpack("<I", contents[-4:])[0]
    end = len(contents) - 4 * (1 + restarts)
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(contents, pos)
        non_shared, pos = _varint(contents, pos)
        length, pos = _varint(contents, pos)
        key = key[:shared] + contents[pos:pos + non_shared]
        pos += non_shared
        entries.append((key, contents[pos:pos + length]))
        pos += length
    return entries


def _data_extents(index_path: str) -> Tuple[int, Dict[int, int]]:
    """``(shards, {shard: bytes the data file must have at least})`` from a checkpoint's index."""
    from tensorflow.core.protobuf import tensor_bundle_pb2

    with tf.io.gfile.GFile(index_path, "rb") as f:
        data = f.read()
    if len(data) < _FOOTER_BYTES:
        raise struct.error("index shorter than an SSTable footer")
    footer = data[-_FOOTER_BYTES:]
    low, high = struct.unpack("<II", footer[40:48])
    if (high << 32) | low != _TABLE_MAGIC:
        raise struct.error("not an SSTable (bad magic number)")
    _, pos = _varint(footer, 0)
    _, pos = _varint(footer, pos)  # the meta-index block, unused
    index_handle = footer[pos:]
    shards, ends = 1, {}
    for _, block_handle in _table_block(data, index_handle):
        for key, value in _table_block(data, block_handle):
            if key == b"":
                shards = tensor_bundle_pb2.BundleHeaderProto.FromString(value).num_shards or 1
                continue
            entry = tensor_bundle_pb2.BundleEntryProto.FromString(value)
            if entry.size:
                ends[entry.shard_id] = max(ends.get(entry.shard_id, 0), entry.offset + entry.size)
    return shards, ends


def checkpoint_problem(prefix: str, *, full: bool = False) -> Optional[str]:
    """Why checkpoint ``prefix`` cannot be restored, or None when nothing is found wrong.

    Checks, without reading the data: the index exists, is not empty and TensorFlow's reader opens it;
    every data file it names exists and is as long as the index says; the settings file beside it
    (if any) is valid JSON. With ``full``, every tensor is read too (the data checksums).

    Args:
        prefix: ``DIR/model.ckpt-N``.
        full: also read every tensor (as long as a restore takes).

    Returns:
        One phrase naming the file and what is wrong with it, or None.
    """
    index = prefix + ".index"
    name = os.path.basename(prefix)
    try:
        size = tf.io.gfile.stat(index).length
    except READ_ERRORS as e:
        return f"{name}.index cannot be read ({_first_line(e)})"
    if size == 0:
        return f"{name}.index is empty (0 bytes)"
    try:
        reader = tf.train.load_checkpoint(prefix)
        keys = sorted(reader.get_variable_to_shape_map())
    except READ_ERRORS as e:
        return f"{name}.index cannot be read ({_first_line(e)})"
    try:
        shards, ends = _data_extents(index)
    except READ_ERRORS:
        shards, ends = None, {}  # TensorFlow reads it; a layout this parser does not know: not damage
    if shards is not None:
        for shard in range(shards):
            data = f"{prefix}.data-{shard:05d}-of-{shards:05d}"
            try:
                length = tf.io.gfile.stat(data).length
            except READ_ERRORS as e:
                return f"{os.path.basename(data)} cannot be read ({_first_line(e)})"
            needed = ends.get(shard, 0)
            if length < needed:
                return (f"{os.path.basename(data)} is {'empty' if length == 0 else 'truncated'} ({length} bytes; its "
                        f"index needs {needed})")
    settings = prefix + SETTINGS_SUFFIX
    if tf.io.gfile.exists(settings):
        try:
            with tf.io.gfile.GFile(settings) as f:
                json.load(f)
        except READ_ERRORS + (ValueError,) as e:
            return f"{os.path.basename(settings)} cannot be read ({_first_line(e)})"
    known = _FOUND_DAMAGED.get(prefix)
    if known is not None and known[0] == _signature(prefix):
        return known[1]  # a full check of these very files found damaged data before
    if full:
        for key in keys:
            try:
                reader.get_tensor(key)
            except READ_ERRORS as e:
                problem = f"tensor {key} of {name} cannot be read ({_first_line(e)})"
                _FOUND_DAMAGED[prefix] = (_signature(prefix), problem)
                return problem
    return None


# Checkpoints whose data a full check found damaged (a checksum that does not match: only reading every
# tensor finds it), by the size and modification time of their files, so that the quick checks of retention
# and ``Checkpointer.latest`` in this process skip them too.
_FOUND_DAMAGED: Dict[str, Tuple[Tuple[Tuple[str, int, int], ...], str]] = {}


def _signature(prefix: str) -> Tuple[Tuple[str, int, int], ...]:
    out = []
    for path in checkpoint_files(prefix):
        try:
            stat = os.stat(path)
            out.append((path, stat.st_size, stat.st_mtime_ns))
        except OSError:
            pass
    return tuple(out)


def readable_or_previous(prefix: str, *, log: Callable[[str], None], explicit: bool = False,
                         full: bool = False) -> str:
    """``prefix`` if it can be read, else the newest readable checkpoint before it (the log names both).

    Args:
        prefix: the checkpoint chosen (the newest of a run, or one the user named).
        log: where the fallback is reported.
        explicit: the user named ``prefix`` (``--checkpoint_path``): an unreadable one is an error that
            names the newest readable alternative instead of a fallback.
        full: read every tensor to decide (see :func:`checkpoint_problem`).

    Raises:
        CheckpointUnreadableError: ``prefix`` cannot be read and ``explicit``, or no older checkpoint in its
            directory can be read either.
    """
    problem = checkpoint_problem(prefix, full=full)
    if problem is None:
        return prefix
    directory = os.path.dirname(prefix) or "."
    skipped = [(prefix, problem)]
    try:
        older = [p for p in list_checkpoints(directory) if step_of(p) < step_of(prefix)]
    except ValueError:  # not a model.ckpt-N prefix
        older = []
    for candidate in reversed(older):
        why = checkpoint_problem(candidate, full=full)
        if why is None:
            if explicit:
                raise CheckpointUnreadableError(
                    f"--checkpoint_path={prefix} cannot be read ({problem}); the newest readable checkpoint before it "
                    f"is {candidate}.")
            log(f"Checkpoint {prefix} cannot be read ({problem}); using the newest readable one before it, "
                f"{candidate}" + (f" (also unreadable: {_names(skipped[1:])})" if len(skipped) > 1 else "") + ".")
            return candidate
        skipped.append((candidate, why))
    raise CheckpointUnreadableError(
        f"checkpoint {prefix} cannot be read ({problem}), and no older readable checkpoint is in {directory}"
        + (f" (unreadable: {_names(skipped[1:])})" if len(skipped) > 1 else "") + ".")


def _names(skipped: Sequence[Tuple[str, str]]) -> str:
    return ", ".join(f"{os.path.basename(p)} ({why})" for p, why in skipped)


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
        # Retention is this class's (_prune: readable checkpoints only, by step); the manager keeps all.
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, target, max_to_keep=None, checkpoint_name=CHECKPOINT_NAME
        )

    @property
    def latest(self) -> Optional[str]:
        """Prefix of the newest readable checkpoint in the directory (the one training resumes from), or None."""
        return newest_readable(list_checkpoints(self.directory))

    def restore_latest(self) -> Optional[str]:
        """Restores the newest readable checkpoint if there is one; returns its prefix.

        A checkpoint that cannot be read (:func:`checkpoint_problem`: an empty, truncated or damaged
        index or data file, a bad checksum, any TensorFlow read error) is skipped with a warning that
        names it, and the one before it is tried; the log then names the one restored.

        Raises:
            CheckpointMismatchError: the checkpoint was written for another model or optimizer.
            CheckpointUnreadableError: there are checkpoints, but none of them can be read.
            ValueError: raised by ``check_settings`` (changed run settings).
        """
        found = list_checkpoints(self.directory)
        skipped: List[Tuple[str, str]] = []
        for i, path in enumerate(reversed(found)):
            problem = checkpoint_problem(path)
            if problem is None:
                if self.check_settings is not None:
                    self.check_settings(read_settings(path), path)
                try:
                    self._restorable(path).restore(path).assert_existing_objects_matched()
                except READ_ERRORS + (ValueError, AssertionError) as e:
                    # Damaged data (a bad checksum, a cut file) or another model: the files decide.
                    problem = checkpoint_problem(path, full=True)
                    if problem is None:
                        if isinstance(e, (ValueError, AssertionError, tf.errors.InvalidArgumentError)):
                            raise CheckpointMismatchError(
                                f"checkpoint {path} does not fit the model and optimizer built from the flags "
                                f"({_first_line(e)}): it was written with another --model, --num_classes, "
                                "--image_size or --optimizer. Pass the values of the run that wrote it, or a new "
                                "--checkpoint_dir."
                            ) from None
                        raise
            if problem is not None:
                older = found[-2 - i] if i + 1 < len(found) else None
                self._log(f"Checkpoint {path} cannot be read ({problem}); "
                          + (f"falling back to the previous one, {older}." if older else "no older checkpoint.")
                          + " Delete the damaged files when convenient (tools/check_checkpoints.py lists them).")
                skipped.append((path, problem))
                continue
            if skipped:
                self._log(f"Restored {path}, the newest readable checkpoint in {self.directory} (skipped the "
                          f"unreadable {_names(skipped)}).")
            return path
        if skipped:
            raise CheckpointUnreadableError(
                f"no checkpoint in {self.directory} can be read: {_names(skipped)}. Move them away (or pass a new "
                "--checkpoint_dir) to start afresh; tools/check_checkpoints.py lists what is wrong with each.")
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
        """Keeps the newest ``max_to_keep`` readable checkpoints; deletes every checkpoint older than those.

        By step over the directory, not only the checkpoints TensorFlow's manager remembers: one an
        earlier run wrote just before it was killed would otherwise escape ``max_to_keep``. An unreadable
        checkpoint never counts towards ``max_to_keep`` and one newer than the oldest kept stays (training
        overwrites it when it reaches that step again); the newest readable one is never deleted. Each
        checkpoint's index goes first, so a deletion cut short leaves no checkpoint that seems complete.
        """
        found = list_checkpoints(self.directory)
        readable = [p for p in found if checkpoint_problem(p) is None]
        kept = readable[-self.max_to_keep:]
        if kept:
            oldest = step_of(kept[0])
            for old in found:
                if step_of(old) >= oldest:
                    continue
                files = checkpoint_files(old)
                files.sort(key=lambda p: not p.endswith(".index"))
                for p in files:
                    try:
                        os.remove(p)
                    except FileNotFoundError:
                        pass
            try:  # TensorFlow's state file lists what is left (its manager keeps every path it saved)
                _update_state(
                    self.directory, kept[-1], all_model_checkpoint_paths=[p for p in found if step_of(p) >= oldest])
            except (tf.errors.OpError, OSError, AttributeError):
                pass
        remove_incomplete(self.directory)  # the sidecars of deleted checkpoints

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
        previous = self.latest
        kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
        return CheckpointSaveError(
            f"cannot write checkpoint {os.path.basename(prefix)} in {self.directory}: {reason} (about {_mb(needed)} "
            f"needed{free_text}); {advice}, then run again to resume; {kept}."
        )

    def _expected_size(self) -> int:
        """Bytes one checkpoint takes: the larger of the previous readable one's files and the variables' sizes."""
        previous = newest_readable(list_checkpoints(self.directory))
        on_disk = sum(os.path.getsize(p) for p in checkpoint_files(previous)) if previous else 0
        return max(on_disk, _variable_bytes(self.checkpoint))


def _update_state(directory: str, newest: str, all_model_checkpoint_paths: List[str]) -> None:
    """Rewrites TensorFlow's ``checkpoint`` state file (its warning that the function is deprecated muted)."""
    try:
        from tensorflow.python.checkpoint import checkpoint_management
    except ImportError:  # TensorFlow before 2.9 (the NPU adapter's 2.6)
        from tensorflow.python.training import checkpoint_management
    checkpoint_management.update_checkpoint_state_internal(
        directory, newest, all_model_checkpoint_paths=all_model_checkpoint_paths, save_relative_paths=True)


def _variable_bytes(root: Any) -> int:
    """Bytes of every variable a checkpoint of ``root`` holds (each variable once)."""
    try:
        objects = tf.train.TrackableView(root).descendants()
    except (AttributeError, ValueError, TypeError):  # TensorFlow before 2.11 (the NPU adapter's 2.6)
        objects = []
    from keras_compat import keras

    kinds = tuple(k for k in (tf.Variable, getattr(keras, "Variable", None)) if k is not None)  # Keras 3 has its own
    total, seen = 0, set()
    for obj in objects:
        if not isinstance(obj, kinds) or id(obj) in seen:
            continue
        seen.add(id(obj))
        try:
            total += int(obj.shape.num_elements() or 0) * tf.as_dtype(obj.dtype).size
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
