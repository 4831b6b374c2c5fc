"""Trains a tiny model for a few steps in its own process and prints what the trainer did, as JSON.

Run by tests/test_nonfinite.py in a fresh process because two logical CPU devices (MirroredStrategy)
must be configured before TensorFlow starts. One replica's share of chosen batches is poisoned:
``--bad=inf`` makes its loss infinite, ``--bad=big`` keeps the loss finite but makes its float16
gradients overflow (only that replica's, before the replicas' gradients are summed).

Usage: python tests/nonfinite_worker.py --replicas=2 --precision=fp16 --bad=big --bad_steps=2
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from backends.cpu import CPUBackend  # noqa: E402
from keras_compat import create_optimizer_variables, keras, set_precision_policy  # noqa: E402
from training.log import TrainLog  # noqa: E402
from training.nonfinite import NonFiniteLossError  # noqa: E402
from training.optimizers import build_optimizer  # noqa: E402
from training.schedules import WarmupDecaySchedule  # noqa: E402
from training.trainer import TrainConfig, Trainer  # noqa: E402

CLASSES, SIZE, PER_REPLICA = 3, 8, 2


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--bad", choices=["inf", "big"], default="big")
    parser.add_argument("--bad_steps", default="2", help="1-based steps whose batch is poisoned, comma-separated")
    parser.add_argument("--bad_replica", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--nan_policy", default="stop")
    parser.add_argument("--worker_hosts", default="", help="host:port,...: one replica per worker process")
    parser.add_argument("--task_index", type=int, default=0)
    args = parser.parse_args()

    hosts = [h for h in args.worker_hosts.split(",") if h]
    if hosts:  # MultiWorkerMirroredStrategy over loopback, one replica in each process
        backend = CPUBackend(rank_size=len(hosts), precision=args.precision, multi_worker=True, worker_hosts=hosts,
                             task_index=args.task_index)
        args.replicas = len(hosts)
    else:
        backend = CPUBackend(rank_size=args.replicas, precision=args.precision, multi_worker=False)
    backend.setup()
    set_precision_policy(args.precision)
    global_batch = PER_REPLICA * args.replicas
    rng = np.random.default_rng(0)
    images = rng.normal(size=(args.steps * global_batch, SIZE, SIZE, 3)).astype(np.float32)
    labels = rng.integers(0, CLASSES, size=(args.steps * global_batch,)).astype(np.int32)
    for step in (int(s) for s in args.bad_steps.split(",") if s):
        # Batch `step` is rows [(step-1)*global, step*global); each replica takes a contiguous half.
        first = (step - 1) * global_batch + args.bad_replica * PER_REPLICA
        images[first:first + PER_REPLICA] = np.inf if args.bad == "inf" else 3e3
    schedule = WarmupDecaySchedule(0.01, 100, warmup_epochs=0, max_epochs=1, kind="constant")
    with backend.scope():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                                  keras.layers.Dense(CLASSES, dtype="float32")])
        optimizer = build_optimizer("momentum", schedule, loss_scaling=args.precision == "fp16")
        create_optimizer_variables(optimizer, model.trainable_variables)
    config = TrainConfig(num_classes=CLASSES, per_replica_batch=PER_REPLICA, global_batch=global_batch,
                         num_train_examples=100 * global_batch, max_steps=args.steps,
                         iterations_per_loop=args.steps, save_summary_steps=args.steps, weight_decay=0.0,
                         label_smoothing=0.0, nan_policy=args.nan_policy)
    trainer = Trainer(model=model, optimizer=optimizer, schedule=schedule, backend=backend, config=config,
                      log=TrainLog(None))
    # Per-replica batches in order: step s, replica r = batch replicas*s + r. One pipeline (logical
    # devices): replicas take consecutive batches; one pipeline per worker: worker r takes every r-th.
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(PER_REPLICA)

    def dataset_fn(ctx):
        if ctx is not None and ctx.num_input_pipelines > 1:
            return batches.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
        return batches

    out = {"error": None}
    try:
        result = trainer.train(dataset_fn)
        out["skipped"] = result.skipped_steps
    except NonFiniteLossError as e:
        out["error"] = str(e)
        out["error_step"] = e.step
    out["step"] = trainer.step
    strategy = backend.strategy
    per_replica = [[np.asarray(c).tobytes().hex() for c in strategy.experimental_local_results(v)]
                   for v in model.trainable_variables]
    out["replicas_equal"] = all(len(set(copies)) == 1 for copies in per_replica)
    out["weights"] = [copies[0] for copies in per_replica]
    out["finite"] = all(bool(np.all(np.isfinite(v.numpy()))) for v in model.trainable_variables)
    if args.precision == "fp16":
        scale = optimizer.dynamic_scale if hasattr(optimizer, "dynamic_scale") else optimizer.loss_scale
        out["loss_scale"] = float(tf.convert_to_tensor(scale))
    print("RESULT " + json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
