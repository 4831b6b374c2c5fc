"""AlexNet: torchvision's network and the Ascend ModelZoo recipe's variant, NHWC.

Both follow Krizhevsky's "One weird trick" single-tower AlexNet (arXiv:1404.5997) without local
response normalisation, as torchvision does. Layer names are stable (``conv1`` .. ``conv5``,
``fc6``, ``fc7``, ``logits``) because checkpoints, weight import and fine-tuning refer to them.
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

from keras_compat import keras
from zoo.layers import AdaptiveAveragePooling2D, fan_in_uniform

__all__ = ["INITIALIZERS", "alexnet", "alexnet_modelzoo"]


def _he_uniform(fan_in: int) -> Tuple[object, object]:
    return keras.initializers.HeUniform(), keras.initializers.Zeros()


def _xavier(fan_in: int) -> Tuple[object, object]:
    return keras.initializers.GlorotUniform(), keras.initializers.Zeros()


def _torchvision(fan_in: int) -> Tuple[object, object]:
    # kaiming_uniform_(a=sqrt(5)) reduces to U(+-1/sqrt(fan_in)); biases use the same bound.
    return fan_in_uniform(fan_in), fan_in_uniform(fan_in)


# --initializer (the recipe's --version): the recipe's default is he_uniform.
INITIALIZERS: Dict[str, Callable[[int], Tuple[object, object]]] = {
    "he_uniform": _he_uniform,
    "xavier": _xavier,
    "torchvision": _torchvision,
}


def _build(
    *,
    widths: Tuple[int, int, int, int, int],
    dropout: float,
    dropout_before_fc: bool,
    num_classes: int,
    image_size: int,
    initializer: str,
    name: str,
) -> keras.Model:
    if initializer not in INITIALIZERS:
        raise ValueError(f"initializer must be one of {', '.join(sorted(INITIALIZERS))}, got {initializer!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    init = INITIALIZERS[initializer]

    def conv(x, filters, kernel, cin, *, strides=1, padding="same", layer_name):
        k_init, b_init = init(kernel * kernel * cin)
        return keras.layers.Conv2D(
            filters, kernel, strides=strides, padding=padding, activation="relu",
            kernel_initializer=k_init, bias_initializer=b_init, name=layer_name,
        )(x)

    def dense(x, units, fan_in, *, activation, layer_name):
        k_init, b_init = init(fan_in)
        return keras.layers.Dense(
            units, activation=activation, kernel_initializer=k_init, bias_initializer=b_init,
            name=layer_name,
        )(x)

    c1, c2, c3, c4, c5 = widths
    inputs = keras.Input(shape=(image_size, image_size, 3), name="images")
    x = keras.layers.ZeroPadding2D(2, name="pad1")(inputs)
    x = conv(x, c1, 11, 3, strides=4, padding="valid", layer_name="conv1")
    x = keras.layers.MaxPooling2D(3, 2, name="pool1")(x)
    x = conv(x, c2, 5, c1, layer_name="conv2")
    x = keras.layers.MaxPooling2D(3, 2, name="pool2")(x)
    x = conv(x, c3, 3, c2, layer_name="conv3")
    x = conv(x, c4, 3, c3, layer_name="conv4")
    x = conv(x, c5, 3, c4, layer_name="conv5")
    x = keras.layers.MaxPooling2D(3, 2, name="pool5")(x)
    x = AdaptiveAveragePooling2D(6, name="avgpool")(x)
    x = keras.layers.Flatten(name="flatten")(x)  # (H, W, C) order; see tools/convert_torchvision.py
    features = 6 * 6 * c5
    if dropout_before_fc:  # torchvision: Dropout -> Linear -> ReLU, twice
        x = keras.layers.Dropout(dropout, name="drop6")(x)
        x = dense(x, 4096, features, activation="relu", layer_name="fc6")
        x = keras.layers.Dropout(dropout, name="drop7")(x)
        x = dense(x, 4096, 4096, activation="relu", layer_name="fc7")
    else:  # the recipe: Linear -> ReLU -> Dropout, twice
        x = dense(x, 4096, features, activation="relu", layer_name="fc6")
        x = keras.layers.Dropout(dropout, name="drop6")(x)
        x = dense(x, 4096, 4096, activation="relu", layer_name="fc7")
        x = keras.layers.Dropout(dropout, name="drop7")(x)
    logits = dense(x, num_classes, 4096, activation=None, layer_name="logits")
    return keras.Model(inputs, logits, name=name)


def alexnet(
    *, num_classes: int = 1000, image_size: int = 224, initializer: str = "he_uniform", dropout: float = 0.5
) -> keras.Model:
    """torchvision's AlexNet in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; 63 or more (adaptive 6x6 pooling as in torchvision).
        initializer: ``he_uniform`` (the recipe's default), ``xavier`` or ``torchvision``.
        dropout: dropout rate before each hidden fully connected layer.

    Returns:
        An unbuilt-optimizer Keras model mapping normalised float images to logits.
    """
    return _build(
        widths=(64, 192, 384, 256, 256), dropout=dropout, dropout_before_fc=True,
        num_classes=num_classes, image_size=image_size, initializer=initializer, name="alexnet",
    )


def alexnet_modelzoo(
    *, num_classes: int = 1000, image_size: int = 224, initializer: str = "he_uniform", dropout: float = 0.35
) -> keras.Model:
    """The recipe's AlexNet: 96 first-layer filters, dropout rate 0.35 after fc6 and fc7.

    The recipe put a ReLU on its logits; that is a defect (negative logits are clipped to 0 and
    get no gradient), so this builder keeps the logits linear.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; 63 or more.
        initializer: ``he_uniform`` (default), ``xavier`` or ``torchvision``.
        dropout: dropout rate after each hidden fully connected layer.
    """
    return _build(
        widths=(96, 192, 384, 256, 256), dropout=dropout, dropout_before_fc=False,
        num_classes=num_classes, image_size=image_size, initializer=initializer, name="alexnet_modelzoo",
    )
