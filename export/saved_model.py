"""The SavedModel format: the model with its evaluation transform and top-k, for TensorFlow Serving.

Signatures (all float32 inside, whatever precision the run trained in):

* ``serving_default``: ``image_bytes`` (string [N], encoded JPEG/PNG/GIF/BMP files) -> the run's exact
  evaluation transform (``datasets.preprocessing.eval_image``, the function ``--mode=predict`` and
  evaluation use: torchvision's resize and central crop) and normalisation -> the model.
* ``serving_uint8``: ``images`` (uint8 [N, size, size, 3], RGB, already resized and cropped) -> the
  normalisation -> the model.
* ``serving_images``: ``images`` (float32 [N, size, size, 3], already normalised) -> the model.

Each returns ``logits`` and ``probabilities`` (float32 [N, classes]), ``top_k_classes`` (int32 [N, k]),
``top_k_probabilities`` (float32 [N, k]) and ``top_k_names`` (string [N, k], from the label map; empty
where none is known).
"""

from __future__ import annotations

from typing import Dict

import tensorflow as tf

from datasets import preprocessing
from evaluation.predictor import InferenceModel

__all__ = ["BYTES_SIGNATURE", "IMAGES_SIGNATURE", "SIGNATURES", "UINT8_SIGNATURE", "ServingModule",
           "save_saved_model"]

BYTES_SIGNATURE = "serving_default"
UINT8_SIGNATURE = "serving_uint8"
IMAGES_SIGNATURE = "serving_images"
# Signature -> its input, as serving_config.json and the log describe it.
SIGNATURES = {
    BYTES_SIGNATURE: "image_bytes: string [N], encoded image files (the evaluation transform inside)",
    UINT8_SIGNATURE: "images: uint8 [N, size, size, 3], RGB, resized and cropped (normalised inside)",
    IMAGES_SIGNATURE: "images: float32 [N, size, size, 3], normalised",
}


class ServingModule(tf.Module):
    """The model with its preprocessing and top-k, as traced functions (one per signature).

    Args:
        inference: the restored model (float32), its preprocessing configuration and class names.
        top_k: how many classes the ``top_k_*`` outputs list (at most the number of classes).
    """

    def __init__(self, inference: InferenceModel, top_k: int = 5) -> None:
        super().__init__(name="serving")
        self.model = inference.model
        self._config = inference.config
        self._k = min(top_k, inference.num_classes)
        self._names = tf.constant(inference.names, dtype=tf.string)
        size = inference.config.image_size
        self.serve_bytes = tf.function(self._serve_bytes, input_signature=[
            tf.TensorSpec([None], tf.string, name="image_bytes")])
        self.serve_uint8 = tf.function(self._serve_uint8, input_signature=[
            tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")])
        self.serve_images = tf.function(self._serve_images, input_signature=[
            tf.TensorSpec([None, size, size, 3], tf.float32, name="images")])

    def signatures(self) -> Dict[str, tf.types.experimental.GenericFunction]:
        """Signature name -> traced function, for ``tf.saved_model.save``."""
        return {BYTES_SIGNATURE: self.serve_bytes, UINT8_SIGNATURE: self.serve_uint8,
                IMAGES_SIGNATURE: self.serve_images}

    def _outputs(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        logits = tf.cast(self.model(images, training=False), tf.float32)
        probabilities = tf.nn.softmax(logits)
        top_p, top_i = tf.math.top_k(probabilities, k=self._k)
        return {"logits": logits, "probabilities": probabilities, "top_k_classes": top_i,
                "top_k_probabilities": top_p, "top_k_names": tf.gather(self._names, top_i)}

    def _serve_bytes(self, image_bytes: tf.Tensor) -> Dict[str, tf.Tensor]:
        config = self._config
        size = config.image_size
        images = tf.map_fn(lambda encoded: preprocessing.eval_image(encoded, config), image_bytes,
                           fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8))
        return self._serve_uint8(images)

    def _serve_uint8(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._outputs(preprocessing.normalize_for(images, self._config))

    def _serve_images(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._outputs(images)


def save_saved_model(inference: InferenceModel, directory: str, *, top_k: int = 5) -> ServingModule:
    """Writes the SavedModel with its three signatures into ``directory`` (which may hold other files)."""
    module = ServingModule(inference, top_k=top_k)
    tf.saved_model.save(module, directory, signatures=module.signatures())
    return module
