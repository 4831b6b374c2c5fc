"""``image_folder``: the Ascend recipe's layout, ``data_dir/train/<class>/*`` and ``data_dir/val/<class>/*``."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import tensorflow as tf
from absl import logging

import run_dir
from datasets import folders, pipeline
from datasets.file_dataset import FileDataset
from datasets.split import carve_val_split
from run_config import RunConfig

__all__ = ["ImageFolderDataset", "default_label_map_path"]

LABEL_MAP_NAME = run_dir.LABEL_MAP_NAME


def default_label_map_path(config: RunConfig) -> str:
    """Where the run's label map goes (:func:`run_dir.label_map_path`)."""
    return run_dir.label_map_path(config.logging.log_dir, config.checkpoint.checkpoint_dir,
                                  config.distribution.rank_size)


class ImageFolderDataset(FileDataset):
    """Images in one folder per class; classes sorted by name, the same list for both splits.

    Args:
        label_map_path: where to write ``<label>\\t<class>`` lines (None: do not write).
        **kwargs: see :class:`datasets.file_dataset.FileDataset`; ``data_dir`` is required.

    Raises:
        FileNotFoundError: ``data_dir`` or its ``train/`` folder is missing.
        ValueError: no class folders, an empty class folder, ``num_classes`` different from the
            number of class folders.
    """

    name = "image_folder"

    def __init__(self, *, label_map_path: Optional[str] = None, val_split: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.val_split = val_split  # --val_split: both splits carved from train/ (datasets/split.py)
        if not self.data_dir:
            raise ValueError(f"the {self.name} dataset needs --data_dir; {folders.LAYOUT_HINT}.")
        self._splits: Dict[str, folders.FolderSplit] = {}
        train = self.split("train")
        if self._num_classes is not None and self._num_classes != len(train.classes):
            raise ValueError(
                f"--num_classes={self._num_classes} does not match the data: {train.directory} has "
                f"{len(train.classes)} class folders. Drop --num_classes or fix the folders."
            )
        if label_map_path:
            folders.write_label_map(label_map_path, train.classes)
            logging.info("%s: %d classes, label map written to %s", self.data_dir, len(train.classes),
                         label_map_path)

    @classmethod
    def extra_kwargs(cls, config: RunConfig) -> Dict[str, Any]:
        return {"label_map_path": default_label_map_path(config), "val_split": config.data.val_split}

    @property
    def classes(self) -> List[str]:
        """Class names; label ``i`` is ``classes[i]``."""
        return self.split("train").classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, split: str) -> folders.FolderSplit:
        """The files of ``split`` (scanned once); validation uses the training split's classes."""
        pipeline.check_split(split)
        if self.val_split and not self._splits:
            self._splits.update(carve_val_split(self.data_dir, self.val_split))
        if split not in self._splits:
            classes = None if split == "train" else self.split("train").classes
            found = folders.scan_split(self.data_dir, split, classes)
            if found.ignored:
                logging.warning("%s: ignored %d file(s) that are not JPEG or PNG, e.g. %s", found.directory,
                                len(found.ignored), found.ignored[0])
            self._splits[split] = found
        return self._splits[split]

    def num_examples(self, split: str) -> int:
        return len(self.split(split))

    positioned = True  # records() starts the training stream at any record (datasets/pipeline.py)

    def records(self, split: str, *, training: bool, input_context: Optional[tf.distribute.InputContext],
                seed: Optional[int], start: int = 0) -> tf.data.Dataset:
        """This pipeline's ``{"name", "label"}`` records; training: endless epochs from record ``start`` on.

        Training shuffles the pipeline's whole file list (file names are cheap), each epoch in an order drawn
        from ``(seed, epoch)`` alone, so that a stream started at record ``start`` is the one an uninterrupted
        run reads from there (epoch ``start // files``, file ``start % files`` of it).
        """
        found = self.split(split)
        files, labels = list(found.files), list(found.labels)
        if input_context is not None and input_context.num_input_pipelines > 1:
            step, first = input_context.num_input_pipelines, input_context.input_pipeline_id
            files, labels = files[first::step], labels[first::step]  # Dataset.shard's share
        files_t, labels_t = tf.constant(files, tf.string), tf.constant(labels, tf.int32)
        if training:
            if not files:
                raise ValueError(f"{found.directory}: {len(found)} training images for "
                                 f"{input_context.num_input_pipelines} input pipelines; each needs one at least.")
            base = pipeline.base_seed(seed)

            def epoch(number: tf.Tensor, skip: tf.Tensor) -> tf.data.Dataset:
                order = pipeline.epoch_permutation(len(files), base, number)[skip:]
                return tf.data.Dataset.from_tensor_slices((tf.gather(files_t, order), tf.gather(labels_t, order)))

            ds = pipeline.epochs_from(epoch, epoch_size=len(files), start=start)
        else:
            ds = tf.data.Dataset.from_tensor_slices((files_t, labels_t))
        # Files are read in the decode map (:meth:`parse`), where a file that cannot be read is
        # skipped and named like one that does not decode.
        return ds.map(lambda path, label: {"name": path, "label": label})

    def parse(self, record: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        return {"encoded": tf.io.read_file(record["name"]), "label": record["label"]}
