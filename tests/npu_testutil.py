"""Helpers for the NPU tests: the ``npu_device`` stand-in, rank tables, recorded calls, rank processes."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from typing import Dict, Iterator, List

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
FAKES = os.path.join(TESTS, "fakes")  # holds the npu_device stand-in package
WORKER = os.path.join(TESTS, "npu_rank_worker.py")
COLLECTIVE_WORKER = os.path.join(TESTS, "npu_collective_worker.py")
# What a launched rank or a hand-started one may find in its environment; cleared for every test process.
LAUNCH_VARS = ("RANK_ID", "RANK_SIZE", "ASCEND_DEVICE_ID", "DEVICE_ID", "RANK_TABLE_FILE", "JOB_ID",
               "CM_CHIEF_IP", "CM_CHIEF_PORT", "CM_CHIEF_DEVICE", "CM_WORKER_SIZE", "CM_WORKER_IP",
               "ASCEND_VISIBLE_DEVICES", "NPU_LOOP_SIZE")
# Huawei's documented rank-table-free environment (HCCL user guide, "configuring resource information with
# environment variables", CANN 8.0.0): one job of 8 devices, this worker on the chief's host.
HUAWEI_CM_ENV = {"CM_CHIEF_IP": "192.168.1.1", "CM_CHIEF_PORT": "6000", "CM_CHIEF_DEVICE": "0",
                 "CM_WORKER_SIZE": "8", "CM_WORKER_IP": "192.168.0.1", "HCCL_SOCKET_FAMILY": "AF_INET"}

# The Ascend recipe's scripts/8p.json, verbatim.
SEED_8P_JSON = """{"group_count": "1","group_list":
                    [{"group_name": "worker","device_count": "8","instance_count": "1", "instance_list":
                    [{"devices":
                                   [{"device_id":"0","device_ip":"192.168.100.101"},
                                    {"device_id":"1","device_ip":"192.168.101.101"},
                                    {"device_id":"2","device_ip":"192.168.102.101"},
                                    {"device_id":"3","device_ip":"192.168.103.101"},
                                    {"device_id":"4","device_ip":"192.168.100.100"},
                                    {"device_id":"5","device_ip":"192.168.101.100"},
                                    {"device_id":"6","device_ip":"192.168.102.100"},
                                    {"device_id":"7","device_ip":"192.168.103.100"}],
                                    "pod_name":"npu8p",        "server_id":"127.0.0.1"}]}],"status": "completed"}
"""


def v1_0_table(n: int, server_id: str = "10.0.0.1") -> Dict:
    """A version 1.0 table of ``n`` devices on one server."""
    return {
        "server_count": "1",
        "server_list": [{
            "server_id": server_id,
            "device": [{"device_id": str(i), "device_ip": f"192.168.{100 + i}.100", "rank_id": str(i)}
                       for i in range(n)],
        }],
        "status": "completed",
        "version": "1.0",
    }


def write_json(path: str, data) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def write_hccn_conf(path: str, n: int) -> str:
    """An ``/etc/hccn.conf`` as the NPU driver writes it, for ``n`` devices."""
    lines = []
    for i in range(n):
        lines += [f"address_{i}=192.168.{100 + i}.101", f"netmask_{i}=255.255.255.0"]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def standin_env(log_dir: str, **extra: str) -> Dict[str, str]:
    """Environment for a ``main.py`` process that imports the stand-in and records to ``log_dir``."""
    env = dict(os.environ)
    for var in LAUNCH_VARS:
        env.pop(var, None)
    env["PYTHONPATH"] = os.pathsep.join([FAKES, ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["NPU_STANDIN_LOG_DIR"] = str(log_dir)
    env["NPU_STANDIN_RENDEZVOUS_DIR"] = str(log_dir)  # where rank 0 publishes its port: private to the test
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["TF_USE_LEGACY_KERAS"] = "1"  # the adapter runs on Keras 2 only (TensorFlow 2.6's tf.keras)
    env.update(extra)
    return env


def read_calls(log_dir: str) -> Dict[str, List[Dict]]:
    """Recorded calls per process (``calls-<pid>.jsonl``), keyed by ``rank<R>`` from the process's ``open``
    (``pid<P>`` for a process that opened no device; ``rank<R>-pid<P>`` for a later process of the same rank)."""
    out: Dict[str, List[Dict]] = {}
    for path in sorted(glob.glob(os.path.join(str(log_dir), "calls-*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            calls = [json.loads(line) for line in f if line.strip()]
        opened = events(calls, "open")
        pid = os.path.basename(path)[len("calls-"):-len(".jsonl")]
        key = f"rank{opened[0]['worker_id']}" if opened else f"pid{pid}"
        out[f"{key}-pid{pid}" if key in out else key] = calls  # several processes in turn: all kept
    return out


def events(calls: List[Dict], name: str) -> List[Dict]:
    return [c for c in calls if c["event"] == name]


def first_seq(calls: List[Dict], name: str) -> int:
    found = events(calls, name)
    assert found, f"no {name} call recorded; calls: {[c['event'] for c in calls]}"
    return found[0]["seq"]


def standin_session(monkeypatch) -> Iterator:
    """Body of a ``standin`` fixture: the stand-in imported in this process, reset before and after.

    Afterwards the stand-in is forgotten again, so that later tests in this process (``--backend=auto``
    probing for the adapter, for one) do not find it.
    """
    monkeypatch.syspath_prepend(FAKES)
    for var in LAUNCH_VARS + ("NPU_STANDIN_LOG_DIR",):
        monkeypatch.delenv(var, raising=False)
    drop_standin_modules()
    import npu_device
    from npu_device import _standin

    _standin.reset()
    try:
        yield npu_device
    finally:
        _standin.reset()
        drop_standin_modules()


def drop_standin_modules() -> None:
    """Forgets an imported stand-in (so that ``import npu_device`` searches sys.path again)."""
    for name in list(sys.modules):
        if name == "npu_device" or name.startswith("npu_device."):
            del sys.modules[name]


def start_ranks(script_args: List[List[str]], envs: List[Dict[str, str]]) -> List[subprocess.Popen]:
    """Starts one ``tests/npu_collective_worker.py`` process per rank (its own output in ``<out>.log``)."""
    procs = []
    for args, env in zip(script_args, envs):
        procs.append(subprocess.Popen([sys.executable, COLLECTIVE_WORKER] + args, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return procs


def wait_ranks(procs: List[subprocess.Popen], timeout: float = 300) -> List[str]:
    """Waits for every rank; returns their outputs; fails with them if one failed."""
    outputs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            outputs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode != 0]
    assert not failed, f"rank(s) failed {failed}:\n" + "\n---\n".join(o[-3000:] for o in outputs)
    return outputs
