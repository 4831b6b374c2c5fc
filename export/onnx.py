"""The ONNX format (opset 17), converted by ``tf2onnx`` from a ``tf.function`` calling the float32 model.

Input ``images`` float32 [N, size, size, 3] (NHWC, normalised: the SavedModel's ``serving_images``), outputs
``logits`` and ``probabilities`` float32 [N, classes]. ``tf2onnx``, ``onnx`` and (to check or run the file)
``onnxruntime`` come from ``requirements-export.txt``; they are imported only when this format is asked for.
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
    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
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
