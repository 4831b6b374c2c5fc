"""A tiny model and an in-memory dataset whose evaluation can be checked by hand.

Loaded by the evaluation tests in-process and by ``main.py --extra_modules=tests/eval_testutil.py``.

``scores_linear`` is Flatten -> Dense(num_classes, name="logits"). With :func:`identity_weights` its
logits are the first ``num_classes`` pixel values of the image, so a test writes the class scores
of each example into its image and knows the predictions without running anything.

``handmade`` has ``VAL_SIZE`` validation examples (scores and labels below) and ``TRAIN_SIZE``
training examples; its images are already "normalised" floats (no preprocessing).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import tensorflow as tf

from datasets.base import ImageDataset
from keras_compat import keras
from registry import DATASETS, MODELS
from zoo.recipe import ModelRecipe

IMAGE_SIZE = 8
NUM_CLASSES = 6
TRAIN_SIZE = 6

# Class scores (logits under identity_weights) and labels of the validation examples.
VAL_SCORES = np.array([
    [5.0, 1.0, 0.5, 0.2, 0.1, 0.0],  # label 0: top-1 right
    [0.0, 4.0, 3.0, 2.0, 1.0, 0.5],  # label 2: top-1 wrong (1 wins), top-5 right
    [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # label 5: top-1 right
    [6.0, 5.0, 4.0, 3.0, 2.0, 1.0],  # label 5: lowest score -> top-5 wrong
    [0.3, 0.2, 0.1, 2.0, 0.0, 0.4],  # label 3: top-1 right
    [2.0, 0.0, 1.0, 0.5, 0.25, 3.0],  # label 0: top-1 wrong (5 wins), top-5 right
    [0.0, 0.0, 0.0, 0.0, 9.0, 0.0],  # label 4: top-1 right
], dtype=np.float32)
VAL_LABELS = np.array([0, 2, 5, 5, 3, 0, 4], dtype=np.int32)
VAL_SIZE = len(VAL_LABELS)
# By hand: top-1 right for examples 0, 2, 4, 6; top-5 wrong only for example 3.
TOP1_CORRECT = 4
TOP5_CORRECT = 6


def scores_to_images(scores: np.ndarray) -> np.ndarray:
    """Images whose flattened first values are ``scores`` (the rest zero)."""
    flat = np.zeros((len(scores), IMAGE_SIZE * IMAGE_SIZE * 3), np.float32)
    flat[:, : scores.shape[1]] = scores
    return flat.reshape(len(scores), IMAGE_SIZE, IMAGE_SIZE, 3)


def identity_weights(model, scale: float = 1.0) -> None:
    """Sets the logits layer so that logit ``j`` = ``scale`` x flattened input value ``j``."""
    layer = model.get_layer("logits")
    kernel = np.zeros(tuple(layer.weights[0].shape), np.float32)
    n = kernel.shape[1]
    kernel[:n, :n] = scale * np.eye(n, dtype=np.float32)
    layer.set_weights([kernel, np.zeros((n,), np.float32)])


@MODELS.register("scores_linear", recipe=ModelRecipe(input_size=IMAGE_SIZE, min_input_size=1, eval_resize=IMAGE_SIZE,
                                                     num_classes=NUM_CLASSES),
                 description="Test model: Flatten -> Dense logits.")
def scores_linear(*, num_classes: int = NUM_CLASSES, image_size: int = IMAGE_SIZE) -> keras.Model:
    """Flatten -> Dense(num_classes) named ``logits``."""
    inputs = keras.Input(shape=(image_size, image_size, 3), name="images")
    x = keras.layers.Flatten(name="flatten")(inputs)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name="scores_linear")


@DATASETS.register("handmade", description="Test data: validation examples with hand-checked predictions.")
class HandmadeDataset(ImageDataset):
    """``VAL_SCORES``/``VAL_LABELS`` as validation data; random training data of ``TRAIN_SIZE``."""

    name = "handmade"

    @classmethod
    def from_config(cls, config: Any, recipe) -> HandmadeDataset:
        return cls(recipe=recipe, num_classes=config.model.num_classes or NUM_CLASSES, seed=config.seed)

    def num_examples(self, split: str) -> int:
        return VAL_SIZE if split == "validation" else TRAIN_SIZE

    def input_fn(self, split: str, *, training: bool, batch_size: int,
                 input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
        if split == "validation":
            images, labels = scores_to_images(VAL_SCORES), VAL_LABELS
        else:
            rng = np.random.default_rng(0)
            images = rng.normal(size=(TRAIN_SIZE, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
            labels = rng.integers(0, NUM_CLASSES, TRAIN_SIZE).astype(np.int32)
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
        if input_context is not None and input_context.num_input_pipelines > 1:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if training:
            ds = ds.repeat()
        return ds.batch(batch_size, drop_remainder=training)


def expected_loss(scale: float = 1.0, label_smoothing: float = 0.1) -> float:
    """Mean label-smoothed cross entropy of the validation set under ``identity_weights(scale)``, in numpy."""
    logits = scale * VAL_SCORES.astype(np.float64)
    log_probs = logits - logits.max(1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
    target = np.full(logits.shape, label_smoothing / NUM_CLASSES)
    target[np.arange(VAL_SIZE), VAL_LABELS] += 1.0 - label_smoothing
    return float(-(target * log_probs).sum(1).mean())


def save_checkpoint(model, directory: str, step: int) -> str:
    """Writes ``<directory>/model.ckpt-<step>`` holding the model (as tools and training name them)."""
    return tf.train.Checkpoint(model=model).write(f"{directory}/model.ckpt-{step}")
