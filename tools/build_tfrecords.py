"""Converts an image folder (``train/<class>/*``, ``val/<class>/*``) into ImageNet-layout TFRecords.

    python tools/build_tfrecords.py --input_dir=/data/raw --output_dir=/data/tfrecords \\
        --train_shards=1024 --validation_shards=128

Writes ``train-00000-of-01024`` ... and ``validation-00000-of-00128`` ... with the feature keys of
``datasets/tfrecord_format.py`` (labels 1..N by default, as ImageNet's), a ``label_map.txt`` and a
``dataset_info.json`` (counts, classes, label offset). Every image is decoded once with the same
TensorFlow decoders the reader uses; files that do not decode are listed in
``<output_dir>/bad_files.txt`` and the build stops (``--skip_bad`` leaves them out instead, with
their count in the summary). Shards are written to a temporary folder and moved into place only
when all of them are complete; a re-run replaces a split's shards (never adds to them), and does
nothing at all when the input has not changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from atomic import TEMP_MARKER, write_text  # noqa: E402
from datasets import folders, tfrecord_format  # noqa: E402

__all__ = ["BuildError", "auto_shards", "build", "read_bbox_csv"]

SPLITS = ("train", "validation")
_EXAMPLES_PER_SHARD = 1250  # ImageNet's train shards hold about 1,251 images
_SHARD_SEED = 12345          # fixed, so that a rebuild of unchanged input writes the same shards
BAD_FILES = "bad_files.txt"
LABEL_MAP = "label_map.txt"

Task = Tuple[str, int, int, List[Tuple[str, int]], str, int, Dict[str, List[List[float]]], List[str]]


class BuildError(RuntimeError):
    """The input cannot be converted as asked; the message says why and what to do."""


def auto_shards(num_examples: int) -> int:
    """About 1,250 images per shard (ImageNet's size), at least 1, at most 1024 and the image count."""
    return max(1, min(1024, num_examples, int(round(num_examples / _EXAMPLES_PER_SHARD))))


def read_bbox_csv(path: str) -> Dict[str, List[List[float]]]:
    """Reads ``filename,xmin,ymin,xmax,ymax`` lines (0..1 coordinates) into basename -> boxes.

    Boxes are returned as (ymin, xmin, ymax, xmax), the order the crop sampler takes.
    """
    boxes: Dict[str, List[List[float]]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(",")
            try:
                xmin, ymin, xmax, ymax = (float(p) for p in parts[1:5])
            except ValueError:
                raise BuildError(f"{path}:{number}: expected 'filename,xmin,ymin,xmax,ymax', got {line!r}") from None
            if len(parts) != 5 or not (0 <= xmin < xmax <= 1 and 0 <= ymin < ymax <= 1):
                raise BuildError(f"{path}:{number}: expected 'filename,xmin,ymin,xmax,ymax' with "
                                 f"0 <= min < max <= 1, got {line!r}")
            boxes.setdefault(os.path.basename(parts[0]), []).append([ymin, xmin, ymax, xmax])
    return boxes


# -- worker side ------------------------------------------------------------------------------------

def _write_shard(task: Task) -> Tuple[str, int, int, List[Tuple[str, str]]]:
    """Writes one shard; returns (split, shard index, images written, [(bad file, reason)])."""
    import tensorflow as tf

    split, index, count, items, tmp_dir, label_offset, boxes, classes = task
    path = os.path.join(tmp_dir, tfrecord_format.shard_name(split, index, count))
    bad: List[Tuple[str, str]] = []
    written = 0
    with tf.io.TFRecordWriter(path) as writer:
        for file_path, label in items:
            try:
                with open(file_path, "rb") as f:
                    encoded = f.read()
                image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
                height, width = int(image.shape[0]), int(image.shape[1])
                if height == 0 or width == 0:
                    raise ValueError("empty image")
            except (tf.errors.OpError, OSError, ValueError) as e:
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                bad.append((file_path, reason[:200]))
                continue
            image_format = "JPEG" if bool(tf.io.is_jpeg(encoded)) else _format_of(encoded)
            example = tfrecord_format.make_example(
                encoded=encoded, label=label + label_offset, text=classes[label],
                filename=os.path.basename(file_path), image_format=image_format, height=height, width=width,
                bboxes=boxes.get(os.path.basename(file_path)),
            )
            writer.write(example.SerializeToString())
            written += 1
    return split, index, written, bad


def _format_of(encoded: bytes) -> str:
    if encoded.startswith(b"\x89PNG"):
        return "PNG"
    if encoded[:3] == b"GIF":
        return "GIF"
    if encoded[:2] == b"BM":
        return "BMP"
    return "UNKNOWN"


# -- driver -----------------------------------------------------------------------------------------

def _fingerprint(splits: Dict[str, folders.FolderSplit], shards: Dict[str, int], label_offset: int,
                 skip_bad: bool, boxes: Dict[str, List[List[float]]]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([shards, label_offset, skip_bad, sorted(boxes.items())], sort_keys=True).encode())
    for split in SPLITS:
        if split not in splits:
            continue
        found = splits[split]
        digest.update(json.dumps([split, found.classes]).encode())
        for path, label in zip(found.files, found.labels):
            st = os.stat(path)
            digest.update(f"{os.path.relpath(path, found.directory)}\0{st.st_size}\0{st.st_mtime_ns}\0{label}\n"
                          .encode())
    return digest.hexdigest()


class _Progress:
    """A one-line progress bar on a terminal; a line every 10% otherwise."""

    def __init__(self, total_images: int, total_shards: int, stream=None) -> None:
        self.total, self.shards = total_images, total_shards
        self.done_images = self.done_shards = 0
        self.start = time.perf_counter()
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_decile = -1

    def update(self, images: int) -> None:
        self.done_images += images
        self.done_shards += 1
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.done_images / elapsed
        eta = (self.total - self.done_images) / rate if rate > 0 else 0.0
        frac = self.done_images / max(self.total, 1)
        bar = "#" * int(30 * frac)
        line = (f"[{bar:<30s}] {self.done_shards}/{self.shards} shards, {self.done_images}/{self.total} images, "
                f"{rate:.1f} img/s, ETA {eta:.0f} s")
        if self.tty:
            end = "\n" if self.done_shards == self.shards else ""
            print("\r" + line, end=end, file=self.stream, flush=True)
        elif int(frac * 10) > self._last_decile or self.done_shards == self.shards:
            self._last_decile = int(frac * 10)
            print(line, file=self.stream, flush=True)


def _existing_shards(output_dir: str, split: str) -> List[str]:
    prefix = tfrecord_format.SPLIT_PREFIX[split] + "-"
    names = os.listdir(output_dir) if os.path.isdir(output_dir) else []
    return sorted(os.path.join(output_dir, n) for n in names
                  if n.startswith(prefix) and "-of-" in n and not n.endswith(".tmp"))


def build(
    input_dir: str,
    output_dir: str,
    *,
    train_shards: Optional[int] = None,
    validation_shards: Optional[int] = None,
    num_workers: Optional[int] = None,
    label_offset: int = 1,
    skip_bad: bool = False,
    bbox_csv: Optional[str] = None,
    progress_stream=None,
) -> Dict[str, object]:
    """Builds TFRecord shards from an image folder; see the module docstring.

    Args:
        input_dir: folder with ``train/<class>/`` and optionally ``val/<class>/``.
        output_dir: where shards, ``label_map.txt`` and ``dataset_info.json`` go.
        train_shards, validation_shards: shard counts; None for about 1,250 images per shard.
        num_workers: parallel processes; None for one per CPU core (at most one per shard).
        label_offset: added to the 0-based class index (1: ImageNet's convention).
        skip_bad: leave out files that do not decode (counted) instead of stopping.
        bbox_csv: optional ``filename,xmin,ymin,xmax,ymax`` file of bounding boxes.
        progress_stream: where the progress bar goes (default stderr).

    Returns:
        The summary written to ``dataset_info.json`` plus ``"up_to_date": bool``.

    Raises:
        FileNotFoundError, ValueError: bad input layout (see ``datasets.folders.scan_split``).
        BuildError: files that do not decode (without ``skip_bad``), or bad arguments.
    """
    splits: Dict[str, folders.FolderSplit] = {"train": folders.scan_split(input_dir, "train")}
    if folders.find_split_dir(input_dir, "validation") is not None:
        splits["validation"] = folders.scan_split(input_dir, "validation", splits["train"].classes)
    classes = splits["train"].classes
    requested = {"train": train_shards, "validation": validation_shards}
    shards: Dict[str, int] = {}
    for split, found in splits.items():
        count = requested[split] or auto_shards(len(found))
        if count < 1:
            raise BuildError(f"--{split}_shards must be positive, got {count}")
        shards[split] = min(count, len(found))
    for found in splits.values():
        if found.ignored:
            print(f"note: {len(found.ignored)} file(s) in {found.directory} are not JPEG or PNG and are not "
                  f"converted, e.g. {found.ignored[0]}", file=progress_stream or sys.stderr)
    boxes = read_bbox_csv(bbox_csv) if bbox_csv else {}
    fingerprint = _fingerprint(splits, shards, label_offset, skip_bad, boxes)

    info_path = os.path.join(output_dir, tfrecord_format.INFO_FILE)
    old = tfrecord_format.read_info(output_dir) if os.path.isdir(output_dir) else None
    if old and old.get("fingerprint") == fingerprint and all(
            len(_existing_shards(output_dir, s)) == shards[s] for s in splits):
        return dict(old, up_to_date=True)

    os.makedirs(output_dir, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(dir=output_dir, prefix=f".build{TEMP_MARKER}")
    try:
        tasks: List[Task] = []
        rng = random.Random(_SHARD_SEED)
        for split, found in splits.items():
            items = list(zip(found.files, found.labels))
            rng.shuffle(items)  # shards mix classes, as a reader's interleave expects
            count = shards[split]
            per = math.ceil(len(items) / count)
            for i in range(count):
                tasks.append((split, i, count, items[i * per:(i + 1) * per], tmp_dir, label_offset, boxes, classes))
        total = sum(len(f) for f in splits.values())
        progress = _Progress(total, len(tasks), progress_stream)
        results = []
        workers = min(num_workers or os.cpu_count() or 1, len(tasks))
        if workers <= 1:
            for task in tasks:
                results.append(_write_shard(task))
                progress.update(len(task[3]))
        else:
            # spawn: TensorFlow is not fork-safe once initialised.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for result in pool.imap_unordered(_write_shard, tasks):
                    results.append(result)
                    progress.update(result[2] + len(result[3]))

        bad = sorted(b for r in results for b in r[3])
        bad_path = os.path.join(output_dir, BAD_FILES)
        if bad:
            write_text(bad_path, "".join(f"{p}\t{reason}\n" for p, reason in bad))
            if not skip_bad:
                raise BuildError(
                    f"{len(bad)} of {total} image(s) do not decode (first: {bad[0][0]}: {bad[0][1]}); all are "
                    f"listed in {bad_path}. Nothing was written: fix or delete them, or pass --skip_bad to "
                    "leave them out."
                )
        elif os.path.exists(bad_path):
            os.remove(bad_path)

        written = {s: sum(r[2] for r in results if r[0] == s) for s in splits}
        empty = [s for s in splits if written[s] == 0]
        if empty:
            raise BuildError(f"no image of the {', '.join(empty)} split decodes; nothing was written.")
        info = {
            "format": "imagenet-tfrecord",
            "num_classes": len(classes),
            "label_offset": label_offset,
            "classes": classes,
            "splits": {s: {"examples": written[s], "shards": shards[s], "skipped_bad_files":
                           sum(1 for b in bad if b[0].startswith(splits[s].directory + os.sep))} for s in splits},
            "source": os.path.abspath(input_dir),
            "fingerprint": fingerprint,
        }
        # Replace, never add: the old info goes first (a reader without it counts records),
        # then the split's old shards, then the new ones move in, then the new info.
        if os.path.exists(info_path):
            os.remove(info_path)
        for split in splits:
            for path in _existing_shards(output_dir, split):
                os.remove(path)
            for name in sorted(os.listdir(tmp_dir)):
                if name.startswith(tfrecord_format.SPLIT_PREFIX[split] + "-"):
                    os.replace(os.path.join(tmp_dir, name), os.path.join(output_dir, name))
        folders.write_label_map(os.path.join(output_dir, LABEL_MAP), classes, label_offset)
        write_text(info_path, json.dumps(info, indent=1) + "\n")
        return dict(info, up_to_date=False)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    f = _parser().parse_args(argv)
    try:
        summary = build(f.input_dir, f.output_dir, train_shards=f.train_shards,
                        validation_shards=f.validation_shards, num_workers=f.num_workers or None,
                        label_offset=f.label_offset_out, skip_bad=f.skip_bad, bbox_csv=f.bbox_csv)
    except (BuildError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if summary.pop("up_to_date"):
        print(f"{f.output_dir} is up to date with {f.input_dir}; nothing written.")
    skipped = sum(s["skipped_bad_files"] for s in summary["splits"].values())
    for split, s in summary["splits"].items():
        print(f"{split}: {s['examples']} images in {s['shards']} shards"
              + (f", {s['skipped_bad_files']} bad file(s) left out" if s["skipped_bad_files"] else ""))
    if skipped:
        print(f"{skipped} file(s) did not decode and were left out; see {os.path.join(f.output_dir, BAD_FILES)}")
    print(f"{summary['num_classes']} classes, labels {summary['label_offset']}.."
          f"{summary['label_offset'] + summary['num_classes'] - 1}; label map in "
          f"{os.path.join(f.output_dir, LABEL_MAP)}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Image folders (train/<class>/, val/<class>/) -> ImageNet TFRecords.")
    p.add_argument("--input_dir", required=True, help="Image folder with train/<class>/ and val/<class>/.")
    p.add_argument("--output_dir", required=True, help="Where the TFRecord shards go.")
    p.add_argument("--train_shards", type=int, default=None,
                   help="Training shards (default: about 1,250 images each; ImageNet: 1024).")
    p.add_argument("--validation_shards", type=int, default=None,
                   help="Validation shards (default: about 1,250 images each; ImageNet: 128).")
    p.add_argument("--num_workers", type=int, default=0, help="Parallel processes (0: one per CPU core).")
    p.add_argument("--label_offset_out", type=int, default=1, help="Stored label = class index + this (ImageNet: 1).")
    p.add_argument("--skip_bad", action="store_true",
                   help="Leave out files that do not decode (listed and counted) instead of stopping.")
    p.add_argument("--bbox_csv", default=None,
                   help="Optional bounding boxes: lines 'filename,xmin,ymin,xmax,ymax' (0..1).")
    return p


if __name__ == "__main__":
    sys.exit(main())
