"""The interface every device backend implements.

A backend owns everything device-specific: setting the device up before any model exists, the
``tf.distribute.Strategy`` replicas run under, how a dataset reaches the replicas, and, for
adapters without a strategy (Ascend's ``npu_device``), how gradients are averaged across
processes. The trainer only talks to this interface.
"""

from __future__ import annotations

import abc
from typing import Callable, List, Optional, Sequence, Tuple

import tensorflow as tf

from backends.precision import for_model
from run_config import RunConfig

__all__ = ["Backend"]


class Backend(abc.ABC):
    """One device family (CPU, GPU, NPU, ...).

    Two ways of distributing are supported behind the same methods:

    * a ``tf.distribute.Strategy`` with several replicas in one or more processes
      (``num_replicas`` > 1, :meth:`reduce_gradients` is the identity, the optimizer all-reduces);
    * one device per process with an explicit gradient reducer (the NPU adapter): the strategy is
      TensorFlow's default one, :meth:`reduce_gradients` averages across ranks and
      :meth:`broadcast_variables` copies rank 0's initial values to every rank.

    Args:
        rank_size: number of devices (replicas) that train together.
        precision: ``fp32``, ``bf16``, ``fp16``, or ``auto`` (:meth:`resolve_precision` picks one).
    """

    name = "base"

    def __init__(self, *, rank_size: int = 1, precision: str = "fp32") -> None:
        self.rank_size = int(rank_size)
        self.precision = precision
        self._strategy: Optional[tf.distribute.Strategy] = None

    @classmethod
    def from_config(cls, config: RunConfig) -> Backend:
        """Builds the backend from the run's configuration (its ``distribution``, ``precision`` and, for
        NPUs, ``npu`` settings; a plugin backend reads what it needs)."""
        return cls(rank_size=config.distribution.rank_size, precision=config.precision.precision)

    # -- process management ---------------------------------------------------------------------

    def maybe_launch(self, argv: Sequence[str]) -> Optional[int]:
        """Starts worker processes if this invocation is a launcher.

        Returns:
            None when this process should train itself; otherwise the exit code of the launched
            job (the caller exits with it).
        """
        return None

    # -- device set-up ----------------------------------------------------------------------------

    @abc.abstractmethod
    def setup(self) -> None:
        """Configures devices; runs before any model, optimizer or dataset is built."""

    @abc.abstractmethod
    def create_strategy(self) -> tf.distribute.Strategy:
        """Returns the strategy replicas run under (called once, after :meth:`setup`)."""

    @property
    def strategy(self) -> tf.distribute.Strategy:
        if self._strategy is None:
            self._strategy = self.create_strategy()
        return self._strategy

    def scope(self):
        """Context in which models and optimizers must be created."""
        return self.strategy.scope()

    # -- topology -----------------------------------------------------------------------------------

    @property
    def num_replicas(self) -> int:
        """Replicas whose gradients are averaged each step (the global batch is per-replica x this)."""
        return self.strategy.num_replicas_in_sync

    @property
    def rank(self) -> int:
        """This process's index among the training processes."""
        return 0

    @property
    def world_size(self) -> int:
        """Number of training processes."""
        return 1

    @property
    def is_chief(self) -> bool:
        """Whether this process writes checkpoints and summaries."""
        return self.rank == 0

    # -- data -----------------------------------------------------------------------------------------

    def distribute_dataset(self, dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset]):
        """Makes the per-replica datasets from ``dataset_fn(input_context)``.

        The input context tells the function this pipeline's shard and its per-replica batch size.
        """
        return self.strategy.distribute_datasets_from_function(dataset_fn)

    # -- hooks for strategy-less adapters -----------------------------------------------------

    def reduce_gradients(self, grads: List[tf.Tensor]) -> List[tf.Tensor]:
        """Averages gradients across processes; the identity under a tf.distribute strategy."""
        return grads

    def broadcast_variables(self, variables: Sequence[tf.Variable]) -> None:
        """Copies rank 0's values into every rank's variables (strategies do this themselves)."""

    def reduce_sum(self, value: tf.Tensor) -> tf.Tensor:
        """Sums a tensor (e.g. evaluation counts) across processes; identity on one process."""
        return value

    def set_loop_size(self, iterations: int) -> None:
        """Tells the device how many steps one ``tf.function`` call runs (NPU loop sinking)."""

    def wrap_optimizer(self, optimizer):
        """Device-specific optimizer wrapping (e.g. the adapter's loss scaling)."""
        return optimizer

    def assert_same_on_all_ranks(self, what: str, value: float, hint: str = "") -> None:
        """Raises ValueError on every rank if ``value`` is not the same on all ranks.

        Args:
            what: what the value is, for the message (e.g. "the step training starts from").
            value: this rank's value.
            hint: how to fix a mismatch.
        """

    def finish(self) -> None:
        """Runs once the mode has succeeded, just before the process exits.

        Multi-process backends wait here for every rank, so that no rank exits while the others
        still need it (its peers would report it as failed).
        """

    @property
    def jit_compile(self) -> bool:
        """Compile each replica's forward and backward pass with XLA (``--xla`` where a backend offers it)."""
        return bool(getattr(self, "xla", False))

    def auto_precision(self) -> Tuple[str, str]:
        """What ``--precision=auto`` means on this backend's devices, and why (call after :meth:`setup`)."""
        return "fp32", "no faster precision known for this device"

    def resolve_precision(self, *, model: str = "", fp32_faster_on: Sequence[str] = ()) -> str:
        """Replaces ``auto`` by :meth:`auto_precision`'s choice for this model; returns a log line saying what
        and why.

        Args:
            model: the model's name, for the log line.
            fp32_faster_on: its recipe's kinds of backend where it measured faster in fp32 than in mixed
                precision (``ModelRecipe.fp32_faster_on``): ``auto`` picks fp32 there.

        Calling it again returns the same line.
        """
        if self.precision == "auto":
            choice, reason = self.auto_precision()
            self.precision, reason = for_model(choice, reason, device=self.name, model=model or "this model",
                                               fp32_faster_on=fp32_faster_on)
            self._precision_note = f"Precision: {self.precision} (--precision=auto: {reason})"
        return getattr(self, "_precision_note", f"Precision: {self.precision} (--precision={self.precision})")

    #: Kinds of layers that compute in float32 under a mixed policy on this device, because its 16-bit kernels
    #: for them are slower than its 32-bit ones (keras_compat.set_precision_policy; bench/RESULTS.md).
    float32_layers: Tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for the log: backend, devices, replicas."""
        return f"backend={self.name} replicas={self.num_replicas} precision={self.precision}"
