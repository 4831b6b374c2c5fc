"""Unreadable images and damaged TFRecord records: skipped, counted exactly, named, limited.

One :class:`BadDataTracker` per dataset split and process records every unreadable item once, by
name (an image file's path, or ``<shard>@<byte offset>`` of a TFRecord record), in a hash table on
the host CPU that the input pipeline writes and the host reads (:meth:`BadDataTracker.report`).

How a pipeline finds them without slowing the decode:

* Decoding: every element gets a sequence number (``enumerate``) and a cheap sequential map writes
  ``number -> name`` into a small ring (a table keyed by ``number mod RING``). The decode map stays
  parallel but keeps the order (``deterministic=True``), and ``ignore_errors`` drops the elements
  whose parsing, reading or decoding raised. A ``scan`` after it sees the numbers in order, so a gap
  is exactly the elements that failed; their names come back from the ring. A finite pipeline
  (evaluation) ends with a sentinel that carries the total, so a failure at the very end counts too.
* TFRecord shards: each shard is read by its own ``TFRecordDataset`` with ``ignore_errors``.
  TensorFlow cannot resume a shard after a record whose checksum or framing is damaged: it moves
  on to the next file. A ``scan`` adds up the records' sizes (+16 framing bytes each); when the
  shard ends short of its file size, the record at that offset was damaged and the rest of the
  shard was not read. ``tools/check_data.py`` lists every damaged record of a shard.
* Limits: recording an item also asserts that the table holds at most ``limit`` names, so
  ``--strict`` (limit 0) and ``--max_bad_images`` stop the pipeline at the item that crosses the
  limit; :func:`raise_if_over_limit` turns that error into a one-line :class:`BadDataError`.

Each item counts once however often it is met (every epoch meets it again). Counts are per process
(each rank reads its own part of the data).
"""

from __future__ import annotations

import re
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import tensorflow as tf

from datasets.record_scan import FRAMING_BYTES, scan_shard
from run_config import DataConfig

__all__ = [
    "BadDataError",
    "BadDataLog",
    "BadDataPolicy",
    "BadDataReport",
    "BadDataTracker",
    "BadItem",
    "KIND_IMAGE",
    "KIND_RECORD",
    "image_error",
    "policy_from_config",
    "raise_if_over_limit",
    "record_name",
    "tracker_of",
]

KIND_IMAGE = 1   # an element that did not read, parse or decode
KIND_RECORD = 2  # a TFRecord record with a bad checksum or framing (the rest of its shard unread)
RING = 1 << 14   # names kept for elements in flight between numbering and the gap check
DEFAULT_MAX_BAD = 10
CHECK_TOOL = "python tools/check_data.py"
_TRACKERS: weakref.WeakSet[BadDataTracker] = weakref.WeakSet()  # for raise_if_over_limit


class BadDataError(ValueError):
    """More unreadable images or damaged records than allowed; the message names them and the fix."""


@dataclass(frozen=True)
class BadDataPolicy:
    """How many unreadable items a run accepts.

    Attributes:
        max_bad: distinct unreadable training items skipped before training stops (per process).
        strict: stop at the first unreadable item, in training and in evaluation.
    """

    max_bad: int = DEFAULT_MAX_BAD
    strict: bool = False

    def limit(self, split: str) -> Optional[int]:
        """Items allowed in ``split``: evaluation skips any number (and reports them) unless strict."""
        if self.strict:
            return 0
        return self.max_bad if split == "train" else None


def _is_real(output, real):
    """Keeps an element that is an image, not the end-of-data sentinel (named functions: AutoGraph reads them)."""
    return real


def _output_of(output, real):
    return output


def policy_from_config(data: DataConfig) -> BadDataPolicy:
    """:class:`BadDataPolicy` from the run's ``max_bad_images`` and ``strict``."""
    return BadDataPolicy(max_bad=data.max_bad_images, strict=data.strict)


@dataclass(frozen=True)
class BadItem:
    """One unreadable item: its name, kind and why (as TensorFlow's decoder or reader says)."""

    name: str
    kind: int
    reason: str

    def describe(self) -> str:
        return f"{self.name} ({self.reason})"


@dataclass
class BadDataReport:
    """What a tracker has met so far.

    Attributes:
        split: ``train`` or ``validation``.
        count: distinct unreadable items.
        items: all of them, in the order the host first saw them.
        limit: items allowed (None: any number).
    """

    split: str
    count: int = 0
    items: List[BadItem] = field(default_factory=list)
    limit: Optional[int] = None

    def names(self, most: int = 5) -> str:
        """``a (reason); b (reason) and 3 more``."""
        shown = "; ".join(item.describe() for item in self.items[:most])
        return shown + (f" and {self.count - most} more" if self.count > most else "")


def image_error(encoded: bytes) -> Optional[str]:
    """Why ``encoded`` does not decode with the readers' decoders, or None when it does (host side)."""
    try:
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        if int(image.shape[0]) == 0 or int(image.shape[1]) == 0:
            return "empty image"
    except (tf.errors.OpError, ValueError) as e:
        return _clean_message(e)
    return None


def _clean_message(error: BaseException) -> str:
    """TensorFlow's message without the function-node prefix and op suffix, on one line."""
    text = getattr(error, "message", None) or str(error)
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:.*$", "", text, flags=re.S)
    text = " ".join(text.split())
    return text[:160] or type(error).__name__


def split_record_name(name: str) -> Tuple[str, int]:
    """``<shard>@<offset>`` -> (shard, offset); raises ValueError for other names."""
    shard, sep, offset = name.rpartition("@")
    if not sep or not offset.isdigit():
        raise ValueError(f"not a record name: {name}")
    return shard, int(offset)


def record_name(shard: str, offset: int) -> str:
    """The name of the TFRecord record at byte ``offset`` of ``shard``."""
    return f"{shard}@{offset}"


class BadDataTracker:
    """Unreadable items of one split in one process (see the module docstring).

    Args:
        split: ``train`` or ``validation`` (for messages).
        limit: items allowed before the pipeline stops; None for any number.
        source: the data directory, for the advice in messages.
    """

    def __init__(self, split: str, limit: Optional[int] = None, source: Optional[str] = None) -> None:
        self.split = split
        self.limit = limit
        self.source = source
        self._table = None
        self._items: Dict[str, BadItem] = {}
        self._lock = threading.Lock()
        _TRACKERS.add(self)

    # -- in the pipeline ---------------------------------------------------------------------------

    @property
    def table(self):
        """name -> kind, on the host CPU; created on first use."""
        if self._table is None:
            with tf.init_scope(), tf.device("/cpu:0"):
                self._table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, default_value=0)
        return self._table

    def _record(self, names: tf.Tensor, kind: int) -> tf.Tensor:
        """Inserts ``names`` (a vector) and, with a limit, fails the pipeline beyond it."""
        table = self.table

        def insert():
            inserted = table.insert(names, tf.fill(tf.shape(names), tf.constant(kind, tf.int64)))
            with tf.control_dependencies([inserted]):
                return tf.constant(True)

        if self.limit is None:
            return insert()
        # Past the limit the pipeline has failed already; elements its buffers still push through
        # (with a stale gap-check state) must not add names.
        inserted = tf.cond(table.size() > self.limit, lambda: tf.constant(False), insert)
        with tf.control_dependencies([inserted]):
            what = "--strict" if self.limit == 0 else f"--max_bad_images={self.limit}"
            check = tf.debugging.Assert(
                table.size() <= self.limit,
                [f"unreadable {self.split} data beyond the limit of {what}; the last one:", names], summarize=3)
            with tf.control_dependencies([check]):
                return tf.constant(True)

    def decode(self, ds: tf.data.Dataset, fn: Callable, *, name_of: Callable[[Any], Optional[tf.Tensor]],
               finite: bool) -> tf.data.Dataset:
        """``ds.map(fn)`` in parallel, dropping and recording the elements for which ``fn`` raises.

        Args:
            ds: elements for ``fn`` (a tuple is passed as positional arguments).
            fn: parses, reads and decodes one element; everything that may fail belongs in it.
            name_of: the element's name (a string tensor), or None to number it.
            finite: the dataset ends (evaluation): check for failures after the last survivor.

        Returns:
            ``fn``'s outputs for the elements that decoded, in ``ds``'s order.
        """
        with tf.init_scope(), tf.device("/cpu:0"):
            ring = tf.lookup.experimental.MutableHashTable(tf.int64, tf.string, default_value="")

        def call(elem):
            return fn(*elem) if isinstance(elem, tuple) else fn(elem)

        def remember(index, elem):
            name = name_of(*elem) if isinstance(elem, tuple) else name_of(elem)
            if name is None:
                name = tf.strings.join(["element #", tf.strings.as_string(index)])
            value = tf.strings.join([tf.strings.as_string(index), "\t", name])
            if finite:  # slot -1 holds the newest element: the sentinel reads the total there
                inserted = ring.insert(tf.stack([index % RING, tf.constant(-1, tf.int64)]), tf.stack([value, value]))
            else:
                inserted = ring.insert(tf.reshape(index % RING, [1]), tf.reshape(value, [1]))
            with tf.control_dependencies([inserted]):
                return tf.identity(index), elem

        def decoded(index, elem):
            return call(elem), index

        numbered = ds.enumerate().map(remember)  # sequential: the ring is written in order
        out = numbered.map(decoded, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
        if finite:
            spec = out.element_spec[0]

            def sentinel(_):
                newest = ring.lookup(tf.constant(-1, tf.int64))
                total = tf.cond(tf.equal(newest, ""), lambda: tf.constant(0, tf.int64),
                                lambda: _index_of(newest) + 1)
                # A negative number marks the sentinel: -(total + 1).
                return tf.nest.map_structure(_zeros_like_spec, spec), -total - 1

            out = out.concatenate(tf.data.Dataset.range(1).map(sentinel))

        def gap_check(expected, elem):
            output, index = elem
            position = tf.where(index < 0, -index - 1, index)

            def record_missing():
                missing = tf.range(expected, position)
                values = ring.lookup(missing % RING)
                # A slot overwritten by a later element: the count stays exact, the name is lost.
                names = tf.where(tf.equal(_index_of(values), missing), _name_of(values),
                                 tf.strings.join(["element #", tf.strings.as_string(missing)]))
                return self._record(names, KIND_IMAGE)

            done = tf.cond(position > expected, record_missing, lambda: tf.constant(True))
            with tf.control_dependencies([done]):
                return position + 1, ((output, index >= 0) if finite else output)

        out = out.scan(tf.constant(0, tf.int64), gap_check)
        if not finite:
            return out
        return out.filter(_is_real).map(_output_of)

    def read_shard(self, path: tf.Tensor, size: tf.Tensor, buffer_size: Optional[int] = None) -> tf.data.Dataset:
        """The records of one TFRecord shard as ``{"serialized", "name"}``, up to a damaged record.

        Args:
            path: the shard's path (string tensor).
            size: its size in bytes (int64 tensor): reading must end there.
            buffer_size: read buffer of the reader.
        """
        records = tf.data.TFRecordDataset(path, buffer_size=buffer_size).ignore_errors()
        flagged = records.map(lambda r: (r, True)).concatenate(
            tf.data.Dataset.from_tensors((tf.constant(b""), tf.constant(False))))

        def step(offset, elem):
            serialized, real = elem
            name = tf.strings.join([path, "@", tf.strings.as_string(offset)])
            damaged = tf.logical_and(tf.logical_not(real), offset < size)
            done = tf.cond(damaged, lambda: self._record(tf.reshape(name, [1]), KIND_RECORD),
                           lambda: tf.constant(True))
            with tf.control_dependencies([done]):
                end = offset + tf.cast(tf.strings.length(serialized), tf.int64) + FRAMING_BYTES
                return end, (serialized, name, real)

        out = flagged.scan(tf.constant(0, tf.int64), step).filter(lambda serialized, name, real: real)
        return out.map(lambda serialized, name, real: {"serialized": serialized, "name": name})

    # -- on the host -------------------------------------------------------------------------------

    def count(self) -> int:
        """Distinct unreadable items met so far."""
        return int(self.table.size()) if self._table is not None else 0

    def report(self) -> BadDataReport:
        """Every item met so far, each described once (reading it again on the host for the reason)."""
        report = BadDataReport(self.split, limit=self.limit)
        if self._table is None:
            return report
        keys, kinds = self.table.export()
        with self._lock:
            for key, kind in sorted(zip(keys.numpy().tolist(), kinds.numpy().tolist())):
                name = key.decode("utf-8", "replace")
                if name not in self._items:
                    self._items[name] = BadItem(name, int(kind), self._reason(name, int(kind)))
            current = set(k.decode("utf-8", "replace") for k in keys.numpy().tolist())
            report.items = [item for name, item in self._items.items() if name in current]
        report.count = len(report.items)
        return report

    def reset(self) -> None:
        """Forgets the items met (evaluation counts each pass on its own)."""
        if self._table is not None:
            keys, _ = self.table.export()
            self.table.remove(keys)

    def over_limit(self) -> bool:
        return self.limit is not None and self.count() > self.limit

    def error(self) -> BadDataError:
        """The one-line error of a pipeline stopped by the limit."""
        report = self.report()
        check = f"{CHECK_TOOL} --data_dir={self.source}" if self.source else CHECK_TOOL
        if self.limit == 0:
            item = report.items[0] if report.items else BadItem("?", KIND_IMAGE, "unknown")
            return BadDataError(
                f"unreadable {self.split} {_noun(item.kind)} {item.describe()}; --strict stops at the first. "
                f"Fix or delete it ({check} lists every unreadable file and record), or drop --strict "
                f"to skip up to --max_bad_images of them.")
        return BadDataError(
            f"{report.count} unreadable {self.split} {_nouns(report.items)}, more than --max_bad_images={self.limit}: "
            f"{report.names()}. {check} lists them all; fix or delete them, or raise --max_bad_images.")

    def _reason(self, name: str, kind: int) -> str:
        try:
            if kind == KIND_RECORD:
                return describe_damaged_record(*split_record_name(name))
            return describe_element(name)
        except (OSError, ValueError, tf.errors.OpError) as e:
            return f"cannot read it again: {_clean_message(e)}"


def describe_damaged_record(shard: str, offset: int) -> str:
    """What a damaged record costs: the pipeline reads nothing after it in its shard (host side)."""
    scan = scan_shard(shard, start=offset)
    what = scan.damaged[0][1] if scan.damaged and scan.damaged[0][0] == offset else "unreadable"
    lost = scan.size - offset
    if scan.unframed is not None and scan.unframed[0] == offset:
        rest = f"the last {lost} bytes of the shard, which cannot be split into records, were not read"
    else:
        rest = (f"TensorFlow cannot read past it, so the {scan.records} readable record(s) after it in the "
                f"shard ({lost} bytes from it on) were not read")
    return f"damaged record: {what}; {rest}"


def describe_element(name: str) -> str:
    """Why an image file or a TFRecord record (``<shard>@<offset>``) does not decode (host side)."""
    if name.startswith("element #"):
        return "does not decode"
    if tf.io.gfile.exists(name):
        with tf.io.gfile.GFile(name, "rb") as f:
            encoded = f.read()
        if not encoded:
            return "empty file"
        return image_error(encoded) or "decodes on its own but failed in the pipeline"
    shard, offset = split_record_name(name)
    from tensorflow.python.lib.io import tf_record  # the random-access reader has no public alias

    serialized, _ = tf_record.tf_record_random_reader(shard).read(offset)
    example = tf.train.Example.FromString(serialized)
    feature = example.features.feature
    filename = feature["image/filename"].bytes_list.value[0].decode() if feature["image/filename"].bytes_list.value \
        else ""
    encoded = feature["image/encoded"].bytes_list.value
    reason = image_error(encoded[0]) if encoded else "no image/encoded feature"
    return (f"{filename}: " if filename else "") + (reason or "decodes on its own but failed in the pipeline")


def _noun(kind: int) -> str:
    return "TFRecord record" if kind == KIND_RECORD else "image"


def _nouns(items: List[BadItem]) -> str:
    """``image(s)``, or ``image(s)/record(s)`` when a damaged TFRecord record is among ``items``."""
    return "image(s)/record(s)" if any(item.kind == KIND_RECORD for item in items) else "image(s)"


def _index_of(values: tf.Tensor) -> tf.Tensor:
    return tf.strings.to_number(tf.strings.regex_replace(values, "\t.*", ""), tf.int64)


def _name_of(values: tf.Tensor) -> tf.Tensor:
    return tf.strings.regex_replace(values, "^[^\t]*\t", "")


def _zeros_like_spec(spec: tf.TensorSpec) -> tf.Tensor:
    return tf.zeros([d if d is not None else 0 for d in spec.shape], spec.dtype)


class BadDataLog:
    """Logs the unreadable items of a split as they are met (call :meth:`update` after each device loop).

    Args:
        dataset: the dataset (one without a tracker logs nothing).
        split: ``train`` or ``validation``.
        log: called with each line.
    """

    def __init__(self, dataset: Any, split: str, log: Callable[[str], None]) -> None:
        self.tracker = tracker_of(dataset, split)
        self.log = log
        self._logged: set = set()

    def update(self, step: Optional[int] = None) -> None:
        """Logs the items met since the last call, naming the first few."""
        if self.tracker is None or self.tracker.count() == len(self._logged):
            return
        report = self.tracker.report()
        new = [item for item in report.items if item.name not in self._logged]
        self._logged.update(item.name for item in new)
        if not new:
            return
        fresh = BadDataReport(report.split, len(new), new, report.limit)
        limit = "no limit" if report.limit is None else f"limit --max_bad_images={report.limit}"
        at = f" by step {step}" if step is not None else ""
        self.log(f"Skipped {len(new)} unreadable {report.split} {_nouns(new)}{at} ({report.count} in all, "
                 f"{limit}): {fresh.names()}")

    def finish(self) -> None:
        """Logs what is still new and, if anything was skipped, the total."""
        self.update()
        if self._logged:
            source = f" --data_dir={self.tracker.source}" if self.tracker.source else ""
            self.log(f"{len(self._logged)} unreadable {self.tracker.split} {_nouns(self.tracker.report().items)} "
                     f"skipped in all; {CHECK_TOOL}{source} lists every one.")


def tracker_of(dataset: Any, split: str) -> Optional[BadDataTracker]:
    """The dataset's tracker of ``split``, or None for datasets without one (synthetic, tests)."""
    get = getattr(dataset, "bad_data", None)
    return get(split) if callable(get) else None


def raise_if_over_limit() -> None:
    """Raises the one-line :class:`BadDataError` if an input pipeline stopped at its limit.

    Call it where an ``OpError`` from training or evaluation is caught, then re-raise that error.
    """
    for tracker in list(_TRACKERS):
        if tracker.over_limit():
            raise tracker.error() from None
