"""One training run per directory: a lock file that names its owner.

A run takes ``run.lock`` in each directory it writes to (its own log directory and, on the
chief, the checkpoint directory) and removes it when it ends. A second run on the same directory
is refused with a message naming the owner's host and pid. A lock whose owner is gone (same host,
pid no longer running, or running but started at another time: the pid was reused) is stale and
is taken over with a warning; a kill -9 therefore never blocks the next run. A lock held on
another host cannot be checked from here: the message says how to remove it by hand.

In a multi-process job every rank locks its own ``<job>/<rank>`` log directory, and only the
chief locks the checkpoint directory all ranks share (the other ranks only read it): a second
job's chief is refused, and the launcher stops that job's other ranks with it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterable, Iterator, Optional

__all__ = ["LOCK_NAME", "RunLockError", "acquire", "holding", "release"]

LOCK_NAME = "run.lock"


class RunLockError(ValueError):
    """Another live run holds the directory."""


def _start_time(pid: int) -> Optional[str]:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start_time": _start_time(os.getpid()),
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def _is_stale(owner: dict) -> bool:
    if owner.get("host") != socket.gethostname():
        return False
    pid = int(owner.get("pid", -1))
    if pid <= 0 or not _alive(pid):
        return True
    started = owner.get("start_time")
    return started is not None and _start_time(pid) not in (None, started)


def acquire(directory: str, *, warn: Optional[Callable[[str], None]] = None) -> str:
    """Takes ``directory``'s lock; returns the lock file's path.

    Raises:
        RunLockError: a live run holds it (the message names it and the way out).
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LOCK_NAME)
    # The content is complete before the name exists: written to a temporary file, then linked.
    # (Not an atomic.TEMP_MARKER name: the chief's clean-up of leftovers must not take it away.)
    tmp = os.path.join(directory, f".{LOCK_NAME}.{os.getpid()}.new")
    with open(tmp, "w") as f:
        json.dump(_owner(), f)
    try:
        for _ in range(3):
            try:
                os.link(tmp, path)
                return path
            except FileExistsError:
                pass
            try:
                with open(path) as f:
                    owner = json.load(f)
            except FileNotFoundError:
                continue  # released meanwhile: try again
            except (OSError, ValueError):
                owner = {}
            if owner and not _is_stale(owner):
                raise RunLockError(
                    f"{directory} is in use by another run (host {owner.get('host')}, pid {owner.get('pid')}, since "
                    f"{owner.get('since')}); wait for it to end, or pass another --log_dir/--checkpoint_dir. If that "
                    f"run is gone, delete {path}."
                )
            if warn is not None:
                warn(f"Removed the stale lock of a run that is gone (host {owner.get('host')}, pid "
                     f"{owner.get('pid')}) in {directory}")
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        raise RunLockError(f"{directory}: could not take {path} (other runs keep taking it); try again.")
    finally:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass


def release(path: str) -> None:
    """Removes the lock at ``path`` if this process owns it."""
    try:
        with open(path) as f:
            owner = json.load(f)
    except (OSError, ValueError):
        return
    if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


@contextmanager
def holding(directories: Iterable[str], *, warn: Optional[Callable[[str], None]] = None) -> Iterator[None]:
    """Holds the locks of ``directories`` (each once) for the block."""
    with ExitStack() as stack:
        seen = set()
        for directory in directories:
            key = os.path.abspath(directory)
            if key in seen:
                continue
            seen.add(key)
            path = acquire(directory, warn=warn)
            stack.callback(release, path)
        yield
