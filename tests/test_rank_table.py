"""Rank tables: both layouts read and validated, bad files rejected with clear messages, 1.0 written."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
from npu_testutil import ROOT, SEED_8P_JSON, v1_0_table, write_hccn_conf, write_json

from backends import rank_table as rt


def test_reads_the_seeds_8p_json(tmp_path):
    table = rt.load_rank_table(write_json(tmp_path / "8p.json", SEED_8P_JSON))
    assert table.source_format == rt.FORMAT_GROUP_LIST
    assert table.rank_size == 8
    assert table.servers == ["127.0.0.1"]
    # No rank ids in this layout: ranks follow file order.
    assert [d.rank_id for d in table.devices] == list(range(8))
    assert [d.device_id for d in table.devices] == list(range(8))
    assert table.device_of_rank(4).device_ip == "192.168.100.100"
    table.check_rank_size(8)


def test_reads_version_1_0_with_ranks_out_of_file_order(tmp_path):
    data = v1_0_table(4)
    devices = data["server_list"][0]["device"]
    devices[0]["rank_id"], devices[3]["rank_id"] = "3", "0"
    table = rt.load_rank_table(write_json(tmp_path / "t.json", data))
    assert table.source_format == rt.FORMAT_V1_0
    assert [d.rank_id for d in table.devices] == [0, 1, 2, 3]
    assert table.device_of_rank(0).device_id == 3
    assert table.device_of_rank(3).device_id == 0


def test_two_servers_need_server_id(tmp_path):
    data = v1_0_table(2, "10.0.0.1")
    second = copy.deepcopy(data["server_list"][0])
    second["server_id"] = "10.0.0.2"
    for i, d in enumerate(second["device"]):
        d["rank_id"] = str(2 + i)
        d["device_ip"] = f"192.168.{100 + i}.200"
    data["server_list"].append(second)
    data["server_count"] = "2"
    table = rt.parse_rank_table(data)
    assert table.servers == ["10.0.0.1", "10.0.0.2"]
    assert [d.rank_id for d in table.local_devices("10.0.0.2")] == [2, 3]
    with pytest.raises(rt.RankTableError, match="--server_id"):
        table.local_devices()
    with pytest.raises(rt.RankTableError, match="10.0.0.9 is not in"):
        table.local_devices("10.0.0.9")


def test_write_then_read_round_trip_converts_to_1_0(tmp_path):
    seed = rt.load_rank_table(write_json(tmp_path / "8p.json", SEED_8P_JSON))
    path = rt.write_rank_table(seed, str(tmp_path / "out" / "table.json"))
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    assert raw["version"] == "1.0" and raw["status"] == "completed" and raw["server_count"] == "1"
    assert all(isinstance(v, str) for d in raw["server_list"][0]["device"] for v in d.values())
    again = rt.load_rank_table(path)
    assert again.source_format == rt.FORMAT_V1_0
    assert again.devices == seed.devices
    assert not [n for n in os.listdir(tmp_path / "out") if n != "table.json"]  # no temporary file left


def _mutated(change):
    data = v1_0_table(2)
    change(data)
    return data


def _set(path, value):
    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return change


_DELETE = object()
DEV = ("server_list", 0, "device")

BAD_TABLES = [
    (_set(("status",), "pending"), "status"),
    (_set(("version",), "2.0"), "version"),
    (_set(("server_count",), "3"), "server_count\" is 3 but there are 1"),
    (_set(("server_list",), []), "server_list\" must be a non-empty list"),
    (_set(DEV + (1, "rank_id"), "0"), r"rank ids \[0\] appear more than once"),
    (_set(DEV + (1, "rank_id"), "5"), "rank ids 0..1"),
    (_set(DEV + (1, "device_id"), "0"), "device_id 0 appears twice"),
    (_set(DEV + (1, "device_ip"), "192.168.100.100"), "device_ip 192.168.100.100 is given to ranks 0 and 1"),
    (_set(DEV + (0, "device_ip"), "npu0.local"), r"server_list\[0\].device\[0\]: \"device_ip\" must be an IP"),
    (_set(DEV + (0, "device_id"), "-1"), "non-negative integer"),
    (_set(DEV + (1, "rank_id"), _DELETE), r"device\[1\] has no \"rank_id\""),
    (_set(("server_list", 0, "server_id"), _DELETE), "has no \"server_id\""),
    (_set(("status",), _DELETE), "has no \"status\""),
]


@pytest.mark.parametrize("change, message", BAD_TABLES)
def test_bad_version_1_0_tables_are_rejected_with_the_reason(tmp_path, change, message):
    path = write_json(tmp_path / "bad.json", _mutated(change))
    with pytest.raises(rt.RankTableError, match=message) as info:
        rt.load_rank_table(path)
    assert path in str(info.value)  # names the file


def test_bad_group_list_tables_are_rejected(tmp_path):
    data = json.loads(SEED_8P_JSON)
    data["group_list"][0]["device_count"] = "4"
    with pytest.raises(rt.RankTableError, match="device_count\" is 4 but there are 8"):
        rt.parse_rank_table(data)
    data = json.loads(SEED_8P_JSON)
    data["group_list"][0]["instance_list"][0]["devices"][7]["device_id"] = "6"
    with pytest.raises(rt.RankTableError, match="device_id 6 appears twice on server 127.0.0.1"):
        rt.parse_rank_table(data)
    data = json.loads(SEED_8P_JSON)
    del data["group_list"][0]["instance_list"][0]["pod_name"]
    with pytest.raises(rt.RankTableError, match=r"instance_list\[0\] has no \"pod_name\""):
        rt.parse_rank_table(data)


def test_files_that_are_not_rank_tables(tmp_path):
    with pytest.raises(rt.RankTableError, match="not valid JSON: .* line 1"):
        rt.load_rank_table(write_json(tmp_path / "a.json", '{"server_list": ['))
    with pytest.raises(rt.RankTableError, match="unknown layout"):
        rt.load_rank_table(write_json(tmp_path / "b.json", {"servers": []}))
    with pytest.raises(rt.RankTableError, match="top level must be a JSON object"):
        rt.load_rank_table(write_json(tmp_path / "c.json", "[1, 2]"))
    with pytest.raises(rt.RankTableError, match="cannot read rank table .*missing.json"):
        rt.load_rank_table(str(tmp_path / "missing.json"))


def test_rank_size_must_match(tmp_path):
    table = rt.parse_rank_table(v1_0_table(4), path="t.json")
    with pytest.raises(rt.RankTableError, match="t.json lists 4 device.*--rank_size=8"):
        table.check_rank_size(8)


def test_hccn_conf_and_local_table(tmp_path):
    addresses = rt.read_hccn_conf(write_hccn_conf(tmp_path / "hccn.conf", 4))
    assert addresses == {i: f"192.168.{100 + i}.101" for i in range(4)}
    table = rt.make_local_rank_table([2, 3], addresses, server_id="10.1.1.1")
    assert [(d.rank_id, d.device_id, d.server_id) for d in table.devices] == [(0, 2, "10.1.1.1"), (1, 3, "10.1.1.1")]
    with pytest.raises(rt.RankTableError, match="no address for NPU 7"):
        rt.make_local_rank_table([0, 7], addresses)
    with pytest.raises(rt.RankTableError, match="device_id 1 appears twice"):
        rt.make_local_rank_table([1, 1], addresses)
    with pytest.raises(rt.RankTableError, match="cannot read .*nothere.conf"):
        rt.read_hccn_conf(str(tmp_path / "nothere.conf"))
    bad = tmp_path / "bad.conf"
    bad.write_text("address_0=300.1.1.1\n")
    with pytest.raises(rt.RankTableError, match="line 1: '300.1.1.1' is not an IP address"):
        rt.read_hccn_conf(str(bad))


def test_merge_per_server_tables_into_a_cluster_table(tmp_path):
    one = rt.parse_rank_table(v1_0_table(2, "10.0.0.1"), path="one.json")
    two = rt.parse_rank_table(v1_0_table(2, "10.0.0.2"), path="two.json")
    two = rt.RankTable(tuple(rt.RankDevice(d.rank_id, d.device_id, d.device_ip.replace(".100", ".200"), d.server_id)
                             for d in two.devices), two.source_format, "two.json")
    cluster = rt.merge_rank_tables([two, one])
    assert [(d.rank_id, d.server_id, d.device_id) for d in cluster.devices] == [
        (0, "10.0.0.2", 0), (1, "10.0.0.2", 1), (2, "10.0.0.1", 0), (3, "10.0.0.1", 1)]
    assert rt.parse_rank_table(cluster.to_v1_0()).devices == cluster.devices
    with pytest.raises(rt.RankTableError, match="server 10.0.0.1 is in both one.json and one.json"):
        rt.merge_rank_tables([one, one])


def _tool(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_rank_table.py"), *args],
                          capture_output=True, text=True, timeout=300)


def test_make_rank_table_tool_generates_checks_and_converts(tmp_path):
    hccn = write_hccn_conf(tmp_path / "hccn.conf", 8)
    out = tmp_path / "rt.json"
    proc = _tool("--rank_size=4", "--device_ids=4,5,6,7", f"--hccn_conf={hccn}", "--server_id=10.0.0.7",
                 f"--output={out}")
    assert proc.returncode == 0, proc.stderr
    table = rt.load_rank_table(str(out))
    assert [d.device_id for d in table.devices] == [4, 5, 6, 7]
    assert table.device_of_rank(0).device_ip == "192.168.104.101"
    assert table.servers == ["10.0.0.7"]

    seed = write_json(tmp_path / "8p.json", SEED_8P_JSON)
    proc = _tool(f"--input={seed}", "--rank_size=4")
    assert proc.returncode == 1
    assert "lists 8 device(s) but --rank_size=4" in proc.stderr
    assert "Traceback" not in proc.stderr

    converted = tmp_path / "8p_v1_0.json"
    proc = _tool(f"--input={seed}", f"--output={converted}")
    assert proc.returncode == 0, proc.stderr
    assert "rank   7" in proc.stdout
    assert rt.load_rank_table(str(converted)).devices == rt.load_rank_table(seed).devices

    # Two servers' tables merged: the second server's ranks follow the first's.
    cluster = tmp_path / "cluster.json"
    proc = _tool("--merge", str(out), str(converted), f"--output={cluster}", "--rank_size=12")
    assert proc.returncode == 0, proc.stderr
    merged = rt.load_rank_table(str(cluster))
    assert merged.servers == ["10.0.0.7", "127.0.0.1"]
    assert [d.rank_id for d in merged.local_devices("127.0.0.1")] == list(range(4, 12))
