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
* Each rank runs in its own session (process group). On Linux every rank also gets SIGKILL should
  the launcher itself die (``PR_SET_PDEATHSIG``), so no process is left behind.
* A crash (a rank that exits with a code other than 0 and :data:`PREEMPTED_EXIT_CODE`, or is killed by a
  signal) stops the others at once: SIGTERM, then SIGKILL after ``grace_s``. So does a rank that
  outlives a rank that finished (exit 0) by more than ``finish_timeout_s`` (a rank waiting forever on a
  peer that left). The return code is the first failed rank's exit code (or 128 + signal number), and a
  message on stderr names that rank, how it ended and its last output lines (or only its ``error:`` line
  when it ended with one: it was printed once already).
* A preemption is no failure. SIGINT or SIGTERM to the launcher is forwarded to every rank, and the
  launcher waits for the ranks to save and exit (training ranks stop at the next step boundary, all after
  the same step, and the chief writes a checkpoint: ``runs/preemption.py``), at most ``preempt_grace_s``
  seconds; a rank that exits with :data:`PREEMPTED_EXIT_CODE` by itself (it was signalled directly; the
  ranks agree on the stop among themselves) starts the same wait, without a signal from the launcher. When
  the ranks have exited with that code (or 0), so does the launcher. Ranks still running when the grace
  period ends are killed: the launcher exits with :data:`PREEMPTED_EXIT_CODE` if rank 0 (the chief, which
  saves) had finished, else :data:`STOPPED_AT_ONCE_EXIT_CODE`.
* A second SIGINT or SIGTERM to the launcher is forwarded too (ranks then stop at once, without saving);
  ranks still running after ``grace_s`` are killed, and the launcher exits with
  :data:`STOPPED_AT_ONCE_EXIT_CODE`. Ranks that are not training processes (the default action of the
  signal ends them) end the launch with ``128 + signal``.
* 0 when every rank exited 0.

:func:`launch_ranks` does the same and returns a :class:`LaunchResult` with the details.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Deque, List, Mapping, Optional, Sequence

import run_dir
from exit_codes import PREEMPTED_EXIT_CODE, STOPPED_AT_ONCE_EXIT_CODE

__all__ = ["PREEMPTED_EXIT_CODE", "STOPPED_AT_ONCE_EXIT_CODE", "LaunchResult", "RankExit", "describe_exit",
           "free_ports", "launch", "launch_ranks", "lost_peer_message"]

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
    preempt_grace_s: Optional[float] = None,
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
        grace_s: seconds between SIGTERM and SIGKILL when stopping ranks after a crash or a second signal.
        preempt_grace_s: seconds the ranks get to save and exit after a preemption (a signal to the
            launcher, or a rank that exited with :data:`PREEMPTED_EXIT_CODE`) before the ones still
            running are killed (``--preempt_grace_s``); None: wait as long as they take.
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
    signals: List[int] = []  # SIGINT/SIGTERM received by the launcher, in order
    previous_handlers = {}

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        signals.append(signum)

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous_handlers[signum] = signal.signal(signum, on_signal)

    def say(text: str) -> None:
        with out_lock:
            out.write(f"[launcher] {text}\n")
            out.flush()

    def live() -> List[_Rank]:
        return [r for r in ranks if r.proc.poll() is None]

    def stop(targets: Sequence[_Rank], first: Optional[int] = signal.SIGTERM, wait_s: float = grace_s) -> None:
        """``first`` to each of ``targets`` (None: none), SIGKILL to those still running ``wait_s`` later."""
        for r in targets:
            if r.proc.poll() is None:
                r.stopped_by_launcher = True
                if first is not None:
                    r.signal_group(first)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(r.proc.poll() is None for r in targets):
            time.sleep(min(poll_s, 0.05))
        for r in targets:
            if r.proc.poll() is None:
                r.signal_group(signal.SIGKILL)
        for r in targets:
            r.proc.wait()
            # SIGKILL of the group also reaps grandchildren; make sure none of them lives on.
            try:
                os.killpg(r.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    state = _Supervision()
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
                say(f"started rank {i}: pid {proc.pid}")

        first_done_at: Optional[float] = None
        while True:
            now = time.monotonic()
            if len(signals) > len(state.forwarded):
                signum = signals[len(state.forwarded)]
                if not state.forwarded:  # the first signal: a preemption
                    state.preempted_by = state.preempted_by or signal.Signals(signum).name
                    state.preempted_at = state.preempted_at or now
                    wait = f"up to {preempt_grace_s:g} s" if preempt_grace_s is not None else "as long as they take"
                    say(f"{signal.Signals(signum).name}: forwarded to every rank; waiting {wait} for them to save "
                        "and stop (send it again to stop them at once)")
                else:
                    say(f"{signal.Signals(signum).name} again: forwarded to every rank; they stop at once")
                state.forwarded.append(signum)
                for r in live():
                    r.stopped_by_launcher = True
                    r.signal_group(signum)
                if len(state.forwarded) > 1:
                    state.aborted = True
                    break
            codes = [r.proc.poll() for r in ranks]
            crashed = [r for r, c in zip(ranks, codes) if c is not None and not _expected_exit(c, state.forwarded)]
            if crashed:
                state.failed = crashed[0]
                break
            if all(c is not None for c in codes):
                break
            if state.preempted_at is None:
                stopped = [r for r, c in zip(ranks, codes) if c == PREEMPTED_EXIT_CODE]
                if stopped:
                    state.preempted_at, state.preempted_by = now, f"rank {stopped[0].rank}"
                    wait = f"up to {preempt_grace_s:g} s" if preempt_grace_s is not None else "as long as they take"
                    say(f"rank {stopped[0].rank} stopped on a stop request (exit code {PREEMPTED_EXIT_CODE}); waiting "
                        f"{wait} for the other ranks to save and stop")
            if state.preempted_at is not None:
                if preempt_grace_s is not None and now - state.preempted_at > preempt_grace_s:
                    state.grace_over = [r.rank for r in live()]
                    break
            else:
                if first_done_at is None and any(c == 0 for c in codes):
                    first_done_at = now
                if (first_done_at is not None and finish_timeout_s is not None
                        and now - first_done_at > finish_timeout_s):
                    state.timed_out = True
                    break
            time.sleep(poll_s)

        if state.aborted:  # the second signal was forwarded: they stop at once, or are killed after grace_s
            stop(live(), first=None)
        elif state.failed is not None or state.timed_out:
            stop(live())
        elif state.grace_over:
            say(f"rank(s) {', '.join(map(str, state.grace_over))} still running {preempt_grace_s:g} s after the "
                "preemption (--preempt_grace_s): killed")
            stop(live(), first=None, wait_s=0.0)
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
    return _summarise(exits, state, finish_timeout_s, preempt_grace_s, out_lock)


@dataclass
class _Supervision:
    """What happened while the launcher supervised its ranks."""

    forwarded: List[int] = field(default_factory=list)  # signals passed on to the ranks, in order
    preempted_at: Optional[float] = None  # when the preemption began (a signal, or a rank exiting 75)
    preempted_by: Optional[str] = None  # "SIGTERM" or "rank 1"
    aborted: bool = False  # a second signal: the ranks were told to stop at once
    failed: Optional[_Rank] = None  # the first rank that crashed
    timed_out: bool = False  # ranks outlived a rank that finished by finish_timeout_s
    grace_over: List[int] = field(default_factory=list)  # ranks killed when preempt_grace_s ran out


def _expected_exit(code: int, forwarded: Sequence[int]) -> bool:
    """Whether a rank's exit is no crash: done, stopped on a stop request, or ended by a signal the launcher
    forwarded (a rank that is no training process, or stopped at once on the second signal)."""
    if code in (0, PREEMPTED_EXIT_CODE):
        return True
    if len(forwarded) > 1 and code == STOPPED_AT_ONCE_EXIT_CODE:
        return True
    return code < 0 and -code in forwarded


def _error_line(tail: Sequence[str]) -> Optional[str]:
    """The ``error: ...`` line a rank ended with (its one-line error), if it did."""
    for line in reversed(tail):
        if line.strip():
            return line.strip() if line.startswith("error: ") else None
    return None


def _saved_line(tail: Sequence[str]) -> str:
    """What a preempted rank said it saved (its ``training stopped by ...`` line), or ''."""
    return next((line.strip() for line in reversed(tail) if line.startswith("training stopped by")), "")


def _summarise(exits: List[RankExit], state: _Supervision, finish_timeout_s: Optional[float],
               preempt_grace_s: Optional[float], out_lock: threading.Lock) -> LaunchResult:
    failed = state.failed.rank if state.failed is not None else None
    stopped = [e.rank for e in exits if e.stopped_by_launcher and failed is not None and e.rank != failed]
    stopped_text = f" Stopped rank(s) {', '.join(map(str, stopped))}." if stopped else ""
    codes = [e.returncode for e in exits]
    failed_rank = None
    if failed is not None:
        e = exits[failed]
        failed_rank = e.rank
        if _error_line(e.tail) is not None:  # a one-line error, printed above already: named, not repeated
            message = (f"launcher: rank {e.rank} (pid {e.pid}) {describe_exit(e.returncode)} after the error it "
                       f"printed above.{stopped_text}")
        else:
            tail = "\n".join(f"  | {line}" for line in e.tail) or "  | (no output)"
            message = (f"launcher: rank {e.rank} (pid {e.pid}) {describe_exit(e.returncode)}.{stopped_text}\n"
                       f"Last {len(e.tail)} output lines of rank {e.rank}:\n{tail}")
        code = _code_of(e.returncode) or 1
    elif state.aborted:
        code = STOPPED_AT_ONCE_EXIT_CODE
        message = (f"launcher: {signal.Signals(state.forwarded[-1]).name} again: every rank was stopped at once, "
                   f"saving nothing (exit code {code}); run the same command again to resume from the newest "
                   "complete checkpoint.")
    elif state.grace_over:
        chief_saved = codes[0] == PREEMPTED_EXIT_CODE
        code = PREEMPTED_EXIT_CODE if chief_saved else STOPPED_AT_ONCE_EXIT_CODE
        message = (f"launcher: preempted ({state.preempted_by}); rank(s) {', '.join(map(str, state.grace_over))} "
                   f"did not stop within --preempt_grace_s={preempt_grace_s:g} s and were killed; "
                   + (f"rank 0 had finished: {_saved_line(exits[0].tail) or 'see its output'}" if chief_saved else
                      "rank 0 had not finished saving: the next run resumes from the newest complete checkpoint")
                   + f" (exit code {code}).")
    elif state.preempted_at is not None and any(c == PREEMPTED_EXIT_CODE for c in codes):
        code = PREEMPTED_EXIT_CODE
        saved = _saved_line(exits[0].tail) or next((_saved_line(e.tail) for e in exits if _saved_line(e.tail)), "")
        message = (f"launcher: preempted ({state.preempted_by}); every rank stopped after the same step (exit code "
                   f"{code}). Rank 0: {saved or 'see its output above.'}")
    elif state.forwarded and not all(c == 0 for c in codes):
        signum = state.forwarded[0]
        code = 128 + signum
        message = f"launcher: interrupted by {signal.Signals(signum).name}; " + ", ".join(
            f"rank {e.rank} {describe_exit(e.returncode)}" for e in exits) + "."
    elif state.timed_out:
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


_PEER_TASK = re.compile(r"/job:(\w+)/replica:\d+/task:(\d+)")
_PEER_LOST = ("Connection reset by peer", "Socket closed", "failed to connect to all addresses", "Connection refused",
              "heartbeat timeout", "has been disconnected", "UNAVAILABLE", "unavailable", "Broken pipe")


def lost_peer_message(error: BaseException, environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """One line for a rank whose peer died (the raw error of its collective is a page of traceback), or None.

    A collective between worker processes (``MultiWorkerMirroredStrategy`` over gRPC) fails with
    ``UnavailableError`` (or an abort naming the peer's task) when another rank crashed or was killed.
    That rank's own output says why; this rank only stops.

    Args:
        error: what this rank's training raised.
        environ: where ``TF_CONFIG`` is read (default ``os.environ``): it names this rank and its peers.

    Returns:
        The line (without ``error:``), or None if ``error`` is not a lost peer.
    """
    import json

    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - this is only called where TensorFlow runs
        return None
    if not isinstance(error, tf.errors.OpError) or not isinstance(
            error, (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
                    tf.errors.InternalError, tf.errors.UnknownError, tf.errors.DeadlineExceededError)):
        return None
    text = str(error)
    try:
        config = json.loads((environ if environ is not None else os.environ).get("TF_CONFIG") or "{}")
    except ValueError:
        config = {}
    me = config.get("task", {}).get("index")
    workers = config.get("cluster", {}).get("worker", [])
    peers = sorted({int(m.group(2)) for m in _PEER_TASK.finditer(text) if int(m.group(2)) != me})
    if not peers:
        peers = sorted({i for i, address in enumerate(workers) if address in text and i != me})
    if not peers and not (workers and any(marker in text for marker in _PEER_LOST)):
        return None
    reason = next((marker for marker in _PEER_LOST if marker in text), type(error).__name__)
    who = (", ".join(f"rank {p}" + (f" ({workers[p]})" if p < len(workers) else "") for p in peers)
           if peers else "another rank")
    here = f"rank {me}" if me is not None else "this rank"
    return (f"{here} lost {who} ({reason}): it crashed, was killed or cannot be reached; its own output says why. "
            f"{here.capitalize()} stops too; run the same command again to resume from the newest checkpoint.")


def launch(
    commands: Sequence[Sequence[str]],
    per_rank_env: Optional[Sequence[Mapping[str, str]]] = None,
    **kwargs,
) -> int:
    """Runs one process per rank, supervises them and returns the job's exit code.

    Same arguments as :func:`launch_ranks`; see the module docstring for the guarantees.
    """
    return launch_ranks(commands, per_rank_env, **kwargs).returncode
