"""What the CPU and GPU backends share: ``tf.distribute`` in one process or over worker processes.

Three ways to run, chosen from ``--rank_size``, ``--multi_worker`` and the cluster flags:

* one process, ``rank_size`` replicas on its own devices (``OneDeviceStrategy`` for one,
  ``MirroredStrategy`` for several);
* launcher: ``--rank_size=N`` with multi-worker on and no cluster given. The process starts N
  copies of its own command line (:mod:`backends.launcher`), each with a ``TF_CONFIG`` on free
  loopback ports, supervises them and exits with their result;
* worker: a process of a cluster (``--worker_hosts`` + ``--task_index``, or ``TF_CONFIG``) trains
  under ``MultiWorkerMirroredStrategy``; worker 0 (or the chief) is rank 0.

``--collective_timeout_s`` is not handed to TensorFlow (its option starts a sleeping thread for every
collective, :mod:`backends.collective_watchdog`): a worker gets one :class:`CollectiveWatchdog` instead,
which the trainer's device loop and this backend's agreement collectives report to.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

import run_dir
from backends import launcher
from backends.base import Backend
from backends.cluster import Cluster, local_clusters, resolve_cluster
from backends.collective_watchdog import CollectiveWatchdog
from run_config import RunConfig

__all__ = ["DistributedBackend", "bit_chunks", "chunks_agree", "split_cpus"]

def split_cpus(available: Sequence[int], ranks: int, per_rank: int) -> List[List[int]]:
    """Disjoint groups of ``per_rank`` cores for ``ranks`` processes, from the cores ``available``.

    Raises:
        ValueError: if there are not enough cores.
    """
    cores = sorted(available)
    if ranks * per_rank > len(cores):
        raise ValueError(
            f"--cpus_per_rank={per_rank} with --rank_size={ranks} needs {ranks * per_rank} cores; this process may "
            f"use {len(cores)} ({','.join(map(str, cores))}). Lower --cpus_per_rank or pass 0 (no pinning)."
        )
    return [cores[i * per_rank:(i + 1) * per_rank] for i in range(ranks)]


class DistributedBackend(Backend):
    """A backend on ``tf.distribute``: one process, a launcher, or one worker of a cluster.

    Subclasses say which devices a process uses (:meth:`configure_devices`,
    :meth:`create_local_strategy`), how replicas talk (``communication``) and what environment a
    local worker process needs (:meth:`rank_env`).

    Args:
        multi_worker: run ``rank_size`` replicas as worker processes; None for the subclass's default.
        worker_hosts: cluster workers (``host:port``), with ``task_index``.
        task_index: this process's index in ``worker_hosts``.
        cpus_per_rank: launcher: cores pinned to each worker process (0: none).
        collective_timeout_s: multi-worker: seconds a guarded call (a device loop call, an agreement
            collective) may go without a finished step before this worker's collectives are aborted
            (0: no limit). One watchdog thread per process, not TensorFlow's per-collective timer.
        all_reduce_pack_mb: size of the gradient packs all-reduced between workers (0: one pack).
        xla: compile each replica's forward and backward pass with XLA (the trainer reads it).
        launch_log_dir: launcher: where each rank's full output is written.
        preempt_grace_s: launcher: seconds ranks get to save and exit after a preemption signal.
        environ: environment to read ``TF_CONFIG`` from (default ``os.environ``).
        **kwargs: see :class:`backends.base.Backend`.
    """

    name = "distributed"
    #: all-reduce implementation under MultiWorkerMirroredStrategy: "ring", "nccl" or "auto".
    communication = "auto"
    #: whether --rank_size > 1 means worker processes when --multi_worker is not given.
    multi_worker_default = True

    def __init__(self, *, multi_worker: Optional[bool] = None, worker_hosts: Sequence[str] = (),
                 task_index: Optional[int] = None, cpus_per_rank: int = 0, collective_timeout_s: float = 0.0,
                 all_reduce_pack_mb: float = 32.0, xla: bool = False, launch_log_dir: Optional[str] = None,
                 preempt_grace_s: float = 300.0, environ: Optional[Mapping[str, str]] = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.multi_worker = self.multi_worker_default if multi_worker is None else bool(multi_worker)
        self.cluster: Optional[Cluster] = resolve_cluster(worker_hosts, task_index, environ)
        self.cpus_per_rank = int(cpus_per_rank)
        self.collective_timeout_s = float(collective_timeout_s)
        #: a worker's watchdog when ``collective_timeout_s`` is set (the trainer ticks it once per step)
        self.watchdog: Optional[CollectiveWatchdog] = None
        self.all_reduce_pack_mb = float(all_reduce_pack_mb)
        self.xla = bool(xla)
        self.launch_log_dir = launch_log_dir or run_dir.job_dir(None, self.rank_size)
        self.preempt_grace_s = float(preempt_grace_s)

    @classmethod
    def config_kwargs(cls, config: RunConfig) -> Dict[str, Any]:
        """The constructor arguments this class takes from the run's configuration (subclasses add theirs)."""
        d = config.distribution
        return dict(
            rank_size=d.rank_size, precision=config.precision.precision, multi_worker=d.multi_worker,
            worker_hosts=d.worker_hosts, task_index=d.task_index, cpus_per_rank=d.cpus_per_rank,
            collective_timeout_s=d.collective_timeout_s, all_reduce_pack_mb=d.all_reduce_pack_mb,
            xla=config.precision.xla, launch_log_dir=config.logging.log_dir or None,
            preempt_grace_s=d.preempt_grace_s,
        )

    @classmethod
    def from_config(cls, config: RunConfig) -> DistributedBackend:
        return cls(**cls.config_kwargs(config))

    # -- roles ------------------------------------------------------------------------------------

    @property
    def is_launcher(self) -> bool:
        """True when this process starts local worker processes instead of training."""
        return self.cluster is None and self.multi_worker and self.rank_size > 1

    @property
    def rank(self) -> int:
        return self.cluster.rank if self.cluster else 0

    @property
    def world_size(self) -> int:
        return self.cluster.world_size if self.cluster else 1

    @property
    def local_replicas(self) -> int:
        """Replicas this process trains: all of them alone, its share in a cluster."""
        if self.cluster is None:
            return self.rank_size
        return self.rank_size // self.cluster.world_size

    # -- subclass hooks ---------------------------------------------------------------------------

    def configure_devices(self) -> None:
        """Makes ``local_replicas`` devices available; runs before TensorFlow's runtime starts."""

    def create_local_strategy(self) -> tf.distribute.Strategy:
        """The strategy of a process that trains alone."""
        raise NotImplementedError

    def rank_env(self, rank: int) -> Dict[str, str]:
        """Environment variables of local worker process ``rank`` besides ``TF_CONFIG``."""
        return {}

    def num_accelerators(self) -> Dict[str, int]:
        """Accelerators of this worker, for the cluster resolver (``{"GPU": 1}``)."""
        return {}

    # -- launching --------------------------------------------------------------------------------

    def launch_plan(self, argv: Sequence[str]) -> Dict[str, Any]:
        """Commands, environments and CPU sets of the local workers (see :func:`launcher.launch`)."""
        if not argv:
            raise ValueError("cannot start worker processes: the command line of this process is unknown.")
        n = self.rank_size
        script = os.path.abspath(argv[0]) if os.path.exists(argv[0]) else argv[0]
        command = [sys.executable, script] + [str(a) for a in argv[1:]]
        envs = []
        for rank, cluster in enumerate(local_clusters(n)):
            env = {"TF_CONFIG": cluster.tf_config()}
            env.update(self.rank_env(rank))
            envs.append(env)
        cpu_sets = None
        if self.cpus_per_rank:
            cpu_sets = split_cpus(os.sched_getaffinity(0), n, self.cpus_per_rank)
        return dict(commands=[list(command) for _ in range(n)], per_rank_env=envs, cpu_sets=cpu_sets)

    def maybe_launch(self, argv: Optional[Sequence[str]]) -> Optional[int]:
        if not self.is_launcher:
            return None
        plan = self.launch_plan(argv if argv is not None else sys.argv)
        cores = plan["cpu_sets"] or [None] * self.rank_size
        logging.info("Starting %d %s worker processes under MultiWorkerMirroredStrategy: %s; full output in %s",
                     self.rank_size, self.name,
                     ", ".join(f"rank {i}" + (f" on cores {c}" if c else "") for i, c in enumerate(cores)),
                     self.launch_log_dir)
        return launcher.launch(plan["commands"], plan["per_rank_env"], cpu_sets=plan["cpu_sets"],
                               log_dir=self.launch_log_dir, preempt_grace_s=self.preempt_grace_s)

    # -- set-up -----------------------------------------------------------------------------------

    def validate(self) -> None:
        """Checks that flags and cluster agree; raises ValueError saying what to change."""
        if self.cluster is not None and self.rank_size % self.cluster.world_size:
            raise ValueError(
                f"--rank_size={self.rank_size} is not a multiple of the {self.cluster.world_size} workers of the "
                f"cluster ({', '.join(self.cluster.addresses)}); --rank_size counts all replicas of all workers."
            )

    def setup(self) -> None:
        self.validate()
        self.configure_devices()
        if self.cluster is not None:
            # MultiWorkerMirroredStrategy configures the collective runtime, which must happen before
            # TensorFlow runs its first operation: create it now.
            self._strategy = self._create_multi_worker_strategy()

    def _create_multi_worker_strategy(self) -> tf.distribute.Strategy:
        cluster = self.cluster
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(cluster.cluster_spec()), task_type=cluster.task_type, task_id=cluster.task_index,
            rpc_layer="grpc", num_accelerators=self.num_accelerators(),
        )
        implementation = {
            "ring": tf.distribute.experimental.CommunicationImplementation.RING,
            "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
            "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
        }[self.communication]
        # No timeout_seconds: TensorFlow would start a thread per collective that sleeps for the whole
        # timeout (backends/collective_watchdog.py). The limit is this process's single watchdog.
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=implementation, bytes_per_pack=int(self.all_reduce_pack_mb * 2**20))
        if self.collective_timeout_s > 0 and self.watchdog is None:
            self.watchdog = CollectiveWatchdog(self.collective_timeout_s,
                                               name=f"rank {cluster.rank} of {cluster.world_size}")
        logging.info("rank %d of %d joins the cluster %s", cluster.rank, cluster.world_size, cluster.addresses)
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)

    def create_strategy(self) -> tf.distribute.Strategy:
        if self.cluster is not None:
            return self._create_multi_worker_strategy()
        return self.create_local_strategy()

    # -- agreement between ranks -------------------------------------------------------------------

    def _sum_over_replicas(self, values: Sequence[float]) -> List[float]:
        """Sums ``values`` (the same on every replica of this process) over all replicas of all ranks."""
        if getattr(self, "_sum_fn", None) is None:
            strategy = self.strategy

            @tf.function  # eager collectives work too, but TensorFlow warns about their overhead
            def sum_fn(x):
                return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(tf.identity, args=(x,)), axis=None)

            self._sum_fn = sum_fn
        with self._guarded("an agreement all-reduce between the ranks"):
            return [float(x) for x in self._sum_fn(tf.constant(list(values), tf.float64)).numpy()]

    def _guarded(self, what: str):
        """The watchdog's guard around a blocking call with collectives (a no-op context without a watchdog)."""
        return self.watchdog.guard(what) if self.watchdog is not None else contextlib.nullcontext()

    def assert_same_on_all_ranks(self, what: str, value: float, hint: str = "") -> None:
        """Exact: the value's float64 bit pattern must be the same on every replica.

        The 64 bits are split into four 16-bit chunks ``c``; the float64 sums of ``c`` and ``c**2`` over
        the replicas are exact integers (below 2**53), and all replicas hold the same chunk exactly when
        ``count * sum(c**2) == sum(c)**2``. A difference of one unit in the last place fails. Every rank
        sees the same sums, so every rank reaches the same verdict and none is left waiting.
        """
        if self.world_size == 1:
            return
        chunks = bit_chunks(value)
        sums = self._sum_over_replicas([float(c) for c in chunks] + [float(c * c) for c in chunks] + [1.0,
                                                                                                     float(value)])
        if not chunks_agree(sums[:9]):
            count = int(sums[8])
            raise ValueError(
                f"{what} differs between ranks: {value!r} on rank {self.rank}, mean {sums[9] / count:g} over "
                f"{count} replicas. {hint}".rstrip()
            )

    def finish(self) -> None:
        if self.world_size == 1:
            return
        # A last all-reduce as a barrier: ranks leave together, so that no rank's departure is
        # reported by the others (TensorFlow's coordination service logs a lost peer as an error).
        count = self._sum_over_replicas([1.0])[0]
        logging.info("rank %d: all %d replicas finished", self.rank, int(count))
        if self.watchdog is not None:
            self.watchdog.close()

    def describe(self) -> str:
        text = super().describe()
        if self.cluster is not None:
            text += f" rank={self.rank}/{self.world_size} communication={self.communication}"
        if self.xla:
            text += " xla=on"
        return text


def bit_chunks(value: float) -> List[int]:
    """The float64 bit pattern of ``value`` as four 16-bit integers (low to high)."""
    bits = int(np.float64(value).view(np.uint64))
    return [(bits >> shift) & 0xFFFF for shift in (0, 16, 32, 48)]


def chunks_agree(sums: Sequence[float]) -> bool:
    """Whether all replicas held the same chunks, given the sums ``[sum c_k (4), sum c_k**2 (4), count]``.

    The sums of 16-bit integers and their squares over fewer than 2**20 replicas are exact in
    float64; the values agree exactly when ``count * sum(c**2) == sum(c)**2`` for every chunk.
    """
    count = int(sums[-1])
    totals, squares = [int(x) for x in sums[:4]], [int(x) for x in sums[4:8]]
    return all(count * sq == t * t for t, sq in zip(totals, squares))
