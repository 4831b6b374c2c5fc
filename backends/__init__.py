"""Device backends: importing this package registers every built-in backend, without importing it.

Each entry names its class (``"backends.cpu:CPUBackend"``); the module, and TensorFlow with it, is
imported when a run builds that backend. A new device adds a module here and one line below.
"""

from registry import BACKENDS

BACKENDS.register_lazy("auto", "backends.auto:AutoBackend",
                       description="Picks npu if its adapter loads, else gpu if one is visible, else cpu.")
BACKENDS.register_lazy("cpu", "backends.cpu:CPUBackend",
                       description="The host CPU: one replica, or --rank_size worker processes "
                       "(MultiWorkerMirroredStrategy).")
BACKENDS.register_lazy("gpu", "backends.gpu:GPUBackend",
                       description="NVIDIA GPUs: MirroredStrategy with NCCL (or --multi_worker processes).")
BACKENDS.register_lazy("npu", "backends.npu:NPUBackend", aliases=("ascend",),
                       description="Ascend NPUs through the TF2 adapter npu_device, one device per process.")
