"""Host-side scan of a TFRecord shard: every record read and checked, every damaged one listed.

``tf.data.TFRecordDataset`` stops a shard at the first record whose checksum or framing is bad.
This scan reads record by record at byte offsets instead, so it can go on after a damaged record
when that record's length field still points at a valid next record (the usual case: a flipped
byte in the image data). When the length itself is damaged, the rest of the shard cannot be split
into records and is reported as one unframed stretch of bytes.

Used by ``tools/check_data.py`` and, for the log's description of a damaged record met in
training or evaluation, by :mod:`datasets.bad_data`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import tensorflow as tf
from tensorflow.python.lib.io import tf_record  # the random-access reader has no public alias

__all__ = ["ShardScan", "scan_shard"]

FRAMING_BYTES = 16  # per record: length (8), length CRC (4), data CRC (4)


@dataclass
class ShardScan:
    """What a scan found in one shard.

    Attributes:
        path: the shard.
        size: its size in bytes.
        records: records that read with valid checksums (from ``start``).
        damaged: ``(offset, reason)`` of every damaged record.
        unframed: ``(offset, bytes)`` of a tail that cannot be split into records, or None.
        problems: ``(offset, reason)`` of records that read but that ``check`` rejected.
    """

    path: str
    size: int
    records: int = 0
    damaged: List[Tuple[int, str]] = field(default_factory=list)
    unframed: Optional[Tuple[int, int]] = None
    problems: List[Tuple[int, str]] = field(default_factory=list)


def _reads_at(reader, offset: int) -> bool:
    try:
        reader.read(offset)
        return True
    except (tf.errors.OpError, IndexError):
        return False


def _message(error: BaseException) -> str:
    return " ".join(str(error).split())[:120] or type(error).__name__


def scan_shard(path: str, start: int = 0, check: Optional[Callable[[bytes], Optional[str]]] = None) -> ShardScan:
    """Reads every record of ``path`` from byte ``start`` on.

    Args:
        path: a TFRecord file.
        start: the offset of the first record to read (0, or a record found damaged earlier).
        check: called with each record that reads; returns why it is unusable, or None.

    Returns:
        A :class:`ShardScan`.
    """
    size = tf.io.gfile.stat(path).length
    scan = ShardScan(path, size)
    reader = tf_record.tf_record_random_reader(path)
    offset = start
    with tf.io.gfile.GFile(path, "rb") as f:
        while offset < size:
            try:
                record, following = reader.read(offset)
            except (tf.errors.OpError, IndexError) as e:
                scan.damaged.append((offset, _message(e)))
                f.seek(offset)
                header = f.read(8)
                following = offset + FRAMING_BYTES + struct.unpack("<Q", header)[0] if len(header) == 8 else size + 1
                if following == size or (following < size and _reads_at(reader, following)):
                    offset = following
                    continue
                scan.unframed = (offset, size - offset)
                break
            scan.records += 1
            if check is not None:
                problem = check(record)
                if problem:
                    scan.problems.append((offset, problem))
            offset = following
    return scan
