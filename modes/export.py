"""``--mode=export``: the run's model, at its input size, classes and transform, in deployment formats.

The model is built under a float32 policy and the checkpoint restored into it, whatever precision the run
trained in (a bfloat16 signature cannot be converted to TFLite, and serving needs no mixed precision). The
run's data gives ``tflite_int8`` its calibration images (train split) and every format its held-out check
images (validation split), both through the evaluation transform.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from absl import logging

import zoo
from backends.base import Backend
from evaluation.inference import float32_policy
from evaluation.predictor import load_inference_model
from export.data import ExportData, held_out_images, training_images
from export.directory import check_export_dir
from export.writer import ExportReport, write_export
from modes import assemble
from run_config import Resolved, RunConfig
from training.ema import load_ema_weights
from training.log import TrainLog
from zoo.recipe import ModelRecipe

__all__ = ["export"]


def _export_data(config: RunConfig, recipe: ModelRecipe, inference, log: TrainLog) -> ExportData:
    """Calibration images (train split) and held-out check images (validation split, else training images the
    calibration does not use) from the run's dataset, through the served transform."""
    settings = config.export
    need_calibration = "tflite_int8" in settings.export_formats
    if not (need_calibration or set(settings.export_formats) - {"saved_model"}):
        return ExportData()  # the SavedModel alone is not checked
    try:
        dataset = assemble.make_dataset(config, recipe)
    except (ValueError, FileNotFoundError) as e:
        if need_calibration:
            raise ValueError(f"--export_formats=tflite_int8 calibrates on the run's training data, which cannot be "
                             f"read here: {e}") from None
        log.info(f"The run's data cannot be read ({e}): the formats are checked on random inputs.")
        return ExportData()
    transform = inference.config
    held, source = np.zeros((0, 1, 1, 3), np.float32), ""
    if settings.check_images:
        try:
            held = held_out_images(dataset, transform, settings.check_images)
            source = f"{len(held)} images of the validation split"
        except (ValueError, FileNotFoundError) as e:
            logging.info("No validation split to check the exports on (%s)", e)
    calibrate = settings.calibration_images if need_calibration else 0
    wanted = calibrate + (settings.check_images if not len(held) else 0)
    train = training_images(dataset, transform, wanted, seed=config.seed or 0) if wanted else held[:0]
    if not len(held) and len(train) > calibrate:
        held = train[calibrate:]
        source = f"{len(held)} images of the train split the calibration does not use (no validation split)"
    data = ExportData(held_out=held if len(held) else None, held_out_source=source)
    if need_calibration:
        data.calibration = train[:calibrate]
        log.info(f"tflite_int8: calibrating on {len(data.calibration)} images of the train split")
    return data


def export(run: Resolved, backend: Backend) -> Optional[ExportReport]:
    """Restores the checkpoint and writes ``--export_formats`` to ``--export_dir``; returns the report (chief
    only).

    Raises:
        ValueError: no ``--export_dir``; a non-empty one without ``--overwrite`` (one line, before any work);
            ``tflite_int8`` without readable training data; a converted model that does not reproduce the
            network.
    """
    config = run.config
    if not config.export.export_dir:
        raise ValueError("--mode=export needs --export_dir=DIR (a directory that does not exist yet, or "
                         "--overwrite).")
    check_export_dir(config.export.export_dir, overwrite=config.export.overwrite)
    if not backend.is_chief:
        return None
    log = TrainLog(None)
    with float32_policy():
        inference = load_inference_model(config, backend)
    averaged = ""
    if config.regularization.model_ema:  # serve the weight average instead of the raw weights
        load_ema_weights(inference.model, inference.checkpoint)
        averaged = " (its --model_ema weight average)"
    recipe = zoo.get_recipe(config.model.name).scaled(inference.config.image_size)
    data = _export_data(config, recipe, inference, log)
    log.info(f"Exporting {inference.checkpoint}{averaged} ({config.model.name}, {inference.num_classes} classes, "
             f"input {inference.config.image_size}px, float32) as {', '.join(config.export.export_formats)}")
    report = write_export(inference, config.export.export_dir, config.export.export_formats,
                          model_name=config.model.name, top_k=config.predict.top_k,
                          overwrite=config.export.overwrite, protected=inference.checkpoint, data=data, log=log.info)
    log.info(f"Exported to {report.export_dir}")
    return report
