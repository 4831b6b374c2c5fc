"""The NPU backend against the recording ``npu_device`` stand-in, in this process.

Covers what the backend asks of the adapter's documented API and in what order: options before
``open``, the device opened as default, loop size, collectives only between several ranks, the
adapter's loss-scale optimizer in float16 modes, and the launch environment a rank checks.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tensorflow as tf
from npu_testutil import drop_standin_modules, events, standin_session, v1_0_table, write_json

from backends import npu
from keras_compat import keras
from training.optimizers import scale_loss, unscale_gradients


@pytest.fixture
def standin(monkeypatch):
    yield from standin_session(monkeypatch)


def _calls(npu_device):
    from npu_device import _standin

    return _standin.CALLS


def _rank_env(tmp_path, rank=0, size=2, **extra):
    env = {"RANK_ID": str(rank), "RANK_SIZE": str(size), "ASCEND_DEVICE_ID": str(rank),
           "RANK_TABLE_FILE": write_json(tmp_path / "rank_table.json", v1_0_table(size))}
    env.update(extra)
    return env


@pytest.mark.keras2
def test_without_the_adapter_the_message_says_what_to_install(monkeypatch):
    drop_standin_modules()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not p.rstrip("/").endswith("fakes")])
    with pytest.raises(npu.AdapterNotInstalledError) as info:
        npu.import_npu_device()
    message = str(info.value)
    assert "npu_device" in message and "CANN" in message and "TensorFlow 2.6" in message
    assert isinstance(info.value, ValueError)  # main.py reports ValueErrors without a traceback


@pytest.mark.keras2
def test_options_are_set_before_the_device_opens(standin):
    backend = npu.NPUBackend(precision_mode="force_fp16", device_ids=[3],
                             options={"hcom_parallel": False, "dump_config.enable_dump": True,
                                      "graph_memory_max_size": str(8 << 30)}, environ={})
    backend.setup()
    calls = _calls(standin)
    names = [c["event"] for c in calls]
    assert names[:4] == ["set_option"] * 4 and names[4:6] == ["open", "as_default"]
    opened = events(calls, "open")[0]
    assert opened["device_id"] == 3
    assert opened["options"]["precision_mode"] == "force_fp16"
    assert opened["options"]["hcom_parallel"] is False
    assert opened["options"]["dump_config.enable_dump"] is True
    assert opened["options"]["graph_memory_max_size"] == str(8 << 30)
    assert "device=3" in backend.describe() and "rank=0/1" in backend.describe()
    # The adapter reads options when it opens: the stand-in refuses later ones, so must the backend's order.
    with pytest.raises(RuntimeError, match="after npu_device.open"):
        standin.global_options().precision_mode = "force_fp32"


@pytest.mark.parametrize("options, message", [
    ({"no_such_option": 1}, "no_such_option=1.*has no option"),
    ({"op_compiler_cache_mode": "sometimes"}, "not in optional list"),
    ({"dump_config.nothing": True}, "dump_config.nothing"),
])
def test_options_the_adapter_rejects_are_reported_with_the_flag(standin, options, message):
    backend = npu.NPUBackend(options=options, environ={})
    with pytest.raises(ValueError, match=message) as info:
        backend.setup()
    assert "--npu_option" in str(info.value)
    assert not events(_calls(standin), "open")  # nothing opened with a half-applied configuration


def test_parse_npu_options():
    assert npu.parse_npu_options(["a=1", "b.c=true", "d=x=y", "e=False"]) == {"a": 1, "b.c": True, "d": "x=y",
                                                                               "e": False}
    with pytest.raises(ValueError, match="--npu_option=oops: expected KEY=VALUE"):
        npu.parse_npu_options(["oops"])


def test_keras_precision_flag_is_refused_on_npus():
    backend = npu.NPUBackend(precision="fp16", environ={})
    with pytest.raises(ValueError, match="--precision_mode"):
        backend.maybe_launch(["main.py"])
    with pytest.raises(ValueError, match="--npu_loss_scale=0.5"):
        npu.NPUBackend(loss_scale="0.5", environ={})


@pytest.mark.keras2
@pytest.mark.parametrize("mode", npu.PRECISION_MODES)
def test_float16_modes_use_the_adapters_loss_scale_optimizer(standin, mode):
    backend = npu.NPUBackend(precision_mode=mode, environ={})
    backend.setup()
    inner = keras.optimizers.SGD(0.1)
    wrapped = backend.wrap_optimizer(inner)
    made = events(_calls(standin), "loss_scale_optimizer")
    if mode in npu.FP16_MODES:
        assert isinstance(wrapped, keras.mixed_precision.LossScaleOptimizer)
        assert wrapped.inner_optimizer is inner
        assert [m["dynamic"] for m in made] == [True]
        assert "loss_scale=dynamic" in backend.describe()
    else:
        assert wrapped is inner and not made
        assert "loss_scale=none" in backend.describe()


def test_loss_scale_flag_values(standin):
    backend = npu.NPUBackend(precision_mode="force_fp32", loss_scale="1024", environ={})
    backend.setup()
    already = keras.mixed_precision.LossScaleOptimizer(keras.optimizers.SGD(0.1))  # e.g. from --precision=fp16
    wrapped = backend.wrap_optimizer(already)
    assert wrapped.inner_optimizer is already.inner_optimizer  # unwrapped first, never scaled twice
    made = events(_calls(standin), "loss_scale_optimizer")
    assert [(m["dynamic"], m["initial_scale"]) for m in made] == [(False, 1024.0)]
    assert npu.NPUBackend(precision_mode="force_fp16", loss_scale="none", environ={}).loss_scale is None
    assert npu.NPUBackend(precision_mode="allow_fp32_to_bf16", loss_scale="dynamic", environ={}).loss_scale == 0.0


@pytest.mark.keras2
def test_loss_scaled_step_matches_an_unscaled_step(standin):
    """The trainer's scale_loss -> gradients -> unscale_gradients -> all-reduce -> apply, through the
    adapter's optimizer, updates the weights exactly as plain SGD does."""
    backend = npu.NPUBackend(precision_mode="allow_mix_precision", environ={})
    backend.setup()
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(8, 5)), tf.float32)
    y = tf.constant(rng.normal(size=(8, 3)), tf.float32)
    w0 = rng.normal(size=(5, 3)).astype(np.float32)

    def step(optimizer, scaled):
        w = tf.Variable(w0)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.matmul(x, w) - y))
            target = scale_loss(optimizer, loss) if scaled else loss
        grads = tape.gradient(target, [w])
        if scaled:
            grads = unscale_gradients(optimizer, grads)
            grads = backend.reduce_gradients(grads)
        optimizer.apply_gradients(zip(grads, [w]))
        return float(loss), float(target), w.numpy()

    loss, scaled_loss, w_npu = step(backend.wrap_optimizer(keras.optimizers.SGD(0.1)), True)
    _, _, w_plain = step(keras.optimizers.SGD(0.1), False)
    assert scaled_loss > 100 * loss  # the loss really was scaled
    assert events(_calls(standin), "scale_loss")
    np.testing.assert_allclose(w_npu, w_plain, rtol=1e-5, atol=1e-6)
    assert not np.allclose(w_plain, w0)


def test_each_rank_reads_its_own_shard_at_global_batch_over_ranks(tmp_path):
    backend = npu.NPUBackend(rank_size=2, environ=_rank_env(tmp_path, rank=1))
    global_batch = 2 * 2  # --batch_size 2 on each of 2 ranks

    def dataset_fn(ctx):
        assert ctx.num_input_pipelines == 2 and ctx.input_pipeline_id == 1
        ds = tf.data.Dataset.range(8).shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
        return ds.batch(ctx.get_per_replica_batch_size(global_batch))

    batches = [b.numpy().tolist() for b in backend.distribute_dataset(dataset_fn)]
    assert batches == [[1, 3], [5, 7]]
    assert backend.num_replicas == 2 and backend.world_size == 2 and backend.rank == 1
    assert not backend.is_chief


def test_collectives_between_ranks(standin, tmp_path, monkeypatch):
    before = tf.Variable(1.0)  # made on the host before the NPU was opened
    for key, value in _rank_env(tmp_path, rank=0).items():
        monkeypatch.setenv(key, value)
    backend = npu.NPUBackend(rank_size=2, precision_mode="force_fp32")
    backend.setup()
    assert backend.strategy is tf.distribute.get_strategy()  # one device per process

    weights = [tf.Variable(np.ones(3, np.float32)), tf.Variable(2.0), tf.Variable(0, dtype=tf.int64)]
    backend.broadcast_variables(weights)
    [broadcast] = events(_calls(standin), "broadcast")
    assert broadcast["n"] == 2 and broadcast["root_rank"] == 0 and broadcast["dtypes"] == ["float32"]
    with pytest.raises(RuntimeError, match="created before npu_device.open"):
        backend.broadcast_variables([before])

    @tf.function
    def step(g):
        return backend.reduce_gradients([g, 2.0 * g])

    for _ in range(3):
        out = step(tf.constant([1.0, 2.0]))
    np.testing.assert_allclose(out[1].numpy(), [2.0, 4.0])  # the stand-in's all-reduce is the identity
    traced = [c for c in events(_calls(standin), "all_reduce") if c["traced"]]
    assert [(c["n"], c["reduction"]) for c in traced] == [(2, "mean")]
    assert len(events(_calls(standin), "all_reduce_run")) == 3  # once per step

    count = backend.reduce_sum(tf.constant(7, tf.int64))
    assert count.dtype == tf.int64 and int(count) == 7
    summed = events(_calls(standin), "all_reduce")[-1]
    assert summed["reduction"] == "sum" and summed["dtypes"] == ["int32"]  # what HCCL sums exactly
    loss = backend.reduce_sum(tf.constant(2.5, tf.float64))
    assert loss.dtype == tf.float64 and float(loss) == 2.5
    assert events(_calls(standin), "all_reduce")[-1]["dtypes"] == ["float32"]

    # Agreement checks compare the exact bits of a float64 (as int32 words): max and min over ranks.
    backend.assert_same_on_all_ranks("the step", 1234.5678)
    checks = events(_calls(standin), "all_reduce")[-2:]
    assert [(c["reduction"], c["dtypes"], c["traced"]) for c in checks] == [("max", ["int32"], False),
                                                                           ("min", ["int32"], False)]
    backend.finish()  # a last collective as a barrier
    assert events(_calls(standin), "all_reduce")[-1]["reduction"] == "sum"

    backend.set_loop_size(5)
    assert events(_calls(standin), "set_npu_loop_size")[-1]["n"] == 5


def test_one_rank_runs_no_collective(standin):
    backend = npu.NPUBackend(environ={})
    backend.setup()
    grads = [tf.constant(1.0)]
    assert backend.reduce_gradients(grads) is grads
    backend.broadcast_variables([tf.Variable(1.0)])
    assert int(backend.reduce_sum(tf.constant(4))) == 4
    backend.assert_same_on_all_ranks("the step", 3.0)
    backend.finish()
    assert not events(_calls(standin), "all_reduce") and not events(_calls(standin), "broadcast")


def test_set_up_before_use():
    with pytest.raises(RuntimeError, match="setup"):
        npu.NPUBackend(environ={}).set_loop_size(3)


@pytest.mark.parametrize("env, rank_size, message", [
    ({"RANK_ID": "x", "RANK_SIZE": "2"}, 2, "RANK_ID='x': must be a number"),
    ({"RANK_ID": "2", "RANK_SIZE": "2"}, 2, "RANK_ID=2 is out of range"),
    ({"RANK_ID": "0"}, 2, "RANK_SIZE is None, not 2"),
    ({"RANK_ID": "0", "RANK_SIZE": "4"}, 2, "RANK_SIZE is '4', not 2"),
    ({"RANK_ID": "0", "RANK_SIZE": "2", "ASCEND_DEVICE_ID": "0"}, 2, "RANK_TABLE_FILE is not set"),
    ({"RANK_ID": "0", "RANK_SIZE": "2", "ASCEND_DEVICE_ID": "0", "RANK_TABLE_FILE": "TABLE",
      "CM_CHIEF_IP": "10.0.0.1"}, 2, "pick one launch mode"),
    ({"RANK_ID": "0", "RANK_SIZE": "2", "RANK_TABLE_FILE": "TABLE"}, 2, "ASCEND_DEVICE_ID=None"),
    ({"RANK_ID": "0", "RANK_SIZE": "4", "ASCEND_DEVICE_ID": "0", "RANK_TABLE_FILE": "TABLE"}, 4,
     "lists 2 device.*--rank_size=4"),
    ({"RANK_SIZE": "8"}, 1, "RANK_SIZE=8 in the environment but --rank_size=1"),
])
def test_bad_launch_environments_are_explained(tmp_path, env, rank_size, message):
    table = write_json(tmp_path / "t.json", v1_0_table(2))
    env = {k: (table if v == "TABLE" else v) for k, v in env.items()}
    with pytest.raises(ValueError, match=message):
        npu.rank_from_environment(env, rank_size)


def test_good_launch_environments(tmp_path):
    assert npu.rank_from_environment({}, 8) is None  # the launcher's own process
    assert npu.rank_from_environment({"RANK_ID": "0", "RANK_SIZE": "1"}, 1) == (0, 1)
    assert npu.rank_from_environment(_rank_env(tmp_path, rank=1), 2) == (1, 2)
    cm = {"RANK_ID": "1", "RANK_SIZE": "2", "ASCEND_DEVICE_ID": "1", "CM_CHIEF_IP": "10.0.0.1"}
    assert npu.rank_from_environment(cm, 2) == (1, 2)  # rank-table-free mode
