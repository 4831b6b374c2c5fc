"""The parts every mode builds from a run's configuration: backend, dataset, recipe, directories.

One function per part, each taking the configuration (or the group it needs); the modes
(:mod:`modes.train`, :mod:`modes.evaluate`, :mod:`modes.predict`, :mod:`modes.export`) call them.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

import tensorflow as tf

import run_dir
import zoo
from backends.base import Backend
from datasets.base import ImageDataset
from registry import BACKENDS, DATASETS
from run_config import RunConfig
from training.weight_decay import DecayRule
from zoo.recipe import ModelRecipe

__all__ = ["dataset_name", "decay_rule", "make_backend", "make_dataset", "model_kwargs", "model_recipe",
           "normalize_on_device", "rank_dirs", "transform_summary"]


def dataset_name(config: RunConfig) -> str:
    """The dataset to use: ``--dataset``, else ``synthetic`` for ``--synthetic``, ``file_list`` for ``--train_list``,
    ``tfds`` for ``--tfds_name``, else inferred from ``--data_dir``."""
    data = config.data
    if data.synthetic:
        if data.dataset not in (None, "synthetic"):
            raise ValueError(f"--synthetic conflicts with --dataset={data.dataset}; pass one of them.")
        return "synthetic"
    if data.dataset:
        return data.dataset
    if data.train_list or data.tfds_name:  # their own settings name them
        return "file_list" if data.train_list else "tfds"
    if data.data_dir:
        return _infer_dataset(data.data_dir)
    if "demo" in DATASETS:
        return "demo"
    raise ValueError("no data: pass --data_dir=DIR (ImageNet TFRecords or an image folder) or --synthetic.")


def _infer_dataset(data_dir: str) -> str:
    """``imagenet`` for TFRecord shards, ``image_folder`` for train/ and val/ folders."""
    if tf.io.gfile.glob(os.path.join(data_dir, "train-*")) and "imagenet" in DATASETS:
        return "imagenet"
    if "image_folder" in DATASETS:
        return "image_folder"
    raise ValueError(f"--data_dir={data_dir}: cannot tell its format; pass --dataset (one of {DATASETS.list()}).")


def make_backend(config: RunConfig) -> Backend:
    """The backend ``--backend`` names, configured from the run's configuration."""
    return BACKENDS.get(config.distribution.backend).from_config(config)


def model_recipe(config: RunConfig) -> ModelRecipe:
    """The model's recipe at the run's input size (its evaluation resize scaled with it).

    Raises:
        ValueError: ``--val_crop_size`` differs from the input size and the model's weights fit one size (ViT).
    """
    recipe = zoo.get_recipe(config.model.name)
    if config.augment.val_crop_size and config.model.image_size:
        recipe.check_eval_size(config.model.image_size, config.augment.val_crop_size, model=config.model.name)
    return recipe.scaled(config.model.image_size)


def make_dataset(config: RunConfig, recipe: Optional[ModelRecipe] = None) -> ImageDataset:
    """The dataset :func:`dataset_name` chooses, configured from the run's configuration and the recipe."""
    return DATASETS.get(dataset_name(config)).from_config(config, recipe or model_recipe(config))


def rank_dirs(config: RunConfig, backend: Backend) -> Tuple[str, str]:
    """This rank's log directory and the checkpoint directory every rank shares (:func:`run_dir.rank_dirs`)."""
    return run_dir.rank_dirs(config.logging.log_dir, config.checkpoint.checkpoint_dir,
                             rank_size=backend.num_replicas, rank=backend.rank, multi_process=backend.world_size > 1)


def model_kwargs(config: RunConfig) -> Dict[str, Any]:
    """Optional builder arguments; None (the model's own default) is dropped by ``zoo.create_model``."""
    m = config.model
    return {"initializer": m.initializer, "dropout": m.dropout, "stochastic_depth_rate": m.stochastic_depth_rate}


def normalize_on_device(config: RunConfig, backend: Backend) -> bool:
    """``--normalize_on``: True when uint8 batches go to the device and the step normalises them.

    On accelerators that moves a quarter of the bytes from host to device. On CPUs the batch does not
    move, and normalising in the step measured no faster than in the input pipeline's threads beside
    it (AlexNet 91 vs 92 img/s fp32, bench/RESULTS.md), so ``auto`` keeps it there.
    """
    choice = config.precision.normalize_on
    if choice == "auto":
        return backend.name != "cpu"
    return choice == "device"


def decay_rule(config: RunConfig, recipe: ModelRecipe) -> DecayRule:
    """The run's weight-decay selection: its settings, with the recipe's embedding variables."""
    r = config.regularization
    return DecayRule(weight_decay=r.weight_decay, norm_weight_decay=r.norm_weight_decay,
                     bias_weight_decay=r.bias_weight_decay, embedding_weight_decay=r.embedding_weight_decay,
                     embedding_patterns=tuple(recipe.embedding_variables))


def transform_summary(dataset: ImageDataset) -> Dict[str, Any]:
    """What enters the network, as the run uses it: sizes, resize, interpolation, normalisation, augmentation.

    Empty for datasets without file preprocessing (synthetic data).
    """
    config = getattr(dataset, "preprocess_config", None)
    if config is None:
        return {}
    import dataclasses

    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}
