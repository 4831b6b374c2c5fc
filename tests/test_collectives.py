"""The training step's collectives on a real two-worker job (MultiWorkerMirroredStrategy over loopback).

* Dtypes and branches: with NCCL selected (what ``--backend=gpu`` uses between workers), the traced
  device loop holds exactly one all-reduce per step, float32, outside every ``If``/``Case`` branch, in
  float32 and in float16 with loss scaling. The check itself (:mod:`collective_graph`) finds the old
  step's int32 verdict sum (TensorFlow's GPU collectives refuse it) and an all-reduce inside a ``cond``.
* ``--collective_timeout_s``: over 300 steps the process gains no thread (TensorFlow's own timeout, as
  the backend passed it before, adds two OS threads per collective: counted too); a peer stuck in its
  input makes the watchdog end the wait with a one-line error.
* A stop requested on one rank stops both after the same step.

The worker processes are ``tests/collective_worker.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from collective_graph import problems

from backends.collective_watchdog import CollectiveTimeoutError, CollectiveWatchdog
from backends.launcher import free_ports

TESTS = os.path.dirname(os.path.abspath(__file__))


def _run_workers(mode: str, out_dir, timeout: float = 300):
    hosts = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    procs = [subprocess.Popen([sys.executable, os.path.join(TESTS, "collective_worker.py"), f"--mode={mode}",
                               f"--worker_hosts={hosts}", f"--task_index={rank}", f"--out={out_dir}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for rank in (0, 1)]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    reports = {}
    for rank in (0, 1):
        path = os.path.join(str(out_dir), f"rank{rank}.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                reports[rank] = json.load(f)
    return procs, outputs, reports


@pytest.mark.keras2  # Keras 2's loss-scale optimizer has branches of its own
def test_the_step_all_reduces_once_in_float32_outside_any_branch_under_nccl(tmp_path):
    procs, outputs, reports = _run_workers("trace", tmp_path)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(err[-3000:] for _, err in outputs)
    for rank in (0, 1):
        report = reports[rank]
        for precision in ("fp32", "fp16"):
            found = report[f"trainer_{precision}"]
            # Gradients, loss and stop request in one all-reduce, in the loop's body, in no branch.
            assert [(c["op"], c["dtype"], c["hint"], c["in_branch"]) for c in found] == [
                ("CollectiveReduceV2", "float32", "nccl", False)], found
            assert found[0]["function"].startswith("while_body")
            assert problems(found, "nccl") == []
        # The check finds what the old step did: an int32 sum of verdicts, which GPUs refuse (CPUs don't)...
        planted = report["planted_int32_verdict"]
        assert [c["dtype"] for c in planted] == ["int32"]
        assert problems(planted, "nccl") == [
            "CollectiveReduceV2 of int32 in the outer graph: nccl reduces only float16, float32, float64, int64"]
        assert problems(planted, "ring") == []
        # ...and a collective inside a tf.cond branch.
        [in_cond] = report["planted_reduce_in_cond"]
        assert in_cond["in_branch"] and problems([in_cond], "ring") == [
            f"CollectiveReduceV2 (float32) inside a branch function ({in_cond['function']})"]


@pytest.mark.keras2
def test_collective_timeout_costs_one_thread_and_a_stop_request_stops_every_rank_alike(tmp_path):
    procs, outputs, reports = _run_workers("threads", tmp_path)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(err[-3000:] for _, err in outputs)
    for rank in (0, 1):
        report = reports[rank]
        counts = report["counts"]
        python_start, os_start = counts["start"]
        python_after, os_after = counts["after_300_steps"]
        # Flat over 300 steps: the one watchdog thread was already there (main thread + watchdog).
        assert python_start == python_after == 2
        assert os_after - os_start <= 1, counts
        assert report["final_step"] == 310 and report["ticks"] == 310  # the watchdog saw every step
        # TensorFlow's own per-collective timeout, for comparison: two sleeping OS threads per all-reduce,
        # invisible to threading.active_count().
        python_tf, os_tf = counts["after_50_tf_timeouts"]
        assert python_tf == python_after and os_tf - os_after >= 90, counts
        # Rank 1 asked to stop before a call of 50 steps: both ranks ran exactly one step, and agree.
        assert report["stop"] == {"steps": 1, "agreed": True}
    assert reports[0]["loss"] == reports[1]["loss"]


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_a_stuck_peer_ends_the_wait_with_one_line(tmp_path):
    procs, outputs, reports = _run_workers("hang", tmp_path)
    # Rank 0 waited in its all-reduce of step 7 while rank 1's input stalled: its watchdog aborted.
    assert procs[0].returncode == 0, outputs[0][1][-3000:]
    report = reports[0]
    assert report["is_value_error"] and report["step"] == 6
    assert ("rank 0 of 2: the device loop (training steps) made no progress for 3 s (--collective_timeout_s)"
            in report["error"])
    assert report["seconds"] < 60
    # Rank 1 was stuck outside any collective: its watchdog fired too and it left after the grace period.
    assert procs[1].returncode == 1 and 1 not in reports
    assert "was still blocked 3 s after the abort: exiting" in outputs[1][1]


# -- the watchdog alone ----------------------------------------------------------------------------


def _watchdog(timeout_s=0.3, grace_s=0.3):
    fired, exited = threading.Event(), threading.Event()
    dog = CollectiveWatchdog(timeout_s, name="rank 3 of 4", grace_s=grace_s, abort=lambda m: fired.set(),
                             exit_process=lambda m: exited.set())
    return dog, fired, exited


def test_the_watchdog_waits_while_steps_finish_and_fires_when_they_stop():
    # A limit of 20 steps' time: a step that a busy machine delays by a scheduling slice stays well inside it.
    dog, fired, exited = _watchdog(timeout_s=1.0)
    with pytest.raises(CollectiveTimeoutError, match=r"^rank 3 of 4: the loop made no progress for 1 s"):
        with dog.guard("the loop"):
            for _ in range(40):  # 2 s of steps, each well inside the limit
                time.sleep(0.05)
                dog.tick()
            assert not fired.is_set() and dog.fired is None
            assert fired.wait(10)  # no more steps: it fires
            raise RuntimeError("the collective's error after the abort")
    assert not exited.is_set()  # the call returned within the grace period
    with pytest.raises(CollectiveTimeoutError):
        with dog.guard("anything later"):  # collectives stay aborted in this process
            pass
    dog.close()


def test_the_watchdog_is_idle_outside_guarded_calls_and_exits_a_process_that_stays_stuck():
    dog, fired, exited = _watchdog()
    with dog.guard("a short call"):
        pass
    time.sleep(0.6)  # nothing guarded: nothing to fire
    assert not fired.is_set()
    with dog.guard("a stuck call"):
        assert fired.wait(10)
        assert exited.wait(10)  # still inside the call after the grace period
    dog.close()
    with pytest.raises(ValueError, match="positive"):
        CollectiveWatchdog(0)
