"""Repeated augmentation (``--ra_sampler``, ``--ra_reps``): each training image several times, on different replicas.

The sampler of torchvision's ``references/classification`` (``RASampler``, from DeiT's ``samplers.py``; Hoffer et
al. 2020, "Augment your batch", and Berman et al. 2019, "Multigrain") works on one order of the training set
that every rank shares: each index is repeated ``reps`` times in a row, and rank ``r`` of ``W`` takes positions
``r, r + W, r + 2W, ...`` of that repeated list, so the ``reps`` copies of an image land on ``reps`` different
ranks, where they are augmented independently. Each rank's epoch keeps its usual length (about ``N / W``
images), so an epoch covers about ``N / reps`` distinct images.

Here the same happens on the reader's training stream (:meth:`datasets.file_dataset.FileDataset.records` with
no input context: every file in one shuffled order, the same in every pipeline for the same seed):

* each record is repeated ``reps`` times in a row and the stream numbered;
* replica ``g`` of ``W`` (the global replica id: pipeline ``p`` of ``P`` serves replicas ``p L .. p L + L - 1``,
  ``L = W / P``) keeps the positions ``g, g + W, ...``; a pipeline with several local replicas (one process
  driving several GPUs) emits each step's per-replica batches one after the other, which is how
  ``tf.distribute`` hands them to its replicas;
* the trainer's epoch is still ``num_train // global_batch`` steps.

Differences from torchvision's sampler, on purpose: torchvision draws a new permutation each epoch and uses
only its first ``N / reps`` images (the rest of that permutation is dropped, and DeiT rounds each rank's epoch
down to a multiple of 256 / W images); here the repeated stream runs on through the reader's order, so every
image is used ``reps`` times every ``reps`` epochs. Every pipeline reads the whole stream (TFRecords: ``W /
reps`` times the reading of an unrepeated epoch, in total) and keeps its share before anything is decoded.
The pipelines agree on the order only if they read it identically: with several of them the read order is
made deterministic and the shuffle seed is ``--seed`` (0 when unset) in every pipeline; the per-image
augmentation seeds stay each pipeline's own, so the copies are augmented differently.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, Iterator, Optional, Sequence, Tuple

import tensorflow as tf

__all__ = ["layout", "records", "spread"]


def layout(input_context: Optional[tf.distribute.InputContext]) -> Tuple[int, Tuple[int, ...]]:
    """``(W, replica ids)``: the replicas training together and the global ids of those this pipeline feeds.

    Raises:
        ValueError: the replicas do not divide evenly among the pipelines.
    """
    if input_context is None:
        return 1, (0,)
    replicas, pipelines = input_context.num_replicas_in_sync, input_context.num_input_pipelines
    if replicas % pipelines:
        raise ValueError(f"--ra_sampler: {replicas} replicas do not divide among {pipelines} input pipelines")
    local = replicas // pipelines
    first = input_context.input_pipeline_id * local
    return replicas, tuple(range(first, first + local))


def spread(make_stream: Callable[[], tf.data.Dataset], *, reps: int, batch_size: int, num_replicas: int,
           replica_ids: Sequence[int]) -> tf.data.Dataset:
    """This pipeline's records under repeated augmentation.

    Args:
        make_stream: builds the shared stream of records (endless), in the same order every time it is called
            and in every pipeline; called once per local replica.
        reps: copies of each record (``--ra_reps``).
        batch_size: per-replica batch.
        num_replicas: ``W``, the replicas of the whole job.
        replica_ids: global ids of the replicas this pipeline feeds, in the order ``tf.distribute`` hands
            batches to them.

    Returns:
        The records of replica ``replica_ids[0]``'s first batch, then ``replica_ids[1]``'s, ..., step after
        step: replica ``g`` gets positions ``g, g + W, ...`` of the repeated stream.
    """
    if reps < 1:
        raise ValueError(f"--ra_reps must be at least 1, got {reps}")

    def one_replica(replica: int) -> tf.data.Dataset:
        repeated = make_stream().flat_map(lambda *record: tf.data.Dataset.from_tensors(
            record[0] if len(record) == 1 else record).repeat(reps))
        if num_replicas == 1:
            return repeated
        kept = repeated.enumerate().filter(lambda position, record: tf.equal(position % num_replicas, replica))
        return kept.map(lambda position, record: record)

    streams = [one_replica(g) for g in replica_ids]
    if len(streams) == 1:
        return streams[0]
    # One step: batch_size records of each local replica in turn.
    order = tf.data.Dataset.range(len(streams)).flat_map(
        lambda i: tf.data.Dataset.from_tensors(i).repeat(batch_size)).repeat()
    return tf.data.Dataset.choose_from_datasets(streams, order, stop_on_empty_dataset=True)


@contextlib.contextmanager
def _deterministic_reads(dataset) -> Iterator[None]:
    """Within the block the reader's options ask for a deterministic read order (the pipelines must agree)."""
    saved = dataset.options
    dataset.options = dataclasses.replace(saved, deterministic=True)
    try:
        yield
    finally:
        dataset.options = saved


def records(dataset, split: str, *, input_context: Optional[tf.distribute.InputContext], batch_size: int,
            seed: Optional[int]) -> tf.data.Dataset:
    """The training records of one pipeline of a :class:`datasets.file_dataset.FileDataset` with ``ra_reps`` > 1.

    Args:
        dataset: the reader (its ``records``, ``options``, ``seed`` and ``ra_reps``).
        split: the training split.
        input_context: the pipeline's input context (None: one pipeline, one replica).
        batch_size: per-replica batch.
        seed: this pipeline's seed; used as it is when it is the only pipeline and replica.
    """
    num_replicas, replica_ids = layout(input_context)
    if num_replicas == 1:
        return spread(lambda: dataset.records(split, training=True, input_context=None, seed=seed),
                      reps=dataset.ra_reps, batch_size=batch_size, num_replicas=1, replica_ids=replica_ids)
    shared_seed = dataset.seed if dataset.seed is not None else 0  # the same order in every pipeline

    def make_stream() -> tf.data.Dataset:
        with _deterministic_reads(dataset):
            return dataset.records(split, training=True, input_context=None, seed=shared_seed)

    return spread(make_stream, reps=dataset.ra_reps, batch_size=batch_size, num_replicas=num_replicas,
                  replica_ids=replica_ids)
