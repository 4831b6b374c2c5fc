"""Layers the zoo needs that Keras does not provide on every supported version."""

from __future__ import annotations

import math
from typing import Tuple, Union

import numpy as np
import tensorflow as tf

from keras_compat import keras


def adaptive_pool_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Averaging matrix (out_size x in_size) of PyTorch's ``adaptive_avg_pool`` along one axis.

    Output cell ``i`` averages input cells ``floor(i*in/out) .. ceil((i+1)*in/out) - 1``, which
    is PyTorch's rule; it also covers inputs smaller than the output (cells are repeated).
    """
    m = np.zeros((out_size, in_size), dtype=np.float32)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -(-((i + 1) * in_size) // out_size)  # ceil division
        m[i, start:end] = 1.0 / (end - start)
    return m


class AdaptiveAveragePooling2D(keras.layers.Layer):
    """PyTorch-compatible adaptive average pooling for NHWC maps of static spatial size.

    Keras 3's layer of this name fails inside ``tf.function`` on 1x1 maps and Keras 2 has none;
    this one is two small matrix products, exact for every map size, and the identity when the
    map already has the output size (AlexNet at 224x224).

    Args:
        output_size: int or (height, width) of the output map.
    """

    def __init__(self, output_size: Union[int, Tuple[int, int]], **kwargs):
        super().__init__(**kwargs)
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(int(s) for s in output_size)

    def build(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        if height is None or width is None:
            raise ValueError(
                f"{self.name}: the input's spatial size must be known when the model is built, "
                f"got {tuple(input_shape)}; build the model with a fixed image size."
            )
        self._identity = (height, width) == self.output_size
        self._rows = adaptive_pool_matrix(height, self.output_size[0])
        self._cols = adaptive_pool_matrix(width, self.output_size[1])
        super().build(input_shape)

    def call(self, inputs):
        if self._identity:
            return inputs
        rows = tf.constant(self._rows, dtype=inputs.dtype)
        cols = tf.constant(self._cols, dtype=inputs.dtype)
        x = tf.einsum("ih,bhwc->biwc", rows, inputs)
        return tf.einsum("jw,biwc->bijc", cols, x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self.output_size + (input_shape[3],)

    def get_config(self):
        config = super().get_config()
        config["output_size"] = self.output_size
        return config


def fan_in_uniform(fan_in: int) -> keras.initializers.Initializer:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for conv/linear weights and biases."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)
