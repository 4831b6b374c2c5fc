"""Learning-rate schedules: a warm-up followed by a decay, evaluated per epoch or per step.

The Ascend recipe's schedule (docs/reference.md), the defaults: step ``i`` (0-based) uses
``lr * (i + 1) / warmup_steps`` while ``i < warmup_steps``; afterwards ``epoch = i // steps_per_epoch``
and the decay is evaluated per epoch from epoch 0, e.g. cosine annealing
``lr * (1 + cos(pi * epoch / max_epochs)) / 2``.

torchvision's ``references/classification`` schedule is the same pieces put together differently:
the scheduler steps once per epoch (``unit="epoch"``); the warm-up is ``LinearLR`` (factor from
``warmup_start_factor`` to 1) or ``ConstantLR`` (factor ``warmup_start_factor``) over the warm-up
epochs; the decay, joined by ``SequentialLR``, counts its epochs from the end of the warm-up
(``decay_after_warmup=True``; cosine over ``max_epochs - warmup_epochs``). With
``--lr_warmup_decay`` unset the warm-up is the Ascend one above.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import tensorflow as tf

from keras_compat import keras
from registry import SCHEDULES
from run_config import ScheduleConfig

WARMUP_METHODS = ("linear", "constant")
UNITS = ("epoch", "step")

__all__ = ["UNITS", "WARMUP_METHODS", "WarmupDecaySchedule", "constant", "cosine", "cosine_restarts", "exponential",
           "piecewise", "polynomial", "schedule_from_config"]


def schedule_from_config(config: ScheduleConfig, lr: float, steps_per_epoch: int) -> WarmupDecaySchedule:
    """The run's schedule: ``config``'s warm-up and decay around the effective ``lr`` (already scaled to the
    run's global batch, :func:`run_config.effective_lr`)."""
    return WarmupDecaySchedule(
        lr, steps_per_epoch, warmup_epochs=config.warmup_epochs, max_epochs=config.max_epochs,
        kind=config.lr_schedule, boundaries=config.lr_decay_boundaries, decay_factor=config.lr_decay_factor,
        decay_epochs=config.lr_decay_epochs, warmup_method=config.lr_warmup_method,
        warmup_start_factor=config.lr_warmup_decay, lr_min=config.lr_min, power=config.lr_power,
        unit=config.lr_schedule_unit, decay_after_warmup=config.lr_decay_after_warmup,
        decay_steps=config.lr_decay_steps, restart_epochs=config.lr_restart_epochs,
        restart_mult=config.lr_restart_mult)


class WarmupDecaySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Warm-up, then cosine / constant / piecewise / exponential / polynomial decay.

    Args:
        lr: peak learning rate (for the global batch).
        steps_per_epoch: optimizer steps in one epoch (``num_train_images // global_batch``).
        warmup_epochs: epochs of warm-up (may be fractional; 0 disables warm-up).
        max_epochs: cosine and polynomial reach ``lr_min`` at this epoch.
        kind: a decay registered in ``registry.SCHEDULES`` (``training/__init__.py``): cosine, constant,
            piecewise, exponential, polynomial, cosine_restarts.
        boundaries: piecewise: epochs at which the lr is multiplied by ``decay_factor``.
        decay_factor: piecewise / exponential multiplier (torchvision's ``--lr-gamma``).
        decay_epochs: exponential: epochs between two multiplications by ``decay_factor``
            (torchvision's StepLR ``--lr-step-size``; 1 gives its ExponentialLR).
        warmup_method: ``linear`` or ``constant`` (one of ``WARMUP_METHODS``).
        warmup_start_factor: the warm-up's first factor of ``lr`` (torchvision's ``--lr-warmup-decay``);
            None: the Ascend warm-up ``(i + 1) / warmup_steps`` per step (linear only).
        lr_min: where cosine and polynomial end.
        power: polynomial: ``(1 - t / T) ** power``.
        unit: ``epoch``: the schedule changes at epoch boundaries (torchvision's ``scheduler.step()`` per
            epoch); ``step``: at every step (fractional epochs). The Ascend warm-up is per step either way.
        decay_after_warmup: the decay's clock starts at the end of the warm-up (torchvision's
            ``SequentialLR``) instead of at step 0.
        decay_steps: exponential: steps between decays, instead of ``decay_epochs``.
        restart_epochs: cosine_restarts: epochs of the first cosine cycle (torch's ``T_0``).
        restart_mult: cosine_restarts: each cycle is this many times longer than the one before (``T_mult``).
    """

    def __init__(
        self,
        lr: float,
        steps_per_epoch: int,
        warmup_epochs: float = 0.0,
        max_epochs: float = 1.0,
        kind: str = "cosine",
        boundaries: Sequence[float] = (),
        decay_factor: float = 0.1,
        decay_epochs: float = 1.0,
        *,
        warmup_method: str = "linear",
        warmup_start_factor: Optional[float] = None,
        lr_min: float = 0.0,
        power: float = 1.0,
        unit: str = "epoch",
        decay_after_warmup: bool = False,
        decay_steps: Optional[int] = None,
        restart_epochs: float = 10.0,
        restart_mult: float = 1.0,
    ) -> None:
        super().__init__()
        if kind not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(SCHEDULES.list())}, got {kind!r}")
        if warmup_method not in WARMUP_METHODS:
            raise ValueError(f"lr_warmup_method must be one of {WARMUP_METHODS}, got {warmup_method!r}")
        if unit not in UNITS:
            raise ValueError(f"lr_schedule_unit must be one of {UNITS}, got {unit!r}")
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
        if warmup_method == "constant" and warmup_start_factor is None:
            raise ValueError("--lr_warmup_method=constant needs --lr_warmup_decay (the factor of the lr during "
                             "warm-up, e.g. 0.01 as torchvision's default).")
        if decay_steps is not None and decay_steps < 1:
            raise ValueError(f"lr_decay_steps must be at least 1, got {decay_steps}")
        self.lr = float(lr)
        self.steps_per_epoch = int(steps_per_epoch)
        self.warmup_epochs = float(warmup_epochs)
        self.warmup_steps = int(self.warmup_epochs * self.steps_per_epoch)
        self.max_epochs = float(max_epochs)
        self.kind = kind
        self.boundaries = tuple(float(b) for b in boundaries)
        self.decay_factor = float(decay_factor)
        self.decay_epochs = float(decay_epochs)
        self.warmup_method = warmup_method
        self.warmup_start_factor = None if warmup_start_factor is None else float(warmup_start_factor)
        self.lr_min = float(lr_min)
        self.power = float(power)
        self.unit = unit
        self.decay_after_warmup = bool(decay_after_warmup)
        self.decay_steps = None if decay_steps is None else int(decay_steps)
        self.restart_epochs = float(restart_epochs)
        self.restart_mult = float(restart_mult)
        self._decay = SCHEDULES.get(kind)

    def _decayed(self, step, clock):
        """The decay's lr at ``clock`` epochs of the decay (``step``: the schedule's step, for ``decay_steps``)."""
        return self._decay(self, step, clock)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        spe = float(self.steps_per_epoch)
        # The schedule's clock: the epoch (at the epoch's start for per-epoch schedules) and its step.
        epoch = tf.floor(step / spe) if self.unit == "epoch" else step / spe
        at = tf.floor(step / spe) * spe if self.unit == "epoch" else step
        clock = epoch - (self.warmup_epochs if self.decay_after_warmup else 0.0)
        decayed = self._decayed(at, clock)
        if self.warmup_steps <= 0:
            return decayed
        lr = tf.constant(self.lr, tf.float32)
        start = self.warmup_start_factor
        if start is None:  # the Ascend recipe's warm-up, per step
            warm = lr * (step + 1.0) / float(self.warmup_steps)
        elif self.warmup_method == "constant":
            warm = lr * start + 0.0 * step
        else:  # torchvision's LinearLR: start -> 1 over the warm-up, reaching 1 at its end
            warm = lr * (start + (1.0 - start) * epoch / self.warmup_epochs)
        return tf.where(step < float(self.warmup_steps), warm, decayed)

    def value(self, step: int) -> float:
        """The learning rate of (0-based) step ``step`` as a Python float."""
        return float(self(tf.constant(step, tf.int64)))

    def get_config(self):
        return dict(
            lr=self.lr, steps_per_epoch=self.steps_per_epoch, warmup_epochs=self.warmup_epochs,
            max_epochs=self.max_epochs, kind=self.kind, boundaries=list(self.boundaries),
            decay_factor=self.decay_factor, decay_epochs=self.decay_epochs, warmup_method=self.warmup_method,
            warmup_start_factor=self.warmup_start_factor, lr_min=self.lr_min, power=self.power, unit=self.unit,
            decay_after_warmup=self.decay_after_warmup, decay_steps=self.decay_steps,
            restart_epochs=self.restart_epochs, restart_mult=self.restart_mult,
        )


# -- the registered decays: (schedule, step, clock in epochs of the decay) -> lr ---------------------


def _span(s: WarmupDecaySchedule) -> float:
    return max(s.max_epochs - (s.warmup_epochs if s.decay_after_warmup else 0.0), 1e-9)


def cosine(s: WarmupDecaySchedule, step, clock):
    """Cosine annealing from lr to lr_min over the decay's epochs (the Ascend recipe; CosineAnnealingLR)."""
    done = tf.clip_by_value(clock, 0.0, _span(s)) / _span(s)
    return s.lr_min + (s.lr - s.lr_min) * 0.5 * (1.0 + tf.cos(math.pi * done))


def polynomial(s: WarmupDecaySchedule, step, clock):
    """``lr_min + (lr - lr_min) (1 - t/T) ** power`` (torchvision's PolynomialLR with lr_min 0)."""
    done = tf.clip_by_value(clock, 0.0, _span(s)) / _span(s)
    return s.lr_min + (s.lr - s.lr_min) * tf.pow(1.0 - done, s.power)


def piecewise(s: WarmupDecaySchedule, step, clock):
    """lr times decay_factor at each boundary epoch passed (torchvision's MultiStepLR; StepLR as boundaries)."""
    drops = tf.add_n([tf.cast(clock >= b, tf.float32) for b in s.boundaries] + [0.0 * clock])
    return s.lr * tf.pow(s.decay_factor, drops)


def exponential(s: WarmupDecaySchedule, step, clock):
    """lr times decay_factor every decay_epochs epochs, or every decay_steps steps (StepLR, ExponentialLR)."""
    if s.decay_steps is not None:
        offset_steps = float(s.warmup_steps) if s.decay_after_warmup else 0.0
        count = tf.floor(tf.maximum(step - offset_steps, 0.0) / float(s.decay_steps))
    else:
        # A quotient within 1e-5 of an integer counts as that integer: an epoch that is a multiple of a decimal
        # decay_epochs (timm's --decay-epochs 2.4: epoch 36) decays there, as in float64, not one epoch later
        # because float32's 2.4 is slightly above it.
        count = tf.floor(tf.maximum(clock, 0.0) / s.decay_epochs + 1e-5)
    return s.lr * tf.pow(s.decay_factor, count)


def constant(s: WarmupDecaySchedule, step, clock):
    """The peak lr throughout."""
    return s.lr + 0.0 * clock


def cosine_restarts(s: WarmupDecaySchedule, step, clock):
    """Cosine annealing with warm restarts (Loshchilov & Hutter, SGDR, arXiv:1608.03983; torch's
    CosineAnnealingWarmRestarts): cycles of ``restart_epochs x restart_mult**k`` epochs, each from lr to lr_min."""
    t = tf.maximum(clock, 0.0)
    t0, mult = s.restart_epochs, s.restart_mult
    if mult == 1.0:
        cycle_len = tf.constant(t0, tf.float32)
        t_cur = t - tf.floor(t / t0) * t0
    else:
        # Cycle k starts at t0 (mult**k - 1) / (mult - 1).
        k = tf.floor(tf.math.log(t * (mult - 1.0) / t0 + 1.0) / math.log(mult))
        start = t0 * (tf.pow(mult, k) - 1.0) / (mult - 1.0)
        cycle_len = t0 * tf.pow(mult, k)
        t_cur = t - start
    return s.lr_min + (s.lr - s.lr_min) * 0.5 * (1.0 + tf.cos(math.pi * t_cur / cycle_len))
