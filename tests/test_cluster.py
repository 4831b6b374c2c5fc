"""Cluster descriptions, backend choice and launch plans: no training, no TensorFlow runtime."""

import json
import os
import sys

import pytest
import tensorflow as tf
from conftest import run_main

from backends.auto import choose_backend
from backends.cluster import ClusterError, cluster_from_flags, cluster_from_tf_config, local_clusters, resolve_cluster
from backends.cpu import CPUBackend
from backends.distributed import split_cpus
from backends.gpu import GPUBackend, NoGPUError


def tf_config(workers, index, chief=None, task_type="worker"):
    cluster = {"worker": workers}
    if chief:
        cluster["chief"] = [chief]
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def test_cluster_from_flags():
    c = cluster_from_flags(["10.0.0.1:2222", "10.0.0.2:2222"], 1)
    assert (c.rank, c.world_size, c.addresses) == (1, 2, ["10.0.0.1:2222", "10.0.0.2:2222"])
    assert json.loads(c.tf_config()) == json.loads(tf_config(["10.0.0.1:2222", "10.0.0.2:2222"], 1))
    assert cluster_from_flags([], None) is None


@pytest.mark.parametrize("hosts, index, message", [
    ([], 0, "--task_index needs --worker_hosts"),
    (["a:1", "b:2"], None, "pass --task_index=0..1"),
    (["a:1", "b:2"], 2, "--task_index=2 is out of range for 2"),
    (["a:1", "b"], 0, "'b' is not host:port"),
    (["a:1", "a:99999"], 0, "'a:99999' is not host:port"),
    (["a:1", "a:1"], 0, "a:1 listed more than once"),
])
def test_cluster_from_flags_errors(hosts, index, message):
    with pytest.raises(ClusterError, match=message):
        cluster_from_flags(hosts, index)


def test_cluster_from_tf_config_with_chief():
    chief = cluster_from_tf_config(tf_config(["w0:1", "w1:1"], 0, chief="c:1", task_type="chief"))
    worker = cluster_from_tf_config(tf_config(["w0:1", "w1:1"], 1, chief="c:1"))
    assert (chief.rank, chief.world_size) == (0, 3)
    assert (worker.rank, worker.addresses) == (2, ["c:1", "w0:1", "w1:1"])
    assert cluster_from_tf_config("") is None
    assert cluster_from_tf_config('{"task": {}}') is None  # TensorFlow treats this as one process too


@pytest.mark.parametrize("text, message", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"ps": ["p:1"], "worker": ["w:1"]}, "task": {"type": "worker", "index": 0}}',
     "parameter servers and evaluators are not supported"),
    ('{"cluster": {"worker": ["w:1"]}, "task": {"type": "chief", "index": 0}}', "task type 'chief' is not a job"),
    ('{"cluster": {"worker": ["w:1"]}, "task": {"type": "worker", "index": 3}}', "task index 3 is out of range"),
])
def test_cluster_from_tf_config_errors(text, message):
    with pytest.raises(ClusterError, match=message):
        cluster_from_tf_config(text)


def test_flags_and_tf_config_must_agree():
    env = {"TF_CONFIG": tf_config(["a:1", "b:1"], 1)}
    assert resolve_cluster(["a:1", "b:1"], 1, env).rank == 1
    assert resolve_cluster([], None, env).rank == 1
    with pytest.raises(ClusterError, match="contradict TF_CONFIG"):
        resolve_cluster(["a:1", "b:1"], 0, env)


def test_local_clusters_use_distinct_free_ports():
    clusters = local_clusters(3)
    assert [c.rank for c in clusters] == [0, 1, 2]
    assert len(set(clusters[0].addresses)) == 3 and all(c.addresses == clusters[0].addresses for c in clusters)
    assert cluster_from_tf_config(clusters[2].tf_config()) == clusters[2]


def test_split_cpus():
    assert split_cpus([3, 0, 1, 2], 2, 2) == [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match="needs 6 cores; this process may use 4"):
        split_cpus(range(4), 3, 2)


def test_choose_backend():
    yes, no = (lambda: (True, "loads")), (lambda: (False, "no adapter"))
    assert choose_backend({"cpu", "gpu", "npu"}, yes, lambda: 2)[0] == "npu"
    assert choose_backend({"cpu", "gpu"}, yes, lambda: 0) == ("cpu", "npu_device loads but no 'npu' backend "
                                                               "is registered; no GPU visible")
    name, reason = choose_backend({"cpu", "gpu", "npu"}, no, lambda: 2)
    assert name == "gpu" and "2 GPU(s) visible" in reason
    assert choose_backend({"cpu", "gpu", "npu"}, no, lambda: 0)[0] == "cpu"
    # On this machine, for real:
    expected = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    try:
        import npu_device  # noqa: F401
        expected = "npu"
    except ImportError:
        pass
    assert choose_backend({"cpu", "gpu", "npu"})[0] == expected


def test_cpu_launch_plan_relaunches_this_command_per_rank():
    backend = CPUBackend(rank_size=3, cpus_per_rank=0, environ={})
    assert backend.is_launcher and (backend.rank, backend.world_size) == (0, 1)
    plan = backend.launch_plan(["main.py", "--rank_size=3", "--synthetic"])
    assert plan["commands"] == [[sys.executable, os.path.abspath("main.py"), "--rank_size=3", "--synthetic"]] * 3
    clusters = [cluster_from_tf_config(env["TF_CONFIG"]) for env in plan["per_rank_env"]]
    assert [c.rank for c in clusters] == [0, 1, 2]
    assert all(a.startswith("127.0.0.1:") for a in clusters[0].addresses)
    assert plan["cpu_sets"] is None
    # A process that has a cluster is a worker, not a launcher.
    worker = CPUBackend(rank_size=3, environ={"TF_CONFIG": clusters[1].tf_config()})
    assert not worker.is_launcher and (worker.rank, worker.world_size, worker.local_replicas) == (1, 3, 1)
    # --nomulti_worker: replicas in this process.
    assert not CPUBackend(rank_size=3, multi_worker=False, environ={}).is_launcher


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux CPU affinity")
def test_cpu_launch_plan_pins_cores():
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("needs 2 cores")
    plan = CPUBackend(rank_size=2, cpus_per_rank=1, environ={}).launch_plan(["main.py"])
    assert plan["cpu_sets"] == [[cores[0]], [cores[1]]]


def test_cpu_worker_rank_size_must_match_cluster():
    backend = CPUBackend(rank_size=4, environ={"TF_CONFIG": tf_config(["a:1", "b:1"], 0)})
    with pytest.raises(ValueError, match="a CPU worker trains one replica, so pass --rank_size=2"):
        backend.validate()
    with pytest.raises(ValueError, match="--rank_size=3 is not a multiple of the 2 workers"):
        CPUBackend(rank_size=3, environ={"TF_CONFIG": tf_config(["a:1", "b:1"], 0)}).validate()


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="this machine has a GPU")
def test_gpu_backend_without_gpu_says_so():
    with pytest.raises(NoGPUError, match="no GPU is visible to TensorFlow.*--backend=cpu"):
        GPUBackend(rank_size=1, environ={}).validate()
    with pytest.raises(NoGPUError, match="no GPU is visible"):
        GPUBackend(rank_size=2, multi_worker=True, environ={}).maybe_launch(["main.py"])


def test_main_reports_bad_distribution_flags_without_starting_workers(tmp_path):
    proc = run_main("--backend=cpu", "--synthetic", "--rank_size=64", "--cpus_per_rank=1", f"--log_dir={tmp_path}",
                    check=False)
    assert proc.returncode == 1
    assert "--cpus_per_rank=1 with --rank_size=64 needs 64 cores" in proc.stderr
    assert "[launcher] started" not in proc.stdout
    proc = run_main("--backend=cpu", "--synthetic", "--worker_hosts=127.0.0.1:1,127.0.0.1:2", f"--log_dir={tmp_path}",
                    check=False)
    assert proc.returncode == 1 and "pass --task_index=0..1" in proc.stderr
