"""Colour augmentations of uint8 training crops: torchvision's ColorJitter, TF-slim Inception's colour
distortion and AlexNet's PCA lighting noise.

* :func:`color_jitter`: torchvision's ``transforms.ColorJitter(brightness, contrast, saturation, hue)``
  (``torchvision/transforms/transforms.py``): a random order of the four ops (``torch.randperm(4)``),
  factors uniform in ``[max(0, 1 - s), 1 + s]`` (hue: ``[-h, h]``), an op with strength 0 skipped.
  The ops are torchvision's on uint8 tensors (``adjust_brightness``, ``adjust_contrast``,
  ``adjust_saturation``, ``adjust_hue``; :mod:`datasets.image_ops`), each rounded back to uint8 as
  torchvision's tensor ops are. timm's ``color_jitter`` argument is this transform.
* :func:`distort_color`: ``distort_color`` and ``preprocess_for_train`` of TF-slim's Inception
  preprocessing (tensorflow/models, ``research/slim/preprocessing/inception_preprocessing.py``): on the
  image as floats in 0..1 (``tf.image.convert_image_dtype``), ``fast_mode`` applies
  ``random_brightness(max_delta=32/255)`` then ``random_saturation(0.5, 1.5)`` (ordering 0, the only
  one when ``num_distort_cases = 1 if fast_mode else 4``); otherwise one of four orderings of
  brightness, saturation, ``random_hue(max_delta=0.2)`` and ``random_contrast(0.5, 1.5)`` is drawn per
  image; the result is clipped to 0..1. The same TensorFlow ops run here, with stateless draws;
  the result is rounded back to uint8 (slim keeps floats: at most half a grey level apart).
* :func:`lighting`: AlexNet's PCA lighting noise (Krizhevsky et al. 2012, section 4.1) as
  fb.resnet.torch implements it (``datasets/transforms.lua``, ``Lighting(alphastd, eigval, eigvec)``
  with the ImageNet statistics of ``datasets/imagenet.lua``), the transform the DenseNet and ResNet
  LuaTorch recipes use with ``alphastd`` 0.1: ``alpha ~ N(0, alphastd)`` per eigenvector, and
  ``eigvec @ (alpha * eigval)`` added to the R, G, B values on the 0..1 scale. Here it is added to the
  uint8 pixels (x 255), rounded and clipped to 0..255 (the reference adds to unclipped floats after
  ToTensor: at most half a grey level apart, except where it leaves 0..1).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import tensorflow as tf

from datasets import image_ops
from run_config.groups import DISTORT_COLOR_MODES

__all__ = [
    "DISTORT_COLOR_MODES",
    "IMAGENET_EIGVAL",
    "IMAGENET_EIGVEC",
    "DistortPlan",
    "JitterPlan",
    "apply_distort_plan",
    "apply_jitter_plan",
    "check_jitter",
    "color_jitter",
    "distort_color",
    "distort_color_plan",
    "jitter_plan",
    "lighting",
    "lighting_alpha",
    "lighting_offset",
]


# fb.resnet.torch datasets/imagenet.lua: the PCA of ImageNet's RGB pixel values (0..1 scale).
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009),
                   (-0.5808, -0.0045, -0.8140),
                   (-0.5836, -0.6948, 0.4203))

_JITTER_OPS = ("brightness", "contrast", "saturation", "hue")
# slim's distort_color orderings (op names: b brightness, s saturation, h hue, c contrast).
_SLIM_ORDERINGS = ("bshc", "sbch", "chbs", "hscb")
_SLIM_FAST = "bs"


def check_jitter(strengths: Sequence[float]) -> None:
    """Raises ValueError unless ``strengths`` = (brightness, contrast, saturation, hue) is valid."""
    if len(strengths) != 4:
        raise ValueError(f"color_jitter takes 4 strengths (brightness, contrast, saturation, hue), got {strengths}")
    brightness, contrast, saturation, hue = strengths
    for name, value in zip(_JITTER_OPS[:3], (brightness, contrast, saturation)):
        if not value >= 0:
            raise ValueError(f"color_jitter's {name} must be >= 0, got {value}")
    if not 0 <= hue <= 0.5:
        raise ValueError(f"color_jitter's hue must lie in [0, 0.5], got {hue}")


class JitterPlan(NamedTuple):
    """One image's ColorJitter draws.

    Attributes:
        order: int32 [4], a permutation of 0..3 (brightness, contrast, saturation, hue).
        factors: float32 [4], the factor of each op (hue: the shift), in op order, not draw order.
    """

    order: tf.Tensor
    factors: tf.Tensor


def jitter_plan(seed, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                hue: float = 0.0) -> JitterPlan:
    """torchvision's ``ColorJitter.get_params``: a uniform random order and uniform factors."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    # The ranks of four i.i.d. uniforms are a uniformly random permutation.
    order = tf.cast(tf.argsort(tf.random.stateless_uniform([4], seeds[0])), tf.int32)
    low = tf.constant([max(0.0, 1.0 - brightness), max(0.0, 1.0 - contrast), max(0.0, 1.0 - saturation), -hue])
    high = tf.constant([1.0 + brightness, 1.0 + contrast, 1.0 + saturation, hue])
    factors = low + (high - low) * tf.random.stateless_uniform([4], seeds[1])
    return JitterPlan(order, factors)


def apply_jitter_plan(image: tf.Tensor, plan: JitterPlan, enabled: Sequence[bool] = (True,) * 4) -> tf.Tensor:
    """Runs the enabled ops of ``plan`` on one uint8 image, in the plan's order."""
    ops = [
        lambda x: image_ops.brightness(x, plan.factors[0]),
        lambda x: image_ops.contrast(x, plan.factors[1]),
        lambda x: image_ops.color(x, plan.factors[2]),
        lambda x: image_ops.hue(x, plan.factors[3]),
    ]
    for step in range(4):
        current = image
        branches = [(lambda op=op, x=current: op(x)) if on else (lambda x=current: x) for op, on in zip(ops, enabled)]
        image = tf.switch_case(plan.order[step], branches)
    return image


def color_jitter(image: tf.Tensor, seed, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0) -> tf.Tensor:
    """torchvision's ``ColorJitter(brightness, contrast, saturation, hue)`` of one uint8 [H, W, 3] image."""
    check_jitter((brightness, contrast, saturation, hue))
    enabled = [brightness > 0, contrast > 0, saturation > 0, hue > 0]
    if not any(enabled):
        return image
    shape = image.shape
    out = apply_jitter_plan(image, jitter_plan(seed, brightness, contrast, saturation, hue), enabled)
    out.set_shape(shape)
    return out


# -- TF-slim Inception ---------------------------------------------------------------------------------

class DistortPlan(NamedTuple):
    """One image's ``distort_color`` draws.

    Attributes:
        ordering: int32 scalar, slim's ``color_ordering`` (0 in fast mode).
        brightness: float32, the brightness delta (0..1 scale), uniform in +-32/255.
        saturation: float32, the saturation factor, uniform in 0.5..1.5.
        hue: float32, the hue delta, uniform in +-0.2.
        contrast: float32, the contrast factor, uniform in 0.5..1.5.
    """

    ordering: tf.Tensor
    brightness: tf.Tensor
    saturation: tf.Tensor
    hue: tf.Tensor
    contrast: tf.Tensor


def distort_color_plan(seed, fast_mode: bool = True) -> DistortPlan:
    """The draws of slim's ``preprocess_for_train`` colour step: an ordering (four in full mode), then factors."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    cases = 1 if fast_mode else 4
    ordering = tf.random.stateless_uniform([], seeds[0], 0, cases, dtype=tf.int32)
    u = tf.random.stateless_uniform([4], seeds[1])
    return DistortPlan(ordering, brightness=(2.0 * u[0] - 1.0) * (32.0 / 255.0), saturation=0.5 + u[1],
                       hue=(2.0 * u[2] - 1.0) * 0.2, contrast=0.5 + u[3])


def _slim_op(letter: str, x: tf.Tensor, plan: DistortPlan) -> tf.Tensor:
    if letter == "b":
        return tf.image.adjust_brightness(x, plan.brightness)
    if letter == "s":
        return tf.image.adjust_saturation(x, plan.saturation)
    if letter == "h":
        return tf.image.adjust_hue(x, plan.hue)
    return tf.image.adjust_contrast(x, plan.contrast)


def apply_distort_plan(image: tf.Tensor, plan: DistortPlan, fast_mode: bool = True) -> tf.Tensor:
    """slim's ``distort_color`` with the plan's ordering and factors, on a float image in 0..1 (clipped)."""
    orderings = (_SLIM_FAST,) if fast_mode else _SLIM_ORDERINGS

    def branch(letters):
        def fn():
            x = image
            for letter in letters:
                x = _slim_op(letter, x, plan)
            return x
        return fn

    out = tf.switch_case(plan.ordering, [branch(letters) for letters in orderings])
    return tf.clip_by_value(out, 0.0, 1.0)


def distort_color(image: tf.Tensor, seed, fast_mode: bool = True) -> tf.Tensor:
    """slim's Inception colour distortion of one uint8 image, rounded back to uint8."""
    x = tf.image.convert_image_dtype(image, tf.float32)
    out = apply_distort_plan(x, distort_color_plan(seed, fast_mode), fast_mode)
    out = tf.cast(tf.round(out * 255.0), tf.uint8)
    out.set_shape(image.shape)
    return out


# -- PCA lighting --------------------------------------------------------------------------------------

def lighting_offset(alpha, eigval: Sequence[float] = IMAGENET_EIGVAL,
                    eigvec: Sequence[Sequence[float]] = IMAGENET_EIGVEC) -> tf.Tensor:
    """The RGB offset (0..1 scale) for eigenvector weights ``alpha`` [3]: ``eigvec @ (alpha * eigval)``."""
    alpha = tf.cast(alpha, tf.float32)
    weights = alpha * tf.constant(eigval, tf.float32)
    return tf.linalg.matvec(tf.constant(eigvec, tf.float32), weights)


def lighting_alpha(seed, alphastd: float = 0.1) -> tf.Tensor:
    """The eigenvector weights of one image: float32 [3] ``~ N(0, alphastd)``."""
    return tf.random.stateless_normal([3], tf.cast(seed, tf.int64), stddev=alphastd)


def lighting(image: tf.Tensor, seed, alphastd: float = 0.1, eigval: Sequence[float] = IMAGENET_EIGVAL,
             eigvec: Sequence[Sequence[float]] = IMAGENET_EIGVEC) -> tf.Tensor:
    """AlexNet's PCA lighting noise on one uint8 RGB image: ``alpha ~ N(0, alphastd)``, offset x 255 added."""
    if alphastd <= 0:
        return image
    alpha = lighting_alpha(seed, alphastd)
    offset = lighting_offset(alpha, eigval, eigvec) * 255.0
    out = tf.cast(tf.clip_by_value(tf.round(tf.cast(image, tf.float32) + offset), 0.0, 255.0), tf.uint8)
    out.set_shape(image.shape)
    return out
