"""GPU backend: ``MirroredStrategy`` over the visible GPUs with NCCL all-reduce.

* ``--rank_size=N``: the first N visible GPUs mirrored in one process (``OneDeviceStrategy`` for 1).
* ``--rank_size=N --multi_worker``: N local worker processes, one GPU each
  (``CUDA_VISIBLE_DEVICES``), under ``MultiWorkerMirroredStrategy`` with NCCL.
* A worker of a multi-host cluster uses ``rank_size / workers`` of its GPUs.

Memory growth is switched on for every GPU used (TensorFlow otherwise reserves all GPU memory at
start), ``--precision`` picks fp32, mixed bf16 or mixed fp16 (dynamic loss scaling, see
``training.optimizers``), ``--xla`` compiles with XLA.
"""

from __future__ import annotations

import os
from typing import Dict, List

import tensorflow as tf
from absl import logging

from backends.distributed import DistributedBackend
from backends.precision import gpu_precision

__all__ = ["GPUBackend", "NoGPUError", "visible_gpu_ids"]


class NoGPUError(ValueError):
    """No (or too few) GPUs are visible to TensorFlow."""


def visible_gpu_ids(count: int) -> List[str]:
    """The ``CUDA_VISIBLE_DEVICES`` entry of each of the ``count`` GPUs this process sees."""
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if "CUDA_VISIBLE_DEVICES" in os.environ and listed:
        return listed[:count]
    return [str(i) for i in range(count)]


def _no_gpu_message(wanted: int, found: int) -> str:
    cuda = tf.test.is_built_with_cuda()
    hint = ("this TensorFlow is built without CUDA: install the GPU build (pip install 'tensorflow[and-cuda]')"
            if not cuda else "check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')!s}")
    if found == 0:
        return f"--backend=gpu: no GPU is visible to TensorFlow; {hint}, or use --backend=cpu (or auto)."
    return (f"--backend=gpu: --rank_size={wanted} needs {wanted} GPUs in this process but {found} are visible; "
            f"lower --rank_size or make more GPUs visible ({hint}).")


class GPUBackend(DistributedBackend):
    """Trains on the GPUs of this host (and of other hosts in a cluster)."""

    name = "gpu"
    communication = "nccl"
    multi_worker_default = False

    def _gpus(self) -> list:
        return tf.config.list_physical_devices("GPU")

    def validate(self) -> None:
        super().validate()
        gpus = self._gpus()
        wanted = 1 if self.is_launcher else self.local_replicas
        if len(gpus) < wanted or not gpus:
            raise NoGPUError(_no_gpu_message(wanted, len(gpus)))

    def maybe_launch(self, argv):
        if self.is_launcher:
            gpus = self._gpus()
            if len(gpus) < self.rank_size:
                raise NoGPUError(_no_gpu_message(self.rank_size, len(gpus)))
            self._launch_gpu_ids = visible_gpu_ids(len(gpus))
        return super().maybe_launch(argv)

    def rank_env(self, rank: int) -> Dict[str, str]:
        # One GPU per local worker process; the ids refer to what this launcher itself sees.
        return {"CUDA_VISIBLE_DEVICES": self._launch_gpu_ids[rank]}

    def num_accelerators(self) -> Dict[str, int]:
        return {"GPU": self.local_replicas}

    def configure_devices(self) -> None:
        gpus = self._gpus()[: self.local_replicas]
        try:
            tf.config.set_visible_devices(gpus, "GPU")
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as e:  # TensorFlow's runtime already started: settings are fixed.
            logging.warning("GPU settings not applied: %s", e)
        logging.info("GPUs used by this process: %s", ", ".join(g.name for g in gpus))

    def auto_precision(self):
        capabilities = [tf.config.experimental.get_device_details(g).get("compute_capability")
                        for g in self._gpus()[: max(self.local_replicas, 1)]]
        return gpu_precision(capabilities)

    def create_local_strategy(self) -> tf.distribute.Strategy:
        if self.rank_size == 1:
            return tf.distribute.OneDeviceStrategy("/gpu:0")
        devices = [f"/gpu:{i}" for i in range(self.rank_size)]
        return tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.NcclAllReduce())
