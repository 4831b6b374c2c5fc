"""MobileNet V2 and V3 (arXiv:1801.04381, arXiv:1905.02244): torchvision's networks in NHWC.

MobileNetV2: a 3x3 stride-2 stem (``features.0``), 17 inverted residual blocks (``features.1`` ..
``features.17``: 1x1 expansion, 3x3 depthwise, linear 1x1 projection, ReLU6, BN eps 1e-5 / momentum 0.1),
a 1x1 conv to 1280 channels (``features.18``), global average pooling, dropout and ``classifier.1``.

MobileNetV3 (Large and Small): a hardswish stem, inverted residual blocks with optional
squeeze-and-excitation (ReLU squeeze, hardsigmoid gate, 1x1 convs ``fc1``/``fc2`` with biases) and
ReLU or hardswish, a 1x1 conv to 6x the last width, global average pooling, then ``classifier.0``
(linear) -> hardswish -> dropout -> ``classifier.3``; BN eps 1e-3 / momentum 0.01.

Layers with weights carry torchvision's module paths (``features.3.conv.1.0`` is V2's fourth block's
depthwise conv, ``features.4.block.2.fc1`` V3-Large's first squeeze conv), so torchvision's weights
convert with the generic converter. Activations are PyTorch's (:func:`zoo.layers.hard_swish`,
:func:`zoo.layers.hard_sigmoid`; Keras 2's ``hard_sigmoid`` is a different function).
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional

from keras_compat import keras
from zoo.layers import batch_norm, conv2d, hard_sigmoid, hard_swish

__all__ = ["make_divisible", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]


_V2_BN = dict(eps=1e-5, momentum=0.1)  # nn.BatchNorm2d's defaults
_V3_BN = dict(eps=1e-3, momentum=0.01)  # MobileNetV3's norm_layer


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Rounds a channel count to the nearest multiple of ``divisor``, never more than 10% below ``value``.

    torchvision's ``_make_divisible`` (the rule of TF's slim MobileNet).
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _activation(x, kind: Optional[str], name: str):
    if kind is None:
        return x
    if kind == "relu6":
        return keras.layers.ReLU(6.0, name=name)(x)
    if kind == "relu":
        return keras.layers.ReLU(name=name)(x)
    if kind == "hardswish":
        return keras.layers.Activation(hard_swish, name=name)(x)
    raise ValueError(f"unknown activation {kind!r}")


def _conv_bn_act(x, filters: int, kernel_size: int, *, strides: int = 1, groups: int = 1, dilation: int = 1,
                 activation: Optional[str], bn: dict, name: str):
    """torchvision's ``Conv2dNormActivation``: ``<name>.0`` conv (no bias), ``<name>.1`` BN, activation."""
    # kaiming_normal_(fan_out): zoo.layers.conv2d's default, DepthwiseKaimingNormal for depthwise kernels.
    x = conv2d(x, filters, kernel_size, strides=strides, padding=(kernel_size - 1) // 2 * dilation, groups=groups,
               dilation=dilation, name=f"{name}.0")
    x = batch_norm(x, name=f"{name}.1", **bn)
    return _activation(x, activation, f"{name}.2")


def _classifier_dense(x, units: int, name: str):
    return keras.layers.Dense(
        units, kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01),  # normal_(0, 0.01), bias 0
        bias_initializer="zeros", name=name,
    )(x)


def _check(num_classes: int, width_mult: float) -> None:
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if width_mult <= 0:
        raise ValueError(f"width_mult must be positive, got {width_mult}")


# -- MobileNetV2 ---------------------------------------------------------------------------------------

# (expansion t, output channels c, repeats n, first stride s): the paper's Table 2.
_V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1))


def _v2_block(x, out_channels: int, stride: int, expand_ratio: int, name: str):
    """V2's ``InvertedResidual``: layers ``<name>.conv.K``; the residual when the shape is kept."""
    in_channels = x.shape[-1]
    hidden = int(round(in_channels * expand_ratio))
    y, k = x, 0
    if expand_ratio != 1:
        y = _conv_bn_act(y, hidden, 1, activation="relu6", bn=_V2_BN, name=f"{name}.conv.{k}")
        k += 1
    y = _conv_bn_act(y, hidden, 3, strides=stride, groups=hidden, activation="relu6", bn=_V2_BN,
                     name=f"{name}.conv.{k}")
    y = conv2d(y, out_channels, 1, name=f"{name}.conv.{k + 1}")  # linear bottleneck
    y = batch_norm(y, name=f"{name}.conv.{k + 2}", **_V2_BN)
    if stride == 1 and in_channels == out_channels:
        y = keras.layers.Add(name=f"{name}.add")([x, y])
    return y


def mobilenet_v2(*, num_classes: int = 1000, image_size: int = 224, dropout: float = 0.2,
                 width_mult: float = 1.0) -> keras.Model:
    """torchvision's ``mobilenet_v2`` in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size (any size from 1 pixel: the last map is averaged globally).
        dropout: dropout rate before the classifier.
        width_mult: channel multiplier; channels are rounded to multiples of 8 (``make_divisible``).

    Returns:
        A Keras model mapping normalised float images to logits.
    """
    _check(num_classes, width_mult)
    inputs = keras.Input(shape=(image_size, image_size, 3), name="images")
    x = _conv_bn_act(inputs, make_divisible(32 * width_mult), 3, strides=2, activation="relu6", bn=_V2_BN,
                     name="features.0")
    index = 1
    for t, c, n, s in _V2_SETTING:
        out_channels = make_divisible(c * width_mult)
        for i in range(n):
            x = _v2_block(x, out_channels, s if i == 0 else 1, t, name=f"features.{index}")
            index += 1
    last_channels = make_divisible(1280 * max(1.0, width_mult))
    x = _conv_bn_act(x, last_channels, 1, activation="relu6", bn=_V2_BN, name=f"features.{index}")
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    x = keras.layers.Dropout(dropout, name="classifier.0")(x)
    logits = _classifier_dense(x, num_classes, "classifier.1")
    return keras.Model(inputs, logits, name="mobilenet_v2")


# -- MobileNetV3 ---------------------------------------------------------------------------------------

class _Bneck(NamedTuple):
    """One row of the V3 paper's Tables 1 and 2 (channels before the width multiplier)."""

    in_channels: int
    kernel: int
    expanded: int
    out_channels: int
    use_se: bool
    activation: str  # "relu" or "hardswish"
    stride: int
    last_stage: bool  # C4 and later: reduced by ``reduced_tail``, dilated by ``dilated``


_RE, _HS = "relu", "hardswish"
_V3_LARGE = (
    _Bneck(16, 3, 16, 16, False, _RE, 1, False),
    _Bneck(16, 3, 64, 24, False, _RE, 2, False),
    _Bneck(24, 3, 72, 24, False, _RE, 1, False),
    _Bneck(24, 5, 72, 40, True, _RE, 2, False),
    _Bneck(40, 5, 120, 40, True, _RE, 1, False),
    _Bneck(40, 5, 120, 40, True, _RE, 1, False),
    _Bneck(40, 3, 240, 80, False, _HS, 2, False),
    _Bneck(80, 3, 200, 80, False, _HS, 1, False),
    _Bneck(80, 3, 184, 80, False, _HS, 1, False),
    _Bneck(80, 3, 184, 80, False, _HS, 1, False),
    _Bneck(80, 3, 480, 112, True, _HS, 1, False),
    _Bneck(112, 3, 672, 112, True, _HS, 1, False),
    _Bneck(112, 5, 672, 160, True, _HS, 2, True),
    _Bneck(160, 5, 960, 160, True, _HS, 1, True),
    _Bneck(160, 5, 960, 160, True, _HS, 1, True),
)
_V3_SMALL = (
    _Bneck(16, 3, 16, 16, True, _RE, 2, False),
    _Bneck(16, 3, 72, 24, False, _RE, 2, False),
    _Bneck(24, 3, 88, 24, False, _RE, 1, False),
    _Bneck(24, 5, 96, 40, True, _HS, 2, False),
    _Bneck(40, 5, 240, 40, True, _HS, 1, False),
    _Bneck(40, 5, 240, 40, True, _HS, 1, False),
    _Bneck(40, 5, 120, 48, True, _HS, 1, False),
    _Bneck(48, 5, 144, 48, True, _HS, 1, False),
    _Bneck(48, 5, 288, 96, True, _HS, 2, True),
    _Bneck(96, 5, 576, 96, True, _HS, 1, True),
    _Bneck(96, 5, 576, 96, True, _HS, 1, True),
)


def _v3_setting(rows, width_mult: float, reduced_tail: bool) -> List[_Bneck]:
    """torchvision's ``_mobilenet_v3_conf``: the tail's channels halved by ``reduced_tail``, then scaled.

    In torchvision the last stage's *input* stays full width in its first block (``160 // 2`` applies only
    to its output) and is halved in the blocks after it, which is what this reproduces.
    """
    divider = 2 if reduced_tail else 1
    scaled = []
    for i, row in enumerate(rows):
        in_channels, expanded, out_channels = row.in_channels, row.expanded, row.out_channels
        if row.last_stage:
            out_channels //= divider
            if i > 0 and rows[i - 1].last_stage:
                in_channels //= divider
                expanded //= divider
        scaled.append(row._replace(in_channels=make_divisible(in_channels * width_mult),
                                   expanded=make_divisible(expanded * width_mult),
                                   out_channels=make_divisible(out_channels * width_mult)))
    return scaled


def _squeeze_excitation(x, squeeze_channels: int, name: str):
    """torchvision's ``SqueezeExcitation`` as V3 uses it: x * hardsigmoid(fc2(relu(fc1(avgpool(x)))))."""
    channels = x.shape[-1]
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.avgpool")(x)
    # fc1/fc2: 1x1 nn.Conv2d with biases; kaiming_normal_(fan_out) kernels, zero biases.
    s = conv2d(s, squeeze_channels, 1, use_bias=True, name=f"{name}.fc1")
    s = keras.layers.ReLU(name=f"{name}.activation")(s)
    s = conv2d(s, channels, 1, use_bias=True, name=f"{name}.fc2")
    s = keras.layers.Activation(hard_sigmoid, name=f"{name}.scale_activation")(s)
    return keras.layers.Multiply(name=f"{name}.scale")([x, s])


def _v3_block(x, cnf: _Bneck, dilation: int, name: str):
    """V3's ``InvertedResidual``: layers ``<name>.block.K``; the residual when the shape is kept."""
    y, k = x, 0
    if cnf.expanded != cnf.in_channels:
        y = _conv_bn_act(y, cnf.expanded, 1, activation=cnf.activation, bn=_V3_BN, name=f"{name}.block.{k}")
        k += 1
    stride = 1 if dilation > 1 else cnf.stride  # a dilated stage keeps the resolution
    y = _conv_bn_act(y, cnf.expanded, cnf.kernel, strides=stride, groups=cnf.expanded, dilation=dilation,
                     activation=cnf.activation, bn=_V3_BN, name=f"{name}.block.{k}")
    k += 1
    if cnf.use_se:
        y = _squeeze_excitation(y, make_divisible(cnf.expanded // 4), name=f"{name}.block.{k}")
        k += 1
    y = _conv_bn_act(y, cnf.out_channels, 1, activation=None, bn=_V3_BN, name=f"{name}.block.{k}")
    if cnf.stride == 1 and cnf.in_channels == cnf.out_channels:
        y = keras.layers.Add(name=f"{name}.add")([y, x])
    return y


def _mobilenet_v3(rows, last_channel: int, *, num_classes: int, image_size: int, dropout: float,
                  width_mult: float, reduced_tail: bool, dilated: bool, name: str) -> keras.Model:
    _check(num_classes, width_mult)
    setting = _v3_setting(rows, width_mult, reduced_tail)
    inputs = keras.Input(shape=(image_size, image_size, 3), name="images")
    x = _conv_bn_act(inputs, setting[0].in_channels, 3, strides=2, activation=_HS, bn=_V3_BN, name="features.0")
    for i, cnf in enumerate(setting, start=1):
        x = _v3_block(x, cnf, 2 if dilated and cnf.last_stage else 1, name=f"features.{i}")
    x = _conv_bn_act(x, 6 * setting[-1].out_channels, 1, activation=_HS, bn=_V3_BN,
                     name=f"features.{len(setting) + 1}")
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    divider = 2 if reduced_tail else 1
    x = _classifier_dense(x, make_divisible(last_channel // divider * width_mult), "classifier.0")
    x = keras.layers.Activation(hard_swish, name="classifier.1")(x)
    x = keras.layers.Dropout(dropout, name="classifier.2")(x)
    logits = _classifier_dense(x, num_classes, "classifier.3")
    return keras.Model(inputs, logits, name=name)


def mobilenet_v3_large(*, num_classes: int = 1000, image_size: int = 224, dropout: float = 0.2,
                       width_mult: float = 1.0, reduced_tail: bool = False, dilated: bool = False) -> keras.Model:
    """torchvision's ``mobilenet_v3_large`` in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size (any size from 1 pixel).
        dropout: dropout rate before the last linear layer.
        width_mult: channel multiplier (channels rounded to multiples of 8).
        reduced_tail: halve the channels of the last stage and of the penultimate linear layer
            (torchvision's option for detection backbones).
        dilated: dilation 2 instead of stride 2 in the last stage (segmentation backbones).

    Returns:
        A Keras model mapping normalised float images to logits.
    """
    return _mobilenet_v3(_V3_LARGE, 1280, num_classes=num_classes, image_size=image_size, dropout=dropout,
                         width_mult=width_mult, reduced_tail=reduced_tail, dilated=dilated,
                         name="mobilenet_v3_large")


def mobilenet_v3_small(*, num_classes: int = 1000, image_size: int = 224, dropout: float = 0.2,
                       width_mult: float = 1.0, reduced_tail: bool = False, dilated: bool = False) -> keras.Model:
    """torchvision's ``mobilenet_v3_small`` in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size (any size from 1 pixel).
        dropout: dropout rate before the last linear layer.
        width_mult: channel multiplier (channels rounded to multiples of 8).
        reduced_tail: halve the channels of the last stage and of the penultimate linear layer.
        dilated: dilation 2 instead of stride 2 in the last stage.

    Returns:
        A Keras model mapping normalised float images to logits.
    """
    return _mobilenet_v3(_V3_SMALL, 1024, num_classes=num_classes, image_size=image_size, dropout=dropout,
                         width_mult=width_mult, reduced_tail=reduced_tail, dilated=dilated,
                         name="mobilenet_v3_small")
