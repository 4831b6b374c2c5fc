"""Preemption: SIGTERM or SIGINT make training save a checkpoint and stop; a second signal stops at once.

Schedulers and spot instances preempt a job with SIGTERM (and SIGKILL some seconds later); Ctrl-C
sends SIGINT. While :func:`handling` is active, the first of these signals only sets a flag: the
trainer finishes the device loop call in progress, agrees with the other ranks that a stop was
asked for (:func:`stop_if_requested`), writes a checkpoint and raises :class:`TrainingPreempted`,
which ``main.py`` turns into exit code :data:`PREEMPTED_EXIT_CODE` and a line that says where the
run resumes. A second signal exits at once with ``128 + signal`` (the checkpoint being written, if
any, is left incomplete and removed when the run restarts; the previous one is intact).

In a multi-process job the launcher forwards the signal to every rank; each rank handles it as
above, and the ranks stop after the same step because they decide together.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from exit_codes import PREEMPTED_EXIT_CODE

__all__ = ["PREEMPTED_EXIT_CODE", "TrainingPreempted", "handling", "request", "requested", "reset",
           "stop_if_requested"]


_state = {"signum": None}


class TrainingPreempted(Exception):
    """Training stopped on a signal after saving ``checkpoint`` (None: checkpoints are off) at ``step``."""

    def __init__(self, step: int, checkpoint: Optional[str], signum: Optional[int] = None) -> None:
        self.step = step
        self.checkpoint = checkpoint
        self.signum = signum
        name = signal.Signals(signum).name if signum else "a stop request"
        if checkpoint:
            where = (f"checkpoint {checkpoint} holds step {step}; run the same command again to resume from it "
                     f"(exit code {PREEMPTED_EXIT_CODE}).")
        else:
            where = (f"no checkpoint was written (--nodo_checkpoint): the progress of this run is lost "
                     f"(exit code {PREEMPTED_EXIT_CODE}).")
        super().__init__(f"training stopped by {name} after step {step}: {where}")


def request(signum: int = signal.SIGTERM) -> None:
    """Asks training to stop after the current device loop call (what the first signal does)."""
    _state["signum"] = signum


def requested() -> bool:
    """Whether this process was asked to stop."""
    return _state["signum"] is not None


def reset() -> None:
    """Forgets a stop request (tests, and a new training run in the same process)."""
    _state["signum"] = None


def _on_signal(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal handler signature
    if requested():
        # Second signal: the user (or scheduler) does not want to wait for the checkpoint.
        os.write(2, f"\n{signal.Signals(signum).name} again: stopping at once, without a checkpoint.\n".encode())
        os._exit(128 + signum)
    request(signum)
    os.write(2, (f"\n{signal.Signals(signum).name}: training stops after the current device loop call and "
                 "saves a checkpoint (send it again to stop at once).\n").encode())


@contextmanager
def handling() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT request a stop instead of ending the process.

    Outside the main thread (signal handlers cannot be set there) the block changes nothing.
    """
    reset()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, _on_signal)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _agreed(backend: Any) -> bool:
    """Whether any rank was asked to stop; every rank gets the same answer (one small collective).

    A signal can reach the ranks between two loop calls of one and during a call of another, so
    each rank's own flag is not enough: ranks that stopped after different steps would wait for each
    other forever.
    """
    if getattr(backend, "world_size", 1) <= 1:
        return requested()
    import tensorflow as tf

    strategy = backend.strategy
    fn = getattr(backend, "_preemption_sum_fn", None)
    if fn is None:
        @tf.function
        def fn(flag):
            return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(tf.identity, args=(flag,)), axis=None)

        backend._preemption_sum_fn = fn
    # Strategies that span the processes sum there; process collectives (NPU) in reduce_sum.
    total = backend.reduce_sum(fn(tf.constant(1 if requested() else 0, tf.int32)))
    return int(total) > 0


def stop_if_requested(step: int, backend: Any, checkpointer: Optional[Any]) -> None:
    """Called by the trainer after each device loop call: saves and raises if a stop was asked for.

    Raises:
        TrainingPreempted: this rank or another one was asked to stop; a checkpoint of ``step``
            exists (unless checkpoints are off).
    """
    if not _agreed(backend):
        return
    path = None
    if checkpointer is not None:
        path = checkpointer.saved_path(step) or checkpointer.save(step)
    print(f"Stopped on request after step {step}" + (f"; checkpoint {path}" if path else ""), file=sys.stderr,
          flush=True)
    raise TrainingPreempted(step, path, _state["signum"])
