"""What resuming the training input stream costs: the stream position (what the project does) against
tf.data's iterator checkpointing (what it could do instead), on a real image folder and its TFRecords.

    python bench/data_resume.py --images=2000 --work_dir=/tmp/data_resume

Writes ``--images`` JPEG photo crops (500x375, quality 90: ImageNet's typical size) in 10 class folders,
converts them with tools/build_tfrecords.py, then for each dataset builds the training pipeline a rank
builds (batch 32, uint8, --deterministic, --seed) and measures:

* position: seconds from building a pipeline at step N (mid-epoch) to its first batch, against step 0;
  for TFRecords also the record count from the shards' headers and the rate at which the records before
  the position are read again (skipped, not decoded);
* iterator checkpoint: seconds to write ``tf.train.Checkpoint(iterator=...)`` after N steps, its size on
  disk, and seconds to restore it into a fresh pipeline and get the next batch.

Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from datasets.base import training_input  # noqa: E402
from datasets.image_folder import ImageFolderDataset  # noqa: E402
from datasets.imagenet import ImageNetDataset, count_records  # noqa: E402
from datasets.pipeline import PipelineOptions  # noqa: E402

BATCH = 32


def _photo(index: int, size=(500, 375)) -> np.ndarray:
    """A crop of one of scikit-learn's two sample photographs, resized to ``size``."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(index)
    source = load_sample_images().images[index % 2]
    h, w = source.shape[:2]
    ch, cw = int(rng.integers(h // 3, h)), int(rng.integers(w // 3, w))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return np.asarray(Image.fromarray(source[y:y + ch, x:x + cw]).resize(size, Image.BILINEAR))


def _write_jpeg(path: str, pixels: np.ndarray) -> None:
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path, "JPEG", quality=90)


def _make_data(work_dir: str, images: int) -> tuple:
    folder, records = os.path.join(work_dir, "folder"), os.path.join(work_dir, "records")
    if not os.path.isdir(folder):
        for i in range(images):
            _write_jpeg(os.path.join(folder + ".tmp", "train", f"class_{i % 10}", f"img_{i:06d}.jpg"), _photo(i))
        for c in range(10):
            _write_jpeg(os.path.join(folder + ".tmp", "val", f"class_{c}", "img.jpg"), _photo(c))
        os.rename(folder + ".tmp", folder)
    if not os.path.isdir(records):
        from tools.build_tfrecords import build

        build(folder, records, train_shards=16, validation_shards=1, num_workers=2, progress_stream=io.StringIO())
    return folder, records


def _dataset(kind: str, folder: str, records: str):
    cls, data_dir = (ImageFolderDataset, folder) if kind == "image_folder" else (ImageNetDataset, records)
    return cls(recipe=zoo.get_recipe("alexnet"), data_dir=data_dir, seed=1,
               options=PipelineOptions(shuffle_buffer=1024, deterministic=True))


def _pipeline(kind, folder, records, step):
    return training_input(_dataset(kind, folder, records), batch_size=BATCH, input_context=None, start_step=step,
                          global_batch=BATCH, normalize=False)


def _first_batch_seconds(kind, folder, records, step) -> float:
    began = time.perf_counter()
    next(iter(_pipeline(kind, folder, records, step)))
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--work_dir", default="/tmp/data_resume")
    args = parser.parse_args()
    folder, records = _make_data(args.work_dir, args.images)
    data_mb = sum(os.path.getsize(os.path.join(records, f)) for f in os.listdir(records) if f.startswith("train")) / 1e6
    print(f"{args.images} images, TFRecords {data_mb:.0f} MB")
    mid = (args.images // BATCH) - 2  # near the end of the first epoch: the records before it are read again
    for kind in ("image_folder", "imagenet"):
        _first_batch_seconds(kind, folder, records, 0)  # warm the page cache and TensorFlow
        fresh = min(_first_batch_seconds(kind, folder, records, 0) for _ in range(2))
        resumed = min(_first_batch_seconds(kind, folder, records, mid) for _ in range(2))
        print(f"{kind}: first batch at step 0 {fresh:.2f} s, at step {mid} ({mid * BATCH} records into the epoch) "
              f"{resumed:.2f} s")
        if kind == "imagenet":
            shards = sorted(os.path.join(records, f) for f in os.listdir(records) if f.startswith("train-"))
            began = time.perf_counter()
            plain = sum(1 for _ in tf.data.TFRecordDataset(shards, num_parallel_reads=16))
            print(f"  a plain TFRecordDataset reads the {plain} records at {plain / (time.perf_counter() - began):.0f} "
                  "records/s")
            began = time.perf_counter()
            total = sum(count_records(p, os.path.getsize(p)) for p in shards)
            counted = time.perf_counter() - began
            skipped = mid * BATCH
            dataset = _dataset(kind, folder, records)
            first = []
            for start in (0, skipped, 0, skipped):
                began = time.perf_counter()
                next(iter(dataset.records("train", training=True, input_context=None, seed=1, start=start)))
                first.append(time.perf_counter() - began)
            extra = max(min(first[1], first[3]) - min(first[0], first[2]), 1e-9)
            print(f"  record headers: {total} records of {len(shards)} shards counted in {counted:.3f} s; the first "
                  f"record at position {skipped} comes {extra:.2f} s after the first at position 0: the records "
                  f"before it are read again at {skipped / extra:.0f} records/s "
                  f"({data_mb * skipped / total / extra:.0f} MB/s)")
        # tf.data iterator checkpointing of the same pipeline after `mid` steps.
        ds = _pipeline(kind, folder, records, 0)
        options = tf.data.Options()
        options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.WARN
        ds = ds.with_options(options)
        iterator = iter(ds)
        for _ in range(mid):
            next(iterator)
        path = os.path.join(args.work_dir, f"iterator_{kind}")
        shutil.rmtree(path, ignore_errors=True)
        try:
            began = time.perf_counter()
            saved = tf.train.Checkpoint(iterator=iterator).write(os.path.join(path, "ckpt"))
            write_s = time.perf_counter() - began
            size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) / 1e6
            fresh_iterator = iter(_pipeline(kind, folder, records, 0).with_options(options))
            began = time.perf_counter()
            tf.train.Checkpoint(iterator=fresh_iterator).read(saved).expect_partial()
            next(fresh_iterator)
            read_s = time.perf_counter() - began
            print(f"  iterator checkpoint after {mid} steps: written in {write_s:.2f} s, {size:.1f} MB; restored and "
                  f"the next batch in {read_s:.2f} s")
        except (tf.errors.OpError, ValueError, TypeError) as e:
            print(f"  iterator checkpoint: fails ({type(e).__name__}: {str(e).splitlines()[0][:200]})")


if __name__ == "__main__":
    main()
