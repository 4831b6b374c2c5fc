"""tools/build_tfrecords.py: folder -> shards with the same bytes, labels and pixels; bad files; re-runs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from datasets_testutil import make_folder

from datasets import folders, tfrecord_format
from tools.build_tfrecords import BuildError, auto_shards, build

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_records(out_dir, split):
    files = sorted(os.path.join(out_dir, f) for f in os.listdir(out_dir) if f.startswith(split + "-"))
    return [tfrecord_format.parse_record(r) for r in tf.data.TFRecordDataset(files)], files


def source_files(root, split_dir):
    result = {}
    for label, name in enumerate(sorted(os.listdir(os.path.join(root, split_dir)))):
        for f in os.listdir(os.path.join(root, split_dir, name)):
            result[f] = (label, os.path.join(root, split_dir, name, f))
    return result


def test_folder_to_tfrecords_keeps_bytes_labels_and_pixels(tmp_path):
    root = make_folder(str(tmp_path / "in"))
    out = str(tmp_path / "out")
    summary = build(root, out, train_shards=2, num_workers=1)
    assert summary["num_classes"] == 3 and summary["label_offset"] == 1 and not summary["up_to_date"]
    assert summary["splits"]["train"] == {"examples": 9, "shards": 2, "skipped_bad_files": 0}
    assert summary["splits"]["validation"]["examples"] == 6
    assert sorted(f for f in os.listdir(out) if not f.startswith(".")) == [
        "dataset_info.json", "label_map.txt", "train-00000-of-00002", "train-00001-of-00002",
        "validation-00000-of-00001"]
    assert folders.read_label_map(os.path.join(out, "label_map.txt")) == {1: "cat", 2: "dog", 3: "fox"}
    for split, split_dir in (("train", "train"), ("validation", "val")):
        sources = source_files(root, split_dir)
        records, _ = read_records(out, split)
        assert len(records) == len(sources)
        # Match each record to its source file by bytes: labels 1..N, identical decoded pixels.
        by_bytes = {open(path, "rb").read(): (label, path) for label, path in sources.values()}
        for record in records:
            label, path = by_bytes[record["encoded"].numpy()]
            assert int(record["label"]) == label + 1
            assert record["text"].numpy().decode() == ["cat", "dog", "fox"][label]
            decoded = tf.io.decode_image(record["encoded"], channels=3).numpy()
            np.testing.assert_array_equal(decoded, tf.io.decode_image(tf.io.read_file(path), channels=3).numpy())


def test_bad_files_stop_the_build_and_are_listed(tmp_path):
    root = make_folder(str(tmp_path / "in"))
    with open(os.path.join(root, "train", "dog", "broken.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 this is not a JPEG")
    with open(os.path.join(root, "val", "cat", "empty.png"), "wb"):
        pass
    out = str(tmp_path / "out")
    with pytest.raises(BuildError, match=r"2 of 17 image\(s\) do not decode.*Nothing was written.*--skip_bad"):
        build(root, out, num_workers=1)
    assert sorted(os.listdir(out)) == ["bad_files.txt"]
    listed = open(os.path.join(out, "bad_files.txt")).read()
    assert "broken.jpg" in listed and "empty.png" in listed

    summary = build(root, out, num_workers=1, skip_bad=True)
    assert summary["splits"]["train"] == {"examples": 9, "shards": 1, "skipped_bad_files": 1}
    assert summary["splits"]["validation"]["skipped_bad_files"] == 1
    assert len(read_records(out, "train")[0]) == 9


def test_rerun_does_not_duplicate_and_skips_unchanged_input(tmp_path):
    root = make_folder(str(tmp_path / "in"))
    out = str(tmp_path / "out")
    build(root, out, train_shards=3, num_workers=1)
    stamps = {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out)}
    again = build(root, out, train_shards=3, num_workers=1)
    assert again["up_to_date"]
    assert {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out)} == stamps

    summary = build(root, out, train_shards=2, num_workers=1)  # other shard count: replaces all
    records, files = read_records(out, "train")
    assert [os.path.basename(f) for f in files] == ["train-00000-of-00002", "train-00001-of-00002"]
    assert len(records) == 9 and summary["splits"]["train"]["examples"] == 9
    assert not [f for f in os.listdir(out) if f.startswith(".build-")]


def test_bounding_boxes_from_csv(tmp_path):
    root = make_folder(str(tmp_path / "in"), splits=("train",))
    name = sorted(os.listdir(os.path.join(root, "train", "cat")))[0]
    csv = tmp_path / "boxes.csv"
    csv.write_text(f"{name},0.1,0.2,0.5,0.6\n{name},0.0,0.0,1.0,1.0\n")
    out = str(tmp_path / "out")
    build(root, out, num_workers=1, bbox_csv=str(csv))
    records, _ = read_records(out, "train")
    boxes = {r["encoded"].numpy(): r["bboxes"].numpy() for r in records}
    with open(os.path.join(root, "train", "cat", name), "rb") as f:
        mine = boxes[f.read()]
    np.testing.assert_allclose(mine, [[0.2, 0.1, 0.6, 0.5], [0.0, 0.0, 1.0, 1.0]])  # ymin, xmin, ymax, xmax
    assert sum(len(b) for b in boxes.values()) == 2
    csv.write_text(f"{name},0.5,0.2,0.1,0.6\n")
    with pytest.raises(BuildError, match="boxes.csv:1"):
        build(root, out, num_workers=1, bbox_csv=str(csv))


def test_auto_shards():
    assert auto_shards(1) == 1 and auto_shards(9) == 1
    assert auto_shards(1_281_167) == 1024 and auto_shards(50_000) == 40


@pytest.mark.slow  # minutes on a 2-core CI machine; `make test-slow` runs it
def test_command_line_with_parallel_workers(tmp_path):
    root = make_folder(str(tmp_path / "in"), classes={"a": 3, "b": 3}, val={"a": 1, "b": 1})
    out = str(tmp_path / "out")
    cmd = [sys.executable, "tools/build_tfrecords.py", f"--input_dir={root}", f"--output_dir={out}",
           "--train_shards=2", "--num_workers=2"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "train: 6 images in 2 shards" in proc.stdout and "labels 1..2" in proc.stdout
    assert "3/3 shards, 8/8 images" in proc.stderr  # progress reached the end (2 train + 1 val shards)
    info = json.load(open(os.path.join(out, "dataset_info.json")))
    assert info["splits"]["validation"]["examples"] == 2
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "up to date" in again.stdout
    missing = subprocess.run([sys.executable, "tools/build_tfrecords.py", f"--input_dir={tmp_path}/nope",
                              f"--output_dir={out}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
