"""The tf.data plumbing shared by the file-based datasets: options, sharding, seeds, batching.

A reader turns its files into a dataset of records ``{"encoded", "label"[, "bboxes"]}``;
:func:`batches` does the rest (per-image seeds, parallel preprocessing, batching, normalisation,
prefetching), so TFRecords and image folders share one fast path.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import tensorflow as tf

from datasets import mixing, preprocessing
from datasets.bad_data import BadDataTracker
from datasets.preprocessing import PreprocessConfig
from run_config import AugmentConfig, DataConfig

__all__ = ["PipelineOptions", "Shard", "base_seed", "batches", "block_shuffle", "epoch_permutation", "epochs_from",
           "file_shard", "options_from_config", "position_seeds", "preprocess_overrides"]

AUTOTUNE = tf.data.AUTOTUNE

@dataclass(frozen=True)
class PipelineOptions:
    """tf.data knobs.

    Attributes:
        shuffle_buffer: examples in the training shuffle buffer.
        deterministic: keep the element order fixed (reproducible with a seed).
        private_threads: size of a private thread pool; 0 for TensorFlow's shared one.
    """

    shuffle_buffer: int = 10_000
    deterministic: bool = False
    private_threads: int = 0


def options_from_config(data: DataConfig) -> PipelineOptions:
    """:class:`PipelineOptions` from the run's data settings."""
    return PipelineOptions(shuffle_buffer=data.shuffle_buffer, deterministic=data.deterministic,
                           private_threads=data.input_threads)


def preprocess_overrides(augment: AugmentConfig) -> dict:
    """Keyword overrides of :class:`PreprocessConfig` from the run's augmentation settings (None: the
    recipe's or the dataset's own value).

    ``val_crop_size`` is not one: a dataset is built for the model's input size, the training crop; evaluation
    at another crop (FixRes) builds its dataset from :func:`evaluation.predictor.evaluation_config`, whose
    input size is ``val_crop_size``."""
    area = None if augment.min_crop_area is None else (augment.min_crop_area, 1.0)
    return dict(eval_mode=augment.eval_resize, area_range=area, random_flip=augment.random_flip,
                dct_scaling=augment.dct_scaling, auto_augment=augment.auto_augment, ra_num_ops=augment.ra_num_ops,
                ra_magnitude=augment.ra_magnitude, random_erase=augment.random_erase,
                random_erase_value=augment.random_erase_value, mixup_alpha=augment.mixup_alpha,
                cutmix_alpha=augment.cutmix_alpha, interpolation=augment.interpolation,
                crop_sampler=augment.crop_sampler, train_resize=augment.train_resize,
                train_interpolation=augment.train_interpolation, color_jitter=augment.color_jitter,
                lighting_std=augment.lighting_std, distort_color=augment.distort_color,
                eval_resize=augment.val_resize_size, train_crop_size=augment.train_crop_size)


@dataclass(frozen=True)
class Shard:
    """How one input pipeline takes its part of the data.

    Attributes:
        files: the files this pipeline reads.
        num_shards: when > 1, the pipeline additionally keeps every ``num_shards``-th example.
        index: which of those examples (0-based) it keeps.
    """

    files: List[str]
    num_shards: int = 1
    index: int = 0


def file_shard(files: Sequence[str], input_context: Optional[tf.distribute.InputContext]) -> Shard:
    """Splits ``files`` among input pipelines: whole files when there are enough, else examples.

    With at least as many files as pipelines, pipeline ``i`` reads files ``i, i+n, i+2n, ...``
    (no pipeline reads another's data, reads stay sequential). With fewer files every pipeline
    reads every file and keeps every n-th example, which needs a deterministic read order.
    """
    files = sorted(files)
    if input_context is None or input_context.num_input_pipelines <= 1:
        return Shard(files)
    n, i = input_context.num_input_pipelines, input_context.input_pipeline_id
    if len(files) >= n:
        return Shard(files[i::n])
    return Shard(files, num_shards=n, index=i)


def apply_options(ds: tf.data.Dataset, options: PipelineOptions) -> tf.data.Dataset:
    """Sets determinism, the thread pool and autotuning on ``ds``."""
    opts = tf.data.Options()
    opts.deterministic = options.deterministic
    opts.autotune.enabled = True
    if options.private_threads:
        opts.threading.private_threadpool_size = options.private_threads
    return ds.with_options(opts)


# -- the training stream's position ---------------------------------------------------------------------
#
# A resumed run continues the data stream where the checkpoint's step left it (docs/failures.md, "Resume
# continues the data stream"): the training stream of a pipeline is a sequence of epochs, each an order of
# the pipeline's records drawn from (seed, epoch) alone, and every image's augmentation seed is drawn from
# (seed, its position in the stream) alone. A pipeline that has consumed ``start`` records therefore starts
# at epoch ``start // epoch_size``, record ``start % epoch_size`` of it, with the seeds of positions
# ``start, start + 1, ...``: what an uninterrupted run reads from there on.

_SEED_KEY = 0x5EED  # the second word of the seed pair every stream seed is folded from


def base_seed(seed: Optional[int]) -> int:
    """``seed``, or a random one (a run without ``--seed`` has a new stream each time it starts)."""
    return int(seed) if seed is not None else random.SystemRandom().getrandbits(62)


def _stream_key(seed: int, stream: int) -> tf.Tensor:
    return tf.random.experimental.stateless_fold_in(tf.constant([seed, _SEED_KEY], tf.int64), stream)


def position_seeds(seed: int, stream: int, start: int = 0) -> tf.data.Dataset:
    """An endless dataset of int64 [2] stateless seeds for positions ``start, start + 1, ...``.

    The seed of position ``i`` depends on ``seed``, ``stream`` (which sequence: images, batches) and ``i``
    only, so a stream started at ``start`` goes on exactly as one started at 0 does from there.
    """
    key = _stream_key(seed, stream)
    return tf.data.Dataset.counter(start).map(lambda i: tf.random.experimental.stateless_fold_in(key, i))


def epoch_permutation(count: int, seed: int, epoch: tf.Tensor) -> tf.Tensor:
    """A permutation of ``range(count)`` drawn from ``(seed, epoch)`` alone."""
    return tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), seed=(
        tf.random.experimental.stateless_fold_in(_stream_key(seed, _EPOCH_STREAM), tf.cast(epoch, tf.int64))))


def block_shuffle(ds: tf.data.Dataset, block: int, seed: int, epoch: tf.Tensor,
                  skip: Optional[tf.Tensor] = None) -> tf.data.Dataset:
    """``ds`` (finite: one epoch) with each run of ``block`` consecutive elements in an order of its own.

    The order of block ``b`` is drawn from ``(seed, epoch, b)`` alone (``tf.data``'s shuffle takes its
    seed through a Python comparison that fails for a seed computed in the graph under a global seed of
    0). Memory: one block of elements, as a shuffle buffer of that size.

    Args:
        skip: leave out the first ``skip`` elements of the result (a resumed stream): whole blocks are
            left out before they are batched and permuted; their elements are still read.
    """
    key = _stream_key(seed, _BLOCK_STREAM)
    key = tf.random.experimental.stateless_fold_in(key, tf.cast(epoch, tf.int64))
    skip = tf.constant(0, tf.int64) if skip is None else tf.cast(skip, tf.int64)
    whole = skip // block

    def permute(index, elements):
        count = tf.shape(tf.nest.flatten(elements)[0], out_type=tf.int64)[0]
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count), seed=tf.random.experimental.stateless_fold_in(key, index))
        return tf.nest.map_structure(lambda t: tf.gather(t, order), elements)

    permuted = ds.skip(whole * block).batch(block).enumerate(start=whole).map(permute).unbatch()
    return permuted.skip(skip - whole * block)


def epochs_from(make_epoch: Callable[[tf.Tensor, tf.Tensor], tf.data.Dataset], *, epoch_size: int,
                start: int = 0) -> tf.data.Dataset:
    """The endless stream of epochs ``make_epoch(epoch, skip)`` from record ``start`` on.

    Args:
        make_epoch: builds epoch ``epoch`` (an int64 tensor) without its first ``skip`` records (an int64
            tensor, 0 but for the first epoch); the same epoch every time for the same arguments.
        epoch_size: records per epoch of this pipeline.
        start: records of the stream already consumed.
    """
    first, offset = divmod(int(start), max(int(epoch_size), 1))
    head = make_epoch(tf.constant(first, tf.int64), tf.constant(offset, tf.int64))
    return head.concatenate(tf.data.Dataset.counter(first + 1).flat_map(
        lambda epoch: make_epoch(epoch, tf.constant(0, tf.int64))))


_IMAGE_STREAM, _BATCH_STREAM, _EPOCH_STREAM, _BLOCK_STREAM = 1, 2, 3, 4


def _seeds(seed: Optional[int], start: int = 0) -> tf.data.Dataset:
    """An endless dataset of int64 [2] seeds, one per image, from image ``start`` of the stream on."""
    return position_seeds(base_seed(seed), _IMAGE_STREAM, start)


def _check_label(label: tf.Tensor, num_classes: int) -> tf.Tensor:
    label = tf.cast(label, tf.int32)
    message = (f"a label is outside [0, {num_classes}): check --num_classes and --label_offset "
               "(ImageNet TFRecords store 1..1000, so their offset is 1)")
    with tf.control_dependencies([
        tf.debugging.assert_greater_equal(label, 0, message=message),
        tf.debugging.assert_less(label, num_classes, message=message),
    ]):
        return tf.identity(label)


def batches(
    records: tf.data.Dataset,
    *,
    training: bool,
    batch_size: int,
    config: PreprocessConfig,
    num_classes: int,
    options: PipelineOptions,
    seed: Optional[int] = None,
    normalize: bool = True,
    label_offset: int = 0,
    parse: Optional[Callable[[Any], Any]] = None,
    tracker: Optional[BadDataTracker] = None,
    start: int = 0,
) -> tf.data.Dataset:
    """Preprocesses and batches a dataset of records.

    Args:
        records: dicts with ``encoded`` (file bytes), ``label`` (int) and optionally ``bboxes``
            (float [N, 4]); for training, already shuffled and repeated.
        training: random crops and flips, batches of exactly ``batch_size``; otherwise central
            crops and a smaller last batch.
        batch_size: images per batch.
        config: preprocessing parameters.
        num_classes: labels must lie in ``[0, num_classes)`` after subtracting ``label_offset``.
        options: tf.data knobs.
        seed: seed of the per-image augmentation seeds; None for a random one.
        normalize: return normalised float32 images; False returns uint8 (normalise on the device
            with :func:`datasets.preprocessing.normalize`).
        label_offset: subtracted from stored labels.
        parse: turns a record into the dict above (reads the file, parses the TFRecord); it runs
            in the decode map, so that a failure there counts as an unreadable image.
        tracker: skips, counts and names the records that do not parse or decode (and stops at its
            limit); None lets any failure end the pipeline.
        start: training: the position of ``records``' first record in this pipeline's stream (a resumed
            run's: its step times the records a step takes from this pipeline); the augmentation seeds
            (per image, and per batch for mixup/cutmix) continue from there.

    Returns:
        A dataset of ``(images, labels)`` batches; with mixup or cutmix on, training labels are
        float32 ``[batch, num_classes]`` soft labels.
    """
    parse = parse or (lambda record: record)

    if training:
        def train_map(record, image_seed):
            record = parse(record)
            image = preprocessing.train_image(record["encoded"], image_seed, config, record.get("bboxes"))
            return image, record["label"]

        ds = _decode(tf.data.Dataset.zip((records, _seeds(seed, start))), train_map, tracker, finite=False,
                     name_of=lambda record, image_seed: record.get("name"))
    else:
        def eval_map(record):
            record = parse(record)
            return preprocessing.eval_image(record["encoded"], config), record["label"]

        ds = _decode(records, eval_map, tracker, finite=True, name_of=lambda record: record.get("name"))
    ds = ds.batch(batch_size, drop_remainder=training)
    # Labels are checked per batch, outside the decode map, so that a wrong label is an error
    # and never an image skipped as unreadable.
    ds = ds.map(lambda images, labels: (images, _check_label(tf.cast(labels, tf.int32) - label_offset,
                                                             num_classes)))
    if training and config.mixes_batches:
        ds = mix_batches(ds, config, num_classes, seed, start=start // batch_size)
    if normalize:
        ds = ds.map(lambda images, labels: (preprocessing.normalize_for(images, config), labels),
                    num_parallel_calls=AUTOTUNE)
    return apply_options(ds.prefetch(AUTOTUNE), options)


def _decode(ds: tf.data.Dataset, fn: Callable, tracker: Optional[BadDataTracker], *, finite: bool,
            name_of: Callable) -> tf.data.Dataset:
    """The parallel decode map; with a tracker, failures are skipped and recorded (datasets/bad_data.py)."""
    if tracker is None:
        return ds.map(fn, num_parallel_calls=AUTOTUNE)
    return tracker.decode(ds, fn, name_of=name_of, finite=finite)


def mix_batches(ds: tf.data.Dataset, config: PreprocessConfig, num_classes: int,
                seed: Optional[int], start: int = 0) -> tf.data.Dataset:
    """Mixup/cutmix of every batch (labels become float [batch, num_classes]), one stateless seed per batch
    (from batch ``start`` of the stream on)."""
    def mix(batch, batch_seed):
        images, labels = batch
        # A seed stream of its own: the per-image seeds come from the same generator.
        batch_seed = tf.random.experimental.stateless_fold_in(batch_seed, 0x6D6978)
        return mixing.mix_batch(images, labels, batch_seed, num_classes=num_classes, mixup_alpha=config.mixup_alpha,
                                cutmix_alpha=config.cutmix_alpha, p=config.mix_prob)

    return tf.data.Dataset.zip((ds, position_seeds(base_seed(seed), _BATCH_STREAM, start))).map(
        mix, num_parallel_calls=AUTOTUNE)


def check_split(split: str, splits: Tuple[str, ...] = ("train", "validation")) -> str:
    """Returns ``split`` if known; raises a ValueError naming the accepted splits otherwise."""
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(splits)}")
    return split


def map_records(ds: tf.data.Dataset, fn: Callable, deterministic: bool) -> tf.data.Dataset:
    """``ds.map(fn)`` in parallel, keeping the order only if asked."""
    return ds.map(fn, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
