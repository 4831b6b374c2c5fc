"""Images an export needs from the run's data: calibration images for ``tflite_int8`` (the train split) and
held-out images on which every format is compared with the float32 model (the validation split).

Both go through the served model's evaluation transform (``datasets.preprocessing.eval_image``, the same
as the SavedModel's bytes signature and ``--mode=predict``) and normalisation: float32 [N, size, size, 3].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import tensorflow as tf

from datasets import preprocessing
from datasets.base import ImageDataset
from datasets.file_dataset import FileDataset
from datasets.preprocessing import PreprocessConfig

__all__ = ["ExportData", "held_out_images", "training_images"]

# Records shuffled before the held-out images are taken (image paths, or encoded records of ~100 kB).
_SHUFFLE_BUFFER = 1024


@dataclass
class ExportData:
    """What an export takes from the run's data.

    Attributes:
        calibration: normalised training images (``tflite_int8``'s calibration), or None.
        held_out: normalised images the formats are compared on, or None (then seeded random inputs).
        held_out_source: where ``held_out`` comes from, for the log.
    """

    calibration: Optional[np.ndarray] = None
    held_out: Optional[np.ndarray] = None
    held_out_source: str = ""


def _transformed(dataset: FileDataset, split: str, config: PreprocessConfig, *, shuffled: bool,
                 seed: Optional[int]) -> tf.data.Dataset:
    records = dataset.records(split, training=shuffled, input_context=None, seed=seed)
    if not shuffled:  # a mix of classes, not the first folder's images; each image at most once
        records = records.shuffle(_SHUFFLE_BUFFER, seed=0)

    def transform(record):
        record = dataset.parse(record)
        return preprocessing.normalize_for(preprocessing.eval_image(record["encoded"], config), config)

    # An unreadable image is left out (the run's own training logged it already).
    return records.map(transform, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()


def _take(ds: tf.data.Dataset, count: int, size: int) -> np.ndarray:
    images = [image.numpy() for image in ds.take(count)]
    return np.stack(images).astype(np.float32) if images else np.zeros((0, size, size, 3), np.float32)


def training_images(dataset: ImageDataset, config: PreprocessConfig, count: int, *,
                    seed: Optional[int] = 0) -> np.ndarray:
    """``count`` images of the train split in shuffled order (every class, not the first folder's), through
    the evaluation transform ``config``: float32 [count, size, size, 3].

    A dataset that reads files is shuffled as training shuffles it (``seed``); others (synthetic data) give
    their evaluation batches of the train split.
    """
    size = config.image_size
    if isinstance(dataset, FileDataset):
        return _take(_transformed(dataset, "train", config, shuffled=True, seed=seed), count, size)
    batches = dataset.input_fn("train", training=False, batch_size=min(count, 64))
    return _take(batches.map(lambda images, labels: images).unbatch(), count, size)


def held_out_images(dataset: ImageDataset, config: PreprocessConfig, count: int) -> np.ndarray:
    """``count`` images of the validation split (each at most once, in a seeded order that mixes the classes)
    through the evaluation transform (empty when the split has none)."""
    size = config.image_size
    if isinstance(dataset, FileDataset):
        return _take(_transformed(dataset, "validation", config, shuffled=False, seed=None), count, size)
    batches = dataset.input_fn("validation", training=False, batch_size=min(count, 64))
    return _take(batches.map(lambda images, labels: images).unbatch(), count, size)
