"""Who trains together: the worker cluster of ``MultiWorkerMirroredStrategy`` and its ``TF_CONFIG``.

A process is a worker of a cluster when it is given ``--worker_hosts`` and ``--task_index`` or
an environment variable ``TF_CONFIG`` (the layout TensorFlow and Kubernetes' TFJob use)::

    {"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 1}}

A ``chief`` job is accepted too (it becomes rank 0, the workers follow). This module is pure
Python; it only describes clusters, and :func:`local_clusters` picks free loopback ports for the
launcher.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence

from backends.launcher import free_ports

__all__ = ["Cluster", "ClusterError", "cluster_from_flags", "cluster_from_tf_config", "local_clusters",
           "resolve_cluster"]


class ClusterError(ValueError):
    """A cluster description that cannot work; the message says what to change."""


@dataclass(frozen=True)
class Cluster:
    """The workers of one training job and this process's place among them.

    Attributes:
        chief: ``host:port`` of a separate chief task, or None (then worker 0 is the chief).
        workers: ``host:port`` of each worker task.
        task_type: ``chief`` or ``worker``: this process's job.
        task_index: this process's index within its job.
    """

    workers: tuple
    task_type: str = "worker"
    task_index: int = 0
    chief: Optional[str] = None

    @property
    def addresses(self) -> List[str]:
        """Every task's address in rank order (the chief first)."""
        return ([self.chief] if self.chief else []) + list(self.workers)

    @property
    def world_size(self) -> int:
        """Number of processes that train together."""
        return len(self.addresses)

    @property
    def rank(self) -> int:
        """This process's rank: 0 for the chief (or worker 0 without a chief)."""
        if self.task_type == "chief":
            return 0
        return self.task_index + (1 if self.chief else 0)

    def cluster_spec(self) -> dict:
        """The ``cluster`` part of ``TF_CONFIG``."""
        spec = {"worker": list(self.workers)}
        if self.chief:
            spec["chief"] = [self.chief]
        return spec

    def tf_config(self) -> str:
        """This process's ``TF_CONFIG`` as a JSON string."""
        return json.dumps({"cluster": self.cluster_spec(), "task": {"type": self.task_type, "index": self.task_index}})


def _check_addresses(addresses: Sequence[str], source: str) -> None:
    for address in addresses:
        host, sep, port = str(address).rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ClusterError(f"{source}: {address!r} is not host:port (e.g. 10.0.0.1:2222).")
    duplicates = sorted({a for a in addresses if list(addresses).count(a) > 1})
    if duplicates:
        raise ClusterError(f"{source}: {', '.join(duplicates)} listed more than once; each task needs its own port.")


def cluster_from_flags(worker_hosts: Sequence[str], task_index: Optional[int]) -> Optional[Cluster]:
    """The cluster given by ``--worker_hosts`` and ``--task_index``; None if neither is set.

    Raises:
        ClusterError: if only one of them is set or the index is out of range.
    """
    hosts = [h.strip() for h in worker_hosts or () if h.strip()]
    if not hosts and task_index is None:
        return None
    if not hosts:
        raise ClusterError("--task_index needs --worker_hosts=host0:port,host1:port,... (every worker, in rank order).")
    if task_index is None:
        raise ClusterError(f"--worker_hosts lists {len(hosts)} workers; pass --task_index=0..{len(hosts) - 1} "
                           "to say which one this process is.")
    _check_addresses(hosts, "--worker_hosts")
    if not 0 <= task_index < len(hosts):
        raise ClusterError(f"--task_index={task_index} is out of range for {len(hosts)} --worker_hosts "
                           f"(0..{len(hosts) - 1}).")
    return Cluster(workers=tuple(hosts), task_type="worker", task_index=task_index)


def cluster_from_tf_config(text: Optional[str]) -> Optional[Cluster]:
    """The cluster described by a ``TF_CONFIG`` value; None for an empty value.

    Raises:
        ClusterError: for malformed JSON, unsupported jobs (``ps``, ``evaluator``) or a bad task.
    """
    if not text or not text.strip():
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ClusterError(f"TF_CONFIG is not valid JSON ({e}); unset it or fix it.") from None
    if not isinstance(config, dict):
        raise ClusterError("TF_CONFIG must be a JSON object with 'cluster' and 'task'.")
    spec, task = config.get("cluster") or {}, config.get("task") or {}
    if not spec:
        return None  # TensorFlow treats a TF_CONFIG without a cluster as a single process, so do we.
    unsupported = sorted(set(spec) - {"chief", "worker"})
    if unsupported:
        raise ClusterError(f"TF_CONFIG has jobs {unsupported}; MultiWorkerMirroredStrategy uses only "
                           "'chief' and 'worker' (parameter servers and evaluators are not supported).")
    chiefs, workers = list(spec.get("chief") or []), list(spec.get("worker") or [])
    if len(chiefs) > 1:
        raise ClusterError(f"TF_CONFIG lists {len(chiefs)} chiefs; there can be at most one.")
    _check_addresses(chiefs + workers, "TF_CONFIG")
    task_type, task_index = task.get("type"), task.get("index", 0)
    jobs = {"chief": chiefs, "worker": workers}
    if task_type not in jobs or not jobs[task_type]:
        raise ClusterError(f"TF_CONFIG task type {task_type!r} is not a job of its cluster ({sorted(spec)}).")
    if not isinstance(task_index, int) or not 0 <= task_index < len(jobs[task_type]):
        raise ClusterError(f"TF_CONFIG task index {task_index!r} is out of range for job {task_type!r} "
                           f"of {len(jobs[task_type])} task(s).")
    return Cluster(workers=tuple(workers), task_type=task_type, task_index=task_index,
                   chief=chiefs[0] if chiefs else None)


def resolve_cluster(worker_hosts: Sequence[str], task_index: Optional[int],
                    environ: Optional[Mapping[str, str]] = None) -> Optional[Cluster]:
    """This process's cluster from flags or ``TF_CONFIG``; None when it trains alone.

    Flags and ``TF_CONFIG`` may both be given only if they describe the same cluster.

    Raises:
        ClusterError: for invalid or contradicting descriptions.
    """
    environ = os.environ if environ is None else environ
    from_flags = cluster_from_flags(worker_hosts, task_index)
    from_env = cluster_from_tf_config(environ.get("TF_CONFIG"))
    if from_flags and from_env and (from_flags.addresses != from_env.addresses or from_flags.rank != from_env.rank):
        raise ClusterError(
            f"--worker_hosts/--task_index (rank {from_flags.rank} of {from_flags.addresses}) contradict TF_CONFIG "
            f"(rank {from_env.rank} of {from_env.addresses}); pass only one of them."
        )
    return from_flags or from_env


def local_clusters(n: int, host: str = "127.0.0.1") -> List[Cluster]:
    """``n`` workers on free ports of ``host``: one :class:`Cluster` per rank, for the launcher."""
    addresses = tuple(f"{host}:{port}" for port in free_ports(n, host))
    return [Cluster(workers=addresses, task_type="worker", task_index=i) for i in range(n)]
