"""Common base of the datasets that read image files (TFRecords, image folders, the demo)."""

from __future__ import annotations

import abc
from typing import Any, Dict, Optional, Tuple

import tensorflow as tf

from datasets import pipeline, preprocessing, repeated
from datasets.bad_data import BadDataPolicy, BadDataTracker, policy_from_config
from datasets.base import ImageDataset
from datasets.pipeline import PipelineOptions
from datasets.preprocessing import PreprocessConfig
from run_config import RunConfig

__all__ = ["FileDataset"]


class FileDataset(ImageDataset):
    """A dataset whose readers yield encoded images; preprocessing and batching are shared.

    Subclasses implement :meth:`records` (a dataset of ``{"encoded", "label"[, "bboxes"]}``
    for one pipeline) and :meth:`num_examples`. A reader whose records still need reading or
    parsing (file paths, serialized TFRecords) also overrides :meth:`parse`, which runs inside the
    decode map, and gives each record a ``name`` so that an unreadable one is named
    (``datasets/bad_data.py``).

    Args:
        options: tf.data knobs (shuffle buffer, determinism, thread pool).
        preprocess: overrides of :class:`PreprocessConfig` fields; None values keep the dataset's
            defaults (``default_area_range``, ``default_random_flip``) or the recipe's.
        bad_data_policy: how many unreadable images or records to skip (``--max_bad_images``, ``--strict``).
        **kwargs: see :class:`datasets.base.ImageDataset`.
    """

    default_area_range: Tuple[float, float] = (0.08, 1.0)
    default_random_flip: bool = True
    label_offset: int = 0
    ra_reps: int = 1  # repeated augmentation (datasets/repeated.py): --ra_sampler's --ra_reps, set by from_config
    positioned: bool = False  # records() takes ``start``: the training stream from any record (datasets/pipeline.py)

    def __init__(self, *, options: Optional[PipelineOptions] = None,
                 preprocess: Optional[Dict[str, Any]] = None,
                 bad_data_policy: Optional[BadDataPolicy] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.options = options or PipelineOptions()
        self.bad_data_policy = bad_data_policy or BadDataPolicy()
        self._bad_data: Dict[str, BadDataTracker] = {}
        overrides: Dict[str, Any] = dict(area_range=self.default_area_range, random_flip=self.default_random_flip)
        overrides.update({k: v for k, v in (preprocess or {}).items() if v is not None})
        self.preprocess_config = PreprocessConfig.from_recipe(self.recipe, **overrides)

    @classmethod
    def from_config(cls, config: RunConfig, recipe) -> FileDataset:
        dataset = cls(recipe=recipe, data_dir=config.data.data_dir, num_classes=config.model.num_classes,
                      seed=config.seed, options=pipeline.options_from_config(config.data),
                      preprocess=pipeline.preprocess_overrides(config.augment),
                      bad_data_policy=policy_from_config(config.data), **cls.extra_kwargs(config))
        if config.augment.ra_sampler:  # hook: repeated augmentation (datasets/repeated.py)
            dataset.ra_reps = config.augment.ra_reps
        return dataset

    @classmethod
    def extra_kwargs(cls, config: RunConfig) -> Dict[str, Any]:
        """Subclass-specific constructor arguments taken from the run's configuration."""
        return {}

    @abc.abstractmethod
    def records(self, split: str, *, training: bool, input_context: Optional[tf.distribute.InputContext],
                seed: Optional[int]) -> tf.data.Dataset:
        """This pipeline's encoded images with labels; shuffled and repeated when training.

        A reader that sets ``positioned`` also takes ``start``: the training stream from that record on,
        exactly as an uninterrupted stream goes on from there (:func:`datasets.pipeline.epochs_from`).
        """

    def parse(self, record: Any) -> Dict[str, tf.Tensor]:
        """One record of :meth:`records` as ``{"encoded", "label"[, "bboxes"]}`` (default: as it is)."""
        return record

    def bad_data(self, split: str) -> BadDataTracker:
        """The unreadable images and records met in ``split`` by this process (``datasets/bad_data.py``)."""
        if split not in self._bad_data:
            self._bad_data[split] = BadDataTracker(split, self.bad_data_policy.limit(split), source=self.data_dir)
        return self._bad_data[split]

    def pipeline_seed(self, input_context: Optional[tf.distribute.InputContext]) -> Optional[int]:
        """The seed of one pipeline: ``--seed`` plus the pipeline id (None stays random)."""
        if self.seed is None:
            return None
        return self.seed + (input_context.input_pipeline_id if input_context is not None else 0)

    def input_fn(self, split: str, *, training: bool, batch_size: int,
                 input_context: Optional[tf.distribute.InputContext] = None,
                 normalize: bool = True, start: int = 0) -> tf.data.Dataset:
        """Batches of ``(images, labels)``; see :meth:`datasets.base.ImageDataset.input_fn`.

        Args:
            normalize: float32 normalised images (default); False yields uint8 images, 4x fewer
                bytes to move to an accelerator, to be normalised there with :meth:`normalize`.
            start: training: records of this pipeline's stream already consumed (a resumed run's step
                times the records a step takes from this pipeline). A reader whose :meth:`records` takes
                a position (``positioned``) starts there; any other stream skips that many records (read
                again, not decoded). The augmentation seeds go on from there either way.
        """
        pipeline.check_split(split)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        seed = self.pipeline_seed(input_context)
        start = int(start) if training else 0
        positioned = self.positioned and not (training and self.ra_reps > 1)
        if training and self.ra_reps > 1:  # hook: repeated augmentation (datasets/repeated.py)
            records = repeated.records(self, split, input_context=input_context, batch_size=batch_size, seed=seed)
        else:
            records = self.records(split, training=training, input_context=input_context, seed=seed,
                                   **({"start": start} if start and positioned else {}))
        if start and not positioned:
            records = records.skip(start)  # no position of its own: read up to it again
        return pipeline.batches(
            records, training=training, batch_size=batch_size, config=self.preprocess_config,
            num_classes=self.num_classes, options=self.options, seed=seed, normalize=normalize,
            label_offset=self.label_offset, parse=self.parse, tracker=self.bad_data(split), start=start,
        )

    def normalize(self, images: tf.Tensor, dtype: tf.DType = tf.float32) -> tf.Tensor:
        """Normalises uint8 images from ``input_fn(..., normalize=False)`` with the recipe's mean/std."""
        return preprocessing.normalize_for(images, self.preprocess_config, dtype)
