"""Synthetic data: a constant training batch, an exact validation split."""

import pytest
import tensorflow as tf

from datasets.synthetic import SyntheticDataset
from zoo.recipe import ModelRecipe


def _dataset(val_images=10):
    return SyntheticDataset(recipe=ModelRecipe(input_size=8), num_classes=5, seed=3, val_images=val_images)


def test_training_batches_repeat_one_fixed_batch():
    batches = list(_dataset().input_fn("train", training=True, batch_size=4).take(3))
    assert batches[0][0].shape == (4, 8, 8, 3) and batches[0][1].dtype == tf.int32
    for images, labels in batches[1:]:
        assert (images.numpy() == batches[0][0].numpy()).all()
        assert (labels.numpy() == batches[0][1].numpy()).all()
    assert int(tf.reduce_max(batches[0][1])) < 5


@pytest.mark.parametrize("pipelines", [1, 3])
def test_validation_counts_every_example_once_with_a_partial_batch(pipelines):
    data = _dataset(val_images=10)
    sizes = []
    for pipeline in range(pipelines):
        ctx = tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=pipeline)
        sizes.append([int(b[1].shape[0]) for b in data.input_fn("validation", training=False, batch_size=3,
                                                                  input_context=ctx)])
    assert sum(sum(s) for s in sizes) == 10
    if pipelines == 1:
        assert sizes == [[3, 3, 3, 1]]
    else:
        assert [sum(s) for s in sizes] == [4, 3, 3]
