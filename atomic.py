"""Atomic publishing of files and directories: a reader sees the complete result or nothing.

Everything the project writes that a user (or another rank) may read while it is being written
goes through here: converted weights, exports, rank tables, label maps, demo data, TFRecords. The
content is written under a hidden temporary name in the destination's own directory (same file
system, so the final rename is atomic) and renamed into place only when complete; on any error the
temporary is removed and the destination is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import IO, Iterator

__all__ = ["TEMP_MARKER", "publish_directory", "publish_file", "write_text"]

# Part of every temporary name, so that stale ones can be recognised and removed.
TEMP_MARKER = ".tmp-"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private (0600/0700) entries; what is published gets the usual permissions.
_FILE_MODE = 0o666 & ~_umask()
_DIR_MODE = 0o777 & ~_umask()


@contextlib.contextmanager
def publish_directory(path: str, *, replace_empty: bool = True) -> Iterator[str]:
    """Yields a temporary directory that becomes ``path`` when the block ends without error.

    Args:
        path: the directory to create. It must not exist, or be empty when ``replace_empty``.
        replace_empty: allow an existing empty directory to be replaced.

    Raises:
        FileExistsError: ``path`` exists and is not an empty directory.
    """
    path = os.path.abspath(path)
    if os.path.lexists(path):
        if not (replace_empty and os.path.isdir(path) and not os.listdir(path)):
            raise FileExistsError(f"{path} already exists; pass a new path.")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}{TEMP_MARKER}", dir=parent)
    try:
        yield tmp
        os.chmod(tmp, _DIR_MODE)
        if os.path.isdir(path):
            os.rmdir(path)  # empty (checked above)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def publish_file(path: str, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Yields an open temporary file that replaces ``path`` when the block ends without error.

    The data is flushed and fsynced before the rename, so a crash never leaves a truncated file
    under the final name.
    """
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}{TEMP_MARKER}")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` atomically."""
    with publish_file(path, "w", encoding="utf-8") as f:
        f.write(text)
