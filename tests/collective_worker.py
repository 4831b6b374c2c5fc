"""One worker of a two-process MultiWorkerMirroredStrategy job on loopback, for tests/test_collectives.py.

Each worker builds the project's CPU backend from ``--worker_hosts``/``--task_index`` and the real
:class:`training.trainer.Trainer` on a tiny model, then, by ``--mode``:

``trace``   NCCL selected (as ``--backend=gpu`` does; TensorFlow traces it on CPUs, it cannot run it
            there): traces the trainer's device loop in float32 and in float16 with loss scaling, and
            two planted functions (the old int32 verdict sum, an all-reduce inside a ``tf.cond``), and
            writes every collective op found (:mod:`collective_graph`). Nothing runs.
``threads`` RING with ``--collective_timeout_s=60``: OS and Python thread counts before and after 300
            training steps (each all-reduces its gradients), then after 50 all-reduces with TensorFlow's
            own per-collective timeout (the project's configuration before the watchdog). In between,
            rank 1 alone requests a stop before a loop call of 50 steps.
``hang``    ``--collective_timeout_s=3``; rank 1's input stalls at step 6, so rank 0 waits in its
            all-reduce: the watchdog must end that wait. Writes what ``train`` raised.

Writes ``<out>/rank<r>.json``.

Usage: python tests/collective_worker.py --mode=trace --worker_hosts=h:p,h:p --task_index=0 --out=DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from collective_graph import collectives  # noqa: E402

from backends.cpu import CPUBackend  # noqa: E402
from keras_compat import create_optimizer_variables, keras, set_precision_policy  # noqa: E402
from training.log import TrainLog  # noqa: E402
from training.optimizers import build_optimizer  # noqa: E402
from training.schedules import WarmupDecaySchedule  # noqa: E402
from training.trainer import TrainConfig, Trainer  # noqa: E402

CLASSES, SIZE, PER_REPLICA = 3, 8, 2


class NcclCPUBackend(CPUBackend):
    """The CPU backend with the GPU backend's all-reduce implementation (for tracing only)."""

    communication = "nccl"


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def make_trainer(backend, precision: str, steps: int, stall_at: int = 0, rank: int = 0):
    set_precision_policy(precision)
    global_batch = PER_REPLICA * backend.num_replicas
    rng = np.random.default_rng(0)
    images = rng.normal(size=(16 * global_batch, SIZE, SIZE, 3)).astype(np.float32)
    labels = rng.integers(0, CLASSES, size=(16 * global_batch,)).astype(np.int32)
    schedule = WarmupDecaySchedule(0.01, 100, warmup_epochs=0, max_epochs=1, kind="constant")
    with backend.scope():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                                  keras.layers.Dense(CLASSES, dtype="float32")])
        optimizer = build_optimizer("momentum", schedule, loss_scaling=precision == "fp16")
        create_optimizer_variables(optimizer, model.trainable_variables)
    config = TrainConfig(num_classes=CLASSES, per_replica_batch=PER_REPLICA, global_batch=global_batch,
                         num_train_examples=100 * global_batch, max_steps=steps, iterations_per_loop=100,
                         save_summary_steps=100, weight_decay=1e-4, label_smoothing=0.0, clip_grad_norm=5.0)
    trainer = Trainer(model=model, optimizer=optimizer, schedule=schedule, backend=backend, config=config,
                      log=TrainLog(None))

    def stall(index, x):
        if int(index) == stall_at:
            time.sleep(60)  # a rank stuck in its input pipeline (or anywhere) while its peer waits
        return x

    def dataset_fn(ctx):
        ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(PER_REPLICA).repeat()
        if ctx is not None and ctx.num_input_pipelines > 1:
            ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
        if stall_at and rank == 1:
            ds = ds.enumerate().map(lambda i, b: (tf.numpy_function(stall, [i, b[0]], tf.float32,
                                                                    stateful=True), b[1]))
            ds = ds.map(lambda x, y: (tf.ensure_shape(x, [None, SIZE, SIZE, 3]), y))
        return ds

    return trainer, dataset_fn


def trace(backend, strategy) -> dict:
    out = {}
    for precision in ("fp32", "fp16"):
        trainer, dataset_fn = make_trainer(backend, precision, 10)
        iterator = iter(backend.distribute_dataset(dataset_fn))
        loop = trainer._make_loop()
        concrete = loop.get_concrete_function(iterator, tf.constant(2, tf.int64))
        out[f"trainer_{precision}"] = collectives(concrete)
    set_precision_policy("fp32")
    with strategy.scope():
        w = tf.Variable([1.0, -2.0])

    @tf.function
    def old_verdict(x):
        # The old step's verdicts: each replica's [loss not finite, grads not finite] as int32, summed.
        def replica(x):
            y = w * x
            return tf.stack([tf.cast(~tf.math.is_finite(tf.reduce_sum(y)), tf.int32), tf.constant(0, tf.int32)])

        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica, args=(x,)), axis=None)

    @tf.function
    def reduce_in_cond(x):
        def replica(x):
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, w * x)

        return tf.cond(x > 0, lambda: strategy.experimental_local_results(strategy.run(replica, args=(x,)))[0],
                       lambda: w)

    out["planted_int32_verdict"] = collectives(old_verdict.get_concrete_function(tf.constant(1.0)))
    out["planted_reduce_in_cond"] = collectives(reduce_in_cond.get_concrete_function(tf.constant(1.0)))
    return out


def threads(backend, rank: int) -> dict:
    from tensorflow.python.ops import collective_ops

    trainer, dataset_fn = make_trainer(backend, "fp32", 10)
    trainer.train(dataset_fn)  # warm-up: traced, the watchdog's thread started
    counts = {"start": [threading.active_count(), os_threads()]}
    trainer.config = dataclasses.replace(trainer.config, max_steps=310)
    began = time.perf_counter()
    result = trainer.train(dataset_fn)
    counts["after_300_steps"] = [threading.active_count(), os_threads()]
    seconds = time.perf_counter() - began
    ticks = backend.watchdog.ticks
    # A stop requested on rank 1 only, before a call of 50 steps: it travels with the first step's
    # all-reduce, so both ranks stop after that same step.
    if rank == 1:
        trainer.request_stop()
    before = trainer.step
    trainer._loop_fn(iter(backend.distribute_dataset(dataset_fn)), tf.constant(50, tf.int64))
    stop = dict(steps=trainer.step - before, agreed=trainer.stop_agreed)
    trainer.clear_stop()
    # TensorFlow's own timeout, as the backend passed it before: 50 plain all-reduces of one float.
    with tf.device(f"/job:worker/replica:0/task:{rank}/device:CPU:0"):
        for k in range(50):
            collective_ops.all_reduce_v2(tf.constant([1.0]), group_size=2, group_key=4242, instance_key=1000 + k,
                                         communication_hint="ring", timeout=60.0)
    counts["after_50_tf_timeouts"] = [threading.active_count(), os_threads()]
    return dict(counts=counts, final_step=result.final_step, ticks=ticks, seconds=seconds,
                loss=result.loss, stop=stop)


def hang(backend, rank: int) -> dict:
    trainer, dataset_fn = make_trainer(backend, "fp32", 20, stall_at=6, rank=rank)
    began = time.perf_counter()
    try:
        trainer.train(dataset_fn)
        error = None
    except Exception as e:  # noqa: BLE001 - the test reads what it was
        error = f"{type(e).__name__}: {e}"
    return dict(error=error, seconds=time.perf_counter() - began, step=trainer.step,
                is_value_error=error is not None and "CollectiveTimeoutError" in error)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["trace", "threads", "hang"], required=True)
    parser.add_argument("--worker_hosts", required=True)
    parser.add_argument("--task_index", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    hosts = args.worker_hosts.split(",")
    cls = NcclCPUBackend if args.mode == "trace" else CPUBackend
    timeout = {"trace": 0.0, "threads": 60.0, "hang": 3.0}[args.mode]
    backend = cls(rank_size=len(hosts), precision="fp32", multi_worker=True, worker_hosts=hosts,
                  task_index=args.task_index, collective_timeout_s=timeout)
    backend.setup()
    strategy = backend.strategy
    if args.mode == "trace":
        report = trace(backend, strategy)
    elif args.mode == "threads":
        report = threads(backend, args.task_index)
    else:
        report = hang(backend, args.task_index)
    report["rank"] = args.task_index
    with open(os.path.join(args.out, f"rank{args.task_index}.json"), "w", encoding="utf-8") as f:
        json.dump(report, f)
    sys.stdout.flush()
    if args.mode == "threads":
        backend.finish()
    # Tracing ran nothing (NCCL cannot run on CPUs) and a hung job's collectives are aborted: leave
    # without TensorFlow's shutdown, which would wait for peers.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
