"""Unreadable images and damaged TFRecord records: skipped, counted exactly, named; --strict and
--max_bad_images stop with one line; evaluation scores the rest exactly; tools/check_data.py lists them.

The data are real files: photo crops written as JPEG/PNG, a JPEG cut off in its image data, a
text file named .jpg, TFRecord shards written by tools/build_tfrecords.py with a byte flipped
inside the middle record of a shard.
"""

import io
import json
import os
import shutil

import pytest
import tensorflow as tf
from conftest import run_main
from datasets_testutil import make_folder, recipe

from backends.cpu import CPUBackend
from datasets import bad_data
from datasets.bad_data import BadDataError, BadDataLog, BadDataPolicy
from datasets.image_folder import ImageFolderDataset
from datasets.imagenet import ImageNetDataset
from datasets.record_scan import scan_shard
from evaluation.evaluator import EvalReport, EvalResult, Evaluator
from keras_compat import keras
from tools import check_data
from tools.build_tfrecords import build
from training.log import TrainLog

SIZE = 64
# Training crops are the whole image, so that a JPEG cut off anywhere fails in every epoch.
WHOLE = {"area_range": (1.0, 1.0)}


def _truncated(jpeg_path: str, dest: str) -> str:
    data = open(jpeg_path, "rb").read()
    open(dest, "wb").write(data[: len(data) * 2 // 3])  # header intact, image data cut off
    return dest


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(clean, bad, names of the bad files): the bad folder is the clean one plus four bad files."""
    base = tmp_path_factory.mktemp("bad_data")
    clean = make_folder(str(base / "clean"), classes={"cat": 4, "dog": 3, "fox": 3},
                        val={"cat": 3, "dog": 3, "fox": 3})
    bad = str(base / "bad")
    shutil.copytree(clean, bad)
    jpeg = os.path.join(clean, "train", "cat", "img_00001.jpg")
    names = {
        "train": {_truncated(jpeg, os.path.join(bad, "train", "dog", "cut.jpg")),
                  os.path.join(bad, "train", "fox", "notes.jpg")},
        # The last validation file in reading order: a failure after the last good image counts too.
        "validation": {_truncated(jpeg, os.path.join(bad, "val", "cat", "cut.jpg")),
                       os.path.join(bad, "val", "fox", "zz_readme.jpg")},
    }
    for path in (os.path.join(bad, "train", "fox", "notes.jpg"), os.path.join(bad, "val", "fox", "zz_readme.jpg")):
        open(path, "w").write("not an image\n")
    return clean, bad, names


def _flip_byte_in_record(shard: str, index: int) -> int:
    """Flips a byte inside the data of record ``index`` (flipping it again undoes it); returns its offset."""
    data = bytearray(open(shard, "rb").read())
    offset = 0
    for _ in range(index):  # walk the length fields, which stay intact
        offset += 16 + int.from_bytes(data[offset:offset + 8], "little")
    data[offset + 12 + 40] ^= 0xFF  # past the 12-byte header, inside the serialized Example
    open(shard, "wb").write(bytes(data))
    return offset


@pytest.fixture(scope="module")
def shards(tmp_path_factory, folders):
    """(clean shards, damaged shards, {split: (shard, damaged record's offset, records after it, records)})."""
    clean_folder = folders[0]
    base = tmp_path_factory.mktemp("bad_shards")
    clean = str(base / "clean")
    build(clean_folder, clean, train_shards=2, validation_shards=2, num_workers=1, progress_stream=io.StringIO())
    damaged = str(base / "damaged")
    shutil.copytree(clean, damaged)
    where = {}
    for split, name in (("train", "train-00000-of-00002"), ("validation", "validation-00000-of-00002")):
        shard = os.path.join(damaged, name)
        records = scan_shard(shard).records
        offset = _flip_byte_in_record(shard, records // 2)
        where[split] = (shard, offset, records - records // 2 - 1, records)
    return clean, damaged, where


def _count(ds) -> int:
    return sum(int(tf.shape(labels)[0]) for _, labels in ds)


# -- image folders -----------------------------------------------------------------------------------

def test_training_skips_counts_and_names_unreadable_images(folders):
    _, bad, names = folders
    ds = ImageFolderDataset(recipe=recipe(SIZE), data_dir=bad, seed=1, preprocess=WHOLE)
    seen = _count(ds.input_fn("train", training=True, batch_size=4).take(8))  # 32 images: 3 epochs of 10
    assert seen == 32
    report = ds.bad_data("train").report()
    assert report.count == 2  # each file once, although every epoch met it
    assert {item.name for item in report.items} == names["train"]
    reasons = {os.path.basename(item.name): item.reason for item in report.items}
    assert "JPEG" in reasons["cut.jpg"] and "Unknown image file format" in reasons["notes.jpg"]
    lines = []
    BadDataLog(ds, "train", lines.append).update(step=8)
    assert len(lines) == 1 and "Skipped 2 unreadable train image(s) by step 8" in lines[0]
    assert all(name in lines[0] for name in names["train"])


def test_strict_and_max_bad_images_stop_with_one_line_naming_the_files(folders):
    _, bad, names = folders
    for policy, expected in ((BadDataPolicy(strict=True), "--strict stops at the first"),
                             (BadDataPolicy(max_bad=1), "2 unreadable train image(s), more than --max_bad_images=1")):
        ds = ImageFolderDataset(recipe=recipe(SIZE), data_dir=bad, seed=1, preprocess=WHOLE, bad_data_policy=policy)
        with pytest.raises(tf.errors.OpError):
            _count(ds.input_fn("train", training=True, batch_size=4).take(20))
        tracker = ds.bad_data("train")
        assert tracker.over_limit()
        message = str(tracker.error())
        assert isinstance(tracker.error(), BadDataError) and "\n" not in message and expected in message
        named = [name for name in names["train"] if name in message]
        assert len(named) == (1 if policy.strict else 2)
        assert f"tools/check_data.py --data_dir={bad}" in message


def test_evaluation_counts_the_rest_exactly(folders, tmp_path):
    clean, bad, names = folders
    backend = CPUBackend()
    backend.setup()
    keras.utils.set_random_seed(0)
    with backend.scope():
        model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.AveragePooling2D(8),
                                  keras.layers.Flatten(), keras.layers.Dense(3)])
    evaluator = Evaluator(model, backend, num_classes=3)

    def totals(data_dir):
        ds = ImageFolderDataset(recipe=recipe(SIZE), data_dir=data_dir, seed=1)
        return ds, evaluator.run(lambda ctx: ds.input_fn("validation", training=False, batch_size=4, input_context=ctx))

    ds, with_bad = totals(bad)
    _, without = totals(clean)  # the clean copy is the bad folder minus its bad files
    assert (with_bad.examples, with_bad.top1_correct, with_bad.top5_correct) == (
        without.examples, without.top1_correct, without.top5_correct) == (9, without.top1_correct, 9)
    assert with_bad.loss_sum == pytest.approx(without.loss_sum, rel=1e-6)

    log = TrainLog(str(tmp_path), "eval.log", stream=io.StringIO())
    report = EvalReport(log, ds.num_examples("validation"), bad_data.tracker_of(ds, "validation"))
    report.add(EvalResult(step=1, epoch=1.0, totals=with_bad, timestamp=0.0))
    log.close()
    assert report.results[0].unreadable == 2
    text = open(tmp_path / "eval.log").read()
    assert "Warning" not in text  # 9 counted + 2 unreadable = the 11 files listed
    assert "2 validation image(s) or record(s) could not be read and are not counted" in text
    assert all(name in text for name in names["validation"])
    assert json.loads(open(tmp_path / "metrics.jsonl").readline())["unreadable"] == 2
    assert ds.bad_data("validation").count() == 0  # reset: the next pass counts its own


# -- TFRecords -----------------------------------------------------------------------------------------

def test_a_damaged_record_mid_shard_is_skipped_counted_and_named(shards):
    _, damaged, where = shards
    ds = ImageNetDataset(recipe=recipe(SIZE), data_dir=damaged, seed=1)
    assert _count(ds.input_fn("train", training=True, batch_size=4).take(6)) == 24  # training goes on
    report = ds.bad_data("train").report()
    shard, offset, after, _ = where["train"]
    assert [item.name for item in report.items] == [f"{shard}@{offset}"]
    assert report.items[0].kind == bad_data.KIND_RECORD
    assert f"the {after} readable record(s) after it" in report.items[0].reason


def test_evaluation_over_damaged_shards_equals_the_clean_records_that_were_read(shards, folders, tmp_path):
    clean, damaged, where = shards
    shard, offset, after, _ = where["validation"]
    # The records TensorFlow reads: all but the damaged one and the rest of its shard.
    lost = []
    for record in tf.data.TFRecordDataset(os.path.join(clean, os.path.basename(shard))).skip(
            len([1 for _ in tf.data.TFRecordDataset(shard).ignore_errors()])):
        lost.append(tf.train.Example.FromString(record.numpy()).features.feature["image/filename"]
                    .bytes_list.value[0].decode())
    assert len(lost) == after + 1
    expected_folder = str(tmp_path / "expected")
    shutil.copytree(folders[0], expected_folder)
    for name in lost:
        for class_dir in os.listdir(os.path.join(expected_folder, "val")):
            path = os.path.join(expected_folder, "val", class_dir, name)
            if os.path.exists(path):
                os.remove(path)

    backend = CPUBackend()
    backend.setup()
    keras.utils.set_random_seed(0)
    with backend.scope():
        model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.AveragePooling2D(8),
                                  keras.layers.Flatten(), keras.layers.Dense(3)])
    evaluator = Evaluator(model, backend, num_classes=3)
    records = ImageNetDataset(recipe=recipe(SIZE), data_dir=damaged, seed=1)
    images = ImageFolderDataset(recipe=recipe(SIZE), data_dir=expected_folder, seed=1)
    got = evaluator.run(lambda ctx: records.input_fn("validation", training=False, batch_size=4, input_context=ctx))
    want = evaluator.run(lambda ctx: images.input_fn("validation", training=False, batch_size=4, input_context=ctx))
    assert got.examples == want.examples == 9 - len(lost)
    assert (got.top1_correct, got.top5_correct) == (want.top1_correct, want.top5_correct)
    assert got.loss_sum == pytest.approx(want.loss_sum, rel=1e-5)
    assert records.bad_data("validation").report().count == 1


# -- tools/check_data.py -------------------------------------------------------------------------------

def test_check_data_lists_every_unreadable_file_and_record(folders, shards, capsys):
    clean, bad, names = folders
    _, problems = check_data.check(bad, num_workers=1)
    assert {name for name, _ in problems} == names["train"] | names["validation"]
    assert check_data.main([f"--data_dir={clean}", "--num_workers=1"]) == 0

    _, damaged, where = shards
    # A second damaged record in the same shard: TensorFlow stops at the first, the scan lists both.
    shard, offset, _, records = where["train"]
    second = _flip_byte_in_record(shard, records - 1)  # the last record
    try:
        _, problems = check_data.check(damaged, num_workers=1)
        assert [name for name, _ in problems] == [f"{shard}@{offset}", f"{shard}@{second}",
                                                  f"{where['validation'][0]}@{where['validation'][1]}"]
        assert all("damaged record" in reason for _, reason in problems)
        capsys.readouterr()
        assert check_data.main([f"--data_dir={damaged}", "--num_workers=1"]) == 1
        assert capsys.readouterr().out.count("damaged record") == 3
    finally:
        _flip_byte_in_record(shard, records - 1)  # undo: the fixture is shared


def test_main_strict_fails_with_one_line_naming_the_file(folders, tmp_path):
    _, bad, names = folders
    # Three steps of 4 read the whole epoch of 12 files, so a bad one is reached whatever the shuffled order.
    proc = run_main("--model=alexnet", "--backend=cpu", f"--data_dir={bad}", "--image_size=63", "--batch_size=4",
                    "--max_train_steps=3", "--iterations_per_loop=1", "--min_crop_area=1.0", "--nodo_checkpoint",
                    "--strict", f"--log_dir={tmp_path}/run", check=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: unreadable train image ") and "--strict stops at the first" in last
    assert any(name in last for name in names["train"])
