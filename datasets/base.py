"""The interface every dataset implements."""

from __future__ import annotations

import abc
import inspect
from typing import Any, Callable, Optional

import tensorflow as tf

from datasets import preprocessing
from run_config import RunConfig
from zoo.recipe import ModelRecipe

__all__ = ["ImageDataset", "SPLITS", "training_input"]

SPLITS = ("train", "validation")


class ImageDataset(abc.ABC):
    """A labelled image-classification dataset with its two splits.

    Subclasses register themselves in ``registry.DATASETS``. ``input_fn`` returns batches of
    ``(images, labels)``: images float32 NHWC of the recipe's input size, normalised with the
    recipe's mean and std; labels int32 in ``[0, num_classes)``.

    Args:
        recipe: the model's recipe (input size, normalisation, eval resize).
        data_dir: where the data lives (unused by generated datasets).
        num_classes: classes expected by the model; None to take the dataset's own count.
        seed: seed of shuffling and augmentation; None for a random one.
    """

    name = "base"

    def __init__(
        self,
        *,
        recipe: ModelRecipe,
        data_dir: Optional[str] = None,
        num_classes: Optional[int] = None,
        seed: Optional[int] = None,
    ) -> None:
        self.recipe = recipe
        self.data_dir = data_dir
        self._num_classes = num_classes
        self.seed = seed

    @classmethod
    def from_config(cls, config: RunConfig, recipe: ModelRecipe) -> ImageDataset:
        """Builds the dataset from the run's configuration (its ``data``, ``augment`` and ``model`` settings)."""
        return cls(recipe=recipe, data_dir=config.data.data_dir, num_classes=config.model.num_classes,
                   seed=config.seed)

    @property
    def num_classes(self) -> int:
        """Number of classes (the requested count, or the dataset's own)."""
        return self._num_classes or self.recipe.num_classes

    @abc.abstractmethod
    def num_examples(self, split: str) -> int:
        """Number of examples in ``split`` (``train`` or ``validation``)."""

    @abc.abstractmethod
    def input_fn(
        self,
        split: str,
        *,
        training: bool,
        batch_size: int,
        input_context: Optional[tf.distribute.InputContext] = None,
        normalize: bool = True,
        start: int = 0,
    ) -> tf.data.Dataset:
        """Batches of ``(images, labels)`` for one input pipeline.

        Args:
            split: ``train`` or ``validation``.
            training: augment, shuffle and repeat (training) or not (evaluation: every example
                once, the last partial batch kept).
            batch_size: examples per batch of this pipeline (per replica).
            input_context: this pipeline's shard among ``num_input_pipelines``; None for all.
            normalize: float32 images normalised with the recipe's statistics; False: uint8 images
                (a quarter of the bytes to move to an accelerator), for :meth:`normalize` on the device.
            start: training: the records of this pipeline's stream already consumed (a resumed run); the
                stream, and the augmentation seeds, go on from there as they would have without the
                interruption (with ``--seed``). A dataset without a stream position may ignore it.
        """

    def normalize(self, images: tf.Tensor, dtype: tf.DType = tf.float32) -> tf.Tensor:
        """Normalises uint8 images of ``input_fn(..., normalize=False)`` with the recipe's statistics."""
        return preprocessing.normalize_for(images, preprocessing.PreprocessConfig.from_recipe(self.recipe), dtype)


def training_input(dataset: ImageDataset, *, batch_size: int, input_context: Optional[tf.distribute.InputContext],
                   start_step: int, global_batch: int, log: Optional[Callable[[str], None]] = None,
                   **kwargs: Any) -> tf.data.Dataset:
    """One pipeline's training batches, from where a run resumed at ``start_step`` left its stream.

    A step takes ``global_batch / pipelines`` records from each pipeline, so the pipeline starts at record
    ``start_step * global_batch / pipelines`` of its stream. A dataset whose ``input_fn`` takes no ``start``
    (a user's) starts its stream anew, and ``log`` says so.

    Args:
        dataset: the training data.
        batch_size: per-replica batch.
        input_context: this pipeline's context (None: the only pipeline).
        start_step: the step the run resumes from (0: a fresh run).
        global_batch: records per step over every replica and process.
        log: where the note about a dataset without a stream position goes.
        **kwargs: passed to ``input_fn`` (``normalize``).
    """
    pipelines = input_context.num_input_pipelines if input_context is not None else 1
    start = int(start_step) * int(global_batch) // pipelines
    takes_start = "start" in inspect.signature(dataset.input_fn).parameters
    if start and not takes_start and log is not None:
        log(f"the {getattr(dataset, 'name', type(dataset).__name__)} dataset's input_fn takes no start: its stream "
            f"starts anew at step {start_step} instead of going on where the checkpoint's step left it.")
    return dataset.input_fn("train", training=True, batch_size=batch_size, input_context=input_context,
                            **({"start": start} if start and takes_start else {}), **kwargs)

