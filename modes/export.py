"""``--mode=export``: the run's model, at its input size, classes and transform, in deployment formats."""

from __future__ import annotations

from typing import Optional

from backends.base import Backend
from evaluation.predictor import load_inference_model
from export.saved_model import BYTES_SIGNATURE, IMAGES_SIGNATURE, write_saved_model
from run_config import Resolved
from training.ema import load_ema_weights
from training.log import TrainLog

__all__ = ["export"]


def export(run: Resolved, backend: Backend) -> Optional[str]:
    """Restores the checkpoint and writes the SavedModel to ``--export_dir``; returns its path (chief only)."""
    config = run.config
    if not config.export.export_dir:
        raise ValueError("--mode=export needs --export_dir=DIR (a directory that does not exist yet).")
    if not backend.is_chief:
        return None
    inference = load_inference_model(config, backend)
    averaged = ""
    if config.regularization.model_ema:  # serve the weight average instead of the raw weights
        load_ema_weights(inference.model, inference.checkpoint)
        averaged = " (its --model_ema weight average)"
    path = write_saved_model(inference, config.export.export_dir, model_name=config.model.name,
                             top_k=config.predict.top_k)
    log = TrainLog(None)
    log.info(f"Exported {inference.checkpoint}{averaged} ({config.model.name}, {inference.num_classes} classes, "
             f"input {inference.config.image_size}px) to {path}")
    log.info(f"Signatures: {BYTES_SIGNATURE}(image_bytes: encoded images), {IMAGES_SIGNATURE}(images: float32 "
             "normalised NHWC)")
    return path
