"""Chaos: faults at random moments of real training runs, and what every restart must find.

Faults: ``kill -9`` of a rank or of the launcher, SIGTERM to the launcher or to one rank, two SIGTERMs, a
damaged newest checkpoint, a full disk (a small tmpfs as the checkpoint directory; without the right to
mount one, a file-size limit on the job's processes). The job: two worker processes on loopback started by
the launcher (``--rank_size=2``), training ``witness_net`` (tests/witness_model.py: each process writes
down every batch it trains on) on a real image folder with ``--seed --deterministic``.

After each fault the next start must: resume from the newest readable checkpoint (its step, named in the
log), leave no temporary files of interrupted saves, hold only finite weights, and train on the batches an
uninterrupted run trains on from that step (per rank; the reference is the input pipeline itself).

``CHAOS_SEED`` (environment) picks the faults and moments; the seed is printed. The whole suite is
``slow``; ``test_kill9_at_a_random_moment_then_a_damaged_newest_checkpoint`` (one process) is the default
suite's share.
"""

import functools
import hashlib
import os
import random
import re
import resource
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import ROOT
from datasets_testutil import make_folder
from witness_model import read_witness

from atomic import TEMP_MARKER
from exit_codes import PREEMPTED_EXIT_CODE, STOPPED_AT_ONCE_EXIT_CODE
from runs.checkpoints import checkpoint_problem, list_checkpoints, step_of
from runs.run_lock import LOCK_NAME

SIZE = 32
BATCH = 2


def _flags(folder, log_dir, *, ranks, steps, extra=()):
    return ["--precision=fp32", "--extra_modules=tests/witness_model.py", "--model=witness_net",
            f"--data_dir={folder}", "--backend=cpu", f"--batch_size={BATCH}", "--lr=0.01", "--seed=3",
            "--deterministic", "--normalize_on=host", f"--image_size={SIZE}", f"--rank_size={ranks}",
            "--iterations_per_loop=6", "--save_summary_steps=3", "--save_checkpoints_steps=4",
            "--max_checkpoint_to_save=3", "--preempt_grace_s=120", f"--log_dir={log_dir}",
            f"--max_train_steps={steps}", *extra]


def reference(folder, ranks, steps, scratch):
    """Per rank, the SHA-1 of each batch an uninterrupted run trains on: the input pipeline itself, built as
    main.py builds it (the witness hashes the model's input, normalised on the host)."""
    import tensorflow as tf

    import modelzoo
    from datasets.base import training_input
    from modes import assemble

    config = modelzoo.configure(model="witness_net", data_dir=folder, batch_size=BATCH, seed=3, deterministic=True,
                                normalize_on="host", image_size=SIZE, rank_size=ranks, log_dir=scratch).config
    dataset = assemble.make_dataset(config, assemble.model_recipe(config))
    out = []
    for rank in range(ranks):
        ctx = tf.distribute.InputContext(num_input_pipelines=ranks, input_pipeline_id=rank,
                                         num_replicas_in_sync=ranks)
        ds = training_input(dataset, batch_size=BATCH, input_context=ctx, start_step=0, global_batch=BATCH * ranks)
        out.append([hashlib.sha1(np.asarray(images).tobytes()).hexdigest() for images, _ in ds.take(steps)])
    return out


class Job:
    """``main.py`` in a process of its own, its merged output read as it comes."""

    def __init__(self, flags, witness, *, preexec_fn=None):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", WITNESS_DIR=str(witness))
        self.proc = subprocess.Popen([sys.executable, "main.py", *flags], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, preexec_fn=preexec_fn)
        self.lines = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")),
                                        daemon=True)
        self._reader.start()

    @property
    def output(self):
        return "".join(self.lines)

    def rank_pids(self):
        return [int(p) for p in re.findall(r"\[launcher\] started rank \d+: pid (\d+)", self.output)]

    def wait(self, ready, timeout=300):
        """Waits until ``ready()`` or the end of the job; returns whether the job still runs."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and not ready():
            assert time.monotonic() < deadline, self.output[-3000:]
            time.sleep(0.02)
        return self.proc.poll() is None

    def finish(self, timeout=300):
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return self.proc.returncode


def newest_readable(ckpt_dir):
    found = [p for p in list_checkpoints(ckpt_dir) if checkpoint_problem(p, full=True) is None]
    return (step_of(found[-1]), found[-1]) if found else (0, None)


def leftovers(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith("_temp") or TEMP_MARKER in n or n == LOCK_NAME
                  or (n.startswith("model.ckpt-") and ".data-" in n
                      and not os.path.exists(os.path.join(directory, n.split(".data-")[0] + ".index"))))


def _identities(directory):
    """The leftovers of ``directory`` (lock aside) as (name, inode, mtime): the same name written again differs."""
    out = set()
    for name in leftovers(directory):
        if name != LOCK_NAME:
            stat = os.stat(os.path.join(directory, name))
            out.add((name, stat.st_ino, stat.st_mtime_ns))
    return out


def finite_weights(prefix):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    return all(np.all(np.isfinite(reader.get_tensor(key))) for key, dtype in reader.get_variable_to_dtype_map().items()
               if dtype.is_floating)


def resumed_step(output):
    found = re.findall(r"Resumed from \S+: step (\d+),", output)
    return int(found[0]) if found else 0


def gone(pids, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                        alive.append(pid)
            except FileNotFoundError:
                pass
        if not alive:
            return True
        time.sleep(0.05)
    return False


def damage(prefix, rng):
    """Truncates or empties the newest checkpoint's index or data file, as a cut copy or a crash leaves it."""
    path = prefix + rng.choice([".index", ".data-00000-of-00001"])
    with open(path, "r+b") as f:
        f.truncate(rng.choice([0, os.path.getsize(path) // 2]))
    return path


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (None where this process may not mount one)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield str(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(directory):
    """Fills the file system of ``directory``; returns the filler's path."""
    path = os.path.join(directory, "filler")
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return path


def check_round(ckpt_dir, witness, ranks, ref, resumed_from, before, job_output):
    """What every start after a fault must show: resumed at the newest readable checkpoint, the reference batches."""
    assert resumed_step(job_output) == resumed_from, job_output[-3000:]
    for rank in range(ranks):
        new = read_witness(witness, rank)[before[rank]:]
        assert new == ref[rank][resumed_from:resumed_from + len(new)], (rank, resumed_from)
    step, prefix = newest_readable(ckpt_dir)
    if prefix:
        assert finite_weights(prefix)
    return step


ACTIONS = ("kill9_rank", "kill9_launcher", "sigterm_launcher", "sigterm_twice", "sigterm_rank", "damage_newest",
           "full_disk")


@pytest.mark.slow
def test_random_faults_on_a_two_worker_job(tmp_path, small_disk):
    seed = int(os.environ.get("CHAOS_SEED", "20240607"))
    print(f"CHAOS_SEED={seed}")
    rng = random.Random(seed)
    ranks, steps = 2, 600  # each round trains a few dozen steps: every fault gets its round
    folder = make_folder(str(tmp_path / "data"), classes={"cat": 9, "dog": 8, "fox": 7}, val={"cat": 1, "dog": 1,
                                                                                            "fox": 1})
    ref = reference(folder, ranks, steps + 10, str(tmp_path / "reference"))
    log_dir, witness = str(tmp_path / "job"), str(tmp_path / "witness")
    ckpt_dir = small_disk or os.path.join(log_dir, "0")
    extra = [f"--checkpoint_dir={small_disk}"] if small_disk else []
    os.makedirs(witness)
    actions = list(ACTIONS) + [rng.choice(ACTIONS) for _ in range(3)]
    rng.shuffle(actions)
    previous_leftovers = set()
    for action in actions:
        expected, _ = newest_readable(ckpt_dir)
        if expected >= steps:
            break
        before = [len(read_witness(witness, r)) for r in range(ranks)]
        job_log, preexec = log_dir, None
        if action == "full_disk" and small_disk is None:
            # No tmpfs: a file-size limit fails the save (a checkpoint is ~100 kB, the other files of a fresh
            # log directory stay below half of it).
            limit = os.path.getsize(list_checkpoints(ckpt_dir)[-1] + ".data-00000-of-00001") // 2 \
                if list_checkpoints(ckpt_dir) else 50_000
            job_log = str(tmp_path / f"full_disk_log_{len(before)}_{expected}")
            preexec = functools.partial(resource.setrlimit, resource.RLIMIT_FSIZE, (limit, limit))
        job = Job(_flags(folder, job_log, ranks=ranks, steps=steps,
                         extra=extra + ([f"--checkpoint_dir={ckpt_dir}"] if job_log != log_dir else [])),
                  witness, preexec_fn=preexec)
        rank = rng.randrange(ranks)
        target = before[rank] + rng.randint(1, 7)
        running = job.wait(lambda rank=rank, target=target: len(read_witness(witness, rank)) >= target)
        if running:
            time.sleep(rng.uniform(0.0, 0.3))  # any moment: inside a device loop, a save, a log line
        pids = job.rank_pids()
        filler = None
        if action == "kill9_rank" and running:
            os.kill(rng.choice(pids), signal.SIGKILL)
            allowed = {128 + signal.SIGKILL, 1, 0}
        elif action == "kill9_launcher" and running:
            job.proc.kill()
            allowed = {-signal.SIGKILL, 0}
        elif action in ("sigterm_launcher", "damage_newest") and running:
            job.proc.send_signal(signal.SIGTERM)
            allowed = {PREEMPTED_EXIT_CODE, 0}
        elif action == "sigterm_twice" and running:
            job.proc.send_signal(signal.SIGTERM)
            job.wait(lambda job=job: "[launcher] SIGTERM: forwarded" in job.output)
            time.sleep(rng.uniform(0.0, 0.2))
            job.proc.send_signal(signal.SIGTERM)
            allowed = {STOPPED_AT_ONCE_EXIT_CODE, PREEMPTED_EXIT_CODE, 0}
        elif action == "sigterm_rank" and running:
            os.kill(rng.choice(pids), signal.SIGTERM)
            allowed = {PREEMPTED_EXIT_CODE, 0}
        elif action == "full_disk" and small_disk is not None and running:
            filler = fill(small_disk)
            allowed = {1, 0}
        else:
            allowed = {0, 1, PREEMPTED_EXIT_CODE}  # the job ended before the fault (done, or a file-size limit)
        code = job.finish()
        output = job.output
        assert code in allowed, (action, code, output[-3000:])
        assert gone(pids), f"{action}: ranks outlived the job"
        assert "Traceback" not in output, (action, output[-3000:])
        if filler:
            assert code == 0 or "No space left on device (about" in output, output[-3000:]
            os.remove(filler)
        if action == "full_disk" and code == 1:
            assert re.search(r"error: cannot write checkpoint model\.ckpt-\d+ in \S+: (No space left on device|File "
                             r"too large)", output), output[-3000:]
            assert [n for n in leftovers(ckpt_dir) if n != LOCK_NAME] == []  # the failed save removed its files
        if action == "damage_newest" and list_checkpoints(ckpt_dir):
            damage(list_checkpoints(ckpt_dir)[-1], rng)
        step = check_round(ckpt_dir, witness, ranks, ref, expected, before, output)
        # What an interrupted save left is gone once the next run has started (the chief removes it).
        assert not previous_leftovers & _identities(ckpt_dir), previous_leftovers
        previous_leftovers = _identities(ckpt_dir)
        print(f"{action}: exit {code}, newest readable checkpoint {step}")

    # Then the job runs to its end, from the newest readable checkpoint, on the reference batches.
    expected, _ = newest_readable(ckpt_dir)
    before = [len(read_witness(witness, r)) for r in range(ranks)]
    job = Job(_flags(folder, log_dir, ranks=ranks, steps=steps, extra=extra), witness)
    assert job.finish() == 0, job.output[-3000:]
    assert check_round(ckpt_dir, witness, ranks, ref, expected, before, job.output if expected else "") == steps
    assert leftovers(ckpt_dir) == [] and all(leftovers(os.path.join(log_dir, str(r))) == [] for r in range(ranks))


def test_kill9_at_a_random_moment_then_a_damaged_newest_checkpoint(tmp_path):
    """One process: kill -9 at a random moment, then the newest checkpoint damaged; the next start resumes from
    the newest readable one, removes what the killed save left, and trains on the reference batches."""
    seed = int(os.environ.get("CHAOS_SEED", "7"))
    rng = random.Random(seed)
    folder = make_folder(str(tmp_path / "data"), classes={"cat": 5, "dog": 4}, val={"cat": 1, "dog": 1})
    ref = reference(folder, 1, 30, str(tmp_path / "reference"))
    log_dir, witness = str(tmp_path / "run"), str(tmp_path / "witness")
    os.makedirs(witness)
    job = Job(_flags(folder, log_dir, ranks=1, steps=10_000, extra=["--save_checkpoints_steps=2"]), witness)
    assert job.wait(lambda: len(read_witness(witness)) >= rng.randint(9, 14))
    time.sleep(rng.uniform(0.0, 0.2))
    job.proc.kill()
    assert job.finish() == -signal.SIGKILL
    found = list_checkpoints(log_dir)
    assert len(found) >= 2
    damaged = damage(found[-1], rng)
    expected, _ = newest_readable(log_dir)
    assert expected == step_of(found[-2])
    killed_leftovers = [n for n in leftovers(log_dir) if n != LOCK_NAME]

    before = [len(read_witness(witness))]
    job = Job(_flags(folder, log_dir, ranks=1, steps=expected + 3, extra=["--save_checkpoints_steps=2"]), witness)
    assert job.finish() == 0, job.output[-3000:]
    assert f"Checkpoint {found[-1]} cannot be read ({os.path.basename(damaged)}" in job.output
    assert check_round(log_dir, witness, 1, ref, expected, before, job.output) == expected + 3
    assert leftovers(log_dir) == [] and not set(killed_leftovers) & set(os.listdir(log_dir))
