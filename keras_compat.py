"""The Keras the project runs on: Keras 3 by default, Keras 2 where the NPU adapter needs it.

TensorFlow resolves ``tf.keras`` to Keras 3 on TF >= 2.16, to ``tf_keras`` (Keras 2) when
``TF_USE_LEGACY_KERAS=1``, and to its bundled Keras 2 on TF 2.6 (the only TensorFlow the Ascend
``npu_device`` adapter supports). Every module imports Keras from here so that one switch, the
environment variable, selects the implementation everywhere.
"""

from __future__ import annotations

import tensorflow as tf

keras = tf.keras
KERAS_VERSION: str = getattr(keras, "__version__", "2")
IS_KERAS_3: bool = KERAS_VERSION.startswith("3")

__all__ = ["IS_KERAS_3", "KERAS_VERSION", "keras", "set_precision_policy", "variable_value"]

_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def set_precision_policy(precision: str) -> str:
    """Sets Keras' global dtype policy for ``precision`` in {fp32, bf16, fp16}; returns its name."""
    try:
        name = _POLICIES[precision]
    except KeyError:
        raise ValueError(f"precision must be one of {sorted(_POLICIES)}, got {precision!r}") from None
    keras.mixed_precision.set_global_policy(name)
    return name


def variable_value(v):
    """The tf.Variable behind a Keras variable (Keras 3 wraps them; Keras 2 does not)."""
    if not IS_KERAS_3 or isinstance(v, tf.Variable):  # a tf.Variable's .value is a method
        return v
    return getattr(v, "value", v)
