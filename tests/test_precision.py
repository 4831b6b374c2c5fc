"""--precision on the CPU: mixed bfloat16 computes in bfloat16 with float32 weights, and trains."""

import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_main

import zoo
from keras_compat import set_precision_policy


@pytest.fixture
def bf16_policy():
    set_precision_policy("bf16")
    yield
    set_precision_policy("fp32")


@pytest.mark.keras2
def test_bf16_policy_computes_in_bfloat16_with_float32_weights(bf16_policy):
    model = zoo.create_model("alexnet", num_classes=3, image_size=63, dropout=0.0)
    assert len(model.trainable_weights) == 16
    assert all(tf.as_dtype(v.dtype) == tf.float32 for v in model.trainable_weights)
    logits = model(np.random.RandomState(0).normal(size=(2, 63, 63, 3)).astype(np.float32), training=False)
    assert logits.dtype == tf.bfloat16
    assert model.get_layer("conv1").compute_dtype == "bfloat16"


def test_bf16_training_run_checkpoints_float32_weights(tmp_path):
    proc = run_main("--backend=cpu", "--synthetic", "--precision=bf16", "--image_size=63", "--num_classes=4",
                    "--batch_size=4", "--max_train_steps=2", "--iterations_per_loop=1", "--save_summary_steps=1",
                    "--lr=0.0001", "--warmup_epochs=0", "--version=torchvision", f"--log_dir={tmp_path}")
    assert "precision=bf16" in proc.stdout
    assert proc.stdout.count("step:") == 2
    reader = tf.train.load_checkpoint(os.path.join(str(tmp_path), "model.ckpt-2"))
    dtypes = {k: d for k, d in reader.get_variable_to_dtype_map().items() if "VARIABLE_VALUE" in k}
    assert len(dtypes) > 16 and set(dtypes.values()) <= {tf.float32, tf.int64}


# -- --precision=auto ------------------------------------------------------------------------------

def test_auto_precision_on_cpus_follows_their_bfloat16_instructions():
    from backends.precision import cpu_precision

    assert cpu_precision(["sse2", "avx512f", "avx512_bf16"])[0] == "bf16"
    assert cpu_precision(["amx_tile", "amx_bf16"])[0] == "bf16"
    choice, reason = cpu_precision(["sse2", "avx2", "avx512f"])
    assert choice == "fp32" and "emulated" in reason
    assert cpu_precision(None)[0] == "fp32"


def test_auto_precision_on_gpus_follows_the_lowest_compute_capability():
    from backends.precision import gpu_precision

    assert gpu_precision([(9, 0), (8, 0)])[0] == "bf16"
    assert gpu_precision([(8, 6), (7, 5)])[0] == "fp16"  # mixed cards: the older one decides
    assert gpu_precision([(7, 0)])[0] == "fp16"
    assert gpu_precision([(6, 1)])[0] == "fp32"  # Pascal: no tensor cores
    assert gpu_precision([(6, 0)])[0] == "fp32"
    assert gpu_precision([(5, 2)])[0] == "fp32"
    assert gpu_precision([None])[0] == "fp32"


@pytest.mark.parametrize("capabilities, expected, reason", [
    ([(9, 0)], "bf16", "GPU compute capability 9.0 >= 8.0 computes bfloat16 natively"),
    ([(8, 0), (8, 6)], "bf16", "GPU compute capability 8.0 >= 8.0"),
    ([(7, 5)], "fp16", "GPU compute capability 7.5 (7.x) has float16 tensor cores, no bfloat16 ones"),
    ([(8, 0), (7, 0)], "fp16", "GPU compute capability 7.0 (7.x)"),
    ([(6, 0)], "fp32", "GPU compute capability 6.0 < 7.0 has no tensor cores"),
    ([None], "fp32", "the GPUs' compute capability is unknown"),
])
def test_gpu_backend_auto_precision_reads_each_used_gpus_device_description(monkeypatch, capabilities, expected,
                                                                           reason):
    """The GPU backend with its devices' descriptions mocked (there is no GPU here): the oldest used GPU decides."""
    from backends.gpu import GPUBackend

    gpus = [tf.config.PhysicalDevice(name=f"/physical_device:GPU:{i}", device_type="GPU")
            for i in range(len(capabilities))]
    details = {g.name: ({"compute_capability": c, "device_name": "mock"} if c else {"device_name": "mock"})
               for g, c in zip(gpus, capabilities)}
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: details[device.name])
    backend = GPUBackend(rank_size=len(capabilities), precision="auto", multi_worker=False)
    note = backend.resolve_precision()
    assert backend.precision == expected
    assert note.startswith(f"Precision: {expected} (--precision=auto: {reason}")
    assert backend.resolve_precision() == note  # decided once


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_auto_is_the_default_and_the_log_says_what_it_chose_and_why(tmp_path):
    from backends.precision import cpu_flags, cpu_precision

    expected, reason = cpu_precision(cpu_flags())
    log_dir = tmp_path / "run"
    # --precision=auto after the fp32 that run_main puts first: the flag's default, stated explicitly.
    run_main("--synthetic", "--model=alexnet", "--image_size=64", "--batch_size=2", "--max_train_steps=1",
             "--precision=auto", f"--log_dir={log_dir}", "--nodo_checkpoint")
    lines = (log_dir / "alexnet_training.log").read_text().splitlines()
    assert f"Precision: {expected} (--precision=auto: {reason})" in lines[:3]
    assert f"precision={expected}" in lines[0]


@pytest.mark.parametrize("choice, device, faster_on, expected", [
    ("bf16", "cpu", ("cpu",), "fp32"),  # the recipe measured fp32 faster on CPUs
    ("bf16", "cpu", ("gpu",), "bf16"),  # ... on GPUs only: the CPU keeps its choice
    ("fp16", "gpu", ("gpu",), "fp32"),
    ("fp32", "cpu", ("cpu",), "fp32"),  # nothing to undo
    ("bf16", "cpu", (), "bf16"),
])
def test_auto_precision_takes_the_models_measured_fp32_preference(choice, device, faster_on, expected):
    from backends.precision import for_model

    precision, reason = for_model(choice, "the device's reason", device=device, model="net", fp32_faster_on=faster_on)
    assert precision == expected
    assert reason.startswith("the device's reason")
    assert (f"net trains faster in fp32 than in {choice} on {device}s" in reason) == (expected != choice)


def test_every_recipes_fp32_preference_names_a_backend():
    from registry import BACKENDS

    for name in zoo.list_models():
        assert set(zoo.get_recipe(name).fp32_faster_on) <= set(BACKENDS.list()) - {"auto"}, name


def test_auto_precision_of_a_model_that_trains_faster_in_fp32_on_cpus(tmp_path):
    """A model whose recipe records fp32 as faster on CPUs trains in fp32 under --precision=auto, and the log says
    why (on a CPU without native bfloat16 the device's own choice is already fp32)."""
    from backends.precision import cpu_flags, cpu_precision, for_model

    model = "mobilenet_v3_small"  # the smallest of them
    assert "cpu" in zoo.get_recipe(model).fp32_faster_on
    expected, reason = for_model(*cpu_precision(cpu_flags()), device="cpu", model=model, fp32_faster_on=("cpu",))
    assert expected == "fp32"
    log_dir = tmp_path / "run"
    run_main("--synthetic", f"--model={model}", "--image_size=32", "--batch_size=2", "--max_train_steps=1",
             "--precision=auto", f"--log_dir={log_dir}", "--nodo_checkpoint", "--backend=cpu")
    lines = (log_dir / f"{model}_training.log").read_text().splitlines()
    assert f"Precision: fp32 (--precision=auto: {reason})" in lines[:3]
