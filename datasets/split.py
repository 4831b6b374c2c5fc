"""``--val_split``: a deterministic, class-stratified validation split carved from the training data.

For image folders without ``val/`` and file lists without ``--val_list``. Every class gives
``round(fraction x its count)`` examples to validation (at least one when it has two or more, never
all of them), so that small classes are represented in both splits. Which examples go is decided by
the SHA-256 of each example's key (its path relative to the data), and nothing else: not the seed,
not the order files are listed in, not the machine (and a larger fraction keeps the smaller one's
examples in validation). So a resumed run, a later
``--mode=evaluate`` and a rerun on another host all carve the same split (``--val_split`` is a
``meaning`` setting: later modes take the run's value).
"""

from __future__ import annotations

import hashlib
import os
from typing import Dict, List, Sequence, Tuple

from absl import logging

__all__ = ["carve_folder_split", "carve_val_split", "stratified_split", "val_count"]


def val_count(count: int, fraction: float) -> int:
    """How many of a class's ``count`` examples go to validation: ``round(fraction x count)``, at least 1 when
    ``count >= 2`` and ``fraction > 0``, at most ``count - 1`` (training keeps every class)."""
    if fraction <= 0 or count < 2:
        return 0
    return min(max(int(fraction * count + 0.5), 1), count - 1)


def _rank(key: str) -> str:
    return hashlib.sha256(f"val_split:{key}".encode()).hexdigest()


def stratified_split(keys: Sequence[str], labels: Sequence[int], fraction: float) -> Tuple[List[int], List[int]]:
    """Indices of the training and validation examples, stratified by label.

    Args:
        keys: a stable name of each example (its path relative to the data), unique.
        labels: each example's label.
        fraction: the share of each class that goes to validation, in [0, 1).

    Returns:
        ``(train, val)``: indices into ``keys``, each in ascending order.

    Raises:
        ValueError: ``keys`` and ``labels`` differ in length, or a key repeats.
    """
    if len(keys) != len(labels):
        raise ValueError(f"{len(keys)} keys for {len(labels)} labels")
    if len(set(keys)) != len(keys):
        raise ValueError("--val_split needs each example once; the same file is listed twice")
    by_class: Dict[int, List[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(index)
    val: List[int] = []
    for members in by_class.values():
        ranked = sorted(members, key=lambda i: _rank(keys[i]))
        val.extend(ranked[:val_count(len(members), fraction)])
    chosen = set(val)
    return [i for i in range(len(keys)) if i not in chosen], sorted(val)


def carve_folder_split(found, fraction: float, root: str):
    """The training and validation parts of one scanned split (a :class:`datasets.folders.FolderSplit`).

    Args:
        found: the scanned training split (files, labels, classes).
        fraction: ``--val_split``.
        root: the folder the keys are relative to (the data directory), so that moving the data keeps the split.

    Returns:
        ``{"train": FolderSplit, "validation": FolderSplit}`` with the same classes.
    """
    from datasets.folders import FolderSplit

    keys = [os.path.relpath(f, root).replace(os.sep, "/") for f in found.files]
    train_idx, val_idx = stratified_split(keys, found.labels, fraction)

    def part(indices: List[int]) -> FolderSplit:
        return FolderSplit(found.directory, list(found.classes), [found.files[i] for i in indices],
                           [found.labels[i] for i in indices], list(found.ignored))

    return {"train": part(train_idx), "validation": part(val_idx)}


def carve_val_split(data_dir: str, fraction: float):
    """``image_folder`` with ``--val_split``: both splits carved from ``data_dir/train/``.

    Returns:
        ``{"train": FolderSplit, "validation": FolderSplit}``.

    Raises:
        ValueError: ``data_dir`` has a validation folder already (``--val_split`` would silently ignore it).
    """
    from datasets import folders

    existing = folders.find_split_dir(data_dir, "validation")
    if existing is not None:
        raise ValueError(f"--val_split={fraction:g}: {data_dir} has a validation folder ({existing}) already; drop "
                         "--val_split to use it, or move it away to carve one from train/.")
    found = folders.scan_split(data_dir, "train")
    parts = carve_folder_split(found, fraction, data_dir)
    logging.info("--val_split=%g: %d of the %d images of %s form the validation split (stratified by class, "
                 "chosen by path)", fraction, len(parts["validation"]), len(found), found.directory)
    return parts
