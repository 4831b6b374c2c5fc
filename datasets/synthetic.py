"""Synthetic data: one random batch repeated, so the input costs nothing (``--synthetic``)."""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

from datasets.base import ImageDataset
from run_config import RunConfig

IMAGENET_TRAIN_IMAGES = 1_281_167
IMAGENET_VAL_IMAGES = 50_000

class SyntheticDataset(ImageDataset):
    """A fixed random batch, repeated forever; no file is read.

    Args:
        train_images: how many images an epoch of the training split pretends to have.
        val_images: size of the validation split.
        **kwargs: see :class:`datasets.base.ImageDataset`.
    """

    name = "synthetic"

    def __init__(self, *, train_images: int = IMAGENET_TRAIN_IMAGES, val_images: int = IMAGENET_VAL_IMAGES,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sizes = {"train": int(train_images), "validation": int(val_images)}

    @classmethod
    def from_config(cls, config: RunConfig, recipe) -> SyntheticDataset:
        return cls(recipe=recipe, num_classes=config.model.num_classes, seed=config.seed,
                   train_images=config.data.synthetic_train_images, val_images=config.data.synthetic_val_images)

    def num_examples(self, split: str) -> int:
        return self._sizes[split]

    def input_fn(self, split: str, *, training: bool, batch_size: int,
                 input_context: Optional[tf.distribute.InputContext] = None,
                 normalize: bool = True, start: int = 0) -> tf.data.Dataset:
        """One fixed batch, repeated (``start`` changes nothing: every training batch is the same)."""
        size = self.recipe.input_size
        seed = 0 if self.seed is None else self.seed
        if input_context is not None:
            seed += input_context.input_pipeline_id
        gen = tf.random.Generator.from_seed(seed)
        if normalize:
            images = gen.normal((batch_size, size, size, 3), dtype=tf.float32)
        else:  # uint8 pixels, as a real pipeline hands them to be normalised on the device
            images = tf.cast(gen.uniform((batch_size, size, size, 3), 0, 256, dtype=tf.int32), tf.uint8)
        labels = gen.uniform((batch_size,), 0, self.num_classes, dtype=tf.int32)
        ds = tf.data.Dataset.from_tensors((images, labels))
        if training:
            return ds.repeat()
        # Evaluation: this pipeline's share of the split, each example once, the last batch partial.
        pipelines = input_context.num_input_pipelines if input_context else 1
        pipeline_id = input_context.input_pipeline_id if input_context else 0
        total = self._sizes[split]
        count = total // pipelines + (1 if pipeline_id < total % pipelines else 0)
        full, rest = divmod(count, batch_size)
        ds = ds.repeat(full)
        if rest:
            ds = ds.concatenate(tf.data.Dataset.from_tensors((images[:rest], labels[:rest])))
        return ds
