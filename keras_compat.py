"""The Keras the project runs on: Keras 3 by default, Keras 2 where the NPU adapter needs it.

TensorFlow resolves ``tf.keras`` to Keras 3 on TF >= 2.16, to ``tf_keras`` (Keras 2) when
``TF_USE_LEGACY_KERAS=1``, and to its bundled Keras 2 on TF 2.6 (the only TensorFlow the Ascend
``npu_device`` adapter supports). Every module imports Keras from here so that one switch, the
environment variable, selects the implementation everywhere.
"""

from __future__ import annotations

import random
from typing import Any, Iterable, Iterator, List, Optional

import numpy as np
import tensorflow as tf

keras = tf.keras
KERAS_VERSION: str = getattr(keras, "__version__", "2")
IS_KERAS_3: bool = KERAS_VERSION.startswith("3")

__all__ = [
    "IS_KERAS_3",
    "KERAS_VERSION",
    "RELAX_SHAPES",
    "all_layers",
    "create_optimizer_variables",
    "layer_dtype",
    "keras",
    "optimizer_variables",
    "set_precision_policy",
    "set_random_seed",
    "variable_path",
    "variable_value",
]

# tf.function(**RELAX_SHAPES) traces once for varying shapes; TF 2.6 knows only the old keyword.
_TF_MAJOR_MINOR = tuple(int(p) for p in tf.__version__.split(".")[:2])
RELAX_SHAPES = {"reduce_retracing": True} if _TF_MAJOR_MINOR >= (2, 9) else {"experimental_relax_shapes": True}

_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


# Layers whose compute dtype stays float32 under a mixed policy (see set_precision_policy).
_FLOAT32_LAYERS: frozenset = frozenset()


def set_precision_policy(precision: str, *, float32_layers: Iterable[str] = ()) -> str:
    """Sets Keras' global dtype policy for ``precision`` in {fp32, bf16, fp16}; returns its name.

    Args:
        precision: ``fp32``, ``bf16`` or ``fp16``.
        float32_layers: kinds of layers that compute in float32 under the mixed policy, because the
            device's kernels for them are slower in 16 bits than in 32 (``depthwise`` on CPUs: oneDNN's
            bfloat16 depthwise backward passes, bench/RESULTS.md). Model builders ask
            :func:`layer_dtype`.
    """
    global _FLOAT32_LAYERS
    try:
        name = _POLICIES[precision]
    except KeyError:
        raise ValueError(f"precision must be one of {sorted(_POLICIES)}, got {precision!r}") from None
    keras.mixed_precision.set_global_policy(name)
    _FLOAT32_LAYERS = frozenset(float32_layers) if precision != "fp32" else frozenset()
    return name


def layer_dtype(kind: str) -> Optional[str]:
    """The dtype policy a layer of ``kind`` (e.g. ``depthwise``) is built with: ``float32`` where
    :func:`set_precision_policy` keeps that kind in float32, else None (the global policy)."""
    return "float32" if kind in _FLOAT32_LAYERS else None


def variable_value(v):
    """The tf.Variable behind a Keras variable (Keras 3 wraps them; Keras 2 does not)."""
    if not IS_KERAS_3 or isinstance(v, tf.Variable):  # a tf.Variable's .value is a method
        return v
    return getattr(v, "value", v)


def variable_path(variable) -> str:
    """``layer/variable`` (``layer/sublayer/variable`` inside sub-layers): Keras 3's ``path``, Keras 2's name
    without its ``:0``."""
    return (getattr(variable, "path", None) or variable.name).split(":")[0]


def all_layers(model) -> Iterator[Any]:
    """Every layer of ``model``, depth first, sub-layers (a nested model's, an attention's projections) included."""
    stack = list(getattr(model, "layers", []))
    seen = set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        stack.extend(getattr(layer, "layers", None) or [])
        stack.extend(getattr(layer, "_layers", None) or [])


def create_optimizer_variables(optimizer, var_list: Iterable) -> None:
    """Creates the optimizer's slot variables for ``var_list`` now (inside the caller's strategy scope).

    Keras 3 and tf_keras >= 2.11 optimizers have ``build``; TF 2.6's ``OptimizerV2`` (the NPU
    adapter's Keras) creates them with ``_create_all_weights`` instead.
    """
    var_list = list(var_list)
    if hasattr(optimizer, "build"):
        optimizer.build(var_list)
    else:
        optimizer._create_all_weights(var_list)


def optimizer_variables(optimizer) -> List[Any]:
    """The optimizer's variables: a property on current optimizers, a method on ``OptimizerV2``."""
    found = optimizer.variables
    if callable(found) and not isinstance(found, (list, tuple)):
        found = found()
    return list(found)


def set_random_seed(seed: int) -> None:
    """Seeds Python, NumPy and TensorFlow (``keras.utils.set_random_seed`` is missing on TF 2.6)."""
    setter = getattr(keras.utils, "set_random_seed", None)
    if setter is not None:
        setter(seed)
        return
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
