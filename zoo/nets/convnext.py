"""ConvNeXt (Liu et al., "A ConvNet for the 2020s", arXiv:2201.03545): torchvision's network, NHWC.

Layers are named after torchvision's modules so that ``tools/convert_torchvision.py`` maps its
state_dict with no per-model code: the stem is ``features.0.0`` (conv) and ``features.0.1`` (norm),
the stages ``features.1/3/5/7``, each block ``features.<s>.<i>.block.{0,2,3,5}`` (depthwise conv,
layer norm, the two linear layers) with its ``features.<s>.<i>.layer_scale``, the downsampling
layers ``features.2/4/6.{0,1}`` and the head ``classifier.0`` (norm) and ``classifier.2`` (linear).

torchvision's LayerNorm2d normalises each pixel over its channels; in NHWC that is Keras'
``LayerNormalization`` over the last axis, and its ``nn.Linear`` on (N, H, W, C) is a ``Dense``.
"""

from __future__ import annotations

from typing import List, Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf

from keras_compat import keras
from zoo.layers import StochasticDepth, conv2d, serializable

__all__ = ["LayerScale", "convnext_tiny"]

_LN_EPS = 1e-6
# (channels, blocks) per stage; each stage but the last is followed by a 2x2/2 downsampling conv.
_TINY: Tuple[Tuple[int, int], ...] = ((96, 3), (192, 3), (384, 9), (768, 3))


@serializable
class LayerScale(keras.layers.Layer):
    """``x * gamma`` with one learned scale per channel (ConvNeXt's ``layer_scale``, CaiT's LayerScale).

    Keras has no such layer. torchvision keeps the scale as a bare ``(C, 1, 1)`` parameter of the
    block; here it is a ``(C,)`` weight broadcast over the last (channel) axis.

    Args:
        init_value: initial value of every scale (torchvision's ConvNeXt: 1e-6).
    """

    def __init__(self, init_value: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.init_value = float(init_value)

    def build(self, input_shape):
        self.scale = self.add_weight(
            name="scale", shape=(int(input_shape[-1]),),
            initializer=keras.initializers.Constant(self.init_value), trainable=True,
        )
        super().build(input_shape)

    def call(self, inputs):
        return inputs * tf.cast(self.scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def torch_weights(self, tensors: Mapping[str, np.ndarray]) -> List[np.ndarray]:
        """torchvision's bare ``layer_scale`` parameter (key ``""``), shape (C, 1, 1) -> (C,)."""
        if "" not in tensors:
            raise KeyError(f"{self.name}: the state_dict has no parameter at exactly this name.")
        return [np.asarray(tensors[""]).reshape(-1)]

    def get_config(self):
        config = super().get_config()
        config["init_value"] = self.init_value
        return config


def _weight_init():
    # trunc_normal_(std=0.02) truncates at +-2 (absolute), i.e. +-100 std: a plain normal in effect.
    # Keras' TruncatedNormal would cut at 2 std instead.
    return keras.initializers.RandomNormal(stddev=0.02)


def _layer_norm(x, name: str):
    return keras.layers.LayerNormalization(axis=-1, epsilon=_LN_EPS, name=name)(x)


def _dense(x, units: int, name: str):
    return keras.layers.Dense(units, kernel_initializer=_weight_init(), name=name)(x)


def _block(x, prefix: str, *, layer_scale: float, drop_rate: float):
    """torchvision's CNBlock: dwconv 7x7 -> LN -> Linear 4C -> GELU -> Linear C -> scale -> drop path, + x."""
    channels = x.shape[-1]
    y = conv2d(x, channels, 7, padding=3, groups=channels, use_bias=True, kernel_initializer=_weight_init(),
               name=f"{prefix}.block.0")
    y = _layer_norm(y, f"{prefix}.block.2")
    y = _dense(y, 4 * channels, f"{prefix}.block.3")
    # nn.GELU(): the exact erf form ("gelu" is exact on Keras 3 and Keras 2 unless approximate=True).
    y = keras.layers.Activation("gelu", name=f"{prefix}.block.4")(y)
    y = _dense(y, channels, f"{prefix}.block.5")
    y = LayerScale(layer_scale, name=f"{prefix}.layer_scale")(y)
    y = StochasticDepth(drop_rate, name=f"{prefix}.stochastic_depth")(y)
    return keras.layers.Add(name=f"{prefix}.add")([y, x])


def _convnext(
    stages: Sequence[Tuple[int, int]],
    *,
    num_classes: int,
    image_size: int,
    stochastic_depth_rate: float,
    layer_scale: float,
    name: str,
) -> keras.Model:
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    inputs = keras.Input(shape=(image_size, image_size, 3), name="images")
    # Stem: a 4x4/4 "patchify" conv (with bias) and a channel layer norm.
    x = conv2d(inputs, stages[0][0], 4, strides=4, use_bias=True, kernel_initializer=_weight_init(),
               name="features.0.0")
    x = _layer_norm(x, "features.0.1")
    total_blocks = sum(blocks for _, blocks in stages)
    block_id = 0
    for s, (_, blocks) in enumerate(stages):
        index = 1 + 2 * s  # stages are features.1/3/5/7, downsampling features.2/4/6
        for i in range(blocks):
            # torchvision: the rate grows linearly from 0 (first block) to stochastic_depth_rate (last).
            rate = stochastic_depth_rate * block_id / (total_blocks - 1.0)
            x = _block(x, f"features.{index}.{i}", layer_scale=layer_scale, drop_rate=rate)
            block_id += 1
        if s + 1 < len(stages):
            x = _layer_norm(x, f"features.{index + 1}.0")
            x = conv2d(x, stages[s + 1][0], 2, strides=2, use_bias=True, kernel_initializer=_weight_init(),
                       name=f"features.{index + 1}.1")
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    x = _layer_norm(x, "classifier.0")
    logits = _dense(x, num_classes, "classifier.2")
    return keras.Model(inputs, logits, name=name)


def convnext_tiny(*, num_classes: int = 1000, image_size: int = 224, stochastic_depth_rate: float = 0.1,
                  layer_scale: float = 1e-6) -> keras.Model:
    """torchvision's ``convnext_tiny`` in NHWC.

    Args:
        num_classes: size of the classifier.
        image_size: square input size; 32 or more (four downsamplings by 4, 2, 2, 2).
        stochastic_depth_rate: drop-path rate of the last block; it grows linearly from 0 over the blocks.
        layer_scale: initial value of each block's per-channel scale.

    Returns:
        A Keras model mapping normalised float images (N, H, W, 3) to logits.
    """
    return _convnext(_TINY, num_classes=num_classes, image_size=image_size,
                     stochastic_depth_rate=stochastic_depth_rate,
                     layer_scale=layer_scale, name="convnext_tiny")
