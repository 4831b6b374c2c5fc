"""``--mode=export``: a SavedModel for serving, with the preprocessing inside.

Signatures:

* ``serving_default``: ``image_bytes`` (string [N], encoded JPEG/PNG files) -> the recipe's
  evaluation preprocessing (``datasets.preprocessing.eval_image``, the same function
  ``--mode=predict`` uses) -> the model.
* ``serving_images``: ``images`` (float32 [N, size, size, 3], already normalised) -> the model.

Both return ``logits``, ``probabilities``, ``top_k_classes``, ``top_k_probabilities`` and
``top_k_names`` (class names from the label map; empty where none is known). The SavedModel is
written to a temporary sibling directory and renamed into place, so ``--export_dir`` either holds
a complete export or does not exist.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict

import tensorflow as tf

from atomic import publish_directory
from datasets import preprocessing
from evaluation.predictor import LABEL_MAP_NAME, InferenceModel

__all__ = ["BYTES_SIGNATURE", "IMAGES_SIGNATURE", "ServingModule", "write_saved_model"]

BYTES_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "serving_images"


class ServingModule(tf.Module):
    """The model with its preprocessing and top-k, as traced functions.

    Args:
        inference: the restored model, its preprocessing configuration and class names.
        top_k: how many classes the ``top_k_*`` outputs list.
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
        self.serve_images = tf.function(self._serve_images, input_signature=[
            tf.TensorSpec([None, size, size, 3], tf.float32, name="images")])

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
        return self._outputs(preprocessing.normalize_for(images, config))

    def _serve_images(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._outputs(images)


def _serving_config(inference: InferenceModel, model_name: str) -> Dict[str, Any]:
    c = inference.config
    return dict(model=model_name, checkpoint=os.path.abspath(inference.checkpoint), num_classes=inference.num_classes,
                image_size=c.image_size, eval_resize=c.eval_resize, eval_mode=c.eval_mode, mean=list(c.mean),
                std=list(c.std), interpolation=c.interpolation, channel_order=c.channel_order,
                value_scale=c.value_scale, signatures={BYTES_SIGNATURE: "image_bytes: string [N] (encoded image files)",
                                             IMAGES_SIGNATURE: "images: float32 [N, size, size, 3], normalised"})


def write_saved_model(inference: InferenceModel, export_dir: str, *, model_name: str = "",
                      top_k: int = 5) -> str:
    """Writes the SavedModel to ``export_dir`` atomically; returns its absolute path.

    Raises:
        FileExistsError: ``export_dir`` exists and is not empty (nothing is overwritten).
    """
    export_dir = os.path.abspath(export_dir)
    if os.path.exists(export_dir) and (not os.path.isdir(export_dir) or os.listdir(export_dir)):
        raise FileExistsError(f"--export_dir={export_dir} already exists; pass a new directory (nothing was "
                              "overwritten).")
    with publish_directory(export_dir) as tmp:
        module = ServingModule(inference, top_k=top_k)
        tf.saved_model.save(module, tmp, signatures={BYTES_SIGNATURE: module.serve_bytes,
                                                     IMAGES_SIGNATURE: module.serve_images})
        with open(os.path.join(tmp, "serving_config.json"), "w") as f:
            json.dump(_serving_config(inference, model_name), f, indent=2)
        if inference.label_map_path:
            shutil.copyfile(inference.label_map_path, os.path.join(tmp, LABEL_MAP_NAME))
    return export_dir
