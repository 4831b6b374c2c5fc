"""What the NPU adapter's Keras needs from the shared code (TensorFlow 2.6 ships Keras 2's OptimizerV2).

Run under Keras 3 and, marked ``keras2``, again under Keras 2 (``TF_USE_LEGACY_KERAS=1``), where
``keras.optimizers.legacy`` is the same OptimizerV2 family as TensorFlow 2.6's optimizers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from npu_testutil import events, standin_session

import zoo
from backends import npu
from keras_compat import IS_KERAS_3, RELAX_SHAPES, create_optimizer_variables, keras, optimizer_variables
from training.log import TrainLog
from training.schedules import WarmupDecaySchedule
from training.trainer import TrainConfig, Trainer

pytestmark = pytest.mark.keras2


@pytest.fixture
def standin(monkeypatch):
    yield from standin_session(monkeypatch)


def _optimizers():
    found = [("current", keras.optimizers.SGD)]
    legacy = getattr(keras.optimizers, "legacy", None)
    if not IS_KERAS_3 and legacy is not None:
        found.append(("OptimizerV2", legacy.SGD))
    return found


@pytest.mark.parametrize("kind, sgd", _optimizers(), ids=[k for k, _ in _optimizers()])
def test_optimizer_variables_are_created_up_front(kind, sgd):
    weights = [tf.Variable(np.ones((2, 3), np.float32)), tf.Variable(np.zeros(3, np.float32))]
    optimizer = sgd(0.1, momentum=0.9)
    create_optimizer_variables(optimizer, weights)
    found = optimizer_variables(optimizer)
    shapes = sorted(tuple(v.shape) for v in found if tf.as_dtype(v.dtype).is_floating and len(v.shape))
    assert shapes == [(2, 3), (3,)]  # one momentum slot per weight, before any step ran


def test_relax_shapes_keyword_is_accepted_by_this_tensorflow():
    @tf.function(**RELAX_SHAPES)
    def total(x):
        return tf.reduce_sum(x)

    assert float(total(tf.ones(3))) == 3.0 and float(total(tf.ones(5))) == 5.0


@pytest.mark.skipif(IS_KERAS_3, reason="the adapter's loss-scale optimizer wraps Keras 2 optimizers only "
                    "(the NPU path runs under TF_USE_LEGACY_KERAS=1; test_npu_backend checks the refusal)")
@pytest.mark.parametrize("kind, sgd", _optimizers(), ids=[k for k, _ in _optimizers()])
def test_trainer_steps_on_the_npu_path_with_loss_scaling(standin, kind, sgd):
    """A few trainer steps through the NPU backend (float16 mode: the adapter's loss-scale optimizer)."""
    backend = npu.NPUBackend(precision_mode="allow_mix_precision", environ={})
    backend.setup()
    recipe = zoo.get_recipe("alexnet").scaled(63)
    schedule = WarmupDecaySchedule(0.001, 100, warmup_epochs=0, max_epochs=1)
    with backend.scope():
        model = zoo.create_model("alexnet", recipe=recipe, num_classes=3, dropout=0.0)
        optimizer = backend.wrap_optimizer(sgd(schedule, momentum=0.9, nesterov=True))
        create_optimizer_variables(optimizer, model.trainable_variables)
    config = TrainConfig(num_classes=3, per_replica_batch=2, global_batch=2, num_train_examples=200, max_steps=4,
                         iterations_per_loop=2, save_summary_steps=2, save_checkpoints_steps=100)
    log = TrainLog(None)
    trainer = Trainer(model=model, optimizer=optimizer, schedule=schedule, backend=backend, config=config, log=log)
    before = [w.numpy().copy() for w in model.trainable_weights]

    def dataset_fn(ctx):
        images = tf.random.stateless_normal((2, 63, 63, 3), seed=(1, 2))
        labels = tf.constant([0, 2], tf.int32)
        return tf.data.Dataset.from_tensors((images, labels)).repeat()

    result = trainer.train(dataset_fn)
    assert result.final_step == 4 and math.isfinite(result.loss)
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    from npu_device import _standin

    calls = _standin.CALLS
    assert [c["n"] for c in events(calls, "set_npu_loop_size")] == [2]
    assert events(calls, "loss_scale_optimizer")[0]["inner"] == sgd.__name__
    assert events(calls, "scale_loss")
