"""VGG (Simonyan & Zisserman, arXiv:1409.1556): torchvision's networks in NHWC.

Configurations A (vgg11), D (vgg16) and E (vgg19), plain and with batch norm (vgg16_bn), exactly as
torchvision builds them: 3x3 convolutions (padding 1) with ReLU, 2x2 max pooling, an adaptive 7x7
average pooling, then Linear-ReLU-Dropout twice and the logits. Layers are named after torchvision's
modules (``features.N``, ``classifier.N``) so that ``tools/convert_torchvision.py`` maps its weights
with no per-model code; the flatten is in (H, W, C) order, which the converter permutes for
``classifier.0``.
"""

from __future__ import annotations

from typing import Dict, List, Union

from keras_compat import keras
from zoo.layers import AdaptiveAveragePooling2D, batch_norm, max_pool, torch_kernel_initializer

__all__ = ["vgg11", "vgg16", "vgg16_bn", "vgg19"]

# Output channels of each 3x3 convolution; "M" is a 2x2 max pooling (torchvision's cfgs).
_CONFIGS: Dict[str, List[Union[int, str]]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def _build(config: str, *, batch_normalization: bool, num_classes: int, image_size: int, dropout: float,
           name: str) -> keras.Model:
    """torchvision's ``VGG(make_layers(cfgs[config], batch_norm))`` as a flat functional model."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    inputs = keras.Input(shape=(image_size, image_size, 3), name="images")
    x = inputs
    index = 0  # position in torchvision's ``features`` Sequential, which names the layers
    for value in _CONFIGS[config]:
        if value == "M":
            x = max_pool(x, 2, 2, name=f"features.{index}")
            index += 1
            continue
        # A 3x3 stride-1 "same" convolution pads 1 on every side: exactly PyTorch's padding=1.
        x = keras.layers.Conv2D(
            int(value), 3, padding="same", use_bias=True,
            kernel_initializer=torch_kernel_initializer("fan_out"),  # kaiming_normal_(fan_out, relu), bias 0
            name=f"features.{index}",
        )(x)
        if batch_normalization:
            x = batch_norm(x, name=f"features.{index + 1}")  # torch's eps 1e-5, momentum 0.1
        relu_index = index + (2 if batch_normalization else 1)
        x = keras.layers.ReLU(name=f"features.{relu_index}")(x)
        index = relu_index + 1
    x = AdaptiveAveragePooling2D(7, name="avgpool")(x)
    # (H, W, C) order; the converter permutes classifier.0's rows from torchvision's (C, H, W).
    x = keras.layers.Flatten(name="flatten")(x)

    def linear(x, units: int, layer_name: str):
        return keras.layers.Dense(
            units, kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01),  # normal_(0, 0.01), bias 0
            bias_initializer="zeros", name=layer_name,
        )(x)

    x = linear(x, 4096, "classifier.0")
    x = keras.layers.ReLU(name="classifier.1")(x)
    x = keras.layers.Dropout(dropout, name="classifier.2")(x)
    x = linear(x, 4096, "classifier.3")
    x = keras.layers.ReLU(name="classifier.4")(x)
    x = keras.layers.Dropout(dropout, name="classifier.5")(x)
    logits = linear(x, num_classes, "classifier.6")
    return keras.Model(inputs, logits, name=name)


def vgg11(*, num_classes: int = 1000, image_size: int = 224, dropout: float = 0.5) -> keras.Model:
    """torchvision's VGG-11 (configuration A) in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; 32 or more (five 2x2 poolings, then adaptive 7x7 pooling).
        dropout: dropout rate after each hidden fully connected layer (torchvision's ``dropout``).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build("A", batch_normalization=False, num_classes=num_classes, image_size=image_size, dropout=dropout,
                  name="vgg11")


def vgg16(*, num_classes: int = 1000, image_size: int = 224, dropout: float = 0.5) -> keras.Model:
    """torchvision's VGG-16 (configuration D) in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; 32 or more (five 2x2 poolings, then adaptive 7x7 pooling).
        dropout: dropout rate after each hidden fully connected layer (torchvision's ``dropout``).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build("D", batch_normalization=False, num_classes=num_classes, image_size=image_size, dropout=dropout,
                  name="vgg16")


def vgg19(*, num_classes: int = 1000, image_size: int = 224, dropout: float = 0.5) -> keras.Model:
    """torchvision's VGG-19 (configuration E) in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; 32 or more (five 2x2 poolings, then adaptive 7x7 pooling).
        dropout: dropout rate after each hidden fully connected layer (torchvision's ``dropout``).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build("E", batch_normalization=False, num_classes=num_classes, image_size=image_size, dropout=dropout,
                  name="vgg19")


def vgg16_bn(*, num_classes: int = 1000, image_size: int = 224, dropout: float = 0.5) -> keras.Model:
    """torchvision's VGG-16 with batch norm after every convolution, in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; 32 or more (five 2x2 poolings, then adaptive 7x7 pooling).
        dropout: dropout rate after each hidden fully connected layer (torchvision's ``dropout``).

    Returns:
        A Keras model mapping normalised float NHWC images to logits.
    """
    return _build("D", batch_normalization=True, num_classes=num_classes, image_size=image_size, dropout=dropout,
                  name="vgg16_bn")
