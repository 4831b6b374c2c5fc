"""The non-finite check of the training step (``--nan_policy``), on real models and checkpoints.

A NaN image in batch k makes step k's loss and gradients NaN, so the step that goes wrong is known
exactly. ``stop`` must leave the weights (and every checkpoint) at step k - 1; ``skip_step`` must
train as if batch k had not been there; with float16 loss scaling and two replicas, an overflow on
one replica only must make every replica skip the step (tests/nonfinite_worker.py, own process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from train_step_testutil import BATCH, make_data, make_trainer

from runs.checkpoints import list_checkpoints
from training.nonfinite import NonFiniteGuard, NonFiniteLossError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _checkpoint_is_finite(prefix: str) -> bool:
    reader = tf.train.load_checkpoint(prefix)
    names = [n for n, dtype in reader.get_variable_to_dtype_map().items() if dtype.is_floating]
    return all(np.all(np.isfinite(reader.get_tensor(n))) for n in names)


@pytest.mark.keras2
def test_stop_keeps_the_last_good_step_and_never_saves_nonfinite_weights(tmp_path):
    images, labels = make_data(5, nan_steps=[3])
    trainer, run = make_trainer(images, labels, 5, ckpt_dir=str(tmp_path))
    with pytest.raises(NonFiniteLossError) as info:
        run()
    err = info.value
    assert err.step == 3 and err.last_good_step == 2 and trainer.step == 2
    assert err.checkpoint.endswith("model.ckpt-2") and "step 3" in str(err) and "model.ckpt-2" in str(err)
    saved = list_checkpoints(str(tmp_path))
    assert [int(p.rsplit("-", 1)[1]) for p in saved] == [1, 2]
    assert all(_checkpoint_is_finite(p) for p in saved)
    # The weights are step 2's: a clean run of two steps gives the same ones.
    reference, run_ref = make_trainer(images[: 2 * BATCH], labels[: 2 * BATCH], 2)
    run_ref()
    for ours, ref in zip(trainer.model.weights, reference.model.weights):
        np.testing.assert_array_equal(ours.numpy(), ref.numpy())


@pytest.mark.keras2
def test_skip_step_trains_as_if_the_bad_batch_was_not_there():
    images, labels = make_data(5, nan_steps=[3])
    trainer, run = make_trainer(images, labels, 5, policy="skip_step", optimizer="sgd")
    result = run()
    assert result.final_step == 5 and result.skipped_steps == 1
    keep = np.ones(len(images), bool)
    keep[2 * BATCH: 3 * BATCH] = False
    reference, run_ref = make_trainer(images[keep], labels[keep], 4, optimizer="sgd")
    run_ref()
    for ours, ref in zip(trainer.model.weights, reference.model.weights):
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-6, atol=1e-7)


def test_skip_step_gives_up_after_too_many_in_a_row():
    images, labels = make_data(6, nan_steps=[2, 3, 4])
    trainer, run = make_trainer(images, labels, 6, policy="skip_step", max_consecutive=3)
    with pytest.raises(NonFiniteLossError, match="3 steps in a row up to step 4"):
        run()
    assert np.all([np.all(np.isfinite(w.numpy())) for w in trainer.model.weights])


def test_policy_and_limit_are_validated():
    with pytest.raises(ValueError, match="--nan_policy=skip: must be one of stop, skip_step"):
        NonFiniteGuard("skip")
    with pytest.raises(ValueError, match="--max_consecutive_skips=0"):
        NonFiniteGuard("skip_step", 0)


@pytest.mark.parametrize("legacy_keras", ["0", "1"], ids=["keras3", "keras2"])
def test_float16_overflow_on_one_replica_is_skipped_by_all(legacy_keras):
    """Only replica 1's float16 gradients overflow at step 2 (its loss is finite): both skip it."""
    env = dict(os.environ, TF_USE_LEGACY_KERAS=legacy_keras)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "nonfinite_worker.py"), "--replicas=2",
                           "--precision=fp16", "--bad=big", "--bad_steps=2", "--steps=4"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert out["error"] is None
    assert out["finite"] and out["replicas_equal"]
    # The skipped step counts on both Keras versions; the scale was halved once, on both replicas.
    assert out["step"] == 4 and out["loss_scale"] == 32768.0 / 2


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_a_huge_lr_stops_main_with_one_line_and_only_finite_checkpoints(tmp_path):
    from conftest import run_main

    log_dir = tmp_path / "run"
    proc = run_main("--synthetic", "--model=alexnet", "--image_size=64", "--batch_size=4", "--max_train_steps=8",
                    "--iterations_per_loop=1", "--save_checkpoints_steps=1", "--save_summary_steps=1",
                    "--lr=1e30", "--warmup_epochs=0", "--optimizer=sgd", f"--log_dir={log_dir}", check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "not finite at step" in error[0] and "Lower --lr" in error[0]
    saved = list_checkpoints(str(log_dir))
    assert all(_checkpoint_is_finite(p) for p in saved)


@pytest.mark.parametrize("legacy_keras", ["0", pytest.param("1", marks=pytest.mark.slow)], ids=["keras3", "keras2"])
def test_float16_overflow_on_one_worker_process_is_skipped_by_both(legacy_keras):
    """Two worker processes (MultiWorkerMirroredStrategy over loopback): only worker 1 overflows."""
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("localhost", 0))
            ports.append(s.getsockname()[1])
    hosts = ",".join(f"localhost:{p}" for p in ports)
    env = dict(os.environ, TF_USE_LEGACY_KERAS=legacy_keras)
    procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "nonfinite_worker.py"), "--precision=fp16",
                               "--bad=big", "--bad_steps=2", "--steps=4", f"--worker_hosts={hosts}",
                               f"--task_index={i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for i in range(2)]
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
        outs.append(json.loads(stdout.split("RESULT ", 1)[1]))
    for out in outs:
        assert out["error"] is None and out["finite"] and out["step"] == 4 and out["loss_scale"] == 32768.0 / 2
    assert outs[0]["weights"] == outs[1]["weights"]  # bit for bit
