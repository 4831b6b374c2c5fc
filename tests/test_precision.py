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
