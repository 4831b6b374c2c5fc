"""``demo``: scikit-learn's handwritten digits as a real, embedded image dataset.

The 1,797 8x8 grey-level digits that ship inside scikit-learn are written once, as JPEG files in
the Ascend recipe's folder layout (``train/<digit>/*.jpg``, ``val/<digit>/*.jpg``, a stratified 80/20
split), to a cache directory; from then on they are read by the same ``image_folder`` reader as
user data. No download is needed.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, Dict, Tuple

from absl import logging

from atomic import publish_directory
from datasets import folders
from datasets.image_folder import ImageFolderDataset
from run_config import RunConfig

__all__ = ["DEMO_VERSION", "DemoDataset", "default_cache_dir", "write_digits"]

DEMO_VERSION = "digits-v1"
_MARKER = "demo_info.json"
_PIXELS = 64          # side of the stored JPEGs (the 8x8 originals, upscaled)
_JPEG_QUALITY = 95
_VAL_FRACTION = 0.2
_SPLIT_SEED = 0



def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/alexnet_zoo/<version>`` (``~/.cache`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "alexnet_zoo", DEMO_VERSION)


def write_digits(cache_dir: str) -> str:
    """Writes the digits as JPEG files under ``cache_dir`` unless they are there already.

    The files are written to a temporary sibling directory that is renamed into place at the
    end, so an interrupted run leaves nothing half-written behind, and concurrent runs agree.

    Returns:
        ``cache_dir``.

    Raises:
        ValueError: ``cache_dir`` exists but is not a complete demo dataset.
    """
    marker = os.path.join(cache_dir, _MARKER)
    if os.path.isfile(marker):
        return cache_dir
    if os.path.exists(cache_dir) and os.listdir(cache_dir):
        raise ValueError(f"--demo_cache_dir={cache_dir} exists but holds no complete demo dataset "
                         f"({_MARKER} missing); delete it or choose another directory.")
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # 0..16 grey levels, white strokes on black as in scikit-learn's plots.
    pixels = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    index = np.arange(len(pixels))
    train_idx, val_idx = train_test_split(index, test_size=_VAL_FRACTION, stratify=digits.target,
                                          random_state=_SPLIT_SEED)
    counts: Dict[str, int] = {}
    try:
        with publish_directory(cache_dir) as tmp:
            _write_digit_files(tmp, pixels, digits.target, train_idx, val_idx, counts)
    except OSError:
        if not os.path.isfile(marker):  # not another process that finished first
            raise
    logging.info("Demo dataset written to %s (%s)", cache_dir, counts)
    return cache_dir


def _write_digit_files(tmp: str, pixels, targets, train_idx, val_idx, counts: Dict[str, int]) -> None:
    """The JPEG files, label map and completion marker of the demo dataset, under ``tmp``."""
    from PIL import Image

    for split_dir, ids in (("train", train_idx), ("val", val_idx)):
        for i in sorted(ids):
            class_dir = os.path.join(tmp, split_dir, str(targets[i]))
            os.makedirs(class_dir, exist_ok=True)
            image = Image.fromarray(pixels[i], mode="L").resize((_PIXELS, _PIXELS), Image.BICUBIC)
            buf = io.BytesIO()
            image.save(buf, "JPEG", quality=_JPEG_QUALITY)
            with open(os.path.join(class_dir, f"digit_{i:04d}.jpg"), "wb") as f:
                f.write(buf.getvalue())
        counts[split_dir] = len(ids)
    classes = [str(c) for c in range(10)]
    folders.write_label_map(os.path.join(tmp, "label_map.txt"), classes)
    with open(os.path.join(tmp, _MARKER), "w") as f:  # last: its presence means complete
        json.dump({"version": DEMO_VERSION, "source": "sklearn.datasets.load_digits", "pixels": _PIXELS,
                   "jpeg_quality": _JPEG_QUALITY, "examples": counts, "classes": classes}, f, indent=1)


class DemoDataset(ImageFolderDataset):
    """The embedded default dataset: handwritten digits, 10 classes, 1,437 train / 360 val images.

    Digits are not mirror-symmetric and fill most of their frame, so the default augmentation
    is milder than ImageNet's: no flips, and crops of at least half of the image.

    Args:
        cache_dir: where the JPEG files live (written on first use).
        **kwargs: see :class:`datasets.image_folder.ImageFolderDataset` (``data_dir`` is ignored).
    """

    name = "demo"
    default_area_range: Tuple[float, float] = (0.5, 1.0)
    default_random_flip = False

    def __init__(self, *, cache_dir: str = "", **kwargs: Any) -> None:
        kwargs["data_dir"] = write_digits(cache_dir or default_cache_dir())
        super().__init__(**kwargs)

    @classmethod
    def extra_kwargs(cls, config: RunConfig) -> Dict[str, Any]:
        kwargs = super().extra_kwargs(config)
        kwargs["cache_dir"] = config.data.demo_cache_dir or ""
        return kwargs
