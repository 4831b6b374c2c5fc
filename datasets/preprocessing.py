"""Image preprocessing shared by every file-based dataset (TFRecords and image folders).

Training: sample a distorted box the way the recipe does (min object covered 0.1, aspect 3/4..4/3,
area 8%..100%, 10 attempts), decode only that crop of the JPEG, resize it to the model's input
size, flip it horizontally with probability 1/2 decided per image, and normalise.
Evaluation: resize the shorter side to the recipe's ``eval_resize`` and take the central
``input_size`` crop (torchvision's convention), or resize to ``eval_resize`` squared first
(``--eval_resize=square``, the recipe's convention); then normalise.

Both paths crop before they resize, so only the pixels that end up in the output are decoded.
When the crop is at least twice the output size, JPEGs are decoded at a reduced DCT scale
(1/2, 1/4 or 1/8), which skips most of the inverse DCT work and acts as the low-pass filter a
downscale needs. Per-image outputs are uint8; :func:`normalize` turns a batch into floats, so it
can run after batching (vectorised) or on the device.

Optional training augmentations follow the flip, on the uint8 crop (:mod:`datasets.augment`):
AutoAugment (ImageNet policy), RandAugment or TrivialAugmentWide, then random erasing, as in
torchvision's reference recipes. Mixup and cutmix are batch-level (:mod:`datasets.mixing`,
applied by :func:`datasets.pipeline.batches`).

Randomness is stateless: every image gets its own ``[2]`` seed, so the augmentation of an image
does not depend on thread scheduling and is reproducible with ``--deterministic --seed=N``. The
crop and the flip use the two halves of a split of that seed (as before augmentations existed);
the augmentations use seeds folded from it, so switching them on leaves crops and flips unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence, Tuple

import tensorflow as tf

from datasets import augment
from zoo.recipe import CHANNEL_ORDERS, IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, ModelRecipe

__all__ = [
    "EVAL_RESIZE_MODES",
    "PreprocessConfig",
    "augment_crop",
    "decode_crop",
    "eval_image",
    "normalize",
    "normalize_for",
    "train_image",
]

EVAL_RESIZE_MODES = ("shorter", "square")
_DCT_RATIOS = (1, 2, 4, 8)


@dataclass(frozen=True)
class PreprocessConfig:
    """Sizes, normalisation and augmentation parameters, taken from a model's recipe.

    Attributes:
        image_size: side of the square output, the model's input size.
        eval_resize: evaluation resize (shorter side or square side) before the central crop.
        eval_mode: ``shorter`` (torchvision) or ``square`` (the recipe's 256x256 resize).
        mean: per-channel mean, RGB, 0..1 scale.
        std: per-channel standard deviation, RGB, 0..1 scale.
        area_range: fraction of the image area a training crop covers.
        aspect_range: width/height range of a training crop.
        min_object_covered: fraction of a labelled bounding box a training crop must cover.
        max_attempts: tries to sample a valid crop before the whole image is used.
        random_flip: flip training images horizontally with probability 1/2.
        dct_scaling: decode JPEGs at a reduced DCT scale when the crop allows it.
        antialias: antialiased resize (closer to PIL, slower).
        interpolation: resize filter, ``bilinear`` or ``bicubic`` (the model recipe's).
        channel_order: ``rgb``, or ``bgr`` for caffe-style models (channels reversed before normalising).
        value_scale: the pixel scale ``mean``/``std`` refer to: 1.0 (0..1) or 255.0 (0..255).
        auto_augment: ``none``, ``imagenet`` (AutoAugment), ``ra`` (RandAugment) or ``ta_wide``
            (TrivialAugmentWide), torchvision's names.
        ra_num_ops: RandAugment's operations per image.
        ra_magnitude: RandAugment's magnitude bin, ``0 .. magnitude_bins - 1``.
        magnitude_bins: magnitude bins of RandAugment and TrivialAugmentWide (torchvision: 31).
        random_erase: probability of erasing one rectangle of a training image.
        random_erase_value: ``zero`` (the pixel that normalises to 0) or ``random`` (normal noise).
        mixup_alpha: Beta parameter of batch-level mixup; 0 for off.
        cutmix_alpha: Beta parameter of batch-level cutmix; 0 for off.
        mix_prob: probability that a batch is mixed when mixup or cutmix is on.
    """

    image_size: int = 224
    eval_resize: int = 256
    eval_mode: str = "shorter"
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    area_range: Tuple[float, float] = (0.08, 1.0)
    aspect_range: Tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    min_object_covered: float = 0.1
    max_attempts: int = 10
    random_flip: bool = True
    dct_scaling: bool = True
    antialias: bool = False
    interpolation: str = "bilinear"
    channel_order: str = "rgb"
    value_scale: float = 1.0
    auto_augment: str = "none"
    ra_num_ops: int = 2
    ra_magnitude: int = 9
    magnitude_bins: int = 31
    random_erase: float = 0.0
    random_erase_value: str = "zero"
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}")
        if self.eval_mode not in EVAL_RESIZE_MODES:
            raise ValueError(f"eval_mode must be one of {EVAL_RESIZE_MODES}, got {self.eval_mode!r}")
        if self.eval_resize < self.image_size:
            raise ValueError(
                f"eval_resize ({self.eval_resize}) must be at least image_size ({self.image_size}): "
                "the central crop is taken from the resized image."
            )
        low, high = self.area_range
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"area_range must satisfy 0 < min <= max <= 1, got {self.area_range}")
        self._check_augmentation()

    def _check_augmentation(self) -> None:
        if self.auto_augment not in augment.AUTO_AUGMENT_POLICIES:
            raise ValueError(f"auto_augment must be one of {augment.AUTO_AUGMENT_POLICIES}, got {self.auto_augment!r}")
        if self.magnitude_bins < 2:
            raise ValueError(f"magnitude_bins must be at least 2, got {self.magnitude_bins}")
        if not 0 <= self.ra_magnitude < self.magnitude_bins:
            raise ValueError(f"ra_magnitude must lie in [0, {self.magnitude_bins - 1}] (a magnitude bin), "
                             f"got {self.ra_magnitude}")
        if self.ra_num_ops < 0:
            raise ValueError(f"ra_num_ops must be >= 0, got {self.ra_num_ops}")
        for name in ("random_erase", "mix_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.random_erase_value not in augment.ERASE_VALUES:
            raise ValueError(f"random_erase_value must be one of {augment.ERASE_VALUES}, "
                             f"got {self.random_erase_value!r}")
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ValueError(f"mixup_alpha and cutmix_alpha must be >= 0 (0: off), got {self.mixup_alpha} "
                             f"and {self.cutmix_alpha}")

    @property
    def mixes_batches(self) -> bool:
        """Whether training batches are mixed (mixup or cutmix), which makes their labels soft."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    @classmethod
    def from_recipe(cls, recipe: ModelRecipe, **overrides) -> PreprocessConfig:
        """The configuration for ``recipe`` (already scaled to ``--image_size``), with overrides.

        Overrides whose value is None are ignored, so optional flags can be passed through.
        ``train_crop_size`` and ``val_crop_size`` (torchvision's names) are checks, not fields: the
        model is built for ``recipe.input_size``, so both crops must be that size.

        Raises:
            ValueError: a crop size differs from the model's input size, or ``eval_resize`` is smaller.
        """
        overrides = {k: v for k, v in overrides.items() if v is not None}
        for name in ("train_crop_size", "val_crop_size"):
            crop = overrides.pop(name, None)
            if crop is not None and crop != recipe.input_size:
                raise ValueError(f"--{name}={crop} differs from the model's input size {recipe.input_size} "
                                 "(--image_size): the model is built for one size; make them equal.")
        if overrides.get("eval_resize", recipe.input_size) < recipe.input_size:
            raise ValueError(f"--val_resize_size={overrides['eval_resize']} is smaller than the crop "
                             f"{recipe.input_size}: the central crop is taken from the resized image.")
        config = cls(image_size=recipe.input_size, eval_resize=recipe.eval_resize,
                     mean=tuple(recipe.mean), std=tuple(recipe.std), interpolation=recipe.interpolation,
                     channel_order=recipe.channel_order, value_scale=recipe.value_scale)
        return replace(config, **{k: v for k, v in overrides.items() if v is not None})


# -- decoding ---------------------------------------------------------------------------------------

def _dct_ratio(crop_h: tf.Tensor, crop_w: tf.Tensor, out_size: int) -> tf.Tensor:
    """Index into ``_DCT_RATIOS`` of the largest ratio that keeps the crop >= ``out_size``."""
    shorter = tf.minimum(crop_h, crop_w)
    index = tf.constant(0, tf.int32)
    for i, r in enumerate(_DCT_RATIOS[1:], start=1):
        index = tf.where(shorter >= r * out_size, tf.constant(i, tf.int32), index)
    return index


def _decode_jpeg_crop(encoded, window, out_size: int, dct_scaling: bool) -> tf.Tensor:
    """Decodes ``window`` = [y, x, h, w] (full-scale pixels) of a JPEG, maybe at reduced scale."""
    if not dct_scaling:
        return tf.io.decode_and_crop_jpeg(encoded, window, channels=3)

    def branch(ratio: int):
        # The crop window of a scaled decode is in scaled pixels; flooring keeps it inside the
        # scaled image (whose sides are ceil(side / ratio)) and non-empty (h, w >= ratio).
        def fn():
            scaled = tf.stack([window[0] // ratio, window[1] // ratio, window[2] // ratio, window[3] // ratio])
            return tf.io.decode_and_crop_jpeg(encoded, scaled, channels=3, ratio=ratio)
        return fn

    index = _dct_ratio(window[2], window[3], out_size)
    return tf.switch_case(index, [branch(r) for r in _DCT_RATIOS])


def _image_shape(encoded) -> tf.Tensor:
    """[height, width] of an encoded JPEG (header only) or any other format (full decode)."""
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.extract_jpeg_shape(encoded)[:2],
        lambda: tf.shape(_decode_any(encoded))[:2],
    )


def _decode_any(encoded) -> tf.Tensor:
    return tf.io.decode_image(encoded, channels=3, expand_animations=False)


def decode_crop(encoded, window, out_size: int, dct_scaling: bool = True) -> tf.Tensor:
    """Decodes the ``window`` = [y, x, h, w] of an encoded image to uint8 RGB.

    JPEGs decode only the window, at a reduced DCT scale when the window's shorter side is at
    least twice ``out_size``; other formats (PNG, GIF, BMP) decode whole and are then cropped.

    Args:
        encoded: scalar string tensor, the file's bytes.
        window: int32 [4] tensor: offset y, offset x, height, width in full-scale pixels.
        out_size: the size the crop will be resized to (bounds the DCT scale).
        dct_scaling: allow reduced-scale JPEG decoding.

    Returns:
        uint8 tensor [h', w', 3]; h', w' are ``window``'s size or that size divided by the DCT ratio.
    """
    window = tf.cast(window, tf.int32)
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: _decode_jpeg_crop(encoded, window, out_size, dct_scaling),
        lambda: _decode_any(encoded)[window[0]:window[0] + window[2], window[1]:window[1] + window[3]],
    )


def _resize(image: tf.Tensor, size: int, antialias: bool, method: str = "bilinear") -> tf.Tensor:
    """Resize to size x size (``bilinear`` or ``bicubic``), rounded back to uint8 (as PIL does)."""
    resized = tf.image.resize(image, [size, size], method=method, antialias=antialias)
    resized = tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)
    resized.set_shape([size, size, 3])
    return resized


# -- the two paths ----------------------------------------------------------------------------------

def train_image(encoded, seed, config: PreprocessConfig, bboxes: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Random-resized crop and per-image random flip of one encoded image.

    Args:
        encoded: scalar string tensor, the image file's bytes.
        seed: int32/int64 [2] tensor, this image's own seed.
        config: the preprocessing parameters.
        bboxes: float [N, 4] tensor of (ymin, xmin, ymax, xmax) in 0..1, or None/empty for the
            whole image. A crop must cover ``min_object_covered`` of one box.

    Returns:
        uint8 [image_size, image_size, 3].
    """
    seed = tf.cast(seed, tf.int64)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = _image_shape(encoded)
    if bboxes is None:
        bboxes = tf.zeros([0, 4], tf.float32)
    bboxes = tf.clip_by_value(tf.reshape(tf.cast(bboxes, tf.float32), [1, -1, 4]), 0.0, 1.0)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.concat([shape, [3]], 0), bboxes, seed=crop_seed,
        min_object_covered=config.min_object_covered, aspect_ratio_range=config.aspect_range,
        area_range=config.area_range, max_attempts=config.max_attempts, use_image_if_no_bounding_boxes=True,
    )
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    crop = decode_crop(encoded, window, config.image_size, config.dct_scaling)
    image = _resize(crop, config.image_size, config.antialias, config.interpolation)
    if config.random_flip:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    return augment_crop(image, seed, config)


def augment_crop(image: tf.Tensor, seed, config: PreprocessConfig) -> tf.Tensor:
    """The configured AutoAugment-family policy, then random erasing, of one uint8 training crop.

    Args:
        image: uint8 [size, size, 3], after the crop and flip.
        seed: the image's own int64 [2] seed; each augmentation uses a seed folded from it.
        config: the preprocessing parameters.
    """
    if config.auto_augment != "none":
        image = augment.augment_image(
            image, tf.random.experimental.stateless_fold_in(seed, 1), policy=config.auto_augment,
            num_ops=config.ra_num_ops, magnitude=config.ra_magnitude, num_magnitude_bins=config.magnitude_bins,
            interpolation=config.interpolation)
    if config.random_erase > 0:
        image = augment.random_erase(
            image, tf.random.experimental.stateless_fold_in(seed, 2), config.random_erase, mean=config.mean,
            std=config.std, value_scale=config.value_scale, bgr=config.channel_order == "bgr",
            value=config.random_erase_value)
    return image


def eval_window(shape: tf.Tensor, config: PreprocessConfig) -> tf.Tensor:
    """The [y, x, h, w] region of the original image that the evaluation crop shows.

    Resizing to ``eval_resize`` and cropping ``image_size`` centrally shows the central
    ``image_size / eval_resize`` part of the image (per side); cropping that first and resizing
    it to ``image_size`` is the same geometry at a fraction of the decoding cost.
    """
    height = tf.cast(shape[0], tf.float32)
    width = tf.cast(shape[1], tf.float32)
    fraction = config.image_size / config.eval_resize
    if config.eval_mode == "shorter":
        side = tf.minimum(height, width) * fraction
        crop_h, crop_w = side, side
    else:
        crop_h, crop_w = height * fraction, width * fraction
    crop_h = tf.clip_by_value(tf.round(crop_h), 1.0, height)
    crop_w = tf.clip_by_value(tf.round(crop_w), 1.0, width)
    offset_y = tf.round((height - crop_h) / 2.0)
    offset_x = tf.round((width - crop_w) / 2.0)
    return tf.cast(tf.stack([offset_y, offset_x, crop_h, crop_w]), tf.int32)


def eval_image(encoded, config: PreprocessConfig) -> tf.Tensor:
    """Central crop (after the recipe's resize) of one encoded image, uint8 [size, size, 3]."""
    window = eval_window(_image_shape(encoded), config)
    crop = decode_crop(encoded, window, config.image_size, config.dct_scaling)
    return _resize(crop, config.image_size, config.antialias, config.interpolation)


def normalize(images: tf.Tensor, mean: Sequence[float], std: Sequence[float],
              dtype: tf.DType = tf.float32, *, value_scale: float = 1.0, bgr: bool = False) -> tf.Tensor:
    """uint8 RGB images (any leading shape, channels last) -> ``(x * value_scale / 255 - mean) / std``.

    One multiply-add per value: the divisions and subtraction are folded into constants.

    Args:
        images: uint8 (or float 0..255) RGB images.
        mean, std: per channel, in the output's channel order, on the ``value_scale`` scale.
        dtype: output dtype.
        value_scale: 1.0 for statistics on a 0..1 scale (torchvision), 255.0 for 0..255 (caffe).
        bgr: reverse the channels first (caffe-style models).
    """
    scale = tf.constant([value_scale / (255.0 * s) for s in std], tf.float32)
    offset = tf.constant([-m / s for m, s in zip(mean, std)], tf.float32)
    x = tf.cast(images, tf.float32)
    if bgr:
        x = tf.reverse(x, axis=[-1])
    return tf.cast(x * scale + offset, dtype)


def normalize_for(images: tf.Tensor, config: PreprocessConfig, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """:func:`normalize` with a configuration's statistics, scale and channel order (the model recipe's)."""
    return normalize(images, config.mean, config.std, dtype, value_scale=config.value_scale,
                     bgr=config.channel_order == "bgr")
