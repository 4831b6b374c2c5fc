"""Who this NPU process is, from its environment: launch mode, rank, world size, and device ids.

An NPU job runs one process per device. A process is one rank of a job when its environment says
so, in one of the two ways the adapter (``npu_device.open`` in ``tf_adapter_2.x/python/npu_device/
npu_device.py``) and HCCL accept:

* **rank table**: ``RANK_TABLE_FILE``, ``RANK_ID`` and ``RANK_SIZE`` (and ``ASCEND_DEVICE_ID``);
  what ``main.py``'s launcher sets for every rank;
* **rank-table-free** (``CM_*``): ``CM_CHIEF_IP``, ``CM_CHIEF_PORT``, ``CM_CHIEF_DEVICE``,
  ``CM_WORKER_SIZE`` and ``CM_WORKER_IP`` (Huawei's HCCL guide, "configuring resource information
  with environment variables"), with none of ``RANK_TABLE_FILE``, ``RANK_ID``, ``RANK_SIZE``: the
  adapter raises when ``RANK_SIZE`` and ``CM_WORKER_SIZE`` or ``RANK_TABLE_FILE`` and
  ``CM_CHIEF_IP`` meet, and HCCL's guide forbids all three. The world size is ``CM_WORKER_SIZE``;
  the rank is given out by HCCL when the device opens (the handle's ``worker_id``).

Device ids come in two spaces. A rank table's ``device_id``, ``/etc/hccn.conf``'s ``address_<id>``
and ``ASCEND_VISIBLE_DEVICES`` (the NPUs Ascend Docker Runtime mounts into a container) use
**physical** ids; ``ASCEND_DEVICE_ID``, ``npu_device.open(device_id)`` and ``CM_CHIEF_DEVICE`` use
**logical** ids, 0..N-1 over the NPUs this machine or container sees. On a bare-metal server the two
are equal; in a container the logical id is the position of the physical id among the mounted ones,
in increasing order (``ASCEND_VISIBLE_DEVICES=4-7``: physical 6 is logical 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional

from backends.rank_table import load_rank_table

__all__ = ["CM_VARS", "RANK_TABLE_VARS", "LaunchEnvironment", "launch_environment", "logical_device_id",
           "physical_device_id", "visible_devices"]

RANK_TABLE_VARS = ("RANK_TABLE_FILE", "RANK_ID", "RANK_SIZE")
CM_VARS = ("CM_CHIEF_IP", "CM_CHIEF_PORT", "CM_CHIEF_DEVICE", "CM_WORKER_SIZE", "CM_WORKER_IP")
RANK_TABLE_MODE = "rank_table"
CM_MODE = "rank_table_free"


@dataclass(frozen=True)
class LaunchEnvironment:
    """This process as one rank of a job.

    Attributes:
        mode: ``rank_table`` or ``rank_table_free``.
        rank: its rank; None in the rank-table-free mode until the device is open.
        world_size: ranks in the job.
    """

    mode: str
    rank: Optional[int]
    world_size: int


def _number(environ: Mapping[str, str], var: str, what: str) -> int:
    text = (environ.get(var) or "").strip()
    if not text.isdigit():
        raise ValueError(f"{var}={environ.get(var)!r}: must be a number ({what}).")
    return int(text)


def _cm_environment(environ: Mapping[str, str], rank_size: int, present: List[str]) -> LaunchEnvironment:
    mixed = [v for v in RANK_TABLE_VARS if v in environ]
    if mixed:
        raise ValueError(
            f"{', '.join(mixed)} set together with {', '.join(present)}: the rank-table-free mode (CM_*) cannot be "
            "mixed with RANK_TABLE_FILE, RANK_ID or RANK_SIZE (the adapter and HCCL refuse it). Unset "
            f"{', '.join(mixed)} to use CM_*, or unset the CM_* variables to use a rank table.")
    missing = [v for v in CM_VARS if not (environ.get(v) or "").strip()]
    if missing:
        raise ValueError(
            f"rank-table-free mode: {', '.join(missing)} not set; every rank needs all of {', '.join(CM_VARS)} "
            "(and its own ASCEND_DEVICE_ID).")
    size = _number(environ, "CM_WORKER_SIZE", "the job's number of devices")
    port = _number(environ, "CM_CHIEF_PORT", "the chief's listening port, 0..65520")
    _number(environ, "CM_CHIEF_DEVICE", "the logical id of the chief's device")
    if size < 1 or port > 65520:
        raise ValueError(f"CM_WORKER_SIZE={size}, CM_CHIEF_PORT={port}: need CM_WORKER_SIZE >= 1 and a port "
                         "0..65520.")
    if rank_size not in (1, size):
        raise ValueError(f"CM_WORKER_SIZE={size} but --rank_size={rank_size}: leave --rank_size out (the job's "
                         f"size is CM_WORKER_SIZE) or pass --rank_size={size}.")
    if size > 1:
        _number(environ, "ASCEND_DEVICE_ID", "the logical id of the NPU this rank drives")
    return LaunchEnvironment(CM_MODE, None if size > 1 else 0, size)


def launch_environment(environ: Mapping[str, str], rank_size: int) -> Optional[LaunchEnvironment]:
    """This process's place in a job, or None if it is not one rank of a job (a single device, or a launcher).

    Checks what the adapter and HCCL would otherwise fail on later, or silently get wrong.

    Raises:
        ValueError: naming the variable that is missing or inconsistent, and how to fix it.
    """
    present = [v for v in CM_VARS if (environ.get(v) or "").strip()]
    if present:
        return _cm_environment(environ, rank_size, present)
    env_size = environ.get("RANK_SIZE")
    if "RANK_ID" not in environ:
        if env_size not in (None, "", str(rank_size)) and rank_size == 1:
            raise ValueError(f"RANK_SIZE={env_size} in the environment but --rank_size=1: the adapter would wait "
                             "for other ranks. Unset RANK_SIZE, or set RANK_ID too to run as one rank of a job.")
        return None
    rank_text = environ["RANK_ID"].strip()
    if not rank_text.isdigit():
        raise ValueError(f"RANK_ID={environ['RANK_ID']!r}: must be a number, 0..{rank_size - 1}.")
    rank = int(rank_text)
    if env_size is None or env_size.strip() != str(rank_size):
        raise ValueError(f"RANK_ID is set but RANK_SIZE is {env_size!r}, not {rank_size} (--rank_size): set "
                         f"RANK_SIZE={rank_size} for every rank, or pass the job's --rank_size.")
    if rank >= rank_size:
        raise ValueError(f"RANK_ID={rank} is out of range for --rank_size={rank_size} (ranks 0..{rank_size - 1}).")
    if rank_size > 1:
        table_file = environ.get("RANK_TABLE_FILE")
        if not table_file:
            raise ValueError("RANK_TABLE_FILE is not set: every rank of a multi-NPU job needs the rank table "
                             "(or the CM_* variables of the rank-table-free mode, without RANK_*). Start the job "
                             "without RANK_ID to have main.py launch all ranks with one.")
        load_rank_table(table_file).check_rank_size(rank_size)
        _number(environ, "ASCEND_DEVICE_ID", "the logical id of the NPU this rank drives, as the launcher sets it")
    return LaunchEnvironment(RANK_TABLE_MODE, rank, rank_size)


# -- device ids --------------------------------------------------------------------------------------------


def visible_devices(environ: Mapping[str, str]) -> Optional[List[int]]:
    """The physical ids in ``ASCEND_VISIBLE_DEVICES`` (``0-2,4`` or ``Ascend910-1`` style), sorted; None if unset.

    Raises:
        ValueError: for a value that is not a list of ids or ranges.
    """
    text = (environ.get("ASCEND_VISIBLE_DEVICES") or "").strip()
    if not text:
        return None
    ids = set()
    for part in text.split(","):
        item = part.strip()
        if item.startswith("Ascend"):  # AscendXXX-<physical id>
            item = item.rsplit("-", 1)[-1]
        low, sep, high = item.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise ValueError(f"ASCEND_VISIBLE_DEVICES={text!r}: expected device ids or ranges, e.g. 0-3,6.")
        ids.update(range(int(low), int(high if sep else low) + 1))
    return sorted(ids)


def logical_device_id(physical: int, environ: Mapping[str, str]) -> int:
    """The logical id (``ASCEND_DEVICE_ID``) of physical device ``physical`` on this machine or container.

    Raises:
        ValueError: if the device is not among ``ASCEND_VISIBLE_DEVICES``.
    """
    visible = visible_devices(environ)
    if visible is None:
        return int(physical)
    if physical not in visible:
        raise ValueError(f"NPU {physical} (a physical id, from the rank table) is not mounted in this container "
                         f"(ASCEND_VISIBLE_DEVICES={environ.get('ASCEND_VISIBLE_DEVICES')}); use a rank table of "
                         "the mounted NPUs, or give the logical ids with --npu_device_ids.")
    return visible.index(physical)


def physical_device_id(logical: int, environ: Mapping[str, str]) -> int:
    """The physical id of logical device ``logical`` (the inverse of :func:`logical_device_id`).

    Raises:
        ValueError: if there is no such logical device in this container.
    """
    visible = visible_devices(environ)
    if visible is None:
        return int(logical)
    if not 0 <= logical < len(visible):
        raise ValueError(f"logical NPU {logical} does not exist here: this container sees {len(visible)} NPU(s) "
                         f"(ASCEND_VISIBLE_DEVICES={environ.get('ASCEND_VISIBLE_DEVICES')}), logical ids "
                         f"0..{len(visible) - 1}.")
    return visible[logical]

