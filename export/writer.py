"""One export: the chosen formats of one float32 model, checked against it, published as one directory.

Layout of the export directory::

    saved_model.pb, variables/, fingerprint.pb   saved_model: three signatures (export/saved_model.py)
    model.tflite, model_dynamic.tflite,           tflite, tflite_dynamic, tflite_int8 (export/tflite.py)
      model_int8.tflite
    model.onnx                                    onnx (export/onnx.py)
    model.keras                                   keras (export/keras_file.py)
    serving_config.json                           the transform, classes, formats and their checks
    label_map.txt                                 the class names (when the run has them)

Each format except the SavedModel is run on the held-out images after it is written (the validation split
through the evaluation transform, else seeded random inputs) and compared with the float32 Keras model on
the CPU: float formats must give its logits within 1e-4 (relative to the largest), ``.keras`` exactly; the
quantised TFLite variants report their top-1 agreement with it. Nothing is published when a check fails.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from evaluation.predictor import LABEL_MAP_NAME, InferenceModel
from export import keras_file, onnx, saved_model, tflite
from export.data import ExportData
from export.directory import publish_export_dir

__all__ = ["FORMATS", "FLOAT_TOLERANCE", "SERVING_CONFIG", "ExportReport", "write_export"]

SERVING_CONFIG = "serving_config.json"
# Format -> the file (or, for the SavedModel, the directory's main file) it writes.
FORMATS = {"saved_model": "saved_model.pb", **tflite.TFLITE_FILES, "onnx": onnx.ONNX_FILE,
           "keras": keras_file.KERAS_FILE}
# Largest difference of a float format's logits from the Keras model's, relative to the largest logit.
FLOAT_TOLERANCE = 1e-4
_RANDOM_CHECK_IMAGES = 8
_CHECK_BATCH = 16  # images per call while checking: 200 ResNet-50 activations at once would need ~20 GB


@dataclass
class ExportReport:
    """What :func:`write_export` wrote and measured.

    Attributes:
        export_dir: the absolute path of the export.
        files: format -> file name inside it.
        checks: format -> its comparison with the float32 model on the held-out images
            (``max_relative_difference``, ``top1_agreement``, ``images``; empty where not run).
        lines: the log lines (one per format, then the notes).
    """

    export_dir: str
    files: Dict[str, str] = field(default_factory=dict)
    checks: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    lines: List[str] = field(default_factory=list)


def _check(ref: np.ndarray, out: np.ndarray) -> Dict[str, Any]:
    scale = float(np.max(np.abs(ref))) or 1.0
    agree = int(np.sum(np.argmax(out, axis=1) == np.argmax(ref, axis=1)))
    return {"max_relative_difference": float(np.max(np.abs(out - ref)) / scale), "top1_agreement": agree,
            "images": int(ref.shape[0])}


def _describe(check: Dict[str, Any]) -> str:
    n = check["images"]
    return (f"top-1 agrees with the float32 model on {check['top1_agreement']}/{n} images "
            f"({100.0 * check['top1_agreement'] / max(n, 1):.1f}%), logits within "
            f"{check['max_relative_difference']:.2e} of the largest")


def _batched(fn: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> np.ndarray:
    return np.concatenate([fn(images[i:i + _CHECK_BATCH]) for i in range(0, len(images), _CHECK_BATCH)])


def _keras_logits(model) -> Callable[[np.ndarray], np.ndarray]:
    def logits(images: np.ndarray) -> np.ndarray:
        with tf.device("/cpu:0"):  # float32 on the CPU (no TF32 matmuls on a GPU)
            return np.asarray(model(tf.constant(images), training=False), np.float32)
    return logits


def _runner(fmt: str, path: str) -> Optional[Callable[[np.ndarray], np.ndarray]]:
    """A function computing a written file's logits, or None when its runtime is not installed."""
    if fmt.startswith("tflite"):
        model = tflite.TFLiteModel(path)
        return lambda images: model(images)["logits"]
    if fmt == "onnx":
        try:
            model = onnx.OnnxModel(path)
        except ImportError:
            return None
        return lambda images: model(images)["logits"]
    if fmt == "keras":
        return _keras_logits(keras_file.load_keras_model(path))
    return None


def _serving_config(inference: InferenceModel, model_name: str, report: ExportReport,
                    formats: Sequence[str], source: str) -> Dict[str, Any]:
    c = inference.config
    return dict(
        model=model_name, checkpoint=os.path.abspath(inference.checkpoint), num_classes=inference.num_classes,
        image_size=c.image_size, eval_resize=c.eval_resize, eval_mode=c.eval_mode, mean=list(c.mean),
        std=list(c.std), interpolation=c.interpolation, channel_order=c.channel_order, value_scale=c.value_scale,
        precision="float32", formats={fmt: report.files[fmt] for fmt in formats},
        signatures=dict(saved_model.SIGNATURES) if "saved_model" in formats else {},
        checks=report.checks, checked_on=source,
    )


def write_export(inference: InferenceModel, export_dir: str, formats: Sequence[str], *, model_name: str = "",
                 top_k: int = 5, overwrite: bool = False, protected: Optional[str] = None,
                 data: Optional[ExportData] = None, log: Optional[Callable[[str], None]] = None) -> ExportReport:
    """Writes ``formats`` of ``inference`` (a float32 model) to ``export_dir``, all or nothing.

    Args:
        inference: the restored float32 model with its transform and class names.
        export_dir: the directory to write; refused when not empty, unless ``overwrite``.
        formats: names of :data:`FORMATS`.
        model_name: the zoo model's name, for ``serving_config.json``.
        top_k: classes the SavedModel's ``top_k_*`` outputs list.
        overwrite: replace a non-empty ``export_dir``.
        protected: the checkpoint exported, which must not lie inside ``export_dir``.
        data: calibration images (needed by ``tflite_int8``) and held-out images for the checks.
        log: called with each line of the report as it is known.

    Returns:
        The report (also stored in ``serving_config.json``).

    Raises:
        export.directory.ExportDirNotEmpty: see :func:`export.directory.check_export_dir` (before any work).
        ValueError: an unknown format, ``tflite_int8`` without calibration images, or a float format whose
            outputs differ from the model's by more than :data:`FLOAT_TOLERANCE` (nothing is published).
    """
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"--export_formats: unknown {', '.join(unknown) or '(none given)'}; choose from "
                         f"{', '.join(FORMATS)}.")
    if "onnx" in formats:
        onnx.check_converter()
    data = data or ExportData()
    if "tflite_int8" in formats and (data.calibration is None or not len(data.calibration)):
        raise ValueError("--export_formats=tflite_int8 needs calibration images from the run's training data; "
                         "none could be read (is --data_dir the run's?).")
    emit = log or (lambda line: None)
    size = inference.config.image_size
    if data.held_out is not None and len(data.held_out):
        held_out, source = data.held_out, data.held_out_source or f"{len(data.held_out)} held-out images"
    else:
        rng = np.random.default_rng(0)
        held_out = rng.standard_normal((_RANDOM_CHECK_IMAGES, size, size, 3)).astype(np.float32)
        source = f"{_RANDOM_CHECK_IMAGES} random normal inputs (no held-out images)"
    reference = _batched(_keras_logits(inference.model), held_out)

    model = inference.model
    calibration = (lambda: (image[None] for image in data.calibration)) if data.calibration is not None else None
    with publish_export_dir(export_dir, overwrite=overwrite, protected=protected) as tmp:
        report = ExportReport(export_dir=os.path.abspath(export_dir))
        for fmt in formats:
            path = os.path.join(tmp, FORMATS[fmt])
            if fmt == "saved_model":
                saved_model.save_saved_model(inference, tmp, top_k=top_k)
            elif fmt.startswith("tflite"):
                blob = tflite.convert(model, size, fmt, representative=calibration if fmt == "tflite_int8" else None)
                with open(path, "wb") as f:
                    f.write(blob)
            elif fmt == "onnx":
                needed, available = onnx.memory_needed(model), onnx.available_memory()
                if available is not None and available < needed:
                    emit(f"onnx: the conversion may need about {needed / 2**30:.0f} GB of memory (tf2onnx keeps "
                         f"copies of the weights), {available / 2**30:.0f} GB are available")
                with open(path, "wb") as f:
                    f.write(onnx.convert(model, size))
            elif fmt == "keras":
                keras_file.save_keras_model(model, path)
            report.files[fmt] = FORMATS[fmt]
            run = _runner(fmt, path)
            if run is None:
                line = (f"{fmt}: {FORMATS[fmt]}" + (" (signatures: " + ", ".join(saved_model.SIGNATURES) + ")"
                                                    if fmt == "saved_model" else " (not checked: no runtime)"))
                report.lines.append(line)
                emit(line)
                continue
            check = _check(reference, _batched(run, held_out))
            report.checks[fmt] = check
            line = f"{fmt}: {FORMATS[fmt]}; {_describe(check)}"
            report.lines.append(line)
            emit(line)
            if fmt == "keras" and check["max_relative_difference"] != 0.0:
                raise ValueError(f"{FORMATS[fmt]} reloaded does not give the model's outputs "
                                 f"({check['max_relative_difference']:.2e}); nothing was exported.")
            if fmt in ("tflite", "onnx") and check["max_relative_difference"] > FLOAT_TOLERANCE:
                raise ValueError(f"{FORMATS[fmt]}: the converted model's logits differ from the model's by "
                                 f"{check['max_relative_difference']:.2e} of the largest (more than "
                                 f"{FLOAT_TOLERANCE:g}): a converter fault; nothing was exported.")
        note = f"checked on {source}"
        report.lines.append(note)
        emit(note)
        with open(os.path.join(tmp, SERVING_CONFIG), "w") as f:
            json.dump(_serving_config(inference, model_name, report, formats, source), f, indent=2)
        if inference.label_map_path:
            shutil.copyfile(inference.label_map_path, os.path.join(tmp, LABEL_MAP_NAME))
    return report
