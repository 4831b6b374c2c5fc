"""The recipe's evaluation table (docs/reference.md, "Outputs").

::

    Evaluating
    Validation dataset size: 49921
     step  epoch  top1    top5     loss   checkpoint_time(UTC)
     6300    5.0  18.502   39.33    4.78  2020-06-18 11:18:45
    Finished evaluation

top1 and top5 are in percent; epoch is ``step * global_batch / training images``.
"""

from __future__ import annotations

import datetime
import re
from typing import Dict, Optional

__all__ = ["FINISHED", "HEADER", "ROW_PATTERN", "TIME_FORMAT", "format_row", "parse_row", "utc_time"]

HEADER = " step  epoch  top1    top5     loss   checkpoint_time(UTC)"
FINISHED = "Finished evaluation"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
ROW_FORMAT = "{:5d}  {:5.1f}  {:5.3f}  {:6.2f}  {:6.2f}  {}"

# Parses exactly what format_row prints (tests and tools use it).
ROW_PATTERN = re.compile(
    r"^(?P<step>[ \d]{5,})  (?P<epoch>[ \d.naif-]{5,})  (?P<top1>[ \d.]{5,})  (?P<top5>[ \d.]{6,})  "
    r"(?P<loss>[ \d.naif-]{6,})  (?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)$"
)


def utc_time(timestamp: float) -> str:
    """Seconds since the epoch as ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc).strftime(TIME_FORMAT)


def format_row(step: int, epoch: float, top1: float, top5: float, loss: float, timestamp: float) -> str:
    """One table row; ``top1``/``top5`` in percent, ``timestamp`` in seconds since the epoch."""
    return ROW_FORMAT.format(step, epoch, top1, top5, loss, utc_time(timestamp))


def parse_row(line: str) -> Optional[Dict[str, object]]:
    """The values of a table row, or None if ``line`` is not a row in the exact format."""
    match = ROW_PATTERN.match(line.rstrip("\n"))
    if not match:
        return None
    values: Dict[str, object] = {k: float(v) for k, v in match.groupdict().items() if k != "time"}
    values["step"] = int(values["step"])
    values["time"] = match.group("time")
    return values
