"""Dataset readers: labels, splits, per-rank sharding, every-example-once evaluation, bad input."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from datasets_testutil import make_folder, photo, recipe, write_image

from datasets import folders, pipeline
from datasets.demo import DemoDataset
from datasets.image_folder import ImageFolderDataset
from datasets.imagenet import ImageNetDataset
from datasets.pipeline import PipelineOptions
from registry import DATASETS
from tools.build_tfrecords import build


def ctx(n: int, i: int, global_batch: int = 8) -> tf.distribute.InputContext:
    return tf.distribute.InputContext(num_input_pipelines=n, input_pipeline_id=i, num_replicas_in_sync=n)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(str(tmp_path_factory.mktemp("folder")))


@pytest.fixture(scope="module")
def shards(tmp_path_factory, folder):
    out = str(tmp_path_factory.mktemp("tfrecords"))
    build(folder, out, train_shards=3, validation_shards=2, num_workers=1)
    return out


def images_and_labels(ds):
    images, labels = [], []
    for x, y in ds:
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def test_registered_names():
    assert {"imagenet", "image_folder", "demo", "synthetic"} <= set(DATASETS.list())


def test_image_folder_labels_follow_sorted_class_names(folder, tmp_path):
    label_map = str(tmp_path / "logs" / "label_map.txt")
    ds = ImageFolderDataset(recipe=recipe(), data_dir=folder, label_map_path=label_map)
    assert ds.classes == ["cat", "dog", "fox"] and ds.num_classes == 3
    assert ds.num_examples("train") == 9 and ds.num_examples("validation") == 6
    assert folders.read_label_map(label_map) == {0: "cat", 1: "dog", 2: "fox"}
    _, labels = images_and_labels(ds.input_fn("validation", training=False, batch_size=4))
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2]


def test_validation_yields_every_example_once_with_a_partial_last_batch(folder):
    ds = ImageFolderDataset(recipe=recipe(), data_dir=folder)
    batches = [int(x.shape[0]) for x, _ in ds.input_fn("train", training=False, batch_size=4)]
    # Batches may finish out of order (non-deterministic parallel map); one of them is partial.
    assert sorted(batches, reverse=True) == [4, 4, 1]
    images, _ = images_and_labels(ds.input_fn("train", training=False, batch_size=4))
    assert len({img.tobytes() for img in images}) == 9  # nine different photos, each once


def test_training_repeats_with_full_batches(folder):
    ds = ImageFolderDataset(recipe=recipe(), data_dir=folder, seed=1)
    shapes = [tuple(x.shape) for x, _ in ds.input_fn("train", training=True, batch_size=4).take(7)]
    assert shapes == [(4, 64, 64, 3)] * 7  # 28 images from 9: it repeats, never a short batch


@pytest.mark.parametrize("n", [2, 3])
def test_image_folder_shards_cover_every_example_once(folder, n):
    ds = ImageFolderDataset(recipe=recipe(), data_dir=folder)
    seen = []
    for i in range(n):
        images, _ = images_and_labels(ds.input_fn("train", training=False, batch_size=2, input_context=ctx(n, i)))
        seen.extend(img.tobytes() for img in images)
    assert len(seen) == 9 and len(set(seen)) == 9


def test_file_shard_whole_files_or_examples():
    files = [f"f{i}" for i in range(5)]
    parts = [pipeline.file_shard(files, ctx(2, i)).files for i in range(2)]
    assert parts == [["f0", "f2", "f4"], ["f1", "f3"]]
    few = pipeline.file_shard(files[:2], ctx(4, 3))
    assert few.files == ["f0", "f1"] and (few.num_shards, few.index) == (4, 3)
    assert pipeline.file_shard(files, None).files == files


@pytest.mark.parametrize("n", [2, 3, 5])  # 2, 3: whole shards (3 files); 5: examples
def test_imagenet_shards_cover_every_example_once(shards, n):
    ds = ImageNetDataset(recipe=recipe(), data_dir=shards)
    seen = []
    for i in range(n):
        images, labels = images_and_labels(
            ds.input_fn("train", training=False, batch_size=2, input_context=ctx(n, i)))
        seen.extend(zip(labels.tolist(), (img.tobytes() for img in images)))
    assert len(seen) == 9 and len(set(seen)) == 9


def test_imagenet_training_with_example_sharding_keeps_ranks_disjoint(shards):
    # 3 files, 4 pipelines: every pipeline reads every file and keeps every 4th example. The stream
    # continues across epochs (9 examples), so only the order-keeping pipeline guarantees that each
    # pipeline's first batch is its first two examples of epoch 1: a parallel map allowed to reorder may
    # yield an epoch-2 example first, which another pipeline legitimately holds in epoch 1 (the flake).
    ds = ImageNetDataset(recipe=recipe(), data_dir=shards, seed=3,
                         options=PipelineOptions(shuffle_buffer=1, deterministic=True),
                         preprocess={"area_range": (1.0, 1.0), "aspect_range": (0.1, 10.0), "random_flip": False})
    firsts = []
    for i in range(4):
        x, _ = next(iter(ds.input_fn("train", training=True, batch_size=2, input_context=ctx(4, i))))
        firsts.extend(img.tobytes() for img in x.numpy())
    assert len(set(firsts)) == 8


def test_imagenet_reader_matches_the_image_folder_reader(folder, shards):
    # The same images through both readers: identical (label, pixels) pairs.
    a = ImageFolderDataset(recipe=recipe(), data_dir=folder)
    b = ImageNetDataset(recipe=recipe(), data_dir=shards)
    assert b.num_classes == 3 and b.label_offset == 1
    assert b.num_examples("train") == 9 and b.num_examples("validation") == 6
    for split in ("train", "validation"):
        xa, ya = images_and_labels(a.input_fn(split, training=False, batch_size=4))
        xb, yb = images_and_labels(b.input_fn(split, training=False, batch_size=4))
        assert sorted(zip(ya.tolist(), map(bytes, xa))) == sorted(zip(yb.tolist(), map(bytes, xb)))


def test_imagenet_counts_records_without_dataset_info(shards, tmp_path):
    copy = str(tmp_path / "copy")
    shutil.copytree(shards, copy)
    os.remove(os.path.join(copy, "dataset_info.json"))
    ds = ImageNetDataset(recipe=recipe(), data_dir=copy, num_classes=3)
    assert ds.label_offset == 1 and ds.num_examples("validation") == 6


def test_uint8_output_and_device_normalisation_agree(folder):
    ds = ImageFolderDataset(recipe=recipe(), data_dir=folder, options=PipelineOptions(deterministic=True))
    raw, _ = next(iter(ds.input_fn("validation", training=False, batch_size=6, normalize=False)))
    done, _ = next(iter(ds.input_fn("validation", training=False, batch_size=6)))
    assert raw.dtype == tf.uint8
    np.testing.assert_allclose(ds.normalize(raw).numpy(), done.numpy(), atol=1e-6)


def test_deterministic_training_input_is_reproducible(folder):
    def first_batches(seed):
        ds = ImageFolderDataset(recipe=recipe(), data_dir=folder, seed=seed,
                                options=PipelineOptions(deterministic=True))
        return [x.numpy() for x, _ in ds.input_fn("train", training=True, batch_size=4).take(3)]

    a, b, c = first_batches(7), first_batches(7), first_batches(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_demo_writes_its_cache_once_and_reads_it_as_an_image_folder(tmp_path):
    cache = str(tmp_path / "demo")
    ds = DemoDataset(recipe=recipe(), cache_dir=cache)
    assert ds.num_classes == 10 and ds.classes == [str(d) for d in range(10)]
    assert ds.num_examples("train") == 1437 and ds.num_examples("validation") == 360
    assert ds.preprocess_config.random_flip is False
    jpgs = [f for _, _, files in os.walk(cache) for f in files if f.endswith(".jpg")]
    assert len(jpgs) == 1797
    stamp = os.path.getmtime(os.path.join(cache, "train", "0"))
    DemoDataset(recipe=recipe(), cache_dir=cache)
    assert os.path.getmtime(os.path.join(cache, "train", "0")) == stamp
    x, y = next(iter(ds.input_fn("validation", training=False, batch_size=8)))
    assert x.shape == (8, 64, 64, 3) and set(y.numpy().tolist()) <= set(range(10))


def test_demo_refuses_a_foreign_cache_directory(tmp_path):
    (tmp_path / "junk.txt").write_text("x")
    with pytest.raises(ValueError, match="no complete demo dataset"):
        DemoDataset(recipe=recipe(), cache_dir=str(tmp_path))


# -- bad input -----------------------------------------------------------------------------------

def test_missing_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolderDataset(recipe=recipe(), data_dir=str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageNetDataset(recipe=recipe(), data_dir=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="needs --data_dir"):
        ImageFolderDataset(recipe=recipe(), data_dir=None)


def test_split_without_files(tmp_path, shards):
    make_folder(str(tmp_path / "f"), splits=("train",))
    ds = ImageFolderDataset(recipe=recipe(), data_dir=str(tmp_path / "f"))
    with pytest.raises(FileNotFoundError, match="no val/ or validation/ folder"):
        ds.num_examples("validation")
    only_train = tmp_path / "t"
    only_train.mkdir()
    for name in os.listdir(shards):
        if name.startswith("train-"):
            shutil.copy(os.path.join(shards, name), only_train / name)
    with pytest.raises(FileNotFoundError, match="no validation TFRecord shards"):
        ImageNetDataset(recipe=recipe(), data_dir=str(only_train)).input_fn(
            "validation", training=False, batch_size=2)
    with pytest.raises(ValueError, match="unknown split"):
        ds.input_fn("test", training=False, batch_size=2)


def test_class_folder_without_images(tmp_path):
    root = make_folder(str(tmp_path / "f"))
    os.makedirs(os.path.join(root, "train", "empty"))
    (tmp_path / "f" / "train" / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"1 class folder\(s\) of the train split contain no JPEG or PNG.*empty"):
        ImageFolderDataset(recipe=recipe(), data_dir=root)


def test_different_class_folders_in_train_and_val(tmp_path):
    root = make_folder(str(tmp_path / "f"), classes={"cat": 2, "dog": 2}, val={"cat": 1, "owl": 1})
    ds = ImageFolderDataset(recipe=recipe(), data_dir=root)
    with pytest.raises(ValueError, match="missing in validation: dog; only in validation: owl"):
        ds.num_examples("validation")


def test_unreadable_shard(shards, tmp_path):
    copy = str(tmp_path / "copy")
    shutil.copytree(shards, copy)
    victim = sorted(f for f in os.listdir(copy) if f.startswith("train-"))[1]
    with open(os.path.join(copy, victim), "r+b") as f:
        f.seek(12)
        f.write(b"garbage!")
    empty = os.path.join(copy, "train-00009-of-00010")
    open(empty, "wb").close()
    ds = ImageNetDataset(recipe=recipe(), data_dir=copy)
    with pytest.raises(ValueError, match=r"2 unreadable TFRecord shard\(s\):.*" + victim + ".*empty file"):
        ds.num_examples("train")


def test_label_outside_num_classes(shards):
    ds = ImageNetDataset(recipe=recipe(), data_dir=shards, label_offset=0)  # stored labels are 1..3
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"outside \[0, 3\).*--label_offset"):
        for _ in ds.input_fn("validation", training=False, batch_size=6):
            pass


def test_num_classes_not_matching_the_data(folder, shards):
    with pytest.raises(ValueError, match="--num_classes=5 does not match the data.*3 class folders"):
        ImageFolderDataset(recipe=recipe(), data_dir=folder, num_classes=5)
    with pytest.raises(ValueError, match="--num_classes=5 does not match the data.*3 classes"):
        ImageNetDataset(recipe=recipe(), data_dir=shards, num_classes=5)


def test_non_image_files_are_counted_not_hidden(tmp_path):
    root = make_folder(str(tmp_path / "f"))
    (tmp_path / "f" / "train" / "cat" / "readme.txt").write_text("x")
    write_image(str(tmp_path / "f" / "train" / "cat" / "extra.JPG"), photo(99))
    found = folders.scan_split(root, "train")
    assert [os.path.basename(p) for p in found.ignored] == ["readme.txt"]
    assert len(found) == 10  # upper-case .JPG counts


# -- through main.py ----------------------------------------------------------------------------

def test_main_trains_from_tfrecords_and_from_the_demo(shards, tmp_path, main_runner):
    common = ["--model=alexnet", "--backend=cpu", "--image_size=63", "--batch_size=2", "--max_train_steps=2",
              "--iterations_per_loop=1", "--save_summary_steps=1", "--nodo_checkpoint", "--lr=0.001"]
    proc = main_runner(*common, f"--data_dir={shards}", f"--log_dir={tmp_path}/a")
    assert "dataset=imagenet" in proc.stdout + proc.stderr and "classes=3" in proc.stdout + proc.stderr
    proc = main_runner(*common, f"--demo_cache_dir={tmp_path}/cache", f"--log_dir={tmp_path}/b")
    out = proc.stdout + proc.stderr
    assert "dataset=demo" in out and "classes=10" in out
    assert folders.read_label_map(str(tmp_path / "b" / "label_map.txt"))[9] == "9"
    bad = main_runner(*common, f"--data_dir={tmp_path}/missing", f"--log_dir={tmp_path}/c", check=False)
    assert bad.returncode != 0 and "does not exist" in bad.stderr
