"""The ONNX format (opset 17), converted by ``tf2onnx`` from a ``tf.function`` calling the float32 model.

Input ``images`` float32 [N, size, size, 3] (NHWC, normalised: the SavedModel's ``serving_images``), outputs
``logits`` and ``probabilities`` float32 [N, classes]. ``tf2onnx``, ``onnx`` and (to check or run the file)
``onnxruntime`` come from ``requirements-export.txt``; they are imported only when this format is asked for.

Keras 3's exact GELU (ConvNeXt, ViT) computes ``0.5 x erfc(-x / sqrt 2)``, and tf2onnx 1.17 has no handler for
TensorFlow's ``Erfc``: it copies the op into the graph, which onnxruntime refuses ("No Op registered for Erfc").
:func:`convert` maps it to ``1 - Erf(x)`` (an ONNX operator since opset 9); the difference, at most float32's
rounding of 1 - erf near 1, is far below the 1e-4 the export checks.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

__all__ = ["ONNX_FILE", "OPSET", "OnnxModel", "check_converter", "convert"]

ONNX_FILE = "model.onnx"
OPSET = 17
_INSTALL = "pip install -r requirements-export.txt"


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
    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset,
                                             custom_op_handlers={"Erfc": (_erfc, [])})
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
