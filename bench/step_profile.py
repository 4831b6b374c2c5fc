"""Where a training step's time goes, by op type: ours (the trainer's step) under TensorFlow's profiler.

    .venv/bin/python bench/step_profile.py --model=resnet50 --precision=bf16 --batch=64

Runs ``--steps`` steps of the real ``Trainer`` on synthetic data after a warm-up, with
``tf.profiler.experimental`` tracing, then sums the CPU time of every TensorFlow op in the trace by op
type (Conv2DBackpropFilter, FusedBatchNormV3, Cast, ...) and prints one JSON line per op type with its
share of the total, largest first. A benchmark aid, not a test.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Events that enclose other ops' events (a whole function call) rather than being ops themselves.
_UMBRELLAS = {"Process", "?"}

# Op classes of the breakdown (bench/RESULTS.md): what is matrix compute and what is not.
OP_CLASSES = (
    ("depthwise convolution", ("DepthwiseConv2dNative",)),
    ("matrix compute (conv, matmul)", ("Conv2D", "MatMul", "BatchMatMul", "Einsum", "_FusedConv2D", "_FusedMatMul",
                                       "Conv2DBackpropInput", "Conv2DBackpropFilter", "_MklNativeConv2D",
                                       "_MklNativeMatMul", "_MklNativeFusedConv2D", "_MklNativeFusedMatMul",
                                       "_MklNativeConv2DBackpropInput", "_MklNativeConv2DBackpropFilter",
                                       "_MklNativeBatchMatMulV2", "_MklBatchMatMulV2", "BatchMatMulV2",
                                       "_MklMatMul", "_MklFusedBatchMatMulV2")),
    ("casts", ("Cast", "_MklCast")),
    ("normalisation (batch/layer norm)", ("FusedBatchNorm", "BatchNorm", "LayerNorm", "Moments", "Rsqrt",
                                          "SquaredDifference")),
    ("pooling", ("Pool",)),
    ("optimizer update", ("Apply", "ResourceApply", "AssignAdd", "AssignSub", "AssignVariable")),
    ("reductions (sums, means, finiteness)", ("Sum", "Mean", "Max", "Min", "All", "Any", "IsFinite", "L2Loss")),
    ("collectives", ("Collective", "AllReduce", "NcclAllReduce")),
)


def op_class(op_type: str) -> str:
    """The class of ``op_type`` in the breakdown; element-wise and data movement for the rest."""
    for name, markers in OP_CLASSES:
        if any(op_type == m or (len(m) > 4 and m in op_type) for m in markers):
            return name
    return "element-wise and data movement"


def op_times(logdir: str) -> collections.Counter:
    """Seconds per op type from the newest ``*.xplane.pb`` under ``logdir`` (TensorFlow op events)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals: collections.Counter = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {i: m.name for i, m in plane.event_metadata.items()}
        for line in plane.lines:
            if "TensorFlow Ops" not in line.name and "tf_Compute" not in line.name and "tf_" not in line.name:
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "?")
                op_type = name.split(":")[-1] if ":" in name else name
                if op_type in _UMBRELLAS:
                    continue
                totals[op_type] += event.duration_ps / 1e12
    return totals


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--image_size", type=int, default=224)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)

    import tensorflow as tf

    import zoo
    from backends.cpu import CPUBackend
    from keras_compat import create_optimizer_variables, set_precision_policy
    from training.log import TrainLog
    from training.optimizers import build_optimizer
    from training.schedules import WarmupDecaySchedule
    from training.trainer import TrainConfig, Trainer

    set_precision_policy(args.precision, float32_layers=CPUBackend.float32_layers)  # as main.py on this backend
    backend = CPUBackend()
    backend.setup()
    schedule = WarmupDecaySchedule(0.01, 1000, warmup_epochs=0, max_epochs=1, kind="constant")
    with backend.scope():
        model = zoo.create_model(args.model, num_classes=1000, image_size=args.image_size)
        optimizer = build_optimizer("momentum", schedule, momentum=0.9)
        create_optimizer_variables(optimizer, model.trainable_variables)
    images = tf.random.normal((args.batch, args.image_size, args.image_size, 3))
    labels = tf.zeros((args.batch,), tf.int32)
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()

    def trainer(steps):
        config = TrainConfig(num_classes=1000, per_replica_batch=args.batch, global_batch=args.batch,
                             num_train_examples=10 ** 6, max_steps=steps, iterations_per_loop=steps,
                             save_summary_steps=steps, label_smoothing=0.1, weight_decay=1e-4)
        return Trainer(model=model, optimizer=optimizer, schedule=schedule, backend=backend, config=config,
                       log=TrainLog(None))

    trainer(1).train(lambda ctx: dataset)  # trace and warm up
    with tempfile.TemporaryDirectory(prefix="step_profile_") as logdir:
        tf.profiler.experimental.start(logdir)
        trainer(1 + args.steps).train(lambda ctx: dataset)
        tf.profiler.experimental.stop()
        totals = op_times(logdir)
    total = sum(totals.values())
    for op_type, seconds in totals.most_common(args.top):
        print(json.dumps(dict(model=args.model, precision=args.precision, batch=args.batch, op_type=op_type,
                              seconds_per_step=round(seconds / args.steps, 4), share=round(seconds / total, 3))))
    classes: collections.Counter = collections.Counter()
    for op_type, seconds in totals.items():
        classes[op_class(op_type)] += seconds
    for name, seconds in classes.most_common():
        print(json.dumps(dict(model=args.model, precision=args.precision, batch=args.batch, op_class=name,
                              seconds_per_step=round(seconds / args.steps, 4), share=round(seconds / total, 3))))
    print(json.dumps(dict(model=args.model, precision=args.precision, op_type="(all ops)",
                          seconds_per_step=round(total / args.steps, 4), share=1.0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
