"""Per-image training augmentations on uint8 images: AutoAugment, RandAugment, TrivialAugmentWide, random erasing.

Semantics are torchvision's (``torchvision.transforms.AutoAugment`` with the ImageNet policy,
``RandAugment``, ``TrivialAugmentWide``, ``RandomErasing``), with the operations of
:mod:`datasets.image_ops`. They run on the uint8 ``[H, W, 3]`` crops of the training pipeline,
after the random-resized crop and flip and before normalisation, each image with its own stateless
seed, so a run is reproducible with ``--deterministic --seed=N``. Each policy first draws a
:class:`Plan` (operations, signed magnitudes, which steps run) and then applies it, so the draws'
statistics can be checked on their own.

Random erasing differs from torchvision only in where it runs: torchvision erases normalised
float images with ``value=0``; here the rectangle is filled, before normalisation, with the pixel
value that normalises to 0, i.e. the recipe's mean (rounded to uint8); ``random`` fills it with
per-pixel standard-normal values in normalised space, mapped back to pixels (rounded, clipped
to 0..255).
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from datasets import image_ops

__all__ = [
    "AUTO_AUGMENT_POLICIES",
    "ERASE_VALUES",
    "IMAGENET_POLICY",
    "OPS",
    "Plan",
    "RAND_OPS",
    "apply_op",
    "apply_plan",
    "augment_image",
    "auto_augment_plan",
    "erase_box",
    "erase_fill",
    "magnitudes",
    "rand_augment_plan",
    "random_erase",
    "trivial_augment_plan",
]

AUTO_AUGMENT_POLICIES = ("none", "imagenet", "ra", "ta_wide")
ERASE_VALUES = ("zero", "random")

# AutoAugment's ImageNet policy (Cubuk et al., 2019), as torchvision lists it: 25 sub-policies of
# two (operation, probability, magnitude bin out of 10) steps.
IMAGENET_POLICY: Tuple[Tuple[Tuple[str, float, Optional[int]], ...], ...] = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
    (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
    (("Color", 0.4, 0), ("Equalize", 0.6, None)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
)

# Every operation, in one fixed order: the index a policy's op choice switches on.
OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
       "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert")
# The operations RandAugment and TrivialAugmentWide draw from (torchvision's, no Invert).
RAND_OPS = OPS[:14]
_SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"}


def _linspace(start: float, stop: float, bins: int) -> List[float]:
    return [float(v) for v in np.linspace(start, stop, bins, dtype=np.float32)]


def _posterize_bits(bins: int, span: int) -> List[float]:
    # 8 - round(i / ((bins - 1) / span)), numpy's round half to even as torch's.
    return [float(8 - np.round(i / ((bins - 1) / span))) for i in range(bins)]


def magnitudes(space: str, bins: int, image_size: Tuple[int, int]) -> Dict[str, List[float]]:
    """Magnitude of each operation per bin, unsigned: torchvision's augmentation spaces.

    Args:
        space: ``standard`` (AutoAugment, RandAugment) or ``wide`` (TrivialAugmentWide).
        bins: number of magnitude bins.
        image_size: (height, width), for the translations of the standard space.
    """
    height, width = image_size
    if space == "wide":
        geometric = {"ShearX": _linspace(0.0, 0.99, bins), "ShearY": _linspace(0.0, 0.99, bins),
                     "TranslateX": _linspace(0.0, 32.0, bins), "TranslateY": _linspace(0.0, 32.0, bins),
                     "Rotate": _linspace(0.0, 135.0, bins)}
        enhance, bits = _linspace(0.0, 0.99, bins), _posterize_bits(bins, 6)
    else:
        # Up to 150/331 of the side along the translation (AutoAugment's 150 pixels at 331).
        geometric = {"ShearX": _linspace(0.0, 0.3, bins), "ShearY": _linspace(0.0, 0.3, bins),
                     "TranslateX": _linspace(0.0, 150.0 / 331.0 * width, bins),
                     "TranslateY": _linspace(0.0, 150.0 / 331.0 * height, bins),
                     "Rotate": _linspace(0.0, 30.0, bins)}
        enhance, bits = _linspace(0.0, 0.9, bins), _posterize_bits(bins, 4)
    table = {op: [0.0] * bins for op in OPS}
    table.update(geometric)
    for op in ("Brightness", "Color", "Contrast", "Sharpness"):
        table[op] = list(enhance)
    table["Posterize"] = bits
    table["Solarize"] = _linspace(255.0, 0.0, bins)
    return table


def apply_op(image: tf.Tensor, op_index, magnitude, interpolation: str = "bilinear",
             fill: Optional[Sequence[float]] = None) -> tf.Tensor:
    """Applies ``OPS[op_index]`` with a (signed) magnitude; only the chosen branch runs."""
    magnitude = tf.cast(magnitude, tf.float32)
    geo = dict(interpolation=interpolation, fill=fill)
    branches = {
        "Identity": lambda: image,
        "ShearX": lambda: image_ops.shear_x(image, magnitude, **geo),
        "ShearY": lambda: image_ops.shear_y(image, magnitude, **geo),
        "TranslateX": lambda: image_ops.translate_x(image, magnitude, **geo),
        "TranslateY": lambda: image_ops.translate_y(image, magnitude, **geo),
        "Rotate": lambda: image_ops.rotate(image, magnitude, **geo),
        "Brightness": lambda: image_ops.brightness(image, 1.0 + magnitude),
        "Color": lambda: image_ops.color(image, 1.0 + magnitude),
        "Contrast": lambda: image_ops.contrast(image, 1.0 + magnitude),
        "Sharpness": lambda: image_ops.sharpness(image, 1.0 + magnitude),
        "Posterize": lambda: image_ops.posterize(image, magnitude),
        "Solarize": lambda: image_ops.solarize(image, magnitude),
        "AutoContrast": lambda: image_ops.autocontrast(image),
        "Equalize": lambda: image_ops.equalize(image),
        "Invert": lambda: image_ops.invert(image),
    }
    out = tf.switch_case(tf.cast(op_index, tf.int32), [branches[op] for op in OPS])
    out.set_shape(image.shape)
    return out


def _signed(magnitude, op_index, coin) -> tf.Tensor:
    """``-magnitude`` when the op is signed and ``coin`` is 0 (torchvision's random sign)."""
    signed = tf.gather(tf.constant([op in _SIGNED for op in OPS]), op_index)
    return tf.where(tf.logical_and(signed, tf.equal(coin, 0)), -magnitude, magnitude)


def _size(image: tf.Tensor) -> Tuple[int, int]:
    if image.shape[0] is None or image.shape[1] is None:
        raise ValueError("augmentations need images of a static size (the pipeline's crops have one)")
    return int(image.shape[0]), int(image.shape[1])


class Plan(NamedTuple):
    """The random draws of one image's policy: steps to run in order (index into :data:`OPS`).

    Attributes:
        ops: int32 [steps], the operations.
        magnitudes: float32 [steps], signed magnitudes.
        applied: bool [steps], whether each step runs (AutoAugment's per-step probability).
    """

    ops: tf.Tensor
    magnitudes: tf.Tensor
    applied: tf.Tensor


def auto_augment_plan(seed, image_size: Tuple[int, int]) -> Plan:
    """AutoAugment's ImageNet policy: a uniform sub-policy; each of its two steps runs with its probability."""
    table = magnitudes("standard", 10, image_size)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    policy = tf.random.stateless_uniform([], seeds[0], 0, len(IMAGENET_POLICY), dtype=tf.int32)
    draws = tf.random.stateless_uniform([2], seeds[1])
    coins = tf.random.stateless_uniform([2], seeds[2], 0, 2, dtype=tf.int32)
    ops = tf.gather(tf.constant([[OPS.index(op) for op, _, _ in sub] for sub in IMAGENET_POLICY]), policy)
    probs = tf.gather(tf.constant([[p for _, p, _ in sub] for sub in IMAGENET_POLICY]), policy)
    values = tf.gather(tf.constant([[0.0 if m is None else table[op][m] for op, _, m in sub]
                                    for sub in IMAGENET_POLICY]), policy)
    # torchvision runs a step when its uniform draw is <= the step's probability.
    return Plan(ops, _signed(values, ops, coins), draws <= probs)


def rand_augment_plan(seed, image_size: Tuple[int, int], num_ops: int = 2, magnitude: int = 9,
                      num_magnitude_bins: int = 31) -> Plan:
    """RandAugment: ``num_ops`` operations drawn uniformly, each at bin ``magnitude``, random sign."""
    table = magnitudes("standard", num_magnitude_bins, image_size)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    ops = tf.random.stateless_uniform([num_ops], seeds[0], 0, len(RAND_OPS), dtype=tf.int32)
    coins = tf.random.stateless_uniform([num_ops], seeds[1], 0, 2, dtype=tf.int32)
    values = tf.gather(tf.constant([table[op][magnitude] for op in RAND_OPS]), ops)
    return Plan(ops, _signed(values, ops, coins), tf.ones([num_ops], tf.bool))


def trivial_augment_plan(seed, num_magnitude_bins: int = 31) -> Plan:
    """TrivialAugmentWide: one operation and one magnitude bin drawn uniformly, random sign."""
    table = magnitudes("wide", num_magnitude_bins, (0, 0))
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    op = tf.random.stateless_uniform([1], seeds[0], 0, len(RAND_OPS), dtype=tf.int32)
    bin_ = tf.random.stateless_uniform([1], seeds[1], 0, num_magnitude_bins, dtype=tf.int32)
    coin = tf.random.stateless_uniform([1], seeds[2], 0, 2, dtype=tf.int32)
    values = tf.gather_nd(tf.constant([table[name] for name in RAND_OPS]), tf.stack([op, bin_], axis=-1))
    return Plan(op, _signed(values, op, coin), tf.ones([1], tf.bool))


def apply_plan(image: tf.Tensor, plan: Plan, interpolation: str = "bilinear",
               fill: Optional[Sequence[float]] = None) -> tf.Tensor:
    """Runs the applied steps of ``plan`` on one uint8 image, in order."""
    for step in range(int(plan.ops.shape[0])):
        image = _apply_if(plan.applied[step], image, plan.ops[step], plan.magnitudes[step], interpolation, fill)
    return image


def _apply_if(condition, image, op, magnitude, interpolation, fill) -> tf.Tensor:
    """``apply_op`` when ``condition`` holds, else the image unchanged."""
    return tf.cond(condition, lambda: apply_op(image, op, magnitude, interpolation, fill), lambda: image)


def erase_box(seed, height: int, width: int, scale=(0.02, 0.33), ratio=(0.3, 3.3), attempts: int = 10):
    """torchvision's ``RandomErasing.get_params``: (top, left, h, w), or h = w = 0 when no try fits."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    area = tf.random.stateless_uniform([attempts], seeds[0], scale[0], scale[1]) * float(height * width)
    aspect = tf.exp(tf.random.stateless_uniform([attempts], seeds[1], float(np.log(ratio[0])),
                                                float(np.log(ratio[1]))))
    h = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)
    w = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
    fits = tf.logical_and(h < height, w < width)
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)  # the first try that fits
    found = tf.reduce_any(fits)
    h = tf.where(found, h[first], 0)
    w = tf.where(found, w[first], 0)
    top = tf.random.stateless_uniform([], seeds[2], 0, height - h + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seeds[3], 0, width - w + 1, dtype=tf.int32)
    return top, left, h, w


def erase_fill(mean: Sequence[float], value_scale: float = 1.0, bgr: bool = False) -> List[int]:
    """The uint8 RGB pixel that normalises to 0: the recipe's mean on the 0..255 scale, rounded."""
    rgb = list(mean)[::-1] if bgr else list(mean)
    return [int(round(m * 255.0 / value_scale)) for m in rgb]


def random_erase(image: tf.Tensor, seed, probability: float, *, mean: Sequence[float], std: Sequence[float],
                 value_scale: float = 1.0, bgr: bool = False, value: str = "zero", scale=(0.02, 0.33),
                 ratio=(0.3, 3.3)) -> tf.Tensor:
    """torchvision's ``RandomErasing`` on a uint8 image before normalisation.

    With probability ``probability`` one rectangle of ``scale`` of the area and aspect ``ratio``
    (10 tries, none: unchanged) is filled with the pixel value that normalises to 0 (``zero``,
    torchvision's ``value=0``) or with standard-normal noise in normalised space (``random``).

    Args:
        mean, std, value_scale, bgr: the normalisation that follows (the recipe's), to map fills to pixels.
    """
    if value not in ERASE_VALUES:
        raise ValueError(f"random erasing value must be one of {ERASE_VALUES}, got {value!r}")
    height, width = _size(image)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    top, left, h, w = erase_box(seeds[0], height, width, scale, ratio)
    rows = tf.range(height)[:, None, None]
    cols = tf.range(width)[None, :, None]
    inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
    inside = tf.logical_and(inside, tf.random.stateless_uniform([], seeds[1]) < probability)
    if value == "zero":
        fill = tf.constant(erase_fill(mean, value_scale, bgr), tf.uint8)
    else:
        m = tf.constant(list(mean)[::-1] if bgr else list(mean), tf.float32)
        s = tf.constant(list(std)[::-1] if bgr else list(std), tf.float32)
        noise = tf.random.stateless_normal([height, width, 3], seeds[2])
        fill = tf.cast(tf.clip_by_value(tf.round((noise * s + m) * (255.0 / value_scale)), 0.0, 255.0), tf.uint8)
    return tf.where(inside, fill, image)


def augment_image(image: tf.Tensor, seed, *, policy: str, num_ops: int = 2, magnitude: int = 9,
                  num_magnitude_bins: int = 31, interpolation: str = "bilinear",
                  fill: Optional[Sequence[float]] = None) -> tf.Tensor:
    """Applies ``policy`` (one of :data:`AUTO_AUGMENT_POLICIES`) to one uint8 image.

    ``interpolation`` ``bicubic`` samples the geometric ops bilinearly (TensorFlow's projective
    transform has nearest and bilinear only).
    """
    if interpolation not in image_ops.GEOMETRIC_INTERPOLATIONS:
        interpolation = "bilinear"
    if policy == "none":
        return image
    if policy == "imagenet":
        return apply_plan(image, auto_augment_plan(seed, _size(image)), interpolation, fill)
    if policy == "ra":
        plan = rand_augment_plan(seed, _size(image), num_ops, magnitude, num_magnitude_bins)
        return apply_plan(image, plan, interpolation, fill)
    if policy == "ta_wide":
        return apply_plan(image, trivial_augment_plan(seed, num_magnitude_bins), interpolation, fill)
    raise ValueError(f"auto_augment policy must be one of {AUTO_AUGMENT_POLICIES}, got {policy!r}")
