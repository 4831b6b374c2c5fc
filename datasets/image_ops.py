"""The image operations of AutoAugment, RandAugment and TrivialAugmentWide, on one uint8 image.

Each function takes a uint8 ``[H, W, 3]`` RGB tensor and returns one of the same shape and dtype,
with torchvision's semantics for uint8 tensors (``torchvision.transforms.functional``):

* colour ops blend with a degenerate image as ``factor * image + (1 - factor) * degenerate``,
  clipped to 0..255 and truncated to uint8 (torch's ``.to(uint8)``): brightness blends with black,
  color (saturation) with the grey image (``0.2989 R + 0.587 G + 0.114 B``, truncated), contrast with
  the mean grey level, sharpness with the 3x3 smoothed image (border pixels kept);
* hue rotates the hue in torchvision's float HSV (``adjust_hue``: ``x / 255``, the shift modulo 1,
  back to uint8 as ``int(x * 255.999)``);
* posterize keeps the ``bits`` high bits, solarize inverts pixels ``>= threshold``, solarize_add adds to
  the pixels below a threshold (timm's ``solarize_add``), autocontrast stretches each channel to
  0..255, equalize is PIL's histogram equalisation per channel;
* geometric ops (shear, translate, rotate) use torchvision's inverse affine matrix with pixel
  centres at half-integers around the image centre (shears about the top-left corner, rotations
  about the centre, counter-clockwise for positive angles), ``nearest`` or ``bilinear`` sampling
  rounded back to uint8, and ``fill`` outside the image: None for black without a mask (torchvision's
  default), or per-channel values blended in through a mask as torchvision does.

Magnitudes may be tensors, so one graph serves every draw of a policy.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import tensorflow as tf

__all__ = [
    "GEOMETRIC_INTERPOLATIONS",
    "affine",
    "autocontrast",
    "brightness",
    "color",
    "contrast",
    "equalize",
    "grayscale",
    "hue",
    "invert",
    "posterize",
    "rotate",
    "sharpness",
    "shear_x",
    "shear_y",
    "solarize",
    "solarize_add",
    "translate_x",
    "translate_y",
]

# TensorFlow's projective transform samples with these two filters (bicubic is not offered).
GEOMETRIC_INTERPOLATIONS = ("nearest", "bilinear")


def _to_uint8_truncated(x: tf.Tensor) -> tf.Tensor:
    """float -> uint8 as torch's ``.clamp(0, 255).to(uint8)``: clipped, then truncated."""
    return tf.cast(tf.floor(tf.clip_by_value(x, 0.0, 255.0)), tf.uint8)


def _blend(image: tf.Tensor, degenerate, factor) -> tf.Tensor:
    # torchvision computes 1 - factor in double precision (its factor is a Python float), then multiplies in
    # float32: a Python factor stays exact, a tensor's value is widened first.
    if isinstance(factor, (int, float)):
        complement = tf.constant(1.0 - factor, tf.float32)
    else:
        complement = tf.cast(1.0 - tf.cast(factor, tf.float64), tf.float32)
    factor = tf.cast(factor, tf.float32)
    return _to_uint8_truncated(factor * tf.cast(image, tf.float32) + complement * degenerate)


def grayscale(image: tf.Tensor) -> tf.Tensor:
    """float32 ``[H, W, 1]`` grey levels, truncated to integers as torchvision does for uint8."""
    x = tf.cast(image, tf.float32)
    grey = 0.2989 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    return tf.floor(grey)[..., None]


def brightness(image: tf.Tensor, factor) -> tf.Tensor:
    """Blend with black: ``factor`` 1 keeps the image, 0 gives black."""
    return _blend(image, 0.0, factor)


def color(image: tf.Tensor, factor) -> tf.Tensor:
    """Saturation: blend with the grey image."""
    return _blend(image, grayscale(image), factor)


def contrast(image: tf.Tensor, factor) -> tf.Tensor:
    """Blend with the mean grey level of the image."""
    return _blend(image, tf.reduce_mean(grayscale(image)), factor)


def sharpness(image: tf.Tensor, factor) -> tf.Tensor:
    """Blend with the image smoothed by [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 (border pixels kept)."""
    x = tf.cast(image, tf.float32)
    height, width = image.shape[0], image.shape[1]
    if height is None or width is None or height <= 2 or width <= 2:
        return image
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    smooth = tf.round(tf.nn.depthwise_conv2d(x[None], kernel, [1, 1, 1, 1], "VALID")[0])
    interior = tf.pad(tf.ones([height - 2, width - 2, 3], tf.bool), [[1, 1], [1, 1], [0, 0]])
    degenerate = tf.where(interior, tf.pad(smooth, [[1, 1], [1, 1], [0, 0]]), x)
    return _blend(image, degenerate, factor)


def posterize(image: tf.Tensor, bits) -> tf.Tensor:
    """Keeps the ``bits`` (0..8) most significant bits of every value."""
    bits = tf.cast(bits, tf.int32)
    mask = tf.cast(tf.bitwise.bitwise_and(tf.bitwise.left_shift(255, 8 - bits), 255), tf.uint8)
    return tf.bitwise.bitwise_and(image, mask)


def solarize(image: tf.Tensor, threshold) -> tf.Tensor:
    """Inverts the values at or above ``threshold`` (0..255 scale)."""
    return tf.where(tf.cast(image, tf.float32) >= tf.cast(threshold, tf.float32), 255 - image, image)


def solarize_add(image: tf.Tensor, addition, threshold=128) -> tf.Tensor:
    """Adds ``addition`` to the values below ``threshold``, saturating at 255 (timm's ``solarize_add``)."""
    x = tf.cast(image, tf.int32)
    added = tf.minimum(x + tf.cast(addition, tf.int32), 255)
    return tf.cast(tf.where(x < tf.cast(threshold, tf.int32), added, x), tf.uint8)


def _rgb_to_hsv(x: tf.Tensor) -> tf.Tensor:
    """float32 RGB in 0..1 -> HSV in 0..1, the formulas of torchvision's ``_rgb2hsv``."""
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    maxc = tf.reduce_max(x, axis=-1)
    minc = tf.reduce_min(x, axis=-1)
    flat = tf.equal(maxc, minc)
    chroma = maxc - minc
    ones = tf.ones_like(maxc)
    saturation = chroma / tf.where(flat, ones, maxc)
    divisor = tf.where(flat, ones, chroma)
    rc, gc, bc = (maxc - r) / divisor, (maxc - g) / divisor, (maxc - b) / divisor
    is_r = tf.equal(maxc, r)
    is_g = tf.logical_and(tf.equal(maxc, g), tf.logical_not(is_r))
    is_b = tf.logical_not(tf.logical_or(is_r, tf.equal(maxc, g)))
    zero = tf.zeros_like(maxc)
    hue = (tf.where(is_r, bc - gc, zero) + tf.where(is_g, 2.0 + rc - bc, zero)
           + tf.where(is_b, 4.0 + gc - rc, zero))
    hue = tf.math.floormod(hue / 6.0 + 1.0, 1.0)
    return tf.stack([hue, saturation, maxc], axis=-1)


def _hsv_to_rgb(x: tf.Tensor) -> tf.Tensor:
    """float32 HSV in 0..1 -> RGB, the formulas of torchvision's ``_hsv2rgb``."""
    h, s, v = x[..., 0], x[..., 1], x[..., 2]
    sector = tf.floor(h * 6.0)
    f = h * 6.0 - sector
    sector = tf.math.floormod(tf.cast(sector, tf.int32), 6)
    p = tf.clip_by_value(v * (1.0 - s), 0.0, 1.0)
    q = tf.clip_by_value(v * (1.0 - s * f), 0.0, 1.0)
    t = tf.clip_by_value(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    # (r, g, b) per sector 0..5 of the hue circle.
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    channels = []
    for c in range(3):
        out = table[0][c]
        for k in range(1, 6):
            out = tf.where(tf.equal(sector, k), table[k][c], out)
        channels.append(out)
    return tf.stack(channels, axis=-1)


def hue(image: tf.Tensor, factor) -> tf.Tensor:
    """Shifts the hue by ``factor`` (in -0.5..0.5 of the colour circle), torchvision's ``adjust_hue``."""
    x = tf.cast(image, tf.float32) / 255.0
    hsv = _rgb_to_hsv(x)
    shifted = tf.math.floormod(hsv[..., 0] + tf.cast(factor, tf.float32), 1.0)
    rgb = _hsv_to_rgb(tf.stack([shifted, hsv[..., 1], hsv[..., 2]], axis=-1))
    return tf.cast(rgb * (255.0 + 1.0 - 1e-3), tf.uint8)


def invert(image: tf.Tensor) -> tf.Tensor:
    """``255 - image``."""
    return 255 - image


def autocontrast(image: tf.Tensor) -> tf.Tensor:
    """Stretches each channel linearly so its minimum becomes 0 and its maximum 255."""
    x = tf.cast(image, tf.float32)
    low = tf.reduce_min(x, axis=[0, 1])
    high = tf.reduce_max(x, axis=[0, 1])
    flat = tf.equal(high, low)  # a constant channel stays as it is
    scale = tf.where(flat, 1.0, 255.0 / tf.where(flat, 1.0, high - low))
    low = tf.where(flat, 0.0, low)
    return _to_uint8_truncated((x - low) * scale)


def _equalize_channel(channel: tf.Tensor) -> tf.Tensor:
    """PIL's equalisation of one uint8 ``[H, W]`` channel."""
    values = tf.cast(channel, tf.int32)
    hist = tf.math.bincount(tf.reshape(values, [-1]), minlength=256, maxlength=256)
    # The step ignores the pixels of the highest level present (PIL's rule).
    step = (tf.reduce_sum(hist) - hist[tf.reduce_max(values)]) // 255

    def equalized():
        lut = (tf.cumsum(hist) + step // 2) // step
        lut = tf.clip_by_value(tf.concat([[0], lut[:-1]], 0), 0, 255)
        return tf.cast(tf.gather(lut, values), tf.uint8)

    return tf.cond(step > 0, equalized, lambda: channel)


def equalize(image: tf.Tensor) -> tf.Tensor:
    """Histogram equalisation of each channel (PIL's ``ImageOps.equalize``)."""
    return tf.stack([_equalize_channel(image[..., c]) for c in range(3)], axis=-1)


# -- geometry ---------------------------------------------------------------------------------------

def _inverse_affine(angle, translate, shear, center):
    """torchvision's inverse affine matrix [6] (output -> input), in centred coordinates.

    Args:
        angle: rotation in degrees (torchvision's ``affine`` convention).
        translate: (tx, ty) pixels.
        shear: (sx, sy) in radians.
        center: (cx, cy) relative to the image centre.
    """
    rot = tf.cast(angle, tf.float32) * (math.pi / 180.0)
    sx, sy = (tf.cast(s, tf.float32) for s in shear)
    tx, ty = (tf.cast(t, tf.float32) for t in translate)
    cx, cy = center
    a = tf.cos(rot - sy) / tf.cos(sy)
    b = -tf.cos(rot - sy) * tf.tan(sx) / tf.cos(sy) - tf.sin(rot)
    c = tf.sin(rot - sy) / tf.cos(sy)
    d = -tf.sin(rot - sy) * tf.tan(sx) / tf.cos(sy) + tf.cos(rot)
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = m0 * (-cx - tx) + m1 * (-cy - ty) + cx
    m5 = m3 * (-cx - tx) + m4 * (-cy - ty) + cy
    return m0, m1, m2, m3, m4, m5


def affine(image: tf.Tensor, *, angle=0.0, translate=(0.0, 0.0), shear=(0.0, 0.0), center=None,
           interpolation: str = "nearest", fill: Optional[Sequence[float]] = None) -> tf.Tensor:
    """torchvision's ``F.affine`` (scale 1) of a uint8 ``[H, W, 3]`` image with a static size.

    Args:
        angle: degrees, torchvision's ``affine`` sign (``rotate`` passes ``-angle``).
        translate: (tx, ty) pixels; positive moves the content right/down.
        shear: (sx, sy) shear angles in radians.
        center: (x, y) in pixels from the top-left corner; None for the image centre.
        interpolation: ``nearest`` or ``bilinear``.
        fill: per-channel value of the pixels from outside the image; None for 0 without a mask.
    """
    if interpolation not in GEOMETRIC_INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {GEOMETRIC_INTERPOLATIONS}, got {interpolation!r}")
    height, width = int(image.shape[0]), int(image.shape[1])
    centre = (0.0, 0.0) if center is None else (center[0] - width * 0.5, center[1] - height * 0.5)
    m0, m1, m2, m3, m4, m5 = _inverse_affine(angle, translate, shear, centre)
    # Centred coordinates are pixel indices minus (size - 1) / 2; TensorFlow samples at pixel indices.
    ox, oy = (width - 1) * 0.5, (height - 1) * 0.5
    transform = tf.stack([m0, m1, m2 + ox - m0 * ox - m1 * oy,
                          m3, m4, m5 + oy - m3 * ox - m4 * oy, 0.0, 0.0])
    x = tf.cast(image, tf.float32)
    if fill is not None:
        x = tf.concat([x, tf.ones([height, width, 1])], axis=-1)  # the mask of pixels from inside
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=x[None], transforms=transform[None], output_shape=[height, width], fill_value=0.0,
        interpolation=interpolation.upper(), fill_mode="CONSTANT")[0]
    if fill is not None:
        out, mask = out[..., :3], out[..., 3:]
        fill_values = tf.constant([float(v) for v in fill], tf.float32) * tf.ones([3])
        if interpolation == "nearest":
            out = tf.where(mask < 0.5, fill_values, out)
        else:
            out = out * mask + (1.0 - mask) * fill_values
    out = tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)
    out.set_shape(image.shape)
    return out


def shear_x(image, magnitude, interpolation: str = "nearest", fill=None) -> tf.Tensor:
    """Horizontal shear ``x' = x + magnitude * y`` about the top-left corner."""
    return affine(image, shear=(tf.atan(tf.cast(magnitude, tf.float32)), 0.0), center=(0, 0),
                  interpolation=interpolation, fill=fill)


def shear_y(image, magnitude, interpolation: str = "nearest", fill=None) -> tf.Tensor:
    """Vertical shear about the top-left corner."""
    return affine(image, shear=(0.0, tf.atan(tf.cast(magnitude, tf.float32))), center=(0, 0),
                  interpolation=interpolation, fill=fill)


def _whole_pixels(magnitude) -> tf.Tensor:
    """``int(magnitude)``: truncation toward zero, as torchvision's translations use."""
    return tf.cast(tf.cast(magnitude, tf.int32), tf.float32)


def translate_x(image, magnitude, interpolation: str = "nearest", fill=None) -> tf.Tensor:
    """Moves the content ``int(magnitude)`` pixels right (negative: left)."""
    return affine(image, translate=(_whole_pixels(magnitude), 0.0), interpolation=interpolation, fill=fill)


def translate_y(image, magnitude, interpolation: str = "nearest", fill=None) -> tf.Tensor:
    """Moves the content ``int(magnitude)`` pixels down (negative: up)."""
    return affine(image, translate=(0.0, _whole_pixels(magnitude)), interpolation=interpolation, fill=fill)


def rotate(image, degrees, interpolation: str = "nearest", fill=None) -> tf.Tensor:
    """Counter-clockwise rotation by ``degrees`` about the image centre (same output size)."""
    return affine(image, angle=-tf.cast(degrees, tf.float32), interpolation=interpolation, fill=fill)
