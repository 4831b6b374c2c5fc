"""EfficientNet (Tan & Le, "EfficientNet: Rethinking Model Scaling for CNNs", arXiv:1905.11946), NHWC.

torchvision's layout: ``features.0`` (3x3 stride-2 stem conv, BN, SiLU), ``features.1`` ..
``features.7`` (stages of MBConv blocks: 1x1 expansion conv, depthwise conv, squeeze-and-excitation
with a SiLU squeeze and a sigmoid gate, 1x1 projection; stochastic depth on the residual branch),
``features.8`` (1x1 conv to 4x the last stage's channels, BN, SiLU), global average pooling, dropout
and the linear ``classifier.1``. Layers with weights carry torchvision's module paths
(``features.2.0.block.1.0`` is the depthwise conv of stage 2's first block), so torchvision's weights
convert with the generic converter.

torchvision's ``efficientnet_b0`` weights are timm's ``efficientnet_b0_ra`` (torchvision's
references/classification/README.md: "The weights of the B0-B4 variants are ported from Ross
Wightman's timm repo"), trained in PyTorch with timm's RandAugment recipe, which ``_RECIPE`` holds.
"""

from __future__ import annotations

import math
from typing import List, NamedTuple, Optional

from keras_compat import keras
from zoo.layers import StochasticDepth, batch_norm, conv2d

__all__ = ["efficientnet_b0"]

_BN = dict(eps=1e-5, momentum=0.1)  # B0-B4 use nn.BatchNorm2d's defaults (torchvision passes no norm_layer)


class _Stage(NamedTuple):
    """One row of the paper's Table 1 (B0 widths and depths)."""

    expand_ratio: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    num_layers: int


_B0_STAGES = (
    _Stage(1, 3, 1, 32, 16, 1),
    _Stage(6, 3, 2, 16, 24, 2),
    _Stage(6, 5, 2, 24, 40, 2),
    _Stage(6, 3, 2, 40, 80, 3),
    _Stage(6, 5, 1, 80, 112, 3),
    _Stage(6, 5, 2, 112, 192, 4),
    _Stage(6, 3, 1, 192, 320, 1),
)


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Rounds a channel count to a multiple of ``divisor``, never more than 10% below ``value`` (TF's rule)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _scale_stages(width_mult: float, depth_mult: float) -> List[_Stage]:
    return [
        s._replace(in_channels=make_divisible(s.in_channels * width_mult),
                   out_channels=make_divisible(s.out_channels * width_mult),
                   num_layers=int(math.ceil(s.num_layers * depth_mult)))
        for s in _B0_STAGES
    ]


def _conv_bn_act(x, filters: int, kernel_size: int, *, strides: int = 1, groups: int = 1,
                 activation: Optional[str] = "swish", name: str):
    """torchvision's ``Conv2dNormActivation``: ``<name>.0`` conv (no bias), ``<name>.1`` BN, SiLU."""
    # Convolutions: kaiming_normal_(fan_out) (zoo.layers.conv2d's default; DepthwiseKaimingNormal if depthwise).
    x = conv2d(x, filters, kernel_size, strides=strides, padding=(kernel_size - 1) // 2, groups=groups,
               name=f"{name}.0")
    x = batch_norm(x, name=f"{name}.1", **_BN)
    if activation:
        x = keras.layers.Activation(activation, name=f"{name}.2")(x)
    return x


def _squeeze_excitation(x, squeeze_channels: int, name: str):
    """torchvision's ``SqueezeExcitation``: x * sigmoid(fc2(silu(fc1(avgpool(x))))), fc1/fc2 1x1 convs."""
    channels = x.shape[-1]
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.avgpool")(x)
    s = conv2d(s, squeeze_channels, 1, use_bias=True, name=f"{name}.fc1")
    s = keras.layers.Activation("swish", name=f"{name}.activation")(s)
    s = conv2d(s, channels, 1, use_bias=True, name=f"{name}.fc2")
    s = keras.layers.Activation("sigmoid", name=f"{name}.scale_activation")(s)
    return keras.layers.Multiply(name=f"{name}.scale")([x, s])


def _mbconv(x, stage: _Stage, *, in_channels: int, stride: int, drop_rate: float, name: str):
    """An MBConv block; ``drop_rate`` is its stochastic-depth rate (used only with the residual)."""
    expanded = make_divisible(in_channels * stage.expand_ratio)
    y, k = x, 0
    if expanded != in_channels:
        y = _conv_bn_act(y, expanded, 1, name=f"{name}.block.{k}")
        k += 1
    y = _conv_bn_act(y, expanded, stage.kernel, strides=stride, groups=expanded, name=f"{name}.block.{k}")
    y = _squeeze_excitation(y, max(1, in_channels // 4), f"{name}.block.{k + 1}")
    y = _conv_bn_act(y, stage.out_channels, 1, activation=None, name=f"{name}.block.{k + 2}")
    if stride == 1 and in_channels == stage.out_channels:
        y = StochasticDepth(drop_rate, name=f"{name}.stochastic_depth")(y)
        y = keras.layers.Add(name=f"{name}.add")([y, x])
    return y


def _build(*, width_mult: float, depth_mult: float, dropout: float, stochastic_depth_rate: float,
           num_classes: int, image_size: int, name: str) -> keras.Model:
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    stages = _scale_stages(width_mult, depth_mult)
    inputs = keras.Input(shape=(image_size, image_size, 3), name="images")
    x = _conv_bn_act(inputs, stages[0].in_channels, 3, strides=2, name="features.0")
    total_blocks = sum(s.num_layers for s in stages)
    block_id = 0
    for s, stage in enumerate(stages, start=1):
        for i in range(stage.num_layers):
            # The stochastic-depth rate grows linearly with the block's index over the whole network.
            rate = stochastic_depth_rate * block_id / total_blocks
            x = _mbconv(x, stage, in_channels=stage.in_channels if i == 0 else stage.out_channels,
                        stride=stage.stride if i == 0 else 1, drop_rate=rate, name=f"features.{s}.{i}")
            block_id += 1
    last = 4 * stages[-1].out_channels
    x = _conv_bn_act(x, last, 1, name=f"features.{len(stages) + 1}")
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    x = keras.layers.Dropout(dropout, name="classifier.0")(x)
    # torchvision: U(+-1/sqrt(out_features)) weights, zero bias.
    bound = 1.0 / math.sqrt(num_classes)
    logits = keras.layers.Dense(num_classes, kernel_initializer=keras.initializers.RandomUniform(-bound, bound),
                                bias_initializer="zeros", name="classifier.1")(x)
    return keras.Model(inputs, logits, name=name)


def efficientnet_b0(*, num_classes: int = 1000, image_size: int = 224, dropout: float = 0.2,
                    stochastic_depth_rate: float = 0.2) -> keras.Model:
    """torchvision's ``efficientnet_b0`` in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size (any; torchvision's minimum is 1x1).
        dropout: dropout rate before the classifier.
        stochastic_depth_rate: stochastic-depth rate of the last block; block ``i`` of 16 uses
            ``rate * i / 16`` (torchvision's ``stochastic_depth_prob``).

    Returns:
        A Keras functional model mapping normalised float images to logits.
    """
    return _build(width_mult=1.0, depth_mult=1.0, dropout=dropout, stochastic_depth_rate=stochastic_depth_rate,
                  num_classes=num_classes, image_size=image_size, name="efficientnet_b0")
