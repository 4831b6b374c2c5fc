"""The float-status operations the adapter's loss scaling reads overflow with (``gen_npu_ops``).

On the device, ``NpuAllocFloatStatus`` makes a float32 status buffer, ``NpuGetFloatStatus`` copies the AI
core's overflow register into it and ``NpuClearFloatStatus`` clears the register; a zero status means no
operation overflowed since the last clear. ``NpuLossScaleOptimizer`` allocates the status after the
gradients (control dependencies), reads and clears it, and with several ranks all-reduces the float32
status with ``sum`` before comparing it with the cleared one
(``tf_adapter_2.x/python/npu_device/train/optimizer/npu_loss_scale_optimizer.py``,
``_npu_finite_status_after_executed``).

The stand-in has no overflow register: the status it reads is that of the tensors the check runs after
(1.0 in its first element when one of them holds an inf or NaN), which is where the overflow of a
float16 step shows on a CPU. Everything else, the float32 buffer of 8 values, the order of the calls and
the all-reduce of the status, is the adapter's.
"""

import tensorflow as tf

from npu_device import _standin

STATUS_SIZE = 8  # float32 values of a status buffer


def npu_alloc_float_status():
    return tf.zeros([STATUS_SIZE], tf.float32)


def npu_get_float_status(status, executed=()):
    """The status after ``executed`` ran: non-zero when one of them overflowed (holds inf or NaN)."""
    flags = [tf.reduce_all(tf.math.is_finite(t)) for t in executed if t is not None and t.dtype.is_floating]
    finite = tf.reduce_all(tf.stack(flags)) if flags else tf.constant(True)
    raised = tf.one_hot(0, STATUS_SIZE, dtype=tf.float32)
    return tf.where(finite, status, tf.maximum(status, raised))


def npu_clear_float_status(status):
    return tf.zeros_like(status)


def finite_status_after_executed(executed, workers_num, all_reduce):
    """True when no rank's status shows an overflow after ``executed`` (the adapter's check)."""
    executed = [t for t in executed if t is not None]
    with tf.control_dependencies(executed):
        current = npu_alloc_float_status()
    current = npu_get_float_status(current, executed)
    finite_status = npu_clear_float_status(current)
    _standin.record("float_status", workers=workers_num, dtype=current.dtype.name)
    if workers_num > 1:
        current = all_reduce(current, "sum", fusion=0)
    return tf.reduce_all(tf.equal(current, finite_status))
