"""What HCCL checks when a rank-table job opens its device, which the stand-in cannot leave to HCCL.

HCCL reads ``RANK_TABLE_FILE``, finds ``RANK_ID`` in it and requires the table's ``device_id`` for
that rank (a physical id) to be the device this process drives. The process opens a logical id
(``ASCEND_DEVICE_ID``); in a container started by Ascend Docker Runtime with
``ASCEND_VISIBLE_DEVICES=4,5,6,7`` the logical ids 0..3 are the physical devices 4..7 in increasing
order, on a bare-metal server logical and physical ids are equal.

Written independently of the project's ``backends/rank_table.py`` so that the two check each other.
"""

import json


def visible_physical_ids(environ):
    """Physical ids of ``ASCEND_VISIBLE_DEVICES`` (``0-2,4`` style), sorted; None when unset."""
    text = (environ.get("ASCEND_VISIBLE_DEVICES") or "").strip()
    if not text:
        return None
    ids = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        ids.update(range(int(low), int(high or low) + 1))
    return sorted(ids)


def physical_id(environ, logical):
    visible = visible_physical_ids(environ)
    if visible is None:
        return logical
    return visible[logical] if 0 <= logical < len(visible) else None


def _rank_devices(table):
    """``{rank: device_id}`` from a version 1.0 (``server_list``) or a ``group_list`` table."""
    out = {}
    if "server_list" in table:
        for server in table["server_list"]:
            for device in server["device"]:
                out[int(device["rank_id"])] = int(device["device_id"])
        return out
    rank = 0
    for group in table["group_list"]:
        for instance in group["instance_list"]:
            for device in instance["devices"]:
                out[rank] = int(device["device_id"])
                rank += 1
    return out


def rank_table_problem(environ, logical_device, workers_num):
    """Why HCCL would refuse this process's rank-table set-up, or None."""
    path = environ.get("RANK_TABLE_FILE")
    try:
        with open(path, encoding="utf-8") as f:
            devices = _rank_devices(json.load(f))
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"rank table {path} cannot be read: {e}"
    try:
        rank = int(environ.get("RANK_ID"))
    except (TypeError, ValueError):
        return f"RANK_ID={environ.get('RANK_ID')!r} is not a number"
    if len(devices) != workers_num:
        return f"rank table {path} lists {len(devices)} ranks but RANK_SIZE={workers_num}"
    if rank not in devices:
        return f"rank {rank} is not in rank table {path}"
    physical = physical_id(environ, logical_device)
    if physical != devices[rank]:
        return (f"rank {rank} is on physical device {devices[rank]} in the rank table, but this process opened "
                f"logical device {logical_device} (physical {physical}, ASCEND_VISIBLE_DEVICES="
                f"{environ.get('ASCEND_VISIBLE_DEVICES')})")
    return None
