"""Layers the zoo needs that Keras does not provide on every supported version."""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from keras_compat import IS_KERAS_3, keras, layer_dtype

# Every custom layer, initializer and activation of the zoo is registered under this package name, so that a
# ``.keras`` file (export/keras_file.py) names them ``zoo>ClassName`` and loads without custom_objects.
SERIALIZATION_PACKAGE = "zoo"
serializable = keras.utils.register_keras_serializable(package=SERIALIZATION_PACKAGE)


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


@serializable
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


# -- torchvision-exact building blocks ---------------------------------------------------------------
# PyTorch pads convolutions and pools symmetrically; Keras' "same" pads more at the bottom/right when
# the stride is 2 and the input even. These helpers pad explicitly so that every size matches.

def torch_kernel_initializer(mode: str = "fan_out", nonlinearity_gain: float = 2.0, distribution: str = "normal"):
    """``kaiming_normal_``/``kaiming_uniform_`` as torchvision calls them, as a Keras initializer.

    PyTorch's fan_out of a conv kernel is out_channels x kh x kw, which is also Keras' for Conv2D
    kernels (kh, kw, in/groups, out). Depthwise kernels need :func:`depthwise_kernel_initializer`.
    """
    dist = "untruncated_normal" if distribution == "normal" else "uniform"
    return keras.initializers.VarianceScaling(nonlinearity_gain, mode, dist)


@serializable
class DepthwiseKaimingNormal(keras.initializers.Initializer):
    """``kaiming_normal_(mode="fan_out")`` of a depthwise PyTorch kernel, for Keras' (kh, kw, C, 1) layout.

    PyTorch stores a depthwise kernel as (C, 1, kh, kw): its fan_out is C x kh x kw. Keras computes
    fan_out = kh x kw for (kh, kw, C, 1), which would make the weights sqrt(C) times too large.
    """

    def __init__(self, gain: float = 2.0):
        self.gain = gain

    def __call__(self, shape, dtype=None, **kwargs):
        kh, kw, channels, multiplier = shape
        std = math.sqrt(self.gain / (channels * multiplier * kh * kw))
        return tf.random.normal(shape, stddev=std, dtype=dtype or tf.float32)

    def get_config(self):
        return {"gain": self.gain}


def conv2d(x, filters: int, kernel_size: int, *, strides: int = 1, padding: int = 0, groups: int = 1,
           use_bias: bool = False, name: str, kernel_initializer=None, dilation: int = 1):
    """``nn.Conv2d(..., padding=padding)``: explicit symmetric zero padding, then a VALID convolution.

    A grouped convolution with one input channel per group (``groups == channels == filters``) is
    built as Keras' ``DepthwiseConv2D``; its kernel then needs :class:`DepthwiseKaimingNormal`.
    """
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}.pad")(x)
    in_channels = x.shape[-1]
    if groups > 1 and groups == in_channels == filters:
        return keras.layers.DepthwiseConv2D(
            kernel_size, strides=strides, padding="valid", use_bias=use_bias, dilation_rate=dilation,
            depthwise_initializer=kernel_initializer or DepthwiseKaimingNormal(), name=name,
            dtype=layer_dtype("depthwise"),
        )(x)
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="valid", groups=groups, use_bias=use_bias,
        dilation_rate=dilation, kernel_initializer=kernel_initializer or torch_kernel_initializer(), name=name,
    )(x)


@serializable
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras' batch normalisation, computed by TensorFlow's fused kernel on NHWC images.

    Keras 3 computes batch norm as separate operations in float32 (casting bfloat16 activations up
    and back down, then the moments, then the normalisation): each a pass over the activations, 40% of
    a mixed-bfloat16 ResNet-50 training step on a CPU (bench/RESULTS.md). ``FusedBatchNormV3`` does the
    statistics, the normalisation and the moving averages in one kernel, on the compute dtype. Same
    variables, same arithmetic; like PyTorch (and unlike Keras 3), the moving variance averages the
    unbiased batch variance. Other cases (synchronised statistics, masks, other axes, renorm) and
    Keras 2, whose layer is fused already, take Keras' own path. The class keeps Keras' name: the
    converter and the weight-decay rules recognise layers by it.
    """

    def _fusable(self, inputs, mask) -> bool:
        return (mask is None and len(inputs.shape) == 4 and self.axis in (-1, 3)
                and self.center and self.scale and not self.renorm and not getattr(self, "synchronized", False))

    def call(self, inputs, training=None, mask=None):
        if not IS_KERAS_3:
            return super().call(inputs, training=training)
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.convert_to_tensor(inputs)
        if x.dtype not in (tf.float32, tf.bfloat16, tf.float16):
            x = tf.cast(x, tf.float32)
        training = bool(training) and self.trainable
        y, mean, variance = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=tf.convert_to_tensor(self.gamma), offset=tf.convert_to_tensor(self.beta),
            mean=tf.convert_to_tensor(self.moving_mean), variance=tf.convert_to_tensor(self.moving_variance),
            epsilon=self.epsilon, exponential_avg_factor=1.0 - self.momentum if training else 1.0,
            data_format="NHWC", is_training=training)[:3]
        if training:  # the kernel returned the updated moving averages
            self.moving_mean.assign(mean)
            self.moving_variance.assign(variance)
        return tf.cast(y, self.compute_dtype)


def batch_norm(x, *, name: str, eps: float = 1e-5, momentum: float = 0.1, zero_init: bool = False):
    """``nn.BatchNorm2d(eps, momentum)``: PyTorch's momentum is the weight of the new batch, Keras' the old."""
    return BatchNormalization(
        epsilon=eps, momentum=1.0 - momentum, name=name,
        gamma_initializer="zeros" if zero_init else "ones",
    )(x)


@serializable
class TorchPool2D(keras.layers.Layer):
    """``nn.MaxPool2d`` / ``nn.AvgPool2d`` with PyTorch's padding and ``ceil_mode`` semantics.

    Keras' pooling layers pad asymmetrically ("same") or not at all, and their "same" average
    excludes padding from the count. Here max pooling pads with -inf (padding never wins), average
    pooling with zeros counted in the divisor (PyTorch's ``count_include_pad=True``), and
    ``ceil_mode`` adds the extra bottom/right window PyTorch allows when that window starts inside
    the padded input (averaged over its in-bounds part, as PyTorch does).

    Args:
        kind: ``max`` or ``avg``.
        pool_size, strides, padding: as in PyTorch.
        ceil_mode: PyTorch's ``ceil_mode``.
    """

    def __init__(self, kind: str, pool_size: int, strides: Optional[int] = None, padding: int = 0,
                 ceil_mode: bool = False, **kwargs):
        super().__init__(**kwargs)
        if kind not in ("max", "avg"):
            raise ValueError(f"kind must be 'max' or 'avg', got {kind!r}")
        self.kind, self.pool_size = kind, int(pool_size)
        self.strides = int(strides or pool_size)
        self.padding, self.ceil_mode = int(padding), bool(ceil_mode)

    def _out_size(self, size: int) -> int:
        span = size + 2 * self.padding - self.pool_size
        out = (-(-span // self.strides) if self.ceil_mode else span // self.strides) + 1
        if self.ceil_mode and (out - 1) * self.strides >= size + self.padding:
            out -= 1  # PyTorch: the last window must start inside the input or its left padding
        return out

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        out_h, out_w = self._out_size(height), self._out_size(width)
        extra_h = max((out_h - 1) * self.strides + self.pool_size - (height + 2 * self.padding), 0)
        extra_w = max((out_w - 1) * self.strides + self.pool_size - (width + 2 * self.padding), 0)
        pads = [[0, 0], [self.padding, self.padding + extra_h], [self.padding, self.padding + extra_w], [0, 0]]
        window = [1, self.pool_size, self.pool_size, 1]
        stride = [1, self.strides, self.strides, 1]
        if self.kind == "max":
            if any(p for pair in pads for p in pair):
                inputs = tf.pad(inputs, pads, constant_values=inputs.dtype.min)
            return tf.nn.max_pool2d(inputs, window, stride, "VALID")
        padded = tf.pad(inputs, pads) if any(p for pair in pads for p in pair) else inputs
        summed = tf.nn.avg_pool2d(padded, window, stride, "VALID") * float(self.pool_size * self.pool_size)
        if not (extra_h or extra_w):
            return summed / float(self.pool_size * self.pool_size)
        # Divisor per window: the padded extent, clipped at the input's right/bottom padding edge.
        counts = [self._counts(out, size) for out, size in ((out_h, height), (out_w, width))]
        divisor = np.outer(counts[0], counts[1]).astype(np.float32)[None, :, :, None]
        return summed / tf.constant(divisor, dtype=summed.dtype)

    def _counts(self, out: int, size: int) -> np.ndarray:
        starts = np.arange(out) * self.strides - self.padding
        ends = np.minimum(starts + self.pool_size, size + self.padding)
        return (ends - starts).astype(np.float32)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self._out_size(input_shape[1]), self._out_size(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind, pool_size=self.pool_size, strides=self.strides, padding=self.padding,
                      ceil_mode=self.ceil_mode)
        return config


def max_pool(x, pool_size: int, strides: Optional[int] = None, padding: int = 0, ceil_mode: bool = False, *,
             name: str):
    """``nn.MaxPool2d``; plain Keras pooling where that is already exact (no padding, no ceil_mode)."""
    if not padding and not ceil_mode:
        return keras.layers.MaxPooling2D(pool_size, strides or pool_size, name=name)(x)
    return TorchPool2D("max", pool_size, strides, padding, ceil_mode, name=name)(x)


def avg_pool(x, pool_size: int, strides: Optional[int] = None, padding: int = 0, ceil_mode: bool = False, *,
             name: str):
    """``nn.AvgPool2d`` / ``F.avg_pool2d`` (``count_include_pad=True``)."""
    if not padding and not ceil_mode:
        return keras.layers.AveragePooling2D(pool_size, strides or pool_size, name=name)(x)
    return TorchPool2D("avg", pool_size, strides, padding, ceil_mode, name=name)(x)


@serializable
def hard_sigmoid(x):
    """PyTorch's ``hardsigmoid``: relu6(x + 3) / 6 (Keras 2's ``hard_sigmoid`` is 0.2x + 0.5)."""
    return tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


@serializable
def hard_swish(x):
    """PyTorch's ``hardswish``: x * relu6(x + 3) / 6."""
    return x * hard_sigmoid(x)


@serializable
class StochasticDepth(keras.layers.Layer):
    """torchvision's ``StochasticDepth(p, mode="row")``: drops a residual branch per example.

    In training each example's branch is zeroed with probability ``rate`` and the kept ones are
    scaled by ``1 / (1 - rate)``; at inference it is the identity. Keras has no such layer (Keras
    CV's lives outside Keras, and Keras 2 has none).
    """

    def __init__(self, rate: float, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"stochastic depth rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = tf.concat([tf.shape(inputs)[:1], tf.ones([tf.rank(inputs) - 1], tf.int32)], 0)
        mask = tf.cast(tf.random.uniform(shape) < keep, inputs.dtype)
        return inputs * mask / tf.cast(keep, inputs.dtype)

    def get_config(self):
        config = super().get_config()
        config["rate"] = self.rate
        return config
