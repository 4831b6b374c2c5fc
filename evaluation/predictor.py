"""Predictions of a trained model: the top-k classes of image files, with probabilities and class names.

Images get the evaluation preprocessing of the model's recipe (``datasets.preprocessing.eval_image``:
shorter side to ``eval_resize``, central ``input_size`` crop, then the recipe's normalisation), the
same function the exported SavedModel runs on JPEG bytes, so both give the same answer.

Class names come from a label map (``<label><TAB><name>`` lines, as the ``image_folder`` dataset
writes ``label_map.txt`` into the run's log directory): ``--label_map``, else ``label_map.txt``
beside the checkpoint. Without one, classes are shown by index, with a note saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

import run_dir
import zoo
from backends.base import Backend
from datasets import pipeline, preprocessing
from datasets.folders import read_label_map
from run_config import AugmentConfig, RunConfig, with_values
from runs.checkpoints import list_checkpoints, readable_or_previous
from weights.checkpoint import checkpoint_num_classes, load_weights, resolve_checkpoint

__all__ = [
    "LABEL_MAP_NAME",
    "InferenceModel",
    "Prediction",
    "class_names",
    "evaluation_config",
    "find_label_map",
    "format_predictions",
    "load_inference_model",
    "checkpoint_for",
    "top_k",
    "preprocess_config",
    "preprocess_files",
]

LABEL_MAP_NAME = run_dir.LABEL_MAP_NAME


@dataclass
class InferenceModel:
    """A model with its weights and everything needed to feed it images."""

    model: Any
    checkpoint: str
    num_classes: int
    config: preprocessing.PreprocessConfig
    names: List[str]  # one per class; empty strings where no name is known
    label_map_path: Optional[str]


@dataclass(frozen=True)
class Prediction:
    """Top-k of one image: (label, probability, name) from the most probable down."""

    path: str
    top: Tuple[Tuple[int, float, str], ...]


def preprocess_config(augment: AugmentConfig, recipe) -> preprocessing.PreprocessConfig:
    """The evaluation transform of ``recipe`` with the run's augmentation settings (its resize, interpolation,
    crop sizes): exactly what evaluation feeds the network."""
    return preprocessing.PreprocessConfig.from_recipe(recipe, **pipeline.preprocess_overrides(augment))


def evaluation_config(config: RunConfig) -> RunConfig:
    """The run's configuration as evaluation, prediction and export build their model and input.

    ``--image_size`` is the training crop. With ``--val_crop_size`` set to another size (FixRes: torchvision's
    newer recipes train at 176 and evaluate at 224) the evaluation model is built at that size and loads the
    same weights (a convolutional network's weights do not depend on the input size); its input is the
    central crop of that size after ``--val_resize_size`` (or the recipe's resize, scaled to it). Unchanged
    when the two agree.

    Raises:
        ValueError: one line, if the model's weights fit one input size (ViT) and the two differ.
    """
    size, crop = config.model.image_size, config.augment.val_crop_size
    if not crop or size is None or crop == size:
        return config
    zoo.get_recipe(config.model.name).check_eval_size(size, crop, model=config.model.name)
    return with_values(config, {"image_size": crop, "train_crop_size": None})


def find_label_map(explicit: Optional[str], checkpoint: str) -> Optional[str]:
    """``explicit`` (``--label_map``), else ``label_map.txt`` beside the checkpoint or in its parent (a
    multi-rank job), else None.

    Raises:
        FileNotFoundError: if ``explicit`` names a missing file.
    """
    if explicit:
        if not tf.io.gfile.exists(explicit):
            raise FileNotFoundError(f"--label_map={explicit}: no such file.")
        return explicit
    return next((c for c in run_dir.label_map_candidates(checkpoint) if tf.io.gfile.exists(c)), None)


def class_names(label_map_path: Optional[str], num_classes: int) -> List[str]:
    """One name per class from a label map; empty strings for classes it does not name.

    Raises:
        ValueError: if the label map names a label outside ``[0, num_classes)``.
    """
    names = [""] * num_classes
    if not label_map_path:
        return names
    for label, name in read_label_map(label_map_path).items():
        if not 0 <= label < num_classes:
            raise ValueError(
                f"{label_map_path}: label {label} ({name!r}) is outside the model's {num_classes} classes; "
                "pass the label map of the data this checkpoint was trained on (--label_map)."
            )
        names[label] = name
    return names


def checkpoint_for(config: RunConfig, backend: Optional[Backend]) -> str:
    """``--checkpoint_path``, else the newest checkpoint where the run wrote them."""
    if config.evaluation.checkpoint_path:
        return resolve_checkpoint(config.evaluation.checkpoint_path)
    ckpt_flag, log_dir = config.checkpoint.checkpoint_dir, config.logging.log_dir
    if ckpt_flag or log_dir or backend is None:
        directory = ckpt_flag or log_dir
        if directory and not ckpt_flag and not list_checkpoints(directory):
            # --log_dir of a multi-process job: checkpoints are in its rank 0 directory.
            multi = run_dir.checkpoint_dir(directory, None, rank_size=config.distribution.rank_size,
                                           multi_process=True)
            directory = multi if list_checkpoints(multi) else directory
        return resolve_checkpoint(directory or run_dir.default_log_dir(config.distribution.rank_size, 0))
    return resolve_checkpoint(run_dir.rank_dirs(None, None, rank_size=backend.num_replicas, rank=backend.rank,
                                                multi_process=backend.world_size > 1)[1])


def load_inference_model(config: RunConfig, backend: Optional[Backend] = None) -> InferenceModel:
    """Builds the run's model and restores ``--checkpoint_path`` (or the newest in the run's directory).

    The number of classes is the configuration's or the checkpoint's own classifier size; the input
    size and evaluation transform are the configuration's (the run's own, for a run with a config.json), at
    the evaluation crop (:func:`evaluation_config`).
    """
    config = evaluation_config(config)
    checkpoint = checkpoint_for(config, backend)
    # An unreadable checkpoint (truncated, damaged): the newest readable one before it, the log says so;
    # one named with --checkpoint_path is refused instead, naming that one.
    named = config.evaluation.checkpoint_path
    checkpoint = readable_or_previous(checkpoint, log=logging.warning, full=True,
                                      explicit=bool(named) and not tf.io.gfile.isdir(named))
    num_classes = config.model.num_classes or checkpoint_num_classes(checkpoint)
    recipe = zoo.get_recipe(config.model.name).scaled(config.model.image_size)
    scope = backend.scope() if backend is not None else _null_scope()
    with scope:
        model = zoo.create_model(config.model.name, recipe=recipe, num_classes=num_classes)
    load_weights(model, checkpoint)
    label_map = find_label_map(config.predict.label_map, checkpoint)
    return InferenceModel(model=zoo.inference_model(model), checkpoint=checkpoint, num_classes=num_classes,
                          config=preprocess_config(config.augment, recipe), names=class_names(label_map, num_classes),
                          label_map_path=label_map)


class _null_scope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def preprocess_files(paths: Sequence[str], config: preprocessing.PreprocessConfig) -> tf.Tensor:
    """Normalised float32 [N, size, size, 3] images of ``paths``.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a file is not an image TensorFlow can decode (JPEG, PNG, GIF, BMP).
    """
    images = []
    for path in paths:
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"--image: {path}: no such file.")
        encoded = tf.io.read_file(path)
        try:
            images.append(preprocessing.eval_image(encoded, config))
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
            raise ValueError(f"--image: {path}: cannot decode it as an image ({e.message.splitlines()[0]}).") from None
    return preprocessing.normalize_for(tf.stack(images), config)


def top_k(probabilities: np.ndarray, names: Sequence[str], k: int) -> Tuple[Tuple[int, float, str], ...]:
    # Stable sort: ties keep the lower label first, as tf.math.top_k does.
    order = np.argsort(-probabilities, kind="stable")[:k]
    return tuple((int(i), float(probabilities[i]), names[i]) for i in order)


def format_predictions(predictions: Sequence[Prediction]) -> List[str]:
    """Lines of the report: the file, then ``rank. probability  name (label N)`` per class."""
    lines = []
    for p in predictions:
        lines.append(p.path)
        for rank, (label, prob, name) in enumerate(p.top, 1):
            shown = f"{name} (label {label})" if name else f"label {label}"
            lines.append(f"  {rank}. {prob:.6f}  {shown}")
    return lines
