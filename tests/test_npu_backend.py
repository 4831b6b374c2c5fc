"""The NPU backend against the ``npu_device`` stand-in, in this process.

Covers what the backend asks of the adapter's API and in what order: options before ``open`` with
the types the adapter's options table expects, the device opened as default, the loop size,
collectives only between several ranks (real ones between processes: ``test_npu_collectives.py``),
the adapter's loss-scale optimizer in float16 modes, the launch environment a rank checks (rank
table or ``CM_*``), and which device id a process opens.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tensorflow as tf
from npu_testutil import HUAWEI_CM_ENV, drop_standin_modules, events, standin_session, v1_0_table, write_json

from backends import npu, npu_environment
from keras_compat import IS_KERAS_3, keras
from training.optimizers import scale_loss, unscale_gradients

# The adapter's loss-scale optimizer is Keras 2's (TensorFlow 2.6): these run in the Keras 2 pass.
keras2_only = pytest.mark.skipif(IS_KERAS_3, reason="npu_device's NpuLossScaleOptimizer is a Keras 2 class")


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
    assert opened["device_id"] == 3 and opened["mode"] == "single"
    # What the device receives: the adapter's as_dict(), text values, nested groups by leaf name.
    assert opened["options"]["precision_mode"] == "force_fp16"
    assert opened["options"]["hcom_parallel"] == "0"
    assert opened["options"]["enable_dump"] == "1"
    assert opened["options"]["graph_memory_max_size"] == str(8 << 30)
    assert opened["options"]["op_compiler_cache_mode"] == "enable"  # the adapter's own default (CANN 7.0.0+)
    assert opened["env"]["NPU_LOOP_SIZE"] is None  # left alone: the adapter reads it only at import
    assert "device=3" in backend.describe() and "rank=0/1" in backend.describe()
    assert not [c for c in events(calls, "set_option") if c["after_open"]]


@pytest.mark.parametrize("options, message", [
    ({"no_such_option": "1"}, r"^npu_device has no option no_such_option; its options are: graph_run_mode, "
                              r"graph_memory_max_size, .*precision_mode, .*dump_config\.\*, .*experimental\.\*"),
    ({"op_compiler_cache_mode": "sometimes"},
     r"refused the option op_compiler_cache_mode='sometimes' \(ValueError.*allowed values of "
     r"op_compiler_cache_mode: enable, disable, force\.$"),
    ({"deterministic": "yes"}, r"deterministic='yes' \(TypeError: Expected int, got str\); allowed values of "
                               r"deterministic: 0, 1\.$"),
    ({"jit_compile": "maybe"}, r"allowed values of jit_compile: true, false, auto\.$"),
    ({"hcom_parallel": "1"}, r"TypeError: Expected bool, got str\); allowed values of hcom_parallel: True, False"),
    ({"dump_config.nothing": "1"}, r"^npu_device has no option dump_config.nothing; the options of dump_config "
                                   r"are: dump_config.enable_dump, dump_config.dump_path, .*dump_config.dump_layer\. "),
    ({"nothing.enable_dump": "1"}, r"^npu_device has no option nothing.enable_dump; its options are: graph_run_mode"),
    ({"precision_mode.x": "1"}, r"^npu_device has no option precision_mode.x: precision_mode is an option, not a"),
    ({"dump_config": "1"}, r"^--npu_option=dump_config=1: dump_config is a group of options \(dump_config."
                           r"enable_dump, .*\); set them one by one \(--npu_option=dump_config.enable_dump=...\) "
                           r"or as a JSON object .* A plain value would replace the whole group"),
])
def test_options_the_adapter_rejects_are_one_line_with_the_allowed_values(standin, options, message):
    backend = npu.NPUBackend(options=options, environ={})
    with pytest.raises(ValueError, match=message) as info:
        backend.setup()
    assert "\n" not in str(info.value)
    assert not events(_calls(standin), "open")  # nothing opened with a half-applied configuration


def test_option_groups_merge_option_by_option_and_are_never_replaced(standin):
    """--npu_option keys of one group, named alone or as a JSON object, all reach the device."""
    options = npu.parse_npu_options(["dump_config.enable_dump=true", "dump_config.dump_path=/dump",
                                     'dump_config={"dump_mode": "all", "dump_step": "0|5"}',
                                     'experimental={"graph_memory_optimize_config": {"recompute": "manual"}}'])
    npu.NPUBackend(options=options, environ={}).setup()
    typed = {c["key"]: c["value"] for c in events(_calls(standin), "set_option")}
    assert not [k for k in typed if k in ("dump_config", "experimental")]  # no group was set as a whole
    [opened] = events(_calls(standin), "open")
    assert {k: opened["options"][k] for k in ("enable_dump", "dump_path", "dump_mode", "dump_step", "recompute")} == {
        "enable_dump": "1", "dump_path": "/dump", "dump_mode": "all", "dump_step": "0|5", "recompute": "manual"}


def test_setting_a_group_as_a_whole_would_drop_its_options(standin):
    """Why a plain value for a group is refused: the adapter replaces the group object."""
    tree = standin.global_options()
    tree.dump_config.enable_dump = True
    tree.dump_config = "1"
    assert "enable_dump" not in tree.as_dict()


def test_text_option_values_take_the_adapters_types(standin):
    """--npu_option values are text; only options with numeric or boolean allowed values are converted."""
    options = npu.parse_npu_options(["jit_compile=false", "ac_parallel_enable=1", "deterministic=1",
                                     "hcom_parallel=false", "dump_config.enable_dump=True", "op_debug_config=/a=b",
                                     "stream_sync_timeout=600000", "topo_sorting_mode=1",
                                     "experimental.graph_memory_optimize_config.recompute=manual"])
    assert options["ac_parallel_enable"] == "1" and options["op_debug_config"] == "/a=b"
    npu.NPUBackend(options=options, environ={}).setup()
    typed = {c["key"]: c["value"] for c in events(_calls(standin), "set_option")}
    assert typed["jit_compile"] == "false" and typed["ac_parallel_enable"] == "1"  # string-valued options
    assert typed["deterministic"] == 1 and typed["topo_sorting_mode"] == 1  # int options
    assert typed["hcom_parallel"] is False and typed["dump_config.enable_dump"] is True  # bool options
    assert typed["stream_sync_timeout"] == "600000"  # free options stay text, as the adapter passes them on
    assert typed["experimental.graph_memory_optimize_config.recompute"] == "manual"
    [opened] = events(_calls(standin), "open")
    assert opened["options"]["jit_compile"] == "false" and opened["options"]["deterministic"] == "1"
    assert opened["options"]["recompute"] == "manual"


def test_parse_npu_options():
    assert npu.parse_npu_options(["a=1", "b.c=true", "d=x=y", "e=False"]) == {"a": "1", "b.c": "true", "d": "x=y",
                                                                               "e": "False"}
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
@keras2_only
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


@pytest.mark.keras2
@keras2_only
def test_loss_scale_flag_values(standin):
    backend = npu.NPUBackend(precision_mode="force_fp32", loss_scale="1024", environ={})
    backend.setup()
    inner = keras.optimizers.SGD(0.1)
    wrapped = backend.wrap_optimizer(inner)
    assert wrapped.inner_optimizer is inner and not wrapped.dynamic and float(wrapped.loss_scale) == 1024.0
    made = events(_calls(standin), "loss_scale_optimizer")
    assert [(m["dynamic"], m["initial_scale"]) for m in made] == [(False, 1024.0)]
    assert npu.NPUBackend(precision_mode="force_fp16", loss_scale="none", environ={}).loss_scale is None
    assert npu.NPUBackend(precision_mode="allow_fp32_to_bf16", loss_scale="dynamic", environ={}).loss_scale == 0.0


@pytest.mark.keras2
@keras2_only
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


def test_loop_size_goes_to_the_adapter_which_is_lenient(standin):
    backend = npu.NPUBackend(environ={})
    backend.setup()
    backend.set_loop_size(5)
    assert [(c["n"], c["ignored"]) for c in events(_calls(standin), "set_npu_loop_size")] == [(5, False)]
    standin.set_npu_loop_size(0)  # the adapter logs an error and keeps its loop size
    assert events(_calls(standin), "set_npu_loop_size")[-1] == {**events(_calls(standin), "set_npu_loop_size")[-1],
                                                                "n": 0, "ignored": True}
    with pytest.raises(TypeError):
        standin.set_npu_loop_size(2.5)  # its pybind11 binding takes an int64 only


@pytest.mark.keras2
@keras2_only
def test_the_adapters_loss_scale_optimizer_skips_an_overflowed_step(standin):
    backend = npu.NPUBackend(precision_mode="allow_mix_precision", environ={})
    backend.setup()
    w = tf.Variable([1.0, 2.0])
    optimizer = backend.wrap_optimizer(keras.optimizers.SGD(0.5))

    @tf.function
    def step(g):
        optimizer.apply_gradients([(g, w)])

    step(tf.constant([1.0, 1.0]))
    scale = float(optimizer.loss_scale)
    np.testing.assert_array_equal(w.numpy(), [0.5, 1.5])
    step(tf.constant([np.inf, 1.0]))
    np.testing.assert_array_equal(w.numpy(), [0.5, 1.5])  # skipped: nothing applied
    assert int(optimizer.iterations.numpy()) == 2  # the adapter counts a skipped step
    assert float(optimizer.loss_scale) == scale / 2 and not bool(optimizer.last_step_finite.numpy())
    step(tf.constant([1.0, 1.0]))
    np.testing.assert_array_equal(w.numpy(), [0.0, 1.0])
    assert bool(optimizer.last_step_finite.numpy())


def test_keras_3_optimizers_are_refused_by_the_adapters_loss_scale_optimizer(standin):
    if not IS_KERAS_3:
        pytest.skip("Keras 3 only")
    backend = npu.NPUBackend(precision_mode="allow_mix_precision", environ={})
    backend.setup()
    with pytest.raises(ValueError, match="the adapter runs on Keras 2.*TF_USE_LEGACY_KERAS=1") as info:
        backend.wrap_optimizer(keras.optimizers.SGD(0.1))
    assert "\n" not in str(info.value)


def _launch(env, rank_size):
    return npu_environment.launch_environment(env, rank_size)


@pytest.mark.parametrize("env, rank_size, message", [
    ({"RANK_ID": "x", "RANK_SIZE": "2"}, 2, "RANK_ID='x': must be a number"),
    ({"RANK_ID": "2", "RANK_SIZE": "2"}, 2, "RANK_ID=2 is out of range"),
    ({"RANK_ID": "0"}, 2, "RANK_SIZE is None, not 2"),
    ({"RANK_ID": "0", "RANK_SIZE": "4"}, 2, "RANK_SIZE is '4', not 2"),
    ({"RANK_ID": "0", "RANK_SIZE": "2", "ASCEND_DEVICE_ID": "0"}, 2, "RANK_TABLE_FILE is not set"),
    ({"RANK_ID": "0", "RANK_SIZE": "2", "RANK_TABLE_FILE": "TABLE"}, 2, "ASCEND_DEVICE_ID=None"),
    ({"RANK_ID": "0", "RANK_SIZE": "4", "ASCEND_DEVICE_ID": "0", "RANK_TABLE_FILE": "TABLE"}, 4,
     "lists 2 device.*--rank_size=4"),
    ({"RANK_SIZE": "8"}, 1, "RANK_SIZE=8 in the environment but --rank_size=1"),
    # The rank-table-free mode mixed with the rank table's variables: the adapter and HCCL refuse it.
    ({**HUAWEI_CM_ENV, "RANK_SIZE": "8", "ASCEND_DEVICE_ID": "0"}, 8, "^RANK_SIZE set together with CM_CHIEF_IP"),
    ({**HUAWEI_CM_ENV, "RANK_ID": "3", "ASCEND_DEVICE_ID": "0"}, 8, "^RANK_ID set together"),
    ({**HUAWEI_CM_ENV, "RANK_TABLE_FILE": "TABLE", "RANK_ID": "0", "RANK_SIZE": "2", "ASCEND_DEVICE_ID": "0"}, 2,
     "^RANK_TABLE_FILE, RANK_ID, RANK_SIZE set together with CM_"),
    # Every variable the adapter needs (CM_CHIEF_PORT, CM_CHIEF_DEVICE included) and CM_WORKER_IP.
    ({"CM_CHIEF_IP": "10.0.0.1", "CM_WORKER_SIZE": "2", "ASCEND_DEVICE_ID": "0"}, 1,
     "CM_CHIEF_PORT, CM_CHIEF_DEVICE, CM_WORKER_IP not set"),
    ({**HUAWEI_CM_ENV, "CM_CHIEF_DEVICE": "", "ASCEND_DEVICE_ID": "0"}, 1,
     "^rank-table-free mode: CM_CHIEF_DEVICE not"),
    ({**HUAWEI_CM_ENV, "CM_CHIEF_PORT": "http", "ASCEND_DEVICE_ID": "0"}, 1, "CM_CHIEF_PORT='http': must be a number"),
    ({**HUAWEI_CM_ENV, "ASCEND_DEVICE_ID": "0"}, 4, "CM_WORKER_SIZE=8 but --rank_size=4"),
    (HUAWEI_CM_ENV, 8, "ASCEND_DEVICE_ID=None"),
])
def test_bad_launch_environments_are_explained(tmp_path, env, rank_size, message):
    table = write_json(tmp_path / "t.json", v1_0_table(2))
    env = {k: (table if v == "TABLE" else v) for k, v in env.items()}
    with pytest.raises(ValueError, match=message):
        _launch(env, rank_size)


def test_good_launch_environments(tmp_path):
    assert _launch({}, 8) is None  # the launcher's own process
    assert _launch({"RANK_ID": "0", "RANK_SIZE": "1"}, 1) == npu_environment.LaunchEnvironment("rank_table", 0, 1)
    assert _launch(_rank_env(tmp_path, rank=1), 2) == npu_environment.LaunchEnvironment("rank_table", 1, 2)


@pytest.mark.parametrize("rank_size", [1, 8])
def test_huaweis_documented_rank_table_free_environment_is_accepted(rank_size):
    """HCCL's guide sets CM_CHIEF_IP/PORT/DEVICE, CM_WORKER_SIZE, CM_WORKER_IP (+ HCCL_SOCKET_FAMILY) and no
    RANK_*: the job's size is CM_WORKER_SIZE, the rank comes from the opened device."""
    env = {**HUAWEI_CM_ENV, "ASCEND_DEVICE_ID": "3"}
    found = _launch(env, rank_size)
    assert found == npu_environment.LaunchEnvironment("rank_table_free", None, 8)
    backend = npu.NPUBackend(rank_size=rank_size, environ=env)
    assert backend.maybe_launch(["main.py"]) is None  # one rank of a job: starts nothing
    assert backend.world_size == 8 and backend.num_replicas == 8 and backend._device_id() == 3
    with pytest.raises(RuntimeError, match="known once the device is open"):
        assert backend.rank is None


def test_the_stand_in_refuses_mixed_modes_as_the_adapter_does(standin, monkeypatch):
    monkeypatch.setenv("RANK_SIZE", "2")
    monkeypatch.setenv("CM_WORKER_SIZE", "2")
    with pytest.raises(ValueError, match="RANK_SIZE and CM_WORK_SIZE cannot be configured at the same time"):
        standin.open(0)
    monkeypatch.delenv("CM_WORKER_SIZE")
    monkeypatch.setenv("CM_CHIEF_IP", "10.0.0.1")
    monkeypatch.setenv("RANK_TABLE_FILE", "/nonexistent.json")
    with pytest.raises(RuntimeError, match="CM_CHIEF_IP and RANK_TABLE_FILE cannot be configured at the same time"):
        standin.open(0)
    monkeypatch.delenv("RANK_TABLE_FILE")
    monkeypatch.setenv("CM_WORKER_SIZE", "2")
    monkeypatch.delenv("RANK_SIZE")
    with pytest.raises(RuntimeError, match="cm chief port by set env CM_CHIEF_PORT"):
        standin.open(0)


@pytest.mark.parametrize("visible, physical, logical", [
    (None, 5, 5),  # bare metal: the same ids
    ("4-7", 6, 2),  # a container with NPUs 4..7 mounted
    ("0-2,6", 6, 3),
    ("Ascend910-5,Ascend910-1", 5, 1),
])
def test_physical_and_logical_device_ids(visible, physical, logical):
    env = {"ASCEND_VISIBLE_DEVICES": visible} if visible else {}
    assert npu_environment.logical_device_id(physical, env) == logical
    assert npu_environment.physical_device_id(logical, env) == physical


def test_device_ids_outside_the_container_are_refused():
    env = {"ASCEND_VISIBLE_DEVICES": "4-7"}
    with pytest.raises(ValueError, match=r"NPU 1 \(a physical id, from the rank table\) is not mounted"):
        npu_environment.logical_device_id(1, env)
    with pytest.raises(ValueError, match="logical NPU 4 does not exist here: this container sees 4 NPU"):
        npu_environment.physical_device_id(4, env)
    with pytest.raises(ValueError, match="ASCEND_VISIBLE_DEVICES='x'"):
        npu_environment.visible_devices({"ASCEND_VISIBLE_DEVICES": "x"})


def test_a_single_device_opens_npu_device_ids_before_ascend_device_id():
    assert npu.NPUBackend(device_ids=[3], environ={"ASCEND_DEVICE_ID": "5"})._device_id() == 3
    assert npu.NPUBackend(environ={"ASCEND_DEVICE_ID": "5"})._device_id() == 5
    assert npu.NPUBackend(environ={})._device_id() == 0
