"""Inception v3 (arXiv:1512.00567): torchvision's network, with its auxiliary head, in NHWC.

The stem (``Conv2d_1a_3x3`` .. ``Conv2d_4a_3x3``, two 3/2 max pools), three InceptionA blocks
(``Mixed_5b``..``Mixed_5d``), a grid reduction (``Mixed_6a``), four InceptionC blocks with factorised 1x7 / 7x1
convolutions (``Mixed_6b``..``Mixed_6e``), a second reduction (``Mixed_7a``), two InceptionE blocks
(``Mixed_7b``, ``Mixed_7c``), global average pooling, dropout 0.5 and ``fc``. Every convolution is
torchvision's ``BasicConv2d``: a bias-free conv (``<block>.conv``), batch norm with eps 1e-3 and PyTorch's
momentum 0.1 (``<block>.bn``), ReLU. The branch average pools are PyTorch's ``avg_pool2d(3, 1, padding=1)``,
whose zero padding counts in the divisor (:func:`zoo.layers.avg_pool`).

The auxiliary head (``AuxLogits``) reads Mixed_6e: average pool 5/3, ``conv0`` (1x1, 128), ``conv1`` (5x5,
768), global average pooling, ``fc``. The model has two outputs, ``[logits, aux_logits]``; the recipe weights
the auxiliary loss by 0.4 and :func:`zoo.inference_model` keeps the first output only (torchvision's eval
mode returns only the logits too).

torchvision's auxiliary head needs a 17x17 Mixed_6e map (inputs of 299 pixels or more); below that
torchvision fails in training mode. This model trains at every size from the recipe's minimum (75, what
torchvision's network accepts in eval mode) with the same weights: the 5x5 pool window is clipped to a map
smaller than 5x5 (it then averages the whole map), and the pooled map is zero-padded, centred, to 5x5 where it
is smaller, so that ``conv1`` yields one position. At 299 pixels and more neither applies and the head is
exactly torchvision's.

The network has no input transform: torchvision's ``transform_input`` (on with its published weights) turns
ImageNet-normalised images into images normalised with mean = std = 0.5, and the recipe normalises with
those statistics directly.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

from keras_compat import keras
from zoo.layers import avg_pool, batch_norm, fan_in_uniform, max_pool

__all__ = ["inception_v3"]

_Size = Union[int, Tuple[int, int]]


_BN = dict(eps=1e-3, momentum=0.1)  # BasicConv2d's BatchNorm2d(eps=0.001), PyTorch's default momentum
# torchvision's init: trunc_normal_(std=stddev, a=-2, b=2) on conv/linear weights, stddev 0.1 unless the module
# sets one. The bounds are absolute (20 stddevs at 0.1, more for the smaller ones), so no draw is ever cut: the
# distribution is N(0, stddev^2), which is Keras' RandomNormal. Keras' TruncatedNormal would cut at 2 stddevs
# and shrink the spread to 0.88 x stddev.
_STDDEV = 0.1
_AUX_CONV1_STDDEV = 0.01
_AUX_FC_STDDEV = 0.001


def _normal(stddev: float) -> keras.initializers.Initializer:
    # A new instance per layer: a reused unseeded initializer repeats its values (Keras 2 and 3 alike).
    return keras.initializers.RandomNormal(mean=0.0, stddev=stddev)


def _pair(value: _Size) -> Tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _basic_conv(x, filters: int, kernel_size: _Size, *, name: str, strides: int = 1, padding: _Size = 0,
                stddev: float = _STDDEV):
    """torchvision's ``BasicConv2d``: symmetric zero padding, bias-free conv, BN (eps 1e-3), ReLU."""
    pad = _pair(padding)
    if any(pad):
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}.pad")(x)
    x = keras.layers.Conv2D(
        filters, _pair(kernel_size), strides=strides, padding="valid", use_bias=False,
        kernel_initializer=_normal(stddev), name=f"{name}.conv",
    )(x)
    x = batch_norm(x, name=f"{name}.bn", **_BN)
    return keras.layers.ReLU(name=f"{name}.relu")(x)


def _concat(branches: Sequence, name: str):
    return keras.layers.Concatenate(axis=-1, name=name)(list(branches))


def _inception_a(x, pool_features: int, name: str):
    b1 = _basic_conv(x, 64, 1, name=f"{name}.branch1x1")
    b5 = _basic_conv(x, 48, 1, name=f"{name}.branch5x5_1")
    b5 = _basic_conv(b5, 64, 5, padding=2, name=f"{name}.branch5x5_2")
    b3 = _basic_conv(x, 64, 1, name=f"{name}.branch3x3dbl_1")
    b3 = _basic_conv(b3, 96, 3, padding=1, name=f"{name}.branch3x3dbl_2")
    b3 = _basic_conv(b3, 96, 3, padding=1, name=f"{name}.branch3x3dbl_3")
    bp = avg_pool(x, 3, 1, padding=1, name=f"{name}.avg_pool")
    bp = _basic_conv(bp, pool_features, 1, name=f"{name}.branch_pool")
    return _concat([b1, b5, b3, bp], f"{name}.concat")


def _inception_b(x, name: str):
    b3 = _basic_conv(x, 384, 3, strides=2, name=f"{name}.branch3x3")
    bd = _basic_conv(x, 64, 1, name=f"{name}.branch3x3dbl_1")
    bd = _basic_conv(bd, 96, 3, padding=1, name=f"{name}.branch3x3dbl_2")
    bd = _basic_conv(bd, 96, 3, strides=2, name=f"{name}.branch3x3dbl_3")
    bp = max_pool(x, 3, 2, name=f"{name}.max_pool")
    return _concat([b3, bd, bp], f"{name}.concat")


def _inception_c(x, channels_7x7: int, name: str):
    c7 = channels_7x7
    b1 = _basic_conv(x, 192, 1, name=f"{name}.branch1x1")
    b7 = _basic_conv(x, c7, 1, name=f"{name}.branch7x7_1")
    b7 = _basic_conv(b7, c7, (1, 7), padding=(0, 3), name=f"{name}.branch7x7_2")
    b7 = _basic_conv(b7, 192, (7, 1), padding=(3, 0), name=f"{name}.branch7x7_3")
    bd = _basic_conv(x, c7, 1, name=f"{name}.branch7x7dbl_1")
    bd = _basic_conv(bd, c7, (7, 1), padding=(3, 0), name=f"{name}.branch7x7dbl_2")
    bd = _basic_conv(bd, c7, (1, 7), padding=(0, 3), name=f"{name}.branch7x7dbl_3")
    bd = _basic_conv(bd, c7, (7, 1), padding=(3, 0), name=f"{name}.branch7x7dbl_4")
    bd = _basic_conv(bd, 192, (1, 7), padding=(0, 3), name=f"{name}.branch7x7dbl_5")
    bp = avg_pool(x, 3, 1, padding=1, name=f"{name}.avg_pool")
    bp = _basic_conv(bp, 192, 1, name=f"{name}.branch_pool")
    return _concat([b1, b7, bd, bp], f"{name}.concat")


def _inception_d(x, name: str):
    b3 = _basic_conv(x, 192, 1, name=f"{name}.branch3x3_1")
    b3 = _basic_conv(b3, 320, 3, strides=2, name=f"{name}.branch3x3_2")
    b7 = _basic_conv(x, 192, 1, name=f"{name}.branch7x7x3_1")
    b7 = _basic_conv(b7, 192, (1, 7), padding=(0, 3), name=f"{name}.branch7x7x3_2")
    b7 = _basic_conv(b7, 192, (7, 1), padding=(3, 0), name=f"{name}.branch7x7x3_3")
    b7 = _basic_conv(b7, 192, 3, strides=2, name=f"{name}.branch7x7x3_4")
    bp = max_pool(x, 3, 2, name=f"{name}.max_pool")
    return _concat([b3, b7, bp], f"{name}.concat")


def _inception_e(x, name: str):
    b1 = _basic_conv(x, 320, 1, name=f"{name}.branch1x1")
    b3 = _basic_conv(x, 384, 1, name=f"{name}.branch3x3_1")
    b3 = _concat([
        _basic_conv(b3, 384, (1, 3), padding=(0, 1), name=f"{name}.branch3x3_2a"),
        _basic_conv(b3, 384, (3, 1), padding=(1, 0), name=f"{name}.branch3x3_2b"),
    ], f"{name}.branch3x3.concat")
    bd = _basic_conv(x, 448, 1, name=f"{name}.branch3x3dbl_1")
    bd = _basic_conv(bd, 384, 3, padding=1, name=f"{name}.branch3x3dbl_2")
    bd = _concat([
        _basic_conv(bd, 384, (1, 3), padding=(0, 1), name=f"{name}.branch3x3dbl_3a"),
        _basic_conv(bd, 384, (3, 1), padding=(1, 0), name=f"{name}.branch3x3dbl_3b"),
    ], f"{name}.branch3x3dbl.concat")
    bp = avg_pool(x, 3, 1, padding=1, name=f"{name}.avg_pool")
    bp = _basic_conv(bp, 192, 1, name=f"{name}.branch_pool")
    return _concat([b1, b3, bd, bp], f"{name}.concat")


def _aux_head(x, num_classes: int, name: str = "AuxLogits"):
    """torchvision's ``InceptionAux``; on maps below torchvision's 17x17, the fallback the module docstring gives."""
    size = int(x.shape[1])
    window = min(5, size)  # torchvision: 5 (it fails on smaller maps)
    x = keras.layers.AveragePooling2D(window, 3, padding="valid", name=f"{name}.avg_pool")(x)
    x = _basic_conv(x, 128, 1, name=f"{name}.conv0")
    pooled = int(x.shape[1])
    if pooled < 5:  # torchvision: never at 299 pixels and more; here centred zeros up to 5x5
        before = (5 - pooled) // 2
        after = 5 - pooled - before
        x = keras.layers.ZeroPadding2D(((before, after), (before, after)), name=f"{name}.conv1.fit")(x)
    x = _basic_conv(x, 768, 5, name=f"{name}.conv1", stddev=_AUX_CONV1_STDDEV)
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}.avgpool")(x)
    return keras.layers.Dense(
        num_classes, kernel_initializer=_normal(_AUX_FC_STDDEV), bias_initializer=fan_in_uniform(768),
        name=f"{name}.fc",
    )(x)


def inception_v3(*, num_classes: int = 1000, image_size: int = 299, dropout: float = 0.5) -> keras.Model:
    """torchvision's Inception v3 with its auxiliary classifier, NHWC.

    Args:
        num_classes: size of both classifiers.
        image_size: square input size; 75 or more (the recipe checks it).
        dropout: dropout rate before ``fc`` (the auxiliary head has none, as in torchvision).

    Returns:
        A Keras model mapping images normalised with mean = std = 0.5 to ``[logits, aux_logits]``.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    inputs = keras.Input(shape=(image_size, image_size, 3), name="images")
    x = _basic_conv(inputs, 32, 3, strides=2, name="Conv2d_1a_3x3")
    x = _basic_conv(x, 32, 3, name="Conv2d_2a_3x3")
    x = _basic_conv(x, 64, 3, padding=1, name="Conv2d_2b_3x3")
    x = max_pool(x, 3, 2, name="maxpool1")
    x = _basic_conv(x, 80, 1, name="Conv2d_3b_1x1")
    x = _basic_conv(x, 192, 3, name="Conv2d_4a_3x3")
    x = max_pool(x, 3, 2, name="maxpool2")
    x = _inception_a(x, 32, "Mixed_5b")
    x = _inception_a(x, 64, "Mixed_5c")
    x = _inception_a(x, 64, "Mixed_5d")
    x = _inception_b(x, "Mixed_6a")
    x = _inception_c(x, 128, "Mixed_6b")
    x = _inception_c(x, 160, "Mixed_6c")
    x = _inception_c(x, 160, "Mixed_6d")
    x = _inception_c(x, 192, "Mixed_6e")
    aux = _aux_head(x, num_classes)
    x = _inception_d(x, "Mixed_7a")
    x = _inception_e(x, "Mixed_7b")
    x = _inception_e(x, "Mixed_7c")
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(
        num_classes, kernel_initializer=_normal(_STDDEV), bias_initializer=fan_in_uniform(2048), name="fc",
    )(x)
    return keras.Model(inputs, [logits, aux], name="inception_v3")
