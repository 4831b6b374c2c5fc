"""The recipe's training log: one fixed-format line per interval, on stdout and in a file.

Format (docs/reference.md, "Outputs"):
``step:%6i, epoch:%5.1f, FPS:%7.1f, loss:%6.3f, total_loss:%6.3f, lr:%7.5f, batch_time:%3.6f``
where FPS is global images per second over the interval and batch_time its length in seconds.
A JSON line with the same numbers (and units) goes to ``metrics.jsonl`` beside the log.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Callable, Dict, List, Optional, TextIO

LINE_FORMAT = "step:%6i, epoch:%5.1f, FPS:%7.1f, loss:%6.3f, total_loss:%6.3f, lr:%7.5f, batch_time:%3.6f"

# Parses exactly what LINE_FORMAT prints (tests and tools use it).
LINE_PATTERN = re.compile(
    r"^step:(?P<step>[ \d]{6,}), epoch:(?P<epoch>[ \d.-]{5,}), FPS:(?P<fps>[ \d.]{7,}), "
    r"loss:(?P<loss>[ \d.naif-]{6,}), total_loss:(?P<total_loss>[ \d.naif-]{6,}), "
    r"lr:(?P<lr>[ \d.-]{7,}), batch_time:(?P<batch_time>\d+\.\d{6})$"
)

__all__ = ["LINE_FORMAT", "LINE_PATTERN", "TrainLog", "format_line", "parse_line"]


def format_line(step: int, epoch: float, fps: float, loss: float, total_loss: float, lr: float,
                batch_time: float) -> str:
    """One log line in the recipe's format."""
    return LINE_FORMAT % (step, epoch, fps, loss, total_loss, lr, batch_time)


def parse_line(line: str) -> Optional[Dict[str, float]]:
    """The numbers of a log line, or None if the line is not in the exact format."""
    match = LINE_PATTERN.match(line.rstrip("\n"))
    if not match:
        return None
    values = {k: float(v) for k, v in match.groupdict().items()}
    values["step"] = int(values["step"])
    return values


class TrainLog:
    """Writes log lines to stdout and ``<log_dir>/<log_name>``, metrics to ``metrics.jsonl``.

    Args:
        log_dir: directory of the log file; created if missing. None: stdout only.
        log_name: file name of the text log.
        prefix: text put before each stdout line (e.g. ``[rank 1] ``); not written to files.
        write_files: False on processes that must not write (non-chief ranks sharing a folder).
        stream: where the lines are printed.
    """

    def __init__(self, log_dir: Optional[str], log_name: str = "training.log", *, prefix: str = "",
                 write_files: bool = True, stream: TextIO = None) -> None:
        self.prefix = prefix
        self.stream = stream or sys.stdout
        self._text = self._jsonl = None
        self._listeners: List[Callable[[Dict], None]] = []
        self.log_path = os.path.join(log_dir, log_name) if log_dir else None
        if log_dir and write_files:
            os.makedirs(log_dir, exist_ok=True)
            self._text = open(self.log_path, "a", buffering=1)
            self._jsonl = open(os.path.join(log_dir, "metrics.jsonl"), "a", buffering=1)

    def info(self, message: str) -> None:
        """A free-form line (configuration, resume notices) on stdout and in the text log."""
        self._emit(message)

    def detail(self, message: str) -> None:
        """A line for the text log only (the full configuration table): the console stays short."""
        if self._text:
            self._text.write(message + "\n")

    def step(self, *, step: int, epoch: float, fps: float, loss: float, total_loss: float, lr: float,
             batch_time: float) -> str:
        """Writes the fixed-format line for one interval and returns it."""
        line = format_line(step, epoch, fps, loss, total_loss, lr, batch_time)
        self._emit(line)
        record = dict(type="train", step=step, epoch=round(epoch, 4), images_per_second=fps,
                      loss=loss, total_loss=total_loss, lr=lr, interval_seconds=batch_time,
                      time=time.time())
        self.metrics(record)
        return line

    def metrics(self, record: Dict) -> None:
        """Appends an arbitrary JSON record (e.g. evaluation results) to ``metrics.jsonl``."""
        if self._jsonl:
            self._jsonl.write(json.dumps(record) + "\n")
        for listener in self._listeners:
            listener(record)

    def add_listener(self, listener: Callable[[Dict], None]) -> None:
        """Calls ``listener(record)`` with every record written (e.g. TensorBoard summaries)."""
        self._listeners.append(listener)

    def _emit(self, line: str) -> None:
        print(self.prefix + line, file=self.stream, flush=True)
        if self._text:
            self._text.write(line + "\n")

    def close(self) -> None:
        for f in (self._text, self._jsonl):
            if f:
                f.close()
        self._text = self._jsonl = None
