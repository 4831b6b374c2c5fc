"""``--collective_timeout_s``: one watchdog thread per process instead of a timer thread per collective.

Why not TensorFlow's own option. ``CommunicationOptions(timeout_seconds=...)`` arms a timer for every
collective that runs: ``BaseCollectiveExecutor::CompleteParamsAsync`` and ``::ExecuteAsync``
(``tensorflow/core/common_runtime/base_collective_executor.cc``) each call
``SchedNonBlockingClosureAfter``, which on Linux is ``PosixEnv::SchedClosureAfter``
(``third_party/xla/xla/tsl/platform/default/env.cc``): a new detached ``std::thread`` that sleeps for
the whole timeout before it checks anything (the source says so: "TODO(xldrx): Share the timeout
watchdog thread among collectives"). Measured here with TensorFlow 2.21, two workers over loopback and a
60 s timeout: 300 all-reduces left about 600 more OS threads in each process, each alive for the full
minute; ``threading.active_count()`` stays at 1 throughout, because they are not Python threads. At
10 steps per second, a few gradient packs per step and an 1800 s timeout that is some 10^5 sleeping
threads per process. ``tests/test_collectives.py`` counts them.

What this module does instead: one daemon thread per process. A guarded piece of work (a device loop
call of the trainer, an agreement collective of the backend) arms a deadline ``timeout_s`` ahead;
every finished training step moves it forward (:meth:`CollectiveWatchdog.tick`, a host callback the
trainer puts at the end of each step when a watchdog is set). When the deadline passes, the watchdog
logs which rank waited on what and aborts the process's collectives with
``context.abort_collective_ops`` (the call ``MultiWorkerMirroredStrategy``'s own peer health check
makes when a peer stops answering), so the blocked step fails at once and the guarded call raises
:class:`CollectiveTimeoutError`. A process still stuck ``grace_s`` later exits with status 1, so the
launcher (or the cluster's scheduler) sees it.

The limit therefore bounds the time between two finished steps (the first step of a run includes its
tracing and compilation), not each collective separately; TensorFlow's peer health check (every 30 s)
still detects peers that died.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from absl import logging

__all__ = ["CollectiveTimeoutError", "CollectiveWatchdog"]


class CollectiveTimeoutError(RuntimeError, ValueError):
    """A guarded call made no progress for ``--collective_timeout_s``; its collectives were aborted.

    A ValueError too, so that ``main.py`` reports it in one line.
    """


def _abort_collectives(message: str) -> None:
    import tensorflow as tf
    from tensorflow.python.eager import context

    context.context().abort_collective_ops(tf.errors.DEADLINE_EXCEEDED, message)


def _exit_now(message: str) -> None:
    os.write(2, (message + "\n").encode())
    os._exit(1)


class CollectiveWatchdog:
    """Aborts this process's collectives when guarded work makes no progress for ``timeout_s``.

    Args:
        timeout_s: seconds without a finished step (or a finished guarded call) before it fires.
        name: who this process is, for the messages (``rank 1 of 2``).
        grace_s: seconds after the abort before the process exits if the guarded call is still stuck
            (default: ``timeout_s``, at most 60).
        abort: called with the message when the deadline passes (default: abort TensorFlow's
            collectives).
        exit_process: called with the message when the grace period passes too (default: exit 1).
    """

    def __init__(self, timeout_s: float, *, name: str = "this process", grace_s: Optional[float] = None,
                 abort: Callable[[str], None] = _abort_collectives,
                 exit_process: Callable[[str], None] = _exit_now) -> None:
        if timeout_s <= 0:
            raise ValueError(f"--collective_timeout_s={timeout_s:g}: a watchdog needs a positive limit.")
        self.timeout_s = float(timeout_s)
        self.grace_s = float(min(self.timeout_s, 60.0) if grace_s is None else grace_s)
        self.name = name
        self._abort = abort
        self._exit = exit_process
        self._cv = threading.Condition()
        self._depth = 0  # guarded calls in progress (nested guards share one deadline)
        self._what = ""
        self._deadline: Optional[float] = None
        self._fired: Optional[str] = None
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        self.ticks = 0

    @property
    def fired(self) -> Optional[str]:
        """The message of the time the watchdog fired, or None."""
        return self._fired

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="collective-watchdog", daemon=True)
            self._thread.start()

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Arms the deadline around ``what`` (a blocking call that runs collectives).

        Raises:
            CollectiveTimeoutError: the call failed after the watchdog aborted its collectives.
        """
        with self._cv:
            if self._fired:
                raise CollectiveTimeoutError(self._fired)
            self._start()
            self._depth += 1
            if self._depth == 1:
                self._what = what
                self._deadline = time.monotonic() + self.timeout_s
                self._cv.notify_all()
        try:
            yield
        except Exception as e:
            if self._fired:
                raise CollectiveTimeoutError(self._fired) from e
            raise
        finally:
            with self._cv:
                self._depth -= 1
                if self._depth == 0:
                    self._deadline = None
                    self._cv.notify_all()

    def tick(self, step=None):
        """A step finished: the deadline moves ``timeout_s`` ahead. Returns ``step`` (a graph callback)."""
        with self._cv:
            self.ticks += 1
            if self._deadline is not None:
                self._deadline = time.monotonic() + self.timeout_s
        return step

    def close(self) -> None:
        """Stops the thread (the process is done with collectives)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        with self._cv:
            while not self._closed:
                if self._deadline is None:
                    self._cv.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cv.wait(left)
                    continue
                self._fire_locked()
                return

    def _fire_locked(self) -> None:
        what = self._what
        self._fired = (
            f"{self.name}: {what} made no progress for {self.timeout_s:g} s (--collective_timeout_s): a peer "
            "rank stopped or is stuck, so this rank's collectives were aborted. Read the other ranks' logs for "
            "the cause; the run resumes from its last checkpoint.")
        logging.error("%s", self._fired)
        self._cv.release()
        try:
            self._abort(self._fired)
        except Exception as e:  # noqa: BLE001 - the exit below still ends a stuck process
            logging.error("aborting the collectives failed: %s", e)
        finally:
            self._cv.acquire()
        deadline = time.monotonic() + self.grace_s
        while self._depth > 0 and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                self._exit(f"{self._fired} The process was still blocked {self.grace_s:g} s after the abort: "
                           "exiting.")
                return
            self._cv.wait(left)
