"""Validation top-1 of a training run: train with main.py, restore the final checkpoint, evaluate.

    .venv/bin/python bench/demo_accuracy.py --flagfile=configs/demo_cpu.flags --log_dir=/tmp/demo
    .venv/bin/python bench/demo_accuracy.py --flagfile=configs/demo_cpu.flags --log_dir=/tmp/demo --skip_train

Trains in a separate ``main.py`` process with the given flags (unless ``--skip_train``), then
rebuilds the model and dataset from the same flags, restores the newest ``model.ckpt-N`` and
computes top-1 / top-5 over every validation example through ``dataset.input_fn('validation',
training=False)``. Prints one JSON line. (The project's own evaluation mode lives in
``evaluation/evaluator.py``; this script exists to measure the demo before that mode landed.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

import main as zoo_main  # noqa: E402,F401  (defines every flag of main.py)

flags.DEFINE_bool("skip_train", False, "Only evaluate the newest checkpoint in --log_dir.")
FLAGS = flags.FLAGS
_OWN_FLAGS = ("skip_train",)


def evaluate(flags_obj) -> dict:
    """Top-1/top-5 of the newest checkpoint in ``--checkpoint_dir`` (or ``--log_dir``) on validation."""
    import tensorflow as tf

    import zoo
    from runs.checkpoints import list_checkpoints
    from modes.runner import make_dataset

    recipe = zoo.get_recipe(flags_obj.model).scaled(flags_obj.image_size)
    dataset = make_dataset(flags_obj, recipe)
    num_classes = flags_obj.num_classes or dataset.num_classes
    ckpt_dir = flags_obj.checkpoint_dir or flags_obj.log_dir
    found = list_checkpoints(ckpt_dir)
    if not found:
        raise FileNotFoundError(f"no model.ckpt-N in {ckpt_dir}")
    model = zoo.create_model(flags_obj.model, recipe=recipe, num_classes=num_classes, version=flags_obj.version)
    tf.train.Checkpoint(model=model).restore(found[-1]).expect_partial()

    @tf.function
    def predict(images):
        return model(images, training=False)

    correct1 = correct5 = total = 0
    began = time.perf_counter()
    for images, labels in dataset.input_fn("validation", training=False, batch_size=flags_obj.batch_size):
        logits = predict(images)
        top5 = tf.math.top_k(logits, k=min(5, num_classes)).indices
        labels = tf.cast(labels, top5.dtype)
        correct1 += int(tf.reduce_sum(tf.cast(top5[:, 0] == labels, tf.int32)))
        correct5 += int(tf.reduce_sum(tf.cast(tf.reduce_any(top5 == labels[:, None], axis=1), tf.int32)))
        total += int(labels.shape[0])
    expected = dataset.num_examples("validation")
    if total != expected:
        raise RuntimeError(f"evaluated {total} examples, the validation split has {expected}")
    return {"checkpoint": found[-1], "dataset": dataset.name, "examples": total,
            "top1": 100.0 * correct1 / total, "top5": 100.0 * correct5 / total,
            "eval_seconds": round(time.perf_counter() - began, 1)}


def main(argv) -> int:
    if not FLAGS.log_dir:
        raise app.UsageError("--log_dir is required (where the run's checkpoints go)")
    result = {}
    if not FLAGS.skip_train:
        args = [a for a in sys.argv[1:] if not any(a.lstrip("-").startswith(n) for n in _OWN_FLAGS)]
        began = time.perf_counter()
        proc = subprocess.run([sys.executable, "main.py", *args],
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        result["train_seconds"] = round(time.perf_counter() - began, 1)
        if proc.returncode != 0:
            print(json.dumps(dict(result, error=f"main.py exited {proc.returncode}")))
            return proc.returncode
    result.update(evaluate(FLAGS))
    result["command"] = " ".join(["main.py"] + [a for a in sys.argv[1:] if "skip_train" not in a])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    app.run(main)
