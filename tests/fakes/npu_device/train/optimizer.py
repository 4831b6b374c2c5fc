"""``npu_device.train.optimizer.NpuLossScaleOptimizer``: a real Keras loss-scale optimizer, recorded.

The adapter's class subclasses Keras 2's ``LossScaleOptimizer`` (only its overflow check differs,
reading the NPU's float status). The stand-in returns a subclass of whichever loss-scale optimizer
class the running Keras uses for the inner optimizer, recording when the loss is scaled.
"""

import tensorflow as tf

from npu_device import _standin

_IS_KERAS_3 = str(getattr(tf.keras, "__version__", "2")).startswith("3")


def _base_class(inner):
    if _IS_KERAS_3:
        return tf.keras.mixed_precision.LossScaleOptimizer
    from tf_keras.src.mixed_precision import loss_scale_optimizer as lso
    from tf_keras.src.optimizers import optimizer as new_optimizer

    return lso.LossScaleOptimizerV3 if isinstance(inner, new_optimizer.Optimizer) else lso.LossScaleOptimizer


def _recording_class(base):
    class RecordingLossScaleOptimizer(base):
        def scale_loss(self, loss):  # Keras 3
            _standin.record("scale_loss", traced=not tf.executing_eagerly())
            return super().scale_loss(loss)

        def get_scaled_loss(self, loss):  # Keras 2
            _standin.record("scale_loss", traced=not tf.executing_eagerly())
            return super().get_scaled_loss(loss)

    return RecordingLossScaleOptimizer


def NpuLossScaleOptimizer(inner_optimizer, dynamic=True, initial_scale=None, dynamic_growth_steps=None):  # noqa: N802
    """Wraps ``inner_optimizer`` in a loss-scale optimizer (dynamic, or fixed at ``initial_scale``)."""
    _standin.require_open("NpuLossScaleOptimizer")
    _standin.record("loss_scale_optimizer", dynamic=dynamic, initial_scale=initial_scale,
                    inner=type(inner_optimizer).__name__)
    cls = _recording_class(_base_class(inner_optimizer))
    kwargs = {}
    if initial_scale is not None:
        kwargs["initial_scale"] = initial_scale
    if _IS_KERAS_3:
        # Keras 3's loss scale is always dynamic; a fixed scale is one that never grows.
        if not dynamic:
            kwargs["dynamic_growth_steps"] = 2**31 - 1
        elif dynamic_growth_steps:
            kwargs["dynamic_growth_steps"] = dynamic_growth_steps
        return cls(inner_optimizer, **kwargs)
    if dynamic_growth_steps:
        kwargs["dynamic_growth_steps"] = dynamic_growth_steps
    return cls(inner_optimizer, dynamic=dynamic, **kwargs)
