"""Training crop windows: torchvision's ``RandomResizedCrop`` sampler, stateless, and TensorFlow's box sampler.

``torchvision``: ``transforms.RandomResizedCrop.get_params`` (torchvision ``transforms/transforms.py``),
the crop of torchvision's reference recipes and of the Ascend AlexNet recipe's README
(``RandomResizeCrop(0.08..1, 3/4..4/3)``). Up to ``attempts`` times: an area fraction uniform in
``scale``, an aspect ratio (width / height) log-uniform in ``ratio``, ``w = round(sqrt(area * r))`` and
``h = round(sqrt(area / r))`` (Python's round, half to even); the first try with ``0 < w <= width`` and
``0 < h <= height`` wins and its offsets are uniform over the valid positions. If none fits, the
central crop of the whole image clamped to the ratio range (the whole image when its own ratio is in
range). Here every try is drawn at once from the image's own stateless seed; the first that fits is
taken, which has the same distribution as torchvision's loop.

``distorted_bbox``: ``tf.image.stateless_sample_distorted_bounding_box`` (the Inception/slim
sampler): the crop must also cover ``min_object_covered`` of one labelled bounding box, aspect and
area are uniform, and after ``attempts`` failures the whole image is used.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import tensorflow as tf

from run_config.groups import CROP_SAMPLERS

__all__ = ["CROP_SAMPLERS", "crop_window", "distorted_bbox_window", "torchvision_window"]



def torchvision_window(height, width, seed, scale: Sequence[float] = (0.08, 1.0),
                       ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0), attempts: int = 10) -> tf.Tensor:
    """torchvision's ``RandomResizedCrop.get_params`` for an image of ``height`` x ``width``.

    Args:
        height, width: the image's size (int32 scalars).
        seed: int32/int64 [2] stateless seed.
        scale: range of the crop's area as a fraction of the image's.
        ratio: range of the crop's aspect ratio, width / height.
        attempts: tries before the central fallback (torchvision: 10).

    Returns:
        int32 [4]: top, left, crop height, crop width.
    """
    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    h64 = tf.cast(height, tf.float64)
    w64 = tf.cast(width, tf.float64)
    area = h64 * w64 * tf.cast(tf.random.stateless_uniform([attempts], seeds[0], scale[0], scale[1]), tf.float64)
    log_ratio = tf.random.stateless_uniform([attempts], seeds[1], math.log(ratio[0]), math.log(ratio[1]))
    aspect = tf.cast(tf.exp(log_ratio), tf.float64)
    w = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)  # tf.round: half to even, as Python's round
    h = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
    found = tf.reduce_any(fits)
    # torchvision's fallback: the whole image, clamped to the ratio range, centred.
    own = w64 / h64
    low, high = min(ratio), max(ratio)
    fallback_w = tf.where(own > high, tf.cast(tf.round(h64 * high), tf.int32), width)
    fallback_h = tf.where(own < low, tf.cast(tf.round(w64 / low), tf.int32), height)
    crop_h = tf.where(found, h[first], fallback_h)
    crop_w = tf.where(found, w[first], fallback_w)
    top = tf.random.stateless_uniform([], seeds[2], 0, height - crop_h + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seeds[3], 0, width - crop_w + 1, dtype=tf.int32)
    top = tf.where(found, top, (height - crop_h) // 2)
    left = tf.where(found, left, (width - crop_w) // 2)
    return tf.stack([top, left, crop_h, crop_w])


def distorted_bbox_window(height, width, seed, bboxes: Optional[tf.Tensor] = None,
                          scale: Sequence[float] = (0.08, 1.0), ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
                          attempts: int = 10, min_object_covered: float = 0.1) -> tf.Tensor:
    """TensorFlow's ``stateless_sample_distorted_bounding_box``: int32 [4] top, left, height, width.

    Args:
        bboxes: float [N, 4] (ymin, xmin, ymax, xmax) in 0..1, or None/empty for the whole image.
        min_object_covered: fraction of one box that the crop must cover.
    """
    if bboxes is None:
        bboxes = tf.zeros([0, 4], tf.float32)
    bboxes = tf.clip_by_value(tf.reshape(tf.cast(bboxes, tf.float32), [1, -1, 4]), 0.0, 1.0)
    shape = tf.stack([tf.cast(height, tf.int32), tf.cast(width, tf.int32), 3])
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bboxes, seed=tf.cast(seed, tf.int64), min_object_covered=min_object_covered,
        aspect_ratio_range=tuple(ratio), area_range=tuple(scale), max_attempts=attempts,
        use_image_if_no_bounding_boxes=True)
    return tf.stack([begin[0], begin[1], size[0], size[1]])


def crop_window(sampler: str, height, width, seed, *, bboxes: Optional[tf.Tensor] = None,
                scale: Sequence[float] = (0.08, 1.0), ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
                attempts: int = 10, min_object_covered: float = 0.1) -> tf.Tensor:
    """The training crop [top, left, height, width] of ``sampler`` (one of :data:`CROP_SAMPLERS`).

    ``torchvision`` ignores ``bboxes`` and ``min_object_covered`` (torchvision's sampler has none).
    """
    if sampler == "torchvision":
        return torchvision_window(height, width, seed, scale, ratio, attempts)
    if sampler == "distorted_bbox":
        return distorted_bbox_window(height, width, seed, bboxes, scale, ratio, attempts, min_object_covered)
    raise ValueError(f"crop sampler must be one of {CROP_SAMPLERS}, got {sampler!r}")
