"""A small model that writes down every training batch it sees (loaded with --extra_modules).

``witness_net`` is ``bn_test_net`` behind a layer that, in training only, appends one line per call to
``$WITNESS_DIR/rank<r>.txt`` (``r`` from ``TF_CONFIG``'s task index, else 0): the SHA-1 of the batch's
image bytes. One line per step of a one-replica process: the file counts the steps a process really
ran (a device loop call in progress included) and records the order of the data it trained on.
"""

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from keras_compat import keras
from registry import MODELS
from zoo.recipe import ModelRecipe

__all__ = ["read_witness", "witness_net"]


def _path() -> str:
    rank = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("index", 0)
    return os.path.join(os.environ["WITNESS_DIR"], f"rank{rank}.txt")


def _record(images: np.ndarray) -> np.int64:
    with open(_path(), "a") as f:
        f.write(hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest() + "\n")
    return np.int64(0)


def read_witness(directory: str, rank: int = 0) -> list:
    """The batch hashes a process recorded, in order (empty before its first step)."""
    try:
        with open(os.path.join(directory, f"rank{rank}.txt")) as f:
            return [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return []


class Witness(keras.layers.Layer):
    """Identity; in training, records its input's hash first (a host callback per call)."""

    def call(self, inputs, training=None):
        if not training or "WITNESS_DIR" not in os.environ:
            return inputs
        token = tf.numpy_function(_record, [inputs], tf.int64, stateful=True)
        with tf.control_dependencies([token]):
            return tf.identity(inputs)


@MODELS.register("witness_net", recipe=ModelRecipe(input_size=63, min_input_size=8, eval_resize=72, num_classes=4),
                 params=1, description="Test model: bn_test_net that records each training batch's hash.")
def witness_net(*, num_classes: int = 4, image_size: int = 63) -> keras.Model:
    """witness -> conv (no bias) -> batch norm -> ReLU -> global average pool -> dense 1024 -> dense ``logits``."""
    inputs = keras.Input((image_size, image_size, 3))
    x = Witness(name="witness")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False, name="conv")(x)
    x = keras.layers.BatchNormalization(momentum=0.5, name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    # A wide layer, so that a checkpoint (~100 kB) is larger than the run's other files (a file-size limit
    # can then fail a save and nothing else).
    x = keras.layers.Dense(1024, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))
