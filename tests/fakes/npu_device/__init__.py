"""A recording stand-in for Ascend's TensorFlow 2 adapter ``npu_device``, for tests only.

It implements the documented API the NPU backend uses (reference-recipe.md section 2) on the CPU:
``global_options``, ``open(device_id).as_default()``, ``set_npu_loop_size``,
``distribute.all_reduce``/``broadcast`` (identities: one process stands in for each rank) and
``train.optimizer.NpuLossScaleOptimizer`` (a real Keras loss-scale optimizer). Each call is recorded
(see ``_standin``) and checked against the order the adapter needs. Tests put ``tests/fakes`` on
``sys.path`` or ``PYTHONPATH``; nothing outside tests imports it.
"""

import os

from npu_device import _standin, distribute, train
from npu_device._options import global_options

__all__ = ["distribute", "global_options", "open", "set_npu_loop_size", "train"]


class NpuDeviceHandle:
    """What ``open()`` returns."""

    def __init__(self, device_id, workers_num, worker_id):
        self.device_id = device_id
        self.workers_num = workers_num
        self.worker_id = worker_id

    def is_cluster_worker(self):
        return self.workers_num > 1 and self.workers_num > self.worker_id >= 0

    def as_default(self):
        _standin.record("as_default", device_id=self.device_id)
        _standin.STATE.is_default = True
        _standin.start_tracking_variables()
        return self


def open(device_id=None):  # noqa: A001 - the adapter's name
    """Opens the NPU; reads RANK_SIZE, RANK_ID and RANK_TABLE_FILE like the adapter."""
    if device_id is None:
        device_id = int(os.getenv("ASCEND_DEVICE_ID", "0"))
    state = _standin.STATE
    if state.handle is not None:
        if state.handle.device_id == device_id:
            return state.handle
        raise RuntimeError(f"Failed create npu instance on device {device_id} as existed instance on "
                           f"[{state.handle.device_id}]")
    workers_num = int(os.getenv("RANK_SIZE", "1"))
    worker_id = 0
    if workers_num > 1:
        table = os.getenv("RANK_TABLE_FILE")
        if not table:
            raise RuntimeError("You must specify a rank table file by set env RANK_TABLE_FILE in distribution mode")
        if not os.getenv("RANK_ID"):
            raise RuntimeError("You must specify rank id by set env RANK_ID in distribution mode")
        if not os.path.isfile(table):
            raise RuntimeError(f"rank table {table} does not exist")
        worker_id = int(os.environ["RANK_ID"])
    env = {k: os.environ.get(k) for k in ("RANK_SIZE", "RANK_ID", "ASCEND_DEVICE_ID", "DEVICE_ID", "JOB_ID",
                                          "RANK_TABLE_FILE", "NPU_LOOP_SIZE")}
    _standin.record("open", device_id=device_id, env=env, options=global_options().as_dict(),
                    variables_alive=_standin.live_variable_count())
    state.handle = NpuDeviceHandle(device_id, workers_num, worker_id)
    return state.handle


def set_npu_loop_size(loop_size):
    """The number of iterations of the next ``tf.range`` loop sunk onto the device."""
    _standin.require_open("set_npu_loop_size")
    if not isinstance(loop_size, int) or loop_size < 1:
        raise ValueError(f"loop size must be a positive int, got {loop_size!r}")
    _standin.record("set_npu_loop_size", n=loop_size)
