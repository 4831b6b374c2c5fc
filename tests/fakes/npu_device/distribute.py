"""``npu_device.distribute``: HCCL collectives (``distribute/hccl.py``), real across the test's rank processes.

Signatures and behaviour follow the adapter: both functions do nothing outside a cluster worker
(``workers_num > 1``); ``all_reduce`` takes a tensor or a list (``None`` entries kept), reduces with
``sum``/``prod``/``max``/``min`` and makes ``mean`` a sum times ``1 / workers`` (integers: divided);
``broadcast`` assigns the root's values to the given variables and returns nothing. The values
travel through :mod:`npu_device._hccl`; each collective that runs (not just each one traced) is
recorded as ``all_reduce_run``/``broadcast_run``.
"""

import numpy as np
import tensorflow as tf
from absl import logging

from npu_device import _hccl, _standin

_REDUCTIONS = ("mean", "sum", "prod", "max", "min")


def _cluster():
    handle = _standin.STATE.handle
    return handle if handle is not None and handle.is_cluster_worker() else None


def _run(op, tensors, reduction=None, root=None):
    """Runs one collective over ``tensors`` (a list), in graph or eager mode; returns new tensors."""
    for t in tensors:
        if t.dtype.name not in _hccl.SUPPORTED_DTYPES:
            raise TypeError(f"HCCL cannot {op} {t.dtype.name} tensors; supported: {', '.join(_hccl.SUPPORTED_DTYPES)}")

    traced = not tf.executing_eagerly()

    def collective(*arrays):
        result = _hccl.communicator().run(op, [np.asarray(a) for a in arrays], reduction=reduction, root=root)
        _standin.record(f"{op}_run", n=len(arrays), reduction=reduction, traced=traced)
        return [np.array(r, dtype=a.dtype) for r, a in zip(result, arrays)]

    out = tf.numpy_function(collective, list(tensors), [t.dtype for t in tensors], stateful=True)
    out = list(out) if isinstance(out, (list, tuple)) else [out]
    for o, t in zip(out, tensors):
        o.set_shape(t.shape)
    return out


def all_reduce(values, reduction="mean", fusion=1, fusion_id=-1, group="hccl_world_group"):
    """All-reduces ``values`` across the cluster's ranks (identity outside a cluster)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    is_list = isinstance(values, (list, tuple))
    items = list(values) if is_list else [values]
    present = [tf.convert_to_tensor(v) for v in items if v is not None]
    _standin.record("all_reduce", n=len(present), reduction=reduction, traced=not tf.executing_eagerly(),
                    dtypes=sorted({t.dtype.name for t in present}))
    handle = _cluster()
    if handle is None:
        logging.info("Skip all reduce as current process is not npu cluster worker")
        return values
    reduced = _run("all_reduce", present, reduction="sum" if reduction == "mean" else reduction)
    if reduction == "mean":
        reduced = [r * tf.cast(1.0 / handle.workers_num, r.dtype) if r.dtype.is_floating
                   else tf.divide(r, tf.cast(handle.workers_num, r.dtype)) for r in reduced]
    reduced = list(reduced)
    results = [None if v is None else reduced.pop(0) for v in items]
    return results if is_list else results[0]


def broadcast(values, root_rank=0, fusion=2, fusion_id=0, group="hccl_world_group"):
    """Assigns rank ``root_rank``'s values to ``values`` (variables) on every rank; returns None."""
    items = list(values) if isinstance(values, (list, tuple)) else [values]
    early = [v.name for v in items if not _standin.created_on_device(v)]
    _standin.record("broadcast", n=len(items), root_rank=root_rank, eager=tf.executing_eagerly(),
                    created_before_open=early, dtypes=sorted({v.dtype.name for v in items}))
    if _cluster() is None:
        logging.info("Skip broadcast as current process is not npu cluster worker")
        return
    if early:
        raise RuntimeError(f"broadcast of {len(early)} variable(s) created before npu_device.open().as_default() "
                           f"(they live on the host, not the NPU): {early[:5]}")
    received = _run("broadcast", [v.read_value() for v in items], root=root_rank)
    for variable, value in zip(items, received):
        variable.assign(value)


def shard_and_rebatch_dataset(dataset, global_bs):
    """This rank's shard of ``dataset`` and the per-rank batch size (``global_bs`` / ranks)."""
    handle = _cluster()
    if handle is None:
        return dataset, global_bs
    if global_bs % handle.workers_num != 0:
        raise ValueError(f"Batch size must be divisible by num npus: {handle.workers_num}")
    return dataset.shard(handle.workers_num, handle.worker_id), int(global_bs / handle.workers_num)
