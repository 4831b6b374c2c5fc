"""Image preprocessing shared by every file-based dataset (TFRecords and image folders).

Evaluation is torchvision's transform exactly: ``Resize(eval_resize, interpolation)`` of the shorter
side (or ``Resize((eval_resize, eval_resize))`` for ``eval_mode="square"``, the Ascend recipe's),
``CenterCrop(image_size)``, on the image PIL decodes. JPEGs are decoded with the accurate integer IDCT
(libjpeg's default, which PIL uses; TensorFlow's own default is the fast one, about one grey level
off on average) at full scale, the resize is Pillow's antialiased two-pass filter with its
fixed-point rounding (:mod:`datasets.resize`), and the crop offsets round as torchvision's. Only the
output pixels of the central crop are computed, from only the input region their filter taps read
(decoded with a margin, so the pixels equal those of a whole decode): the result equals
torchvision's pixel for pixel.

Training: a crop window (:mod:`datasets.crop`: torchvision's ``RandomResizedCrop`` sampler by
default, or TensorFlow's bounding-box sampler), then either the fast path (decode only the window,
at a reduced DCT scale when it is at least twice the output, and resize with TensorFlow's filter) or
the exact one (decode the window at full scale and resize it with Pillow's filter: torchvision's
``RandomResizedCrop`` output for the same window), a horizontal flip with probability 1/2 decided per
image, then the optional per-image augmentations on the uint8 crop: an AutoAugment-family policy
(:mod:`datasets.augment`: AutoAugment, RandAugment, TrivialAugmentWide, timm's RandAugment), colour
jitter, Inception's colour distortion and PCA lighting noise (:mod:`datasets.color`), and random
erasing, in that order. Mixup and cutmix are batch-level (:mod:`datasets.mixing`, applied by
:func:`datasets.pipeline.batches`). Per-image outputs are uint8; :func:`normalize` turns a batch into
floats, so it can run after batching (vectorised) or on the device.

Randomness is stateless: every image gets its own ``[2]`` seed, so the augmentation of an image
does not depend on thread scheduling and is reproducible with ``--deterministic --seed=N``. The
crop and the flip use the two halves of a split of that seed; every other draw uses a seed folded
from it (its own constant per augmentation), so switching an augmentation on leaves the crops,
flips and other augmentations unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence, Tuple

import tensorflow as tf

from datasets import augment, color, crop, resize
from run_config.groups import DISTORT_COLOR_MODES, EVAL_RESIZE_MODES, TRAIN_INTERPOLATIONS, TRAIN_RESIZE_MODES
from zoo.recipe import CHANNEL_ORDERS, IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, ModelRecipe

__all__ = [
    "DISTORT_COLOR_MODES",
    "EVAL_RESIZE_MODES",
    "TRAIN_INTERPOLATIONS",
    "TRAIN_RESIZE_MODES",
    "PreprocessConfig",
    "augment_crop",
    "decode_crop",
    "decode_region",
    "eval_geometry",
    "eval_image",
    "normalize",
    "normalize_for",
    "train_image",
]

_DCT_RATIOS = (1, 2, 4, 8)
# Columns and rows decoded beyond a JPEG region: libjpeg's chroma upsampling reads neighbours, so a
# cropped decode differs from a whole decode in its outermost column; 16 pixels is one MCU.
_DECODE_MARGIN = 16
# libjpeg's accurate integer IDCT, PIL's (TensorFlow's default is the fast one, ~1 grey level off on average;
# measured: no slower with libjpeg-turbo's SIMD code).
_DCT_METHOD = "INTEGER_ACCURATE"
# Constants folded into an image's seed, one per augmentation (1 and 2 predate the others).
_SEED_AUTO_AUGMENT, _SEED_ERASE, _SEED_JITTER, _SEED_DISTORT, _SEED_LIGHTING, _SEED_INTERPOLATION = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class PreprocessConfig:
    """Sizes, normalisation and augmentation parameters, taken from a model's recipe.

    Attributes:
        image_size: side of the square output, the model's input size.
        eval_resize: evaluation resize (shorter side or square side) before the central crop.
        eval_mode: ``shorter`` (torchvision) or ``square`` (the Ascend recipe's 256x256 resize).
        mean: per-channel mean, RGB, 0..1 scale.
        std: per-channel standard deviation, RGB, 0..1 scale.
        area_range: fraction of the image area a training crop covers (torchvision's ``scale``).
        aspect_range: width/height range of a training crop (torchvision's ``ratio``).
        min_object_covered: ``distorted_bbox`` only: fraction of a labelled bounding box a crop must cover.
        max_attempts: tries to sample a valid crop before the fallback (torchvision: 10).
        crop_sampler: ``torchvision`` (``RandomResizedCrop.get_params``: log-uniform ratio, central
            fallback clamped to the ratio range; bounding boxes are not used) or ``distorted_bbox``
            (TensorFlow's ``sample_distorted_bounding_box``, steered by the records' boxes).
        random_flip: flip training images horizontally with probability 1/2.
        train_resize: ``fast`` (decode only the crop, at a reduced DCT scale when ``dct_scaling``
            allows, and resize with TensorFlow's filter) or ``exact`` (decode the crop at full scale and
            resize with Pillow's filter, as torchvision's ``RandomResizedCrop`` on PIL images).
        dct_scaling: ``fast`` training resize only: decode JPEG crops at 1/2, 1/4 or 1/8 scale when the
            crop is at least twice the output.
        antialias: ``fast`` training resize only: TensorFlow's antialiased resize (closer to PIL).
            Evaluation is always Pillow's filter.
        interpolation: resize filter, ``bilinear`` or ``bicubic`` (the model recipe's).
        train_interpolation: the training resize filter: None for ``interpolation``, ``bilinear``,
            ``bicubic`` or ``random`` (one of the two per image, timm's ``interpolation='random'``).
        channel_order: ``rgb``, or ``bgr`` for caffe-style models (channels reversed before normalising).
        value_scale: the pixel scale ``mean``/``std`` refer to: 1.0 (0..1) or 255.0 (0..255).
        auto_augment: ``none``, ``imagenet`` (AutoAugment), ``ra`` (RandAugment), ``ta_wide``
            (TrivialAugmentWide), torchvision's names, or a timm RandAugment string such as
            ``rand-m9-mstd0.5-inc1`` (:func:`datasets.augment.parse_timm_rand_augment`).
        ra_num_ops: RandAugment's operations per image.
        ra_magnitude: RandAugment's magnitude bin, ``0 .. magnitude_bins - 1``.
        magnitude_bins: magnitude bins of RandAugment and TrivialAugmentWide (torchvision: 31).
        color_jitter: torchvision's ``ColorJitter(brightness, contrast, saturation, hue)`` strengths;
            all 0 for off. brightness, contrast and saturation >= 0; hue in [0, 0.5].
        distort_color: TF-slim Inception's ``distort_color``: ``none``, ``fast`` (brightness and
            saturation in one order) or ``full`` (four ops, one of four orders per image).
        lighting_std: AlexNet's PCA lighting noise (fb.resnet.torch's ``Lighting``): the standard
            deviation of the eigenvalue weights (0.1 in the references); 0 for off.
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
    crop_sampler: str = "torchvision"
    random_flip: bool = True
    train_resize: str = "fast"
    dct_scaling: bool = True
    antialias: bool = True
    interpolation: str = "bilinear"
    train_interpolation: Optional[str] = None
    channel_order: str = "rgb"
    value_scale: float = 1.0
    auto_augment: str = "none"
    ra_num_ops: int = 2
    ra_magnitude: int = 9
    magnitude_bins: int = 31
    color_jitter: Tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    distort_color: str = "none"
    lighting_std: float = 0.0
    random_erase: float = 0.0
    random_erase_value: str = "zero"
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        if self.train_interpolation is not None and self.train_interpolation not in TRAIN_INTERPOLATIONS:
            raise ValueError(f"train_interpolation must be None (the interpolation) or one of {TRAIN_INTERPOLATIONS}, "
                             f"got {self.train_interpolation!r}")
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
        low, high = self.aspect_range
        if not 0.0 < low <= high:
            raise ValueError(f"aspect_range must satisfy 0 < min <= max, got {self.aspect_range}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.crop_sampler not in crop.CROP_SAMPLERS:
            raise ValueError(f"crop_sampler must be one of {crop.CROP_SAMPLERS}, got {self.crop_sampler!r}")
        if self.train_resize not in TRAIN_RESIZE_MODES:
            raise ValueError(f"train_resize must be one of {TRAIN_RESIZE_MODES}, got {self.train_resize!r}")
        self._check_augmentation()

    def _check_augmentation(self) -> None:
        augment.check_policy(self.auto_augment)
        if self.magnitude_bins < 2:
            raise ValueError(f"magnitude_bins must be at least 2, got {self.magnitude_bins}")
        if not 0 <= self.ra_magnitude < self.magnitude_bins:
            raise ValueError(f"ra_magnitude must lie in [0, {self.magnitude_bins - 1}] (a magnitude bin), "
                             f"got {self.ra_magnitude}")
        if self.ra_num_ops < 0:
            raise ValueError(f"ra_num_ops must be >= 0, got {self.ra_num_ops}")
        color.check_jitter(self.color_jitter)
        # A list (from a flag or JSON) becomes the tuple the frozen dataclass compares and hashes.
        object.__setattr__(self, "color_jitter", tuple(float(v) for v in self.color_jitter))
        if self.distort_color not in DISTORT_COLOR_MODES:
            raise ValueError(f"distort_color must be one of {DISTORT_COLOR_MODES}, got {self.distort_color!r}")
        if not self.lighting_std >= 0.0:
            raise ValueError(f"lighting_std must be >= 0 (0: off), got {self.lighting_std}")
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
            crop_size = overrides.pop(name, None)
            if crop_size is not None and crop_size != recipe.input_size:
                raise ValueError(f"--{name}={crop_size} differs from the model's input size {recipe.input_size} "
                                 "(--image_size): the model is built for one size; make them equal.")
        if overrides.get("eval_resize", recipe.input_size) < recipe.input_size:
            raise ValueError(f"--val_resize_size={overrides['eval_resize']} is smaller than the crop "
                             f"{recipe.input_size}: the central crop is taken from the resized image.")
        config = cls(image_size=recipe.input_size, eval_resize=recipe.eval_resize,
                     mean=tuple(recipe.mean), std=tuple(recipe.std), interpolation=recipe.interpolation,
                     channel_order=recipe.channel_order, value_scale=recipe.value_scale)
        return replace(config, **overrides)


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
        return tf.io.decode_and_crop_jpeg(encoded, window, channels=3, dct_method=_DCT_METHOD)

    def branch(ratio: int):
        # The crop window of a scaled decode is in scaled pixels; flooring keeps it inside the
        # scaled image (whose sides are ceil(side / ratio)) and non-empty (h, w >= ratio).
        def fn():
            scaled = tf.stack([window[0] // ratio, window[1] // ratio, window[2] // ratio, window[3] // ratio])
            return tf.io.decode_and_crop_jpeg(encoded, scaled, channels=3, ratio=ratio, dct_method=_DCT_METHOD)
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
    """Decodes the ``window`` = [y, x, h, w] of an encoded image to uint8 RGB, fast (training).

    JPEGs decode only the window (accurate integer IDCT), at a reduced DCT scale when the window's
    shorter side is at least twice ``out_size``; other formats (PNG, GIF, BMP) decode whole and are
    then cropped.

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


def decode_region(encoded, window, shape=None) -> tf.Tensor:
    """The ``window`` = [y, x, h, w] of an image exactly as PIL decodes the whole file, uint8 RGB.

    JPEGs use the accurate integer IDCT (libjpeg's default, PIL's) and decode the window plus a
    margin of ``_DECODE_MARGIN`` pixels, which is then cut off: the pixels equal a whole decode's.
    Other formats decode whole.

    Args:
        encoded: scalar string tensor, the file's bytes.
        window: int32 [4]: offset y, offset x, height, width.
        shape: the image's [height, width] if known (saves reading the header again).
    """
    window = tf.cast(window, tf.int32)
    y, x, h, w = window[0], window[1], window[2], window[3]

    def jpeg():
        size = tf.io.extract_jpeg_shape(encoded)[:2] if shape is None else tf.cast(shape, tf.int32)
        y0, x0 = tf.maximum(y - _DECODE_MARGIN, 0), tf.maximum(x - _DECODE_MARGIN, 0)
        y1 = tf.minimum(y + h + _DECODE_MARGIN, size[0])
        x1 = tf.minimum(x + w + _DECODE_MARGIN, size[1])
        region = tf.io.decode_and_crop_jpeg(encoded, tf.stack([y0, x0, y1 - y0, x1 - x0]), channels=3,
                                            dct_method=_DCT_METHOD)
        return region[y - y0:y - y0 + h, x - x0:x - x0 + w]

    return tf.cond(tf.io.is_jpeg(encoded), jpeg, lambda: _decode_any(encoded)[y:y + h, x:x + w])


def _resize(image: tf.Tensor, size: int, antialias: bool, method: str = "bilinear") -> tf.Tensor:
    """TensorFlow's resize to size x size (``bilinear`` or ``bicubic``), rounded back to uint8."""
    resized = tf.image.resize(image, [size, size], method=method, antialias=antialias)
    resized = tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)
    resized.set_shape([size, size, 3])
    return resized


def _with_filter(method, fn):
    """``fn(name)`` for a filter name, or for a bool tensor (True: bicubic) chosen per image."""
    if isinstance(method, str):
        return fn(method)
    return tf.cond(method, lambda: fn("bicubic"), lambda: fn("bilinear"))


# -- the two paths ----------------------------------------------------------------------------------

def _train_filter(seed, config: PreprocessConfig):
    """The training resize filter: a name, or a bool tensor (bicubic?) drawn per image for ``random``."""
    method = config.train_interpolation or config.interpolation
    if method != "random":
        return method
    coin_seed = tf.random.experimental.stateless_fold_in(seed, _SEED_INTERPOLATION)
    return tf.random.stateless_uniform([], coin_seed, 0, 2, dtype=tf.int32) > 0


def train_image(encoded, seed, config: PreprocessConfig, bboxes: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Random-resized crop, per-image random flip and augmentations of one encoded image.

    Args:
        encoded: scalar string tensor, the image file's bytes.
        seed: int32/int64 [2] tensor, this image's own seed.
        config: the preprocessing parameters.
        bboxes: float [N, 4] tensor of (ymin, xmin, ymax, xmax) in 0..1, or None/empty for the
            whole image; used by the ``distorted_bbox`` sampler (a crop must cover
            ``min_object_covered`` of one box).

    Returns:
        uint8 [image_size, image_size, 3].
    """
    seed = tf.cast(seed, tf.int64)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = _image_shape(encoded)
    window = crop.crop_window(config.crop_sampler, shape[0], shape[1], crop_seed, bboxes=bboxes,
                              scale=config.area_range, ratio=config.aspect_range, attempts=config.max_attempts,
                              min_object_covered=config.min_object_covered)
    size = config.image_size
    method = _train_filter(seed, config)
    if config.train_resize == "exact":
        region = decode_region(encoded, window, shape)
        image = _with_filter(method, lambda name: resize.resize_exact(region, size, size, name))
        image.set_shape([size, size, 3])
    else:
        region = decode_crop(encoded, window, size, config.dct_scaling)
        image = _with_filter(method, lambda name: _resize(region, size, config.antialias, name))
    if config.random_flip:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    return augment_crop(image, seed, config)


def augment_crop(image: tf.Tensor, seed, config: PreprocessConfig) -> tf.Tensor:
    """The configured per-image augmentations of one uint8 training crop, after the crop and flip.

    In order: the AutoAugment-family policy, colour jitter, Inception's colour distortion, PCA lighting
    noise, random erasing; each with a seed folded from the image's own.

    Args:
        image: uint8 [size, size, 3], after the crop and flip.
        seed: the image's own int64 [2] seed.
        config: the preprocessing parameters.
    """
    seed = tf.cast(seed, tf.int64)

    def fold(constant):
        return tf.random.experimental.stateless_fold_in(seed, constant)

    if config.auto_augment != "none":
        fill = augment.erase_fill(config.mean, config.value_scale, config.channel_order == "bgr")
        image = augment.augment_image(
            image, fold(_SEED_AUTO_AUGMENT), policy=config.auto_augment, num_ops=config.ra_num_ops,
            magnitude=config.ra_magnitude, num_magnitude_bins=config.magnitude_bins,
            interpolation=config.interpolation, timm_fill=fill)
    if any(config.color_jitter):
        image = color.color_jitter(image, fold(_SEED_JITTER), *config.color_jitter)
    if config.distort_color != "none":
        image = color.distort_color(image, fold(_SEED_DISTORT), fast_mode=config.distort_color == "fast")
    if config.lighting_std > 0:
        image = color.lighting(image, fold(_SEED_LIGHTING), config.lighting_std)
    if config.random_erase > 0:
        image = augment.random_erase(
            image, fold(_SEED_ERASE), config.random_erase, mean=config.mean,
            std=config.std, value_scale=config.value_scale, bgr=config.channel_order == "bgr",
            value=config.random_erase_value)
    return image


def eval_geometry(height, width, config: PreprocessConfig):
    """torchvision's evaluation geometry for an image of ``height`` x ``width``.

    Returns:
        (resized height, resized width, crop top, crop left) as int32 scalars: ``Resize`` of the
        shorter side to ``eval_resize`` (the longer side truncated: ``int(size * long / short)``), or
        to ``eval_resize`` squared, then ``CenterCrop``'s offsets ``int(round((side - crop) / 2))``.
    """
    if config.eval_mode == "shorter":
        out_h, out_w = resize.shorter_side_size(height, width, config.eval_resize)
    else:
        out_h = out_w = tf.constant(config.eval_resize, tf.int32)
    return (out_h, out_w, resize.center_crop_offset(out_h, config.image_size),
            resize.center_crop_offset(out_w, config.image_size))


def eval_image(encoded, config: PreprocessConfig) -> tf.Tensor:
    """torchvision's evaluation transform of one encoded image, exactly: uint8 [size, size, 3].

    ``Resize(eval_resize, interpolation)`` (or the square resize), ``CenterCrop(image_size)`` on the
    image PIL decodes; only the crop's pixels are computed, from only the region of the file they read.
    """
    shape = _image_shape(encoded)
    height, width = shape[0], shape[1]
    out_h, out_w, top, left = eval_geometry(height, width, config)
    size = config.image_size
    rows = resize.axis_plan(height, out_h, config.interpolation, top, size)
    cols = resize.axis_plan(width, out_w, config.interpolation, left, size)
    window = tf.stack([rows.first, cols.first, rows.end - rows.first, cols.end - cols.first])
    region = decode_region(encoded, window, shape)
    image = resize.resample(region, rows, cols, origin=(rows.first, cols.first),
                            vertical_first_=resize.vertical_first(height, width, out_h, out_w))
    image.set_shape([size, size, 3])
    return image


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
