"""Two real rank processes on the ``npu_device`` stand-in, whose collectives really combine their values.

The job uses the rank-table-free environment Huawei documents (``CM_*`` only, no ``RANK_*``), on
loopback: each rank learns its rank from the opened device, receives rank 0's initial weights, trains
one step on its own half of a batch with the gradients averaged by the backend, and ends with weights
that are bitwise equal across ranks and equal to one process's step on the whole batch. The adapter's
loss-scale optimizer then skips, on both ranks, a step that overflowed on one.
"""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from npu_collective_worker import LR, global_batch
from npu_testutil import events, read_calls, standin_env, start_ranks, wait_ranks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_step_on_the_whole_batch(kernel, bias, x, y):
    """SGD on mean((x W + b - y)^2), in float64."""
    kernel, bias = kernel.astype(np.float64), bias.astype(np.float64)
    residual = x @ kernel + bias - y
    scale = 2.0 / residual.size
    return kernel - LR * scale * x.T @ residual, bias - LR * scale * residual.sum(axis=0)


@pytest.mark.keras2
def test_two_ranks_average_gradients_and_stay_bitwise_equal(tmp_path):
    port = _free_port()
    envs = [standin_env(tmp_path, CM_CHIEF_IP="127.0.0.1", CM_CHIEF_PORT=str(port), CM_CHIEF_DEVICE="0",
                        CM_WORKER_SIZE="2", CM_WORKER_IP="127.0.0.1", ASCEND_DEVICE_ID=str(device))
            for device in (0, 1)]
    wait_ranks(start_ranks([["--out", str(tmp_path)]] * 2, envs))  # --rank_size left out: CM_WORKER_SIZE says 2

    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["world"]) for r in reports] == [(0, 2), (1, 2)]
    weights = [np.load(tmp_path / f"rank{r}.npz") for r in (0, 1)]
    calls = read_calls(tmp_path)
    assert [events(calls[f"rank{r}"], "open")[0]["mode"] for r in (0, 1)] == ["cm", "cm"]
    # Ranks are given out by the opened device (device 0 -> rank 0 here), not by RANK_ID.
    assert [events(calls[f"rank{r}"], "open")[0]["device_id"] for r in (0, 1)] == [0, 1]

    # Broadcast: rank 1 started from its own random weights and received rank 0's.
    assert not np.array_equal(weights[1]["own_kernel"], weights[0]["own_kernel"])
    np.testing.assert_array_equal(weights[1]["start_kernel"], weights[0]["own_kernel"])

    # One step on each rank's half, gradients averaged = one step on the whole batch.
    x, y = global_batch()
    kernel, bias = _one_step_on_the_whole_batch(weights[0]["start_kernel"], weights[0]["start_bias"], x, y)
    np.testing.assert_allclose(weights[0]["kernel"], kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights[0]["bias"], bias, rtol=1e-5, atol=1e-6)
    own_half, _ = _one_step_on_the_whole_batch(weights[0]["start_kernel"], weights[0]["start_bias"], x[0::2], y[0::2])
    assert not np.allclose(weights[0]["kernel"], own_half, rtol=1e-3)  # not just rank 0's own gradient
    # And bitwise equal on both ranks.
    for name in ("kernel", "bias"):
        assert weights[0][name].tobytes() == weights[1][name].tobytes()

    # Counts and sums over ranks: exact integers, float sums of both ranks' values.
    assert [r["examples"] for r in reports] == [8, 8]
    assert reports[0]["loss_sum"] == reports[1]["loss_sum"]
    assert reports[0]["loss_sum"] == pytest.approx(reports[0]["local_loss"] + reports[1]["local_loss"], rel=1e-6)
    # The adapter's loss-scale optimizer: only rank 1's gradient overflowed, and both ranks skipped the step.
    assert [r["overflow"] for r in reports] == [{"finite": False, "probe": [1.0, 1.0], "iterations": 1}] * 2
    # It read that from the adapter's float status: a float32 buffer, summed over the ranks (HCCL and every
    # GPU collective reduce float32; the adapter never all-reduces an int32 verdict).
    for rank in (0, 1):
        rank_calls = calls[f"rank{rank}"]
        [status] = events(rank_calls, "float_status")
        assert status["dtype"] == "float32" and status["workers"] == 2
        after = [c for c in events(rank_calls, "all_reduce") if c["seq"] > status["seq"]][0]
        assert (after["reduction"], after["dtypes"], after["n"]) == ("sum", ["float32"], 1)
    # The gradient all-reduce ran inside the tf.function, once.
    traced = [c for c in events(calls["rank1"], "all_reduce_run") if c["traced"]]
    assert len(traced) == 1 and traced[0]["n"] == 2
