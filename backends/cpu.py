"""CPU backend: one CPU device under ``tf.distribute.OneDeviceStrategy``."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
from absl import flags, logging

from backends.base import Backend
from registry import BACKENDS

flags.DEFINE_integer("intra_op_threads", 0, "Threads inside one op (0: TensorFlow's choice, all cores).",
                     lower_bound=0)
flags.DEFINE_integer("inter_op_threads", 0, "Ops run concurrently (0: TensorFlow's choice).", lower_bound=0)


@BACKENDS.register("cpu", description="The host CPU, one replica (OneDeviceStrategy).")
class CPUBackend(Backend):
    """Trains on the host CPU.

    Args:
        intra_op_threads: threads inside one op; 0 leaves TensorFlow's default (all cores).
        inter_op_threads: ops that run concurrently; 0 leaves TensorFlow's default.
        **kwargs: see :class:`backends.base.Backend`.
    """

    name = "cpu"

    def __init__(self, *, intra_op_threads: int = 0, inter_op_threads: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads

    @classmethod
    def from_flags(cls, flags_obj: Any) -> CPUBackend:
        return cls(
            rank_size=flags_obj.rank_size, precision=flags_obj.precision,
            intra_op_threads=flags_obj.intra_op_threads, inter_op_threads=flags_obj.inter_op_threads,
        )

    def setup(self) -> None:
        if self.rank_size != 1:
            raise ValueError(
                f"--rank_size={self.rank_size}: the cpu backend trains one replica in this process; "
                "use --rank_size=1."
            )
        try:
            if self.intra_op_threads:
                tf.config.threading.set_intra_op_parallelism_threads(self.intra_op_threads)
            if self.inter_op_threads:
                tf.config.threading.set_inter_op_parallelism_threads(self.inter_op_threads)
        except RuntimeError as e:  # TensorFlow's runtime was already initialised.
            logging.warning("thread settings not applied: %s", e)

    def create_strategy(self) -> tf.distribute.Strategy:
        return tf.distribute.OneDeviceStrategy("/cpu:0")
