"""Loop sinking on the ``npu_device`` stand-in: the body of a sunk loop runs with the loop's initial inputs.

The adapter replaces a function's only (and last) loop by its body and runs that ``loop size`` times
(docs/npu.md, "Loop sinking"): code that reads the loop index or a value carried from one iteration to
the next goes wrong there and nowhere else. These tests show the stand-in reproduces that (a planted
index-dependent loop), and that the trainer's loop is immune: it trains exactly as on the CPU, logs
``total_loss`` with the weight-decay penalty of the logged step, stops at a non-finite step and at a
stop request, and skips a float16 overflow through the adapter's float-status path.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from npu_testutil import events, standin_session
from train_step_testutil import BATCH, CLASSES, SIZE, make_data

from backends import npu
from backends.cpu import CPUBackend
from keras_compat import IS_KERAS_3, create_optimizer_variables, keras, set_precision_policy
from training.log import TrainLog
from training.nonfinite import NonFiniteLossError
from training.optimizers import build_optimizer
from training.schedules import WarmupDecaySchedule
from training.trainer import TrainConfig, Trainer


@pytest.fixture
def standin(monkeypatch):
    yield from standin_session(monkeypatch)


def _calls():
    from npu_device import _standin

    return _standin.CALLS


@pytest.mark.keras2
def test_a_sunk_loop_runs_its_body_with_the_initial_inputs(standin):
    backend = npu.NPUBackend(environ={})
    backend.setup()
    index_sum, data_sum, carried = (tf.Variable(0, dtype=tf.int64) for _ in range(3))

    @tf.function
    def loop(iterator, steps):
        total = tf.constant(0, tf.int64)
        for i in tf.range(steps):
            x = next(iterator)
            index_sum.assign_add(i)  # the loop index: stays 0 when sunk
            data_sum.assign_add(x)  # a variable: carries over
            total += x  # a loop-carried value: restarts from its initial 0 at every sunk step
            carried.assign(total)

    iterator = iter(tf.data.Dataset.range(100))
    backend.set_loop_size(4)
    loop(iterator, tf.constant(4, tf.int64))
    # Plain TensorFlow gives index_sum 0+1+2+3 = 6 and carried = 6: the body saw i = 0 and total = 0 each time.
    assert (int(index_sum.numpy()), int(data_sum.numpy()), int(carried.numpy())) == (0, 6, 3)
    # The loop size, not the loop's own count, says how often the body runs.
    backend.set_loop_size(2)
    loop(iterator, tf.constant(5, tf.int64))
    assert int(data_sum.numpy()) == 6 + 4 + 5
    assert [c["n"] for c in events(_calls(), "loop_sunk")] == [4, 2]

    @tf.function
    def loop_with_result(iterator, steps):
        total = tf.constant(0, tf.int64)
        for _ in tf.range(steps):
            total += next(iterator)
        return total  # something follows the loop: the adapter runs it as written

    assert int(loop_with_result(iterator, tf.constant(3, tf.int64))) == 6 + 7 + 8
    assert events(_calls(), "loop_builtin") and len(events(_calls(), "loop_sunk")) == 2


def _trainer(backend, images, labels, steps, *, per_call, policy="stop", weight_decay=1e-3, precision=None):
    schedule = WarmupDecaySchedule(0.05, 100, warmup_epochs=0, max_epochs=1, kind="constant")
    with backend.scope():
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                                  keras.layers.Dense(CLASSES, dtype="float32")])
        optimizer = backend.wrap_optimizer(build_optimizer("momentum", schedule))
        create_optimizer_variables(optimizer, model.trainable_variables)
    config = TrainConfig(num_classes=CLASSES, per_replica_batch=BATCH, global_batch=BATCH,
                         num_train_examples=100 * BATCH, max_steps=steps, iterations_per_loop=per_call,
                         save_summary_steps=per_call, weight_decay=weight_decay, label_smoothing=0.0,
                         nan_policy=policy)
    trainer = Trainer(model=model, optimizer=optimizer, schedule=schedule, backend=backend, config=config,
                      log=TrainLog(None))
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH)
    return trainer, lambda ctx: dataset


def _cpu_reference(images, labels, steps, per_call):
    backend = CPUBackend()
    backend.setup()
    trainer, dataset_fn = _trainer(backend, images, labels, steps, per_call=per_call)
    result = trainer.train(dataset_fn)
    return result, [w.numpy() for w in trainer.model.weights]


@pytest.mark.keras2
def test_the_trainer_trains_sunk_as_on_the_cpu_and_logs_the_penalty_of_the_logged_step(standin):
    images, labels = make_data(6)
    cpu, cpu_weights = _cpu_reference(images, labels, 6, 3)  # before the stand-in sinks anything
    backend = npu.NPUBackend(precision_mode="force_fp32", environ={})
    backend.setup()
    trainer, dataset_fn = _trainer(backend, images, labels, 6, per_call=3)
    result = trainer.train(dataset_fn)
    assert [c["n"] for c in events(_calls(), "loop_sunk")] == [3, 3]
    assert result.final_step == 6 == trainer.step
    for ours, ref in zip(trainer.model.weights, cpu_weights):
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-6)
    # total_loss carries the weight-decay penalty of step 6, as on the CPU: a step that asked the loop index
    # whether it was the last would have seen index 0 and left the penalty out.
    assert result.total_loss > result.loss
    assert result.total_loss == pytest.approx(cpu.total_loss, rel=1e-5)
    assert result.loss == pytest.approx(cpu.loss, rel=1e-5)


@pytest.mark.keras2
def test_a_sunk_loop_stops_at_a_nonfinite_step_and_at_a_stop_request(standin):
    images, labels = make_data(6, nan_steps=[2])
    _, cpu_weights = _cpu_reference(images[:BATCH], labels[:BATCH], 1, 1)
    backend = npu.NPUBackend(precision_mode="force_fp32", environ={})
    backend.setup()
    trainer, dataset_fn = _trainer(backend, images, labels, 6, per_call=3)
    with pytest.raises(NonFiniteLossError) as info:
        trainer.train(dataset_fn)
    # The body ran 3 times; its steps after the bad one were no-ops: weights and counter of step 1.
    assert info.value.step == 2 and trainer.step == 1
    for ours, ref in zip(trainer.model.weights, cpu_weights):
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-6)

    clean_images, clean_labels = make_data(6)
    trainer, dataset_fn = _trainer(backend, clean_images, clean_labels, 6, per_call=3)
    iterator = iter(backend.distribute_dataset(dataset_fn))
    backend.set_loop_size(3)
    trainer._loop_fn = trainer._make_loop()
    trainer.request_stop()
    trainer._loop_fn(iterator, tf.constant(3, tf.int64))
    # The body ran 3 times, the step that carried the request was the last applied.
    assert trainer.step == 1 and trainer.stop_agreed
    first_loss = float(trainer._last_loss.numpy())
    trainer.clear_stop()
    trainer._loop_fn(iterator, tf.constant(3, tf.int64))
    assert trainer.step == 4 and not trainer.stop_agreed
    assert float(trainer._last_loss.numpy()) != first_loss


@pytest.mark.keras2
@pytest.mark.skipif(IS_KERAS_3, reason="npu_device's NpuLossScaleOptimizer is a Keras 2 class")
def test_a_float16_overflow_is_skipped_through_the_adapters_float_status(standin):
    """Float16 compute (the Keras policy stands in for the NPU's float16 cube) overflows at step 2 only."""
    images, labels = make_data(4)
    images[BATCH: 2 * BATCH] = 3e3  # finite loss, float16 gradients overflow
    backend = npu.NPUBackend(precision_mode="allow_mix_precision", environ={})
    backend.setup()
    set_precision_policy("fp16")
    try:
        trainer, dataset_fn = _trainer(backend, images, labels, 4, per_call=4, weight_decay=0.0)
        scale = float(trainer.optimizer.loss_scale)
        result = trainer.train(dataset_fn)
    finally:
        set_precision_policy("fp32")
    assert result.final_step == 4 and result.skipped_steps == 0  # the loss scale's business, not --nan_policy
    assert float(trainer.optimizer.loss_scale) == scale / 2
    assert all(np.all(np.isfinite(w.numpy())) for w in trainer.model.weights)
    statuses = events(_calls(), "float_status")
    assert statuses and {s["dtype"] for s in statuses} == {"float32"}
