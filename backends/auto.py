"""``--backend=auto``: the NPU if its adapter loads, else a GPU if one is visible, else the CPU."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Collection, Optional, Tuple

from absl import logging

from backends.base import Backend
from registry import BACKENDS

__all__ = ["AutoBackend", "choose_backend"]


def _npu_adapter_loads() -> Tuple[bool, str]:
    try:
        importlib.import_module("npu_device")
    except ImportError as e:
        return False, f"npu_device does not import ({e})"
    except Exception as e:  # an installed but broken adapter must not stop CPU/GPU training
        return False, f"npu_device failed to import ({type(e).__name__}: {e})"
    return True, "the npu_device adapter loads"


def _gpu_count() -> int:
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def choose_backend(
    known: Collection[str],
    npu_probe: Callable[[], Tuple[bool, str]] = _npu_adapter_loads,
    gpu_probe: Callable[[], int] = _gpu_count,
) -> Tuple[str, str]:
    """Picks a backend name and says why.

    Args:
        known: registered backend names (an NPU adapter without an ``npu`` backend is skipped).
        npu_probe: returns (adapter loads, explanation).
        gpu_probe: returns the number of visible GPUs.

    Returns:
        ``(name, reason)``.
    """
    npu_ok, npu_why = npu_probe()
    if npu_ok and "npu" in known:
        return "npu", npu_why
    if npu_ok:
        npu_why = "npu_device loads but no 'npu' backend is registered"
    gpus = gpu_probe()
    if gpus and "gpu" in known:
        return "gpu", f"{npu_why}; {gpus} GPU(s) visible"
    return "cpu", f"{npu_why}; no GPU visible"


class AutoBackend:
    """Not a backend itself: :meth:`from_config` returns the chosen backend, configured from the run's config."""

    name = "auto"

    @classmethod
    def from_config(cls, config: Any, known: Optional[Collection[str]] = None) -> Backend:
        name, reason = choose_backend(BACKENDS.list() if known is None else known)
        logging.info("--backend=auto chose %s: %s", name, reason)
        return BACKENDS.get(name).from_config(config)
