"""The NPU launcher: one real process per NPU, each with the environment HCCL and npu_device expect.

A small worker program (``npu_rank_worker.py``) stands in for training and records what it was
started with; the launcher, the rank table and the supervision are the real ones.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
from npu_testutil import FAKES, SEED_8P_JSON, WORKER, drop_standin_modules, v1_0_table, write_hccn_conf, write_json

from backends import npu, npu_launch
from backends import rank_table as rt


@pytest.fixture(autouse=True)
def adapter_importable(monkeypatch):
    """The launcher checks that the adapter exists before it starts ranks: let it find the stand-in."""
    monkeypatch.syspath_prepend(FAKES)


def _backend(tmp_path, rank_size, environ=None, **launch):
    launch.setdefault("hccn_conf", write_hccn_conf(tmp_path / "hccn.conf", 8))
    launch.setdefault("log_dir", str(tmp_path / "results"))
    config = npu_launch.NpuLaunchConfig(rank_size=rank_size, **launch)
    env = dict(os.environ if environ is None else environ)
    for var in ("RANK_ID", "RANK_SIZE", "ASCEND_DEVICE_ID", "RANK_TABLE_FILE"):
        env.pop(var, None)
    env["WORKER_OUT_DIR"] = str(tmp_path)
    return npu.NPUBackend(rank_size=rank_size, launch=config, environ=env)


def _records(tmp_path, n):
    out = []
    for rank in range(n):
        with open(tmp_path / f"rank{rank}.json", encoding="utf-8") as f:
            out.append(json.load(f))
    return out


@pytest.mark.keras2
def test_each_rank_gets_its_environment_and_a_generated_rank_table(tmp_path):
    backend = _backend(tmp_path, 2, device_ids=[3, 1], job_id="job-7")
    assert backend.maybe_launch([WORKER, "--synthetic", "--batch_size=2"]) == 0
    records = _records(tmp_path, 2)
    table_path = str(tmp_path / "results" / "rank_table.json")
    for rank, (record, device) in enumerate(zip(records, [3, 1])):
        assert record["env"] == {
            "RANK_SIZE": "2", "RANK_ID": str(rank), "ASCEND_DEVICE_ID": str(device), "DEVICE_ID": str(device),
            "JOB_ID": "job-7", "RANK_TABLE_FILE": table_path, "CM_CHIEF_IP": None, "TF_CONFIG": None,
        }
        assert record["argv"] == ["--synthetic", "--batch_size=2"]  # the same command line for every rank
    table = rt.load_rank_table(table_path)
    assert table.source_format == rt.FORMAT_V1_0
    assert [(d.rank_id, d.device_id, d.device_ip) for d in table.devices] == [
        (0, 3, "192.168.103.101"), (1, 1, "192.168.101.101")]
    # Every rank's full output is kept beside the per-rank results directories.
    with open(tmp_path / "results" / "launcher_rank_1.log", encoding="utf-8") as f:
        assert "worker for rank 1 on NPU 1 done" in f.read()


def test_a_given_rank_table_decides_ranks_and_devices(tmp_path):
    table = json.loads(SEED_8P_JSON)
    devices = table["group_list"][0]["instance_list"][0]["devices"]
    devices.reverse()  # rank r runs on NPU 7 - r: ranks follow the file, not the device ids
    table_path = write_json(tmp_path / "8p.json", table)
    backend = _backend(tmp_path, 8, rank_table_file=table_path, hccn_conf="/nonexistent")
    assert backend.maybe_launch([WORKER]) == 0
    for rank, record in enumerate(_records(tmp_path, 8)):
        assert record["env"]["RANK_ID"] == str(rank)
        assert record["env"]["ASCEND_DEVICE_ID"] == str(7 - rank)
        assert record["env"]["RANK_TABLE_FILE"] == os.path.abspath(table_path)
        assert record["env"]["RANK_SIZE"] == "8"


def test_a_failing_rank_stops_the_job_and_is_named(tmp_path, capfd):
    backend = _backend(tmp_path, 3)
    code = backend.maybe_launch([WORKER, "--fail_rank=1"])
    assert code == 3
    err = capfd.readouterr().err
    assert "rank 1" in err and "exited with code 3" in err
    assert "Stopped rank(s) 0, 2" in err  # the others were waiting for it and were stopped
    assert "HCCL init failed (simulated)" in err  # the failed rank's last lines are shown


def test_bind_cores_gives_each_rank_its_own_cores(tmp_path):
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        pytest.skip("needs at least 2 CPU cores")
    backend = _backend(tmp_path, 2, bind_cores=True)
    assert backend.maybe_launch([WORKER]) == 0
    cpus = [set(r["cpus"]) for r in _records(tmp_path, 2)]
    assert cpus[0] and cpus[1] and not cpus[0] & cpus[1]
    assert cpus[0] | cpus[1] <= set(available)
    assert max(cpus[0]) < min(cpus[1])  # contiguous slices in rank order, as the Ascend recipe's taskset ranges


def test_in_a_container_ranks_get_logical_device_ids(tmp_path):
    """The rank table names physical NPUs 4..7; a container that mounts them sees them as logical 0..3."""
    table = v1_0_table(4)
    for rank, device in enumerate(table["server_list"][0]["device"]):
        device["device_id"] = str(7 - rank)  # rank r on physical NPU 7 - r
    table_path = write_json(tmp_path / "4p.json", table)
    env = dict(os.environ, ASCEND_VISIBLE_DEVICES="4-7")
    assert _backend(tmp_path, 4, environ=env, rank_table_file=table_path).maybe_launch([WORKER]) == 0
    assert [r["env"]["ASCEND_DEVICE_ID"] for r in _records(tmp_path, 4)] == ["3", "2", "1", "0"]


def test_generated_tables_list_physical_ids_of_the_logical_ones(tmp_path):
    env = dict(os.environ, ASCEND_VISIBLE_DEVICES="4,5,6,7")
    assert _backend(tmp_path, 2, environ=env, device_ids=[1, 0]).maybe_launch([WORKER]) == 0
    assert [r["env"]["ASCEND_DEVICE_ID"] for r in _records(tmp_path, 2)] == ["1", "0"]
    table = rt.load_rank_table(str(tmp_path / "results" / "rank_table.json"))
    assert [(d.rank_id, d.device_id, d.device_ip) for d in table.devices] == [
        (0, 5, "192.168.105.101"), (1, 4, "192.168.104.101")]  # hccn.conf addresses of physical 5 and 4


def test_npu_device_ids_take_precedence_over_the_rank_tables(tmp_path):
    table_path = write_json(tmp_path / "2p.json", v1_0_table(2))
    assert _backend(tmp_path, 2, rank_table_file=table_path, device_ids=[6, 3]).maybe_launch([WORKER]) == 0
    assert [r["env"]["ASCEND_DEVICE_ID"] for r in _records(tmp_path, 2)] == ["6", "3"]
    with pytest.raises(ValueError, match="--npu_device_ids lists 1 NPU.*2 rank"):
        _backend(tmp_path, 2, rank_table_file=table_path, device_ids=[6]).maybe_launch([WORKER])


def test_a_rank_table_device_outside_the_container_is_refused(tmp_path):
    table_path = write_json(tmp_path / "2p.json", v1_0_table(2))  # physical NPUs 0 and 1
    env = dict(os.environ, ASCEND_VISIBLE_DEVICES="4-7")
    with pytest.raises(ValueError, match="NPU 0 .*is not mounted in this container"):
        _backend(tmp_path, 2, environ=env, rank_table_file=table_path).maybe_launch([WORKER])


def test_cpu_slices():
    assert npu_launch.cpu_slices(range(192), 8)[1] == list(range(24, 48))  # the Ascend recipe's 24 cores per NPU
    assert npu_launch.cpu_slices([5, 1, 3, 7, 9], 2) == [[1, 3], [5, 7]]
    with pytest.raises(ValueError, match="1 CPU core.*among 2 ranks"):
        npu_launch.cpu_slices([0], 2)


@pytest.mark.parametrize("launch, environ_extra, message", [
    ({"rank_table_file": "SEED"}, {}, "lists 8 device.*--rank_size=4"),
    ({"hccn_conf": "/nonexistent/hccn.conf"}, {}, "cannot read /nonexistent/hccn.conf"),
    ({"device_ids": [0, 1]}, {}, "--npu_device_ids lists 2 NPU.*--rank_size=4"),
    ({"device_ips": ["10.1.1.1"]}, {}, "--npu_device_ips lists 1 address"),
    ({"group_size": 2}, {}, "needs the cluster's rank table"),
    ({}, {"CM_CHIEF_IP": "10.0.0.1"}, "rank-table-free mode: CM_CHIEF_PORT, CM_CHIEF_DEVICE, CM_WORKER_SIZE"),
])
def test_bad_launch_settings_fail_before_any_rank_starts(tmp_path, launch, environ_extra, message):
    if launch.get("rank_table_file") == "SEED":
        launch["rank_table_file"] = write_json(tmp_path / "8p.json", SEED_8P_JSON)
    environ = dict(os.environ, **environ_extra)
    backend = _backend(tmp_path, 4, environ=environ, **launch)
    with pytest.raises(ValueError, match=message):
        backend.maybe_launch([WORKER])
    assert not list(tmp_path.glob("rank*.json"))


def test_without_the_adapter_no_rank_starts(tmp_path, monkeypatch):
    drop_standin_modules()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != FAKES])
    with pytest.raises(npu.AdapterNotInstalledError, match="TensorFlow 2.6"):
        _backend(tmp_path, 2).maybe_launch([WORKER])
    assert not list(tmp_path.glob("rank*.json"))


def test_a_process_with_rank_id_runs_as_that_rank(tmp_path):
    env = {"RANK_ID": "1", "RANK_SIZE": "2", "ASCEND_DEVICE_ID": "1",
           "RANK_TABLE_FILE": write_json(tmp_path / "t.json", v1_0_table(2))}
    backend = npu.NPUBackend(rank_size=2, launch=npu_launch.NpuLaunchConfig(rank_size=2), environ=env)
    assert backend.maybe_launch([WORKER]) is None  # trains itself, starts nothing
    assert backend.rank == 1 and backend.world_size == 2
    assert not list(tmp_path.glob("rank*.json"))
    single = npu.NPUBackend(rank_size=1, launch=npu_launch.NpuLaunchConfig(rank_size=1), environ={})
    assert single.maybe_launch([WORKER]) is None
