"""Learning-rate schedules: linear warm-up followed by a per-epoch decay.

The recipe's schedule (reference-recipe.md): step ``i`` (0-based) uses ``lr * (i + 1) / warmup_steps``
while ``i < warmup_steps``; afterwards ``epoch = i // steps_per_epoch`` and the decay is evaluated
per epoch, e.g. cosine annealing ``lr * (1 + cos(pi * epoch / max_epochs)) / 2``.
"""

from __future__ import annotations

import math
from typing import Sequence

import tensorflow as tf

from keras_compat import keras

SCHEDULES = ("cosine", "constant", "piecewise", "exponential")

__all__ = ["SCHEDULES", "WarmupDecaySchedule"]


class WarmupDecaySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then cosine / constant / piecewise / exponential decay per epoch.

    Args:
        lr: peak learning rate (for the global batch).
        steps_per_epoch: optimizer steps in one epoch (``num_train_images // global_batch``).
        warmup_epochs: epochs of linear warm-up (may be fractional; 0 disables warm-up).
        max_epochs: cosine annealing reaches 0 at this epoch.
        kind: one of ``SCHEDULES``.
        boundaries: piecewise: epochs at which the lr is multiplied by ``decay_factor``.
        decay_factor: piecewise / exponential multiplier.
        decay_epochs: exponential: epochs between two multiplications by ``decay_factor``.
    """

    def __init__(
        self,
        lr: float,
        steps_per_epoch: int,
        warmup_epochs: float = 0.0,
        max_epochs: float = 1.0,
        kind: str = "cosine",
        boundaries: Sequence[float] = (),
        decay_factor: float = 0.1,
        decay_epochs: float = 1.0,
    ) -> None:
        super().__init__()
        if kind not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {kind!r}")
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
        self.lr = float(lr)
        self.steps_per_epoch = int(steps_per_epoch)
        self.warmup_epochs = float(warmup_epochs)
        self.warmup_steps = int(self.warmup_epochs * self.steps_per_epoch)
        self.max_epochs = float(max_epochs)
        self.kind = kind
        self.boundaries = tuple(float(b) for b in boundaries)
        self.decay_factor = float(decay_factor)
        self.decay_epochs = float(decay_epochs)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        epoch = tf.floor(step / self.steps_per_epoch)
        lr = tf.constant(self.lr, tf.float32)
        if self.kind == "cosine":
            decayed = lr * 0.5 * (1.0 + tf.cos(math.pi * epoch / self.max_epochs))
        elif self.kind == "piecewise":
            drops = tf.add_n([tf.cast(epoch >= b, tf.float32) for b in self.boundaries] + [0.0 * epoch])
            decayed = lr * tf.pow(self.decay_factor, drops)
        elif self.kind == "exponential":
            decayed = lr * tf.pow(self.decay_factor, tf.floor(epoch / self.decay_epochs))
        else:
            decayed = lr + 0.0 * epoch
        if self.warmup_steps <= 0:
            return decayed
        warm = lr * (step + 1.0) / float(self.warmup_steps)
        return tf.where(step < float(self.warmup_steps), warm, decayed)

    def value(self, step: int) -> float:
        """The learning rate of (0-based) step ``step`` as a Python float."""
        return float(self(tf.constant(step, tf.int64)))

    def get_config(self):
        return dict(
            lr=self.lr, steps_per_epoch=self.steps_per_epoch, warmup_epochs=self.warmup_epochs,
            max_epochs=self.max_epochs, kind=self.kind, boundaries=list(self.boundaries),
            decay_factor=self.decay_factor, decay_epochs=self.decay_epochs,
        )
