"""The ImageNet TFRecord format of the TensorFlow models repository, for writing and reading.

One ``tf.train.Example`` per image: ``image/encoded`` (the file's bytes), ``image/format``,
``image/filename``, ``image/height``, ``image/width``, ``image/class/label`` (int64; ImageNet uses
1..1000, 0 being the unused "background" class), ``image/class/text`` and optional bounding boxes
``image/object/bbox/{xmin,ymin,xmax,ymax}`` (float lists, 0..1). Shards are named
``<split>-<index:05d>-of-<count:05d>``, and a ``dataset_info.json`` written by
``tools/build_tfrecords.py`` records the counts and the label convention.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Sequence

import tensorflow as tf

__all__ = [
    "INFO_FILE",
    "SPLIT_PREFIX",
    "make_example",
    "parse_record",
    "read_info",
    "shard_name",
]

INFO_FILE = "dataset_info.json"
SPLIT_PREFIX = {"train": "train", "validation": "validation"}
_BBOX_KEYS = ("ymin", "xmin", "ymax", "xmax")  # the order sample_distorted_bounding_box expects

_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    "image/class/text": tf.io.FixedLenFeature([], tf.string, default_value=""),
}
_FEATURES.update({f"image/object/bbox/{k}": tf.io.VarLenFeature(tf.float32) for k in _BBOX_KEYS})


def shard_name(split: str, index: int, count: int) -> str:
    """``train-00003-of-00128``."""
    return f"{SPLIT_PREFIX[split]}-{index:05d}-of-{count:05d}"


def _bytes(values: Sequence[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _ints(values: Sequence[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _floats(values: Sequence[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def make_example(*, encoded: bytes, label: int, text: str, filename: str, image_format: str, height: int,
                 width: int, bboxes: Optional[Sequence[Sequence[float]]] = None) -> tf.train.Example:
    """One image as a ``tf.train.Example`` with the ImageNet feature keys.

    Args:
        encoded: the image file's bytes.
        label: stored label (ImageNet convention: 1-based).
        text: class name.
        filename: base name of the source file.
        image_format: ``JPEG`` or ``PNG``.
        height, width: image size in pixels.
        bboxes: optional boxes as (ymin, xmin, ymax, xmax) in 0..1.
    """
    feature = {
        "image/encoded": _bytes([encoded]),
        "image/format": _bytes([image_format.encode()]),
        "image/filename": _bytes([filename.encode()]),
        "image/height": _ints([height]),
        "image/width": _ints([width]),
        "image/channels": _ints([3]),
        "image/colorspace": _bytes([b"RGB"]),
        "image/class/label": _ints([label]),
        "image/class/text": _bytes([text.encode()]),
    }
    boxes = list(bboxes or [])
    for i, key in enumerate(_BBOX_KEYS):
        feature[f"image/object/bbox/{key}"] = _floats([b[i] for b in boxes])
    return tf.train.Example(features=tf.train.Features(feature=feature))


def parse_record(serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
    """A serialized Example -> ``{"encoded", "label", "text", "bboxes"}`` (bboxes float [N, 4])."""
    parsed = tf.io.parse_single_example(serialized, _FEATURES)
    coords = [tf.sparse.to_dense(parsed[f"image/object/bbox/{k}"]) for k in _BBOX_KEYS]
    return {
        "encoded": parsed["image/encoded"],
        "label": tf.cast(parsed["image/class/label"], tf.int32),
        "text": parsed["image/class/text"],
        "bboxes": tf.stack(coords, axis=1),
    }


def read_info(data_dir: str) -> Optional[Dict[str, Any]]:
    """The ``dataset_info.json`` of a TFRecord directory, or None if there is none."""
    path = os.path.join(data_dir, INFO_FILE)
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); rebuild it with tools/build_tfrecords.py "
                         "or delete it.") from e
