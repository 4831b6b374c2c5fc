"""Datasets: importing this package registers every built-in dataset and defines their flags."""

from datasets import demo as _demo  # noqa: F401
from datasets import image_folder as _image_folder  # noqa: F401
from datasets import imagenet as _imagenet  # noqa: F401
from datasets import synthetic as _synthetic  # noqa: F401
from datasets.base import ImageDataset
from datasets.file_dataset import FileDataset

__all__ = ["FileDataset", "ImageDataset"]
