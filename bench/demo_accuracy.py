"""Validation top-1 of a training run: train with main.py, restore the final checkpoint, evaluate.

    .venv/bin/python bench/demo_accuracy.py --log_dir=/tmp/demo -- --flagfile=configs/demo_cpu.flags
    .venv/bin/python bench/demo_accuracy.py --log_dir=/tmp/demo --skip_train

Trains in a separate ``main.py`` process with the given main.py arguments (unless ``--skip_train``),
then rebuilds the model and dataset from the run's own ``config.json``, restores the newest
``model.ckpt-N`` and computes top-1 / top-5 over every validation example through
``dataset.input_fn('validation', training=False)``, independently of ``--mode=evaluate``. Prints one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def evaluate(log_dir: str) -> dict:
    """Top-1/top-5 of the newest checkpoint of the run in ``log_dir`` on its validation split."""
    import tensorflow as tf

    import zoo
    from modes import assemble
    from run_config import persist
    from runs.checkpoints import list_checkpoints

    config, _, _ = persist.read(os.path.join(log_dir, persist.CONFIG_NAME))
    recipe = assemble.model_recipe(config)
    dataset = assemble.make_dataset(config, recipe)
    num_classes = config.model.num_classes or dataset.num_classes
    ckpt_dir = config.checkpoint.checkpoint_dir or log_dir
    found = list_checkpoints(ckpt_dir)
    if not found:
        raise FileNotFoundError(f"no model.ckpt-N in {ckpt_dir}")
    model = zoo.create_model(config.model.name, recipe=recipe, num_classes=num_classes,
                             **assemble.model_kwargs(config))
    tf.train.Checkpoint(model=model).restore(found[-1]).expect_partial()

    @tf.function
    def predict(images):
        return model(images, training=False)

    correct1 = correct5 = total = 0
    began = time.perf_counter()
    for images, labels in dataset.input_fn("validation", training=False, batch_size=config.data.batch_size):
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log_dir", required=True, help="the run's directory (main.py's --log_dir)")
    parser.add_argument("--skip_train", action="store_true", help="only evaluate the newest checkpoint")
    parser.add_argument("main_args", nargs="*", help="main.py arguments, after --")
    args = parser.parse_args()
    result = {}
    if not args.skip_train:
        began = time.perf_counter()
        proc = subprocess.run([sys.executable, "main.py", *args.main_args, f"--log_dir={args.log_dir}"], cwd=ROOT)
        result["train_seconds"] = round(time.perf_counter() - began, 1)
        if proc.returncode != 0:
            print(json.dumps(dict(result, error=f"main.py exited {proc.returncode}")))
            return proc.returncode
    result.update(evaluate(args.log_dir))
    result["command"] = " ".join(["main.py", *args.main_args, f"--log_dir={args.log_dir}"])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
