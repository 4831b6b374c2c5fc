"""``npu_device.distribute``: HCCL collectives, as identities on one process, recorded."""

import numpy as np
import tensorflow as tf

from npu_device import _standin

_REDUCTIONS = ("mean", "sum", "max", "min", "prod")


def _is_cluster_worker():
    handle = _standin.STATE.handle
    return handle is not None and handle.is_cluster_worker()


def _count_run(n):
    _standin.record("all_reduce_run", n=int(n))
    return np.int64(n)


def all_reduce(values, reduction="mean", fusion=1, fusion_id=-1, group="hccl_world_group"):
    """Identity (this process stands in for every rank); each execution is recorded."""
    _standin.require_open("all_reduce")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    is_list = isinstance(values, (list, tuple))
    items = list(values) if is_list else [values]
    _standin.record("all_reduce", n=len(items), reduction=reduction, traced=not tf.executing_eagerly(),
                    dtypes=sorted({str(v.dtype.name) for v in items if v is not None}))
    if not _is_cluster_worker():
        return values  # the adapter skips collectives outside a cluster
    if tf.executing_eagerly():
        return [None if v is None else tf.identity(v) for v in items] if is_list else tf.identity(values)
    # A py_function in the graph records every run of the collective, not just its tracing.
    ran = tf.py_function(_count_run, [tf.constant(len(items), tf.int64)], tf.int64)
    with tf.control_dependencies([ran]):
        out = [None if v is None else tf.identity(v) for v in items]
    return out if is_list else out[0]


def broadcast(values, root_rank=0, fusion=2, fusion_id=0, group="hccl_world_group"):
    """Identity; checks that every variable was created on the opened NPU."""
    _standin.require_open("broadcast")
    items = list(values) if isinstance(values, (list, tuple)) else [values]
    early = [v.name for v in items if not _standin.created_on_device(v)]
    _standin.record("broadcast", n=len(items), root_rank=root_rank, eager=tf.executing_eagerly(),
                    created_before_open=early, dtypes=sorted({v.dtype.name for v in items}))
    if early:
        raise RuntimeError(f"broadcast of {len(early)} variable(s) created before npu_device.open().as_default() "
                           f"(they live on the host, not the NPU): {early[:5]}")
