"""Preemption: SIGTERM or SIGINT stop training at the next step boundary and save; a second signal stops at once.

Schedulers and spot instances preempt a job with SIGTERM (and SIGKILL some seconds later); Ctrl-C
sends SIGINT. While :func:`handling` is active, the first of these signals only asks for a stop:

* Python runs signal handlers in the main thread between two bytecodes, so a long ``tf.function``
  call (a device loop of up to ``--iterations_per_loop`` steps) would hold the handler back. The
  trainer therefore runs its blocking calls through :func:`wait_for`: the call runs in a worker
  thread while the main thread waits on it, and the handler runs at once;
* the handler calls the trainer's stop request (:func:`stop_hook`: a variable the device loop reads
  before each step, which travels with the step's all-reduce, so every rank stops after the same
  step), and the device loop returns at the next step boundary (a loop sunk onto an NPU runs its
  remaining iterations as no-ops: there the bound is one loop call);
* the trainer then agrees with the other ranks that a stop was asked for (:func:`stop_if_requested`,
  one small collective), writes a checkpoint and raises :class:`TrainingPreempted`, which ``main.py``
  turns into exit code :data:`PREEMPTED_EXIT_CODE` and a line that says what was saved.

A second signal exits at once with :data:`STOPPED_AT_ONCE_EXIT_CODE` (the checkpoint being written,
if any, is left incomplete and removed when the run restarts; the previous one is intact).

In a multi-process job the launcher forwards the signal to every rank; each rank handles it as
above, and the ranks stop after the same step because the request rides in the step's all-reduce.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Optional

from exit_codes import PREEMPTED_EXIT_CODE, STOPPED_AT_ONCE_EXIT_CODE

__all__ = ["PREEMPTED_EXIT_CODE", "STOPPED_AT_ONCE_EXIT_CODE", "TrainingPreempted", "handling", "request", "requested",
           "reset", "stop_hook", "stop_if_requested", "wait_for"]


_state: Dict[str, Any] = {"signum": None, "on_stop": None, "stop_sent": False, "saves": None, "waiting": False}

# How often the waiting main thread wakes up when no signal comes (a signal wakes it at once).
_POLL_S = 0.5


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
            where = (f"nothing was saved (--nodo_checkpoint): the steps of this run are lost; running the same "
                     f"command again starts afresh (exit code {PREEMPTED_EXIT_CODE}).")
        super().__init__(f"training stopped by {name} after step {step}: {where}")


def request(signum: int = signal.SIGTERM) -> None:
    """Asks training to stop at the next step boundary (what the first signal does)."""
    _state["signum"] = signum
    _send_stop()


def requested() -> bool:
    """Whether this process was asked to stop."""
    return _state["signum"] is not None


def reset() -> None:
    """Forgets a stop request (tests, and a new training run in the same process)."""
    _state["signum"] = None
    _state["stop_sent"] = False


def _send_stop() -> None:
    """Passes a stop request on to the trainer (once), if one is listening (:func:`stop_hook`)."""
    callback = _state["on_stop"]
    if callback is not None and not _state["stop_sent"]:
        _state["stop_sent"] = True
        callback()


def _on_signal(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal handler signature
    name = signal.Signals(signum).name
    if requested():
        # Second signal: the user (or scheduler) does not want to wait for the step boundary and the save.
        os.write(2, (f"\n{name}, a second stop signal: stopping at once, saving nothing (exit code "
                     f"{STOPPED_AT_ONCE_EXIT_CODE}); "
                     "run the same command again to resume from the newest complete checkpoint.\n").encode())
        os._exit(STOPPED_AT_ONCE_EXIT_CODE)
    saves = _state["saves"]
    what = f"saves {saves}" if saves else "saves nothing (--nodo_checkpoint)"
    os.write(2, (f"\n{name}: training stops at the next step boundary and {what} (send it again to stop at "
                 "once).\n").encode())
    _state["signum"] = signum
    if _state["waiting"]:
        # The main thread only waits for a worker thread (wait_for): the trainer's variable can be set
        # from here at once, no TensorFlow call of the main thread is interrupted.
        _send_stop()


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


@contextmanager
def stop_hook(request_stop: Callable[[], None], *, saves: Optional[str]) -> Iterator[None]:
    """Within the block, a stop request (a signal) also calls ``request_stop``, once.

    Args:
        request_stop: makes the device loop stop at the next step boundary (``Trainer.request_stop``).
        saves: what a stop saves, for the signal's message (``"a checkpoint"``); None: nothing.
    """
    previous = (_state["on_stop"], _state["saves"])
    _state["on_stop"], _state["saves"] = request_stop, saves
    try:
        yield
    finally:
        _state["on_stop"], _state["saves"] = previous


def wait_for(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker thread while the main thread waits, so that signal handlers run at once.

    A request made before the call (a signal between two calls) is passed on to the trainer first. Outside
    the main thread, or outside :func:`handling`'s block, ``fn`` simply runs here.

    Returns:
        What ``fn`` returns.

    Raises:
        Whatever ``fn`` raises.
    """
    if requested():
        _send_stop()
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not _on_signal:
        return fn(*args)
    outcome: Dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread as it is
            outcome["error"] = e

    worker = threading.Thread(target=work, name="training-call", daemon=True)
    _state["waiting"] = True
    try:
        worker.start()
        while worker.is_alive():
            worker.join(_POLL_S)  # interrupted by a signal: its handler runs here, then the wait goes on
            if requested():
                _send_stop()
    finally:
        _state["waiting"] = False
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


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


def stop_if_requested(step: int, backend: Any, checkpointer: Optional[Any], *, agreed: bool = False) -> None:
    """Called by the trainer after each device loop call: saves and raises if a stop was asked for.

    Args:
        step: the step training stopped after.
        backend: the device backend (its collectives decide for all ranks).
        checkpointer: writes the checkpoint; None when checkpoints are off.
        agreed: every rank already knows that a stop was asked for (the device loop stopped on a request,
            which travels with each step's all-reduce): no collective is needed.

    Raises:
        TrainingPreempted: this rank or another one was asked to stop; a checkpoint of ``step``
            exists (unless checkpoints are off).
    """
    if not (agreed or _agreed(backend)):
        return
    path = None
    if checkpointer is not None:
        path = checkpointer.saved_path(step) or wait_for(checkpointer.save, step)
    raise TrainingPreempted(step, path, _state["signum"])  # main.py prints its one line
