"""Input-pipeline throughput: our TFRecord pipeline vs a torchvision-style PIL loop, per CPU core.

    .venv/bin/python bench/input_pipeline.py                 # pipeline comparison, one core each
    .venv/bin/python bench/input_pipeline.py --end_to_end    # also training img/s, TFRecords vs --synthetic
    .venv/bin/python bench/input_pipeline.py --augment       # each augmentation's cost, ours vs torchvision v2

Makes ``--images`` realistic photos (crops of scikit-learn's two sample photographs, about
500x375, JPEG quality 90), converts them with ``tools/build_tfrecords.py``, then measures, each in
its own process pinned to one CPU core and in alternating rounds:

* ``pil``: torchvision's recipe by hand: open, RandomResizedCrop (scale 0.08..1, ratio 3/4..4/3,
  10 attempts, central-crop fallback) with a bilinear resize to 224, random horizontal flip,
  ToTensor + Normalize (float32 CHW);
* ``tf``: ``ImageNetDataset.input_fn('train', training=True)`` (decode only the crop, reduced DCT
  scale where possible, per-image flip, batched normalisation), and variants without DCT scaling.

``--augment`` measures each training augmentation of the training stack (``--auto_augment`` imagenet,
ra, ta_wide; ``--random_erase``; ``--mixup_alpha``; ``--cutmix_alpha``) on the same JPEG folder, in
our tf.data pipeline (one private thread) and in torchvision's transforms v2 (PIL decode, then
uint8 tensors: RandomResizedCrop, flip, the augmentation, ToDtype + Normalize, RandomErasing; MixUp /
CutMix per batch of 64; one torch thread), each next to the same pipeline without augmentation, and
reports img/s per core and the augmentation's own cost in microseconds per image.

Prints one JSON line per measurement and a summary line with the median ratios. The rate is
images per CPU-second of the measuring process (all its threads), i.e. per core, which stays
comparable on a busy machine where wall-clock rates do not. ``--end_to_end`` trains AlexNet with
``main.py`` from the TFRecords and with ``--synthetic`` at the same settings and reports the ratio
of their FPS.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from zoo.recipe import IMAGENET_MEAN as MEAN  # noqa: E402
from zoo.recipe import IMAGENET_STD as STD  # noqa: E402


def make_photos(folder: str, count: int, size=(500, 375), quality: int = 90, seed: int = 0) -> None:
    """Writes ``count`` photo-like JPEGs (random crops, scales, flips of two real photographs)."""
    import numpy as np
    from PIL import Image, ImageEnhance
    from sklearn.datasets import load_sample_images

    rng = random.Random(seed)
    photos = [Image.fromarray(p) for p in load_sample_images().images]
    for i in range(count):
        src = photos[i % 2]
        w, h = src.size
        scale = rng.uniform(0.55, 1.0)
        cw, ch = int(w * scale), int(w * scale * size[1] / size[0])
        ch = min(ch, h)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        img = src.crop((x, y, x + cw, y + ch)).resize(size, Image.BICUBIC)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
        # Light noise so that no two files compress alike.
        arr = np.asarray(img).astype(np.int16) + np.random.default_rng(i).integers(-6, 7, (size[1], size[0], 3))
        class_dir = os.path.join(folder, "train" if (i // 4) % 8 else "val", f"class{i % 4}")
        os.makedirs(class_dir, exist_ok=True)
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(
            os.path.join(class_dir, f"photo_{i:05d}.jpg"), "JPEG", quality=quality)


# -- the two contenders, each run in its own pinned process -----------------------------------------

def run_pil(folder: str, seconds: float, size: int) -> dict:
    """torchvision's RandomResizedCrop + flip + ToTensor + Normalize, written out with PIL/numpy."""
    import math

    import numpy as np
    from PIL import Image

    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(folder, "train")) for f in fs)
    rng = random.Random(0)
    mean = np.array(MEAN, np.float32).reshape(3, 1, 1)
    std = np.array(STD, np.float32).reshape(3, 1, 1)

    def crop_box(width, height):
        area = width * height
        for _ in range(10):
            target = area * rng.uniform(0.08, 1.0)
            ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            w = int(round(math.sqrt(target * ratio)))
            h = int(round(math.sqrt(target / ratio)))
            if 0 < w <= width and 0 < h <= height:
                return rng.randint(0, width - w), rng.randint(0, height - h), w, h
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, side, side

    def one(path):
        with open(path, "rb") as f:
            img = Image.open(f).convert("RGB")
        x, y, w, h = crop_box(*img.size)
        img = img.resize((size, size), Image.BILINEAR, box=(x, y, x + w, y + h))
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return (arr - mean) / std

    for path in files[:16]:  # warm-up
        one(path)
    n, began, cpu = 0, time.perf_counter(), _cpu_seconds()
    while time.perf_counter() - began < seconds:
        one(files[n % len(files)])
        n += 1
    return {"images": n, "seconds": time.perf_counter() - began, "cpu_seconds": _cpu_seconds() - cpu}


def run_tf(records: str, seconds: float, size: int, dct_scaling: bool, batch: int = 64) -> dict:
    import zoo
    from datasets.imagenet import ImageNetDataset
    from datasets.pipeline import PipelineOptions

    recipe = zoo.get_recipe("alexnet").scaled(size)
    ds = ImageNetDataset(recipe=recipe, data_dir=records, seed=0, options=PipelineOptions(shuffle_buffer=1000),
                         preprocess={"dct_scaling": dct_scaling})
    it = iter(ds.input_fn("train", training=True, batch_size=batch))
    for _ in range(3):  # warm-up: tracing, autotuning, buffers
        next(it)
    n, began, cpu = 0, time.perf_counter(), _cpu_seconds()
    while time.perf_counter() - began < seconds:
        images, _ = next(it)
        n += int(images.shape[0])
    return {"images": n, "seconds": time.perf_counter() - began, "cpu_seconds": _cpu_seconds() - cpu}


# -- per-augmentation cost (--augment) ----------------------------------------------------------------

AUGMENTATIONS = ("none", "imagenet", "ra", "ta_wide", "random_erase", "mixup", "cutmix")
_TF_OVERRIDES = {"none": {}, "imagenet": {"auto_augment": "imagenet"}, "ra": {"auto_augment": "ra"},
                 "ta_wide": {"auto_augment": "ta_wide"}, "random_erase": {"random_erase": 0.25},
                 "mixup": {"mixup_alpha": 0.2}, "cutmix": {"cutmix_alpha": 1.0}}


def run_tf_augment(folder: str, seconds: float, size: int, augmentation: str, batch: int = 64) -> dict:
    """Our image-folder pipeline with one augmentation, on one private tf.data thread."""
    import zoo
    from datasets.image_folder import ImageFolderDataset
    from datasets.pipeline import PipelineOptions

    recipe = zoo.get_recipe("resnet50").scaled(size)
    ds = ImageFolderDataset(recipe=recipe, data_dir=folder, seed=0, options=PipelineOptions(private_threads=1),
                            preprocess=_TF_OVERRIDES[augmentation])
    it = iter(ds.input_fn("train", training=True, batch_size=batch))
    for _ in range(3):
        next(it)
    n, began, cpu = 0, time.perf_counter(), _cpu_seconds()
    while time.perf_counter() - began < seconds:
        images, _ = next(it)
        n += int(images.shape[0])
    return {"images": n, "seconds": time.perf_counter() - began, "cpu_seconds": _cpu_seconds() - cpu}


def run_torchvision_augment(folder: str, seconds: float, size: int, augmentation: str, batch: int = 64) -> dict:
    """torchvision's transforms v2 preset of the references, on uint8 tensors, one torch thread."""
    import torch
    from PIL import Image

    from tools.torchvision_models import import_models

    import_models()  # torchvision beside the CPU build of torch
    from torchvision.transforms import v2

    torch.set_num_threads(1)
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(folder, "train")) for f in fs)
    bilinear = v2.InterpolationMode.BILINEAR
    steps = [v2.PILToTensor(), v2.RandomResizedCrop(size, interpolation=bilinear, antialias=True),
             v2.RandomHorizontalFlip()]
    steps += {"imagenet": [v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET, interpolation=bilinear)],
              "ra": [v2.RandAugment(interpolation=bilinear)],
              "ta_wide": [v2.TrivialAugmentWide(interpolation=bilinear)]}.get(augmentation, [])
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    if augmentation == "random_erase":
        steps.append(v2.RandomErasing(p=0.25))
    transform = v2.Compose(steps)
    mix = {"mixup": v2.MixUp(alpha=0.2, num_classes=1000), "cutmix": v2.CutMix(alpha=1.0, num_classes=1000)}
    mixer = mix.get(augmentation)

    def one_batch(start):
        images = []
        for i in range(batch):
            with open(files[(start + i) % len(files)], "rb") as f:
                images.append(transform(Image.open(f).convert("RGB")))
        images, labels = torch.stack(images), torch.zeros(batch, dtype=torch.long)
        if mixer is not None:
            images, labels = mixer(images, labels)
        return images

    one_batch(0)  # warm-up
    n, began, cpu = 0, time.perf_counter(), _cpu_seconds()
    while time.perf_counter() - began < seconds:
        n += int(one_batch(n).shape[0])
    return {"images": n, "seconds": time.perf_counter() - began, "cpu_seconds": _cpu_seconds() - cpu}


def augment_costs(folder: str, records: str, seconds: float, size: int, rounds: int, cpu) -> None:
    """Prints img/s per core of each augmentation, ours and torchvision's, and its cost per image."""
    rates = {}
    for r in range(rounds):
        for augmentation in AUGMENTATIONS:
            for impl in ("tf", "torchvision"):
                m = _measure(f"aug_{impl}:{augmentation}", folder, records, seconds, size, cpu)
                rate = m["images"] / m["cpu_seconds"]
                rates.setdefault((impl, augmentation), []).append(rate)
                print(json.dumps({"bench": "augment", "impl": impl, "augmentation": augmentation, "round": r,
                                  "size": size, "img_per_cpu_s": round(rate, 1)}), flush=True)
    summary = {}
    for impl in ("tf", "torchvision"):
        base = statistics.median(rates[(impl, "none")])
        for augmentation in AUGMENTATIONS:
            rate = statistics.median(rates[(impl, augmentation)])
            summary.setdefault(augmentation, {})[impl] = {
                "img_per_cpu_s": round(rate, 1), "cost_us_per_img": round(1e6 * (1 / rate - 1 / base), 1)}
    print(json.dumps({"bench": "augment", "summary": True, "size": size, "per_augmentation": summary}), flush=True)


def _cpu_seconds() -> float:
    """CPU time of this process, all threads (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(args) -> None:
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.kind == "pil":
        result = run_pil(args.folder, args.seconds, args.size)
    elif args.kind.startswith("aug_tf:"):
        result = run_tf_augment(args.folder, args.seconds, args.size, args.kind.split(":", 1)[1])
    elif args.kind.startswith("aug_torchvision:"):
        result = run_torchvision_augment(args.folder, args.seconds, args.size, args.kind.split(":", 1)[1])
    else:
        result = run_tf(args.records, args.seconds, args.size, dct_scaling=args.kind == "tf")
    print(json.dumps(result))


def _measure(kind: str, folder: str, records: str, seconds: float, size: int, cpu) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--folder", folder, "--records", records,
           "--seconds", str(seconds), "--size", str(size)] + (["--cpu", str(cpu)] if cpu is not None else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- end to end ---------------------------------------------------------------------------------------

def _train_fps(extra, size: int, batch: int, steps: int, log_dir: str) -> float:
    cmd = [sys.executable, "main.py", "--model=alexnet", "--backend=cpu", f"--image_size={size}",
           f"--batch_size={batch}", f"--max_train_steps={steps}", "--iterations_per_loop=10",
           "--save_summary_steps=10", "--nodo_checkpoint", "--lr=0.001", "--warmup_epochs=0",
           f"--log_dir={log_dir}"] + extra
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"main.py failed:\n{proc.stderr[-3000:]}")
    fps = [float(m) for m in re.findall(r"FPS:\s*([0-9.]+)", proc.stdout + proc.stderr)]
    if len(fps) < 2:
        raise RuntimeError(f"no FPS lines in main.py's output:\n{proc.stdout[-2000:]}")
    return statistics.median(fps[1:])  # the first interval includes tracing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="photos to generate")
    parser.add_argument("--seconds", type=float, default=12.0, help="measuring time per run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median reported); 0 skips")
    parser.add_argument("--size", type=int, default=224, help="output size")
    parser.add_argument("--cpu", type=int, default=0, help="core to pin each run to (-1: no pinning)")
    parser.add_argument("--end_to_end", action="store_true", help="also measure training from TFRecords")
    parser.add_argument("--augment", action="store_true", help="measure each augmentation, ours vs torchvision "
                        "v2, instead of the pipeline comparison")
    parser.add_argument("--train_steps", type=int, default=40)
    parser.add_argument("--train_batch", type=int, default=32)
    parser.add_argument("--work_dir", default=None, help="keep generated data here (default: a temp dir)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--records", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.kind = args.child
        _child(args)
        return 0

    from tools.build_tfrecords import build

    work = args.work_dir or tempfile.mkdtemp(prefix="bench_input_")
    folder, records = os.path.join(work, "photos"), os.path.join(work, "tfrecords")
    if not os.path.isdir(folder):
        make_photos(folder, args.images)
    build(folder, records, train_shards=8, num_workers=1, progress_stream=io.StringIO())
    cpu = None if args.cpu < 0 else args.cpu
    if args.augment:
        augment_costs(folder, records, args.seconds, args.size, max(args.rounds, 1), cpu)
        return 0
    kinds = ["pil", "tf", "tf_nodct"]
    rates = {k: [] for k in kinds}
    for r in range(args.rounds):
        for kind in kinds:
            m = _measure(kind, folder, records, args.seconds, args.size, cpu)
            # Images per CPU-second is the per-core rate, and unlike wall time it does not depend on
            # what else runs on the machine (a multi-threaded process wins a larger share of a busy
            # core, which would favour tf.data unfairly).
            rate = m["images"] / m["cpu_seconds"]
            rates[kind].append(rate)
            print(json.dumps({"bench": "input_pipeline", "kind": kind, "round": r, "size": args.size,
                              "pinned_cores": 1 if cpu is not None else os.cpu_count(),
                              "img_per_cpu_s": round(rate, 1), "img_per_wall_s": round(m["images"] / m["seconds"], 1),
                              "cpu_utilisation": round(m["cpu_seconds"] / m["seconds"], 2)}), flush=True)
    med = {k: statistics.median(v) for k, v in rates.items() if v}
    if med:  # --rounds=0 skips the comparison (e.g. with --end_to_end alone)
        print(json.dumps({"bench": "input_pipeline", "summary": True, "size": args.size, "images": args.images,
                          "median_img_per_cpu_s": {k: round(v, 1) for k, v in med.items()},
                          "tf_over_pil": round(med["tf"] / med["pil"], 2),
                          "tf_nodct_over_pil": round(med["tf_nodct"] / med["pil"], 2)}), flush=True)
    if args.end_to_end:
        logs = os.path.join(work, "logs")
        real = _train_fps([f"--data_dir={records}"], args.size, args.train_batch, args.train_steps, logs + "_real")
        synth = _train_fps(["--synthetic"], args.size, args.train_batch, args.train_steps, logs + "_synth")
        print(json.dumps({"bench": "end_to_end", "size": args.size, "batch": args.train_batch,
                          "tfrecords_fps": round(real, 1), "synthetic_fps": round(synth, 1),
                          "fraction": round(real / synth, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
