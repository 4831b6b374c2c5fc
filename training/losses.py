"""The classification loss: label-smoothed softmax cross entropy (hard or soft labels), with auxiliary heads.

Weight decay (the L2 term of ``total_loss``) is in :mod:`training.weight_decay`.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

__all__ = ["cross_entropy", "classification_loss"]


def cross_entropy(labels, logits, num_classes: int, label_smoothing: float = 0.0):
    """Per-example softmax cross entropy on one-hot or soft labels, smoothed as in ``tf.losses``.

    Args:
        labels: integer class ids [batch], or soft labels: float [batch, num_classes] class
            probabilities (mixup/cutmix), as torch's ``cross_entropy`` accepts both.
        logits: [batch, num_classes], any float dtype (computed in float32).
        num_classes: number of classes.
        label_smoothing: the target becomes ``(1 - s) * target + s / num_classes`` (for soft labels
            too, as torch's ``cross_entropy(..., label_smoothing=s)`` on probability targets).
    """
    target = _target(labels, num_classes)
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / num_classes
    return tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=tf.cast(logits, tf.float32))


def _target(labels, num_classes: int) -> tf.Tensor:
    """float32 [batch, num_classes] target of integer ids (one-hot) or of soft labels (as they are)."""
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 2 and labels.dtype.is_floating:
        return tf.cast(labels, tf.float32)
    return tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)


def classification_loss(labels, outputs, num_classes: int, label_smoothing: float = 0.0,
                        aux_weights: Sequence[float] = ()):
    """Per-example loss of a model's outputs: the main head's cross entropy plus weighted auxiliary heads'.

    Args:
        labels: integer class ids [batch], or float soft labels [batch, num_classes].
        outputs: the logits, or a list ``[logits, aux_logits, ...]`` (inception_v3's auxiliary head).
        num_classes: number of classes.
        label_smoothing: as in :func:`cross_entropy`, for every head.
        aux_weights: the weight of each auxiliary head's loss (the model recipe's ``aux_loss_weights``).

    Raises:
        ValueError: the number of auxiliary outputs and of weights differ.
    """
    heads = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    if len(heads) - 1 != len(aux_weights):
        raise ValueError(
            f"the model has {len(heads) - 1} auxiliary outputs but its recipe gives {len(aux_weights)} "
            "aux_loss_weights; register the model with one weight per auxiliary head."
        )
    loss = cross_entropy(labels, heads[0], num_classes, label_smoothing)
    for weight, aux in zip(aux_weights, heads[1:]):
        loss = loss + weight * cross_entropy(labels, aux, num_classes, label_smoothing)
    return loss
