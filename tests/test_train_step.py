"""The compiled training loop's shape (what the Ascend adapter needs to sink it), stopping it, and ``--xla``."""

from __future__ import annotations

import threading
import time

import numpy as np
import tensorflow as tf
from train_step_testutil import BATCH, make_data, make_trainer


def test_the_loop_is_the_functions_last_operation_and_returns_nothing():
    """The adapter runs a loop on the device only when nothing in the function follows or reads it."""
    images, labels = make_data(4)
    trainer, run = make_trainer(images, labels, 4)
    run()
    iterator = iter(tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH).repeat())
    concrete = trainer._loop_fn.get_concrete_function(iterator, tf.constant(2, tf.int64))
    assert concrete.structured_outputs is None and not concrete.outputs
    ops = concrete.graph.get_operations()
    loops = [op for op in ops if op.type in ("While", "StatelessWhile")]
    assert len(loops) == 1 and ops[-1] is loops[0]
    assert not [consumer for out in loops[0].outputs for consumer in out.consumers()]


def test_xla_step_trains_like_the_plain_step():
    images, labels = make_data(3)
    plain, run_plain = make_trainer(images, labels, 3)
    run_plain()
    compiled, run_compiled = make_trainer(images, labels, 3, xla=True)
    result = run_compiled()
    assert result.final_step == 3
    for ours, ref in zip(compiled.model.weights, plain.model.weights):
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)


def test_a_stop_requested_from_another_thread_ends_the_loop_call_at_a_step_boundary():
    images, labels = make_data(4)
    trainer, run = make_trainer(images, labels, 2)
    run()  # traced and warm
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH).repeat()
    iterator = iter(dataset)
    iterations = trainer.optimizer.iterations
    requested = {}

    def ask_when_running():
        while int(iterations.numpy()) < 5:  # a variable read while the loop call runs
            time.sleep(0.01)
        requested["at"] = int(iterations.numpy())
        trainer.request_stop()

    asker = threading.Thread(target=ask_when_running)
    asker.start()
    trainer._loop_fn(iterator, tf.constant(3000, tf.int64))
    asker.join(timeout=60)
    stopped_at = trainer.step
    # The call returned long before its 3000 steps, right after the request reached a step.
    assert requested["at"] <= stopped_at < requested["at"] + 50 and stopped_at < 3000
    assert trainer.stop_agreed
    trainer._loop_fn(iterator, tf.constant(5, tf.int64))
    assert trainer.step == stopped_at  # still stopped: nothing runs until the request is cleared
    trainer.clear_stop()
    trainer._loop_fn(iterator, tf.constant(5, tf.int64))
    assert trainer.step == stopped_at + 5 and not trainer.stop_agreed
