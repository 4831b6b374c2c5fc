"""The TFLite formats: float32, dynamic-range and full-integer int8, converted from the Keras model.

Every variant takes one normalised image, ``images`` float32 [1, size, size, 3] (the SavedModel's
``serving_images`` input: the evaluation transform and normalisation happen before, on the device's side),
and returns ``logits`` and ``probabilities`` [1, classes] from its ``serving_default`` signature:

* ``tflite``: float32 throughout; equals the Keras model to about 1e-6 (relative to the largest logit).
* ``tflite_dynamic``: weights stored as int8, activations float (dynamic-range quantisation); a quarter
  of the size, no calibration data.
* ``tflite_int8``: full-integer quantisation, every kernel int8, calibrated on training images (the
  run's train split through the evaluation transform); input and outputs are int8 too, with the scale and
  zero point in the tensors' quantisation parameters (:class:`TFLiteModel` applies them).

The conversion goes through ``TFLiteConverter.from_keras_model``: on TensorFlow 2.21 with Keras 3,
``from_concrete_functions`` on a ``tf.function`` calling the model gives NaN outputs, and a signature
that runs in bfloat16 cannot be converted (tf.Pad in bfloat16), so the model converted is always the
float32 one. The batch size is fixed at 1: with a free batch dimension the converter's lowering of
einsum (``AdaptiveAveragePooling2D`` on a 1x1 map: AlexNet, VGG) writes tensors the interpreter refuses
("BytesRequired number of elements overflowed").

For ``tflite_int8`` the padded max pooling of PyTorch (``zoo.layers.TorchPool2D``: ResNet's and DenseNet's
stem) is converted in an equivalent form: the layer pads with the lowest float32, which calibration records
as the tensor's range (a scale of 1e36: every activation after it quantises to zero, and XNNPACK refuses
the model), so the exported graph pads by repeating the edge rows and columns instead. Under PyTorch's
rules (padding at most half the window, every window starting inside the input or its left padding) each
window holding a padded cell also holds the edge cell it copies, so the maxima are the same.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Optional, Union

import numpy as np
import tensorflow as tf

from keras_compat import keras
from zoo.layers import TorchPool2D

__all__ = ["TFLITE_FILES", "EdgePaddedMaxPool", "TFLiteModel", "convert", "interpreter_class", "quantizable",
           "serving_keras_model"]

# Format name -> file name in the export directory.
TFLITE_FILES = {"tflite": "model.tflite", "tflite_dynamic": "model_dynamic.tflite",
                "tflite_int8": "model_int8.tflite"}


class EdgePaddedMaxPool(TorchPool2D):
    """:class:`zoo.layers.TorchPool2D` max pooling that pads with copies of the edge instead of the lowest
    float32: the same maxima, and a range integer quantisation can represent (see the module's docstring)."""

    def call(self, inputs):
        if self.kind != "max":
            return super().call(inputs)
        height, width = inputs.shape[1], inputs.shape[2]
        out_h, out_w = self._out_size(height), self._out_size(width)
        extra_h = max((out_h - 1) * self.strides + self.pool_size - (height + 2 * self.padding), 0)
        extra_w = max((out_w - 1) * self.strides + self.pool_size - (width + 2 * self.padding), 0)
        x = _edge_pad(inputs, 1, self.padding, self.padding + extra_h)
        x = _edge_pad(x, 2, self.padding, self.padding + extra_w)
        window = [1, self.pool_size, self.pool_size, 1]
        return tf.nn.max_pool2d(x, window, [1, self.strides, self.strides, 1], "VALID")


def _edge_pad(x, axis: int, before: int, after: int):
    if not (before or after):
        return x
    size = x.shape[axis]
    first = tf.gather(x, [0], axis=axis)
    last = tf.gather(x, [size - 1], axis=axis)
    return tf.concat([first] * before + [x] + [last] * after, axis=axis)


def quantizable(model):
    """``model`` with its padded max pooling layers as :class:`EdgePaddedMaxPool` (same weights, same outputs);
    ``model`` itself when it has none."""
    def clone(layer):
        config = layer.get_config()
        if type(layer) is TorchPool2D and layer.kind == "max" and (layer.padding or layer.ceil_mode):
            return EdgePaddedMaxPool.from_config(config)
        return layer.__class__.from_config(config)

    if not any(type(layer) is TorchPool2D and layer.kind == "max" for layer in model.layers):
        return model
    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def serving_keras_model(model, image_size: int):
    """``model`` with a batch-1 ``images`` input and named ``logits`` and ``probabilities`` outputs."""
    images = keras.Input((image_size, image_size, 3), batch_size=1, name="images")
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(model(images))
    probabilities = keras.layers.Softmax(dtype="float32", name="probabilities")(logits)
    return keras.Model(images, {"logits": logits, "probabilities": probabilities}, name="serving")


def convert(model, image_size: int, kind: str = "tflite",
            representative: Optional[Callable[[], Iterable[np.ndarray]]] = None) -> bytes:
    """The flatbuffer of ``model`` (a float32 Keras model taking normalised NHWC images) as ``kind``.

    Args:
        model: the float32 network.
        image_size: its input size.
        kind: ``tflite``, ``tflite_dynamic`` or ``tflite_int8``.
        representative: ``tflite_int8`` only: a function returning an iterable of float32 [1, size,
            size, 3] normalised training images, the calibration data.

    Raises:
        ValueError: an unknown kind, ``tflite_int8`` without calibration data, or a model with an
            operation that has no int8 kernel (one line naming it).
    """
    if kind not in TFLITE_FILES:
        raise ValueError(f"unknown TFLite format {kind!r}; one of {', '.join(TFLITE_FILES)}")
    if kind == "tflite_int8":
        model = quantizable(model)
    converter = tf.lite.TFLiteConverter.from_keras_model(serving_keras_model(model, image_size))
    if kind != "tflite":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "tflite_int8":
        if representative is None:
            raise ValueError("tflite_int8 needs calibration images (the run's training data).")
        converter.representative_dataset = lambda: ([np.asarray(image, np.float32)] for image in representative())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        return converter.convert()
    except Exception as e:  # the converter raises ConverterError (a private class) with MLIR's diagnostics
        if kind != "tflite_int8":
            raise
        detail = next((line.strip() for line in str(e).splitlines() if "error:" in line), str(e).splitlines()[0])
        raise ValueError(f"{model.name}: no full-integer TFLite conversion ({detail}); export tflite_dynamic "
                         "instead.") from None


def interpreter_class():
    """The LiteRT interpreter (``ai-edge-litert``), else TensorFlow's own (deprecated in TF 2.20+)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    return Interpreter


class TFLiteModel:
    """Runs a TFLite file of :func:`convert` on float32 normalised images, any number of them.

    Quantised inputs and outputs (``tflite_int8``) are quantised and dequantised with the tensors' own
    scale and zero point, so every variant is called alike.

    Args:
        model: the flatbuffer's bytes or a file path.
        num_threads: interpreter threads (None: the runtime's default).
    """

    def __init__(self, model: Union[bytes, str], num_threads: Optional[int] = None) -> None:
        Interpreter = interpreter_class()
        if isinstance(model, (bytes, bytearray)):
            self.interpreter = Interpreter(model_content=bytes(model), num_threads=num_threads)
        else:
            self.interpreter = Interpreter(model_path=model, num_threads=num_threads)
        self._runner = self.interpreter.get_signature_runner("serving_default")
        self.input_details = self._runner.get_input_details()["images"]
        self.output_details = self._runner.get_output_details()

    @property
    def input_dtype(self) -> np.dtype:
        """The input tensor's type (float32, or int8 for full-integer models)."""
        return np.dtype(self.input_details["dtype"])

    def __call__(self, images: np.ndarray) -> Dict[str, np.ndarray]:
        """``{"logits", "probabilities"}`` float32 [N, classes] of normalised float32 images [N, s, s, 3]."""
        images = np.asarray(images, np.float32)
        rows = [self._one(images[i:i + 1]) for i in range(images.shape[0])]
        return {name: np.concatenate([r[name] for r in rows]) for name in rows[0]} if rows else {}

    def _one(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        details = self.input_details
        if self.input_dtype != np.float32:
            scale, zero = details["quantization"]
            info = np.iinfo(self.input_dtype)
            image = np.clip(np.round(image / scale + zero), info.min, info.max).astype(self.input_dtype)
        out = self._runner(images=image)
        result = {}
        for name, value in out.items():
            d = self.output_details[name]
            if np.dtype(d["dtype"]) != np.float32:
                scale, zero = d["quantization"]
                value = (value.astype(np.float32) - zero) * scale
            result[name] = np.asarray(value, np.float32)
        return result
