"""Training on several replicas: worker processes (MultiWorkerMirroredStrategy over loopback) and
two logical CPU devices (MirroredStrategy) against one device with the same global batch.

Tolerance of the comparisons with one device: the replicas sum their gradients in another order,
so weights after a few steps differ by float32 rounding only; we allow 1e-4 absolute + 1e-3
relative per element. Measured maximum absolute differences after 3 steps (values up to 3):
1.5e-8 for two workers, 2.6e-6 for two logical CPUs (docs/distributed.md). Between the worker
processes themselves the weights must be bit-identical. The settings (he_uniform weights on noise
images) make the loss grow fast (2.7, 13, 50), which amplifies any error in how gradients are
averaged: a rank that skipped the all-reduce or scaled its loss wrongly would be far off.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, run_main

STEPS = 3
PER_REPLICA = 4
COMMON = [
    "--backend=cpu", "--extra_modules=tests/ordered_dataset.py", "--dataset=ordered_test", "--num_classes=4",
    "--image_size=63", "--dropout=0", "--seed=7", "--lr=0.0002", "--warmup_epochs=0", "--lr_schedule=constant",
    f"--max_train_steps={STEPS}", "--iterations_per_loop=2", "--save_summary_steps=1",
    f"--save_checkpoints_steps={STEPS}",
]
ATOL, RTOL = 1e-4, 1e-3


def checkpoint_values(directory: str, step: int = STEPS) -> dict:
    reader = tf.train.load_checkpoint(os.path.join(directory, f"model.ckpt-{step}"))
    # Weights, momentum slots and the step (Keras 3 files the model's weights under the optimizer).
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if "VARIABLE_VALUE" in k and not k.startswith("save_counter")}


def losses(text: str) -> list:
    return [float(m) for m in re.findall(r"step:\s+\d+, .*?, loss:\s*([\d.]+),", text)]


def assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and len(a) >= 32  # 8 layers x (kernel, bias) x (weight, momentum)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=ATOL, rtol=RTOL, err_msg=key)


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    """One device, global batch 2 x PER_REPLICA."""
    log_dir = str(tmp_path_factory.mktemp("single"))
    proc = run_main(*COMMON, "--rank_size=1", f"--batch_size={2 * PER_REPLICA}", f"--log_dir={log_dir}")
    return log_dir, proc.stdout


def test_two_worker_processes_match_one_device(single_device, tmp_path):
    single_dir, single_out = single_device
    root = str(tmp_path / "mw")
    proc = run_main(*COMMON, "--rank_size=2", f"--batch_size={PER_REPLICA}", f"--log_dir={root}")
    out = proc.stdout
    # Each rank's lines come through the launcher, tagged with its rank.
    assert re.search(r"^\[rank 0\] model=alexnet .* replicas=2 .*rank=0/2", out, re.M)
    assert re.search(r"^\[rank 1\] model=alexnet .* replicas=2 .*rank=1/2", out, re.M)
    # Both ranks hold bit-identical weights at the end (checked in the run, logged with the checksum).
    sums = re.findall(r"^\[rank (\d)\] weights identical on all 2 ranks: checksum (\S+)$", out, re.M)
    assert sorted(r for r, _ in sums) == ["0", "1"] and sums[0][1] == sums[1][1]
    # Rank 0 alone writes checkpoints, in its own directory; every rank writes its own log.
    assert os.path.exists(os.path.join(root, "0", f"model.ckpt-{STEPS}.index"))
    assert not [f for f in os.listdir(os.path.join(root, "1")) if f.startswith("model.ckpt")]
    for rank in (0, 1):
        text = open(os.path.join(root, str(rank), "alexnet_training.log")).read()
        assert len(losses(text)) == STEPS
        assert os.path.exists(os.path.join(root, f"launcher_rank_{rank}.log"))
    # Same global batch, same examples, same initial weights: the same training as one device.
    np.testing.assert_allclose(losses(open(os.path.join(root, "0", "alexnet_training.log")).read()),
                               losses(single_out), rtol=1e-4)
    assert_close(checkpoint_values(os.path.join(root, "0")), checkpoint_values(single_dir))
    # Training moved: the loss changed from step to step.
    assert len(set(losses(out))) > 1


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_mirrored_two_logical_cpus_match_one_device(single_device, tmp_path):
    single_dir, single_out = single_device
    log_dir = str(tmp_path / "mirrored")
    proc = run_main(*COMMON, "--rank_size=2", "--nomulti_worker", f"--batch_size={PER_REPLICA}",
                    f"--log_dir={log_dir}")
    assert re.search(r"^model=alexnet .* replicas=2 .*global_batch=8 ", proc.stdout, re.M)
    np.testing.assert_allclose(losses(proc.stdout), losses(single_out), rtol=1e-4)
    assert_close(checkpoint_values(log_dir), checkpoint_values(single_dir))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow  # minutes on a 2-core CI machine; `make test-slow` runs it
def test_killing_a_worker_stops_the_run_then_a_restart_resumes(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = [*COMMON, "--rank_size=2", f"--batch_size={PER_REPLICA}", f"--log_dir={tmp_path}"]
    cmd = [sys.executable, "main.py", *run, "--max_train_steps=100000", "--save_checkpoints_steps=2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids, lines, killed = {}, [], threading.Event()

    def read_stdout():
        for line in proc.stdout:
            lines.append(line)
            m = re.match(r"\[launcher\] started rank (\d+): pid (\d+)", line)
            if m:
                pids[int(m.group(1))] = int(m.group(2))
            # Step 3 needs both ranks, so rank 0 has saved model.ckpt-2 by then.
            if line.startswith("[rank 1] step:     3") and not killed.is_set():
                os.kill(pids[1], signal.SIGKILL)  # mid-training, while rank 0 waits on its all-reduces
                killed.set()

    reader = threading.Thread(target=read_stdout)
    reader.start()
    try:
        code = proc.wait(timeout=600)
        stderr = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=30)
    assert killed.is_set(), "training never reached step 3:\n" + "".join(lines[-20:])
    assert code == 128 + signal.SIGKILL
    assert f"rank 1 (pid {pids[1]}) was killed by SIGKILL" in stderr
    assert "Stopped rank(s) 0" in stderr
    assert "[rank 1] step:     3" in stderr  # its last log lines are shown
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in pids.values()):
        time.sleep(0.1)
    assert not [p for p in pids.values() if alive(p)]

    # Restarted, both ranks resume from rank 0's last checkpoint and finish in step.
    out = run_main(*run, "--max_train_steps=4", "--save_checkpoints_steps=2").stdout
    for rank in (0, 1):
        assert re.search(rf"^\[rank {rank}\] Resumed from \S+/0/model.ckpt-2: step 2,", out, re.M), out[-3000:]
        assert re.search(rf"^\[rank {rank}\] step:     4,", out, re.M)
    assert len(re.findall(r"weights identical on all 2 ranks", out)) == 2


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_worker_hosts_ranks_that_disagree_on_the_resume_step_fail_clearly(single_device, tmp_path):
    """Two processes join a cluster by --worker_hosts/--task_index (no launcher); rank 0 finds a
    checkpoint, rank 1 does not (no shared directory): both stop with a message, none hangs."""
    from backends.launcher import free_ports

    single_dir, _ = single_device
    hosts = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    procs = []
    for rank, ckpt_dir in enumerate([single_dir, str(tmp_path / "empty")]):
        cmd = [sys.executable, "main.py", *COMMON, "--rank_size=2", f"--batch_size={PER_REPLICA}",
               "--max_train_steps=5", f"--worker_hosts={hosts}", f"--task_index={rank}",
               f"--checkpoint_dir={ckpt_dir}", f"--log_dir={tmp_path / 'logs'}"]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    try:
        results = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rank, (p, (out, err)) in enumerate(zip(procs, results)):
        assert p.returncode == 1, out + err
        assert f"the step training starts from differs between ranks: {3 if rank == 0 else 0} on rank {rank}" in err
        assert "mean 1.5 over 2 replicas" in err and "same checkpoint directory" in err


BN = ["--extra_modules=tests/ordered_dataset.py,tests/bn_test_model.py", "--model=bn_test_net", "--lr=0.05"]


def _bn_stats(directory: str) -> dict:
    values = checkpoint_values(directory)
    stats = {k: v for k, v in values.items() if "moving" in k}
    assert len(stats) == 2, sorted(values)
    return stats


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_sync_bn_two_workers_match_one_device_statistics(tmp_path):
    """--sync_bn: two workers with half the batch each keep the statistics of one device on the whole batch."""
    common = [c for c in COMMON if not c.startswith(("--extra_modules", "--lr=", "--dropout"))] + BN
    single = str(tmp_path / "single")
    run_main(*common, "--rank_size=1", f"--batch_size={2 * PER_REPLICA}", f"--log_dir={single}")
    synced = str(tmp_path / "synced")
    proc = run_main(*common, "--rank_size=2", "--sync_bn", f"--batch_size={PER_REPLICA}", f"--log_dir={synced}")
    assert "--sync_bn: 1 batch-norm layers compute statistics over the global batch" in proc.stdout
    want = _bn_stats(single)
    for key, value in _bn_stats(os.path.join(synced, "0")).items():
        np.testing.assert_allclose(value, want[key], atol=1e-5, rtol=1e-4, err_msg=key)
    assert_close_all = checkpoint_values(os.path.join(synced, "0"))
    for key, value in checkpoint_values(single).items():
        np.testing.assert_allclose(assert_close_all[key], value, atol=ATOL, rtol=RTOL, err_msg=key)
    # Without --sync_bn each worker's statistics come from its own half batch: they differ.
    plain = str(tmp_path / "plain")
    run_main(*common, "--rank_size=2", f"--batch_size={PER_REPLICA}", f"--log_dir={plain}")
    differs = [np.abs(v - want[k]).max() for k, v in _bn_stats(os.path.join(plain, "0")).items()]
    assert max(differs) > 1e-3, differs
