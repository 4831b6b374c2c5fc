"""Batch-level mixup and cutmix with soft labels (torchvision references' RandomMixup / RandomCutmix).

Both pair every image with its neighbour in the batch (the batch rolled by one) and draw the mixing
weight ``lam ~ Beta(alpha, alpha)`` once per batch:

* mixup: ``lam * x + (1 - lam) * x_rolled`` for images and one-hot labels alike;
* cutmix: a box centred at a uniform point, of sides ``sqrt(1 - lam)`` times the image's (clipped
  to the image), is pasted from the rolled batch; the labels' weight is the area actually kept.

With both on, each batch uses one of them, chosen with probability 1/2 (torchvision's RandomChoice);
either is applied with probability ``p`` (else only the labels become one-hot). Labels come out as
float32 ``[batch, num_classes]``. uint8 images stay uint8 (mixup rounds to the nearest value, an
error of at most half a grey level), so mixing works before normalisation, on the host or not.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["beta", "cutmix", "mix_batch", "mixup"]


def beta(seed, alpha: float) -> tf.Tensor:
    """One stateless draw of ``Beta(alpha, alpha)`` (two gamma draws)."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    a = tf.random.stateless_gamma([], seeds[0], alpha)
    b = tf.random.stateless_gamma([], seeds[1], alpha)
    return a / (a + b)


def _mix(x: tf.Tensor, rolled: tf.Tensor, lam) -> tf.Tensor:
    mixed = lam * tf.cast(x, tf.float32) + (1.0 - lam) * tf.cast(rolled, tf.float32)
    if x.dtype.is_integer:
        return tf.cast(tf.clip_by_value(tf.round(mixed), x.dtype.min, x.dtype.max), x.dtype)
    return tf.cast(mixed, x.dtype)


def mixup(images: tf.Tensor, labels: tf.Tensor, lam) -> tuple:
    """Mixes a batch with itself rolled by one; ``labels`` are float one-hot (or soft) [batch, classes]."""
    lam = tf.cast(lam, tf.float32)
    return (_mix(images, tf.roll(images, 1, axis=0), lam),
            lam * labels + (1.0 - lam) * tf.roll(labels, 1, axis=0))


def cutmix_box(seed, lam, height: int, width: int):
    """torchvision's cutmix box (y1, y2, x1, x2) for weight ``lam``, centred at a uniform pixel."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    cx = tf.random.stateless_uniform([], seeds[0], 0, width, dtype=tf.int32)
    cy = tf.random.stateless_uniform([], seeds[1], 0, height, dtype=tf.int32)
    r = 0.5 * tf.sqrt(1.0 - tf.cast(lam, tf.float32))
    half_w = tf.cast(r * width, tf.int32)  # int(): truncation, as torchvision
    half_h = tf.cast(r * height, tf.int32)
    return (tf.maximum(cy - half_h, 0), tf.minimum(cy + half_h, height),
            tf.maximum(cx - half_w, 0), tf.minimum(cx + half_w, width))


def cutmix(images: tf.Tensor, labels: tf.Tensor, lam, seed) -> tuple:
    """Pastes a box of the batch rolled by one into each image; labels weighted by the kept area."""
    height, width = int(images.shape[1]), int(images.shape[2])
    y1, y2, x1, x2 = cutmix_box(seed, lam, height, width)
    rows = tf.range(height)[:, None, None]
    cols = tf.range(width)[None, :, None]
    box = (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)
    mixed = tf.where(box[None], tf.roll(images, 1, axis=0), images)
    kept = 1.0 - tf.cast((y2 - y1) * (x2 - x1), tf.float32) / float(height * width)
    return mixed, kept * labels + (1.0 - kept) * tf.roll(labels, 1, axis=0)


def mix_batch(images: tf.Tensor, labels: tf.Tensor, seed, *, num_classes: int, mixup_alpha: float = 0.0,
              cutmix_alpha: float = 0.0, p: float = 1.0) -> tuple:
    """Mixup or cutmix of one batch (NHWC images, integer labels [batch]) -> (images, float labels [batch, C]).

    Args:
        seed: int [2], this batch's seed.
        num_classes: width of the one-hot labels.
        mixup_alpha, cutmix_alpha: Beta parameters; 0 switches that method off.
        p: probability that the chosen method is applied to the batch.
    """
    onehot = tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)
    methods = [m for m, alpha in (("mixup", mixup_alpha), ("cutmix", cutmix_alpha)) if alpha > 0]
    if not methods:
        return images, onehot
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5)

    def run(method: str):
        def fn():
            if method == "mixup":
                return mixup(images, onehot, beta(seeds[0], mixup_alpha))
            return cutmix(images, onehot, beta(seeds[1], cutmix_alpha), seeds[2])
        return fn

    choice = tf.random.stateless_uniform([], seeds[3], 0, len(methods), dtype=tf.int32)
    apply = tf.random.stateless_uniform([], seeds[4]) < p
    index = tf.where(apply, choice, len(methods))
    out_images, out_labels = tf.switch_case(index, [run(m) for m in methods] + [lambda: (images, onehot)])
    out_images.set_shape(images.shape)
    out_labels.set_shape(onehot.shape)
    return out_images, out_labels
