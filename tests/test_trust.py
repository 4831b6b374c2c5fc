"""Failures and recovery (docs/failures.md) with real training processes and files.

Preemption (SIGTERM, kill -9), two runs on one directory, resume with changed flags, a truncated
newest checkpoint, a full disk (a file-size limit), the launcher forwarding SIGTERM to its ranks.
Readiness comes from the run's own log file (a "step:" line is written after each loop call),
never from sleeps.
"""

import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import ROOT, run_main

from atomic import TEMP_MARKER
from exit_codes import STOPPED_AT_ONCE_EXIT_CODE
from runs.checkpoints import SETTINGS_SUFFIX, list_checkpoints, read_settings, step_of
from runs.preemption import PREEMPTED_EXIT_CODE
from runs.run_lock import LOCK_NAME

LOG = "alexnet_training.log"
BASE = ["--extra_modules=tests/bn_test_model.py", "--model=bn_test_net", "--synthetic", "--num_classes=4",
        "--backend=cpu", "--batch_size=2", "--iterations_per_loop=1", "--save_summary_steps=1", "--lr=0.01",
        "--synthetic_val_images=8", f"--log_name={LOG}"]


def start(log_dir, *extra, max_steps=100000, every=2, preexec_fn=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    args = [sys.executable, "main.py", *BASE, f"--log_dir={log_dir}", f"--max_train_steps={max_steps}",
            f"--save_checkpoints_steps={every}", *extra]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec_fn)


def logged_steps(log_dir):
    try:
        with open(os.path.join(log_dir, LOG)) as f:
            return [int(line.split(",")[0].split(":")[1]) for line in f if line.startswith("step:")]
    except FileNotFoundError:
        return []


def wait_logged(proc, log_dir, count, timeout=300):
    """Waits until the run has logged ``count`` more steps than the log held when called (or it ended)."""
    before = len(logged_steps(log_dir))
    deadline = time.monotonic() + timeout
    while len(logged_steps(log_dir)) < before + count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run logged no step in time"
        time.sleep(0.05)


def leftovers(directory):
    return [n for n in os.listdir(directory) if n.endswith("_temp") or TEMP_MARKER in n or n == LOCK_NAME]


def newest_step(directory):
    found = list_checkpoints(directory)
    return step_of(found[-1]) if found else 0


def resumed_step(stdout):
    lines = [line for line in stdout.splitlines() if "Resumed from" in line]
    return int(lines[-1].split("step ")[1].split(",")[0]) if lines else 0


def check_resume(log_dir, expected):
    proc = run_main(*BASE, f"--log_dir={log_dir}", f"--max_train_steps={expected + 1}", "--save_checkpoints_steps=2")
    assert resumed_step(proc.stdout + proc.stderr) == expected
    assert newest_step(log_dir) == expected + 1


def stop_with_sigterm(proc, log_dir):
    """SIGTERM to a running ``proc``: it must save the step it stopped after and exit 75; returns that step."""
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    proc.stdout_text = out + err
    assert proc.returncode == PREEMPTED_EXIT_CODE, err
    step = newest_step(log_dir)
    assert step == logged_steps(log_dir)[-1]  # the step it stopped after was saved: nothing lost
    assert f"model.ckpt-{step} holds step {step}; run the same command again" in err
    assert leftovers(log_dir) == []
    return step


def sigterm_once(log_dir, steps_before_signal):
    proc = start(log_dir)
    wait_logged(proc, log_dir, steps_before_signal)
    return stop_with_sigterm(proc, log_dir)


def test_sigterm_saves_and_resumes_and_a_second_run_or_changed_flags_are_refused(tmp_path):
    """Two SIGTERM/resume rounds; a second run during the first is refused; so is a changed global batch."""
    log_dir = str(tmp_path / "run")
    first = start(log_dir)
    wait_logged(first, log_dir, 2)
    second = run_main(*BASE, f"--log_dir={log_dir}", "--max_train_steps=4", check=False)
    assert second.returncode == 1
    assert f"{log_dir} is in use by another run" in second.stderr and f"pid {first.pid}" in second.stderr
    step = stop_with_sigterm(first, log_dir)
    assert read_settings(list_checkpoints(log_dir)[-1])["derived"]["global_batch"] == 2

    # Resuming with another global batch is refused, naming the flag and both values.
    proc = run_main(*BASE, f"--log_dir={log_dir}", f"--max_train_steps={step + 2}", "--batch_size=4", check=False)
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: cannot resume from") and "global_batch" in error
    assert "2 in the checkpoint, 4 now" in error and "--allow_recipe_change" in error
    assert newest_step(log_dir) == step

    # Second round: the run resumes exactly where the first stopped, and stops again on SIGTERM.
    again = start(log_dir)
    wait_logged(again, log_dir, 1)
    new_step = stop_with_sigterm(again, log_dir)
    assert resumed_step(again.stdout_text) == step and new_step > step


# One device loop call for the whole run: a stop that waited for the call to end would never come.
LONG_LOOP = ["--extra_modules=tests/witness_model.py", "--model=witness_net", "--synthetic", "--num_classes=4",
             "--backend=cpu", "--precision=fp32", "--batch_size=2", "--lr=0.01", "--iterations_per_loop=100000",
             "--save_summary_steps=100000", "--save_checkpoints_steps=100000", "--max_train_steps=100000",
             f"--log_name={LOG}"]


def start_witnessed(log_dir, witness_dir, *extra):
    """A run of ``LONG_LOOP`` whose model writes one line per step it trains into ``witness_dir``."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", WITNESS_DIR=str(witness_dir))
    os.makedirs(witness_dir, exist_ok=True)
    return subprocess.Popen([sys.executable, "main.py", *LONG_LOOP, f"--log_dir={log_dir}", *extra], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_steps(proc, witness_dir, count, rank=0, timeout=300):
    """Waits until the process has trained ``count`` steps (its model's own record); returns the steps so far."""
    from witness_model import read_witness

    deadline = time.monotonic() + timeout
    while len(read_witness(witness_dir, rank)) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run trained no step in time"
        time.sleep(0.02)
    return len(read_witness(witness_dir, rank))


# Steps a stop may take: one step of this model is ~3 ms, and on a loaded 2-core machine the main thread may wait
# a second or two for the GIL and the CPU before its signal handler runs (330 steps were seen once under a
# parallel test run). Still 1/50 of the device loop (100000 steps) that a stop at the loop's end would take.
FEW_STEPS = 2000


def test_a_signal_stops_a_long_device_loop_at_the_next_step_boundary_and_saves_it(tmp_path):
    from witness_model import read_witness

    log_dir, witness = str(tmp_path / "run"), str(tmp_path / "witness")
    proc = start_witnessed(log_dir, witness)
    seen = wait_steps(proc, witness, 50)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == PREEMPTED_EXIT_CODE, err
    trained = len(read_witness(witness))
    step = newest_step(log_dir)
    # Saved exactly the steps it trained, a few after the signal: not at the end of the 100000-step call.
    assert step == trained and seen <= step <= seen + FEW_STEPS, (seen, step, trained)
    assert logged_steps(log_dir)[-1] == step  # the step it stopped after is logged too
    assert f"training stopped by SIGTERM after step {step}: checkpoint {log_dir}/model.ckpt-{step} holds step" in err
    assert "training stops at the next step boundary and saves a checkpoint" in err
    assert leftovers(log_dir) == []


def test_a_second_signal_exits_at_once_with_its_own_code(tmp_path):
    from witness_model import read_witness

    log_dir, witness = str(tmp_path / "run"), str(tmp_path / "witness")
    proc = start_witnessed(log_dir, witness, "--nodo_checkpoint")
    seen = wait_steps(proc, witness, 50)
    # Two different signals: the kernel keeps a second SIGINT sent before the first is handled as one. Either
    # may be handled first: pending together, SIGINT's handler runs first (Python runs them by signal number),
    # but on a busy machine the process may handle SIGTERM before SIGINT arrives.
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == STOPPED_AT_ONCE_EXIT_CODE, err
    assert seen <= len(read_witness(witness)) <= seen + FEW_STEPS
    first = re.search(r"^(SIGINT|SIGTERM): training stops at the next step boundary and saves nothing "
                      r"\(--nodo_checkpoint\)", err, re.M)
    assert first, err[-3000:]
    second = {"SIGINT": "SIGTERM", "SIGTERM": "SIGINT"}[first.group(1)]
    assert (f"{second}, a second stop signal: stopping at once, saving nothing (exit code {STOPPED_AT_ONCE_EXIT_CODE})"
            in err)
    assert "Traceback" not in err


def _diverge(log_dir):
    """A run to step 4 (checkpoints 2 and 4), then the same run going on with an lr that diverges at step 6."""
    run_main(*BASE, f"--log_dir={log_dir}", "--max_train_steps=4", "--save_checkpoints_steps=2")
    proc = run_main(*BASE, f"--log_dir={log_dir}", "--max_train_steps=8", "--save_checkpoints_steps=2", "--lr=1e30",
                    "--allow_recipe_change=lr", check=False)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not finite at step 6" in errors[0] and "Traceback" not in proc.stderr
    return errors[0]


def _finite_weights(prefix):
    import numpy as np
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    return all(np.all(np.isfinite(reader.get_tensor(k))) for k, dtype in reader.get_variable_to_dtype_map().items()
               if dtype.is_floating)


def test_the_nonfinite_advice_is_one_command_that_resumes_with_a_lower_lr(tmp_path):
    log_dir = str(tmp_path / "run")
    error = _diverge(log_dir)
    assert f"(the last good checkpoint is {log_dir}/model.ckpt-4). Lower --lr and resume with " \
           "--allow_recipe_change=lr (or raise --warmup_epochs and resume with --allow_recipe_change=warmup_epochs" \
           in error
    # The advice, as written: a lower --lr, --allow_recipe_change=lr.
    proc = run_main(*BASE, f"--log_dir={log_dir}", "--max_train_steps=8", "--save_checkpoints_steps=2",
                    "--lr=0.001", "--allow_recipe_change=lr")
    out = proc.stdout + proc.stderr
    assert resumed_step(out) == 4 and "--lr (schedule): 0.01 in the checkpoint, 0.001 now" in out
    assert newest_step(log_dir) == 8 and _finite_weights(list_checkpoints(log_dir)[-1])


@pytest.mark.slow
def test_a_lower_lr_needs_allow_recipe_change_and_an_added_warmup_resumes_too(tmp_path):
    log_dir = str(tmp_path / "run")
    _diverge(log_dir)
    refused = run_main(*BASE, f"--log_dir={log_dir}", "--max_train_steps=8", "--lr=0.001", check=False)
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 1 and len(errors) == 1
    assert "--lr (schedule): 0.01 in the checkpoint, 0.001 now" in errors[0] and "--allow_recipe_change=lr" in errors[0]
    proc = run_main(*BASE, f"--log_dir={log_dir}", "--max_train_steps=8", "--save_checkpoints_steps=2",
                    "--warmup_epochs=0.00001", "--allow_recipe_change=warmup_epochs")
    out = proc.stdout + proc.stderr
    assert resumed_step(out) == 4 and "--warmup_epochs (schedule): 0 in the checkpoint, 1e-05 now" in out
    assert newest_step(log_dir) == 8 and _finite_weights(list_checkpoints(log_dir)[-1])


@pytest.mark.slow
def test_truncated_newest_checkpoint_falls_back_and_allowed_change_is_explained(tmp_path):
    log_dir = str(tmp_path / "run")
    run_main(*BASE, f"--log_dir={log_dir}", "--max_train_steps=4", "--save_checkpoints_steps=2")
    newest = list_checkpoints(log_dir)[-1]
    with open(newest + ".data-00000-of-00001", "r+b") as f:
        f.truncate(100)
    proc = run_main(*BASE, f"--log_dir={log_dir}", "--max_train_steps=3", "--batch_size=4", "--allow_recipe_change",
                    "--save_checkpoints_steps=1")
    out = proc.stdout + proc.stderr
    assert f"Checkpoint {newest} cannot be read" in out and "falling back to the previous one" in out
    assert resumed_step(out) == 2
    assert "--allow_recipe_change: resuming" in out and "2 in the checkpoint, 4 now" in out
    assert newest_step(log_dir) == 4 and leftovers(log_dir) == []  # the damaged step 4 was never resumed

    # Evaluation skips the damaged checkpoint, saying so, and evaluates the others.
    proc = run_main(*BASE, "--mode=evaluate", f"--log_dir={log_dir}")
    out = proc.stdout + proc.stderr
    assert f"Checkpoint {newest} cannot be read" in out and "skipped" in out
    evaluated = [json.loads(line)["step"] for line in open(os.path.join(log_dir, "metrics.jsonl"))
                 if json.loads(line).get("type") == "eval"]
    assert evaluated == [2, 3]


@pytest.mark.slow
def test_full_disk_is_one_line_and_keeps_the_previous_checkpoint(tmp_path):
    ckpt_dir = str(tmp_path / "ckpt")
    run_main(*BASE, f"--log_dir={ckpt_dir}", "--max_train_steps=2", "--save_checkpoints_steps=2")
    before = {n: os.path.getsize(os.path.join(ckpt_dir, n)) for n in os.listdir(ckpt_dir) if n.startswith("model.")}
    data_size = before["model.ckpt-2.data-00000-of-00001"]

    def small_files():  # a file-size limit below one checkpoint: writes fail as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (data_size // 2, data_size // 2))

    proc = start(str(tmp_path / "log"), f"--checkpoint_dir={ckpt_dir}", "--save_summary_steps=1000",
                 max_steps=4, preexec_fn=small_files)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err
    assert f"cannot write checkpoint model.ckpt-4 in {ckpt_dir}: File too large" in errors[0]
    assert "needed" in errors[0] and "previous checkpoint" in errors[0] and "model.ckpt-2 is intact" in errors[0]
    after = {n: os.path.getsize(os.path.join(ckpt_dir, n)) for n in os.listdir(ckpt_dir) if n.startswith("model.")}
    assert after == before
    assert leftovers(ckpt_dir) == []
    assert os.path.exists(os.path.join(ckpt_dir, "model.ckpt-2" + SETTINGS_SUFFIX))


def _launcher_with_preemptible_ranks(tmp_path, n=2):
    """A launcher process whose ranks handle SIGTERM as training does (runs.preemption), no TensorFlow."""
    ready = tmp_path / "ready"
    ready.mkdir()
    worker = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {ROOT!r})
        from runs import preemption
        with preemption.handling():
            open(os.path.join({str(ready)!r}, os.environ["RANK"]), "w").close()
            while not preemption.requested():
                time.sleep(0.01)
            open(os.path.join({str(ready)!r}, "saved" + os.environ["RANK"]), "w").close()
        sys.exit(preemption.PREEMPTED_EXIT_CODE)
    """)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        from backends.launcher import launch
        envs = [dict(RANK=str(i)) for i in range({n})]
        sys.exit(launch([[sys.executable, "-c", {worker!r}]] * {n}, envs, grace_s=3))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while len(os.listdir(ready)) < n:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    return proc, ready


def test_launcher_forwards_sigterm_to_every_rank_and_exits_75(tmp_path):
    proc, ready = _launcher_with_preemptible_ranks(tmp_path)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert sorted(os.listdir(ready)) == ["0", "1", "saved0", "saved1"]
    assert proc.returncode == PREEMPTED_EXIT_CODE, err
    assert "launcher: preempted (SIGTERM); every rank stopped after the same step (exit code 75)" in err
    assert "SIGTERM: forwarded to every rank" in out


def test_lock_of_a_dead_process_is_stale(tmp_path):
    from runs import run_lock

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    directory = str(tmp_path)
    import json
    import socket

    with open(os.path.join(directory, LOCK_NAME), "w") as f:
        json.dump({"host": socket.gethostname(), "pid": pid}, f)
    warnings = []
    with run_lock.holding([directory], warn=warnings.append):
        assert json.load(open(os.path.join(directory, LOCK_NAME)))["pid"] == os.getpid()
        with pytest.raises(run_lock.RunLockError, match="in use by another run"):
            run_lock.acquire(directory)
    assert not os.path.exists(os.path.join(directory, LOCK_NAME))
    assert warnings and f"pid {pid}" in warnings[0]
    # A lock held on another host cannot be checked: refused, naming the file to delete.
    with open(os.path.join(directory, LOCK_NAME), "w") as f:
        json.dump({"host": "elsewhere", "pid": 1}, f)
    with pytest.raises(run_lock.RunLockError, match="delete .*run.lock"):
        run_lock.acquire(directory)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_interrupted_at_random_moments_resumes_from_the_newest_complete_checkpoint(tmp_path, how):
    rng = random.Random(12)
    log_dir = str(tmp_path / "run")
    for _ in range(4):
        if how == "sigterm":
            step = sigterm_once(log_dir, rng.randint(1, 6))
        else:
            proc = start(log_dir, every=1)
            wait_logged(proc, log_dir, rng.randint(1, 6))
            time.sleep(rng.uniform(0.0, 0.5))  # any moment, a save in progress included
            proc.kill()
            proc.communicate(timeout=60)
            step = newest_step(log_dir)
            assert step >= 1
        check_resume(log_dir, step)
        assert leftovers(log_dir) == []


@pytest.mark.slow
def test_two_rank_job_preempted_through_the_launcher_resumes(tmp_path):
    log_dir = str(tmp_path / "job")
    rank_log = os.path.join(log_dir, "1")
    proc = start(log_dir, "--rank_size=2")
    wait_logged(proc, rank_log, 2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == PREEMPTED_EXIT_CODE, out + err
    ckpt_dir = os.path.join(log_dir, "0")
    step = newest_step(ckpt_dir)
    assert step >= 2 and leftovers(ckpt_dir) == []
    proc = run_main(*BASE, f"--log_dir={log_dir}", "--rank_size=2", f"--max_train_steps={step + 1}")
    assert resumed_step(proc.stdout + proc.stderr) == step


# -- the checkpointer in-process (a small Keras model; real files) ------------------------------------

def _model_and_optimizer(units=8, classes=4):
    from keras_compat import create_optimizer_variables, keras

    inputs = keras.Input((units,))
    model = keras.Model(inputs, keras.layers.Dense(classes, name="logits")(inputs))
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    create_optimizer_variables(optimizer, model.trainable_variables)
    return model, optimizer


def _checkpointer(directory, model, optimizer, **kwargs):
    from runs.checkpoints import Checkpointer

    return Checkpointer(str(directory), model=model, optimizer=optimizer, **kwargs)


@pytest.mark.keras2
def test_checkpointer_retention_is_exact_and_leftovers_are_removed(tmp_path):
    model, optimizer = _model_and_optimizer()
    ckpt = _checkpointer(tmp_path, model, optimizer, max_to_keep=2)
    for step in (1, 2, 3):
        ckpt.save(step)
    assert [step_of(p) for p in list_checkpoints(str(tmp_path))] == [2, 3]
    # What interrupted saves leave behind, and a checkpoint TensorFlow's state file does not list.
    os.makedirs(tmp_path / "model.ckpt-9_temp")
    (tmp_path / "model.ckpt-8.data-00000-of-00001").write_bytes(b"partial")
    (tmp_path / f".model.ckpt-8{SETTINGS_SUFFIX}{TEMP_MARKER}x").write_text("{")
    for name in os.listdir(tmp_path):
        if name.startswith("model.ckpt-3."):
            os.link(tmp_path / name, tmp_path / name.replace("ckpt-3", "ckpt-1"))
    removed = []
    ckpt = _checkpointer(tmp_path, model, optimizer, max_to_keep=2, log=removed.append)
    assert leftovers(str(tmp_path)) == [] and not (tmp_path / "model.ckpt-8.data-00000-of-00001").exists()
    assert removed and "interrupted saves" in removed[0]
    ckpt.save(4)
    assert [step_of(p) for p in list_checkpoints(str(tmp_path))] == [3, 4]  # the escaped step 1 is gone too
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith("model.ckpt-1")) == []


@pytest.mark.keras2
def test_checkpointer_falls_back_past_a_truncated_newest_and_names_a_mismatch(tmp_path):
    import numpy as np

    model, optimizer = _model_and_optimizer()
    ckpt = _checkpointer(tmp_path, model, optimizer)
    ckpt.save(1)
    kept = [v.numpy() for v in model.weights]
    for v in model.weights:
        v.assign(v + 1.0)
    ckpt.save(2)
    with open(str(tmp_path / "model.ckpt-2.data-00000-of-00001"), "r+b") as f:
        f.truncate(20)
    messages = []
    fresh, fresh_opt = _model_and_optimizer()
    restored = _checkpointer(tmp_path, fresh, fresh_opt, log=messages.append).restore_latest()
    assert restored.endswith("model.ckpt-1")
    assert "model.ckpt-2 cannot be read" in messages[0] and "falling back to the previous one" in messages[0]
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(kept, fresh.weights))

    from runs.checkpoints import CheckpointMismatchError

    other, other_opt = _model_and_optimizer(classes=5)
    with pytest.raises(CheckpointMismatchError, match="another --model, --num_classes"):
        _checkpointer(tmp_path, other, other_opt).restore_latest()


def _flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def _truncate(path, size=None):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2 if size is None else size)


# What happens to checkpoints: a save cut short by a full disk or a crash of the file system (truncated
# and zero-length files), and a damaged byte. Each is met at the newest position.
DAMAGES = {
    "data truncated": lambda prefix: _truncate(prefix + ".data-00000-of-00001"),
    "data empty": lambda prefix: _truncate(prefix + ".data-00000-of-00001", 0),
    "data byte flipped": lambda prefix: _flip_byte(prefix + ".data-00000-of-00001", 8),
    "index truncated": lambda prefix: _truncate(prefix + ".index"),
    "index empty": lambda prefix: _truncate(prefix + ".index", 0),
    "index byte flipped": lambda prefix: _flip_byte(prefix + ".index", 20),
}


@pytest.mark.keras2
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_an_unreadable_newest_checkpoint_is_skipped_by_restore_and_retention(tmp_path, damage):
    import numpy as np

    from runs.checkpoints import CheckpointUnreadableError, checkpoint_problem
    from tools import check_checkpoints

    model, optimizer = _model_and_optimizer()
    ckpt = _checkpointer(tmp_path, model, optimizer, max_to_keep=3)
    weights = {}
    for step in (1, 2, 3):
        for v in model.weights:
            v.assign(v + 1.0)
        weights[step] = [v.numpy() for v in model.weights]
        ckpt.save(step)
    prefix = {step: str(tmp_path / f"model.ckpt-{step}") for step in (1, 2, 3)}
    DAMAGES[damage](prefix[3])
    DAMAGES["data truncated"](prefix[2])
    assert checkpoint_problem(prefix[3], full=True) is not None and checkpoint_problem(prefix[1], full=True) is None
    _, results, _ = check_checkpoints.check(str(tmp_path))
    assert [(step_of(p), why is None) for p, why in results] == [(1, True), (2, False), (3, False)]
    assert check_checkpoints.main([str(tmp_path)]) == 1

    messages = []
    fresh, fresh_opt = _model_and_optimizer()
    restorer = _checkpointer(tmp_path, fresh, fresh_opt, max_to_keep=1, log=messages.append)
    assert restorer.restore_latest() == prefix[1]
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(weights[1], fresh.weights))
    assert f"{prefix[3]} cannot be read" in messages[0]
    assert f"falling back to the previous one, {prefix[2]}" in messages[0]
    assert f"{prefix[2]} cannot be read" in messages[1]
    assert f"Restored {prefix[1]}, the newest readable checkpoint" in messages[2] and "model.ckpt-3 (" in messages[2]
    assert restorer.latest == prefix[1]

    # Retention counts readable checkpoints only: keeping 1, the save of step 2 deletes step 1 but not the
    # unreadable step 3 after it (the newest readable one is never deleted); the save of step 3 replaces it.
    restorer.save(2)
    assert [step_of(p) for p in list_checkpoints(str(tmp_path))] == [2, 3] and restorer.latest == prefix[2]
    restorer.save(3)
    assert [step_of(p) for p in list_checkpoints(str(tmp_path))] == [3] and checkpoint_problem(prefix[3]) is None
    assert check_checkpoints.main([str(tmp_path)]) == 0

    # Nothing readable left: one line naming each checkpoint and why, not a fresh start.
    DAMAGES[damage](prefix[3])
    with pytest.raises(CheckpointUnreadableError, match=r"no checkpoint in .* can be read: model.ckpt-3 \("):
        _checkpointer(tmp_path, *_model_and_optimizer(), log=messages.append).restore_latest()


@pytest.mark.keras2
def test_checkpointer_save_on_a_full_disk_is_one_line_and_keeps_the_previous(tmp_path):
    from runs.checkpoints import CheckpointSaveError

    model, optimizer = _model_and_optimizer(units=512, classes=512)  # 1 MB of weights, 2 MB with momentum
    ckpt = _checkpointer(tmp_path, model, optimizer)
    ckpt.save(1)
    before = sorted(os.listdir(tmp_path))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (500_000, hard))  # writes past 0.5 MB fail as on a full disk
    try:
        with pytest.raises(CheckpointSaveError) as info:
            ckpt.save(2)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    message = str(info.value)
    assert "\n" not in message and f"cannot write checkpoint model.ckpt-2 in {tmp_path}: File too large" in message
    assert "MB needed" in message and "model.ckpt-1 is intact" in message
    assert sorted(os.listdir(tmp_path)) == before and list_checkpoints(str(tmp_path))[-1].endswith("model.ckpt-1")

    # The first save of a run: no checkpoint to measure, the size is the variables' (2 x 1 MB), not 0.
    first = tmp_path / "first"
    ckpt = _checkpointer(first, model, optimizer)
    resource.setrlimit(resource.RLIMIT_FSIZE, (500_000, hard))
    try:
        with pytest.raises(CheckpointSaveError) as info:
            ckpt.save(1)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert "(about 2.1 MB needed" in str(info.value) and "no earlier checkpoint exists" in str(info.value)
    assert list_checkpoints(str(first)) == [] and leftovers(str(first)) == []


def test_what_a_stop_saved_is_said_and_check_data_counts_a_cut_shard_once(tmp_path):
    import io

    from datasets_testutil import make_folder

    from runs.preemption import TrainingPreempted
    from tools import check_data
    from tools.build_tfrecords import build

    saved = str(TrainingPreempted(12, str(tmp_path / "model.ckpt-12"), signal.SIGTERM))
    assert saved.startswith("training stopped by SIGTERM after step 12: checkpoint ") and "holds step 12" in saved
    nothing = str(TrainingPreempted(12, None, signal.SIGINT))
    assert "nothing was saved (--nodo_checkpoint)" in nothing and "checkpoint " not in nothing.replace(
        "--nodo_checkpoint", "")

    folder = make_folder(str(tmp_path / "folder"), classes={"cat": 3, "dog": 3}, val={"cat": 1, "dog": 1})
    records = str(tmp_path / "records")
    build(folder, records, train_shards=1, validation_shards=1, num_workers=1, progress_stream=io.StringIO())
    shard = os.path.join(records, "train-00000-of-00001")
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) - 100)  # the last record cut short, as an interrupted copy leaves it
    checked, problems = check_data.check(records, ["train"], num_workers=1)
    assert checked == 6 and len(problems) == 1
    assert problems[0][1].startswith("the shard ends inside the record at byte")


def test_run_dir_layout_and_the_label_map_of_a_multi_rank_job(tmp_path):

    import run_dir
    from evaluation.predictor import find_label_map

    job = str(tmp_path / "job")
    assert run_dir.rank_dirs(job, None, rank_size=2, rank=1, multi_process=True) == (f"{job}/1", f"{job}/0")
    assert run_dir.rank_dirs(job, None, rank_size=2, rank=0, multi_process=False) == (job, job)
    assert run_dir.rank_dirs(None, None, rank_size=8, rank=3, multi_process=True) == ("results/8p/3", "results/8p/0")
    assert run_dir.launcher_log_path(job, 1) == f"{job}/launcher_rank_1.log"
    # --rank_size=2 --log_dir=job: the label map goes to job/, the checkpoints to job/0; predict finds it.
    label_map = run_dir.label_map_path(job, None, 2)
    assert label_map == f"{job}/label_map.txt"
    os.makedirs(f"{job}/0")
    with open(label_map, "w") as f:
        f.write("0\tcat\n")
    assert find_label_map(None, f"{job}/0/model.ckpt-5") == label_map
    with open(f"{job}/0/label_map.txt", "w") as f:  # beside the checkpoint wins
        f.write("0\tdog\n")
    assert find_label_map(None, f"{job}/0/model.ckpt-5") == f"{job}/0/label_map.txt"
