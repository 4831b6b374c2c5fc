"""DenseNet-BC (Huang et al., "Densely Connected Convolutional Networks", arXiv:1608.06993), NHWC.

torchvision's layout: ``features.conv0/norm0/relu0/pool0``, then dense blocks of bottleneck layers
(BN-ReLU-1x1 conv to ``bn_size * growth_rate`` channels, BN-ReLU-3x3 conv to ``growth_rate``), each
layer fed by the concatenation of the block input and every earlier layer's output, and transitions
(BN-ReLU-1x1 conv halving the channels, 2x2 average pooling) between blocks; ``features.norm5``, a
ReLU, global average pooling and the linear ``classifier``. Layers with weights carry torchvision's
module paths (``features.denseblock1.denselayer1.conv1``), so torchvision's weights convert with the
generic converter.

torchvision's ImageNet weights were ported from the authors' LuaTorch models (fb.resnet.torch code),
trained with the paper's recipe, which ``_RECIPE`` holds.
"""

from __future__ import annotations

from typing import Sequence

from keras_compat import keras
from zoo.layers import batch_norm, conv2d, fan_in_uniform, max_pool, torch_kernel_initializer

__all__ = ["densenet121"]

_BN = dict(eps=1e-5, momentum=0.1)  # nn.BatchNorm2d's defaults


def _conv(x, filters: int, kernel_size: int, *, padding: int = 0, strides: int = 1, name: str):
    # torchvision: kaiming_normal_ with its defaults (fan_in, ReLU gain), no bias.
    return conv2d(x, filters, kernel_size, strides=strides, padding=padding, name=name,
                  kernel_initializer=torch_kernel_initializer("fan_in"))


def _norm_relu(x, name: str, relu_name: str):
    x = batch_norm(x, name=name, **_BN)
    return keras.layers.ReLU(name=relu_name)(x)


def _dense_layer(x, growth_rate: int, bn_size: int, name: str):
    """One bottleneck layer: its ``growth_rate`` new channels (the caller concatenates them)."""
    y = _norm_relu(x, f"{name}.norm1", f"{name}.relu1")
    y = _conv(y, bn_size * growth_rate, 1, name=f"{name}.conv1")
    y = _norm_relu(y, f"{name}.norm2", f"{name}.relu2")
    return _conv(y, growth_rate, 3, padding=1, name=f"{name}.conv2")


def _build(*, growth_rate: int, block_config: Sequence[int], num_init_features: int, bn_size: int,
           num_classes: int, image_size: int, name: str) -> keras.Model:
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    inputs = keras.Input(shape=(image_size, image_size, 3), name="images")
    x = _conv(inputs, num_init_features, 7, strides=2, padding=3, name="features.conv0")
    x = _norm_relu(x, "features.norm0", "features.relu0")
    x = max_pool(x, 3, 2, padding=1, name="features.pool0")
    channels = num_init_features
    for b, num_layers in enumerate(block_config, start=1):
        block = f"features.denseblock{b}"
        for i in range(1, num_layers + 1):
            new = _dense_layer(x, growth_rate, bn_size, f"{block}.denselayer{i}")
            # Appending each layer's output to the running concatenation gives torch.cat(features, 1)'s order.
            x = keras.layers.Concatenate(axis=-1, name=f"{block}.denselayer{i}.concat")([x, new])
        channels += num_layers * growth_rate
        if b != len(block_config):
            trans = f"features.transition{b}"
            x = _norm_relu(x, f"{trans}.norm", f"{trans}.relu")
            channels //= 2
            x = _conv(x, channels, 1, name=f"{trans}.conv")
            x = keras.layers.AveragePooling2D(2, 2, name=f"{trans}.pool")(x)
    x = batch_norm(x, name="features.norm5", **_BN)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    # nn.Linear's default weight init (U(+-1/sqrt(fan_in))); torchvision zeroes the bias.
    logits = keras.layers.Dense(num_classes, kernel_initializer=fan_in_uniform(channels),
                                bias_initializer="zeros", name="classifier")(x)
    return keras.Model(inputs, logits, name=name)


def densenet121(*, num_classes: int = 1000, image_size: int = 224) -> keras.Model:
    """torchvision's ``densenet121`` in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; 29 or more (four halvings before the last block).

    Returns:
        A Keras functional model mapping normalised float images to logits.
    """
    return _build(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, bn_size=4,
                  num_classes=num_classes, image_size=image_size, name="densenet121")
