"""``main.py --backend=npu`` end to end on the CPU, through the backend's own code path.

Each test runs real ``main.py`` processes with the ``npu_device`` stand-in on ``PYTHONPATH`` (under
Keras 2, as on an Ascend server), then reads back what the backend asked of the adapter and in which
order. Several ranks really exchange their gradients through the stand-in's collectives.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from npu_testutil import ROOT, events, first_seq, read_calls, standin_env, write_hccn_conf

from runs.checkpoints import list_checkpoints
from training.log import parse_line

# Small and fast: 2 classes, 63 px (AlexNet's minimum), batch 2.
TINY = ["--model=alexnet", "--synthetic", "--num_classes=2", "--image_size=63", "--batch_size=2",
        "--warmup_epochs=0", "--lr=0.001", "--synthetic_train_images=64"]


def _main(cwd, env, *args, timeout=600):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "--backend=npu", *TINY, *args],
                          cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout)


def _log_lines(path):
    with open(path, encoding="utf-8") as f:
        return [parsed for parsed in (parse_line(line) for line in f) if parsed]


@pytest.mark.keras2
def test_one_npu_trains_with_options_before_open_and_loop_sinking(tmp_path):
    calls_dir = tmp_path / "calls"
    calls_dir.mkdir()
    proc = _main(tmp_path, standin_env(calls_dir), "--max_train_steps=6", "--iterations_per_loop=3",
                 "--save_summary_steps=3", "--save_checkpoints_steps=6", "--log_dir=run",
                 "--npu_option=op_debug_config=/tmp/debug.json", "--npu_op_compiler_cache_mode=enable")
    assert proc.returncode == 0, proc.stderr[-3000:]
    [calls] = read_calls(calls_dir).values()

    # Options first, then open, then the NPU becomes the default device, then the model is built.
    options = events(calls, "set_option")
    assert {c["key"]: c["value"] for c in options} == {
        "precision_mode": "allow_mix_precision", "hcom_parallel": True, "op_compiler_cache_mode": "enable",
        "op_debug_config": "/tmp/debug.json"}
    assert max(c["seq"] for c in options) < first_seq(calls, "open") < first_seq(calls, "as_default")
    assert first_seq(calls, "as_default") < first_seq(calls, "first_variable_created")
    [opened] = events(calls, "open")
    assert opened["variables_alive"] == 0  # no variable existed when the device opened
    assert opened["env"]["NPU_LOOP_SIZE"] is None  # read by the adapter at import only: left alone
    assert opened["options"]["op_debug_config"] == "/tmp/debug.json" and opened["options"]["hcom_parallel"] == "1"

    # Loop sinking: each tf.function call runs --iterations_per_loop steps on the device.
    assert [c["n"] for c in events(calls, "set_npu_loop_size")] == [3]  # set once, unchanged after
    assert [c["n"] for c in events(calls, "loop_sunk")] == [3, 3]  # the body ran 3 times per call
    assert not [c for c in events(calls, "set_option") if c["after_open"]]
    assert first_seq(calls, "set_npu_loop_size") > first_seq(calls, "first_variable_created")

    # allow_mix_precision is a float16 mode: the adapter's loss-scale optimizer, and the loss scaled.
    assert [c["dynamic"] for c in events(calls, "loss_scale_optimizer")] == [True]
    assert events(calls, "scale_loss")
    # One device: no collective.
    assert not events(calls, "all_reduce") and not events(calls, "broadcast")

    lines = _log_lines(tmp_path / "run" / "alexnet_training.log")
    assert [line["step"] for line in lines] == [3, 6]
    assert all(line["loss"] == line["loss"] for line in lines)  # finite, not NaN
    assert [os.path.basename(p) for p in list_checkpoints(str(tmp_path / "run"))] == ["model.ckpt-6"]
    assert "precision_mode=allow_mix_precision loss_scale=dynamic" in proc.stdout + proc.stderr


def test_without_the_adapter_main_says_what_to_install(tmp_path):
    env = standin_env(tmp_path)
    env["PYTHONPATH"] = ROOT  # no stand-in
    proc = _main(tmp_path, env, "--max_train_steps=1")
    assert proc.returncode == 1
    assert "TensorFlow 2.6" in proc.stderr and "CANN" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()  # nothing was built or written


@pytest.mark.keras2
def test_main_launches_two_ranks_that_train(tmp_path):
    calls_dir = tmp_path / "calls"
    calls_dir.mkdir()
    env = standin_env(calls_dir)
    proc = _main(tmp_path, env, "--rank_size=2", f"--hccn_conf={write_hccn_conf(tmp_path / 'hccn.conf', 2)}",
                 "--max_train_steps=4", "--iterations_per_loop=2", "--save_summary_steps=2",
                 "--precision_mode=allow_fp32_to_bf16", "--job_id=alexnet-e2e")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    calls = read_calls(calls_dir)
    assert sorted(calls) == ["rank0", "rank1"]
    table = str(tmp_path / "results" / "2p" / "rank_table.json")
    for rank in (0, 1):
        rank_calls = calls[f"rank{rank}"]
        [opened] = events(rank_calls, "open")
        assert (opened["device_id"], opened["mode"], opened["worker_id"]) == (rank, "rank_table", rank)
        env_seen = opened["env"]
        assert (env_seen["RANK_SIZE"], env_seen["RANK_ID"], env_seen["ASCEND_DEVICE_ID"], env_seen["DEVICE_ID"],
                env_seen["JOB_ID"], env_seen["RANK_TABLE_FILE"]) == ("2", str(rank), str(rank), str(rank),
                                                                     "alexnet-e2e", table)
        # Rank 0's initial variables, once, after the model exists and before the first step.
        [broadcast] = events(rank_calls, "broadcast")
        assert broadcast["root_rank"] == 0 and broadcast["eager"] and not broadcast["created_before_open"]
        assert len(events(rank_calls, "broadcast_run")) == 1
        # Gradients averaged every step, inside the device loop: traced once, run once per step.
        [gradients] = [c for c in events(rank_calls, "all_reduce") if c["traced"] and c["reduction"] == "mean"]
        runs = [c for c in events(rank_calls, "all_reduce_run") if c["traced"] and c["n"] == gradients["n"]]
        # AlexNet's 8 kernels and 8 biases, with the loss and the stop request in the same all-reduce.
        assert len(runs) == 4 and gradients["n"] == 18 and gradients["dtypes"] == ["float32"]
        # Each call's loop was sunk: its body ran loop-size times.
        assert [c["n"] for c in events(rank_calls, "loop_sunk")] == [2, 2]
        assert first_seq(rank_calls, "first_variable_created") < broadcast["seq"] < runs[0]["seq"]
        # Eager collectives: ranks agree on the start step and the final weights (exact max == min), then
        # leave together.
        eager = [c["reduction"] for c in events(rank_calls, "all_reduce") if not c["traced"]]
        assert eager[:2] == ["max", "min"] and eager[-1] == "sum"
        assert [c["n"] for c in events(rank_calls, "set_npu_loop_size")] == [2]
        assert not events(rank_calls, "loss_scale_optimizer")  # bfloat16 needs no loss scaling
        lines = _log_lines(tmp_path / "results" / "2p" / str(rank) / "alexnet_training.log")
        assert [line["step"] for line in lines] == [2, 4]
    assert "[rank 1] " in proc.stdout + proc.stderr
    # Only rank 0 (the chief) writes checkpoints, into the directory every rank resumes from.
    assert [os.path.basename(p) for p in list_checkpoints(str(tmp_path / "results" / "2p" / "0"))] == ["model.ckpt-4"]
    assert not list_checkpoints(str(tmp_path / "results" / "2p" / "1"))


@pytest.mark.slow
@pytest.mark.keras2
def test_two_ranks_started_by_hand_without_a_rank_table(tmp_path):
    """The README's CM_* loop on loopback: no RANK_*, the ranks numbered by the opened devices."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    calls_dir = tmp_path / "calls"
    calls_dir.mkdir()
    procs = []
    for device in (0, 1):
        env = standin_env(calls_dir, CM_CHIEF_IP="127.0.0.1", CM_CHIEF_PORT=str(port), CM_CHIEF_DEVICE="0",
                          CM_WORKER_SIZE="2", CM_WORKER_IP="127.0.0.1", ASCEND_DEVICE_ID=str(device))
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "main.py"), "--backend=npu", *TINY, "--max_train_steps=2",
             "--iterations_per_loop=2", "--save_summary_steps=2", "--precision_mode=force_fp32"],
            cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(o[-3000:] for o in outputs)
    calls = read_calls(calls_dir)
    assert sorted(calls) == ["rank0", "rank1"]
    for rank in (0, 1):
        [opened] = events(calls[f"rank{rank}"], "open")
        assert (opened["mode"], opened["device_id"], opened["env"]["RANK_ID"]) == ("cm", rank, None)
        lines = _log_lines(tmp_path / "results" / "2p" / str(rank) / "alexnet_training.log")
        assert [line["step"] for line in lines] == [2]
    assert [os.path.basename(p) for p in list_checkpoints(str(tmp_path / "results" / "2p" / "0"))] == ["model.ckpt-2"]
