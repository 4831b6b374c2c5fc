"""Optimizers of the shared stack, with loss scaling for float16."""

from __future__ import annotations

import tensorflow as tf

from keras_compat import IS_KERAS_3, keras

OPTIMIZERS = ("momentum", "sgd", "adam", "rmsprop")

__all__ = ["OPTIMIZERS", "build_optimizer", "gradient_scale", "scale_loss", "unscale_gradients"]


def build_optimizer(
    name: str,
    learning_rate,
    *,
    momentum: float = 0.9,
    use_nesterov: bool = True,
    epsilon: float = 1e-7,
    loss_scaling: bool = False,
):
    """Creates a Keras optimizer.

    Args:
        name: ``momentum`` (heavy-ball, Nesterov if ``use_nesterov``), ``sgd`` (plain),
            ``adam`` or ``rmsprop`` (with ``momentum``).
        learning_rate: a float or a ``LearningRateSchedule`` evaluated at ``optimizer.iterations``.
        momentum: momentum coefficient for ``momentum`` and ``rmsprop``.
        use_nesterov: Nesterov momentum for ``momentum``.
        epsilon: numerical-stability term for ``adam`` and ``rmsprop``.
        loss_scaling: wrap in a dynamic loss-scale optimizer (float16 training).
    """
    if name == "momentum":
        opt = keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=use_nesterov)
    elif name == "sgd":
        opt = keras.optimizers.SGD(learning_rate)
    elif name == "adam":
        opt = keras.optimizers.Adam(learning_rate, epsilon=epsilon)
    elif name == "rmsprop":
        opt = keras.optimizers.RMSprop(learning_rate, momentum=momentum, epsilon=epsilon)
    else:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if loss_scaling:
        opt = keras.mixed_precision.LossScaleOptimizer(opt)
    return opt


def _is_loss_scaled(optimizer) -> bool:
    return isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)


def scale_loss(optimizer, loss):
    """Multiplies ``loss`` by the optimizer's loss scale (identity without loss scaling)."""
    if not _is_loss_scaled(optimizer):
        return loss
    return optimizer.scale_loss(loss) if IS_KERAS_3 else optimizer.get_scaled_loss(loss)


def unscale_gradients(optimizer, grads):
    """Undoes :func:`scale_loss` on gradients where the optimizer does not do it itself.

    Keras 3's LossScaleOptimizer unscales inside ``apply_gradients``; Keras 2's does not.
    """
    if not _is_loss_scaled(optimizer) or IS_KERAS_3:
        return grads
    return optimizer.get_unscaled_gradients(grads)


def gradient_scale(optimizer):
    """The factor ``apply_gradients`` will still divide gradients by: Keras 3's loss scale, else 1.

    A term added to the gradients after :func:`unscale_gradients` (weight decay) is multiplied by it.
    """
    if not _is_loss_scaled(optimizer) or not IS_KERAS_3:
        return 1.0
    return tf.cast(optimizer.dynamic_scale if optimizer.built else optimizer.initial_scale, tf.float32)
