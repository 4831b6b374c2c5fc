"""The recipe's loss: label-smoothed softmax cross entropy plus L2 weight decay."""

from __future__ import annotations

from typing import Iterable

import tensorflow as tf

from keras_compat import variable_value

__all__ = ["cross_entropy", "l2_penalty"]


def cross_entropy(labels, logits, num_classes: int, label_smoothing: float = 0.0):
    """Per-example softmax cross entropy on one-hot labels smoothed as in ``tf.losses``.

    Args:
        labels: integer class ids, shape [batch].
        logits: [batch, num_classes], any float dtype (computed in float32).
        num_classes: number of classes.
        label_smoothing: the one-hot target becomes ``(1 - s) * onehot + s / num_classes``.
    """
    onehot = tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)
    if label_smoothing:
        onehot = onehot * (1.0 - label_smoothing) + label_smoothing / num_classes
    return tf.nn.softmax_cross_entropy_with_logits(labels=onehot, logits=tf.cast(logits, tf.float32))


def l2_penalty(variables: Iterable, weight_decay: float):
    """``weight_decay * sum(l2_loss(v))`` over ``variables`` (biases included, as the recipe does).

    ``tf.nn.l2_loss`` is half the squared norm.
    """
    terms = [tf.nn.l2_loss(tf.cast(variable_value(v), tf.float32)) for v in variables]
    if not terms or not weight_decay:
        return tf.constant(0.0, tf.float32)
    return weight_decay * tf.add_n(terms)
