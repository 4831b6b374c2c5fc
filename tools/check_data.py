"""Lists every unreadable image and damaged TFRecord record of a dataset, in parallel.

    python tools/check_data.py --data_dir=/data/imagenet-tfrecords      # train-* and validation-* shards
    python tools/check_data.py --data_dir=/data/my_photos --split=train  # train/<class>/ image folders

Image folders: every image file of the splits (as the ``image_folder`` reader lists them) is read
and decoded whole with the readers' decoders. TFRecord shards: every record is read at its byte
offset with its checksums checked, parsed, and its image decoded; unlike training, the scan goes
on after a damaged record when the record's length field still frames the next one.

Prints one line per problem, ``<name><TAB><reason>`` (a file path, or ``<shard>@<byte offset>``),
then a summary on stderr. Exit code 0: everything reads; 1: something does not (or the data
cannot be listed); 2: bad arguments.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from typing import List, Optional, Sequence, Tuple

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # decoding needs no GPU (and no CUDA start-up noise)

from datasets import folders, tfrecord_format  # noqa: E402

__all__ = ["check", "main"]

SPLITS = ("train", "validation")
_FILES_PER_TASK = 256

Problem = Tuple[str, str]  # (name, reason)


# -- worker side ------------------------------------------------------------------------------------

def _check_files(paths: List[str]) -> Tuple[int, List[Problem]]:
    """Reads and decodes each file; returns (files checked, problems)."""
    from datasets.bad_data import image_error

    problems = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                encoded = f.read()
        except OSError as e:
            problems.append((path, f"cannot be read: {e.strerror or e}"))
            continue
        reason = "empty file" if not encoded else image_error(encoded)
        if reason:
            problems.append((path, reason))
    return len(paths), problems


def _record_problem(serialized: bytes) -> Optional[str]:
    """Why a record that reads is still unusable: not an Example, no image, an image that does not decode."""
    import tensorflow as tf

    from datasets.bad_data import image_error

    try:
        feature = tf.train.Example.FromString(serialized).features.feature
    except Exception as e:  # protobuf's DecodeError has no stable import path
        return f"not a tf.train.Example ({type(e).__name__})"
    encoded = feature["image/encoded"].bytes_list.value if "image/encoded" in feature else []
    if not encoded:
        return "no image/encoded feature"
    reason = image_error(encoded[0])
    if reason is None:
        return None
    names = feature["image/filename"].bytes_list.value if "image/filename" in feature else []
    return (f"{names[0].decode('utf-8', 'replace')}: " if names else "") + reason


def _check_shard(path: str) -> Tuple[int, List[Problem]]:
    """Reads every record of a shard; returns (records checked, problems)."""
    from datasets.bad_data import record_name
    from datasets.record_scan import scan_shard

    scan = scan_shard(path, check=_record_problem)
    damaged = list(scan.damaged)
    cut = None
    if scan.unframed is not None:
        offset, size = scan.unframed
        if damaged and damaged[-1][0] == offset:
            damaged.pop()  # one problem, not two: the record that fails to read is the one the file ends inside
        cut = (record_name(path, offset), f"the shard ends inside the record at byte {offset}: its last {size} bytes "
                                          "cannot be split into records (a cut file, or a damaged length field)")
    problems = [(record_name(path, offset), f"damaged record: bad checksum or length ({reason})")
                for offset, reason in damaged]
    if cut is not None:
        problems.append(cut)
    problems.extend((record_name(path, offset), reason) for offset, reason in scan.problems)
    return scan.records + len(scan.damaged), sorted(problems, key=lambda p: _offset(p[0]))


def _offset(name: str) -> int:
    return int(name.rpartition("@")[2])


def _run(task: Tuple[str, object]) -> Tuple[int, List[Problem]]:
    kind, arg = task
    return _check_shard(arg) if kind == "shard" else _check_files(arg)


# -- driver -----------------------------------------------------------------------------------------

def _tasks(data_dir: str, splits: Sequence[str]) -> Tuple[str, List[Tuple[str, object]]]:
    """("tfrecord" or "image_folder", tasks): one task per shard or per 256 image files."""
    shards = {s: sorted(f for f in _glob(os.path.join(data_dir, tfrecord_format.SPLIT_PREFIX[s] + "-*"))
                        if not f.endswith((".tmp", ".json"))) for s in splits}
    if any(shards.values()):
        return "tfrecord", [("shard", path) for s in splits for path in shards[s]]
    train = folders.scan_split(data_dir, "train")  # the class list both splits share
    tasks: List[Tuple[str, object]] = []
    for split in splits:
        if split != "train" and folders.find_split_dir(data_dir, split) is None:
            continue  # an image folder may have no validation split
        found = train if split == "train" else folders.scan_split(data_dir, split, train.classes)
        tasks += [("files", found.files[i:i + _FILES_PER_TASK]) for i in range(0, len(found), _FILES_PER_TASK)]
    return "image_folder", tasks


def _glob(pattern: str) -> List[str]:
    import tensorflow as tf

    return tf.io.gfile.glob(pattern)


def check(data_dir: str, splits: Sequence[str] = SPLITS, num_workers: Optional[int] = None,
          out=None) -> Tuple[int, List[Problem]]:
    """Checks every image or record of ``splits``; returns (items checked, problems in name order).

    Args:
        data_dir: TFRecord shards or an image folder.
        splits: the splits to check.
        num_workers: parallel processes; None for one per CPU core; 1 checks in this process.
        out: where each problem is printed as it is found (None: nowhere).
    """
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"--data_dir={data_dir} does not exist or is not a directory.")
    kind, tasks = _tasks(data_dir, splits)
    if not tasks:
        raise FileNotFoundError(f"{data_dir} holds no {' or '.join(splits)} shards or image folders.")
    workers = min(num_workers or os.cpu_count() or 1, len(tasks))
    checked, problems = 0, []
    if workers <= 1:
        results = map(_run, tasks)
        pool = None
    else:
        # spawn: TensorFlow is not fork-safe once initialised.
        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(_run, tasks)
    try:
        for count, found in results:
            checked += count
            problems.extend(found)
            if out is not None:
                for name, reason in found:
                    print(f"{name}\t{reason}", file=out, flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return checked, sorted(problems, key=lambda p: (p[0].rpartition("@")[0] or p[0], _sort_offset(p[0])))


def _sort_offset(name: str) -> int:
    tail = name.rpartition("@")[2]
    return int(tail) if tail.isdigit() else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True, help="TFRecord shards (train-*, validation-*) or an image "
                        "folder (train/<class>/, val/<class>/).")
    parser.add_argument("--split", default="train,validation", help="Comma-separated splits to check "
                        "(default: train,validation).")
    parser.add_argument("--num_workers", type=int, default=0, help="Parallel processes (0: one per CPU core).")
    args = parser.parse_args(argv)
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        print(f"error: --split={args.split}: use train, validation or both.", file=sys.stderr)
        return 2
    if args.num_workers < 0:
        print(f"error: --num_workers={args.num_workers} must be 0 (one per core) or more.", file=sys.stderr)
        return 2
    try:
        checked, problems = check(args.data_dir, splits, args.num_workers or None, out=sys.stdout)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if problems:
        print(f"{len(problems)} of {checked} image(s)/record(s) in {args.data_dir} are unreadable (listed above). "
              "Fix or delete them (tools/build_tfrecords.py --skip_bad rebuilds shards without them); training "
              "skips up to --max_bad_images of them.", file=sys.stderr)
        return 1
    print(f"all {checked} image(s)/record(s) in {args.data_dir} read and decode.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
