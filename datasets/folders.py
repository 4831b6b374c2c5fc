"""Class-per-folder image trees (``data_dir/train/<class>/*.jpg``) and label-map files.

Shared by the ``image_folder`` reader, the embedded demo and ``tools/build_tfrecords.py``, so that
all three agree on which files count as images and how class names map to labels (sorted names,
label = position in that order).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import tensorflow as tf

from atomic import write_text

__all__ = [
    "IMAGE_EXTENSIONS",
    "SPLIT_FOLDERS",
    "FolderSplit",
    "atomic_write_text",
    "check_same_classes",
    "find_split_dir",
    "read_label_map",
    "scan_split",
    "write_label_map",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Folder names accepted for each split, in order of preference (the Ascend recipe's README uses train/ and val/).
SPLIT_FOLDERS: Dict[str, Sequence[str]] = {"train": ("train",), "validation": ("val", "validation")}
LAYOUT_HINT = "expected DATA_DIR/train/<class>/*.jpg and DATA_DIR/val/<class>/*.jpg (JPEG or PNG)"


@dataclass
class FolderSplit:
    """The images of one split.

    Attributes:
        directory: the split's folder.
        classes: class folder names, sorted; label ``i`` is ``classes[i]``.
        files: image paths, grouped by class, sorted within a class.
        labels: label of each file.
        ignored: files skipped because their extension is not an image's (reported, not hidden).
    """

    directory: str
    classes: List[str]
    files: List[str] = field(default_factory=list)
    labels: List[int] = field(default_factory=list)
    ignored: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)


def find_split_dir(data_dir: str, split: str) -> Optional[str]:
    """The folder of ``split`` under ``data_dir`` (``train``; ``val`` or ``validation``), or None."""
    for name in SPLIT_FOLDERS[split]:
        path = os.path.join(data_dir, name)
        if tf.io.gfile.isdir(path):
            return path
    return None


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def scan_split(data_dir: str, split: str, classes: Optional[Sequence[str]] = None) -> FolderSplit:
    """Lists the images of one split.

    Args:
        data_dir: the dataset root.
        split: ``train`` or ``validation``.
        classes: the class list to use (e.g. the training split's); None to take this split's own.

    Returns:
        A :class:`FolderSplit`.

    Raises:
        FileNotFoundError: ``data_dir`` or the split's folder does not exist.
        ValueError: no class folders, class folders without images, or (with ``classes``) a
            different set of class folders than given.
    """
    if not tf.io.gfile.isdir(data_dir):
        raise FileNotFoundError(f"--data_dir={data_dir} does not exist or is not a directory; {LAYOUT_HINT}.")
    split_dir = find_split_dir(data_dir, split)
    if split_dir is None:
        names = " or ".join(f"{n}/" for n in SPLIT_FOLDERS[split])
        raise FileNotFoundError(f"{data_dir} has no {names} folder for the {split} split; {LAYOUT_HINT}.")
    found = sorted(n.rstrip("/") for n in tf.io.gfile.listdir(split_dir)
                   if tf.io.gfile.isdir(os.path.join(split_dir, n.rstrip("/"))))
    if not found:
        raise ValueError(f"{split_dir} has no class folders; {LAYOUT_HINT}.")
    if classes is not None:
        check_same_classes(list(classes), found, "train", split, data_dir)
    else:
        classes = found
    result = FolderSplit(split_dir, list(classes))
    empty = []
    for label, name in enumerate(classes):
        class_dir = os.path.join(split_dir, name)
        entries = sorted(tf.io.gfile.listdir(class_dir))
        images = [e for e in entries if _is_image(e)]
        result.ignored.extend(os.path.join(class_dir, e) for e in entries if not _is_image(e) and not e.endswith("/"))
        if not images:
            empty.append(class_dir)
            continue
        result.files.extend(os.path.join(class_dir, e) for e in images)
        result.labels.extend([label] * len(images))
    if empty:
        shown = ", ".join(empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
        raise ValueError(
            f"{len(empty)} class folder(s) of the {split} split contain no JPEG or PNG image: {shown}. "
            "Add images or remove the folders (a class without images cannot be learned or evaluated)."
        )
    return result


def check_same_classes(expected: List[str], found: List[str], expected_split: str, split: str,
                       data_dir: str) -> None:
    """Raises a ValueError naming the differences if two splits have different class folders."""
    if list(expected) == list(found):
        return
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))

    def show(names: List[str]) -> str:
        return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")

    parts = []
    if missing:
        parts.append(f"missing in {split}: {show(missing)}")
    if extra:
        parts.append(f"only in {split}: {show(extra)}")
    raise ValueError(
        f"{data_dir}: the {split} split's class folders differ from the {expected_split} split's "
        f"({'; '.join(parts)}). Both splits need the same class folders so that labels mean the same."
    )


def atomic_write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (:func:`atomic.write_text`; never half-written)."""
    write_text(path, text)


def write_label_map(path: str, classes: Sequence[str], label_offset: int = 0) -> None:
    """Writes ``<label>\\t<class name>`` lines, label = position + ``label_offset``."""
    atomic_write_text(path, "".join(f"{i + label_offset}\t{name}\n" for i, name in enumerate(classes)))


def read_label_map(path: str) -> Dict[int, str]:
    """Reads a label map written by :func:`write_label_map`: label -> class name."""
    result = {}
    with tf.io.gfile.GFile(path) as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            label, sep, name = line.partition("\t")
            if not sep or not label.strip().lstrip("-").isdigit():
                raise ValueError(f"{path}:{number}: expected '<label><TAB><class name>', got {line!r}")
            result[int(label)] = name
    return result
