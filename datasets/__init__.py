"""Datasets: importing this package registers every built-in dataset, without importing it.

Each entry names its class (``"datasets.imagenet:ImageNetDataset"``); the module, and TensorFlow with
it, is imported when a run builds that dataset. A new data source adds a module here and one line below.
"""

from registry import DATASETS

DATASETS.register_lazy("demo", "datasets.demo:DemoDataset",
                       description="scikit-learn's 1,797 handwritten digits as JPEG folders (no download).")
DATASETS.register_lazy("file_list", "datasets.file_list:FileListDataset",
                       description="images listed with their labels in CSV or text files (--train_list, --val_list).")
DATASETS.register_lazy("image_folder", "datasets.image_folder:ImageFolderDataset",
                       description="JPEG/PNG files in train/<class>/ and val/<class>/ folders.")
DATASETS.register_lazy("imagenet", "datasets.imagenet:ImageNetDataset",
                       description="ImageNet-layout TFRecord shards train-*/validation-* "
                       "(image/encoded, image/class/label, optional boxes).")
DATASETS.register_lazy("tfds", "datasets.tfds_dataset:TfdsDataset",
                       description="a TensorFlow Datasets dataset by name (--tfds_name), from a prepared --data_dir.")
DATASETS.register_lazy("synthetic", "datasets.synthetic:SyntheticDataset",
                       description="Random images and labels generated in memory.")
