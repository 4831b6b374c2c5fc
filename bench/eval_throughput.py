"""Evaluation throughput from a folder of JPEGs: decode + the exact evaluation transform + forward pass.

    .venv/bin/python bench/eval_throughput.py --model=resnet50 --batch=64
    .venv/bin/python bench/eval_throughput.py --model=resnet50 --precisions=fp32,bf16 --images=512

What users of pretrained weights run (``--mode=evaluate`` and ``--mode=predict``): ours reads the
folder with the project's ``image_folder`` dataset (its validation path: full decode, the model
recipe's resize of the shorter side and central crop, normalisation) and runs the zoo model in
inference mode; the peer is torchvision's ``ImageFolder`` + ``Resize`` + ``CenterCrop`` + ``ToTensor``
+ ``Normalize`` in a ``DataLoader`` (worker processes: 0, 1 and 2 tried, the best kept) feeding
torchvision's model under ``torch.no_grad`` (NCHW and channels_last, the best kept). Random weights on
both sides: the work is the same whatever the weights. One pass over the folder is the warm-up, the
next is timed. Each implementation runs in its own process, alternating for ``--rounds`` rounds; one
JSON line per implementation (the median round). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_step import cpu_model, load_average, peak_rss_mb, versions  # noqa: E402

IMPLEMENTATIONS = ("ours", "torchvision")


def run_ours(args: argparse.Namespace) -> Dict[str, Any]:
    """The project's validation input pipeline and model, timed over the second pass of the folder."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    import zoo
    from keras_compat import set_precision_policy
    from modes import assemble
    from run_config import Layer, resolve

    set_precision_policy(args.precision)
    resolved = resolve([Layer("bench", {"model": args.model, "data_dir": args.folder, "dataset": "image_folder",
                                        "log_dir": args.scratch})],
                       recipe_of=zoo.recipe_settings)
    config = resolved.config
    recipe = assemble.model_recipe(config)
    dataset = assemble.make_dataset(config, recipe)
    # The folder's classes are few; the classifier keeps ImageNet's 1000 outputs as the peer's does (the
    # labels are not used: only throughput is measured).
    model = zoo.inference_model(zoo.create_model(args.model, recipe=recipe, num_classes=1000))
    forward = tf.function(lambda images: tf.reduce_sum(tf.cast(model(images, training=False), tf.float32)))

    def one_pass() -> int:
        count = 0
        for images, _ in dataset.input_fn("validation", training=False, batch_size=args.batch):
            forward(images).numpy()
            count += int(images.shape[0])
        return count

    one_pass()
    began = time.perf_counter()
    count = one_pass()
    seconds = time.perf_counter() - began
    # What bounds it: the forward pass alone, on one batch already in memory, as many images as a pass.
    images = next(iter(dataset.input_fn("validation", training=False, batch_size=args.batch)))[0]
    forward(images).numpy()
    began = time.perf_counter()
    for _ in range(max(1, count // int(images.shape[0]))):
        forward(images).numpy()
    forward_rate = max(1, count // int(images.shape[0])) * int(images.shape[0]) / (time.perf_counter() - began)
    return dict(images_per_second=count / seconds, images=count, seconds=seconds, peak_rss_mb=peak_rss_mb(),
                forward_only_images_per_second=round(forward_rate, 2),
                transform=f"resize {recipe.eval_resize} ({recipe.interpolation}), crop {recipe.input_size}")


def run_torchvision(args: argparse.Namespace) -> Dict[str, Any]:
    """torchvision's ImageFolder + eval transforms in a DataLoader and its model; the best of the variants."""
    import torch
    from torch.utils.data import DataLoader

    import zoo
    from tools.torchvision_models import import_models

    models = import_models()
    import torchvision.transforms as T  # noqa: N812 - imported after the stub in tools/torchvision_models
    from torchvision.datasets import ImageFolder

    recipe = zoo.get_recipe(args.model)
    source = zoo.get_torchvision_source(args.model)
    interpolation = T.InterpolationMode.BICUBIC if recipe.interpolation == "bicubic" else \
        T.InterpolationMode.BILINEAR
    transform = T.Compose([T.Resize(recipe.eval_resize, interpolation=interpolation, antialias=True),
                           T.CenterCrop(recipe.input_size), T.ToTensor(),
                           T.Normalize(recipe.mean, recipe.std)])
    data = ImageFolder(os.path.join(args.folder, "val"), transform=transform)
    model = models.get_model(source.builder, weights=None, num_classes=1000, **dict(source.kwargs)).eval()
    best: Optional[Dict[str, Any]] = None
    for memory_format in (torch.contiguous_format, torch.channels_last):
        net = model.to(memory_format=memory_format)
        for workers in (0, 1, 2):
            loader = DataLoader(data, batch_size=args.batch, num_workers=workers, shuffle=False)
            _torch_pass(net, loader, memory_format, args.precision)
            began = time.perf_counter()
            count = _torch_pass(net, loader, memory_format, args.precision)
            seconds = time.perf_counter() - began
            result = dict(images_per_second=count / seconds, images=count, seconds=seconds, workers=workers,
                          memory_format="channels_last" if memory_format == torch.channels_last else "nchw")
            if best is None or result["images_per_second"] > best["images_per_second"]:
                best = result
    # What bounds it: the best format's forward pass alone, on one batch in memory, as many images as a pass.
    memory_format = torch.channels_last if best["memory_format"] == "channels_last" else torch.contiguous_format
    net = model.to(memory_format=memory_format)
    images = next(iter(DataLoader(data, batch_size=args.batch)))[0].contiguous(memory_format=memory_format)
    repeats = max(1, best["images"] // images.shape[0])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
        net(images)
        began = time.perf_counter()
        for _ in range(repeats):
            net(images)
        best["forward_only_images_per_second"] = round(repeats * images.shape[0] / (time.perf_counter() - began), 2)
    best["peak_rss_mb"] = peak_rss_mb()
    return best


def _torch_pass(net, loader, memory_format, precision: str) -> int:
    """One pass of the loader through the network; returns the images seen."""
    import torch

    count = 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        for images, _ in loader:
            net(images.contiguous(memory_format=memory_format))
            count += images.shape[0]
    return count


def make_folder(folder: str, count: int) -> None:
    """Photo-like JPEGs (500x375, from two real photographs) in train/ and val/ class folders."""
    from input_pipeline import make_photos

    make_photos(folder, count * 8)  # make_photos puts one image in eight into val/


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16 (mixed, both sides)")
    p.add_argument("--images", type=int, default=256, help="validation images in the generated folder")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--worker", choices=IMPLEMENTATIONS, default=None, help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    p.add_argument("--scratch", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        run = run_ours if args.worker == "ours" else run_torchvision
        print(json.dumps(run(args)))
        return 0
    machine = dict(cpu=cpu_model(), cores=os.cpu_count(), **versions())
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        folder = os.path.join(tmp, "photos")
        make_folder(folder, args.images)
        for precision in args.precisions.split(","):
            rounds: Dict[str, list] = {impl: [] for impl in IMPLEMENTATIONS}
            for _ in range(args.rounds):
                for impl in IMPLEMENTATIONS:
                    load = load_average()
                    cmd = [sys.executable, os.path.abspath(__file__), f"--worker={impl}", f"--model={args.model}",
                           f"--batch={args.batch}", f"--precision={precision}", f"--folder={folder}",
                           f"--scratch={os.path.join(tmp, 'scratch')}"]
                    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
                    if proc.returncode != 0:
                        raise RuntimeError(f"{impl} failed:\n{proc.stdout}\n{proc.stderr}")
                    result = json.loads(proc.stdout.strip().splitlines()[-1])
                    result["load_avg_before"] = load
                    rounds[impl].append(result)
            for impl, results in rounds.items():
                rates = [r["images_per_second"] for r in results]
                line = dict(results[-1], implementation=impl, model=args.model, batch=args.batch, precision=precision,
                            images_per_second=round(statistics.median(rates), 2),
                            per_round=[round(r, 2) for r in rates], unit="img/s", machine=machine,
                            load_avg_before_rounds=[r["load_avg_before"] for r in results])
                print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
