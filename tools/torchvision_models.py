"""torchvision's model definitions, importable beside a CPU build of PyTorch.

PyPI's torchvision wheel is a CUDA build: its compiled operators cannot load beside the project's CPU
build of torch, and ``import torchvision`` fails in ``torchvision._meta_registrations`` ("operator
torchvision::nms does not exist"). The model definitions themselves are pure Python and need none of
those operators, so that one module is replaced by an empty stand-in before the first import. The
parity tests and the benchmarks use torchvision's models through this module, the only place that
does this.
"""

from __future__ import annotations

import sys
import types

__all__ = ["import_models"]

_META = "torchvision._meta_registrations"


def import_models():
    """``torchvision.models``.

    Raises:
        ImportError: torchvision (or torch) is not installed; the message says what to install.
    """
    if "torchvision" not in sys.modules:
        sys.modules.setdefault(_META, types.ModuleType(_META))
    try:
        import torchvision.models as models
    except ImportError as e:
        raise ImportError(f"torchvision's models are needed here: pip install -r requirements-dev.txt ({e})") from e
    return models
