"""Exponential moving average of the weights (``--model_ema``), with torchvision's semantics.

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
"""

from __future__ import annotations

import contextlib
from typing import Iterator, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from keras_compat import variable_path
from run_config import RegularizationConfig
from runs.checkpoints import has_object

__all__ = ["EMA_PREFIX", "ModelEMA", "adjusted_decay", "checkpoint_has_ema", "load_ema_weights"]

EMA_PREFIX = "ema/"  # the checkpoint keys of the averages (``Checkpointer(ema=...)``)


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
    """

    def __init__(self, model, decay: float, every_steps: int = 32, warmup_steps: int = 0) -> None:
        super().__init__(name="model_ema")
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"--model_ema_decay must be in [0, 1], got {decay}")
        if every_steps < 1:
            raise ValueError(f"--model_ema_steps must be at least 1, got {every_steps}")
        self.decay = float(decay)
        self.every_steps = int(every_steps)
        self.warmup_steps = int(warmup_steps)
        named = _averaged_weights(model)
        self._weights = [w for _, w in named]
        self.averages, self._shadows = _make_averages(named)
        # torchvision's n_averaged (0: the next update copies); updates: how many ever ran (0: no average yet);
        # last_step: the step of the last update (a step dropped as non-finite must not update twice).
        self.n_averaged = tf.Variable(0, dtype=tf.int64, trainable=False, name="n_averaged")
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="updates")
        self.last_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="last_step")

    def _update(self, step):
        copy = tf.equal(self.n_averaged, 0)
        for w, shadow in zip(self._weights, self._shadows):
            value = tf.cast(tf.convert_to_tensor(w), shadow.dtype)
            shadow.assign(tf.where(copy, value, self.decay * shadow + (1.0 - self.decay) * value))
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
    scope."""
    if not config.model_ema:
        return None
    decay = adjusted_decay(config.model_ema_decay, global_batch, config.model_ema_steps, max_epochs)
    return ModelEMA(model, decay, every_steps=config.model_ema_steps, warmup_steps=warmup_steps)
