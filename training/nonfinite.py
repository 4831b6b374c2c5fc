"""What the training step does when the loss or a gradient is not finite (``--nan_policy``).

The check runs inside the device loop, before the update, on values every replica and process
already shares: the step all-reduces the gradients together with each replica's loss, always and
outside any branch (:meth:`training.trainer.Trainer._compute`), and decides from those sums. A sum is
finite exactly when every replica's addend is (an infinity or NaN anywhere makes it inf or NaN), every
replica holds the same sums, so every one takes the same decision without a collective of its own (a
replica that applied its update while another skipped would leave the weights different on each, and
a worker that skipped an all-reduce the others entered would wait forever). A non-finite update is
never applied, so no checkpoint can hold non-finite weights.

Policies:
    ``stop``: the step is not applied and the loop call does nothing more; the host raises
        :class:`NonFiniteLossError` naming the step and the last good checkpoint.
    ``skip_step``: the update is dropped, the step still counts (its batch is consumed and the
        learning-rate schedule moves on, as a float16 loss-scale skip does), and the skip is counted;
        ``max_consecutive`` skips in a row stop training as ``stop`` does.

With float16 loss scaling, non-finite *gradients* are the loss scale's business (it lowers the scale
and skips the step on every replica); only a non-finite *loss* goes through the policy.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

__all__ = ["NAN_POLICIES", "NonFiniteGuard", "NonFiniteLossError", "all_finite", "control_variable"]

NAN_POLICIES = ("stop", "skip_step")


class NonFiniteLossError(FloatingPointError):
    """Training stopped at a non-finite loss or gradient; the weights are those of ``last_good_step``.

    Attributes:
        step: the step whose loss or gradients were not finite (its update was not applied).
        last_good_step: steps applied before it.
        checkpoint: the newest checkpoint on disk, or None.
    """

    def __init__(self, message: str, *, step: int, last_good_step: int, checkpoint: Optional[str]) -> None:
        super().__init__(message)
        self.step = step
        self.last_good_step = last_good_step
        self.checkpoint = checkpoint


def all_finite(tensors) -> tf.Tensor:
    """True when every element of every tensor (None entries ignored) is finite."""
    flags = [tf.reduce_all(tf.math.is_finite(t)) for t in tensors if t is not None]
    return tf.reduce_all(tf.stack(flags)) if flags else tf.constant(True)


def control_variable(value, dtype, name: Optional[str] = None) -> tf.Variable:
    """A non-trainable variable of the loop's control state, the same on every replica.

    Create it in the strategy's scope; write it in cross-replica context (or from the host) with a
    value every replica agrees on. Reading it is a variable read, which is what a step sunk onto a
    device may depend on (docs/npu.md, "Loop sinking").
    """
    return tf.Variable(value, dtype=dtype, trainable=False, name=name,
                       synchronization=tf.VariableSynchronization.ON_WRITE,
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)



class NonFiniteGuard:
    """Device-side counters of non-finite steps; create inside the strategy's scope.

    Args:
        policy: ``stop`` or ``skip_step``.
        max_consecutive: ``skip_step``: skipped steps in a row that stop training.
    """

    def __init__(self, policy: str = "stop", max_consecutive: int = 5) -> None:
        if policy not in NAN_POLICIES:
            raise ValueError(f"--nan_policy={policy}: must be one of {', '.join(NAN_POLICIES)}.")
        if max_consecutive < 1:
            raise ValueError(f"--max_consecutive_skips={max_consecutive}: must be at least 1.")
        self.policy = policy
        self.max_consecutive = int(max_consecutive)
        self.stopped = control_variable(False, tf.bool)
        self.stopped_at = control_variable(-1, tf.int64)
        self.skipped = control_variable(0, tf.int64)
        self.in_row = control_variable(0, tf.int64)

    def on_applied(self) -> None:
        """In-graph, cross-replica: the step's update was applied."""
        self.in_row.assign(0)

    def on_nonfinite(self, iterations) -> None:
        """In-graph, cross-replica: the step's update was dropped; ``iterations`` = steps applied before it."""
        step = tf.cast(iterations, tf.int64) + 1
        if self.policy == "skip_step":
            iterations.assign_add(tf.cast(1, iterations.dtype))
            self.skipped.assign_add(1)
            self.in_row.assign_add(1)
            give_up = self.in_row >= self.max_consecutive
        else:
            give_up = tf.constant(True)
        self.stopped_at.assign(tf.where(give_up, step, self.stopped_at))
        self.stopped.assign(tf.logical_or(self.stopped, give_up))

    def reset(self) -> None:
        """Host: clears the stop flag (a new ``train`` call after the cause was fixed)."""
        self.stopped.assign(False)
        self.stopped_at.assign(-1)
        self.in_row.assign(0)

    def read(self):
        """Host: ``(stopped, stopped_at, skipped, in_row)`` as Python values (one read per loop call)."""
        return (bool(self.stopped.numpy()), int(self.stopped_at.numpy()), int(self.skipped.numpy()),
                int(self.in_row.numpy()))
