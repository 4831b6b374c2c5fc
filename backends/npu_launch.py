"""Starts the ranks of an Ascend NPU job on this server, one process per NPU.

``python main.py --backend=npu --rank_size=8`` (no ``RANK_ID`` in the environment) comes here: it
reads or generates the rank table, plans one process per local NPU with the environment HCCL and
``npu_device`` expect, and hands the processes to the shared supervisor (:mod:`backends.launcher`).
Each process is the same command with ``RANK_ID`` set, so it runs as that one rank.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import run_dir
from backends import rank_table as rt
from backends.npu_environment import CM_VARS, logical_device_id, physical_device_id

__all__ = ["NpuLaunchConfig", "RankPlan", "cpu_slices", "launch_npu_ranks", "plan_ranks", "resolve_rank_table"]

# Variables of the rank-table-free launch mode; mixing them with a rank table is an error for HCCL.
RANK_TABLE_FREE_VARS = CM_VARS


@dataclass(frozen=True)
class NpuLaunchConfig:
    """What the launcher needs, resolved from flags.

    Attributes:
        rank_size: devices in the whole job.
        group_size: servers in the job (1: this one only).
        rank_table_file: an existing rank table; None to generate one for this server.
        device_ids: NPUs to use, logical ids (``ASCEND_DEVICE_ID``'s), one per local rank in rank order;
            they take precedence over a given table's device ids (default: 0..rank_size-1 when
            generating, the table's devices otherwise).
        device_ips: their addresses when generating (default: read from ``hccn_conf``).
        hccn_conf: the driver's file with each NPU's address.
        server_id: this server's id in the rank table (needed if it lists several servers).
        job_id: ``JOB_ID`` of every rank.
        log_dir: ``--log_dir`` as given (None: ``results/<rank_size>p``): the job's results directory;
            each rank writes to ``<it>/<rank>`` (``modes.runner``), the launcher its rank table and
            every rank's full output (``launcher_rank_<i>.log``).
        bind_cores: pin each local rank to its own slice of this process's CPU cores.
    """

    rank_size: int
    group_size: int = 1
    rank_table_file: Optional[str] = None
    device_ids: Optional[Sequence[int]] = None
    device_ips: Optional[Sequence[str]] = None
    hccn_conf: str = "/etc/hccn.conf"
    server_id: Optional[str] = None
    job_id: str = "10087"
    log_dir: Optional[str] = None
    bind_cores: bool = False

    @property
    def base_dir(self) -> str:
        """Parent of the per-rank directories."""
        return run_dir.job_dir(self.log_dir, self.rank_size)


@dataclass(frozen=True)
class RankPlan:
    """One process of the job on this server.

    Attributes:
        rank: its global rank.
        device_id: the NPU it drives, as the logical id it gets in ``ASCEND_DEVICE_ID``.
        env: variables added to its environment.
        cpus: CPU cores it is pinned to (None: not pinned).
    """

    rank: int
    device_id: int
    env: Dict[str, str]
    cpus: Optional[List[int]] = None


def resolve_rank_table(config: NpuLaunchConfig, environ: Optional[Mapping[str, str]] = None) -> rt.RankTable:
    """The job's rank table: ``--rank_table_file``, or a new one for this server written under ``base_dir``.

    A generated table lists the physical ids of ``config.device_ids`` (logical ids, mapped through
    ``ASCEND_VISIBLE_DEVICES`` in ``environ``), as HCCL and ``/etc/hccn.conf`` number them.

    Raises:
        rank_table.RankTableError: for a bad or mismatching table, or missing device addresses.
    """
    if config.rank_table_file:
        table = rt.load_rank_table(config.rank_table_file)
        table.check_rank_size(config.rank_size)
        if config.group_size > 1 and len(table.servers) != config.group_size:
            raise rt.RankTableError(
                f"rank table {config.rank_table_file} lists {len(table.servers)} server(s) but "
                f"--group_size={config.group_size}."
            )
        return table
    if config.group_size > 1:
        raise rt.RankTableError(
            f"--group_size={config.group_size}: a job over several servers needs the cluster's rank table; pass "
            "--rank_table_file (tools/make_rank_table.py writes one per server to merge)."
        )
    device_ids = list(config.device_ids) if config.device_ids else list(range(config.rank_size))
    if len(device_ids) != config.rank_size:
        raise rt.RankTableError(
            f"--npu_device_ids lists {len(device_ids)} NPU(s) but --rank_size={config.rank_size}; give one id per rank."
        )
    if config.device_ips:  # checked here, used below
        if len(config.device_ips) != len(device_ids):
            raise rt.RankTableError(
                f"--npu_device_ips lists {len(config.device_ips)} address(es) for {len(device_ids)} NPU(s); give "
                "one address per NPU, in the order of --npu_device_ids."
            )
    environ = os.environ if environ is None else environ
    device_ids = [physical_device_id(d, environ) for d in device_ids]
    if config.device_ips:
        addresses = dict(zip(device_ids, config.device_ips))
    else:
        addresses = rt.read_hccn_conf(config.hccn_conf)
    table = rt.make_local_rank_table(device_ids, addresses, server_id=config.server_id or "127.0.0.1")
    path = rt.write_rank_table(table, run_dir.rank_table_path(config.base_dir))
    return rt.RankTable(table.devices, table.source_format, path)


def cpu_slices(cpus: Sequence[int], count: int) -> List[List[int]]:
    """Splits ``cpus`` into ``count`` equal, disjoint, contiguous slices (the Ascend recipe's ``taskset`` ranges).

    Raises:
        ValueError: if there are fewer cores than slices.
    """
    cpus = sorted(cpus)
    per = len(cpus) // count if count else 0
    if per < 1:
        raise ValueError(f"--bind_cores: {len(cpus)} CPU core(s) cannot be split among {count} ranks; "
                         "leave --bind_cores out.")
    return [cpus[i * per:(i + 1) * per] for i in range(count)]


def plan_ranks(config: NpuLaunchConfig, table: rt.RankTable, *, available_cpus: Optional[Sequence[int]] = None,
               environ: Optional[Mapping[str, str]] = None) -> List[RankPlan]:
    """One :class:`RankPlan` per NPU of this server in ``table``.

    Each rank's ``ASCEND_DEVICE_ID`` is a logical id: ``config.device_ids`` in rank order if given,
    else the table's physical ``device_id`` mapped through ``ASCEND_VISIBLE_DEVICES``.

    Args:
        config: launch settings.
        table: the validated rank table (with its ``path``).
        available_cpus: cores to split for ``bind_cores`` (default: this process's affinity).
        environ: the environment the ranks start from (default ``os.environ``).
    """
    if not table.path:
        raise ValueError("plan_ranks: the rank table must have been written to a file (RANK_TABLE_FILE).")
    local = table.local_devices(config.server_id)
    slices: List[Optional[List[int]]] = [None] * len(local)
    if config.bind_cores:
        if available_cpus is None:
            available_cpus = sorted(os.sched_getaffinity(0))
        slices = list(cpu_slices(available_cpus, len(local)))
    environ = os.environ if environ is None else environ
    if config.device_ids:
        if len(config.device_ids) != len(local):
            raise ValueError(f"--npu_device_ids lists {len(config.device_ids)} NPU(s) but the rank table has "
                             f"{len(local)} rank(s) on this server; give one logical id per local rank.")
        logical = [int(d) for d in config.device_ids]
    else:
        logical = [logical_device_id(d.device_id, environ) for d in local]
    plans = []
    for device, device_id, cpus in zip(local, logical, slices):
        env = {
            "RANK_SIZE": str(config.rank_size),
            "RANK_ID": str(device.rank_id),
            "ASCEND_DEVICE_ID": str(device_id),
            "DEVICE_ID": str(device_id),
            "JOB_ID": str(config.job_id),
            "RANK_TABLE_FILE": os.path.abspath(table.path),
        }
        plans.append(RankPlan(device.rank_id, device_id, env, cpus))
    return plans


def check_launch_environment(environ: Mapping[str, str]) -> None:
    """Refuses to start ranks when the rank-table-free variables are set as well (HCCL rejects both)."""
    mixed = [v for v in RANK_TABLE_FREE_VARS if environ.get(v)]
    if mixed:
        raise ValueError(
            f"{', '.join(mixed)} set in the environment: that is the rank-table-free launch mode, and this "
            "launcher uses a rank table. Unset them, or start each rank yourself with RANK_ID set."
        )


def launch_npu_ranks(command: Sequence[str], config: NpuLaunchConfig, *,
                     environ: Optional[Mapping[str, str]] = None, **launch_kwargs) -> int:
    """Starts and supervises this server's ranks; returns the job's exit code.

    Args:
        command: the argv every rank runs (``[python, main.py, flags...]``); with ``RANK_ID`` in
            its environment each process runs as that one rank.
        config: launch settings.
        environ: the environment the ranks start from (default: ``os.environ``).
        **launch_kwargs: passed to :func:`backends.launcher.launch` (e.g. ``grace_s``).

    Raises:
        ValueError: for bad settings (including :class:`rank_table.RankTableError`), before any rank starts.
    """
    from backends.launcher import launch  # the shared supervisor (one dies -> all stop)

    base_env = dict(os.environ if environ is None else environ)
    check_launch_environment(base_env)
    for var in ("RANK_ID", "RANK_SIZE", "ASCEND_DEVICE_ID", "DEVICE_ID", "RANK_TABLE_FILE"):
        base_env.pop(var, None)  # set per rank below
    table = resolve_rank_table(config, base_env)
    plans = plan_ranks(config, table, environ=base_env)
    print(
        f"npu launcher: {len(plans)} rank(s) of {config.rank_size} on this server, NPUs "
        f"{[p.device_id for p in plans]}, rank table {table.path}, logs in {config.base_dir}/<rank>",
        file=sys.stderr, flush=True,
    )
    return launch(
        [list(command) for _ in plans], [p.env for p in plans],
        log_dir=config.base_dir, cpu_sets=[p.cpus for p in plans] if config.bind_cores else None,
        base_env=base_env, **launch_kwargs,
    )
