"""``--mode=predict``: the top-k classes of image files, printed, with the run's own model and transform."""

from __future__ import annotations

from typing import List

import tensorflow as tf

from backends.base import Backend
from evaluation.predictor import Prediction, format_predictions, load_inference_model, preprocess_files, top_k
from run_config import Resolved
from training.log import TrainLog

__all__ = ["predict"]


def predict(run: Resolved, backend: Backend) -> List[Prediction]:
    """Prints the top-k of every ``--image`` and returns them."""
    config = run.config
    paths = [p for p in config.predict.image if p]
    if not paths:
        raise ValueError("--mode=predict needs images: pass --image=PATH[,PATH...].")
    inference = load_inference_model(config, backend)
    log = TrainLog(None)
    images = preprocess_files(paths, inference.config)
    logits = tf.cast(inference.model(images, training=False), tf.float32)
    probabilities = tf.nn.softmax(logits).numpy()
    k = min(config.predict.top_k, inference.num_classes)
    predictions = [Prediction(path, top_k(probabilities[i], inference.names, k)) for i, path in enumerate(paths)]
    source = (f"names from {inference.label_map_path}" if inference.label_map_path
              else "no label map found: classes shown by index (pass --label_map=FILE for names)")
    log.info(f"Predictions of {inference.checkpoint} ({config.model.name}, {inference.num_classes} classes; {source})")
    for line in format_predictions(predictions):
        log.info(line)
    return predictions
