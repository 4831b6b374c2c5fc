"""CPU backend: one replica per process, or several (worker processes or logical CPU devices).

* ``--rank_size=1``: ``OneDeviceStrategy`` on the host CPU.
* ``--rank_size=N`` (default ``--multi_worker``): N local worker processes under
  ``MultiWorkerMirroredStrategy`` with ring all-reduce over loopback (see :mod:`backends.distributed`).
* ``--rank_size=N --nomulti_worker``: ``MirroredStrategy`` over N logical CPU devices in one
  process. They share the same cores, so this is for testing distributed code, not for speed.
* A worker of a multi-host cluster trains one replica; ``--rank_size`` must equal the number of workers.
"""

from __future__ import annotations

from typing import Any, Dict

import tensorflow as tf
from absl import logging

from backends.distributed import DistributedBackend
from backends.precision import cpu_flags, cpu_precision
from run_config import RunConfig


class CPUBackend(DistributedBackend):
    """Trains on the host CPU.

    Args:
        intra_op_threads: threads inside one op; 0 leaves TensorFlow's default (the cores this
            process may use).
        inter_op_threads: ops that run concurrently; 0 leaves TensorFlow's default.
        **kwargs: see :class:`backends.distributed.DistributedBackend`.
    """

    name = "cpu"
    # oneDNN's bfloat16 depthwise backward passes run 1.5-7x slower than its float32 ones on the CPUs
    # measured (bench/RESULTS.md): mixed-bfloat16 models keep their depthwise convolutions in float32.
    float32_layers = ("depthwise",)
    communication = "ring"
    multi_worker_default = True

    def __init__(self, *, intra_op_threads: int = 0, inter_op_threads: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads

    @classmethod
    def config_kwargs(cls, config: RunConfig) -> Dict[str, Any]:
        kwargs = super().config_kwargs(config)
        kwargs.update(intra_op_threads=config.distribution.intra_op_threads,
                      inter_op_threads=config.distribution.inter_op_threads)
        return kwargs

    def validate(self) -> None:
        super().validate()
        if self.cluster is not None and self.rank_size != self.cluster.world_size:
            raise ValueError(
                f"--rank_size={self.rank_size}, but the cluster has {self.cluster.world_size} workers "
                f"({', '.join(self.cluster.addresses)}); a CPU worker trains one replica, so pass "
                f"--rank_size={self.cluster.world_size}."
            )

    def configure_devices(self) -> None:
        try:
            if self.intra_op_threads:
                tf.config.threading.set_intra_op_parallelism_threads(self.intra_op_threads)
            if self.inter_op_threads:
                tf.config.threading.set_inter_op_parallelism_threads(self.inter_op_threads)
        except RuntimeError as e:  # TensorFlow's runtime was already initialised.
            logging.warning("thread settings not applied: %s", e)
        if self.cluster is None and self.rank_size > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            try:
                tf.config.set_logical_device_configuration(
                    cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(self.rank_size)])
            except RuntimeError as e:
                raise ValueError(f"cannot split the CPU into {self.rank_size} logical devices: TensorFlow's "
                                 f"runtime already started ({e}).") from None

    def auto_precision(self):
        return cpu_precision(cpu_flags())

    def create_local_strategy(self) -> tf.distribute.Strategy:
        if self.rank_size == 1:
            return tf.distribute.OneDeviceStrategy("/cpu:0")
        devices = [d.name for d in tf.config.list_logical_devices("CPU")][: self.rank_size]
        return tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
