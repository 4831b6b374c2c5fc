"""Averages the model weights of several checkpoints of a run into a new checkpoint.

    python tools/average_checkpoints.py results/1p/0 --last=3 --output_dir=results/avg3
    python tools/average_checkpoints.py results/1p/0 --improved=3 --output_dir=results/avg3
    python main.py --mode=evaluate --checkpoint_dir=results/avg3 --data_dir=/data/imagenet

torchvision's MobileNetV3 weights (references/classification/README.md, "MobileNetV3 Large & Small"): "Then we
averaged the parameters of the last 3 checkpoints that improved the Acc@1" (pytorch/vision#3182 and #3354).
``--improved=K`` does that: it reads the run's evaluation records (``metrics.jsonl``, written by
``--mode=train_and_evaluate`` or ``--mode=evaluate``), keeps the evaluations whose top-1 beat every earlier one
and averages the checkpoints of the last K of them (they must still exist: ``--max_checkpoint_to_save``).
``--last=K`` averages the newest K checkpoints instead.

What is averaged: every floating-point variable of the model (weights and batch-norm statistics, found through
the checkpoint's object graph as evaluation finds them) and, for a ``--model_ema`` run, the weight averages
under ``ema/``; each in float64, stored in its own dtype. Everything else (the optimizer's state, the step
counter) is the newest selected checkpoint's, so the result is a complete checkpoint of the run's model:
``model.ckpt-<newest step>`` in ``--output_dir``, beside a copy of the run's ``config.json``, the newest
checkpoint's settings sidecar and label map, and ``averaged.json`` (the checkpoints and the rule). The
directory is published atomically (atomic.py): it appears complete or not at all.

Exit code 0: written; 2: bad arguments, too few checkpoints, or checkpoints that do not fit together.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any, Dict, List, Optional, Sequence

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # reading and writing files needs no GPU

__all__ = ["average", "averaged_keys", "improved_checkpoints", "last_checkpoints", "main"]

_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_EMA_KEYS = "ema/averages/"


def _checkpoint_dir(run_dir: str) -> str:
    """``run_dir``, or its rank-0 directory when only that holds checkpoints (a multi-process job's --log_dir)."""
    from runs.checkpoints import list_checkpoints

    rank0 = os.path.join(run_dir, "0")
    if not list_checkpoints(run_dir) and list_checkpoints(rank0):
        return rank0
    return run_dir


def last_checkpoints(run_dir: str, count: int) -> List[str]:
    """The newest ``count`` checkpoint prefixes of the run, oldest first.

    Raises:
        ValueError: the run has fewer.
    """
    from runs.checkpoints import list_checkpoints

    found = list_checkpoints(_checkpoint_dir(run_dir))
    if len(found) < count:
        raise ValueError(f"{run_dir} holds {len(found)} checkpoint(s), fewer than the {count} to average.")
    return found[-count:]


def improved_checkpoints(run_dir: str, count: int, metrics: Optional[str] = None) -> List[str]:
    """The checkpoints of the last ``count`` evaluations that improved top-1 (torchvision's MobileNetV3 rule).

    An evaluation improves when its top-1 is higher than that of every evaluation of an earlier step
    (``"type": "eval"`` records of ``metrics.jsonl``; a step evaluated twice counts with its last record).

    Args:
        run_dir: the run's checkpoint directory.
        count: how many.
        metrics: the evaluation records (default: ``metrics.jsonl`` in ``run_dir``).

    Raises:
        ValueError: too few improving evaluations, or their checkpoints are gone.
    """
    from runs.checkpoints import CHECKPOINT_NAME

    path = metrics or os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no evaluation records; evaluate the run's checkpoints first (--mode=evaluate) "
                         "or pass --metrics=FILE.")
    by_step: Dict[int, Dict[str, Any]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line) if line.strip() else {}
            if record.get("type") == "eval":
                by_step[int(record["step"])] = record
    best, improved = float("-inf"), []
    for step in sorted(by_step):
        if by_step[step]["top1"] > best:
            best = by_step[step]["top1"]
            improved.append(step)
    if len(improved) < count:
        raise ValueError(f"{path}: {len(improved)} evaluation(s) improved top-1, fewer than the {count} to average.")
    directory = _checkpoint_dir(run_dir)
    chosen = [os.path.join(directory, f"{CHECKPOINT_NAME}-{step}") for step in improved[-count:]]
    missing = [p for p in chosen if not os.path.exists(p + ".index")]
    if missing:
        raise ValueError(f"the checkpoints of the last {count} improving evaluations are not all kept "
                         f"({', '.join(missing)} deleted): train with a larger --max_checkpoint_to_save.")
    return chosen


def averaged_keys(path: str) -> List[str]:
    """The checkpoint keys that :func:`average` averages: the model's floating-point variables and the EMA's."""
    import tensorflow as tf

    from weights.checkpoint import checkpoint_layers

    reader = tf.train.load_checkpoint(path)
    dtypes = reader.get_variable_to_dtype_map()
    keys = {key for layer in checkpoint_layers(path) for key in layer.variables.values()}
    keys.update(k for k in dtypes if k.startswith(_EMA_KEYS))
    return sorted(k for k in keys if tf.as_dtype(dtypes[k]).is_floating)


def average(prefixes: Sequence[str], output_dir: str, *, rule: str = "") -> str:
    """Writes the average of ``prefixes`` (oldest first) to ``output_dir``; returns the new checkpoint prefix.

    Raises:
        ValueError: fewer than two checkpoints, or checkpoints that do not hold the same variables and shapes.
        FileExistsError: ``output_dir`` exists and is not empty.
    """
    import numpy as np
    import tensorflow as tf

    from atomic import publish_directory
    from run_config import persist
    from run_dir import LABEL_MAP_NAME
    from runs.checkpoints import SETTINGS_SUFFIX, step_of

    if len(prefixes) < 2:
        raise ValueError(f"averaging needs at least two checkpoints, got {len(prefixes)}.")
    newest = prefixes[-1]
    keys = averaged_keys(newest)
    if not keys:
        raise ValueError(f"{newest}: no model variables found.")
    reader = tf.train.load_checkpoint(newest)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    sums = {k: np.zeros(shapes[k], np.float64) for k in keys}
    for prefix in prefixes:
        other = tf.train.load_checkpoint(prefix)
        other_shapes = other.get_variable_to_shape_map()
        wrong = [k for k in keys if other_shapes.get(k) != shapes[k]]
        if wrong:
            raise ValueError(f"{prefix} does not hold the variables of {newest} (first: {wrong[0]}); average "
                             "checkpoints of one run.")
        for k in keys:
            sums[k] += other.get_tensor(k).astype(np.float64)
    names, tensors = [], []
    for k in sorted(shapes):
        names.append(k)
        if k in sums:
            tensors.append(tf.cast(tf.constant(sums[k] / len(prefixes)), dtypes[k]))
        else:
            tensors.append(tf.constant(reader.get_tensor(k), dtype=dtypes[k]))
    if _GRAPH_KEY not in names:
        raise ValueError(f"{newest}: not an object-based checkpoint (no {_GRAPH_KEY}).")
    name = os.path.basename(newest)
    run_dir = os.path.dirname(newest)
    with publish_directory(output_dir) as tmp:
        tf.raw_ops.SaveV2(prefix=os.path.join(tmp, name), tensor_names=names, shape_and_slices=[""] * len(names),
                          tensors=tensors)
        for source, target in [(newest + SETTINGS_SUFFIX, name + SETTINGS_SUFFIX),
                               (os.path.join(run_dir, persist.CONFIG_NAME), persist.CONFIG_NAME),
                               (os.path.join(run_dir, LABEL_MAP_NAME), LABEL_MAP_NAME)]:
            if os.path.isfile(source):
                shutil.copyfile(source, os.path.join(tmp, target))
        with open(os.path.join(tmp, "averaged.json"), "w", encoding="utf-8") as f:
            json.dump({"rule": rule, "checkpoints": [os.path.abspath(p) for p in prefixes],
                       "steps": [step_of(p) for p in prefixes], "averaged_variables": len(keys)}, f, indent=1)
    return os.path.join(output_dir, name)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="The run's checkpoint directory (--checkpoint_dir, else its --log_dir).")
    choice = parser.add_mutually_exclusive_group(required=True)
    choice.add_argument("--last", type=int, metavar="K", help="Average the newest K checkpoints.")
    choice.add_argument("--improved", type=int, metavar="K", help="Average the checkpoints of the last K evaluations "
                        "that improved top-1 (torchvision's MobileNetV3 recipe: 3).")
    parser.add_argument("--metrics", help="--improved: the evaluation records (default: RUN_DIR/metrics.jsonl).")
    parser.add_argument("--output_dir", required=True, help="New directory for the averaged checkpoint.")
    args = parser.parse_args(argv)
    try:
        if args.last is not None:
            prefixes, rule = last_checkpoints(args.run_dir, args.last), f"the last {args.last} checkpoints"
        else:
            prefixes = improved_checkpoints(args.run_dir, args.improved, args.metrics)
            rule = f"the checkpoints of the last {args.improved} evaluations that improved top-1"
        path = average(prefixes, args.output_dir, rule=rule)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{path}: the average of {rule}: {', '.join(os.path.basename(p) for p in prefixes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
