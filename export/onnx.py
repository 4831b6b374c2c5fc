"""The ONNX format (opset 17), converted by ``tf2onnx`` from a ``tf.function`` calling the float32 model.

Input ``images`` float32 [N, size, size, 3] (NHWC, normalised: the SavedModel's ``serving_images``), outputs
``logits`` and ``probabilities`` float32 [N, classes]. ``tf2onnx``, ``onnx`` and (to check or run the file)
``onnxruntime`` come from ``requirements-export.txt``; they are imported only when this format is asked for.

Keras 3's exact GELU (ConvNeXt, ViT) computes ``0.5 x erfc(-x / sqrt 2)``, and tf2onnx 1.17 has no handler for
TensorFlow's ``Erfc``: it copies the op into the graph, which onnxruntime refuses ("No Op registered for Erfc").
:func:`convert` maps it to ``1 - Erf(x)`` (an ONNX operator since opset 9); the difference, at most float32's
rounding of 1 - erf near 1, is far below the 1e-4 the export checks.

Keras 3 runs a grouped convolution (ResNeXt) on TensorFlow as a nested ``tf.function(jit_compile=True)``
(TensorFlow's CPU kernel has no groups), which tf2onnx cannot inline: the graph keeps a
``StatefulPartitionedCall`` onnxruntime refuses. While the function is traced for the conversion, Keras'
convolution is the plain ``tf.nn.convolution`` (the same op, traced, never run), which tf2onnx converts to an
ONNX ``Conv`` with its ``group``.

Memory: tf2onnx 1.17 keeps many copies of the weights while it converts (freezing, grappler, then each ONNX
optimiser pass): about 60 bytes per byte of weights at its peak (:func:`memory_needed`), 15 GB for AlexNet,
more than 30 GB for VGG. The conversion runs with ``TF2ONNX_CATCH_ERRORS=FALSE``, which spares a deep copy of
the graph before each optimiser pass (8.2 to 6.2 GB for one 151 MB layer); its large-model path, which would
keep the weights outside, fails on NumPy 2 (``np.product``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Dict, Iterator, Optional, Sequence

import numpy as np
import tensorflow as tf

__all__ = ["MEMORY_PER_WEIGHT_BYTE", "ONNX_FILE", "OPSET", "OnnxModel", "available_memory", "check_converter",
           "convert", "memory_needed"]

ONNX_FILE = "model.onnx"
OPSET = 17
_INSTALL = "pip install -r requirements-export.txt"
_CATCH_ERRORS = "TF2ONNX_CATCH_ERRORS"  # tf2onnx's switch: copy the graph before each optimiser pass
# tf2onnx 1.17's peak resident memory per byte of float32 weights, measured (AlexNet at 63 px: 244 MB of weights,
# 14.8 GB peak; freezing, grappler and every optimiser pass keep copies of the constants).
MEMORY_PER_WEIGHT_BYTE = 60


def memory_needed(model) -> int:
    """About the peak memory (bytes) converting ``model`` takes: :data:`MEMORY_PER_WEIGHT_BYTE` per weight byte,
    plus 2 GB for TensorFlow itself."""
    return MEMORY_PER_WEIGHT_BYTE * 4 * int(model.count_params()) + (2 << 30)


def available_memory() -> Optional[int]:
    """``MemAvailable`` of /proc/meminfo in bytes, or None where there is none (not Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_converter() -> None:
    """Raises ValueError (one line, saying how to install it) when ``tf2onnx`` cannot be imported."""
    try:
        import tf2onnx  # noqa: F401
    except ImportError as e:
        raise ValueError(f"--export_formats=onnx needs tf2onnx ({_INSTALL}): {e}") from None


def _erfc(ctx, node, name, args):
    """tf2onnx handler (the ``custom_op_handlers`` form): ``Erfc(x)`` as ``Sub(1, Erf(x))``."""
    from tf2onnx import utils

    x = node.input[0]
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(x))
    erf = ctx.make_node("Erf", [x], op_name_scope=node.name)
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
    node.type = "Sub"
    node.domain = ""
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])


@contextlib.contextmanager
def _traceable_convolutions() -> Iterator[None]:
    """Keras 3's TensorFlow convolution without its XLA-compiled inner function for grouped convolutions."""
    try:
        from keras.src.backend.tensorflow import nn as backend_nn
    except ImportError:  # Keras 2: convolutions are plain ops already
        yield
        return
    original = backend_nn.conv

    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        from keras.src import backend

        data_format = backend_nn._convert_data_format(backend.standardize_data_format(data_format),
                                                      len(inputs.shape))
        return tf.nn.convolution(inputs, kernel, strides, padding.upper(), data_format=data_format,
                                 dilations=dilation_rate)

    backend_nn.conv = conv
    try:
        yield
    finally:
        backend_nn.conv = original


def convert(model, image_size: int, *, opset: int = OPSET) -> bytes:
    """The serialized ONNX model of ``model`` (a float32 Keras model taking normalised NHWC images).

    Raises:
        ValueError: ``tf2onnx`` is not installed (the message says how to install it).
    """
    check_converter()
    import tf2onnx

    @tf.function
    def serve(images):
        logits = tf.cast(model(images, training=False), tf.float32)
        return {"logits": tf.identity(logits), "probabilities": tf.nn.softmax(logits)}

    spec = [tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="images")]
    previous = os.environ.get(_CATCH_ERRORS)
    os.environ[_CATCH_ERRORS] = "FALSE"  # no deep copy of the graph before each optimiser pass
    try:
        with _traceable_convolutions():
            proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset,
                                                     custom_op_handlers={"Erfc": (_erfc, [])})
    finally:
        if previous is None:
            os.environ.pop(_CATCH_ERRORS, None)
        else:
            os.environ[_CATCH_ERRORS] = previous
    return proto.SerializeToString()


class OnnxModel:
    """Runs an ONNX file of :func:`convert` with onnxruntime on the CPU.

    Args:
        model: the serialized model or a file path.
        providers: onnxruntime execution providers.
    """

    def __init__(self, model, providers: Optional[Sequence[str]] = ("CPUExecutionProvider",)) -> None:
        try:
            import onnxruntime
        except ImportError as e:
            raise ImportError(f"running an ONNX model needs onnxruntime ({_INSTALL}): {e}") from None
        self.session = onnxruntime.InferenceSession(model, providers=list(providers))
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, images: np.ndarray) -> Dict[str, np.ndarray]:
        """``{"logits", "probabilities"}`` of normalised float32 images [N, size, size, 3]."""
        values = self.session.run(self.output_names, {"images": np.asarray(images, np.float32)})
        return dict(zip(self.output_names, values))
