"""The run-directory layout, in one place: where a job's logs, checkpoints and label map go.

Every part of the project that writes or looks for these files asks here (training, evaluation,
predict, export and both launchers), so that they agree::

    <job>/                     --log_dir, default results/<N>p (N = --rank_size)
        config.json            the run's resolved configuration (also in each rank's log directory)
        launcher_rank_<i>.log  full output of rank i (multi-process launchers)
        rank_table.json        the NPU launcher's generated rank table
        <rank>/                each rank's log (and, for rank 0, the checkpoints)

A single-process run has no ``<rank>`` level: its log directory is ``--log_dir`` itself (default
``results/<N>p/0``). Checkpoints go to ``--checkpoint_dir``, by default rank 0's log directory,
shared by every rank so that all of them resume from the same step. The label map of an image-folder
dataset is written beside the checkpoints; readers also look one level up, where runs made before
this layout was fixed (or with ``--log_dir`` and several processes) may have left it.

This module imports nothing from the project, so that backends may use it as well as training.
"""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

__all__ = ["CONFIG_NAME",
           "LABEL_MAP_NAME", "RESULTS_ROOT", "checkpoint_dir", "default_log_dir", "job_dir", "label_map_candidates",
           "label_map_path", "launcher_log_path", "rank_dirs", "rank_table_path"]

RESULTS_ROOT = "results"
LABEL_MAP_NAME = "label_map.txt"
CONFIG_NAME = "config.json"


def job_dir(log_dir: Optional[str], rank_size: int) -> str:
    """The job's directory: ``--log_dir``, else ``results/<rank_size>p``."""
    return log_dir or os.path.join(RESULTS_ROOT, f"{rank_size}p")


def default_log_dir(rank_size: int, rank: int) -> str:
    """``results/<rank_size>p/<rank>``, the Ascend recipe's layout."""
    return os.path.join(job_dir(None, rank_size), str(rank))


def rank_dirs(log_dir: Optional[str], checkpoint_dir: Optional[str], *, rank_size: int, rank: int,
              multi_process: bool) -> Tuple[str, str]:
    """This rank's log directory and the checkpoint directory every rank shares.

    Args:
        log_dir: ``--log_dir`` (None: the default layout).
        checkpoint_dir: ``--checkpoint_dir`` (None: rank 0's log directory).
        rank_size: replicas of the job (``<N>`` of ``results/<N>p``).
        rank: this process's rank.
        multi_process: whether the job runs one process per rank (each then logs to ``<job>/<rank>``).
    """
    if not multi_process:
        own = log_dir or default_log_dir(rank_size, 0)
        return own, checkpoint_dir or own
    root = job_dir(log_dir, rank_size)
    return os.path.join(root, str(rank)), checkpoint_dir or os.path.join(root, "0")


def checkpoint_dir(log_dir: Optional[str], checkpoint_dir_flag: Optional[str], *, rank_size: int,
                   multi_process: bool) -> str:
    """The job's checkpoint directory (see :func:`rank_dirs`)."""
    return rank_dirs(log_dir, checkpoint_dir_flag, rank_size=rank_size, rank=0, multi_process=multi_process)[1]


def label_map_path(log_dir: Optional[str], checkpoint_dir_flag: Optional[str], rank_size: int) -> str:
    """Where training writes the label map: ``--checkpoint_dir``, else ``--log_dir``, else ``results/<N>p/0``.

    Without ``--checkpoint_dir`` this is the checkpoint directory of a single-process run, and the
    job directory (the checkpoints' parent) of a multi-process one: :func:`label_map_candidates`
    looks in both.
    """
    directory = checkpoint_dir_flag or log_dir or default_log_dir(rank_size, 0)
    return os.path.join(directory, LABEL_MAP_NAME)


def label_map_candidates(checkpoint_prefix: str) -> List[str]:
    """Where a checkpoint's label map may be, in order: beside it, then in its directory's parent."""
    directory = os.path.dirname(os.path.abspath(checkpoint_prefix))
    return [os.path.join(directory, LABEL_MAP_NAME), os.path.join(os.path.dirname(directory), LABEL_MAP_NAME)]


def launcher_log_path(job: str, rank: int) -> str:
    """The full output of ``rank`` as written by a launcher: ``<job>/launcher_rank_<rank>.log``."""
    return os.path.join(job, f"launcher_rank_{rank}.log")


def rank_table_path(job: str) -> str:
    """The NPU launcher's generated rank table: ``<job>/rank_table.json``."""
    return os.path.join(job, "rank_table.json")
