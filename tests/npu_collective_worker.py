"""One rank of a small NPU job on the ``npu_device`` stand-in, through the NPU backend's own methods.

Run once per rank with the rank's launch environment (``RANK_*`` + ``RANK_TABLE_FILE``, or ``CM_*``)
and ``--out=DIR --rank_size=N``. Each rank builds the same linear model with its *own* random
initial weights, lets the backend broadcast rank 0's, then trains one SGD step on its own rows of a
fixed global batch (rank r takes rows r, r + N, ...), with the gradients averaged by the backend.
Then the adapter's loss-scale optimizer gets an overflowed gradient on rank 1 only. It writes
``DIR/rank<r>.npz`` (initial and final weights) and ``DIR/rank<r>.json`` (what the backend reported),
then meets the other ranks in ``finish()``.
"""

import argparse
import json
import os

import numpy as np
import tensorflow as tf

from backends.npu import NPUBackend
from keras_compat import keras

GLOBAL_BATCH, FEATURES, OUTPUTS, LR = 8, 5, 3, 0.5


def global_batch():
    rng = np.random.default_rng(1234)
    return (rng.normal(size=(GLOBAL_BATCH, FEATURES)).astype(np.float32),
            rng.normal(size=(GLOBAL_BATCH, OUTPUTS)).astype(np.float32))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--rank_size", type=int, default=1)
    args = parser.parse_args()

    backend = NPUBackend(rank_size=args.rank_size, precision_mode="force_fp32")
    backend.setup()
    rank, world = backend.rank, backend.world_size
    with backend.scope():
        layer = keras.layers.Dense(OUTPUTS, kernel_initializer=keras.initializers.GlorotUniform(seed=rank),
                                   bias_initializer=keras.initializers.RandomNormal(seed=100 + rank))
        layer.build((None, FEATURES))
        optimizer = keras.optimizers.SGD(LR)
    variables = [layer.kernel, layer.bias]
    own_init = [v.numpy().copy() for v in variables]
    backend.broadcast_variables(variables)
    start = [v.numpy().copy() for v in variables]

    x, y = global_batch()
    x, y = tf.constant(x[rank::world]), tf.constant(y[rank::world])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(layer(x) - y))
        grads = backend.reduce_gradients(tape.gradient(loss, variables))
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    local_loss = float(step())
    examples = int(backend.reduce_sum(tf.constant(int(x.shape[0]), tf.int64)))
    loss_sum = float(backend.reduce_sum(tf.constant(local_loss, tf.float64)))
    backend.assert_same_on_all_ranks("the kernel's first value", float(variables[0].numpy().flat[0]))

    # Overflow on rank 1 only: the adapter shares the verdict, so every rank skips the step.
    scaled = backend._adapter.train.optimizer.NpuLossScaleOptimizer(keras.optimizers.SGD(LR), dynamic=True)
    probe = tf.Variable([1.0, 1.0])
    scaled.apply_gradients([(tf.constant([np.inf if rank == 1 else 1.0, 1.0]), probe)])
    overflow = {"finite": bool(scaled.last_step_finite.numpy()), "probe": probe.numpy().tolist(),
                "iterations": int(scaled.iterations.numpy())}
    np.savez(os.path.join(args.out, f"rank{rank}.npz"), own_kernel=own_init[0], start_kernel=start[0],
             start_bias=start[1], kernel=variables[0].numpy(), bias=variables[1].numpy())
    with open(os.path.join(args.out, f"rank{rank}.json"), "w", encoding="utf-8") as f:
        json.dump({"rank": rank, "world": world, "examples": examples, "local_loss": local_loss,
                   "loss_sum": loss_sum, "overflow": overflow, "describe": backend.describe()}, f)
    backend.finish()


if __name__ == "__main__":
    main()
