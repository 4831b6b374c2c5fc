"""A live progress line on an interactive terminal, between the training log's lines.

The line (``step 1234/187500  epoch 1.0  1520.3 img/s  ETA 3:25:07``) is redrawn in place with a
carriage return about once a second by a background thread that reads the step counter. It is
written only when the stream is a terminal, never into files or CI logs, and it is erased before
every log line so that the log itself stays exactly as the recipe prints it.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Optional, TextIO

__all__ = ["ProgressLine", "format_eta", "progress_line", "wants_progress"]


def wants_progress(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal (and the user did not opt out via CI / TERM=dumb)."""
    isatty = getattr(stream, "isatty", None)
    if not isatty or not isatty():
        return False
    return not os.environ.get("CI") and os.environ.get("TERM") != "dumb"


def format_eta(seconds: float) -> str:
    """``H:MM:SS`` for a duration in seconds; ``?`` when unknown."""
    if seconds != seconds or seconds < 0 or seconds == float("inf"):  # NaN, negative, inf
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressLine:
    """A file-like wrapper of a terminal stream that keeps a progress line below the output.

    Use it as the stream of :class:`training.log.TrainLog`; lines written through it erase the
    progress line first. Start the redraw thread with :meth:`start` (or a ``with`` block).

    Args:
        stream: the terminal.
        read_step: returns the current global step (read from another thread).
        total_steps: the last step, for the ETA.
        global_batch: images per step, for img/s.
        steps_per_epoch: steps in one epoch, for the epoch column.
        interval: seconds between redraws.
    """

    def __init__(self, stream: TextIO, *, read_step: Callable[[], int], total_steps: int, global_batch: int,
                 steps_per_epoch: float, interval: float = 1.0) -> None:
        self.stream = stream
        self.read_step = read_step
        self.total_steps = total_steps
        self.global_batch = global_batch
        self.steps_per_epoch = max(float(steps_per_epoch), 1e-9)
        self.interval = interval
        self._lock = threading.Lock()
        self._shown = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._rate_start: Optional[tuple] = None  # (time, step) the rate is measured from

    # -- file-like interface for TrainLog -----------------------------------------------------------

    def write(self, text: str) -> int:
        with self._lock:
            self._erase()
            return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return True

    # -- the line ---------------------------------------------------------------------------------

    def _erase(self) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self._shown = False

    def render(self, step: int, now: float) -> str:
        """The progress text at ``step`` (img/s and ETA measured since the first reading)."""
        if self._rate_start is None or step < self._rate_start[1]:
            self._rate_start = (now, step)
        t0, s0 = self._rate_start
        elapsed = now - t0
        rate = (step - s0) / elapsed if elapsed > 0 and step > s0 else float("nan")
        eta = (self.total_steps - step) / rate if rate == rate and rate > 0 else float("nan")
        ips = rate * self.global_batch if rate == rate else float("nan")
        ips_text = f"{ips:.1f} img/s" if ips == ips else "- img/s"
        return (f"step {step}/{self.total_steps}  epoch {step / self.steps_per_epoch:.1f}  {ips_text}  "
                f"ETA {format_eta(eta)}")

    def draw(self) -> None:
        """Redraws the line now."""
        try:
            step = int(self.read_step())
        except Exception:  # the counter may be unreadable while the runtime shuts down
            return
        text = self.render(step, time.monotonic())
        with self._lock:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self._shown = True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.draw()

    def start(self) -> ProgressLine:
        """Starts the redraw thread (a daemon: it never keeps the process alive)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="progress-line", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stops redrawing and erases the line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self._erase()
            self.stream.flush()

    def __enter__(self) -> ProgressLine:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def progress_line(stream: TextIO, **kwargs) -> Optional[ProgressLine]:
    """A :class:`ProgressLine` on ``stream`` if it is an interactive terminal, else None.

    Args:
        stream: where the log is printed (``sys.stdout``).
        **kwargs: see :class:`ProgressLine`.
    """
    return ProgressLine(stream, **kwargs) if wants_progress(stream) else None
