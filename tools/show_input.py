"""Writes what a model sees: each image after the training or evaluation transform, as lossless PNG.

    python tools/show_input.py --model=resnet50 --split=eval photo1.jpg photo2.png --out=/tmp/show
    python tools/show_input.py --model=efficientnet_b0 --split=train --repeats=4 --seed=3 \\
        --auto_augment=rand-m9-mstd0.5-inc1 --color_jitter=0.4,0.4,0.4,0 photo1.jpg --out=/tmp/show

For any registered model (the zoo's, or a plugin's with ``--extra_modules``), the images go through
exactly the per-image functions of the input pipeline, ``datasets.preprocessing.eval_image`` or
``train_image``, with the model's ``PreprocessConfig.from_recipe(zoo.get_recipe(model))`` (changed only
by the switches given here). Each output is the uint8 image before normalisation, written as
``<out>/<name>_eval.png`` (training: ``<name>_train_<k>.png`` for the k-th of ``--repeats`` draws; a
name that repeats gets the image's position appended),
plus one contact sheet of them all, ``<out>/contact_sheet.png``, each tile captioned with its file.

Training draws use the per-image seed ``[--seed, n]`` for the n-th output (in order over the images and
their repeats), so a command reproduces its pictures; the training pipeline's own seeds come from
``--seed`` through tf.data, so its n-th image gets another seed, but the same function.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Sequence

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # image transforms need no GPU (and no CUDA start-up noise)

__all__ = ["contact_sheet", "main", "show"]

_TILE_GAP = 4
_CAPTION = 14


def _floats(text: str) -> tuple:
    return tuple(float(v) for v in text.split(","))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, ...)")
    parser.add_argument("--model", required=True, help="a registered model name (its recipe sets the transform)")
    parser.add_argument("--split", choices=("train", "eval"), default="eval", help="which transform (default eval)")
    parser.add_argument("--out", required=True, help="folder for the PNG files and the contact sheet")
    parser.add_argument("--seed", type=int, default=0, help="training: first half of every per-image seed")
    parser.add_argument("--repeats", type=int, default=1, help="training: outputs per image (default 1)")
    parser.add_argument("--image_size", type=int, help="input size (the recipe scaled, as --image_size does)")
    parser.add_argument("--extra_modules", default="", help="comma-separated modules or .py files that register "
                        "models (plugins)")
    parser.add_argument("--eval_mode", choices=("shorter", "square"), help="evaluation resize mode")
    parser.add_argument("--val_resize_size", type=int, help="evaluation resize (default: the recipe's)")
    parser.add_argument("--interpolation", choices=("bilinear", "bicubic"), help="resize filter (default: the "
                        "recipe's)")
    parser.add_argument("--crop_sampler", choices=("torchvision", "distorted_bbox"))
    parser.add_argument("--train_resize", choices=("fast", "exact"))
    parser.add_argument("--train_interpolation", choices=("bilinear", "bicubic", "random"))
    parser.add_argument("--no_flip", action="store_true", help="training: no random horizontal flips")
    parser.add_argument("--min_crop_area", type=float, help="training: smallest crop, fraction of the image")
    parser.add_argument("--auto_augment", help="none, imagenet, ra, ta_wide or a timm string (rand-m9-mstd0.5-inc1)")
    parser.add_argument("--color_jitter", type=_floats, help="brightness,contrast,saturation,hue")
    parser.add_argument("--distort_color", choices=("none", "fast", "full"))
    parser.add_argument("--lighting_std", type=float)
    parser.add_argument("--random_erase", type=float)
    return parser


def preprocess_config(args: argparse.Namespace):
    """The model's :class:`PreprocessConfig` with the command's switches."""
    import zoo
    from datasets.preprocessing import PreprocessConfig

    recipe = zoo.get_recipe(args.model).scaled(args.image_size)
    overrides = dict(eval_mode=args.eval_mode, eval_resize=args.val_resize_size, interpolation=args.interpolation,
                     crop_sampler=args.crop_sampler, train_resize=args.train_resize,
                     train_interpolation=args.train_interpolation, auto_augment=args.auto_augment,
                     color_jitter=args.color_jitter, distort_color=args.distort_color,
                     lighting_std=args.lighting_std, random_erase=args.random_erase,
                     random_flip=False if args.no_flip else None,
                     area_range=None if args.min_crop_area is None else (args.min_crop_area, 1.0))
    return PreprocessConfig.from_recipe(recipe, **overrides)


def show(paths: Sequence[str], config, *, split: str = "eval", seed: int = 0, repeats: int = 1):
    """The transformed images: a list of (output name, uint8 [size, size, 3] array), in order."""
    import tensorflow as tf

    from datasets import preprocessing

    if split == "eval":
        transform = tf.function(lambda encoded: preprocessing.eval_image(encoded, config))
    else:
        transform = tf.function(lambda encoded, image_seed: preprocessing.train_image(encoded, image_seed, config))
    outputs = []
    stems = set()
    n = 0
    for index, path in enumerate(paths):
        with open(path, "rb") as f:
            encoded = tf.constant(f.read())
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in stems:  # two files of the same name from different folders
            stem = f"{stem}_{index}"
        stems.add(stem)
        if split == "eval":
            outputs.append((f"{stem}_eval", transform(encoded).numpy()))
            continue
        for k in range(repeats):
            image = transform(encoded, tf.constant([seed, n], tf.int64)).numpy()
            outputs.append((f"{stem}_train_{k}", image))
            n += 1
    return outputs


def contact_sheet(images: Sequence, captions: Sequence[str], columns: Optional[int] = None):
    """One PIL image of the tiles in a grid, each captioned below; ``columns`` defaults to a near-square grid."""
    import math

    from PIL import Image, ImageDraw

    count = len(images)
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = math.ceil(count / columns)
    height, width = images[0].shape[:2]
    cell_w, cell_h = width + _TILE_GAP, height + _CAPTION + _TILE_GAP
    sheet = Image.new("RGB", (columns * cell_w + _TILE_GAP, rows * cell_h + _TILE_GAP), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (image, caption) in enumerate(zip(images, captions)):
        x = _TILE_GAP + (i % columns) * cell_w
        y = _TILE_GAP + (i // columns) * cell_h
        sheet.paste(Image.fromarray(image), (x, y))
        draw.text((x, y + height + 1), caption[: max(4, width // 6)], fill=(0, 0, 0))
    return sheet


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.repeats < 1:
        print("error: --repeats must be at least 1", file=sys.stderr)
        return 2
    missing = [p for p in args.images if not os.path.isfile(p)]
    if missing:
        print(f"error: no such file(s): {', '.join(missing)}", file=sys.stderr)
        return 2
    import registry

    registry.import_extra_modules(args.extra_modules)
    registry.load_entry_point_plugins()
    from registry import RegistryError

    try:
        config = preprocess_config(args)
    except (RegistryError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from PIL import Image

    os.makedirs(args.out, exist_ok=True)
    outputs = show(args.images, config, split=args.split, seed=args.seed, repeats=args.repeats)
    for name, image in outputs:
        path = os.path.join(args.out, name + ".png")
        Image.fromarray(image).save(path, "PNG")
        print(path)
    sheet = os.path.join(args.out, "contact_sheet.png")
    contact_sheet([image for _, image in outputs], [name for name, _ in outputs]).save(sheet, "PNG")
    print(sheet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
