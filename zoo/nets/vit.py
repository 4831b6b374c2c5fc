"""Vision Transformer (Dosovitskiy et al., arXiv:2010.11929): torchvision's ViT-B/16, NHWC input.

Layers are named after torchvision's modules so that ``tools/convert_torchvision.py`` maps its
state_dict with no per-model code: ``conv_proj`` (the patch embedding), ``class_token`` and
``encoder.pos_embedding`` (bare parameters, held by the two small layers below), and per encoder
layer ``encoder.layers.encoder_layer_<i>.{ln_1, self_attention, ln_2, mlp.0, mlp.3}``, then
``encoder.ln`` and ``heads.head``. ``self_attention`` is Keras' ``MultiHeadAttention``; the converter
splits torch's packed ``in_proj_weight`` into its query, key and value kernels.

The position embedding has one row per patch (plus the class token), so the weights depend on the
input size: the size must be a multiple of the patch size (as in torchvision, which refuses other
sizes), and weights trained at one size load only into a model built at the same size.
"""

from __future__ import annotations

import math
from typing import List, Mapping

import numpy as np
import tensorflow as tf

from keras_compat import keras

__all__ = ["ClassToken", "PositionEmbedding", "vit_b_16"]

_LN_EPS = 1e-6
# Registered for .keras files under the zoo's package name (zoo.layers.SERIALIZATION_PACKAGE).
serializable = keras.utils.register_keras_serializable(package="zoo")


def _bare_parameter(layer, tensors: Mapping[str, np.ndarray]) -> np.ndarray:
    # The converter passes a bare torch parameter at exactly the layer's name under the key "".
    if "" not in tensors:
        raise KeyError(f"{layer.name}: the state_dict has no parameter at exactly this name.")
    return np.asarray(tensors[""])


@serializable
class ClassToken(keras.layers.Layer):
    """Prepends a learned token to a (N, L, D) sequence: ViT's ``class_token``.

    Keras has no such layer (torchvision's token is a bare ``nn.Parameter`` of the model). The
    token is zero-initialised, as in torchvision.
    """

    def build(self, input_shape):
        self.token = self.add_weight(name="token", shape=(1, 1, int(input_shape[-1])), initializer="zeros",
                                     trainable=True)
        super().build(input_shape)

    def call(self, inputs):
        token = tf.cast(self.token, inputs.dtype)
        token = tf.broadcast_to(token, tf.stack([tf.shape(inputs)[0], 1, tf.shape(inputs)[2]]))
        return tf.concat([token, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], length, input_shape[2])

    def torch_weights(self, tensors: Mapping[str, np.ndarray]) -> List[np.ndarray]:
        """torchvision's ``class_token`` (1, 1, D), unchanged."""
        return [_bare_parameter(self, tensors)]


@serializable
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned (1, L, D) embedding to a (N, L, D) sequence: ViT's ``encoder.pos_embedding``.

    Keras has no such layer (torchvision's is a bare ``nn.Parameter`` of the encoder). The sequence
    length is fixed when the layer is built; initialised N(0, 0.02) as in torchvision.
    """

    def build(self, input_shape):
        if input_shape[1] is None:
            raise ValueError(f"{self.name}: the sequence length must be known when the model is built.")
        self.embedding = self.add_weight(
            name="embedding", shape=(1, int(input_shape[1]), int(input_shape[2])),
            initializer=keras.initializers.RandomNormal(stddev=0.02), trainable=True,
        )
        super().build(input_shape)

    def call(self, inputs):
        return inputs + tf.cast(self.embedding, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def torch_weights(self, tensors: Mapping[str, np.ndarray]) -> List[np.ndarray]:
        """torchvision's ``encoder.pos_embedding`` (1, L, D), unchanged."""
        return [_bare_parameter(self, tensors)]


@serializable
class AttentionKernelInitializer(keras.initializers.Initializer):
    """``nn.MultiheadAttention``'s initialisation, for the kernels of Keras' ``MultiHeadAttention``.

    torch applies ``xavier_uniform_`` to the packed (3D, D) ``in_proj_weight``, i.e. U(+-sqrt(6 / 4D))
    for the query, key and value kernels, and ``out_proj`` keeps ``nn.Linear``'s U(+-1/sqrt(D)). Keras
    gives one initializer to all four projections, and Glorot on its 3-d kernels would count the fans
    differently, so this one tells them apart by shape: (D, heads, D/heads) in, (heads, D/heads, D) out.
    (Both layers' biases start at zero.)

    Args:
        dim: the model width D.
        num_heads: number of attention heads.
    """

    def __init__(self, dim: int, num_heads: int):
        self.dim, self.num_heads = int(dim), int(num_heads)

    def __call__(self, shape, dtype=None, **kwargs):
        head_dim = self.dim // self.num_heads
        shape = tuple(int(s) for s in shape)
        if shape == (self.dim, self.num_heads, head_dim):
            bound = math.sqrt(6.0 / (self.dim + 3 * self.dim))
        elif shape == (self.num_heads, head_dim, self.dim):
            bound = 1.0 / math.sqrt(self.dim)
        else:
            raise ValueError(f"unexpected attention kernel shape {shape} for width {self.dim}, "
                             f"{self.num_heads} heads")
        return keras.initializers.RandomUniform(-bound, bound)(shape, dtype=dtype or "float32")

    def get_config(self):
        return {"dim": self.dim, "num_heads": self.num_heads}


def _layer_norm(x, name: str):
    return keras.layers.LayerNormalization(axis=-1, epsilon=_LN_EPS, name=name)(x)


def _encoder_layer(x, prefix: str, *, num_heads: int, mlp_dim: int, dropout: float, attention_dropout: float):
    """torchvision's EncoderBlock (pre-norm): x + attn(ln_1(x)), then + mlp(ln_2(.))."""
    dim = x.shape[-1]
    y = _layer_norm(x, f"{prefix}.ln_1")
    y = keras.layers.MultiHeadAttention(
        num_heads=num_heads, key_dim=dim // num_heads, dropout=attention_dropout,
        kernel_initializer=AttentionKernelInitializer(dim, num_heads), name=f"{prefix}.self_attention",
    )(y, y)
    y = keras.layers.Dropout(dropout, name=f"{prefix}.dropout")(y)
    x = keras.layers.Add(name=f"{prefix}.add_1")([y, x])
    # torchvision's MLPBlock: Linear -> GELU -> Dropout -> Linear -> Dropout, xavier_uniform_ weights,
    # N(0, 1e-6) biases. nn.GELU is the exact erf form ("gelu" in Keras unless approximate=True).
    y = _layer_norm(x, f"{prefix}.ln_2")
    for index, units in ((0, mlp_dim), (3, dim)):
        y = keras.layers.Dense(
            units, kernel_initializer=keras.initializers.GlorotUniform(),
            bias_initializer=keras.initializers.RandomNormal(stddev=1e-6), name=f"{prefix}.mlp.{index}",
        )(y)
        if index == 0:
            y = keras.layers.Activation("gelu", name=f"{prefix}.mlp.1")(y)
        y = keras.layers.Dropout(dropout, name=f"{prefix}.mlp.{index + 2}")(y)
    return keras.layers.Add(name=f"{prefix}.add_2")([x, y])


def _vision_transformer(
    *,
    patch_size: int,
    num_layers: int,
    num_heads: int,
    hidden_dim: int,
    mlp_dim: int,
    num_classes: int,
    image_size: int,
    dropout: float,
    attention_dropout: float,
    name: str,
) -> keras.Model:
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    inputs = keras.Input(shape=(image_size, image_size, 3), name="images")
    fan_in = 3 * patch_size * patch_size
    # trunc_normal_(std=sqrt(1/fan_in)) truncates at +-2 (absolute), dozens of std: a plain normal in effect.
    x = keras.layers.Conv2D(
        hidden_dim, patch_size, strides=patch_size, padding="valid",
        kernel_initializer=keras.initializers.RandomNormal(stddev=math.sqrt(1.0 / fan_in)), name="conv_proj",
    )(inputs)
    patches = (image_size // patch_size) ** 2
    # NHWC rows then columns: the same patch order as torchvision's reshape of (N, D, h, w).
    x = keras.layers.Reshape((patches, hidden_dim), name="conv_proj.tokens")(x)
    x = ClassToken(name="class_token")(x)
    x = PositionEmbedding(name="encoder.pos_embedding")(x)
    x = keras.layers.Dropout(dropout, name="encoder.dropout")(x)
    for i in range(num_layers):
        x = _encoder_layer(x, f"encoder.layers.encoder_layer_{i}", num_heads=num_heads, mlp_dim=mlp_dim,
                           dropout=dropout, attention_dropout=attention_dropout)
    x = _layer_norm(x, "encoder.ln")
    # The class token's output (torchvision's x[:, 0]).
    x = keras.layers.Cropping1D((0, patches), name="class_token_output")(x)
    x = keras.layers.Reshape((hidden_dim,), name="pre_logits")(x)
    logits = keras.layers.Dense(num_classes, kernel_initializer="zeros", bias_initializer="zeros",
                                name="heads.head")(x)
    return keras.Model(inputs, logits, name=name)


def vit_b_16(*, num_classes: int = 1000, image_size: int = 224, dropout: float = 0.0,
             attention_dropout: float = 0.0) -> keras.Model:
    """torchvision's ``vit_b_16`` with NHWC input.

    Args:
        num_classes: size of the classifier (zero-initialised, as in torchvision).
        image_size: square input size, a multiple of 16 (the patch size); the position embedding has
            one row per 16x16 patch plus one for the class token.
        dropout: dropout rate after the position embedding, the attention and the MLP layers.
        attention_dropout: dropout rate of the attention weights.

    Returns:
        A Keras model mapping normalised float images (N, H, W, 3) to logits.
    """
    return _vision_transformer(patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072,
                               num_classes=num_classes, image_size=image_size, dropout=dropout,
                               attention_dropout=attention_dropout, name="vit_b_16")
