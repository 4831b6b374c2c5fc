"""PIL's antialiased resampling of uint8 images in TensorFlow ops, bit-exact, and torchvision's resize geometry.

torchvision's evaluation transform on PIL images (``transforms.Resize(size, interpolation)`` then
``CenterCrop``) resizes with Pillow's ``Image.resize``, whose 8-bit path (``ImagingResample`` in Pillow's
``src/libImaging/Resample.c``) is a separable filter:

* per axis and per output pixel ``i``, the filter is centred at ``(i + 0.5) * scale`` input pixels
  (``scale = in / out``) and stretched by ``max(scale, 1)`` (the antialiasing: the support grows with
  the downscale factor); its taps cover the input pixels from ``int(center - support + 0.5)`` to
  ``int(center + support + 0.5)`` (clamped to the image), evaluated at the pixel centres and
  normalised to sum 1, in double precision;
* the normalised taps become 22-bit fixed-point integers (rounded half away from zero), each output is
  ``(sum(pixel * tap) + 2**21) >> 22`` clamped to 0..255, in 32-bit integer arithmetic;
* one pass runs over the rows (or columns) the other needs, and its output is rounded to uint8 before
  the second pass. Pillow 13 (the version ``requirements.txt`` pins) starts with the vertical pass when
  the height shrinks by more than twice as many pixels as the width, else with the horizontal pass;
  Pillow 12 and earlier always start horizontally (:func:`vertical_first`; the order changes some
  pixels by one grey level).

This module computes the same taps with float64 TensorFlow ops and applies them as an int32 sparse
matrix product per axis (an output pixel reads only its few taps), for only the output pixels that
are asked for: the central crop of the resized image needs only the taps of the crop's rows and
columns, and only the input region those taps read. Results equal Pillow's bit for bit (the tests
compare with torchvision's transforms on real JPEGs of many sizes).

Filters: ``bilinear`` (triangle, support 1) and ``bicubic`` (Keys' cubic with ``a = -0.5``,
support 2), Pillow's ``BILINEAR`` and ``BICUBIC``.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import tensorflow as tf

__all__ = [
    "FILTERS",
    "AxisPlan",
    "axis_plan",
    "center_crop_offset",
    "resample",
    "resize_exact",
    "shorter_side_size",
    "vertical_first",
]

FILTERS = ("bilinear", "bicubic")
_SUPPORT = {"bilinear": 1.0, "bicubic": 2.0}
_PRECISION_BITS = 22  # Pillow's 32 - 8 - 2: 8 bits of pixel, 2 of headroom for negative taps


def _filter(method: str, x: tf.Tensor) -> tf.Tensor:
    """The filter's weight at float64 offsets ``x`` (in filter units)."""
    x = tf.abs(x)
    if method == "bilinear":
        return tf.where(x < 1.0, 1.0 - x, tf.zeros_like(x))
    a = tf.constant(-0.5, tf.float64)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return tf.where(x < 1.0, near, tf.where(x < 2.0, far, tf.zeros_like(x)))


class AxisPlan(NamedTuple):
    """The taps of some consecutive output pixels along one axis.

    Attributes:
        start: int32 [n], the first input pixel each output reads.
        count: int32 [n], how many input pixels it reads.
        taps: int32 [n, k], the fixed-point weights (zero past ``count``).
        first: int32 scalar, the first input pixel any of these outputs reads.
        end: int32 scalar, one past the last input pixel any of them reads.
    """

    start: tf.Tensor
    count: tf.Tensor
    taps: tf.Tensor
    first: tf.Tensor
    end: tf.Tensor


def axis_plan(in_size, out_size, method: str, begin=0, count=None) -> AxisPlan:
    """Pillow's taps for outputs ``begin .. begin + count - 1`` of resizing ``in_size`` pixels to ``out_size``.

    Args:
        in_size: input pixels along the axis (int or int32 scalar tensor).
        out_size: output pixels along the axis.
        method: ``bilinear`` or ``bicubic``.
        begin: the first output pixel wanted.
        count: how many output pixels (default: all from ``begin``).
    """
    if method not in FILTERS:
        raise ValueError(f"method must be one of {FILTERS}, got {method!r}")
    in_size = tf.cast(in_size, tf.int32)
    out_size = tf.cast(out_size, tf.int32)
    begin = tf.cast(begin, tf.int32)
    count = out_size - begin if count is None else tf.cast(count, tf.int32)
    scale = tf.cast(in_size, tf.float64) / tf.cast(out_size, tf.float64)
    filterscale = tf.maximum(scale, tf.constant(1.0, tf.float64))
    support = _SUPPORT[method] * filterscale
    k = tf.cast(tf.math.ceil(support), tf.int32) * 2 + 1
    outputs = tf.range(begin, begin + count)
    center = (tf.cast(outputs, tf.float64) + 0.5) * scale
    # C's (int) conversion truncates toward zero, as tf.cast does.
    start = tf.maximum(tf.cast(center - support + 0.5, tf.int32), 0)
    stop = tf.minimum(tf.cast(center + support + 0.5, tf.int32), in_size)
    length = stop - start
    index = tf.range(k)[None, :]
    inside = index < length[:, None]
    offset = tf.cast(index + start[:, None], tf.float64) - center[:, None] + 0.5
    weights = tf.where(inside, _filter(method, offset * (1.0 / filterscale)), tf.zeros([], tf.float64))
    # Pillow adds the taps one after the other; a cumulative sum keeps that order.
    total = tf.math.cumsum(weights, axis=1)[:, -1:]
    weights = tf.where(tf.not_equal(total, 0.0), weights / tf.where(tf.equal(total, 0.0), tf.ones_like(total), total),
                       weights)
    fixed = weights * float(1 << _PRECISION_BITS)
    taps = tf.cast(tf.where(fixed < 0.0, fixed - 0.5, fixed + 0.5), tf.int32)  # half away from zero
    return AxisPlan(start, length, taps, tf.reduce_min(start), tf.reduce_max(stop))


def _resample_rows(x: tf.Tensor, plan: AxisPlan, origin) -> tf.Tensor:
    """Resamples int32 ``x`` [in, m] along its first axis, whose row 0 is input pixel ``origin``; int32 [n, m]."""
    n = tf.shape(plan.taps)[0]
    k = tf.shape(plan.taps)[1]
    inside = tf.range(k)[None, :] < plan.count[:, None]
    rows = tf.broadcast_to(tf.range(n)[:, None], [n, k])
    cols = plan.start[:, None] + tf.range(k)[None, :] - tf.cast(origin, tf.int32)
    indices = tf.stack([tf.boolean_mask(rows, inside), tf.boolean_mask(cols, inside)], axis=1)
    matrix = tf.SparseTensor(tf.cast(indices, tf.int64), tf.boolean_mask(plan.taps, inside),
                             tf.cast(tf.stack([n, tf.shape(x)[0]]), tf.int64))
    total = tf.sparse.sparse_dense_matmul(matrix, x) + (1 << (_PRECISION_BITS - 1))
    return tf.clip_by_value(tf.math.floordiv(total, 1 << _PRECISION_BITS), 0, 255)


def _vertical(band: tf.Tensor, rows: AxisPlan, origin) -> tf.Tensor:
    """The vertical pass over uint8/int32 ``band`` [h, w, c] whose row 0 is input row ``origin``: int32 [n, w, c]."""
    shape = tf.shape(band)
    x = _resample_rows(tf.reshape(tf.cast(band, tf.int32), [shape[0], -1]), rows, origin)
    return tf.reshape(x, [-1, shape[1], shape[2]])


def _horizontal(band: tf.Tensor, cols: AxisPlan, origin) -> tf.Tensor:
    """The horizontal pass over ``band`` [h, w, c] whose column 0 is input column ``origin``: int32 [h, n, c]."""
    shape = tf.shape(band)
    x = tf.reshape(tf.transpose(tf.cast(band, tf.int32), [1, 0, 2]), [shape[1], -1])
    x = _resample_rows(x, cols, origin)
    return tf.transpose(tf.reshape(x, [-1, shape[0], shape[2]]), [1, 0, 2])


def vertical_first(in_height, in_width, out_height, out_width) -> tf.Tensor:
    """Whether Pillow runs the vertical pass first: since Pillow 13, when the height shrinks by more than
    twice as many pixels as the width (``ImagingResampleInner``); earlier versions always start horizontally."""
    shrink_h = tf.cast(in_height, tf.int32) - tf.cast(out_height, tf.int32)
    shrink_w = tf.cast(in_width, tf.int32) - tf.cast(out_width, tf.int32)
    return tf.logical_and(shrink_h > 0, shrink_h > 2 * shrink_w)


def resample(region: tf.Tensor, rows: AxisPlan, cols: AxisPlan, origin=(0, 0), vertical_first_=False) -> tf.Tensor:
    """Applies two axis plans to the uint8 ``region`` [h, w, c] of an image, one pass after the other.

    The first pass covers only the rows (or columns) the second pass reads, and its output is rounded
    to uint8 as Pillow's intermediate image is.

    Args:
        region: uint8 pixels of the input image from row ``origin[0]`` and column ``origin[1]`` on;
            it must hold every input pixel the plans read.
        rows: the vertical plan (output rows wanted).
        cols: the horizontal plan (output columns wanted).
        origin: (row, column) of ``region[0, 0]`` in the input image.
        vertical_first_: run the vertical pass first (bool, or a bool tensor: :func:`vertical_first`).

    Returns:
        uint8 [len(rows.start), len(cols.start), c].
    """
    oy, ox = (tf.cast(v, tf.int32) for v in origin)

    def horizontal_then_vertical():
        band = _horizontal(region[rows.first - oy:rows.end - oy], cols, ox)
        return _vertical(band, rows, rows.first)

    def vertical_then_horizontal():
        band = _vertical(region[:, cols.first - ox:cols.end - ox], rows, oy)
        return _horizontal(band, cols, cols.first)

    if isinstance(vertical_first_, bool):
        out = vertical_then_horizontal() if vertical_first_ else horizontal_then_vertical()
    else:
        out = tf.cond(vertical_first_, vertical_then_horizontal, horizontal_then_vertical)
    return tf.cast(out, tf.uint8)


def shorter_side_size(height, width, size) -> Tuple[tf.Tensor, tf.Tensor]:
    """torchvision's ``Resize(size)`` output (height, width): the shorter side becomes ``size``, the longer
    ``int(size * long / short)`` (``_compute_resized_output_size``; a square image becomes size x size)."""
    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)
    short = tf.minimum(height, width)
    long = tf.maximum(height, width)
    size = tf.cast(size, tf.int32)
    new_long = tf.cast(tf.cast(size * long, tf.float64) / tf.cast(short, tf.float64), tf.int32)
    portrait = width <= height
    return tf.where(portrait, new_long, size), tf.where(portrait, size, new_long)


def center_crop_offset(size, crop) -> tf.Tensor:
    """torchvision's ``CenterCrop`` offset ``int(round((size - crop) / 2.0))`` (Python rounds half to even)."""
    return tf.cast(tf.round(tf.cast(tf.cast(size, tf.int32) - crop, tf.float64) / 2.0), tf.int32)


def resize_exact(image: tf.Tensor, height, width, method: str = "bilinear") -> tf.Tensor:
    """Pillow's ``Image.resize((width, height), method)`` of a whole uint8 image [h, w, c]."""
    shape = tf.shape(image)
    rows = axis_plan(shape[0], height, method)
    cols = axis_plan(shape[1], width, method)
    return resample(image, rows, cols, vertical_first_=vertical_first(shape[0], shape[1], height, width))
