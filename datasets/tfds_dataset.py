"""``tfds``: a TensorFlow Datasets dataset by name, read from a prepared data directory.

    python main.py --dataset=tfds --tfds_name=tf_flowers --data_dir=~/tensorflow_datasets \\
        --tfds_train_split='train[:90%]' --tfds_val_split='train[90%:]'

``--data_dir`` is TFDS's ``data_dir`` (``<data_dir>/<name>/<version>/`` holds the prepared records and
``dataset_info.json``). The dataset is read from there without the network: a dataset of TFDS's
catalogue prepared earlier (``tfds build``, or ``tfds.load(..., data_dir=...)`` on a connected machine
and the folder copied), and also one whose builder code is not importable here (a custom
``GeneratorBasedBuilder``): TFDS then reads it from its files and ``dataset_info.json``.
``--tfds_download`` lets TFDS download and prepare a catalogue dataset that is missing.

Examples are read with their images still encoded (``tfds.decode.SkipDecoding``), so they take the
same path as image files: the crop is decoded from the JPEG, augmentation and normalisation are the
shared pipeline's (:mod:`datasets.pipeline`). The image is the dataset's supervised input (or its one
``Image`` feature), the label its ``ClassLabel`` feature, whose names become the label map.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import tensorflow as tf
from absl import logging

from datasets import folders, pipeline
from datasets.file_dataset import FileDataset
from datasets.image_folder import default_label_map_path
from run_config import RunConfig

__all__ = ["TfdsDataset", "import_tfds"]

INSTALL_HINT = "pip install tensorflow-datasets==4.9.10 (requirements.txt pins it)"


def import_tfds():
    """The ``tensorflow_datasets`` module, or a one-line ImportError saying how to install it."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(f"--dataset=tfds needs the tensorflow-datasets package ({e}); {INSTALL_HINT}.") from None
    return tfds


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class TfdsDataset(FileDataset):
    """A TFDS dataset: encoded images and class labels from a prepared ``data_dir``.

    Args:
        tfds_name: the dataset's name (``name``, ``name/config``, ``name:version``).
        train_split: TFDS split of training (``train``, ``train[:90%]``).
        val_split_name: TFDS split of evaluation; None: ``validation``, else ``test``.
        download: download and prepare the dataset when it is not in ``data_dir``.
        val_split: ``--val_split``; refused here (TFDS's split syntax carves splits).
        label_map_path: where to write the class names (None: not written).
        **kwargs: see :class:`datasets.file_dataset.FileDataset`.

    Raises:
        ImportError: tensorflow-datasets is not installed.
        ValueError: no name, an unknown or unprepared dataset, a dataset without an image or a
            ``ClassLabel`` feature, an unknown split, ``num_classes`` different from the dataset's.
    """

    name = "tfds"

    def __init__(self, *, tfds_name: Optional[str] = None, train_split: str = "train",
                 val_split_name: Optional[str] = None, download: bool = False, val_split: float = 0.0,
                 label_map_path: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not tfds_name:
            raise ValueError("the tfds dataset needs --tfds_name=NAME (and --data_dir, TFDS's data directory).")
        if val_split:
            raise ValueError(f"--val_split={val_split:g} carves image folders and file lists; with --dataset=tfds use "
                             "TFDS's split syntax: --tfds_train_split='train[:90%]' --tfds_val_split='train[90%:]'.")
        tfds = import_tfds()
        self.tfds_name = tfds_name
        where = self.data_dir or "TFDS's default data_dir"
        try:
            self.builder = tfds.builder(tfds_name, data_dir=self.data_dir)
        except Exception as e:  # TFDS raises its own types (DatasetNotFoundError, ...), with long messages
            raise ValueError(f"--tfds_name={tfds_name}: no such dataset in {where} ({_first_line(e)}); prepare it "
                             "there first, or pass --tfds_download to let TFDS download it.") from None
        if not self.builder.is_prepared():
            if not download:
                raise ValueError(f"--tfds_name={tfds_name} is not prepared in {where}; prepare it there (tfds build "
                                 f"{tfds_name} --data_dir=DIR on a machine with the network) or pass --tfds_download.")
            logging.info("Downloading and preparing TFDS dataset %s into %s", tfds_name, where)
            self.builder.download_and_prepare()
        self.info = self.builder.info
        self.image_key, self.label_key = self._keys()
        self._classes = list(self.info.features[self.label_key].names)
        if self._num_classes is not None and self._num_classes != len(self._classes):
            raise ValueError(f"--num_classes={self._num_classes} does not match the data: {tfds_name}'s "
                             f"{self.label_key} has {len(self._classes)} classes. Drop --num_classes.")
        self.splits = {"train": train_split, "validation": val_split_name or self._default_val_split()}
        if label_map_path:
            folders.write_label_map(label_map_path, self._classes)
            logging.info("%s: %d classes, label map written to %s", tfds_name, len(self._classes), label_map_path)

    @classmethod
    def extra_kwargs(cls, config: RunConfig) -> Dict[str, Any]:
        data = config.data
        return {"tfds_name": data.tfds_name, "train_split": data.tfds_train_split,
                "val_split_name": data.tfds_val_split, "download": data.tfds_download, "val_split": data.val_split,
                "label_map_path": default_label_map_path(config)}

    def _keys(self) -> Tuple[str, str]:
        """The image and label feature names: the supervised keys, else the one Image and ClassLabel feature."""
        tfds = import_tfds()
        features = self.info.features
        supervised = self.info.supervised_keys
        if supervised and len(supervised) == 2 and all(isinstance(k, str) for k in supervised):
            image, label = supervised
        else:
            images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
            labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
            if len(images) != 1 or len(labels) != 1:
                raise ValueError(f"--tfds_name={self.tfds_name}: expected one Image and one ClassLabel feature, found "
                                 f"images {images} and labels {labels} (features: {', '.join(features)}).")
            image, label = images[0], labels[0]
        if not isinstance(features[image], tfds.features.Image):
            raise ValueError(f"--tfds_name={self.tfds_name}: feature {image!r} is a {type(features[image]).__name__}, "
                             "not an encoded Image.")
        if not isinstance(features[label], tfds.features.ClassLabel):
            raise ValueError(f"--tfds_name={self.tfds_name}: feature {label!r} is a {type(features[label]).__name__}, "
                             "not a ClassLabel.")
        return image, label

    def _default_val_split(self) -> str:
        for name in ("validation", "test"):
            if name in self.info.splits:
                return name
        return ""  # refused when evaluation asks for it (training needs no validation split)

    @property
    def classes(self) -> List[str]:
        """Class names; label ``i`` is ``classes[i]``."""
        return list(self._classes)

    @property
    def num_classes(self) -> int:
        return len(self._classes)

    def tfds_split(self, split: str) -> str:
        """The TFDS split name of ``train`` or ``validation``."""
        pipeline.check_split(split)
        name = self.splits[split]
        if not name:
            raise ValueError(f"--tfds_name={self.tfds_name} has no validation or test split (it has "
                             f"{', '.join(self.info.splits)}); pass e.g. --tfds_train_split='train[:90%]' "
                             "--tfds_val_split='train[90%:]'.")
        return name

    def num_examples(self, split: str) -> int:
        name = self.tfds_split(split)
        try:
            return int(self.info.splits[name].num_examples)
        except (KeyError, ValueError) as e:
            raise ValueError(f"--tfds_name={self.tfds_name}: split {name!r} ({_first_line(e)}); it has "
                             f"{', '.join(self.info.splits)}.") from None

    def records(self, split: str, *, training: bool, input_context: Optional[tf.distribute.InputContext],
                seed: Optional[int]) -> tf.data.Dataset:
        tfds = import_tfds()
        name = self.tfds_split(split)
        self.num_examples(split)  # an unknown split fails here, in one line
        sharded = input_context is not None and input_context.num_input_pipelines > 1
        # Pipelines that each keep every n-th example must read the files in the same order.
        read_config = tfds.ReadConfig(try_autocache=False, add_tfds_id=True,
                                      shuffle_seed=(self.seed or 0) if sharded else seed)
        ds = self.builder.as_dataset(split=name, shuffle_files=training, read_config=read_config,
                                     decoders={self.image_key: tfds.decode.SkipDecoding()})
        if sharded:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if training:
            ds = ds.shuffle(self.options.shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
        image_key, label_key = self.image_key, self.label_key
        return ds.map(lambda ex: {"encoded": ex[image_key], "label": tf.cast(ex[label_key], tf.int32),
                                  "name": ex["tfds_id"]})
