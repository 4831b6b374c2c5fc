"""Datasets: importing this package registers every built-in dataset."""

from datasets import synthetic as _synthetic  # noqa: F401
from datasets.base import ImageDataset

__all__ = ["ImageDataset"]
