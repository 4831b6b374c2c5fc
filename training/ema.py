"""Exponential moving average of the weights (``--model_ema``): torchvision's, timm's and TensorFlow's.

torchvision's ``references/classification`` (``utils.ExponentialMovingAverage``, an ``AveragedModel``
with ``use_buffers=True``) averages every floating-point tensor of the model's state, parameters and
batch-norm statistics alike, every ``--model-ema-steps`` steps::

    average = decay * average + (1 - decay) * weight     (a plain copy on the first update)

with the decay adjusted to the run, ``alpha = min(1, (1 - decay) * global_batch * ema_steps / epochs)``,
``decay = 1 - alpha`` (:func:`adjusted_decay`), and the average reset to a copy of the weights at
every update during the learning-rate warm-up. Evaluation and export then use the averaged weights.

Here the update runs in the trainer's compiled loop (:meth:`ModelEMA.update`, cross-replica) when the
optimizer's iteration count after a step is a multiple of ``every_steps`` (torchvision counts the batch
index within an epoch: its updates fall after batches 1, 33, 65 ... of each epoch; here after steps
32, 64 ... of the run). The averages are checkpointed under ``ema/`` with the model and optimizer.

The other references the zoo's recipes cite average the same way with another decay rule
(``--model_ema_adjust``, ``--model_ema_warmup``):

* timm's ``ModelEma`` (the EfficientNet-B0 recipe: ``--model-ema --model-ema-decay 0.9999``) updates every
  step with the decay as given, no adjustment and no reset during the warm-up (``--nomodel_ema_adjust
  --model_ema_warmup=none``). timm's average starts from the weights at its creation; here the first update
  copies the weights of step 1, a difference that is ``decay ** n`` of the first step's change after n steps.
* TensorFlow's ``tf.train.ExponentialMovingAverage(decay, num_updates=global_step)`` (TensorFlow's Inception
  training code, ``MOVING_AVERAGE_DECAY = 0.9999``) uses ``min(decay, (1 + n) / (10 + n))`` at global step n
  (``--nomodel_ema_adjust --model_ema_warmup=num_updates``; n counts the steps before this one, the first
  update copies as TensorFlow 2's first ``apply`` does).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from keras_compat import variable_path
from run_config import RegularizationConfig
from runs.checkpoints import has_object

__all__ = ["EMA_PREFIX", "WARMUPS", "ModelEMA", "adjusted_decay", "checkpoint_has_ema", "load_ema_weights", "maybe_ema"]

EMA_PREFIX = "ema/"  # the checkpoint keys of the averages (``Checkpointer(ema=...)``)
WARMUPS = ("lr_warmup", "none", "num_updates")  # --model_ema_warmup


def adjusted_decay(decay: float, global_batch: int, every_steps: int, epochs: float) -> float:
    """torchvision's adjustment of ``--model_ema_decay`` to the run (from pycls): ``1 - alpha`` with
    ``alpha = min(1, (1 - decay) * global_batch * every_steps / epochs)``."""
    if epochs <= 0:
        raise ValueError(f"--model_ema needs a positive number of epochs for its decay adjustment, got {epochs}")
    return 1.0 - min(1.0, (1.0 - decay) * global_batch * every_steps / epochs)


def _averaged_weights(model) -> List[Tuple[str, object]]:
    """(name, weight) of every floating-point weight of ``model`` (trainable or not), names unique."""
    out, seen = [], {}
    for w in model.weights:
        if not tf.as_dtype(w.dtype).is_floating:
            continue
        path = variable_path(w)
        # Checkpoint attribute names: no "/" or "." (TensorFlow escapes them); repeated paths numbered.
        name = path.replace("/", ">").replace(".", ":")
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}#{seen[name]}", w))
    return out


class _Averages(tf.Module):
    """One attribute per averaged weight, named after its path (how the checkpoint stores them)."""


def _make_averages(named_weights) -> Tuple[_Averages, List[tf.Variable]]:
    averages = _Averages(name="averages")
    shadows = []
    for name, w in named_weights:
        value = tf.convert_to_tensor(w)
        shadow = tf.Variable(value, trainable=False, name="average", dtype=value.dtype)
        setattr(averages, name, shadow)
        shadows.append(shadow)
    return averages, shadows


class ModelEMA(tf.Module):
    """Averages of a model's floating-point weights, updated by the training loop.

    Create it inside the backend's strategy scope (its variables are mirrored like the model's).

    Args:
        model: the Keras model being trained.
        decay: the decay of one update (already adjusted, see :func:`adjusted_decay`).
        every_steps: update when the optimizer's iteration count is a multiple of this.
        warmup_steps: updates at steps <= this copy the weights (torchvision: during the lr warm-up).
        num_updates: TensorFlow's ramp: the update after step ``s`` uses ``min(decay, (s) / (9 + s))``, i.e.
            ``(1 + n) / (10 + n)`` with ``n = s - 1`` steps before it.
    """

    def __init__(self, model, decay: float, every_steps: int = 32, warmup_steps: int = 0,
                 num_updates: bool = False) -> None:
        super().__init__(name="model_ema")
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"--model_ema_decay must be in [0, 1], got {decay}")
        if every_steps < 1:
            raise ValueError(f"--model_ema_steps must be at least 1, got {every_steps}")
        self.decay = float(decay)
        self.every_steps = int(every_steps)
        self.warmup_steps = int(warmup_steps)
        self.num_updates = bool(num_updates)
        named = _averaged_weights(model)
        self._weights = [w for _, w in named]
        self.averages, self._shadows = _make_averages(named)
        # torchvision's n_averaged (0: the next update copies); updates: how many ever ran (0: no average yet);
        # last_step: the step of the last update (a step dropped as non-finite must not update twice).
        self.n_averaged = tf.Variable(0, dtype=tf.int64, trainable=False, name="n_averaged")
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="updates")
        self.last_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="last_step")

    def decay_at(self, step):
        """The decay of the update after optimizer step ``step`` (int64 tensor): float64 scalar."""
        decay = tf.constant(self.decay, tf.float64)
        if not self.num_updates:
            return decay
        n = tf.cast(step - 1, tf.float64)  # steps before this one: TensorFlow's num_updates
        return tf.minimum(decay, (1.0 + n) / (10.0 + n))

    def _update(self, step):
        copy = tf.equal(self.n_averaged, 0)
        decay64 = self.decay_at(step)
        for w, shadow in zip(self._weights, self._shadows):
            value = tf.cast(tf.convert_to_tensor(w), shadow.dtype)
            decay = tf.cast(decay64, shadow.dtype)
            shadow.assign(tf.where(copy, value, decay * shadow + (1.0 - decay) * value))
        in_warmup = step <= self.warmup_steps
        self.n_averaged.assign(tf.where(in_warmup, tf.zeros_like(step), self.n_averaged + 1))
        self.updates.assign_add(1)
        self.last_step.assign(step)
        return tf.constant(True)

    def update(self, step) -> tf.Tensor:
        """Updates the averages if ``step`` (the optimizer's iteration count after a step) is due.

        Graph-safe (``tf.cond``); call it in cross-replica context. Returns whether it updated.
        """
        step = tf.cast(step, tf.int64)
        due = tf.logical_and(tf.equal(step % self.every_steps, 0), tf.not_equal(step, self.last_step))
        return tf.cond(due, lambda: self._update(step), lambda: tf.constant(False))

    def describe(self) -> str:
        """One line for the log: the decay, how often, and how the average starts."""
        start = (f"copies the weights during the lr warm-up ({self.warmup_steps} steps)" if self.warmup_steps
                 else "decay min(decay, (1 + n) / (10 + n)) at step n (TensorFlow's num_updates)" if self.num_updates
                 else "copies the weights at the first update only")
        return f"decay {self.decay:.8g} per update, every {self.every_steps} steps; the average {start}"

    @property
    def has_average(self) -> bool:
        """False until the first update (a fresh run, or one resumed from a checkpoint without EMA)."""
        return int(self.updates.numpy()) > 0

    def reset(self) -> None:
        """Copies the current weights into the averages; the next update copies again."""
        for w, shadow in zip(self._weights, self._shadows):
            shadow.assign(tf.cast(tf.convert_to_tensor(w), shadow.dtype))
        self.n_averaged.assign(0)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[bool]:
        """Within the block the model holds the averaged weights (yields True), its own afterwards.

        Yields False and leaves the weights alone while there is no average yet. Call it eagerly,
        outside any replica context (evaluation between training calls).
        """
        if not self.has_average:
            yield False
            return
        saved = [tf.identity(tf.convert_to_tensor(w)) for w in self._weights]
        try:
            for w, shadow in zip(self._weights, self._shadows):
                w.assign(tf.cast(shadow, w.dtype))
            yield True
        finally:
            for w, value in zip(self._weights, saved):
                w.assign(value)


def checkpoint_has_ema(path: str) -> bool:
    """Whether checkpoint ``path`` holds weight averages (it was written by a ``--model_ema`` run)."""
    return has_object(path, EMA_PREFIX.rstrip("/"))


def load_ema_weights(model, path: str) -> int:
    """Assigns the averages stored in checkpoint ``path`` to ``model``'s weights; returns how many.

    ``model`` may be the inference view of the trained model (fewer weights: its auxiliary heads
    pruned); its weights are found by name.

    Raises:
        ValueError: the checkpoint has no averages, or not for every weight of ``model``.
    """
    if not checkpoint_has_ema(path):
        raise ValueError(f"{path} holds no weight averages (it was trained without --model_ema); evaluate or "
                         "export it without --model_ema.")
    named = _averaged_weights(model)
    holder = tf.Module()
    holder.averages, shadows = _make_averages(named)
    reader = tf.train.load_checkpoint(path)
    stored = set(reader.get_variable_to_shape_map())
    missing = [name for name, _ in named
               if f"ema/averages/{name}/.ATTRIBUTES/VARIABLE_VALUE" not in stored]
    if missing:
        raise ValueError(f"{path}: no averages of {len(missing)} weights of the model (first: "
                         f"{missing[0].replace('>', '/').replace(':', '.')}); check --model.")
    tf.train.Checkpoint(ema=holder).restore(path).expect_partial()
    for (_, w), shadow in zip(named, shadows):
        w.assign(np.asarray(shadow.numpy(), dtype=tf.as_dtype(w.dtype).as_numpy_dtype))
    return len(named)


def maybe_ema(config: RegularizationConfig, model, *, global_batch: int, max_epochs: float,
              warmup_steps: int) -> Optional[ModelEMA]:
    """The run's :class:`ModelEMA` from its ``model_ema*`` settings (None when off); call inside the strategy
    scope.

    Args:
        config: ``--model_ema``, its decay, interval, ``--model_ema_adjust`` (torchvision's adjustment of the
            decay to the run) and ``--model_ema_warmup`` (``lr_warmup``: copies during the lr warm-up,
            torchvision; ``none``: timm; ``num_updates``: TensorFlow's ramp).
        model: the model being trained.
        global_batch, max_epochs: the run's, for the adjustment.
        warmup_steps: the lr warm-up's length in steps.
    """
    if not config.model_ema:
        return None
    if config.model_ema_warmup not in WARMUPS:
        raise ValueError(f"--model_ema_warmup must be one of {', '.join(WARMUPS)}, got {config.model_ema_warmup!r}")
    decay = config.model_ema_decay
    if config.model_ema_adjust:
        decay = adjusted_decay(decay, global_batch, config.model_ema_steps, max_epochs)
    return ModelEMA(model, decay, every_steps=config.model_ema_steps,
                    warmup_steps=warmup_steps if config.model_ema_warmup == "lr_warmup" else 0,
                    num_updates=config.model_ema_warmup == "num_updates")
