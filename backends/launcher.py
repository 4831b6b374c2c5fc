"""Starts one process per rank on this host and supervises them until all end.

Backends that train with several processes on one host (CPU and GPU under
``MultiWorkerMirroredStrategy``, Ascend NPUs with one process per device) share this launcher:
the backend builds one command and one environment per rank, and :func:`launch` does the rest.

API::

    from backends.launcher import launch
    code = launch(
        [[sys.executable, "main.py", "--flag", ...]] * 2,       # one argv per rank
        per_rank_env=[{"TF_CONFIG": ...}, {"TF_CONFIG": ...}],  # added to os.environ, per rank
        log_dir="results/2p",        # optional: full output of rank i in <log_dir>/launcher_rank_<i>.log
        cpu_sets=[[0], [1]],         # optional: pin rank i to these CPU cores (Linux)
    )
    sys.exit(code)

What it guarantees:

* Each rank's stdout and stderr are forwarded line by line to the launcher's stdout, prefixed
  ``[rank i] `` (a line that already starts with that prefix is forwarded unchanged); a line
  ``[launcher] started rank i: pid P`` announces each rank.
* Each rank runs in its own session (process group). When a rank exits non-zero or is killed, the
  others get SIGTERM, then SIGKILL after ``grace_s``; the same happens when the launcher receives
  SIGINT or SIGTERM, or when the other ranks outlive a rank that finished by more than
  ``finish_timeout_s`` (a rank waiting forever on a peer that left).
* SIGINT or SIGTERM to the launcher is forwarded to every rank, and the launcher waits for the ranks
  to exit (training ranks save a checkpoint first, see ``runs/preemption.py``); a second signal
  kills them at once. When every rank exits with :data:`PREEMPTED_EXIT_CODE` (saved and stopped),
  so does the launcher. On Linux every rank also gets
  SIGKILL should the launcher itself die (``PR_SET_PDEATHSIG``), so no process is left behind.
* The return code is 0 when every rank exited 0. Otherwise it is the first failed rank's exit
  code (or 128 + signal number), and a message on stderr names that rank, how it ended and its
  last output lines.

:func:`launch_ranks` does the same and returns a :class:`LaunchResult` with the details.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Deque, Dict, List, Mapping, Optional, Sequence

import run_dir
from exit_codes import PREEMPTED_EXIT_CODE

__all__ = ["PREEMPTED_EXIT_CODE", "LaunchResult", "RankExit", "describe_exit", "free_ports", "launch", "launch_ranks"]

# Runs in each child before the real command: pins CPUs, asks the kernel to kill the child if the
# launcher dies, then replaces itself with the command (same pid). A separate program rather than
# Popen(preexec_fn=...), which is unsafe when the launcher already has threads (TensorFlow's).
_SHIM = r"""
import ctypes, os, signal, sys
cpus, parent, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
except Exception:
    pass
if os.getppid() != parent:  # the launcher died before prctl took effect
    sys.exit(1)
if cpus:
    os.sched_setaffinity(0, [int(c) for c in cpus.split(",")])
os.execvp(argv[0], argv)
"""


@dataclass
class RankExit:
    """How one rank ended.

    Attributes:
        rank: its index.
        pid: its process id.
        returncode: exit status (negative: killed by that signal), None if never reaped.
        stopped_by_launcher: True if the launcher terminated it (because another rank failed or
            the launcher was interrupted).
        tail: its last output lines.
    """

    rank: int
    pid: int
    returncode: Optional[int] = None
    stopped_by_launcher: bool = False
    tail: List[str] = field(default_factory=list)


@dataclass
class LaunchResult:
    """Outcome of :func:`launch_ranks`.

    Attributes:
        returncode: 0 if every rank exited 0; see the module docstring otherwise.
        failed_rank: the rank that failed first, None if none did (or the launcher was interrupted).
        message: a human-readable summary ("" on success).
        ranks: per-rank details, indexed by rank.
    """

    returncode: int
    failed_rank: Optional[int]
    message: str
    ranks: List[RankExit]


def describe_exit(returncode: Optional[int]) -> str:
    """``exited with code 3`` / ``was killed by SIGKILL`` for a Popen return code."""
    if returncode is None:
        return "did not exit"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


def _code_of(returncode: int) -> int:
    """Shell convention: a child killed by signal N gives 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def free_ports(count: int, host: str = "127.0.0.1") -> List[int]:
    """``count`` distinct TCP ports that are free on ``host`` right now.

    All sockets stay open until every port is chosen, so the ports differ from each other. Another
    program may still take one before the caller binds it; callers retry on a bind error.
    """
    import socket

    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class _Rank:
    """One child process, the thread that forwards its output, and its tail of lines."""

    def __init__(self, rank: int, proc: subprocess.Popen, prefix: str, out: IO[str], out_lock: threading.Lock,
                 log_file: Optional[IO[str]], tail_lines: int) -> None:
        self.rank = rank
        self.proc = proc
        self.prefix = prefix
        self.tail: Deque[str] = collections.deque(maxlen=tail_lines)
        self.stopped_by_launcher = False
        self._out, self._out_lock, self._log_file = out, out_lock, log_file
        self.thread = threading.Thread(target=self._forward, name=f"rank-{rank}-output", daemon=True)
        self.thread.start()

    def _forward(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self.tail.append(line)
            shown = line if line.startswith(self.prefix) else self.prefix + line
            with self._out_lock:
                if self._log_file:
                    self._log_file.write(line + "\n")
                    self._log_file.flush()
                try:
                    self._out.write(shown + "\n")
                    self._out.flush()
                except (OSError, ValueError):  # launcher's stdout closed: keep draining the pipe
                    pass
        self.proc.stdout.close()

    def signal_group(self, signum: int) -> None:
        """Sends ``signum`` to the rank's whole process group (it may have children)."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def launch_ranks(
    commands: Sequence[Sequence[str]],
    per_rank_env: Optional[Sequence[Mapping[str, str]]] = None,
    *,
    log_dir: Optional[str] = None,
    cpu_sets: Optional[Sequence[Optional[Sequence[int]]]] = None,
    cwd: Optional[str] = None,
    base_env: Optional[Mapping[str, str]] = None,
    grace_s: float = 10.0,
    finish_timeout_s: Optional[float] = 600.0,
    tail_lines: int = 20,
    prefix: str = "[rank {rank}] ",
    stream: Optional[IO[str]] = None,
    poll_s: float = 0.1,
    announce: bool = True,
) -> LaunchResult:
    """Runs one process per rank and supervises them; see the module docstring.

    Args:
        commands: one argv list per rank (rank i runs ``commands[i]``).
        per_rank_env: variables added to the environment of each rank (same length as commands).
        log_dir: if set, rank i's full output also goes to ``<log_dir>/launcher_rank_<i>.log``.
        cpu_sets: per rank, the CPU cores it may run on (None: no pinning). Linux only.
        cwd: working directory of the ranks (default: the launcher's).
        base_env: environment the per-rank variables are added to (default: ``os.environ``).
        grace_s: seconds between SIGTERM and SIGKILL when stopping ranks.
        finish_timeout_s: once one rank has exited 0, the others must exit within this many
            seconds or they are stopped and the launch fails. None: wait forever.
        tail_lines: output lines of a failed rank shown in the message.
        prefix: format of the prefix of forwarded lines; ``{rank}`` is replaced.
        stream: where forwarded output goes (default: ``sys.stdout``).
        poll_s: supervision interval.
        announce: write ``[launcher] started rank i: pid P`` to ``stream`` for each rank.

    Returns:
        A :class:`LaunchResult`.

    Raises:
        ValueError: if the argument lists have different lengths or a command is empty.
        OSError: if a command cannot be started (the ranks started before it are stopped).
    """
    n = len(commands)
    if n < 1:
        raise ValueError("launch: no command given; pass one argv list per rank.")
    per_rank_env = list(per_rank_env) if per_rank_env is not None else [{}] * n
    cpu_sets = list(cpu_sets) if cpu_sets is not None else [None] * n
    if len(per_rank_env) != n or len(cpu_sets) != n:
        raise ValueError(
            f"launch: {n} commands but {len(per_rank_env)} environments and {len(cpu_sets)} cpu sets; "
            "pass one of each per rank."
        )
    for i, cmd in enumerate(commands):
        if not cmd:
            raise ValueError(f"launch: the command of rank {i} is empty.")
    use_shim = sys.platform.startswith("linux")
    if any(c is not None for c in cpu_sets) and not use_shim:
        raise ValueError("launch: cpu_sets (CPU pinning) needs Linux; pass cpu_sets=None.")
    out = stream if stream is not None else sys.stdout
    out_lock = threading.Lock()
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)

    ranks: List[_Rank] = []
    log_files: List[IO[str]] = []
    interrupted: Dict[str, int] = {}
    previous_handlers = {}

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        if "signum" in interrupted:
            interrupted["again"] = signum  # a second signal: stop the ranks at once
        interrupted.setdefault("signum", signum)

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous_handlers[signum] = signal.signal(signum, on_signal)

    def stop_all(reason_ranks: Sequence[_Rank]) -> None:
        for r in reason_ranks:
            if r.proc.poll() is None:
                r.stopped_by_launcher = True
                r.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(r.proc.poll() is None for r in reason_ranks):
            time.sleep(min(poll_s, 0.05))
        for r in reason_ranks:
            if r.proc.poll() is None:
                r.signal_group(signal.SIGKILL)
        for r in reason_ranks:
            r.proc.wait()
            # SIGKILL of the group also reaps grandchildren; make sure none of them lives on.
            try:
                os.killpg(r.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def forward_interrupt() -> None:
        """Passes the launcher's SIGTERM/SIGINT to every rank and waits for them to save and exit.

        Training ranks finish their device loop call, write a checkpoint and exit (runs.preemption):
        that may take longer than ``grace_s``, so they are not killed after it; a second signal to the
        launcher kills them at once.
        """
        signum = interrupted["signum"]
        with out_lock:
            out.write(f"[launcher] {signal.Signals(signum).name}: forwarded to every rank; waiting for them to save "
                      "and stop (send it again to stop them at once)\n")
            out.flush()
        for r in ranks:
            if r.proc.poll() is None:
                r.stopped_by_launcher = True
                r.signal_group(signum)
        while any(r.proc.poll() is None for r in ranks) and "again" not in interrupted:
            time.sleep(min(poll_s, 0.05))
        for r in ranks:
            if r.proc.poll() is None:
                r.signal_group(signal.SIGKILL)

    try:
        env0 = dict(base_env if base_env is not None else os.environ)
        for i, (cmd, extra, cpus) in enumerate(zip(commands, per_rank_env, cpu_sets)):
            env = dict(env0)
            env.update({str(k): str(v) for k, v in extra.items()})
            env.setdefault("PYTHONUNBUFFERED", "1")  # lines reach the launcher as they are printed
            argv = [str(a) for a in cmd]
            if use_shim:
                cpu_arg = ",".join(str(int(c)) for c in cpus) if cpus else ""
                argv = [sys.executable, "-c", _SHIM, cpu_arg, str(os.getpid())] + argv
            log_file = None
            if log_dir:
                log_file = open(run_dir.launcher_log_path(log_dir, i), "w", buffering=1)
                log_files.append(log_file)
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            ranks.append(_Rank(i, proc, prefix.format(rank=i), out, out_lock, log_file, tail_lines))
            if announce:
                with out_lock:
                    out.write(f"[launcher] started rank {i}: pid {proc.pid}\n")
                    out.flush()

        failed: Optional[_Rank] = None
        first_done_at: Optional[float] = None
        timed_out = False
        while True:
            if interrupted:
                break
            codes = [r.proc.poll() for r in ranks]
            bad = [r for r, c in zip(ranks, codes) if c is not None and c != 0]
            if bad:
                failed = bad[0]
                break
            if all(c == 0 for c in codes):
                break
            if first_done_at is None and any(c == 0 for c in codes):
                first_done_at = time.monotonic()
            if (first_done_at is not None and finish_timeout_s is not None
                    and time.monotonic() - first_done_at > finish_timeout_s):
                timed_out = True
                break
            time.sleep(poll_s)

        if interrupted:
            forward_interrupt()
        stop_all(ranks)
        for r in ranks:
            r.thread.join(timeout=5.0)
    finally:
        # Whatever happened above (an exception included), no child outlives the launcher.
        for r in ranks:
            if r.proc.poll() is None:
                r.signal_group(signal.SIGKILL)
                r.proc.wait()
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        for f in log_files:
            f.close()

    exits = [RankExit(r.rank, r.proc.pid, r.proc.returncode, r.stopped_by_launcher, list(r.tail)) for r in ranks]
    return _summarise(exits, failed.rank if failed else None, interrupted.get("signum"), timed_out,
                      finish_timeout_s, out, out_lock)


def _summarise(exits: List[RankExit], failed_rank: Optional[int], signum: Optional[int], timed_out: bool,
               finish_timeout_s: Optional[float], out: IO[str], out_lock: threading.Lock) -> LaunchResult:
    stopped = [e.rank for e in exits if e.stopped_by_launcher]
    stopped_text = f" Stopped rank(s) {', '.join(map(str, stopped))}." if stopped else ""
    if signum is not None:
        if all(e.returncode == PREEMPTED_EXIT_CODE for e in exits):
            code = PREEMPTED_EXIT_CODE
            message = (f"launcher: interrupted by {signal.Signals(signum).name}; every rank saved a checkpoint and "
                       f"stopped (exit code {code}): run the same command again to resume.")
        else:
            message = f"launcher: interrupted by {signal.Signals(signum).name}.{stopped_text}"
            code = 128 + signum
        failed_rank = None
    elif failed_rank is not None:
        e = exits[failed_rank]
        tail = "\n".join(f"  | {line}" for line in e.tail) or "  | (no output)"
        message = (f"launcher: rank {e.rank} (pid {e.pid}) {describe_exit(e.returncode)}.{stopped_text}\n"
                   f"Last {len(e.tail)} output lines of rank {e.rank}:\n{tail}")
        code = _code_of(e.returncode) or 1
    elif timed_out:
        waiting = [e for e in exits if e.stopped_by_launcher]
        failed_rank = waiting[0].rank if waiting else None
        lines = []
        for e in waiting:
            lines.append(f"Last {len(e.tail)} output lines of rank {e.rank}:")
            lines.extend(f"  | {line}" for line in e.tail)
        message = (f"launcher: rank(s) {', '.join(str(e.rank) for e in waiting)} still running "
                   f"{finish_timeout_s:g} s after another rank finished; stopped them.\n" + "\n".join(lines))
        code = 1
    else:
        return LaunchResult(0, None, "", exits)
    with out_lock:
        print(message, file=sys.stderr, flush=True)
    return LaunchResult(code, failed_rank, message, exits)


def launch(
    commands: Sequence[Sequence[str]],
    per_rank_env: Optional[Sequence[Mapping[str, str]]] = None,
    **kwargs,
) -> int:
    """Runs one process per rank, supervises them and returns the job's exit code.

    Same arguments as :func:`launch_ranks`; see the module docstring for the guarantees.
    """
    return launch_ranks(commands, per_rank_env, **kwargs).returncode
