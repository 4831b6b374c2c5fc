"""The export directory: refused when it holds something (unless ``--overwrite``), published atomically.

Everything an export writes (the SavedModel, the other formats, ``serving_config.json``, the label map) goes
into a temporary sibling directory that replaces ``--export_dir`` only once complete, so the directory holds
either a whole export (the old one or the new one) or nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator, Optional

from atomic import TEMP_MARKER, publish_directory

__all__ = ["ExportDirNotEmpty", "check_export_dir", "publish_export_dir"]


class ExportDirNotEmpty(FileExistsError, ValueError):
    """The export directory holds files and ``--overwrite`` was not given (a ValueError: a one-line error)."""


def check_export_dir(export_dir: str, *, overwrite: bool = False, protected: Optional[str] = None) -> str:
    """Returns ``export_dir`` made absolute if an export may be written there.

    Args:
        export_dir: the target directory.
        overwrite: ``--overwrite``: a non-empty directory may be replaced.
        protected: a file (the checkpoint being exported) that must not lie inside ``export_dir``, which
            ``--overwrite`` would delete.

    Raises:
        ExportDirNotEmpty: ``export_dir`` is a file, or a non-empty directory without ``overwrite``, or
            it holds ``protected``. One line, naming the folder and ``--overwrite``.
    """
    path = os.path.abspath(export_dir)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ExportDirNotEmpty(f"--export_dir={path} is a file, not a directory; pass a directory.")
    if protected:
        inside = os.path.commonpath([path, os.path.abspath(protected)]) == path
        if inside:
            raise ExportDirNotEmpty(f"--export_dir={path} holds the checkpoint being exported ({protected}); pass "
                                    "another directory (--overwrite would delete the run).")
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise ExportDirNotEmpty(f"--export_dir={path} is not empty; pass --overwrite to replace its contents, or "
                                "a new directory (nothing was written).")
    return path


@contextlib.contextmanager
def publish_export_dir(export_dir: str, *, overwrite: bool = False,
                       protected: Optional[str] = None) -> Iterator[str]:
    """Yields a temporary directory that becomes ``export_dir`` when the block ends without error.

    With ``overwrite`` an existing non-empty directory is replaced: it is renamed aside, the new export
    renamed into place, then the old one deleted; on an error before that, the old one is left as it was.

    Raises:
        ExportDirNotEmpty: see :func:`check_export_dir`.
    """
    path = check_export_dir(export_dir, overwrite=overwrite, protected=protected)
    if not (os.path.isdir(path) and os.listdir(path)):
        with publish_directory(path) as tmp:
            yield tmp
        return
    parent = os.path.dirname(path)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}{TEMP_MARKER}", dir=parent)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old{TEMP_MARKER}", dir=parent)
        os.rmdir(old)
        os.rename(path, old)
        try:
            os.rename(tmp, path)
        except BaseException:
            os.rename(old, path)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
