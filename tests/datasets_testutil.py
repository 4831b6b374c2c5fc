"""Helpers for the dataset tests: small image folders made of real photo crops."""

from __future__ import annotations

import functools
import os
from typing import Dict, Iterable, Optional, Tuple

import numpy as np
from PIL import Image

import zoo


@functools.lru_cache(maxsize=1)
def _photos():
    from sklearn.datasets import load_sample_images

    return load_sample_images().images  # two real photographs, 427x640


def photo(seed: int, size: Tuple[int, int] = (80, 60)) -> np.ndarray:
    """A crop of a real photograph, resized to ``size`` = (width, height), uint8 HxWx3."""
    rng = np.random.default_rng(seed)
    source = _photos()[seed % 2]
    h, w = source.shape[:2]
    ch, cw = int(rng.integers(h // 3, h)), int(rng.integers(w // 3, w))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = Image.fromarray(source[y:y + ch, x:x + cw]).resize(size, Image.BILINEAR)
    return np.asarray(crop)


def write_image(path: str, pixels: np.ndarray, quality: int = 90) -> str:
    """Writes JPEG or PNG by the extension of ``path``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fmt = "PNG" if path.lower().endswith(".png") else "JPEG"
    Image.fromarray(pixels).save(path, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return path


def make_folder(root: str, classes: Optional[Dict[str, int]] = None, val: Optional[Dict[str, int]] = None,
                size: Tuple[int, int] = (80, 60), png_every: int = 3, splits: Iterable[str] = ("train", "val"),
                seed: int = 0) -> str:
    """An image folder ``root/<split>/<class>/img_<i>.jpg|png`` of photo crops; returns ``root``.

    Args:
        classes: training images per class (default 3 classes with 4, 3, 2 images).
        val: validation images per class (default 2 each of the same classes).
        png_every: every n-th image is a PNG (0: JPEG only).
    """
    classes = classes or {"cat": 4, "dog": 3, "fox": 2}
    val = val or {name: 2 for name in classes}
    counter = seed * 1000
    for split in splits:
        for name, count in (classes if split == "train" else val).items():
            for _ in range(count):
                counter += 1
                ext = ".png" if png_every and counter % png_every == 0 else ".jpg"
                write_image(os.path.join(root, split, name, f"img_{counter:05d}{ext}"), photo(counter, size))
    return root


def recipe(image_size: int = 64):
    """AlexNet's recipe scaled to a small input size."""
    return zoo.get_recipe("alexnet").scaled(image_size)
