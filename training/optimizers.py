"""Optimizers of the shared stack, with loss scaling for float16.

Keras' own optimizers serve ``momentum``, ``sgd``, ``adam`` and ``rmsprop``. The training stack's
others (``adamw``, ``lamb``, ``lars``, ``rmsprop_tf``, ``rmsprop_torch``) are update rules written
once as tensor functions (:class:`UpdateRule`) and run by a thin optimizer class for each Keras
base-class API: Keras 3's ``update_step(gradient, variable, learning_rate)`` and Keras 2's
(tf_keras >= 2.11) ``update_step(gradient, variable)``. Both get distribution (the update runs on
each replica's copy of a variable), checkpointable slot variables and the loss-scale wrapper from
their Keras base class.

Weight decay. The trainer adds weight decay as the gradient term ``c_v * v`` with the per-variable
coefficients of :func:`training.weight_decay.decay_coefficients`. The optimizers registered with
``decoupled_decay`` (``training/__init__.py``) take those coefficients instead (``decay=``, aligned with the variables
the optimizer is built on) and apply them themselves, so the trainer must not add the term:

* ``adamw``: decoupled, ``v -= lr * c_v * v`` before the Adam step, as ``torch.optim.AdamW``.
* ``lamb``: decoupled, ``c_v * v`` added to the Adam direction before the trust ratio (You et al. 2019).
* ``lars``: coupled, ``g + c_v * v`` inside the trust ratio ``eta ||v|| / (||g|| + c_v ||v||)`` (You
  et al. 2017). LARS needs ``g`` and ``v`` apart for that ratio, which is why it is in the set too.

For ``lamb`` and ``lars`` a variable whose coefficient is 0 (normalisation parameters and biases when
``--norm_weight_decay=0`` / ``--bias_weight_decay=0`` say so) is also excluded from the layer-wise
adaptation (trust ratio 1), as tf-models' LARS and timm's LAMB do by default.

Per-variable learning rates (``--head_lr_multiplier``, :func:`with_lr_multipliers`): variable ``v``
learns at ``lr x m_v``, as a PyTorch parameter group with its own lr would (decoupled decay, which
is scaled by the lr, included). Under Keras 3 every optimizer's ``update_step(gradient, variable,
learning_rate)`` receives ``learning_rate x m_v``. Keras 2's (tf_keras) ``update_step(gradient,
variable)`` reads the rate itself: the rule optimizers get ``lr x m_v`` passed in; SGD and momentum get
the gradient multiplied by ``m_v`` instead, which is the same update (the lr enters both only as the
product ``lr x g``: ``buf = momentum x buf - lr x g``); Keras 2's Adam and RMSprop are refused, since
their steps do not scale with the gradient.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import tensorflow as tf

from keras_compat import IS_KERAS_3, keras
from registry import OPTIMIZERS
from run_config import OptimizerConfig

__all__ = ["AdamWRule", "LambRule", "LarsRule", "RMSpropRule", "RuleOptimizer", "UpdateRule", "build_optimizer",
           "decay_in_optimizer", "gradient_scale", "is_loss_scaled", "lr_multipliers_of", "scale_loss",
           "unscale_gradients", "with_lr_multipliers"]


def decay_in_optimizer(name: str) -> bool:
    """True when optimizer ``name`` applies weight decay itself (pass it ``decay=``; add no gradient term):
    its registration says ``decoupled_decay=True`` (adamw, lamb; lars, coupled but inside its trust ratio)."""
    return bool(OPTIMIZERS.metadata(name).get("decoupled_decay"))


# -- update rules: one implementation each, plain tensor functions ------------------------------------


class UpdateRule:
    """One optimizer's mathematics: its slots and the new values of a variable and its slots.

    Attributes:
        slots: (name, initial value) of each slot variable, one of each per model variable.
    """

    slots: Tuple[Tuple[str, float], ...] = ()

    def apply(self, g: tf.Tensor, w: tf.Tensor, slots: Dict[str, tf.Tensor], lr: tf.Tensor, decay: float,
              step: tf.Tensor) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        """Returns (new variable value, new slot values).

        Args:
            g: the gradient (dense, the variable's dtype).
            w: the variable's value before the step.
            slots: slot name -> value before the step.
            lr: the learning rate of this step.
            decay: this variable's weight-decay coefficient (0: none).
            step: 1-based number of this step (for bias corrections), the variable's dtype.
        """
        raise NotImplementedError

    def config(self) -> Dict[str, float]:
        return {}


def _adam_direction(g, slots, step, beta1: float, beta2: float, epsilon: float):
    """Bias-corrected Adam direction ``m_hat / (sqrt(v_hat) + eps)`` (torch's epsilon placement) and new m, v."""
    m = beta1 * slots["m"] + (1.0 - beta1) * g
    v = beta2 * slots["v"] + (1.0 - beta2) * tf.square(g)
    m_hat = m / (1.0 - tf.pow(tf.cast(beta1, g.dtype), step))
    v_hat = v / (1.0 - tf.pow(tf.cast(beta2, g.dtype), step))
    return m_hat / (tf.sqrt(v_hat) + epsilon), {"m": m, "v": v}


def _trust_ratio(numerator, denominator):
    """``numerator / denominator`` where both are positive, else 1."""
    safe = tf.where(denominator > 0, denominator, tf.ones_like(denominator))
    return tf.where((numerator > 0) & (denominator > 0), numerator / safe, tf.ones_like(numerator))


class AdamWRule(UpdateRule):
    """``torch.optim.AdamW``: ``w -= lr * c * w``, then Adam with epsilon outside the square root."""

    slots = (("m", 0.0), ("v", 0.0))

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8) -> None:
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)

    def apply(self, g, w, slots, lr, decay, step):
        direction, new = _adam_direction(g, slots, step, self.beta1, self.beta2, self.epsilon)
        if decay:
            w = w * (1.0 - lr * decay)
        return w - lr * direction, new

    def config(self):
        return dict(beta1=self.beta1, beta2=self.beta2, epsilon=self.epsilon)


class LambRule(AdamWRule):
    """LAMB (You et al. 2019): ``r = adam_direction + c * w``; ``w -= lr * (||w|| / ||r||) * r``.

    No gradient clipping inside (timm's ``Lamb`` clips the global norm to 1 by default; use the
    stack's gradient clipping for that). The trust ratio applies to variables with ``c > 0`` only.
    """

    def apply(self, g, w, slots, lr, decay, step):
        direction, new = _adam_direction(g, slots, step, self.beta1, self.beta2, self.epsilon)
        if not decay:
            return w - lr * direction, new
        r = direction + decay * w
        return w - lr * _trust_ratio(tf.norm(w), tf.norm(r)) * r, new


class LarsRule(UpdateRule):
    """LARS (You et al. 2017) with heavy-ball momentum, the learning rate inside the momentum buffer (as
    tf-models' and MLPerf's LARS): ``buf = momentum * buf + lr * trust * (g + c * w)``; ``w -= buf`` with
    ``trust = eta * ||w|| / (||g|| + c * ||w||)`` (1 where a norm is 0). Variables with ``c = 0`` take a
    plain momentum step (trust 1)."""

    slots = (("momentum", 0.0),)

    def __init__(self, momentum: float = 0.9, trust_coefficient: float = 0.001) -> None:
        self.momentum, self.trust_coefficient = float(momentum), float(trust_coefficient)

    def apply(self, g, w, slots, lr, decay, step):
        if decay:
            w_norm = tf.norm(w)
            trust = _trust_ratio(self.trust_coefficient * w_norm, tf.norm(g) + decay * w_norm)
            increment = lr * trust * (g + decay * w)
        else:
            increment = lr * g
        buf = self.momentum * slots["momentum"] + increment
        return w - buf, {"momentum": buf}

    def config(self):
        return dict(momentum=self.momentum, trust_coefficient=self.trust_coefficient)


class RMSpropRule(UpdateRule):
    """RMSProp in the two conventions the reference recipes use.

    ``tf_style=True`` (``rmsprop_tf``): TensorFlow 1's ``RMSPropOptimizer`` that the MobileNet and
    EfficientNet papers trained with (timm's ``RMSpropTF``): ``ms`` starts at 1, epsilon inside the
    square root, the learning rate inside the momentum buffer::

        ms = rho * ms + (1 - rho) * g^2;  buf = momentum * buf + lr * g / sqrt(ms + eps);  w -= buf

    ``tf_style=False`` (``rmsprop_torch``): ``torch.optim.RMSprop``, which torchvision's
    ``references/classification`` uses for its ``--opt rmsprop`` recipes (MobileNetV3, EfficientNet-B*)
    with ``alpha=0.9, eps=0.0316`` (0.0316 ~ sqrt(1e-3): TF's epsilon moved outside the root)::

        ms = rho * ms + (1 - rho) * g^2;  buf = momentum * buf + g / (sqrt(ms) + eps);  w -= lr * buf

    with ``ms`` starting at 0. (Keras' own ``rmsprop`` is TF 2's: epsilon inside, ``ms`` from 0.)
    """

    def __init__(self, rho: float = 0.9, momentum: float = 0.9, epsilon: float = 1e-3, tf_style: bool = True) -> None:
        self.rho, self.momentum, self.epsilon, self.tf_style = float(rho), float(momentum), float(epsilon), tf_style
        self.slots = (("ms", 1.0 if tf_style else 0.0), ("momentum", 0.0))

    def apply(self, g, w, slots, lr, decay, step):
        ms = self.rho * slots["ms"] + (1.0 - self.rho) * tf.square(g)
        if self.tf_style:
            buf = self.momentum * slots["momentum"] + lr * g / tf.sqrt(ms + self.epsilon)
            return w - buf, {"ms": ms, "momentum": buf}
        buf = self.momentum * slots["momentum"] + g / (tf.sqrt(ms) + self.epsilon)
        return w - lr * buf, {"ms": ms, "momentum": buf}

    def config(self):
        return dict(rho=self.rho, momentum=self.momentum, epsilon=self.epsilon, tf_style=self.tf_style)


# -- the adapters: one per Keras optimizer base-class API --------------------------------------------


def _check_decay(decay: Optional[Sequence[float]], var_list: List) -> List[float]:
    if decay is None:
        return [0.0] * len(var_list)
    decay = [float(c) for c in decay]
    if len(decay) != len(var_list):
        raise ValueError(f"decay has {len(decay)} coefficients for {len(var_list)} variables; pass one per "
                         "variable the optimizer is built on (model.trainable_variables order).")
    return decay


class _RuleMixin:
    """What both adapters share: slot creation and the update through the rule."""

    def _init_rule(self, rule: UpdateRule, decay: Optional[Sequence[float]]) -> None:
        self.rule = rule
        self._decay_arg = None if decay is None else list(decay)
        self._decay: List[float] = []
        self._slot_lists: List[List] = []

    def _make_slots(self, var_list, add_slot) -> None:
        self._decay = _check_decay(self._decay_arg, var_list)
        self._slot_lists = [[add_slot(v, name, initial) for v in var_list] for name, initial in self.rule.slots]

    def _apply_rule(self, gradient, variable, index: int, lr) -> None:
        dtype = variable.dtype
        g = tf.cast(tf.convert_to_tensor(gradient), dtype)
        lr = tf.cast(lr, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        slot_vars = {name: self._slot_lists[k][index] for k, (name, _) in enumerate(self.rule.slots)}
        w = tf.convert_to_tensor(variable)
        new_w, new_slots = self.rule.apply(g, w, {n: tf.convert_to_tensor(s) for n, s in slot_vars.items()}, lr,
                                           self._decay[index], step)
        for name, value in new_slots.items():
            slot_vars[name].assign(value)
        variable.assign(new_w)

    def _rule_config(self) -> Dict:
        return dict(self.rule.config(), decay=self._decay_arg)


if IS_KERAS_3:

    class RuleOptimizer(_RuleMixin, keras.optimizers.Optimizer):
        """A Keras 3 optimizer that runs an :class:`UpdateRule` (``decay``: per-variable coefficients)."""

        def __init__(self, rule: UpdateRule, learning_rate, decay: Optional[Sequence[float]] = None,
                     name: str = "rule_optimizer", **kwargs) -> None:
            super().__init__(learning_rate=learning_rate, name=name, **kwargs)
            self._init_rule(rule, decay)

        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            self._make_slots(var_list, lambda v, name, initial: self.add_variable_from_reference(
                v, name, initializer="ones" if initial == 1.0 else "zeros"))

        def update_step(self, gradient, variable, learning_rate):
            self._apply_rule(gradient, variable, self._get_variable_index(variable), learning_rate)

        def get_config(self):
            return dict(super().get_config(), **self._rule_config())

else:

    class RuleOptimizer(_RuleMixin, keras.optimizers.Optimizer):
        """A Keras 2 (tf_keras) optimizer that runs an :class:`UpdateRule` (``decay``: per-variable coefficients)."""

        def __init__(self, rule: UpdateRule, learning_rate, decay: Optional[Sequence[float]] = None,
                     name: str = "rule_optimizer", **kwargs) -> None:
            # No XLA: the NPU adapter cannot compile it, and the rules are a handful of element-wise ops.
            super().__init__(name=name, jit_compile=False, **kwargs)
            self._learning_rate = self._build_learning_rate(learning_rate)
            self._init_rule(rule, decay)

        def build(self, var_list):
            super().build(var_list)
            if getattr(self, "_built", False):
                return
            self._built = True
            self._make_slots(var_list, lambda v, name, initial: self.add_variable_from_reference(
                model_variable=v, variable_name=name,
                initial_value=tf.fill(v.shape, tf.constant(initial, getattr(v, "true_dtype", v.dtype)))))

        def update_step(self, gradient, variable):
            self._apply_rule(gradient, variable, self._index_dict[self._var_key(variable)], self.learning_rate)

        def get_config(self):
            config = super().get_config()
            config.update(learning_rate=self._serialize_hyperparameter(self._learning_rate), **self._rule_config())
            return config


def build_optimizer(config: Union[OptimizerConfig, str], learning_rate, *, loss_scaling: bool = False,
                    decay: Optional[Sequence[float]] = None, lr_multipliers: Optional[Sequence[float]] = None,
                    **settings: Any):
    """Creates the Keras optimizer ``config.optimizer`` names (a builder of ``registry.OPTIMIZERS``).

    Args:
        config: the optimizer settings (name, momentum, betas, epsilon, ...), or an optimizer's name
            with ``settings`` (``OptimizerConfig`` fields such as ``momentum=0.9``) for the rest.
        learning_rate: a float or a ``LearningRateSchedule`` evaluated at ``optimizer.iterations``.
        loss_scaling: wrap in a dynamic loss-scale optimizer (float16 training).
        decay: for optimizers registered with ``decoupled_decay`` (adamw, lamb, lars): the weight-decay
            coefficient of each variable the optimizer will be built on, in that order; ignored by the others.
        lr_multipliers: one learning-rate multiplier per variable the optimizer will be built on, in that
            order (:func:`with_lr_multipliers`); None: the same rate for all.
        **settings: with a name: ``OptimizerConfig`` fields.
    """
    if isinstance(config, str):
        config = dataclasses.replace(OptimizerConfig(), optimizer=config, **settings)
    opt = OPTIMIZERS.get(config.optimizer)(config, learning_rate, decay if decay_in_optimizer(config.optimizer)
                                           else None)
    opt = with_lr_multipliers(opt, lr_multipliers, name=config.optimizer)
    if loss_scaling:
        opt = keras.mixed_precision.LossScaleOptimizer(opt)
    return opt


# -- the registered builders (training/__init__.py registers each with its description) ------------


def momentum(config: OptimizerConfig, learning_rate, decay=None):
    """Heavy-ball momentum, Nesterov with ``use_nesterov`` (one fused kernel per variable under Keras 3)."""
    sgd = FusedMomentumSGD if IS_KERAS_3 else keras.optimizers.SGD
    return sgd(learning_rate, momentum=config.momentum, nesterov=config.use_nesterov)


def sgd(config: OptimizerConfig, learning_rate, decay=None):
    """Plain SGD."""
    return keras.optimizers.SGD(learning_rate)


def adam(config: OptimizerConfig, learning_rate, decay=None):
    """Keras' Adam."""
    return keras.optimizers.Adam(learning_rate, beta_1=config.adam_beta1, beta_2=config.adam_beta2,
                                 epsilon=config.optimizer_epsilon)


def rmsprop(config: OptimizerConfig, learning_rate, decay=None):
    """Keras' RMSprop."""
    return keras.optimizers.RMSprop(learning_rate, rho=config.rmsprop_decay, momentum=config.momentum,
                                    epsilon=config.optimizer_epsilon)


def _rule_optimizer(name: str, rule: UpdateRule, learning_rate, decay):
    if not hasattr(keras.optimizers.Optimizer, "add_variable_from_reference"):
        raise ValueError(f"--optimizer={name} needs Keras 3 or tf_keras >= 2.11; this TensorFlow's Keras "
                         f"({keras.optimizers.Optimizer.__name__}) has the old optimizer API. Use momentum, sgd, "
                         "adam or rmsprop here.")
    return RuleOptimizer(rule, learning_rate, decay=decay, name=name)


def adamw(config: OptimizerConfig, learning_rate, decay=None):
    """torch's AdamW: decoupled weight decay."""
    return _rule_optimizer("adamw", AdamWRule(config.adam_beta1, config.adam_beta2, config.optimizer_epsilon),
                           learning_rate, decay)


def lamb(config: OptimizerConfig, learning_rate, decay=None):
    """LAMB (You et al. 2019)."""
    return _rule_optimizer("lamb", LambRule(config.adam_beta1, config.adam_beta2, config.optimizer_epsilon),
                           learning_rate, decay)


def lars(config: OptimizerConfig, learning_rate, decay=None):
    """LARS (You et al. 2017)."""
    return _rule_optimizer("lars", LarsRule(config.momentum, config.lars_trust_coefficient), learning_rate, decay)


def rmsprop_tf(config: OptimizerConfig, learning_rate, decay=None):
    """TF1's RMSprop: epsilon inside the root, mean square from 1."""
    return _rule_optimizer("rmsprop_tf", RMSpropRule(config.rmsprop_decay, config.momentum,
                                                     config.optimizer_epsilon, tf_style=True), learning_rate, decay)


def rmsprop_torch(config: OptimizerConfig, learning_rate, decay=None):
    """torch's RMSprop."""
    return _rule_optimizer("rmsprop_torch", RMSpropRule(config.rmsprop_decay, config.momentum,
                                                        config.optimizer_epsilon, tf_style=False), learning_rate, decay)


class FusedMomentumSGD(keras.optimizers.SGD):
    """Keras 3's momentum SGD, updating each variable and its momentum in one fused kernel.

    Keras 3 writes the update as separate element-wise operations (two multiplications, a
    subtraction and an assignment for the momentum, the same again for the weights), each a pass over
    memory. TensorFlow's ``ResourceApplyKerasMomentum`` computes the same arithmetic (``m = momentum * m
    - lr * g``; ``v += m``, or ``v += momentum * m - lr * g`` with Nesterov) in one pass: 2.5x faster
    on AlexNet's 61 M parameters on a CPU (bench/RESULTS.md). Sparse gradients take Keras' own path.
    Used under Keras 3 only; Keras 2 (tf_keras, the NPU path) keeps its own SGD, whose operations the
    NPU compiler knows.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.momentum == 0 or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        momentum = self.momentums[self._get_variable_index(variable)]
        var = variable.value if isinstance(variable, keras.Variable) else variable
        accum = momentum.value if isinstance(momentum, keras.Variable) else momentum
        dtype = var.dtype
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=var.handle, accum=accum.handle, lr=tf.cast(learning_rate, dtype), grad=tf.cast(gradient, dtype),
            momentum=tf.cast(self.momentum, dtype), use_nesterov=self.nesterov)


# -- per-variable learning-rate multipliers ----------------------------------------------------------


class _Multipliers:
    """An optimizer's lr multipliers: the list given, keyed by variable once it is built (a plain object, so
    that Keras' attribute tracking leaves it alone and checkpoints do not change)."""

    def __init__(self, values: Sequence[float]) -> None:
        self.values = [float(m) for m in values]
        self.by_key: Dict[Any, float] = {}


def _variable_key(optimizer, variable):
    """The key the optimizer itself files ``variable`` under (its slots' key): Keras 3 and tf_keras have
    ``_var_key``; TF 2.6's OptimizerV2 keys by the distributed container's unique id the same way."""
    if hasattr(optimizer, "_var_key"):
        return optimizer._var_key(variable)
    if hasattr(variable, "_distributed_container"):
        variable = variable._distributed_container()
    elif hasattr(getattr(variable, "handle", None), "_distributed_container"):
        variable = variable.handle._distributed_container()
    return variable._unique_id


class _MultipliedBase:
    """What the three mixins below share: the multipliers by variable."""

    _lr_multipliers: _Multipliers

    def _key_multipliers(self, var_list) -> None:
        table = self._lr_multipliers
        var_list = list(var_list)
        if len(table.values) != len(var_list):
            raise ValueError(f"lr_multipliers has {len(table.values)} values for {len(var_list)} variables; pass one "
                             "per variable the optimizer is built on (model.trainable_variables order).")
        table.by_key = {_variable_key(self, v): m for v, m in zip(var_list, table.values)}

    def _multiplier(self, variable) -> float:
        try:
            return self._lr_multipliers.by_key[_variable_key(self, variable)]
        except KeyError:  # never silently 1: a variable the optimizer was not built on, or a key that changed
            raise RuntimeError(f"{getattr(variable, 'name', variable)}: no learning-rate multiplier; the optimizer "
                               "was built on other variables (or this Keras keys variables differently).") from None


def _scaled(gradient, m: float):
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * tf.cast(m, gradient.values.dtype), gradient.indices,
                                gradient.dense_shape)
    return gradient * tf.cast(m, gradient.dtype)


class _MultipliedKeras3(_MultipliedBase):
    """Keras 3: ``update_step`` receives the learning rate; the variable's is ``lr x m``."""

    def build(self, var_list):
        super().build(var_list)
        self._key_multipliers(var_list)

    def update_step(self, gradient, variable, learning_rate):
        m = self._multiplier(variable)
        return super().update_step(gradient, variable, learning_rate if m == 1.0 else learning_rate * m)


class _MultipliedKeras2(_MultipliedBase):
    """tf_keras >= 2.11: rule optimizers get ``lr x m``; SGD and momentum the gradient x m (the same update)."""

    def build(self, var_list):
        super().build(var_list)
        self._key_multipliers(var_list)

    def update_step(self, gradient, variable):
        m = self._multiplier(variable)
        if m == 1.0:
            return super().update_step(gradient, variable)
        if isinstance(self, RuleOptimizer):
            return self._apply_rule(gradient, variable, self._index_dict[self._var_key(variable)],
                                    self.learning_rate * m)
        return super().update_step(_scaled(gradient, m), variable)


class _MultipliedOptimizerV2(_MultipliedBase):
    """TF 2.6's OptimizerV2 (the NPU adapter's Keras): SGD and momentum get the gradient x m."""

    def _create_all_weights(self, var_list):
        super()._create_all_weights(var_list)
        self._key_multipliers(var_list)

    def _resource_apply_dense(self, grad, var, apply_state=None):
        return super()._resource_apply_dense(_scaled(grad, self._multiplier(var)), var, apply_state)

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        m = self._multiplier(var)
        return super()._resource_apply_sparse(grad * tf.cast(m, grad.dtype), var, indices, apply_state)


_MULTIPLIED_CLASSES: Dict[type, type] = {}


def _multiplied_class(cls: type) -> type:
    if cls not in _MULTIPLIED_CLASSES:
        if IS_KERAS_3:
            mixin = _MultipliedKeras3
        elif hasattr(cls, "update_step") and hasattr(cls, "build"):
            mixin = _MultipliedKeras2
        else:
            mixin = _MultipliedOptimizerV2
        _MULTIPLIED_CLASSES[cls] = type(cls.__name__, (mixin, cls), {
            "__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})
    return _MULTIPLIED_CLASSES[cls]


def with_lr_multipliers(optimizer, multipliers: Optional[Sequence[float]], name: str = ""):
    """Makes ``optimizer`` update each variable with ``lr x`` its multiplier (aligned with the variables it
    will be built on); returns it. None, or all ones, leaves it as it is.

    The optimizer keeps its class's behaviour and state: its class becomes a subclass that overrides the
    per-variable update (see the module docstring), so call this before it is built.

    Raises:
        ValueError: a negative multiplier, an optimizer already built, or under Keras 2 an optimizer
            other than SGD, momentum and the rule optimizers (one line).
    """
    if multipliers is None or all(float(m) == 1.0 for m in multipliers):
        return optimizer
    if any(float(m) < 0 for m in multipliers):
        raise ValueError("learning-rate multipliers must be >= 0.")
    label = f"--optimizer={name or type(optimizer).__name__}"
    if getattr(optimizer, "built", False) or getattr(optimizer, "_built", False):
        raise ValueError(f"{label}: set learning-rate multipliers before the optimizer is built.")
    if not IS_KERAS_3 and not isinstance(optimizer, (keras.optimizers.SGD, RuleOptimizer)):
        raise ValueError(f"--head_lr_multiplier with {label} needs Keras 3: Keras 2's {type(optimizer).__name__} reads "
                         "its learning rate itself and its step does not scale with the gradient; use momentum, sgd, "
                         "adamw, lamb, lars, rmsprop_tf or rmsprop_torch here.")
    optimizer.__class__ = _multiplied_class(type(optimizer))
    optimizer._lr_multipliers = _Multipliers(multipliers)
    return optimizer


def lr_multipliers_of(optimizer) -> Optional[List[float]]:
    """The multipliers :func:`with_lr_multipliers` set (inside a loss-scale wrapper too), or None."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    table = getattr(inner, "_lr_multipliers", None)
    return list(table.values) if table is not None else None


def is_loss_scaled(optimizer) -> bool:
    """True for an optimizer wrapped in a (dynamic) loss-scale optimizer (float16 training)."""
    return _is_loss_scaled(optimizer)


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
