"""Validation metrics of a model over a dataset, and the report of evaluated checkpoints.

``--mode=evaluate`` and ``--mode=train_and_evaluate`` use them (:mod:`modes.evaluate`).

Every validation example counts exactly once, the last partial batch included: each replica
(and, on strategy-less backends such as the NPU adapter, each process) sums its correct
predictions, its loss and its example count; those sums are added across replicas with the
strategy's reduction and across processes with ``backend.reduce_sum``, and only then divided.
Averaging per-shard accuracies instead would weigh a short last shard like a full one.

Results go to the recipe's table (see :mod:`evaluation.eval_table`), one JSON line per evaluation
in ``metrics.jsonl`` (``"type": "eval"``) and, through the log's listeners, TensorBoard.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional

import tensorflow as tf

from backends.base import Backend
from datasets import bad_data
from evaluation import eval_table
from keras_compat import RELAX_SHAPES
from runs.checkpoints import READ_ERRORS, list_checkpoints, previous_checkpoint, step_of
from training.log import TrainLog
from training.losses import cross_entropy
from weights.checkpoint import checkpoint_num_classes, resolve_checkpoint

__all__ = ["EvalReport", "EvalResult", "EvalTotals", "Evaluator", "checkpoints_to_evaluate", "evaluation_every_steps",
           "log_raw", "readable_num_classes"]


@dataclass
class EvalTotals:
    """Sums over evaluated examples; add totals of shards, then read the metrics."""

    examples: int = 0
    top1_correct: int = 0
    top5_correct: int = 0
    loss_sum: float = 0.0

    def __add__(self, other: EvalTotals) -> EvalTotals:
        return EvalTotals(self.examples + other.examples, self.top1_correct + other.top1_correct,
                          self.top5_correct + other.top5_correct, self.loss_sum + other.loss_sum)

    @property
    def top1(self) -> float:
        """Top-1 accuracy in percent."""
        return 100.0 * self.top1_correct / self.examples if self.examples else math.nan

    @property
    def top5(self) -> float:
        """Top-5 accuracy in percent."""
        return 100.0 * self.top5_correct / self.examples if self.examples else math.nan

    @property
    def loss(self) -> float:
        """Mean cross entropy per example."""
        return self.loss_sum / self.examples if self.examples else math.nan


class Evaluator:
    """Computes :class:`EvalTotals` of a model on a backend's replicas.

    Args:
        model: Keras model mapping images to logits (created in ``backend.scope()``).
        backend: the device backend (strategy, dataset distribution, cross-process sums).
        num_classes: classifier size.
        label_smoothing: smoothing of the reported cross entropy; the training value makes the
            validation loss comparable with the training log's ``loss``.
        top_k: the "top-5" of the table (at most ``num_classes``).
    """

    def __init__(self, model, backend: Backend, *, num_classes: int, label_smoothing: float = 0.0,
                 top_k: int = 5, preprocess: Optional[Callable] = None) -> None:
        self.model = model
        self.backend = backend
        self.strategy = backend.strategy
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.top_k = min(top_k, num_classes)
        self.preprocess = preprocess
        self._pass = None
        # Each replica's running sums, kept on its device; reading them sums the replicas.
        with self.strategy.scope():
            self._sums = [_replica_sum(tf.int64) for _ in range(3)] + [_replica_sum(tf.float64)]

    def _batch_sums(self, images, labels):
        if self.preprocess is not None:
            images = self.preprocess(images)
        logits = tf.cast(self.model(images, training=False), tf.float32)
        predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
        top1 = tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.int64))
        top5 = tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, self.top_k), tf.int64))
        loss = tf.reduce_sum(tf.cast(cross_entropy(labels, logits, self.num_classes, self.label_smoothing),
                                     tf.float64))
        return top1, top5, loss

    def _add_batch(self, images, labels):
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        size = tf.size(labels, out_type=tf.int64)
        # A replica whose shard ran out gets empty batches: the model is not run on them (inside the
        # pass's loop, convolutions of an empty batch fail in TensorFlow's CPU kernels).
        top1, top5, loss = tf.cond(
            size > 0, lambda: self._batch_sums(images, labels),
            lambda: (tf.constant(0, tf.int64), tf.constant(0, tf.int64), tf.constant(0.0, tf.float64)))
        for total, value in zip(self._sums, (size, top1, top5, loss)):
            total.assign_add(value)

    def _reset(self):
        for total in self._sums:
            total.assign(tf.zeros([], total.dtype))

    def _make_pass(self):
        strategy = self.strategy

        # Shapes vary (the last batch, empty batches of replicas that ran out): trace generally. The pass
        # takes an iterator made outside the function: iterating a distributed dataset inside a
        # tf.function makes TensorFlow read its options in graph mode, which it warns about.
        @tf.function(**RELAX_SHAPES)
        def one_pass(iterator):
            strategy.run(self._reset)
            batch = iterator.get_next_as_optional()
            while batch.has_value():
                images, labels = batch.get_value()
                strategy.run(self._add_batch, args=(images, labels))
                batch = iterator.get_next_as_optional()

        return one_pass

    def run(self, dataset_fn: Callable[[Optional[tf.distribute.InputContext]], tf.data.Dataset]) -> EvalTotals:
        """Evaluates one pass over the data that ``dataset_fn`` makes for each input pipeline.

        The dataset must yield every example of its shard exactly once (no repeat), keeping the
        last partial batch. The whole pass is one ``tf.function`` call; the sums stay on the
        devices and are read once at the end.
        """
        if self._pass is None:
            self._pass = self._make_pass()
        self._pass(iter(self.backend.distribute_dataset(dataset_fn)))
        examples, top1, top5 = (int(v.numpy()) for v in self._sums[:3])
        loss = float(self._sums[3].numpy())
        # Strategy-less backends (one device per process): add the processes' sums.
        counts = self.backend.reduce_sum(tf.constant([examples, top1, top5], tf.int64))
        loss_sum = self.backend.reduce_sum(tf.constant(loss, tf.float64))
        counts = [int(c) for c in tf.reshape(counts, [-1]).numpy()]
        return EvalTotals(counts[0], counts[1], counts[2], float(loss_sum))


def _rank_sum(backend: Backend) -> Callable[[int], int]:
    """Adds an integer over the processes of the backend (the identity on one process)."""
    return lambda n: int(backend.reduce_sum(tf.constant(n, tf.int64)))


def _replica_sum(dtype: tf.DType) -> tf.Variable:
    """A scalar each replica adds to on its own; reading it outside a replica sums the replicas."""
    return tf.Variable(tf.zeros([], dtype), trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
                       aggregation=tf.VariableAggregation.SUM)


@dataclass(frozen=True)
class EvalResult:
    """One evaluated checkpoint (one row of the table)."""

    step: int
    epoch: float
    totals: EvalTotals
    timestamp: float
    checkpoint: Optional[str] = None
    unreadable: int = 0  # validation images or records that could not be read (not in totals)

    def row(self) -> str:
        t = self.totals
        return eval_table.format_row(self.step, self.epoch, t.top1, t.top5, t.loss, self.timestamp)

    def record(self) -> Dict[str, Any]:
        """The JSON line written to ``metrics.jsonl``."""
        t = self.totals
        return dict(type="eval", step=self.step, epoch=round(self.epoch, 4), top1=t.top1, top5=t.top5,
                    loss=t.loss, examples=t.examples, top1_correct=t.top1_correct, top5_correct=t.top5_correct,
                    checkpoint=self.checkpoint, checkpoint_time=eval_table.utc_time(self.timestamp),
                    unreadable=self.unreadable, time=time.time())


@dataclass
class EvalReport:
    """Prints the table through a :class:`TrainLog` and writes the JSON lines.

    Args:
        log: where lines and records go.
        dataset_size: the validation split's size, printed above the table.
        unreadable: the validation split's tracker of unreadable images and records
            (``datasets/bad_data.py``); each result takes the count of the passes since the previous one.
        sum_ranks: adds a count over the processes of a multi-process backend.
    """

    log: TrainLog
    dataset_size: Optional[int]
    unreadable: Optional[bad_data.BadDataTracker] = None
    sum_ranks: Callable[[int], int] = int
    results: List[EvalResult] = field(default_factory=list)
    _header_printed: bool = False

    def _header(self) -> None:
        self.log.info("Evaluating")
        if self.dataset_size is not None:
            self.log.info(f"Validation dataset size: {self.dataset_size}")
        self.log.info(eval_table.HEADER)

    def add(self, result: EvalResult) -> None:
        """Prints the row (after the header, the first time) and records the result."""
        if not self._header_printed:
            self._header()
            self._header_printed = True
        unread = self.unreadable.report() if self.unreadable is not None else None
        if unread is not None:
            self.unreadable.reset()  # the next pass counts its own
            result = replace(result, unreadable=self.sum_ranks(unread.count))
        if self.dataset_size is not None and result.totals.examples + result.unreadable != self.dataset_size:
            self.log.info(f"Warning: counted {result.totals.examples} validation examples"
                          + (f" and {result.unreadable} unreadable ones" if result.unreadable else "")
                          + f", the dataset reports {self.dataset_size}.")
        self.log.info(result.row())
        if result.unreadable:
            self.log.info(f"{result.unreadable} validation image(s) or record(s) could not be read and are not "
                          f"counted: top-1/top-5 are over the other {result.totals.examples}. "
                          f"{'E.g. ' if unread.count < result.unreadable else ''}{unread.names()}")
        self.log.metrics(result.record())
        self.results.append(result)

    def finish(self, *, repeat_table: bool = False) -> None:
        """Ends the table with ``Finished evaluation``; ``repeat_table`` prints all rows again first
        (train_and_evaluate, where training lines come between the rows)."""
        if repeat_table and self.results:
            self._header()
            for result in self.results:
                self.log.info(result.row())
        self.log.info(eval_table.FINISHED)


def checkpoints_to_evaluate(checkpoint_path: Optional[str], checkpoint_dir: str) -> List[str]:
    """``checkpoint_path`` alone, else every ``model.ckpt-N`` in ``checkpoint_dir``, by step.

    Raises:
        FileNotFoundError: nothing to evaluate; the message says where it looked.
    """
    if checkpoint_path:
        return [resolve_checkpoint(checkpoint_path)]
    found = list_checkpoints(checkpoint_dir)
    if not found:
        raise FileNotFoundError(
            f"no checkpoint model.ckpt-N in {checkpoint_dir}; pass --checkpoint_dir=DIR (where training wrote "
            "them) or --checkpoint_path=DIR/model.ckpt-N."
        )
    return found


def checkpoint_step(path: str) -> int:
    """The step of checkpoint ``path`` (0 for a prefix without one, such as a converted model)."""
    try:
        return step_of(path)
    except ValueError:
        return 0


def readable_num_classes(paths: List[str]) -> int:
    """The classifier size stored in the first of ``paths`` that can be read."""
    for i, path in enumerate(paths):
        try:
            return checkpoint_num_classes(path)
        except READ_ERRORS:
            if i + 1 == len(paths):
                older = previous_checkpoint(path)
                if older:
                    return checkpoint_num_classes(older)
                raise
    raise ValueError("no checkpoint to evaluate.")


def evaluation_every_steps(epochs_between_evals: float, steps_per_epoch: int, max_steps: int) -> int:
    """Steps between evaluations of train_and_evaluate; 0 epochs means only at the end."""
    if epochs_between_evals <= 0:
        return max(max_steps, 1)
    return max(1, int(round(epochs_between_evals * steps_per_epoch)))


def log_raw(log: TrainLog, step: int, totals: EvalTotals) -> None:
    """The raw weights' result of a ``--model_ema`` run, whose table rows are the average's."""
    log.info(f"Step {step}, raw weights (the table shows their --model_ema average): top1 {totals.top1:.3f} "
             f"top5 {totals.top5:.3f} loss {totals.loss:.4f}")
    log.metrics(dict(type="eval_raw", step=step, top1=totals.top1, top5=totals.top5, loss=totals.loss,
                     examples=totals.examples, time=time.time()))
