"""A stand-in for Ascend's TensorFlow 2 adapter ``npu_device``, for tests only.

Built from the real adapter's current API (Ascend/tensorflow, ``tf_adapter_2.x/python/npu_device``,
master, December 2023) and run on the CPU: ``global_options()`` with the real options table
(``_options``), ``open(device_id).as_default()`` reading ``RANK_SIZE``/``RANK_ID``/``RANK_TABLE_FILE``
or the ``CM_*`` variables as ``npu_device.py`` does, ``set_npu_loop_size``, collectives
(``distribute.all_reduce``/``broadcast``) that really combine the values of the test's rank processes
(``_hccl``), and ``train.optimizer.NpuLossScaleOptimizer``, a subclass of Keras 2's
``LossScaleOptimizer`` that skips a step whose gradients overflowed on any rank. Every call is
recorded (``_standin``). Tests put ``tests/fakes`` on ``sys.path`` or ``PYTHONPATH``.

Deliberate differences from the real adapter, and why:

* No NPU and no graph engine: ops run on the CPU; ``as_default()`` does not replace the default
  device (the adapter's custom device). What can be checked on the CPU is the order of calls: the
  stand-in records whether variables existed before ``open()`` and which were created after
  ``as_default()``.
* Loop sinking is reproduced, not just recorded (``_loop``): after ``as_default()``, an eager call of a
  ``tf.function`` that the adapter would sink (it reads an iterator and ends with its only loop) runs the
  loop's body ``set_npu_loop_size`` times with the loop's initial inputs, as the adapter's rewritten
  graph does. The stand-in rewrites the ``GraphDef`` in Python where the adapter does it in C++.
* ``open()`` checks what HCCL would check when it starts, because a test cannot reach HCCL: the
  rank table exists and lists ``RANK_ID`` on the physical device this process opened (the logical
  ``device_id`` mapped through ``ASCEND_VISIBLE_DEVICES``, see ``_device_check``); errors are
  ``RuntimeError("Failed open npu device ...")`` as the adapter reports a failed open.
* ``CM_WORKER_IP`` unset: the real adapter hands ``None`` to its C++ ``Open``, whose pybind11 string
  map refuses it with a ``TypeError``; the stand-in raises that ``TypeError`` with a readable message.
* Ranks in the rank-table-free mode are given out by the stand-in's hub in order of
  (``CM_WORKER_IP``, device id); real HCCL decides itself. Callers must read the rank from the
  opened handle (``worker_id``), as the adapter's own code does.
* Collectives run through ``tf.numpy_function`` over loopback TCP (``_hccl``) instead of HCCL ops:
  results are bitwise equal on all ranks and deterministic; there is no gradient registered for
  them (the adapter registers one for ``HcomAllReduce``, which the backend never differentiates).
* ``broadcast`` refuses variables created before ``as_default()`` (on a real NPU they would live on
  the host and HCCL would fail or copy); ``all_reduce`` refuses dtypes HCCL does not move
  (``float64``).
* ``NpuLossScaleOptimizer`` takes the adapter's float-status path (``_float_status``: allocate a
  float32 status after the gradients, read it, clear it; between ranks the float32 statuses are
  summed and compared with the cleared one), but the status is derived from the gradients' values
  (an inf or NaN among them) where the adapter reads the AI core's overflow register, which also
  records overflows that saturated to finite values (Ascend 910's default saturation mode).
  TensorFlow 2.6's Keras has only ``OptimizerV2``; ``tf_keras`` 2.21 (the project's Keras 2) makes
  the newer optimizers by default, so the stand-in subclasses Keras 2's ``LossScaleOptimizerV3`` for
  those. ``is_inf_nan_enabled()`` is False (Ascend 910 saturation mode).
* Options set after ``open()`` are recorded with ``after_open=True`` (the adapter ignores them).
"""

import operator
import os

from absl import logging

from npu_device import _device_check, _hccl, _loop, _standin, distribute, train
from npu_device._options import global_options

__all__ = ["distribute", "global_options", "is_inf_nan_enabled", "open", "set_device_sat_mode",
           "set_npu_loop_size", "train"]


class NpuDeviceHandle:
    """What ``open()`` returns (the adapter's attributes: ``workers_num``, ``worker_id``)."""

    def __init__(self, device_id, workers_num, worker_id):
        self._device_id = device_id
        self.workers_num = workers_num
        self.worker_id = worker_id

    @property
    def device_id(self):
        return self._device_id

    def name(self):
        return f"/job:localhost/replica:0/task:0/device:NPU:{self._device_id}"

    def is_cluster_worker(self):
        return self.workers_num > 1 and self.workers_num > self.worker_id >= 0

    def as_default(self):
        _standin.record("as_default", device_id=self._device_id)
        _standin.STATE.is_default = True
        _standin.start_tracking_variables()
        _loop.install()
        return self


def get_ranksize():
    """``RANK_SIZE``, else ``CM_WORKER_SIZE``, else 1; both set is an error (``npu_device.get_ranksize``)."""
    if os.getenv("CM_WORKER_SIZE") is not None and os.getenv("RANK_SIZE") is not None:
        raise ValueError("RANK_SIZE and CM_WORK_SIZE cannot be configured at the same time")
    return os.getenv("RANK_SIZE") if os.getenv("RANK_SIZE") is not None else os.getenv("CM_WORKER_SIZE", "1")


def _check_cm_environment():
    for var, what in (("CM_CHIEF_PORT", "cm chief port"), ("CM_CHIEF_DEVICE", "cm chief device"),
                      ("CM_CHIEF_IP", "cm chief ip")):
        if not os.getenv(var):
            raise RuntimeError(f"You must specify {what} by set env {var} in distribution mode")
    if os.getenv("CM_WORKER_IP") is None:
        raise TypeError("Open(): incompatible function arguments: option _distribute.cm_worker_ip is None "
                        "(CM_WORKER_IP is not set)")


def open(device_id=None):  # noqa: A001 - the adapter's name
    """Opens the NPU as ``npu_device.open`` does: options, launch mode, then the collective group."""
    if device_id is None:
        device_id = int(os.getenv("ASCEND_DEVICE_ID", "0"))
    state = _standin.STATE
    if state.handle is not None:
        if state.handle.device_id == device_id:
            return state.handle
        raise RuntimeError(f"Failed create npu instance on device {device_id} as existed instance on "
                           f"{[state.handle.device_id]}")
    options = global_options().as_dict()
    workers_num = int(get_ranksize())
    mode = "single"
    if workers_num > 1:
        cm_chief_ip, rank_table = os.getenv("CM_CHIEF_IP"), os.getenv("RANK_TABLE_FILE")
        if cm_chief_ip is not None and rank_table is not None:
            raise RuntimeError("CM_CHIEF_IP and RANK_TABLE_FILE cannot be configured at the same time.")
        if cm_chief_ip is not None:
            _check_cm_environment()
            mode = "cm"
        elif rank_table is not None:
            if not os.getenv("RANK_ID"):
                raise RuntimeError("You must specify rank id by set env RANK_ID in distribution mode")
            mode = "rank_table"
        else:
            raise RuntimeError("CM_CHIEF_IP and RANK_TABLE_FILE are all not be configured.")
    env = {k: os.environ.get(k) for k in ("RANK_SIZE", "RANK_ID", "ASCEND_DEVICE_ID", "DEVICE_ID", "JOB_ID",
                                          "RANK_TABLE_FILE", "NPU_LOOP_SIZE", "ASCEND_VISIBLE_DEVICES",
                                          "CM_CHIEF_IP", "CM_CHIEF_PORT", "CM_CHIEF_DEVICE", "CM_WORKER_SIZE",
                                          "CM_WORKER_IP")}
    worker_id = 0
    if mode == "rank_table":
        problem = _device_check.rank_table_problem(os.environ, device_id, workers_num)
        if problem:
            raise RuntimeError(f"Failed open npu device {device_id} : {problem}")
        comm = _hccl.join_rank_table_mode(int(os.environ["RANK_ID"]), workers_num, os.environ)
        _hccl.set_communicator(comm)
        worker_id = comm.rank
    elif mode == "cm":
        comm = _hccl.join_cm_mode(workers_num, device_id, os.environ)
        _hccl.set_communicator(comm)
        worker_id = comm.rank
    state.handle = NpuDeviceHandle(device_id, workers_num, worker_id)
    _standin.record("open", device_id=device_id, mode=mode, worker_id=worker_id, workers_num=workers_num,
                    env=env, options=options, variables_alive=_standin.live_variable_count())
    return state.handle


def set_npu_loop_size(loop_size):
    """Steps of the next sunk loop; like the adapter, a non-positive size is logged and ignored."""
    loop_size = operator.index(loop_size)  # pybind11 takes an int64 and refuses anything else (TypeError)
    if loop_size <= 0:
        logging.error("Npu loop size must be greater than 0, got %d", loop_size)
        _standin.record("set_npu_loop_size", n=loop_size, ignored=True)
        return
    _loop.set_loop_size(loop_size)
    _standin.record("set_npu_loop_size", n=loop_size, ignored=False)


def set_device_sat_mode(mode):
    _standin.record("set_device_sat_mode", mode=mode)


def is_inf_nan_enabled():
    """Ascend 910 runs in saturation mode: overflow is read from the float status, not from inf/nan."""
    return False
