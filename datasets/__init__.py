"""Datasets: importing this package registers every built-in dataset, without importing it.

Each entry names its class (``"datasets.imagenet:ImageNetDataset"``); the module, and TensorFlow with
it, is imported when a run builds that dataset. A new data source adds a module here and one line below.
"""

from registry import DATASETS

DATASETS.register_lazy("demo", "datasets.demo:DemoDataset",
                       description="scikit-learn's 1,797 handwritten digits as JPEG folders (no download).")
DATASETS.register_lazy("image_folder", "datasets.image_folder:ImageFolderDataset",
                       description="JPEG/PNG files in train/<class>/ and val/<class>/ folders.")
DATASETS.register_lazy("imagenet", "datasets.imagenet:ImageNetDataset",
                       description="ImageNet-layout TFRecord shards train-*/validation-* "
                       "(image/encoded, image/class/label, optional boxes).")
DATASETS.register_lazy("synthetic", "datasets.synthetic:SyntheticDataset",
                       description="Random images and labels generated in memory.")
