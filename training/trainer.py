"""The training loop: several steps per ``tf.function`` call, logs, checkpoints, resumption."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import tensorflow as tf

from backends.base import Backend
from keras_compat import IS_KERAS_3, KERAS_VERSION, optimizer_variables
from runs import preemption
from runs.checkpoints import Checkpointer
from training.log import TrainLog
from training.losses import classification_loss
from training.nonfinite import NonFiniteGuard, NonFiniteLossError, all_finite, control_variable
from training.optimizers import gradient_scale, is_loss_scaled, scale_loss, unscale_gradients
from training.schedules import WarmupDecaySchedule
from training.weight_decay import DecayRule, decay_coefficients, l2_penalty

__all__ = ["PeriodicHook", "TrainConfig", "TrainResult", "Trainer"]


@dataclass(frozen=True)
class TrainConfig:
    """What the loop needs to know, from the run's configuration and dataset (``modes.train``).

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
        decoupled_decay: the optimizer applies weight decay itself (AdamW, LAMB); the step adds no
            gradient term and ``total_loss`` no penalty.
        clip_grad_norm: clip the global gradient norm (over all replicas) to this; 0: no clipping.
        nan_policy: ``stop`` or ``skip_step`` (see :mod:`training.nonfinite`).
        max_consecutive_skips: ``skip_step``: skipped steps in a row that stop training.
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
    decoupled_decay: bool = False
    clip_grad_norm: float = 0.0
    nan_policy: str = "stop"
    max_consecutive_skips: int = 5

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
    skipped_steps: int = 0


class Trainer:
    """Runs the training steps of a model on a backend.

    The model and optimizer must have been created inside ``backend.scope()``, and the optimizer
    built on the model's trainable variables there (Keras 3 creates slot variables lazily
    otherwise, which fails inside a replica context). The trainer creates its own device-side
    state (last loss, non-finite counters) in that scope too.

    One step, for every backend and both Keras versions:

    1. each replica: normalise the batch (uint8 from the input pipeline), forward, backward, add
       weight decay as the gradient term ``c * v`` (unless the optimizer decays decoupled);
    2. all replicas and processes: one all-reduce of the gradients with the loss and the stop
       request (float32), always, outside any branch; every replica then holds the same sums and
       decides from them whether they are finite, so all decide alike without a collective of their own;
    3. apply the reduced update (clipped by global norm; the optimizer aggregates nothing more), or
       drop it as ``--nan_policy`` (or the float16 loss scale) says: branches without collectives;
    4. the weights' moving average, if any.

    :meth:`request_stop` (any thread) makes the device loop stop at the next step boundary, the same
    step on every rank.

    Args:
        model: Keras model mapping images to logits.
        optimizer: Keras optimizer whose learning rate is ``schedule``.
        schedule: the learning-rate schedule (used for logging the lr of each step).
        backend: the device backend.
        config: loop settings.
        log: where log lines go.
        checkpointer: None disables checkpoints (``--nodo_checkpoint``).
        hooks: periodic callbacks (evaluation).
        preprocess: applied to each replica's images inside the step (normalisation of uint8
            batches on the device); None: the batches are ready.
        ema: an exponential moving average of the weights: its ``update(iterations)`` runs in the
            device loop after every step.
    """

    def __init__(self, *, model, optimizer, schedule: WarmupDecaySchedule, backend: Backend, config: TrainConfig,
                 log: TrainLog, checkpointer: Optional[Checkpointer] = None,
                 hooks: Sequence[PeriodicHook] = (), preprocess: Optional[Callable] = None, ema=None) -> None:
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule
        self.backend = backend
        self.strategy = backend.strategy
        self.config = config
        self.log = log
        self.checkpointer = checkpointer
        self.hooks = list(hooks)
        self.preprocess = preprocess
        self.ema = ema
        # Each replica's loss is its sum divided by the global batch, so that the optimizer's
        # cross-replica sum of gradients is the gradient of the global mean.
        self._loss_denominator = float(config.per_replica_batch * self.strategy.num_replicas_in_sync)
        # Weight decay per trainable variable as a gradient term, fixed for the run; none when the
        # optimizer applies it decoupled.
        self._decay = ([0.0] * len(model.trainable_variables) if config.decoupled_decay
                       else decay_coefficients(model, config.decay_rule))
        self._loss_scaled = is_loss_scaled(optimizer)
        # --xla: the forward and backward pass as one XLA computation (the update stays outside: the
        # optimizer's variables and the replicas' all-reduce are not XLA's to compile here).
        self._gradients = tf.function(self._gradients_of, jit_compile=True) if backend.jit_compile \
            else self._gradients_of
        self._replicas = self.strategy.num_replicas_in_sync
        if IS_KERAS_3 and self._replicas > 1:
            _apply_reduced_gradients_only(optimizer)
        with self.strategy.scope():
            self.guard = NonFiniteGuard(config.nan_policy, config.max_consecutive_skips)
            # The last step's loss and total_loss, each replica's share; read (summed) once per call.
            self._last_loss = _replica_sum(0.0)
            self._last_total = _replica_sum(0.0)
            # optimizer.iterations after the last step of the current loop call, whose total_loss is
            # logged: set before each call, so that the step needs no loop index.
            self._logged_step = control_variable(-1, tf.int64, name="logged_step")
            # A stop at the next step boundary, asked for on this process (request_stop, any thread)...
            self.stop_requested = control_variable(False, tf.bool, name="stop_requested")
            # ...and agreed by every replica and process (it rides in the step's gradient all-reduce).
            self._stop_agreed = control_variable(False, tf.bool, name="stop_agreed")
        self._loop_fn = None
        self._loop_size = None

    # -- one step ---------------------------------------------------------------------------------

    def _active(self):
        """True until the loop must stop: a non-finite verdict (``stop``) or an agreed stop request.

        Variable reads only: a step sunk onto an NPU may depend on nothing else (docs/npu.md).
        """
        return tf.logical_not(tf.logical_or(self.guard.stopped, self._stop_agreed))

    def _compute(self, images, labels, active):
        """Replica: gradients (decay added), all-reduced with the loss and the stop request; the verdicts.

        ``total_loss`` adds the weight-decay penalty ``sum c * l2_loss(v)``, computed only for the step
        whose loss is logged (the last of a loop call: ``optimizer.iterations`` reaches the variable
        assigned before the call, no loop index), from the weights before that step's update.

        Returns:
            ``(grads, loss_finite, grads_finite, stop)``: the reduced gradients (sums over the strategy's
            replicas, or the backend's mean over processes), the same on every replica, and flags
            computed from those reduced values, hence the same on every replica too.
        """
        variables = self.model.trainable_variables
        replicas = self._replicas
        loss, grads = self._gradients(images, labels)
        grads = self._add_decay(grads, variables, replicas)
        is_last = tf.equal(tf.cast(self.optimizer.iterations, tf.int64) + 1, self._logged_step)
        penalty = tf.cond(is_last, lambda: l2_penalty(variables, self._decay) / replicas,
                          lambda: tf.constant(0.0, tf.float32))
        # A step sunk onto an NPU after the loop stopped still runs (the adapter drops the loop's
        # condition): it must not overwrite what is logged.
        self._last_loss.assign(tf.where(active, loss, self._last_loss))
        self._last_total.assign(tf.where(active, loss + penalty, self._last_total))
        grads, (loss_sum, stop_sum) = self._reduce(grads, [loss, tf.cast(self.stop_requested, tf.float32)])
        return grads, tf.math.is_finite(loss_sum), all_finite(grads), stop_sum > 0

    def _reduce(self, grads, controls):
        """Replica: one all-reduce of the gradients and the step's control values, outside any branch.

        Every step runs it, on every replica of every process, whatever happens to the update: a
        collective inside a ``tf.cond`` would hang the ranks whose predicate differs. Control values
        travel as float32, which every collective implementation reduces (TensorFlow's GPU collectives
        refuse int32 and bfloat16 sums: docs/distributed.md), and ride in the gradients' collective, so
        they cost no extra round trip. A sum is non-finite exactly when one of its addends is.

        Returns:
            ``(reduced grads with None kept, reduced controls)``.
        """
        present = [i for i, g in enumerate(grads) if g is not None]
        values = [tf.convert_to_tensor(grads[i]) for i in present] + [tf.cast(c, tf.float32) for c in controls]
        if self._replicas > 1:
            values = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, values)
        values = list(self.backend.reduce_gradients(list(values)))
        out = [None] * len(grads)
        for i, value in zip(present, values):
            out[i] = value
        return out, values[len(present):]

    def _gradients_of(self, images, labels):
        """Replica: the loss share and its (unscaled) gradients."""
        cfg = self.config
        if self.preprocess is not None:
            images = self.preprocess(images)
        with tf.GradientTape() as tape:
            outputs = self.model(images, training=True)
            per_example = classification_loss(labels, outputs, cfg.num_classes, cfg.label_smoothing,
                                               cfg.aux_loss_weights)
            loss = tf.reduce_sum(per_example) / self._loss_denominator
            scaled = scale_loss(self.optimizer, loss)
        grads = tape.gradient(scaled, self.model.trainable_variables)
        return loss, unscale_gradients(self.optimizer, grads)

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

    def _apply(self, grads):
        """Replica: clips the reduced gradients and applies them, with no collective of the optimizer's own.

        The gradients are already the sums over replicas (or the backend's mean over processes), the
        same on every replica: Keras 2 optimizers are told not to aggregate them again, Keras 3 ones
        were set up not to (:func:`_apply_reduced_gradients_only`).
        """
        if self.config.clip_grad_norm > 0:
            grads = self._clip(grads)
        pairs = list(zip(grads, self.model.trainable_variables))
        if self._replicas > 1 and not IS_KERAS_3:
            self.optimizer.apply_gradients(pairs, experimental_aggregate_gradients=False)
        else:
            self.optimizer.apply_gradients(pairs)

    def _clip(self, grads):
        """Clips the global gradient (the sum over replicas, which every replica holds) to ``clip_grad_norm``."""
        present = [i for i, g in enumerate(grads) if g is not None]
        values = [tf.convert_to_tensor(grads[i]) for i in present]
        # Keras 3's loss-scale optimizer unscales after this: the limit is scaled to match.
        norm = self.config.clip_grad_norm * gradient_scale(self.optimizer)
        values, _ = tf.clip_by_global_norm(values, norm)
        out = list(grads)
        for i, v in zip(present, values):
            out[i] = v
        return out

    def _train_step(self, images, labels):
        """Cross-replica: one step on every replica, the update decided for all of them at once.

        The collectives (gradients, loss, stop request) run first and unconditionally; the branches
        that follow (apply, drop, or nothing once the loop must stop) hold none.
        """
        strategy = self.strategy
        active = self._active()
        grads, loss_ok, grads_ok, stop = strategy.run(self._compute, args=(images, labels, active))
        # Every replica computed the same flags from the same sums: this process's first copy speaks for all.
        loss_ok, grads_ok, stop = (strategy.experimental_local_results(x)[0] for x in (loss_ok, grads_ok, stop))
        self._stop_agreed.assign(tf.logical_or(self._stop_agreed, stop))
        # With a loss scale, non-finite gradients are its signal to skip and lower the scale.
        apply = loss_ok if self._loss_scaled else tf.logical_and(loss_ok, grads_ok)
        iterations = self.optimizer.iterations

        def applied():
            strategy.run(self._apply, args=(grads,))
            if self._loss_scaled and IS_KERAS_3:
                # Keras 3's loss scale does not count the steps it skips (Keras 2's does): count them.
                iterations.assign_add(tf.cast(tf.logical_not(grads_ok), iterations.dtype))
            self.guard.on_applied()

        def dropped():
            self.guard.on_nonfinite(iterations)

        tf.cond(active, lambda: tf.cond(apply, applied, dropped), lambda: None)
        if self.ema is not None:
            self.ema.update(iterations)

    def _make_loop(self):
        """The compiled device loop: up to ``steps`` steps per call, stopping at a step boundary.

        The loop is the function's last operation and returns nothing: the Ascend adapter sinks only
        such a loop onto the device, and then runs its *body* ``steps`` times with the loop's initial
        inputs (docs/npu.md, "Loop sinking"). So the body depends on the loop index for nothing but the
        loop's own count, and reads its state from variables: the step to log, the stop flags. The
        loop's condition also reads the stop flags (CPUs and GPUs leave the loop at once; a sunk loop
        ignores its condition, and its remaining steps do nothing). With a collective watchdog
        (``--collective_timeout_s``) each step ends with a host callback that reports progress.
        """
        watchdog = getattr(self.backend, "watchdog", None)

        @tf.function
        def loop(iterator, steps):
            def more(i):
                return tf.logical_and(i < steps, self._active())

            def step(i):
                images, labels = next(iterator)
                self._train_step(images, labels)
                if watchdog is not None:
                    tf.numpy_function(watchdog.tick, [tf.cast(self.optimizer.iterations, tf.int64)], tf.int64,
                                      stateful=True, name="watchdog_tick")
                return (i + 1,)

            tf.while_loop(more, step, (tf.zeros_like(steps),))

        return _DeviceLoop(self, loop, watchdog)

    # -- stopping at a step boundary ----------------------------------------------------------------

    def request_stop(self) -> None:
        """Asks the device loop to stop at the next step boundary; safe from any thread.

        The flag travels with the next step's gradient all-reduce, so every replica and process stops
        after the same step. On CPUs and GPUs the loop call returns right after that step; a loop
        sunk onto an NPU runs its remaining iterations as no-ops (the update, the loss record and
        the step count stay as they were), so the call returns at its usual end.
        """
        self.stop_requested.assign(True)

    def clear_stop(self) -> None:
        """Forgets a stop request (host, between loop calls: the run goes on)."""
        self.stop_requested.assign(False)
        self._stop_agreed.assign(False)

    @property
    def stop_agreed(self) -> bool:
        """Host: whether the device loop stopped (or will stop) on a request; one variable read."""
        return bool(self._stop_agreed.numpy())

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

    def _raise_nonfinite(self, stopped_at: int, skipped: int) -> None:
        cfg = self.config
        latest = self.checkpointer.latest if self.checkpointer else None
        last_good = self.step if cfg.nan_policy == "stop" else stopped_at - self.guard.max_consecutive
        where = f"the last good checkpoint is {latest}" if latest else "no checkpoint was written yet"
        what = (f"{self.guard.max_consecutive} steps in a row up to step {stopped_at}" if cfg.nan_policy == "skip_step"
                else f"step {stopped_at}")
        # The names --allow_recipe_change accepts (run_config/compare.py): the resume check refuses a changed lr,
        # warm-up or clipping unless named.
        fix = ("Lower --lr and resume with --allow_recipe_change=lr (or raise --warmup_epochs and resume with "
               "--allow_recipe_change=warmup_epochs, or add --clip_grad_norm with --allow_recipe_change=clip_grad_norm)"
               if latest else "Lower --lr or raise --warmup_epochs (or add --clip_grad_norm) and run again")
        raise NonFiniteLossError(
            f"the loss or gradients were not finite at {what}; that update was not applied and nothing "
            f"was saved after it ({where}). {fix}.",
            step=stopped_at, last_good_step=last_good, checkpoint=latest)

    def train(self, dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset]) -> TrainResult:
        """Trains until ``config.max_steps``, resuming from the newest checkpoint if any.

        Args:
            dataset_fn: builds one pipeline's training batches from an input context; one that also takes
                ``start_step`` gets the step this run resumes from, so that its data stream goes on where the
                checkpoint left it.

        Returns:
            A :class:`TrainResult`.

        Raises:
            NonFiniteLossError: the loss or gradients became NaN or infinite (``--nan_policy``); no
                update with them was applied and nothing was saved after the last good step.
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
        import inspect

        if start and "start_step" in inspect.signature(dataset_fn).parameters:
            # A resumed run's input goes on where the checkpoint's step left the data stream (datasets/).
            resumed_fn = dataset_fn
            dataset_fn = lambda ctx: resumed_fn(ctx, start_step=start)  # noqa: E731
        iterator = iter(self.backend.distribute_dataset(dataset_fn))
        if self._loop_fn is None:
            self._loop_fn = self._make_loop()
        self.guard.reset()
        skipped_logged = self.guard.read()[2]

        step = start
        # Seconds inside training calls since the last log line: checkpoints and hooks (evaluation)
        # are excluded from FPS and batch_time.
        interval_seconds, interval_step = 0.0, step
        # SIGTERM/SIGINT (runs/preemption.py): the blocking calls run in a worker thread while this thread
        # waits, so that the signal's handler runs at once and sets stop_requested; the device loop then
        # stops at the next step boundary, every rank after the same step.
        with preemption.stop_hook(self.request_stop, saves="a checkpoint" if self.checkpointer else None):
            while step < cfg.max_steps:
                n = self._next_stop(step) - step
                if n != self._loop_size:
                    self.backend.set_loop_size(n)
                    self._loop_size = n
                began = time.perf_counter()
                preemption.wait_for(self._loop_fn, iterator, tf.constant(n, tf.int64))
                # One read of the device-side results per call (the loop itself returns nothing).
                loss, total = float(self._last_loss.numpy()), float(self._last_total.numpy())
                stopped, stopped_at, skipped, _ = self.guard.read()
                stop_agreed = self.stop_agreed  # the same on every rank: the request rides in the all-reduce
                interval_seconds += time.perf_counter() - began
                step = self.step
                result.final_step, result.loss, result.total_loss = step, loss, total
                result.skipped_steps = skipped
                if stopped:
                    self._raise_nonfinite(stopped_at, skipped)
                at_end = step >= cfg.max_steps
                if step % cfg.save_summary_steps == 0 or at_end or stop_agreed or preemption.requested():
                    seconds = max(interval_seconds, 1e-9)
                    self.log.step(
                        step=step, epoch=cfg.epoch_at(step), fps=cfg.global_batch * (step - interval_step) / seconds,
                        loss=loss, total_loss=total, lr=self.schedule.value(step - 1), batch_time=seconds,
                    )
                    result.log_lines += 1
                    interval_seconds, interval_step = 0.0, step
                    if skipped > skipped_logged:
                        self.log.info(f"--nan_policy=skip_step: {skipped - skipped_logged} steps with a non-finite "
                                      f"loss or gradients were skipped since the last log line ({skipped} in all).")
                        skipped_logged = skipped
                if self.checkpointer and (step % cfg.save_checkpoints_steps == 0 or at_end):
                    preemption.wait_for(self.checkpointer.save, step)
                # A stop request (a signal on any rank): save (unless just saved) and raise TrainingPreempted,
                # every rank alike.
                preemption.stop_if_requested(step, self.backend, self.checkpointer, agreed=stop_agreed)
                for hook in self.hooks:
                    if step % hook.every_steps == 0 or (at_end and hook.at_end):
                        hook.fn(step)
        return result


def _replica_sum(value: float) -> tf.Variable:
    """A scalar each replica writes on its own; reading it outside the step sums the replicas."""
    return tf.Variable(value, dtype=tf.float32, trainable=False,
                       synchronization=tf.VariableSynchronization.ON_READ,
                       aggregation=tf.VariableAggregation.SUM)


class _DeviceLoop:
    """The compiled loop as the trainer calls it: ``loop(iterator, steps)``.

    Before each call it sets the step whose ``total_loss`` is logged (the call's last); with a
    collective watchdog, the call runs under its guard. Anything else (``get_concrete_function``, ...)
    is the ``tf.function``'s own.
    """

    def __init__(self, trainer: Trainer, fn, watchdog) -> None:
        self._trainer = trainer
        self._fn = fn
        self._watchdog = watchdog

    def __call__(self, iterator, steps):
        trainer = self._trainer
        trainer._logged_step.assign(tf.cast(trainer.optimizer.iterations, tf.int64) + tf.cast(steps, tf.int64))
        if self._watchdog is None:
            return self._fn(iterator, steps)
        with self._watchdog.guard("the device loop (training steps)"):
            return self._fn(iterator, steps)

    def __getattr__(self, name):
        return getattr(self._fn, name)


def _apply_reduced_gradients_only(optimizer) -> None:
    """Makes a Keras 3 optimizer apply the gradients it is given, without all-reducing them first.

    Under a strategy with several replicas, Keras 3's TensorFlow optimizer sums the gradients over the
    replicas inside ``apply`` (``TFOptimizer._all_reduce_sum_gradients``,
    ``keras/src/backend/tensorflow/optimizer.py``), with no switch to turn it off (Keras 2 has
    ``experimental_aggregate_gradients=False``). The trainer hands it sums already, and its loss-scale
    optimizer would run that all-reduce inside its own ``cond``: the optimizer (the inner one of a
    loss-scale optimizer) gets the identity instead. Only this trainer applies gradients with it.

    Raises:
        RuntimeError: this Keras has no such method (it changed: the gradients would be summed twice).
    """
    inner = optimizer
    while hasattr(inner, "inner_optimizer"):
        inner = inner.inner_optimizer
    if not callable(getattr(inner, "_all_reduce_sum_gradients", None)):
        raise RuntimeError(f"{type(inner).__name__} has no _all_reduce_sum_gradients: this Keras "
                           f"{KERAS_VERSION} aggregates gradients in a way the trainer does not know, and would "
                           "sum the already reduced gradients again.")
    object.__setattr__(inner, "_all_reduce_sum_gradients", _already_reduced)


def _already_reduced(grads_and_vars):
    return list(grads_and_vars)
