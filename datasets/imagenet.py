"""``imagenet``: TFRecord shards ``train-*`` and ``validation-*`` (the TensorFlow models layout)."""

from __future__ import annotations

import os
import struct
from typing import Any, Dict, List, Optional

import tensorflow as tf
from absl import logging

from datasets import pipeline, tfrecord_format
from datasets.file_dataset import FileDataset
from datasets.record_scan import FRAMING_BYTES
from run_config import RunConfig

__all__ = ["IMAGENET_EXAMPLES", "ImageNetDataset", "count_records"]


# The standard ImageNet-1k conversion: 1024 training shards, 128 validation shards.
IMAGENET_EXAMPLES = {"train": (1024, 1_281_167), "validation": (128, 50_000)}
_READ_BUFFER = 8 << 20  # bytes per file reader: large sequential reads
_CYCLE_LENGTH = 16      # files read concurrently per pipeline


class ImageNetDataset(FileDataset):
    """TFRecords in the ImageNet layout, with optional bounding boxes feeding the crop sampler.

    Args:
        label_offset: subtracted from stored labels; None: ``dataset_info.json``'s, else 1.
        **kwargs: see :class:`datasets.file_dataset.FileDataset`; ``data_dir`` is required.

    Raises:
        FileNotFoundError: ``data_dir`` is missing.
        ValueError: ``num_classes`` contradicts ``dataset_info.json``.
    """

    name = "imagenet"

    def __init__(self, *, label_offset: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not self.data_dir:
            raise ValueError("the imagenet dataset needs --data_dir, a directory of train-* and validation-* "
                             "TFRecord shards (build them with tools/build_tfrecords.py).")
        if not tf.io.gfile.isdir(self.data_dir):
            raise FileNotFoundError(f"--data_dir={self.data_dir} does not exist or is not a directory.")
        self.info = tfrecord_format.read_info(self.data_dir) or {}
        if label_offset is None:
            label_offset = int(self.info.get("label_offset", 1))
        self.label_offset = int(label_offset)
        stored = self.info.get("num_classes")
        if stored is not None and self._num_classes is not None and int(stored) != self._num_classes:
            raise ValueError(
                f"--num_classes={self._num_classes} does not match the data: "
                f"{os.path.join(self.data_dir, tfrecord_format.INFO_FILE)} says {stored} classes."
            )
        self._files: Dict[str, List[str]] = {}
        self._sizes: Dict[str, int] = {}
        self._counts: Dict[str, int] = {}
        self._record_counts: Dict[str, int] = {}  # per shard, for a resumed stream's position

    @classmethod
    def extra_kwargs(cls, config: RunConfig) -> Dict[str, Any]:
        return {"label_offset": config.data.label_offset}

    @property
    def num_classes(self) -> int:
        if self._num_classes:
            return self._num_classes
        return int(self.info.get("num_classes", self.recipe.num_classes))

    def files(self, split: str) -> List[str]:
        """The shards of ``split``, sorted; each checked once for being readable."""
        pipeline.check_split(split)
        if split not in self._files:
            pattern = os.path.join(self.data_dir, tfrecord_format.SPLIT_PREFIX[split] + "-*")
            found = sorted(f for f in tf.io.gfile.glob(pattern) if not f.endswith((".tmp", ".json")))
            if not found:
                raise FileNotFoundError(
                    f"no {split} TFRecord shards matching {pattern}; build them with "
                    "tools/build_tfrecords.py, or pass --dataset=image_folder for a folder of images."
                )
            self._sizes.update(_check_readable(found))
            self._files[split] = found
        return self._files[split]

    def num_examples(self, split: str) -> int:
        if split in self._counts:
            return self._counts[split]
        files = self.files(split)
        stored = self.info.get("splits", {}).get(split, {})
        if "examples" in stored and int(stored.get("shards", len(files))) == len(files):
            count = int(stored["examples"])
        elif (len(files), tfrecord_format.shard_name(split, 0, len(files))) == (
                IMAGENET_EXAMPLES[split][0], os.path.basename(files[0])):
            count = IMAGENET_EXAMPLES[split][1]
        else:
            logging.info("Counting the %s records in %d shards (no dataset_info.json)...", split, len(files))
            # Readable records only: a damaged record ends its shard (see datasets/bad_data.py).
            count = sum(int(tf.data.TFRecordDataset(f).ignore_errors().reduce(tf.constant(0, tf.int64),
                                                                              lambda n, _: n + 1)) for f in files)
        self._counts[split] = count
        return count

    positioned = True  # records() starts the training stream at any record (datasets/pipeline.py)

    def records(self, split: str, *, training: bool, input_context: Optional[tf.distribute.InputContext],
                seed: Optional[int], start: int = 0) -> tf.data.Dataset:
        """This pipeline's serialized records; training: endless epochs from record ``start`` on.

        An epoch reads the pipeline's shards in an order drawn from ``(seed, epoch)``, interleaved, and
        shuffles the records in blocks of ``--shuffle_buffer`` (each block in an order drawn from ``(seed,
        epoch, block)``); so epoch ``e`` is the same records in the same order (with ``--deterministic``:
        parallel reads may otherwise swap neighbours) whenever it is read. A stream started at ``start``
        reads epoch ``start // epoch_size`` and skips its first ``start % epoch_size`` records: they are read
        again but not decoded (docs/failures.md states the cost); the epoch's size comes from the shards'
        record headers.
        """
        shard = pipeline.file_shard(self.files(split), input_context)
        by_example = shard.num_shards > 1
        tracker = self.bad_data(split)
        paths = tf.constant(shard.files, tf.string)
        sizes = tf.constant([self._sizes[f] for f in shard.files], tf.int64)
        deterministic = self.options.deterministic or by_example
        # Every pipeline must see the same file order when it keeps every n-th example.
        file_seed = pipeline.base_seed((self.seed or 0) if by_example else seed)
        record_seed = pipeline.base_seed(seed)

        def read(files: tf.data.Dataset) -> tf.data.Dataset:
            ds = files.interleave(
                lambda path, size: tracker.read_shard(path, size, buffer_size=_READ_BUFFER),
                cycle_length=min(len(shard.files), _CYCLE_LENGTH), block_length=1,
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic,
            )
            return ds.shard(shard.num_shards, shard.index) if by_example else ds

        if not training:
            return read(tf.data.Dataset.from_tensor_slices((paths, sizes)))

        def epoch(number: tf.Tensor, skip: tf.Tensor) -> tf.data.Dataset:
            order = pipeline.epoch_permutation(len(shard.files), file_seed, number)
            ds = read(tf.data.Dataset.from_tensor_slices((tf.gather(paths, order), tf.gather(sizes, order))))
            return pipeline.block_shuffle(ds, self.options.shuffle_buffer, record_seed, number, skip=skip)

        epoch_size = self._epoch_size(shard) if start else 1
        # Parsed in the decode map (:meth:`parse`), where a record that does not parse is skipped and named.
        return pipeline.epochs_from(epoch, epoch_size=epoch_size, start=start)

    def _epoch_size(self, shard: pipeline.Shard) -> int:
        """Records one epoch of this pipeline reads: its shards' records (every n-th of them, by example)."""
        total = sum(self._records_in(f) for f in shard.files)
        if shard.num_shards > 1:
            return (total - shard.index + shard.num_shards - 1) // shard.num_shards
        return total

    def _records_in(self, path: str) -> int:
        """Records of one shard from their length headers (one small read per record, no payload read)."""
        if path not in self._record_counts:
            self._record_counts[path] = count_records(path, self._sizes[path])
        return self._record_counts[path]

    def parse(self, record: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        return tfrecord_format.parse_record(record["serialized"])


def count_records(path: str, size: int) -> int:
    """The records of a TFRecord shard of ``size`` bytes, from their length headers alone.

    Counts what ``TFRecordDataset`` yields from an intact shard; a record cut by the end of the file is not
    counted (the reader stops there too). A damaged record in the middle (which ends the reader's shard) is
    counted: the position of a resumed stream is then off by the records after it.
    """
    count, offset = 0, 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while offset + FRAMING_BYTES <= size:
            f.seek(offset)
            header = f.read(8)
            if len(header) < 8:
                break
            offset += struct.unpack("<Q", header)[0] + FRAMING_BYTES
            if offset > size:
                break
            count += 1
    return count


def _check_readable(files: List[str]) -> Dict[str, int]:
    """The shards' sizes; raises a ValueError naming the shards that are empty or whose first record is corrupt."""
    bad = []
    sizes = {}
    for path in files:
        try:
            sizes[path] = tf.io.gfile.stat(path).length
            if sizes[path] == 0:
                bad.append(f"{path} (empty file)")
                continue
            for _ in tf.data.TFRecordDataset(path).take(1):
                pass
        except (tf.errors.OpError, OSError) as e:
            bad.append(f"{path} ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValueError(f"{len(bad)} unreadable TFRecord shard(s): {shown}. Rebuild them with "
                         "tools/build_tfrecords.py or remove them.")
    return sizes
