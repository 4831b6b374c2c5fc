"""``file_list``: images named in a CSV or text list of ``path,label`` lines (``--train_list``, ``--val_list``).

For data that is not laid out one folder per class: an export from a labelling tool, a subset of a
larger collection, images spread over several disks. The format:

* ``.csv`` files are read as CSV (quoted fields may hold commas); a first row ``path,label`` (or
  ``file``/``filename``/``image`` for the first column) is a header and skipped.
* any other file is text: one ``path<TAB>label``, ``path,label`` or ``path label`` line per image (the
  label is after the last tab, else after the last comma, else after the last space, so paths may
  hold the other separators); empty lines and lines starting with ``#`` are skipped.
* a relative path is relative to ``--data_dir`` when given, else to the folder of the list file.
* labels are class names (label ``i`` is the ``i``-th name in sorted order, as for image folders) or,
  when every label of the training list is an integer, 0-based class numbers (``--num_classes``
  may be larger than the largest one + 1).

The validation split is ``--val_list``, or ``--val_split`` carved from the training list
(:mod:`datasets.split`). Reading, augmentation and bad-image handling are the image folders'.
"""

from __future__ import annotations

import csv
import io
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import tensorflow as tf

from datasets import folders, pipeline
from datasets.image_folder import ImageFolderDataset
from datasets.split import carve_folder_split
from run_config import RunConfig

__all__ = ["FileListDataset", "read_list"]

_HEADER_NAMES = ("path", "file", "filename", "image", "image_path")
_INTEGER = re.compile(r"^-?\d+$")


def read_list(path: str, root: Optional[str] = None) -> List[Tuple[str, str]]:
    """The ``(image path, label text)`` rows of a list file, paths made absolute against ``root``.

    Args:
        path: the list (``.csv`` read as CSV, anything else as text lines).
        root: what relative paths are relative to (default: the list's folder).

    Raises:
        FileNotFoundError: no such list.
        ValueError: a row without exactly a path and a label (named with its line number), or no rows.
    """
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: no such list file (expected 'path,label' lines).")
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    root = root or os.path.dirname(os.path.abspath(path))
    rows: List[Tuple[int, str, str]] = []
    if path.lower().endswith(".csv"):
        for number, fields in enumerate(csv.reader(io.StringIO(text)), 1):
            if not fields or not "".join(fields).strip():
                continue
            if len(fields) != 2:
                raise ValueError(f"{path}:{number}: expected 2 fields (path,label), got {len(fields)}: {fields!r}")
            if number == 1 and fields[0].strip().lower() in _HEADER_NAMES:
                continue
            rows.append((number, fields[0].strip(), fields[1].strip()))
    else:
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            sep = "\t" if "\t" in line else ("," if "," in line else None)
            fields = line.rsplit(sep, 1)
            if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
                raise ValueError(f"{path}:{number}: expected 'path,label' (or path<TAB>label, path label), got "
                                 f"{line!r}")
            rows.append((number, fields[0].strip(), fields[1].strip()))
    if not rows:
        raise ValueError(f"{path}: the list names no image (expected 'path,label' lines).")
    result = []
    for number, image, label in rows:
        if not image or not label:
            raise ValueError(f"{path}:{number}: an empty path or label.")
        absolute = image if "://" in image or os.path.isabs(image) else os.path.join(root, image)
        result.append((absolute, label))
    return result


def _check_exist(files: Sequence[str], list_path: str) -> None:
    """Raises a FileNotFoundError naming the listed local files that do not exist."""
    missing = [f for f in files if "://" not in f and not os.path.isfile(f)]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise FileNotFoundError(f"{list_path}: {len(missing)} listed image(s) do not exist: {shown} (relative paths "
                                "are relative to --data_dir, else to the list's folder).")


class FileListDataset(ImageFolderDataset):
    """Images listed with their labels in ``--train_list`` (and ``--val_list``); see the module docstring.

    Args:
        train_list: the training list (required).
        val_list: the validation list (optional; else ``--val_split``).
        **kwargs: see :class:`datasets.image_folder.ImageFolderDataset`; ``data_dir`` (optional) is
            where relative paths start.

    Raises:
        ValueError: no ``train_list``, a malformed list, a validation label the training list lacks,
            an integer label outside ``[0, num_classes)``, ``--val_split`` together with ``--val_list``.
        FileNotFoundError: a list or a listed local image that does not exist.
    """

    name = "file_list"

    def __init__(self, *, train_list: Optional[str] = None, val_list: Optional[str] = None, **kwargs: Any) -> None:
        if not train_list:
            raise ValueError("the file_list dataset needs --train_list=FILE, a CSV or text list of 'path,label' "
                             "lines (docs/data.md).")
        self.train_list, self.val_list = train_list, val_list
        self._root = kwargs.get("data_dir")  # None: each list's own folder
        kwargs["data_dir"] = kwargs.get("data_dir") or os.path.dirname(os.path.abspath(train_list))
        super().__init__(**kwargs)

    @classmethod
    def extra_kwargs(cls, config: RunConfig) -> Dict[str, Any]:
        kwargs = super().extra_kwargs(config)
        kwargs.update(train_list=config.data.train_list, val_list=config.data.val_list)
        return kwargs

    def split(self, split: str) -> folders.FolderSplit:
        """The files of ``split``, read once; the validation list uses the training list's classes."""
        pipeline.check_split(split)
        if "train" not in self._splits:
            train = self._read(self.train_list, None)
            if self.val_split:
                if self.val_list:
                    raise ValueError(f"--val_split={self.val_split:g} and --val_list={self.val_list}: pass one of "
                                     "them (--val_split carves the validation split from --train_list).")
                self._splits.update(carve_folder_split(train, self.val_split, self._root or
                                                       os.path.dirname(os.path.abspath(self.train_list))))
            else:
                self._splits["train"] = train
        if split not in self._splits:
            if not self.val_list:
                raise FileNotFoundError(f"--train_list={self.train_list}: no validation split; pass --val_list=FILE "
                                        "or --val_split=0.1 (carved from the training list).")
            self._splits[split] = self._read(self.val_list, self._splits["train"].classes)
        return self._splits[split]

    def _read(self, list_path: str, classes: Optional[List[str]]) -> folders.FolderSplit:
        rows = read_list(list_path, self._root)
        files = [path for path, _ in rows]
        texts = [label for _, label in rows]
        _check_exist(files, list_path)
        if classes is None:
            classes = self._classes_of(texts, list_path)
        numbered = classes == [str(i) for i in range(len(classes))] and all(_INTEGER.match(t) for t in texts)
        index = {name: i for i, name in enumerate(classes)}
        labels = []
        for path, text in rows:
            label = int(text) if numbered else index.get(text)
            if label is None or not 0 <= label < len(classes):
                shown = ", ".join(classes[:5]) + (" ..." if len(classes) > 5 else "")
                raise ValueError(f"{list_path}: label {text!r} of {path} is not a class of the training list "
                                 f"({len(classes)} classes: {shown}).")
            labels.append(label)
        return folders.FolderSplit(list_path, list(classes), files, labels)

    def _classes_of(self, texts: Sequence[str], list_path: str) -> List[str]:
        """Class names of the training list: sorted names, or ``0..n-1`` when every label is an integer."""
        if all(_INTEGER.match(t) for t in texts):
            numbers = [int(t) for t in texts]
            if min(numbers) < 0:
                raise ValueError(f"{list_path}: integer labels start at 0; found {min(numbers)}.")
            count = max(numbers) + 1
            if self._num_classes is not None:
                if self._num_classes < count:
                    raise ValueError(f"--num_classes={self._num_classes} but {list_path} has label {count - 1}; "
                                     f"integer labels must lie in [0, {self._num_classes}).")
                count = self._num_classes
            return [str(i) for i in range(count)]
        return sorted(set(texts))
