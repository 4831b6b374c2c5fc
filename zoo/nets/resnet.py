"""ResNet (He et al., arXiv:1512.03385), ResNeXt and Wide ResNet: torchvision's networks in NHWC.

torchvision's ResNet is "v1.5": a Bottleneck puts its stride on the 3x3 convolution, not on the first
1x1 as the paper did. ResNeXt (arXiv:1611.05431) is the same Bottleneck with a grouped 3x3 and a wider
inner width; Wide ResNet-50-2 (arXiv:1605.07146) doubles the inner width. Layers are named after
torchvision's modules (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc``) so
that ``tools/convert_torchvision.py`` maps its weights with no per-model code.

Every detail follows torchvision: 7x7/2 stem convolution (padding 3), 3x3/2 max pooling (padding 1),
symmetric padding in every strided convolution, batch norm with eps 1e-5 and momentum 0.1, convolutions
initialised with ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``, batch norm with ones and
zeros (``zero_init_residual`` zeroes each branch's last batch-norm scale), and the ``fc`` layer with
PyTorch's default ``nn.Linear`` initialisation.
"""

from __future__ import annotations

from typing import Sequence

from keras_compat import keras
from zoo.layers import batch_norm, conv2d, fan_in_uniform, max_pool

__all__ = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "wide_resnet50_2",
]


def _basic_block(x, planes: int, stride: int, name: str, zero_init_residual: bool):
    """torchvision's ``BasicBlock``: two 3x3 convolutions, the first one strided."""
    shortcut = x
    out = conv2d(x, planes, 3, strides=stride, padding=1, name=f"{name}.conv1")
    out = batch_norm(out, name=f"{name}.bn1")
    out = keras.layers.ReLU(name=f"{name}.relu1")(out)
    out = conv2d(out, planes, 3, padding=1, name=f"{name}.conv2")
    out = batch_norm(out, name=f"{name}.bn2", zero_init=zero_init_residual)
    return _merge(out, shortcut, planes, stride, name)


def _bottleneck(x, planes: int, stride: int, name: str, zero_init_residual: bool, groups: int, base_width: int):
    """torchvision's ``Bottleneck`` (v1.5): 1x1 reduce, 3x3 (strided, grouped), 1x1 expand by 4."""
    width = int(planes * (base_width / 64.0)) * groups
    shortcut = x
    out = conv2d(x, width, 1, name=f"{name}.conv1")
    out = batch_norm(out, name=f"{name}.bn1")
    out = keras.layers.ReLU(name=f"{name}.relu1")(out)
    out = conv2d(out, width, 3, strides=stride, padding=1, groups=groups, name=f"{name}.conv2")
    out = batch_norm(out, name=f"{name}.bn2")
    out = keras.layers.ReLU(name=f"{name}.relu2")(out)
    out = conv2d(out, planes * 4, 1, name=f"{name}.conv3")
    out = batch_norm(out, name=f"{name}.bn3", zero_init=zero_init_residual)
    return _merge(out, shortcut, planes * 4, stride, name)


def _merge(out, shortcut, channels: int, stride: int, name: str):
    """Adds the shortcut (projected by a strided 1x1 + batch norm where the shape changes), then ReLU."""
    if stride != 1 or shortcut.shape[-1] != channels:
        shortcut = conv2d(shortcut, channels, 1, strides=stride, name=f"{name}.downsample.0")
        shortcut = batch_norm(shortcut, name=f"{name}.downsample.1")
    out = keras.layers.Add(name=f"{name}.add")([out, shortcut])
    return keras.layers.ReLU(name=f"{name}.relu")(out)


def _build(*, bottleneck: bool, layers: Sequence[int], num_classes: int, image_size: int,
           zero_init_residual: bool, groups: int = 1, width_per_group: int = 64, name: str) -> keras.Model:
    """torchvision's ``ResNet(block, layers, groups, width_per_group)`` as a flat functional model."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    inputs = keras.Input(shape=(image_size, image_size, 3), name="images")
    x = conv2d(inputs, 64, 7, strides=2, padding=3, name="conv1")
    x = batch_norm(x, name="bn1")
    x = keras.layers.ReLU(name="relu")(x)
    x = max_pool(x, 3, 2, padding=1, name="maxpool")
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for index in range(blocks):
            stride = 2 if stage > 1 and index == 0 else 1
            block_name = f"layer{stage}.{index}"
            if bottleneck:
                x = _bottleneck(x, planes, stride, block_name, zero_init_residual, groups, width_per_group)
            else:
                x = _basic_block(x, planes, stride, block_name, zero_init_residual)
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)  # AdaptiveAvgPool2d(1) + flatten
    features = x.shape[-1]
    logits = keras.layers.Dense(
        num_classes, kernel_initializer=fan_in_uniform(features), bias_initializer=fan_in_uniform(features),
        name="fc",
    )(x)
    return keras.Model(inputs, logits, name=name)


def resnet18(*, num_classes: int = 1000, image_size: int = 224, zero_init_residual: bool = False) -> keras.Model:
    """torchvision's ResNet-18 in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; any size from 1 pixel, as torchvision's network.
        zero_init_residual: start each residual branch's last batch-norm scale at zero, so that every
            block starts as the identity (torchvision's ``zero_init_residual``; off in its recipe).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build(bottleneck=False, layers=(2, 2, 2, 2), num_classes=num_classes, image_size=image_size,
                  zero_init_residual=zero_init_residual, name="resnet18")


def resnet34(*, num_classes: int = 1000, image_size: int = 224, zero_init_residual: bool = False) -> keras.Model:
    """torchvision's ResNet-34 in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; any size from 1 pixel, as torchvision's network.
        zero_init_residual: start each residual branch's last batch-norm scale at zero, so that every
            block starts as the identity (torchvision's ``zero_init_residual``; off in its recipe).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build(bottleneck=False, layers=(3, 4, 6, 3), num_classes=num_classes, image_size=image_size,
                  zero_init_residual=zero_init_residual, name="resnet34")


def resnet50(*, num_classes: int = 1000, image_size: int = 224, zero_init_residual: bool = False) -> keras.Model:
    """torchvision's ResNet-50 (v1.5: the Bottleneck's stride is on its 3x3 convolution) in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; any size from 1 pixel, as torchvision's network.
        zero_init_residual: start each residual branch's last batch-norm scale at zero, so that every
            block starts as the identity (torchvision's ``zero_init_residual``; off in its recipe).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build(bottleneck=True, layers=(3, 4, 6, 3), num_classes=num_classes, image_size=image_size,
                  zero_init_residual=zero_init_residual, name="resnet50")


def resnet101(*, num_classes: int = 1000, image_size: int = 224, zero_init_residual: bool = False) -> keras.Model:
    """torchvision's ResNet-101 (v1.5) in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; any size from 1 pixel, as torchvision's network.
        zero_init_residual: start each residual branch's last batch-norm scale at zero, so that every
            block starts as the identity (torchvision's ``zero_init_residual``; off in its recipe).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build(bottleneck=True, layers=(3, 4, 23, 3), num_classes=num_classes, image_size=image_size,
                  zero_init_residual=zero_init_residual, name="resnet101")


def resnet152(*, num_classes: int = 1000, image_size: int = 224, zero_init_residual: bool = False) -> keras.Model:
    """torchvision's ResNet-152 (v1.5) in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; any size from 1 pixel, as torchvision's network.
        zero_init_residual: start each residual branch's last batch-norm scale at zero, so that every
            block starts as the identity (torchvision's ``zero_init_residual``; off in its recipe).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build(bottleneck=True, layers=(3, 8, 36, 3), num_classes=num_classes, image_size=image_size,
                  zero_init_residual=zero_init_residual, name="resnet152")


def resnext50_32x4d(*, num_classes: int = 1000, image_size: int = 224,
                    zero_init_residual: bool = False) -> keras.Model:
    """torchvision's ResNeXt-50 32x4d in NHWC: ResNet-50 whose 3x3 convolutions have 32 groups.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; any size from 1 pixel, as torchvision's network.
        zero_init_residual: start each residual branch's last batch-norm scale at zero, so that every
            block starts as the identity (torchvision's ``zero_init_residual``; off in its recipe).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build(bottleneck=True, layers=(3, 4, 6, 3), num_classes=num_classes, image_size=image_size,
                  zero_init_residual=zero_init_residual, groups=32, width_per_group=4, name="resnext50_32x4d")


# The V1 weights are not from the README's recipe: their meta points at vision PR #912, whose author trained with
# SGD, cosine lr with warm restarts, 256 epochs and fp16 (lr and batch unpublished). Warm restarts are not in the
# shared stack, so the default recipe is torchvision's ResNet command (configs/wide_resnet50_2_imagenet.flags).
def wide_resnet50_2(*, num_classes: int = 1000, image_size: int = 224,
                    zero_init_residual: bool = False) -> keras.Model:
    """torchvision's Wide ResNet-50-2 in NHWC: ResNet-50 with twice the inner width of each Bottleneck.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; any size from 1 pixel, as torchvision's network.
        zero_init_residual: start each residual branch's last batch-norm scale at zero, so that every
            block starts as the identity (torchvision's ``zero_init_residual``; off in its recipe).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build(bottleneck=True, layers=(3, 4, 6, 3), num_classes=num_classes, image_size=image_size,
                  zero_init_residual=zero_init_residual, width_per_group=128, name="wide_resnet50_2")
