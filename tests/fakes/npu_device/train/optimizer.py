"""``npu_device.train.optimizer.NpuLossScaleOptimizer`` (``train/optimizer/npu_loss_scale_optimizer.py``).

As in the adapter, a subclass of Keras 2's ``LossScaleOptimizer`` with the same constructor
(``inner_optimizer, dynamic=True, initial_scale=None, dynamic_growth_steps=None``), a
``last_step_finite`` variable, and an ``apply_gradients(grads_and_vars, name=None)`` that decides
itself whether the step overflowed: the float32 float status read after the gradients is summed
across ranks (``_float_status``; every rank skips the same steps); a skipped step only advances
``iterations``; in dynamic mode the loss scale halves
(never below 1) after an overflow and doubles after ``dynamic_growth_steps`` finite steps.

Differences (see the package docstring): the float status is derived from the gradients' values
instead of the NPU's overflow register; newer Keras 2 optimizers (``tf_keras``'s default ones) get Keras 2's
``LossScaleOptimizerV3`` as the base, ``OptimizerV2`` ones its ``LossScaleOptimizer`` as in
TensorFlow 2.6. Keras 3 optimizers are refused with the base class's ``TypeError``: the adapter
runs on TensorFlow 2.6's Keras 2 only.
"""

import tensorflow as tf

from npu_device import _float_status, _standin
from npu_device.distribute import all_reduce

try:  # Keras 2 (tf_keras, or tf.keras on TensorFlow 2.6)
    from tf_keras.src.mixed_precision import loss_scale_optimizer as _lso
    from tf_keras.src.optimizers import optimizer as _new_optimizer
except ImportError:  # pragma: no cover - TensorFlow 2.6's own Keras
    from tensorflow.python.keras.mixed_precision import loss_scale_optimizer as _lso

    _new_optimizer = None


def _finite_on_all_ranks(grads):
    """True iff no rank's float status shows an overflow after ``grads`` (the adapter's float32 check)."""
    handle = _standin.STATE.handle
    workers = handle.workers_num if handle is not None else 1
    return _float_status.finite_status_after_executed(list(grads), workers, all_reduce)


def _update_loss_scale(state, is_finite):
    """The adapter's dynamic update: halve on overflow (min 1), double after ``growth_steps`` good steps."""
    def grow_or_count():
        def grow():
            can_grow = tf.less(state.current_loss_scale, 3.4e38 / state.multiplier)
            tf.cond(can_grow, lambda: state.current_loss_scale.assign(state.current_loss_scale * state.multiplier),
                    lambda: state.current_loss_scale)
            return state.counter.assign(0)

        return tf.cond(state.counter + 1 >= state.growth_steps, grow, lambda: state.counter.assign_add(1))

    def shrink():
        state.current_loss_scale.assign(tf.maximum(state.current_loss_scale / state.multiplier, 1.0))
        return state.counter.assign(0)

    return tf.cond(is_finite, grow_or_count, shrink)


class _SkipsOverflowedSteps:
    """The adapter's ``apply_gradients``: its own overflow verdict, shared by all ranks."""

    def _init_npu(self):
        self._last_step_finite = tf.Variable(False, name="npu_last_step_finite", dtype=tf.bool, trainable=False,
                                             aggregation=tf.VariableAggregation.NONE)

    @property
    def last_step_finite(self):
        return self._last_step_finite

    def get_scaled_loss(self, loss):
        _standin.record("scale_loss", traced=not tf.executing_eagerly())
        return super().get_scaled_loss(loss)

    def apply_gradients(self, grads_and_vars, name=None, **kwargs):
        grads_and_vars = tuple(grads_and_vars)
        grads = [g for g, _ in grads_and_vars]
        variables = [v for _, v in grads_and_vars]
        is_finite = _finite_on_all_ranks(grads)
        if self.dynamic:
            _update_loss_scale(self._loss_scale, is_finite)
        self._last_step_finite.assign(is_finite)

        def apply():
            self._apply_inner(grads, _lso._UnwrapPreventer(variables), name)
            return tf.constant(True)

        def skip():
            self._optimizer.iterations.assign_add(1, read_value=False)
            return tf.constant(False)

        return tf.cond(is_finite, apply, skip)


class NpuLossScaleOptimizer(_SkipsOverflowedSteps, _lso.LossScaleOptimizer):
    """Keras 2's loss-scale optimizer with the adapter's overflow handling (see the module docstring)."""

    def __new__(cls, inner_optimizer, dynamic=True, initial_scale=None, dynamic_growth_steps=None):
        _standin.record("loss_scale_optimizer", dynamic=dynamic, initial_scale=initial_scale,
                        dynamic_growth_steps=dynamic_growth_steps, inner=type(inner_optimizer).__name__)
        if _new_optimizer is not None and isinstance(inner_optimizer, _new_optimizer.Optimizer):
            return NpuLossScaleOptimizerV3(inner_optimizer, dynamic, initial_scale, dynamic_growth_steps)
        return super().__new__(cls)

    def __init__(self, inner_optimizer, dynamic=True, initial_scale=None, dynamic_growth_steps=None):
        _lso.LossScaleOptimizer.__init__(self, inner_optimizer, dynamic, initial_scale, dynamic_growth_steps)
        self._init_npu()

    def _apply_inner(self, grads, wrapped, name):
        self._apply_gradients(grads, wrapped, name)


if _new_optimizer is not None:
    class NpuLossScaleOptimizerV3(_SkipsOverflowedSteps, _lso.LossScaleOptimizerV3):
        """The same over Keras 2's ``LossScaleOptimizerV3``, for ``tf_keras``'s default optimizers."""

        def __init__(self, inner_optimizer, dynamic=True, initial_scale=None, dynamic_growth_steps=None):
            _lso.LossScaleOptimizerV3.__init__(self, inner_optimizer, dynamic, initial_scale, dynamic_growth_steps)
            self._init_npu()

        def _apply_inner(self, grads, wrapped, name):
            with tf.init_scope():
                self._optimizer.build(wrapped.value)
            self._apply_gradients(grads, wrapped)
