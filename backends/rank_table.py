"""Ascend rank tables: read and validate both formats, write version 1.0.

A rank table tells HCCL which NPUs (device id and interconnect address, on which server) train
together and which rank each one is. Two JSON layouts are in use (docs/reference.md, "Rank tables"):

* the older "group_list" layout (the Ascend recipe's ``8p.json``): ranks are numbered in file order;
* version 1.0, "server_list", where each device carries its ``rank_id``.

The addresses are the NPUs' own interconnect addresses. This module only parses them; nothing in the
project ever connects to them.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from atomic import write_text

__all__ = [
    "FORMAT_GROUP_LIST",
    "FORMAT_V1_0",
    "RankDevice",
    "RankTable",
    "RankTableError",
    "load_rank_table",
    "make_local_rank_table",
    "merge_rank_tables",
    "parse_rank_table",
    "read_hccn_conf",
    "write_rank_table",
]

FORMAT_GROUP_LIST = "group_list"
FORMAT_V1_0 = "1.0"


class RankTableError(ValueError):
    """A rank table (or the input to make one) is malformed; the message says where and how to fix it."""


@dataclass(frozen=True)
class RankDevice:
    """One NPU of the job.

    Attributes:
        rank_id: its rank among all devices of the job (0 .. rank_size - 1).
        device_id: the NPU's (logical) id on its server, what ``ASCEND_DEVICE_ID`` holds.
        device_ip: the NPU's interconnect address (never connected to by this project).
        server_id: the server it sits in, as the table names it.
    """

    rank_id: int
    device_id: int
    device_ip: str
    server_id: str


@dataclass(frozen=True)
class RankTable:
    """A validated rank table.

    Attributes:
        devices: every device of the job, sorted by rank.
        source_format: ``group_list`` or ``1.0``, the layout it was read from.
        path: the file it was read from, if any.
    """

    devices: Tuple[RankDevice, ...]
    source_format: str = FORMAT_V1_0
    path: Optional[str] = None

    @property
    def rank_size(self) -> int:
        """Number of devices (ranks) in the job."""
        return len(self.devices)

    @property
    def servers(self) -> List[str]:
        """Server ids in the order of their first device."""
        seen: List[str] = []
        for d in self.devices:
            if d.server_id not in seen:
                seen.append(d.server_id)
        return seen

    def devices_on(self, server_id: str) -> List[RankDevice]:
        """The devices of one server, by rank."""
        return [d for d in self.devices if d.server_id == server_id]

    def device_of_rank(self, rank: int) -> RankDevice:
        """The device that runs ``rank``."""
        for d in self.devices:
            if d.rank_id == rank:
                return d
        raise RankTableError(f"{self._where()}: no device has rank {rank}; ranks are 0..{self.rank_size - 1}.")

    def check_rank_size(self, rank_size: int) -> None:
        """Raises :class:`RankTableError` unless the table lists exactly ``rank_size`` devices."""
        if self.rank_size != rank_size:
            raise RankTableError(
                f"{self._where()} lists {self.rank_size} device(s) but --rank_size={rank_size}; pass "
                f"--rank_size={self.rank_size} or a rank table with {rank_size} devices."
            )

    def local_devices(self, server_id: Optional[str] = None) -> List[RankDevice]:
        """The devices of the server this process runs on.

        Args:
            server_id: this server's id in the table; may be omitted when the table has one server.
        """
        servers = self.servers
        if server_id is None:
            if len(servers) == 1:
                return self.devices_on(servers[0])
            raise RankTableError(
                f"{self._where()} lists {len(servers)} servers ({', '.join(servers)}); pass --server_id "
                "to say which one this is."
            )
        if server_id not in servers:
            raise RankTableError(
                f"--server_id={server_id} is not in {self._where()}; its servers are {', '.join(servers)}."
            )
        return self.devices_on(server_id)

    def to_v1_0(self) -> Dict[str, Any]:
        """The table in the version 1.0 ("server_list") layout, all values as strings."""
        servers = []
        for server_id in self.servers:
            servers.append({
                "server_id": server_id,
                "device": [
                    {"device_id": str(d.device_id), "device_ip": d.device_ip, "rank_id": str(d.rank_id)}
                    for d in self.devices_on(server_id)
                ],
            })
        return {"server_count": str(len(servers)), "server_list": servers, "status": "completed",
                "version": "1.0"}

    def _where(self) -> str:
        return f"rank table {self.path}" if self.path else "the rank table"


# -- reading ------------------------------------------------------------------------------------------


def load_rank_table(path: str) -> RankTable:
    """Reads and validates a rank table file in either layout.

    Raises:
        RankTableError: naming the file, the offending entry and what is expected.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise RankTableError(
            f"cannot read rank table {path}: {e.strerror or e}. Pass an existing file to --rank_table_file, "
            "or leave the flag out to have one generated for this server."
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RankTableError(f"rank table {path} is not valid JSON: {e.msg} at line {e.lineno}, "
                             f"column {e.colno}.") from None
    return parse_rank_table(data, path=path)


def parse_rank_table(data: Any, *, path: Optional[str] = None) -> RankTable:
    """Validates a decoded rank table (either layout) and returns it.

    Args:
        data: the decoded JSON.
        path: the file it came from, for messages.

    Raises:
        RankTableError: naming the offending entry and what is expected.
    """
    where = f"rank table {path}" if path else "rank table"
    if not isinstance(data, dict):
        raise RankTableError(f"{where}: the top level must be a JSON object, got {type(data).__name__}.")
    if "server_list" in data:
        devices = _parse_v1_0(data, where)
        fmt = FORMAT_V1_0
    elif "group_list" in data:
        devices = _parse_group_list(data, where)
        fmt = FORMAT_GROUP_LIST
    else:
        raise RankTableError(
            f"{where}: unknown layout (keys: {', '.join(sorted(data)) or 'none'}); expected \"server_list\" "
            "(version 1.0) or \"group_list\" (the Ascend recipe's 8p.json)."
        )
    status = _field(data, "status", where)
    if status != "completed":
        raise RankTableError(f"{where}: \"status\" is {status!r}; HCCL only accepts a table whose status is "
                             "\"completed\".")
    _check_unique(devices, where)
    return RankTable(tuple(sorted(devices, key=lambda d: d.rank_id)), fmt, path)


def _parse_v1_0(data: Mapping[str, Any], where: str) -> List[RankDevice]:
    version = _field(data, "version", where)
    if str(version) != FORMAT_V1_0:
        raise RankTableError(f"{where}: \"version\" is {version!r}; this reader knows version \"1.0\".")
    servers = _list_field(data, "server_list", where)
    _check_count(data, "server_count", len(servers), "server_list", where)
    devices = []
    for i, server in enumerate(servers):
        at = f"{where}: server_list[{i}]"
        server_id = _server_id(server, at)
        for j, dev in enumerate(_list_field(server, "device", at)):
            dat = f"{at}.device[{j}]"
            devices.append(RankDevice(
                rank_id=_int_field(dev, "rank_id", dat), device_id=_int_field(dev, "device_id", dat),
                device_ip=_ip_field(dev, dat), server_id=server_id,
            ))
    return devices


def _parse_group_list(data: Mapping[str, Any], where: str) -> List[RankDevice]:
    groups = _list_field(data, "group_list", where)
    _check_count(data, "group_count", len(groups), "group_list", where)
    devices: List[RankDevice] = []
    for g, group in enumerate(groups):
        at = f"{where}: group_list[{g}]"
        _field(group, "group_name", at)
        instances = _list_field(group, "instance_list", at)
        _check_count(group, "instance_count", len(instances), "instance_list", at)
        in_group = 0
        for i, instance in enumerate(instances):
            iat = f"{at}.instance_list[{i}]"
            _field(instance, "pod_name", iat)
            server_id = _server_id(instance, iat)
            for j, dev in enumerate(_list_field(instance, "devices", iat)):
                dat = f"{iat}.devices[{j}]"
                # This layout has no rank ids: HCCL numbers the devices in file order.
                devices.append(RankDevice(
                    rank_id=len(devices), device_id=_int_field(dev, "device_id", dat),
                    device_ip=_ip_field(dev, dat), server_id=server_id,
                ))
                in_group += 1
        _check_count(group, "device_count", in_group, "devices of its instance_list", at)
    return devices


def _field(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise RankTableError(f"{where} must be a JSON object, got {type(obj).__name__}.")
    if key not in obj:
        raise RankTableError(f"{where} has no \"{key}\" (a required field).")
    return obj[key]


def _list_field(obj: Any, key: str, where: str) -> list:
    value = _field(obj, key, where)
    if not isinstance(value, list) or not value:
        raise RankTableError(f"{where}: \"{key}\" must be a non-empty list.")
    return value


def _int_field(obj: Any, key: str, where: str) -> int:
    value = _field(obj, key, where)
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit():
        raise RankTableError(f"{where}: \"{key}\" must be a non-negative integer (as a string), got {value!r}.")
    return int(text)


def _ip_field(obj: Any, where: str) -> str:
    value = _field(obj, "device_ip", where)
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise RankTableError(f"{where}: \"device_ip\" must be an IP address, got {value!r}.") from None


def _server_id(obj: Any, where: str) -> str:
    value = _field(obj, "server_id", where)
    if not isinstance(value, str) or not value.strip():
        raise RankTableError(f"{where}: \"server_id\" must be a non-empty string, got {value!r}.")
    return value.strip()


def _check_count(obj: Mapping[str, Any], key: str, actual: int, what: str, where: str) -> None:
    declared = _int_field(obj, key, where)
    if declared != actual:
        raise RankTableError(f"{where}: \"{key}\" is {declared} but there are {actual} {what}.")


def _check_unique(devices: Sequence[RankDevice], where: str) -> None:
    ranks = sorted(d.rank_id for d in devices)
    if ranks != list(range(len(devices))):
        dupes = sorted({r for r in ranks if ranks.count(r) > 1})
        detail = f"rank ids {dupes} appear more than once" if dupes else f"rank ids are {ranks}"
        raise RankTableError(f"{where}: {detail}; the {len(devices)} devices must have rank ids "
                             f"0..{len(devices) - 1}, each once.")
    seen: Dict[Tuple[str, int], int] = {}
    ips: Dict[str, int] = {}
    for d in devices:
        key = (d.server_id, d.device_id)
        if key in seen:
            raise RankTableError(f"{where}: device_id {d.device_id} appears twice on server {d.server_id} "
                                 f"(ranks {seen[key]} and {d.rank_id}); each NPU can run one rank.")
        seen[key] = d.rank_id
        if d.device_ip in ips:
            raise RankTableError(f"{where}: device_ip {d.device_ip} is given to ranks {ips[d.device_ip]} and "
                                 f"{d.rank_id}; every NPU has its own address.")
        ips[d.device_ip] = d.rank_id


# -- making and writing ---------------------------------------------------------------------------------


def read_hccn_conf(path: str = "/etc/hccn.conf") -> Dict[int, str]:
    """Device id -> interconnect address, from the ``address_<id>=<ip>`` lines of ``hccn.conf``.

    ``hccn.conf`` is written by the NPU driver's network set-up (``hccn_tool``) on every Ascend server.

    Raises:
        RankTableError: if the file is missing or holds no address.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise RankTableError(
            f"cannot read {path} ({e.strerror or e}), which holds the NPUs' addresses on an Ascend server. "
            "Give the addresses yourself (main.py: --npu_device_ips, or a ready table with --rank_table_file; "
            "tools/make_rank_table.py: --device_ips), or point --hccn_conf at the file."
        ) from None
    addresses: Dict[int, str] = {}
    for n, line in enumerate(lines, 1):
        key, sep, value = line.strip().partition("=")
        if not sep or not key.startswith("address_"):
            continue
        suffix = key[len("address_"):]
        if not suffix.isdigit():
            raise RankTableError(f"{path} line {n}: {key!r} should be address_<device id>.")
        try:
            addresses[int(suffix)] = str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise RankTableError(f"{path} line {n}: {value.strip()!r} is not an IP address.") from None
    if not addresses:
        raise RankTableError(f"{path} has no address_<device id>=<ip> line; configure the NPU network "
                             "(hccn_tool) or give the addresses yourself (--npu_device_ips / --device_ips).")
    return addresses


def make_local_rank_table(
    device_ids: Sequence[int], device_ips: Mapping[int, str], *, server_id: str = "127.0.0.1"
) -> RankTable:
    """A one-server table: rank ``i`` runs on ``device_ids[i]``.

    Args:
        device_ids: the NPUs to use, in rank order.
        device_ips: address of each device id (e.g. from :func:`read_hccn_conf`); extra ids are ignored.
        server_id: this server's id in the table.

    Raises:
        RankTableError: for a missing address, a repeated device or a bad address.
    """
    if not device_ids:
        raise RankTableError("no device ids: pass at least one NPU id.")
    devices = []
    for rank, device_id in enumerate(device_ids):
        if int(device_id) < 0:
            raise RankTableError(f"device id {device_id} is negative; NPU ids start at 0.")
        if int(device_id) not in device_ips:
            known = ", ".join(str(k) for k in sorted(device_ips)) or "none"
            raise RankTableError(f"no address for NPU {device_id} (addresses known for NPUs: {known}); use "
                                 "device ids of NPUs that exist on this server.")
        try:
            ip = str(ipaddress.ip_address(str(device_ips[int(device_id)]).strip()))
        except ValueError:
            raise RankTableError(f"address of NPU {device_id}, {device_ips[int(device_id)]!r}, is not an IP "
                                 "address.") from None
        devices.append(RankDevice(rank, int(device_id), ip, server_id))
    _check_unique(devices, "the generated rank table")
    return RankTable(tuple(devices), FORMAT_V1_0, None)


def merge_rank_tables(tables: Sequence[RankTable]) -> RankTable:
    """One cluster table from per-server tables: servers in the given order, ranks renumbered 0..N-1.

    Raises:
        RankTableError: if a server appears in more than one table.
    """
    devices: List[RankDevice] = []
    owner: Dict[str, str] = {}
    for i, table in enumerate(tables):
        name = table.path or f"table {i + 1}"
        for server in table.servers:
            if server in owner:
                raise RankTableError(f"server {server} is in both {owner[server]} and {name}; give every server "
                                     "its own id (tools/make_rank_table.py --server_id=<its address>).")
            owner[server] = name
            for d in table.devices_on(server):
                devices.append(RankDevice(len(devices), d.device_id, d.device_ip, server))
    if not devices:
        raise RankTableError("nothing to merge: pass at least one rank table.")
    _check_unique(devices, "the merged rank table")
    return RankTable(tuple(devices), FORMAT_V1_0, None)


def write_rank_table(table: RankTable, path: str) -> str:
    """Writes ``table`` to ``path`` in the version 1.0 layout, atomically; returns the absolute path."""
    path = os.path.abspath(path)
    write_text(path, json.dumps(table.to_v1_0(), indent=2) + "\n")
    return path
