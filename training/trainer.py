"""The training loop: several steps per ``tf.function`` call, logs, checkpoints, resumption."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import tensorflow as tf

from backends.base import Backend
from keras_compat import optimizer_variables
from training.checkpoints import Checkpointer
from training.log import TrainLog
from training.losses import classification_loss
from training.optimizers import gradient_scale, scale_loss, unscale_gradients
from training.schedules import WarmupDecaySchedule
from training.weight_decay import DecayRule, decay_coefficients, l2_penalty

__all__ = ["PeriodicHook", "TrainConfig", "TrainResult", "Trainer"]


@dataclass(frozen=True)
class TrainConfig:
    """What the loop needs to know, resolved from flags by ``training.runner``.

    Attributes:
        num_classes: classifier size.
        per_replica_batch: examples per replica per step (``--batch_size``).
        global_batch: examples per step over all replicas.
        num_train_examples: size of the training split (defines epochs).
        max_steps: last step (``--max_train_steps`` or ``max_epochs * steps_per_epoch``).
        iterations_per_loop: most steps run by one ``tf.function`` call.
        save_summary_steps: a log line every this many steps.
        save_checkpoints_steps: a checkpoint every this many steps (and at the end).
        label_smoothing: label smoothing of the cross entropy.
        weight_decay: L2 coefficient in ``total_loss`` of every trainable variable, unless ``decay``
            says otherwise.
        decay: which variables take how much weight decay (the recipe's selection); None: all of
            them ``weight_decay``.
        aux_loss_weights: weights of the model's auxiliary outputs' losses (its recipe's).
    """

    num_classes: int
    per_replica_batch: int
    global_batch: int
    num_train_examples: int
    max_steps: int
    iterations_per_loop: int = 100
    save_summary_steps: int = 100
    save_checkpoints_steps: int = 1000
    label_smoothing: float = 0.1
    weight_decay: float = 1e-4
    decay: Optional[DecayRule] = None
    aux_loss_weights: Tuple[float, ...] = ()

    @property
    def decay_rule(self) -> DecayRule:
        return self.decay if self.decay is not None else DecayRule(weight_decay=self.weight_decay)

    def epoch_at(self, step: int) -> float:
        """Epochs of data seen after ``step`` steps."""
        return step * self.global_batch / self.num_train_examples


@dataclass(frozen=True)
class PeriodicHook:
    """Calls ``fn(step)`` after every ``every_steps`` steps and at the end of training.

    Used for evaluation in ``train_and_evaluate``; the loop ends its ``tf.function`` calls on the
    hook's steps so that the hook sees exactly that step's weights.
    """

    every_steps: int
    fn: Callable[[int], None]
    at_end: bool = True


@dataclass
class TrainResult:
    """Summary of one call of :meth:`Trainer.train`."""

    start_step: int
    final_step: int
    loss: float = math.nan
    total_loss: float = math.nan
    resumed_from: Optional[str] = None
    log_lines: int = 0


class Trainer:
    """Runs the training steps of a model on a backend.

    The model and optimizer must have been created inside ``backend.scope()``, and the optimizer
    built on the model's trainable variables there (Keras 3 creates slot variables lazily
    otherwise, which fails inside a replica context).

    Args:
        model: Keras model mapping images to logits.
        optimizer: Keras optimizer whose learning rate is ``schedule``.
        schedule: the learning-rate schedule (used for logging the lr of each step).
        backend: the device backend.
        config: loop settings.
        log: where log lines go.
        checkpointer: None disables checkpoints (``--nodo_checkpoint``).
        hooks: periodic callbacks (evaluation).
    """

    def __init__(self, *, model, optimizer, schedule: WarmupDecaySchedule, backend: Backend, config: TrainConfig,
                 log: TrainLog, checkpointer: Optional[Checkpointer] = None,
                 hooks: Sequence[PeriodicHook] = ()) -> None:
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule
        self.backend = backend
        self.strategy = backend.strategy
        self.config = config
        self.log = log
        self.checkpointer = checkpointer
        self.hooks = list(hooks)
        # Each replica's loss is its sum divided by the global batch, so that the optimizer's
        # cross-replica sum of gradients is the gradient of the global mean.
        self._loss_denominator = float(config.per_replica_batch * self.strategy.num_replicas_in_sync)
        # Weight decay per trainable variable, fixed for the run (model.trainable_variables order).
        self._decay = decay_coefficients(model, config.decay_rule)
        self._loop_fn = None
        self._loop_size = None

    # -- one step ---------------------------------------------------------------------------------

    def _step_fn(self, images, labels, is_last):
        """One replica's step; returns (loss, total_loss) contributions, total only when ``is_last``.

        Weight decay is applied as the gradient term it is: ``coefficient * v`` is added to each
        variable's gradient, the same mathematics as an L2 term ``coefficient * l2_loss(v)`` in the loss
        without differentiating it. The penalty itself, for ``total_loss``, is computed only on the
        last step of a loop call (the only one logged), from the weights before that step's update.
        """
        cfg = self.config
        variables = self.model.trainable_variables
        replicas = self.strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            outputs = self.model(images, training=True)
            per_example = classification_loss(labels, outputs, cfg.num_classes, cfg.label_smoothing,
                                               cfg.aux_loss_weights)
            loss = tf.reduce_sum(per_example) / self._loss_denominator
            scaled = scale_loss(self.optimizer, loss)
        grads = tape.gradient(scaled, variables)
        grads = unscale_gradients(self.optimizer, grads)
        grads = self._add_decay(grads, variables, replicas)
        penalty = tf.cond(is_last, lambda: l2_penalty(variables, self._decay) / replicas,
                          lambda: tf.constant(0.0, tf.float32))
        grads = self.backend.reduce_gradients(grads)
        self.optimizer.apply_gradients(zip(grads, variables))
        return loss, loss + penalty

    def _add_decay(self, grads, variables, replicas: int):
        """``g + c * v`` per variable; divided among replicas, whose gradients are summed."""
        # Keras 3's loss-scale optimizer unscales inside apply_gradients: scale the term to match.
        factor = gradient_scale(self.optimizer) / float(replicas)
        out = []
        for g, v, c in zip(grads, variables, self._decay):
            if not c or g is None:
                out.append(g)
                continue
            g = tf.convert_to_tensor(g)
            out.append(g + tf.cast(c * factor, g.dtype) * tf.cast(v, g.dtype))
        return out

    def _make_loop(self):
        strategy = self.strategy

        @tf.function
        def loop(iterator, steps):
            loss = tf.constant(0.0)
            total = tf.constant(0.0)
            for i in tf.range(steps):  # NPU adapters sink this loop onto the device.
                images, labels = next(iterator)
                per_replica = strategy.run(self._step_fn, args=(images, labels, tf.equal(i, steps - 1)))
                loss = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica[0], axis=None)
                total = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica[1], axis=None)
            return loss, total

        return loop

    # -- the loop ---------------------------------------------------------------------------------

    @property
    def step(self) -> int:
        """Steps done so far (the optimizer's iteration count, restored with checkpoints)."""
        return int(self.optimizer.iterations.numpy())

    def _next_stop(self, step: int) -> int:
        cfg = self.config
        stops: List[int] = [cfg.max_steps, step + cfg.iterations_per_loop]
        for every in [cfg.save_summary_steps, cfg.save_checkpoints_steps if self.checkpointer else 0] + [
            h.every_steps for h in self.hooks
        ]:
            if every and every > 0:
                stops.append((step // every + 1) * every)
        return min(stops)

    def train(self, dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset]) -> TrainResult:
        """Trains until ``config.max_steps``, resuming from the newest checkpoint if any.

        Args:
            dataset_fn: builds one pipeline's training batches from an input context.

        Returns:
            A :class:`TrainResult`.

        Raises:
            FloatingPointError: if the loss becomes NaN or infinite (nothing is checkpointed then).
        """
        cfg = self.config
        resumed = self.checkpointer.restore_latest() if self.checkpointer else None
        start = self.step
        # Ranks that resumed from different steps would wait for each other forever.
        self.backend.assert_same_on_all_ranks(
            "the step training starts from", start,
            hint=f"every rank must read the same checkpoint directory ({self.checkpointer.directory}), "
            "e.g. on a shared file system" if self.checkpointer else "")
        if resumed:
            self.log.info(
                f"Resumed from {resumed}: step {start}, epoch {cfg.epoch_at(start):.1f}, "
                f"lr {self.schedule.value(max(start - 1, 0)):.5f}"
            )
        result = TrainResult(start_step=start, final_step=start, resumed_from=resumed)
        if start >= cfg.max_steps:
            self.log.info(f"Nothing to train: step {start} >= max steps {cfg.max_steps}.")
            return result
        self.backend.broadcast_variables(self.model.variables + optimizer_variables(self.optimizer))
        iterator = iter(self.backend.distribute_dataset(dataset_fn))
        if self._loop_fn is None:
            self._loop_fn = self._make_loop()

        step = start
        # Seconds inside training calls since the last log line: checkpoints and hooks (evaluation)
        # are excluded from FPS and batch_time.
        interval_seconds, interval_step = 0.0, step
        while step < cfg.max_steps:
            n = self._next_stop(step) - step
            if n != self._loop_size:
                self.backend.set_loop_size(n)
                self._loop_size = n
            began = time.perf_counter()
            loss_t, total_t = self._loop_fn(iterator, tf.constant(n, tf.int64))
            loss, total = float(loss_t), float(total_t)
            interval_seconds += time.perf_counter() - began
            step = self.step
            result.final_step, result.loss, result.total_loss = step, loss, total
            if not (math.isfinite(loss) and math.isfinite(total)):
                raise FloatingPointError(
                    f"loss became {loss} (total_loss {total}) at step {step}; nothing was saved for "
                    "this step. Lower --lr or raise --warmup_epochs, then resume from the last checkpoint."
                )
            at_end = step >= cfg.max_steps
            if step % cfg.save_summary_steps == 0 or at_end:
                seconds = max(interval_seconds, 1e-9)
                self.log.step(
                    step=step, epoch=cfg.epoch_at(step), fps=cfg.global_batch * (step - interval_step) / seconds,
                    loss=loss, total_loss=total, lr=self.schedule.value(step - 1), batch_time=seconds,
                )
                result.log_lines += 1
                interval_seconds, interval_step = 0.0, step
            if self.checkpointer and (step % cfg.save_checkpoints_steps == 0 or at_end):
                self.checkpointer.save(step)
            for hook in self.hooks:
                if step % hook.every_steps == 0 or (at_end and hook.at_end):
                    hook.fn(step)
        return result
