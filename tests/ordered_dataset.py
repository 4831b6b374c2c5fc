"""A dataset plugin for the distribution tests (``--extra_modules=tests/ordered_dataset.py``).

64 fixed random examples in a fixed order, no augmentation, no shuffling. Each input pipeline
takes every ``num_input_pipelines``-th example (sharding by example), so that at every step the
replicas of any layout together see exactly the examples one process sees with the global batch:
runs on 1 device, 2 logical devices and 2 worker processes become comparable step by step.
"""

from typing import Any, Optional

import numpy as np
import tensorflow as tf

from datasets.base import ImageDataset
from registry import DATASETS

EXAMPLES = 64


@DATASETS.register("ordered_test", description="Tests: 64 fixed random examples, fixed order, sharded by example.")
class OrderedTestDataset(ImageDataset):
    name = "ordered_test"

    @classmethod
    def from_config(cls, config: Any, recipe) -> "OrderedTestDataset":
        return cls(recipe=recipe, num_classes=config.model.num_classes or 4, seed=config.seed)

    @property
    def num_classes(self) -> int:
        return self._num_classes or 4

    def num_examples(self, split: str) -> int:
        return EXAMPLES

    def input_fn(self, split: str, *, training: bool, batch_size: int,
                 input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
        rng = np.random.RandomState(1234)
        size = self.recipe.input_size
        images = rng.normal(size=(EXAMPLES, size, size, 3)).astype(np.float32)
        labels = rng.randint(0, self.num_classes, size=EXAMPLES).astype(np.int32)
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
        if input_context is not None and input_context.num_input_pipelines > 1:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if training:
            ds = ds.repeat()
        return ds.batch(batch_size, drop_remainder=training)
