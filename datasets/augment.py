"""Per-image training augmentations on uint8 images: AutoAugment, RandAugment, TrivialAugmentWide, timm's
RandAugment, random erasing.

Semantics are torchvision's (``torchvision.transforms.AutoAugment`` with the ImageNet policy,
``RandAugment``, ``TrivialAugmentWide``, ``RandomErasing``), with the operations of
:mod:`datasets.image_ops`. They run on the uint8 ``[H, W, 3]`` crops of the training pipeline,
after the random-resized crop and flip and before normalisation, each image with its own stateless
seed, so a run is reproducible with ``--deterministic --seed=N``. Each policy first draws a
:class:`Plan` (operations, signed magnitudes, which steps run) and then applies it, so the draws'
statistics can be checked on their own.

timm's RandAugment (``timm/data/auto_augment.py``, ``rand_augment_transform``: a policy string such as
``rand-m9-mstd0.5-inc1``, :func:`parse_timm_rand_augment`) differs from torchvision's: ``n`` ops (2)
drawn uniformly with replacement from 15 (AutoContrast, Equalize, Invert, Rotate, Posterize,
Solarize, SolarizeAdd, Color, Contrast, Brightness, Sharpness, ShearX, ShearY, TranslateXRel,
TranslateYRel; with ``inc`` the "increasing" variants, whose effect grows with the magnitude), each
applied with probability ``p`` (0.5), at a magnitude drawn per op from ``N(m, mstd)`` clipped to
``[0, mmax]`` (10) and mapped to its argument by timm's level functions, with a random sign for
the signed ops. timm's ops are PIL's; here they are :mod:`datasets.image_ops`' (torchvision's
semantics, which differ from PIL's in rounding), geometric ops sample bilinearly (TensorFlow's
projective transform has no bicubic; timm picks bilinear or bicubic) and fill with the recipe's mean
pixel (timm's ``img_mean``).

Random erasing differs from torchvision only in where it runs: torchvision erases normalised
float images with ``value=0``; here the rectangle is filled, before normalisation, with the pixel
value that normalises to 0, i.e. the recipe's mean (rounded to uint8); ``random`` fills it with
per-pixel standard-normal values in normalised space, mapped back to pixels (rounded, clipped
to 0..255).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from datasets import image_ops
from run_config.groups import AUTO_AUGMENT_POLICIES, ERASE_VALUES

__all__ = [
    "AUTO_AUGMENT_POLICIES",
    "ERASE_VALUES",
    "TIMM_OPS",
    "TimmPlan",
    "TimmRandAugment",
    "apply_timm_plan",
    "check_policy",
    "parse_timm_rand_augment",
    "timm_rand_augment_plan",
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


# -- timm's RandAugment ---------------------------------------------------------------------------------

# timm's _RAND_TRANSFORMS / _RAND_INCREASING_TRANSFORMS, in its order (the increasing set swaps
# Posterize, Solarize and the four enhancements for their "Increasing" variants).
TIMM_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
            "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
_TIMM_SIGNED = {"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"}
_TIMM_ENHANCE = {"Color", "Contrast", "Brightness", "Sharpness"}
_TIMM_LEVEL_DENOM = 10.0
_TIMM_TRANSLATE_PCT = 0.45


@dataclass(frozen=True)
class TimmRandAugment:
    """A parsed timm RandAugment string (``rand-m9-mstd0.5-inc1``).

    Attributes:
        magnitude: ``m``, the mean magnitude (timm's default 10, on a 0..10 scale).
        num_layers: ``n``, ops per image (2).
        prob: ``p``, probability that each drawn op runs (0.5).
        magnitude_std: ``mstd``, the standard deviation of the per-op magnitude noise (0: none; inf,
            written as more than 100: uniform in 0..m).
        magnitude_max: ``mmax``, the upper clip of the magnitude (10).
        increasing: ``inc``, use the increasing op variants (timm switches them on for any ``inc``
            value: it tests ``bool`` of the text, so ``inc0`` switches them on too).
    """

    magnitude: float = 10.0
    num_layers: int = 2
    prob: float = 0.5
    magnitude_std: float = 0.0
    magnitude_max: float = 10.0
    increasing: bool = False


def parse_timm_rand_augment(config: str) -> TimmRandAugment:
    """Parses timm's RandAugment string (``rand_augment_transform``): ``rand`` then ``-``-separated
    ``m``, ``n``, ``p``, ``mstd``, ``mmax``, ``inc`` sections in any order.

    Raises:
        ValueError: not ``rand-...``, an unknown or malformed section, or a transform set (``t...``)
            other than timm's default.
    """
    parts = config.split("-")
    if parts[0] != "rand":
        raise ValueError(f"a timm RandAugment string starts with 'rand-', got {config!r}")
    values: Dict[str, float] = {}
    increasing = False
    for part in parts[1:]:
        match = re.fullmatch(r"([a-z]+)(\d.*)", part)
        if not match or match.group(1) not in ("m", "n", "p", "mstd", "mmax", "inc"):
            raise ValueError(f"unknown section {part!r} of the timm RandAugment string {config!r} "
                             "(m, n, p, mstd, mmax and inc are supported)")
        key, text = match.groups()
        if key == "inc":
            increasing = bool(text)
            continue
        try:
            values[key] = float(text) if key in ("p", "mstd") else float(int(text))
        except ValueError:
            raise ValueError(f"section {part!r} of {config!r} needs a number after {key!r}") from None
    std = values.get("mstd", 0.0)
    spec = TimmRandAugment(magnitude=values.get("m", 10.0), num_layers=int(values.get("n", 2)),
                           prob=values.get("p", 0.5), magnitude_std=float("inf") if std > 100 else std,
                           magnitude_max=values.get("mmax", _TIMM_LEVEL_DENOM), increasing=increasing)
    if spec.num_layers < 0 or not 0.0 <= spec.prob <= 1.0 or spec.magnitude_std < 0 or spec.magnitude_max <= 0:
        raise ValueError(f"timm RandAugment string {config!r}: n >= 0, 0 <= p <= 1, mstd >= 0 and mmax > 0")
    return spec


def check_policy(name: str) -> None:
    """Raises ValueError unless ``name`` is one of :data:`AUTO_AUGMENT_POLICIES` or a timm RandAugment string."""
    if name in AUTO_AUGMENT_POLICIES:
        return
    if name.startswith("rand-") or name == "rand":
        parse_timm_rand_augment(name)
        return
    raise ValueError(f"auto_augment must be one of {AUTO_AUGMENT_POLICIES} or a timm RandAugment string "
                     f"such as 'rand-m9-mstd0.5-inc1', got {name!r}")


class TimmPlan(NamedTuple):
    """The random draws of timm's RandAugment for one image.

    Attributes:
        ops: int32 [n], indices into :data:`TIMM_OPS`.
        applied: bool [n], whether each op runs (probability ``p``).
        levels: float32 [n], the magnitudes after noise and clipping (0..mmax).
        args: float32 [n], each op's argument from timm's level function, signs included.
    """

    ops: tf.Tensor
    applied: tf.Tensor
    levels: tf.Tensor
    args: tf.Tensor


def _timm_args(ops: tf.Tensor, levels: tf.Tensor, negate: tf.Tensor, increasing: bool,
               image_size: Tuple[int, int]) -> tf.Tensor:
    """timm's ``LEVEL_TO_ARG`` functions (float64, as Python computes them), per op."""
    def f64(value):
        return tf.constant(value, tf.float64)

    level = tf.cast(levels, tf.float64) / _TIMM_LEVEL_DENOM
    sign = tf.where(negate, f64(-1.0), f64(1.0))
    height, width = image_size
    floor = tf.math.floor  # Python's int() of a non-negative value
    if increasing:
        posterize = 4.0 - floor(level * 4.0)
        solarize = 256.0 - tf.minimum(f64(256.0), floor(level * 256.0))
        enhance = tf.maximum(f64(0.1), 1.0 + sign * (level * 0.9))
    else:
        posterize = floor(level * 4.0)
        solarize = tf.minimum(f64(256.0), floor(level * 256.0))
        enhance = level * 1.8 + 0.1
    by_op = {
        "Rotate": sign * (level * 30.0),
        "Posterize": posterize,
        "Solarize": solarize,
        "SolarizeAdd": tf.minimum(f64(128.0), floor(level * 110.0)),
        "ShearX": sign * (level * 0.3),
        "ShearY": sign * (level * 0.3),
        "TranslateXRel": sign * (level * _TIMM_TRANSLATE_PCT) * width,
        "TranslateYRel": sign * (level * _TIMM_TRANSLATE_PCT) * height,
    }
    for name in _TIMM_ENHANCE:
        by_op[name] = enhance
    table = tf.stack([by_op.get(name, tf.zeros_like(level)) for name in TIMM_OPS], axis=-1)  # [n, ops]
    return tf.cast(tf.gather(table, ops, batch_dims=1), tf.float32)


def timm_rand_augment_plan(seed, spec: TimmRandAugment, image_size: Tuple[int, int]) -> TimmPlan:
    """timm's ``RandAugment.__call__`` and ``AugmentOp.__call__`` draws: ops with replacement, each
    applied with probability ``p``, magnitude ``N(m, mstd)`` (uniform in 0..m for inf) clipped to
    ``[0, mmax]``, a random sign for the signed ops."""
    n = spec.num_layers
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    ops = tf.random.stateless_uniform([n], seeds[0], 0, len(TIMM_OPS), dtype=tf.int32)
    applied = tf.random.stateless_uniform([n], seeds[1]) < spec.prob
    if math.isinf(spec.magnitude_std):
        levels = tf.random.stateless_uniform([n], seeds[2], 0.0, spec.magnitude)
    elif spec.magnitude_std > 0:
        levels = spec.magnitude + spec.magnitude_std * tf.random.stateless_normal([n], seeds[2])
    else:
        levels = tf.fill([n], float(spec.magnitude))
    levels = tf.clip_by_value(levels, 0.0, spec.magnitude_max)
    negate = tf.random.stateless_uniform([n], seeds[3]) > 0.5
    return TimmPlan(ops, applied, levels, _timm_args(ops, levels, negate, spec.increasing, image_size))


def _timm_op(image: tf.Tensor, op_index, arg, fill: Optional[Sequence[float]]) -> tf.Tensor:
    """Applies ``TIMM_OPS[op_index]`` with its argument (after the level function)."""
    arg = tf.cast(arg, tf.float32)
    geo = dict(interpolation="bilinear", fill=fill)
    branches = {
        "AutoContrast": lambda: image_ops.autocontrast(image),
        "Equalize": lambda: image_ops.equalize(image),
        "Invert": lambda: image_ops.invert(image),
        "Rotate": lambda: image_ops.rotate(image, arg, **geo),
        "Posterize": lambda: image_ops.posterize(image, tf.minimum(arg, 8.0)),
        "Solarize": lambda: image_ops.solarize(image, arg),
        "SolarizeAdd": lambda: image_ops.solarize_add(image, arg),
        "Color": lambda: image_ops.color(image, arg),
        "Contrast": lambda: image_ops.contrast(image, arg),
        "Brightness": lambda: image_ops.brightness(image, arg),
        "Sharpness": lambda: image_ops.sharpness(image, arg),
        "ShearX": lambda: image_ops.shear_x(image, arg, **geo),
        "ShearY": lambda: image_ops.shear_y(image, arg, **geo),
        "TranslateXRel": lambda: image_ops.affine(image, translate=(arg, 0.0), **geo),
        "TranslateYRel": lambda: image_ops.affine(image, translate=(0.0, arg), **geo),
    }
    out = tf.switch_case(tf.cast(op_index, tf.int32), [branches[name] for name in TIMM_OPS])
    out.set_shape(image.shape)
    return out


def apply_timm_plan(image: tf.Tensor, plan: TimmPlan, fill: Optional[Sequence[float]] = None) -> tf.Tensor:
    """Runs the applied ops of a :class:`TimmPlan` on one uint8 image, in order."""
    for step in range(int(plan.ops.shape[0])):
        image = tf.cond(plan.applied[step], lambda i=image, s=step: _timm_op(i, plan.ops[s], plan.args[s], fill),
                        lambda i=image: i)
    return image


def augment_image(image: tf.Tensor, seed, *, policy: str, num_ops: int = 2, magnitude: int = 9,
                  num_magnitude_bins: int = 31, interpolation: str = "bilinear",
                  fill: Optional[Sequence[float]] = None, timm_fill: Optional[Sequence[float]] = None) -> tf.Tensor:
    """Applies ``policy`` (one of :data:`AUTO_AUGMENT_POLICIES`, or a timm RandAugment string) to one uint8 image.

    ``interpolation`` ``bicubic`` samples the geometric ops bilinearly (TensorFlow's projective
    transform has nearest and bilinear only).

    Args:
        fill: torchvision's policies' fill of the geometric ops (None: black, torchvision's default).
        timm_fill: timm's fill (its ``img_mean``, the mean pixel); None: timm's default grey 128.
    """
    if policy.startswith("rand-") or policy == "rand":
        spec = parse_timm_rand_augment(policy)
        plan = timm_rand_augment_plan(seed, spec, _size(image))
        return apply_timm_plan(image, plan, list(timm_fill) if timm_fill is not None else [128, 128, 128])
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
