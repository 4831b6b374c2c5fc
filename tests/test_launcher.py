"""backends/launcher.py with real processes (tests/launcher_worker.py stands in for training)."""

import io
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from backends.launcher import PREEMPTED_EXIT_CODE, describe_exit, free_ports, launch, launch_ranks

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "launcher_worker.py")
ROOT = os.path.dirname(HERE)


def cmd(*args):
    return [sys.executable, WORKER, *args]


def envs(n, **extra):
    return [dict(RANK=str(i), **extra) for i in range(n)]


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def fail_when_ready(ready_file, code):
    """A rank that prints 'bye' and exits with ``code`` (0: success) once ``ready_file`` exists (<= 120 s)."""
    script = (f"import os,sys,time\nend = time.time() + 120\n"
              f"while not os.path.exists({str(ready_file)!r}) and time.time() < end: time.sleep(0.05)\n"
              f"print('bye'); sys.exit({code})")
    return [sys.executable, "-c", script]


def read_pids(pid_dir, n):
    return [int(open(os.path.join(pid_dir, f"rank{i}.pid")).read()) for i in range(n)]


def test_all_ranks_succeed_output_prefixed_and_logged(tmp_path):
    out = io.StringIO()
    result = launch_ranks([cmd("ok")] * 2, envs(2, EXTRA="hello"), log_dir=str(tmp_path), stream=out)
    assert result.returncode == 0 and result.failed_rank is None and result.message == ""
    lines = out.getvalue().splitlines()
    for rank in (0, 1):
        assert f"[rank {rank}] worker {rank} line 2 env=hello" in lines
        logged = (tmp_path / f"launcher_rank_{rank}.log").read_text().splitlines()
        assert logged[-1] == f"worker {rank} line 2 env=hello"  # file keeps the raw line
    assert [e.returncode for e in result.ranks] == [0, 0]


def test_prefix_not_doubled():
    out = io.StringIO()
    code = launch([[sys.executable, "-c", "print('[rank 0] already tagged')"]], stream=out)
    assert code == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[launcher] started rank 0: pid ")
    assert lines[1:] == ["[rank 0] already tagged"]


def test_failed_rank_stops_others_and_is_named(tmp_path, capsys):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    out = io.StringIO()
    result = launch_ranks([cmd("sleep"), cmd("fail", "3"), cmd("sleep")], envs(3, PID_DIR=str(pid_dir)),
                          stream=out, grace_s=5, tail_lines=5)
    assert result.returncode == 3
    assert result.failed_rank == 1
    assert "rank 1" in result.message and "exited with code 3" in result.message
    assert "worker 1 giving up" in result.message  # its last lines, stderr included
    assert "worker 1 progress 28" in result.message
    assert "progress 20" not in result.message  # only the last 5 lines
    assert "Stopped rank(s) 0, 2" in result.message
    assert result.ranks[0].stopped_by_launcher and result.ranks[2].stopped_by_launcher
    assert result.ranks[0].returncode == -signal.SIGTERM
    assert "launcher: rank 1" in capsys.readouterr().err
    # The launcher's own record of the pids: a rank stopped before it wrote its pid file counts too.
    assert wait_gone([e.pid for e in result.ranks], 1.0) == []


def test_rank_killed_by_signal(tmp_path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    out = io.StringIO()

    def kill_rank0_when_ready():
        # Both ranks have printed "ready" (so rank 0's last lines are known); kill rank 0 then.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(f"worker {r} ready" in out.getvalue() for r in (0, 1)):
            time.sleep(0.05)
        os.kill(int((pid_dir / "rank0.pid").read_text()), signal.SIGKILL)

    import threading

    killer = threading.Thread(target=kill_rank0_when_ready)
    killer.start()
    result = launch_ranks([cmd("sleep"), cmd("sleep")], envs(2, PID_DIR=str(pid_dir)), stream=out, grace_s=5)
    killer.join()
    assert result.failed_rank == 0
    assert result.returncode == 128 + signal.SIGKILL
    assert "rank 0" in result.message and "was killed by SIGKILL" in result.message
    assert "worker 0 ready" in result.message
    assert wait_gone(read_pids(pid_dir, 2), 1.0) == []


def test_rank_ignoring_sigterm_is_killed_after_grace(tmp_path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    out = io.StringIO()
    # Rank 0 fails only once rank 1 has installed its SIGTERM handler.
    ready = tmp_path / "ready"
    slow_fail = fail_when_ready(ready, 2)
    result = launch_ranks([slow_fail, cmd("stubborn")], envs(2, PID_DIR=str(pid_dir), READY_FILE=str(ready)),
                          stream=out, grace_s=1.0)
    assert result.returncode == 2 and result.failed_rank == 0
    assert result.ranks[1].returncode == -signal.SIGKILL  # SIGTERM was ignored: killed after the grace period
    assert wait_gone([result.ranks[1].pid], 1.0) == []


def test_grandchildren_are_stopped_too(tmp_path):
    grandchild_file = tmp_path / "grandchild.pid"
    ready = tmp_path / "ready"
    slow_fail = fail_when_ready(ready, 1)
    result = launch_ranks([cmd("spawn", str(grandchild_file)), slow_fail], envs(2, READY_FILE=str(ready)),
                          stream=io.StringIO(),
                          grace_s=2)
    assert result.returncode == 1 and result.failed_rank == 1
    assert wait_gone([int(grandchild_file.read_text())], 5.0) == []


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux CPU affinity")
def test_cpu_sets_pin_each_rank():
    cpus = sorted(os.sched_getaffinity(0))
    out = io.StringIO()
    sets = [[cpus[0]], [cpus[-1]]]
    assert launch([cmd("affinity")] * 2, envs(2), cpu_sets=sets, stream=out) == 0
    text = out.getvalue()
    assert f"[rank 0] worker 0 cpus={cpus[0]}" in text
    assert f"[rank 1] worker 1 cpus={cpus[-1]}" in text


def test_finish_timeout_stops_a_rank_left_waiting(tmp_path):
    out = io.StringIO()
    ready = tmp_path / "ready"  # rank 0 finishes (exit 0) once rank 1 is asleep
    result = launch_ranks([fail_when_ready(ready, 0), cmd("sleep")], envs(2, READY_FILE=str(ready)), stream=out,
                          finish_timeout_s=1.0, grace_s=2)
    assert result.returncode == 1 and result.failed_rank == 1
    assert "still running" in result.message and "worker 1 ready" in result.message


def _run_launcher_script(tmp_path, n=2):
    """Starts a launcher in its own process (so that it can be signalled) with sleeping ranks."""
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        from backends.launcher import launch
        envs = [dict(RANK=str(i), PID_DIR={str(pid_dir)!r}) for i in range({n})]
        sys.exit(launch([[sys.executable, {WORKER!r}, "sleep"]] * {n}, envs, grace_s=3))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while len(list(pid_dir.iterdir())) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return proc, pid_dir


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_launcher_stops_every_rank(tmp_path, signum):
    proc, pid_dir = _run_launcher_script(tmp_path)
    pids = read_pids(pid_dir, 2)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum
    assert f"interrupted by {signal.Signals(signum).name}" in err
    assert wait_gone(pids, 2.0) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_ranks_die_with_a_killed_launcher(tmp_path):
    proc, pid_dir = _run_launcher_script(tmp_path)
    pids = read_pids(pid_dir, 2)
    proc.kill()
    proc.communicate(timeout=30)
    assert wait_gone(pids, 10.0) == []


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="no command"):
        launch([])
    with pytest.raises(ValueError, match="2 commands but 1 environments"):
        launch([cmd("ok")] * 2, [{}])
    with pytest.raises(ValueError, match="rank 1 is empty"):
        launch([cmd("ok"), []])


def test_missing_program_is_a_failed_rank():
    result = launch_ranks([[os.path.join(ROOT, "no-such-program")]], stream=io.StringIO())
    assert result.returncode != 0 and result.failed_rank == 0


def test_helpers():
    ports = free_ports(3)
    assert len(set(ports)) == 3 and all(0 < p < 65536 for p in ports)
    assert describe_exit(-9) == "was killed by SIGKILL"
    assert describe_exit(4) == "exited with code 4"


# -- preemption: a stop on a signal is no failure ------------------------------------------------------

class _Launcher:
    """``launch(...)`` in a process of its own (so that it can be signalled), its output read as it comes."""

    def __init__(self, tmp_path, actions, **kwargs):
        self.pid_dir = tmp_path / "pids"
        self.pid_dir.mkdir()
        self.stop_file = tmp_path / "stop"
        script = textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {ROOT!r})
            from backends.launcher import launch
            actions = {actions!r}
            envs = [dict(RANK=str(i), PID_DIR={str(self.pid_dir)!r}, STOP_FILE={str(self.stop_file)!r})
                    for i in range(len(actions))]
            sys.exit(launch([[sys.executable, {WORKER!r}, *a] for a in actions], envs, **{kwargs!r}))
        """)
        self.proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines = []
        import threading

        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")),
                                        daemon=True)
        self._reader.start()

    def wait_for(self, *texts, seconds=120.0):
        deadline = time.monotonic() + seconds
        while not all(any(t in line for line in self.lines) for t in texts):
            assert self.proc.poll() is None and time.monotonic() < deadline, (self.lines, self.proc.stderr.read())
            time.sleep(0.02)

    def finish(self, seconds=120.0):
        err = self.proc.stderr.read()
        self.proc.wait(timeout=seconds)
        self._reader.join(timeout=10)
        return "".join(self.lines), err

    def pid(self, rank):
        return int((self.pid_dir / f"rank{rank}.pid").read_text())

    def saved(self):
        return sorted(p.name for p in self.pid_dir.iterdir() if p.name.startswith("saved"))


def test_a_rank_stopped_on_a_signal_is_no_failure_the_chief_finishes_its_save(tmp_path):
    """Rank 1 alone is signalled (as a scheduler may do): it exits 75 first; the launcher does not stop rank 0,
    whose save takes longer than grace_s, and exits 75 once it has finished."""
    launcher = _Launcher(tmp_path, [["preemptible", "3"], ["preemptible", "0"]], grace_s=1, preempt_grace_s=60)
    launcher.wait_for("[rank 0] worker 0 ready", "[rank 1] worker 1 ready")
    os.kill(launcher.pid(1), signal.SIGTERM)
    out, err = launcher.finish()
    assert launcher.proc.returncode == PREEMPTED_EXIT_CODE, out + err
    assert launcher.saved() == ["saved0", "saved1"]  # the chief's 3-second save was not cut short
    assert "[launcher] rank 1 stopped on a stop request (exit code 75); waiting up to 60 s" in out
    assert "launcher: preempted (rank 1); every rank stopped after the same step (exit code 75). Rank 0: training " \
           "stopped by SIGTERM after step 7: worker 0 saved" in err


def test_ranks_that_do_not_stop_within_preempt_grace_s_are_killed(tmp_path):
    launcher = _Launcher(tmp_path, [["preemptible", "0"], ["stubborn"]], grace_s=60, preempt_grace_s=1)
    launcher.wait_for("[rank 0] worker 0 ready", "[rank 1] worker 1 ready")
    launcher.proc.send_signal(signal.SIGTERM)
    out, err = launcher.finish()
    assert launcher.proc.returncode == PREEMPTED_EXIT_CODE, out + err  # the chief had saved
    assert launcher.saved() == ["saved0"] and wait_gone([launcher.pid(1)], 1.0) == []
    assert "SIGTERM: forwarded to every rank; waiting up to 1 s for them to save and stop" in out
    assert "rank(s) 1 did not stop within --preempt_grace_s=1 s and were killed; rank 0 had finished" in err


def test_a_second_signal_to_the_launcher_stops_every_rank_at_once(tmp_path):
    from exit_codes import STOPPED_AT_ONCE_EXIT_CODE

    launcher = _Launcher(tmp_path, [["preemptible", "600"], ["preemptible", "600"]], grace_s=60)
    launcher.wait_for("[rank 0] worker 0 ready", "[rank 1] worker 1 ready")
    launcher.proc.send_signal(signal.SIGTERM)
    launcher.wait_for("[rank 0] worker 0 saving", "[rank 1] worker 1 saving")  # each handled the first one
    launcher.proc.send_signal(signal.SIGTERM)
    out, err = launcher.finish()
    assert launcher.proc.returncode == STOPPED_AT_ONCE_EXIT_CODE, out + err
    assert launcher.saved() == [] and wait_gone([launcher.pid(0), launcher.pid(1)], 1.0) == []
    assert "SIGTERM again: forwarded to every rank; they stop at once" in out
    assert f"every rank was stopped at once, saving nothing (exit code {STOPPED_AT_ONCE_EXIT_CODE})" in err


def test_a_rank_that_ended_with_a_one_line_error_is_named_not_repeated(tmp_path):
    error = "error: --data_dir=/nowhere does not exist"
    result = launch_ranks([[sys.executable, "-c", f"import sys; print('loading'); print({error!r}); sys.exit(1)"],
                           cmd("sleep")], envs(2), stream=io.StringIO(), grace_s=5)
    assert result.returncode == 1 and result.failed_rank == 0
    assert result.message.startswith("launcher: rank 0 (pid ") and "exited with code 1 after the error it printed" \
        in result.message
    assert error not in result.message and "loading" not in result.message


def test_a_lost_peer_is_one_line_naming_it():
    import json

    import tensorflow as tf

    from backends.launcher import lost_peer_message

    tf_config = json.dumps({"cluster": {"worker": ["127.0.0.1:4000", "127.0.0.1:4001"]},
                            "task": {"type": "worker", "index": 0}})
    # What rank 0's device loop raised when rank 1 was killed with SIGKILL (TensorFlow 2.21, two CPU workers).
    raised = tf.errors.UnavailableError(None, None, (
        "Graph execution error:\n\nDetected at node while/CollectiveReduceV2 defined at (most recent call last):\n"
        "Collective ops is aborted by: recvmsg:Connection reset by peer\nAdditional GRPC error information from "
        "remote target /job:worker/replica:0/task:1 while calling /tensorflow.WorkerService/RecvBuf:\n"
        ":UNKNOWN:Error received from peer  {grpc_status:14, grpc_message:\"recvmsg:Connection reset by peer\"}"))
    line = lost_peer_message(raised, {"TF_CONFIG": tf_config})
    assert line.startswith("rank 0 lost rank 1 (127.0.0.1:4001) (Connection reset by peer)") and "\n" not in line
    assert lost_peer_message(tf.errors.InvalidArgumentError(None, None, "shapes differ"), {"TF_CONFIG": tf_config}) \
        is None
    assert lost_peer_message(ValueError("no"), {}) is None
