"""Data sources beside image folders: --val_split, file lists (--train_list/--val_list), TensorFlow Datasets.

* ``--val_split`` carves a validation split per class, from paths alone (any listing order, any seed), and
  the run records it: a later ``--mode=evaluate`` without the flag evaluates the same images;
* ``file_list`` reads CSV and text lists (class names or integer labels, relative paths), refuses what it
  cannot read in one line, and trains through main.py;
* ``tfds`` reads a dataset prepared in a temporary data_dir by a builder written here, by name, without the
  network, and with the builder's code absent (main.py in another process).
"""

import os
import re
import shutil

import numpy as np
import pytest
from conftest import run_main
from datasets_testutil import make_folder, photo, recipe, write_image

from datasets import folders
from datasets.file_list import FileListDataset, read_list
from datasets.image_folder import ImageFolderDataset
from datasets.split import stratified_split, val_count

SIZE = 32


def _labels(ds, split):
    return sorted(int(y) for _, labels in ds.input_fn(split, training=False, batch_size=4) for y in labels.numpy())


# -- --val_split ---------------------------------------------------------------------------------------------

def test_stratified_split_is_per_class_and_depends_on_names_only():
    rng = np.random.default_rng(0)
    counts = {0: 10, 1: 3, 2: 1, 3: 25}
    keys = [f"c{c}/img_{i:03d}.jpg" for c, n in counts.items() for i in range(n)]
    labels = [int(k[1]) for k in keys]
    train, val = stratified_split(keys, labels, 0.2)
    assert sorted(train + val) == list(range(len(keys))) and not set(train) & set(val)
    per_class = {c: sum(labels[i] == c for i in val) for c in counts}
    assert per_class == {0: 2, 1: 1, 2: 0, 3: 5}  # round(0.2 n); one at least from n >= 2; a lone image trains
    assert [val_count(n, 0.2) for n in (0, 1, 2, 3, 10, 25)] == [0, 0, 1, 1, 2, 5]
    assert val_count(4, 0.9) == 3  # training keeps one of each class
    # Any listing order gives the same files; the seed plays no part (there is none).
    order = rng.permutation(len(keys))
    _, shuffled_val = stratified_split([keys[i] for i in order], [labels[i] for i in order], 0.2)
    assert sorted(keys[order[i]] for i in shuffled_val) == sorted(keys[i] for i in val)
    # A larger fraction keeps the smaller one's validation files.
    _, more = stratified_split(keys, labels, 0.4)
    assert set(val) <= set(more) and len(more) > len(val)
    with pytest.raises(ValueError, match="listed twice"):
        stratified_split(["a", "a"], [0, 0], 0.5)


def test_image_folder_val_split(tmp_path):
    data = make_folder(str(tmp_path / "d"), classes={"cat": 5, "dog": 4, "fox": 2}, splits=("train",))
    ds = ImageFolderDataset(recipe=recipe(SIZE), data_dir=data, val_split=0.25)
    assert ds.num_examples("train") == 8 and ds.num_examples("validation") == 3
    val = ds.split("validation")
    assert [val.labels.count(c) for c in range(3)] == [1, 1, 1] and val.classes == ["cat", "dog", "fox"]
    assert not set(val.files) & set(ds.split("train").files)
    again = ImageFolderDataset(recipe=recipe(SIZE), data_dir=data, val_split=0.25, seed=123)
    assert again.split("validation").files == val.files
    # The split is by path relative to the data: a copy elsewhere carves the same images.
    moved = shutil.copytree(data, str(tmp_path / "moved"))
    copy = ImageFolderDataset(recipe=recipe(SIZE), data_dir=moved, val_split=0.25)
    assert [os.path.relpath(f, moved) for f in copy.split("validation").files] == \
        [os.path.relpath(f, data) for f in val.files]
    assert sorted(_labels(ds, "validation")) == [0, 1, 2]
    with_val = make_folder(str(tmp_path / "v"), classes={"a": 2, "b": 2})
    with pytest.raises(ValueError, match=r"--val_split=0.25: .* has a validation folder .* already"):
        ImageFolderDataset(recipe=recipe(SIZE), data_dir=with_val, val_split=0.25)


def test_val_split_is_recorded_and_evaluate_uses_the_same_images(tmp_path):
    """Train with --val_split on a folder without val/, then evaluate without the flag: the run's config.json
    carries it, so evaluation reads the same carved split (3 of 11 images)."""
    data = make_folder(str(tmp_path / "d"), classes={"cat": 5, "dog": 4, "fox": 2}, splits=("train",))
    log_dir = tmp_path / "run"
    run_main("--backend=cpu", f"--data_dir={data}", "--model=resnet18", f"--image_size={SIZE}", "--batch_size=2",
             "--max_train_steps=1", "--val_split=0.25", f"--log_dir={log_dir}")
    assert '"val_split": 0.25' in (log_dir / "config.json").read_text()
    evaluation = run_main("--mode=evaluate", f"--log_dir={log_dir}", "--backend=cpu")
    assert "Validation dataset size: 3" in evaluation.stdout, evaluation.stdout
    refused = run_main("--mode=evaluate", f"--log_dir={log_dir}", "--backend=cpu", "--val_split=0.5", check=False)
    assert refused.returncode != 0 and "val_split" in refused.stdout + refused.stderr


# -- file lists ----------------------------------------------------------------------------------------------

def _images(root, names):
    return [write_image(os.path.join(str(root), name), photo(i, (48, 40))) for i, name in enumerate(names)]


def test_csv_list_with_class_names_relative_paths_and_a_validation_list(tmp_path):
    _images(tmp_path / "pics", ["a/1.jpg", "a/2.jpg", "b, with comma/3.png", "c/4.jpg", "c/5.jpg", "a/6.jpg"])
    (tmp_path / "train.csv").write_text('path,label\npics/a/1.jpg,ant\npics/a/2.jpg,ant\n'
                                        '"pics/b, with comma/3.png",bee\npics/c/4.jpg,cow\n\npics/c/5.jpg,cow\n')
    (tmp_path / "val.csv").write_text("pics/a/6.jpg,ant\npics/c/4.jpg,cow\n")
    ds = FileListDataset(recipe=recipe(SIZE), train_list=str(tmp_path / "train.csv"),
                         val_list=str(tmp_path / "val.csv"), label_map_path=str(tmp_path / "labels.txt"))
    assert ds.classes == ["ant", "bee", "cow"] and ds.num_examples("train") == 5 and ds.num_examples("validation") == 2
    assert folders.read_label_map(str(tmp_path / "labels.txt")) == {0: "ant", 1: "bee", 2: "cow"}
    assert ds.split("train").files[2] == os.path.join(str(tmp_path), "pics", "b, with comma", "3.png")
    assert _labels(ds, "train") == [0, 0, 1, 2, 2] and _labels(ds, "validation") == [0, 2]
    images, labels = next(iter(ds.input_fn("train", training=True, batch_size=3)))
    assert images.shape == (3, SIZE, SIZE, 3) and np.isfinite(images.numpy()).all()


def test_text_list_with_integer_labels_and_data_dir(tmp_path):
    files = _images(tmp_path / "root", ["x/1.jpg", "x/2.jpg", "y/3.jpg", "y/4.jpg", "z/5.jpg", "z/6.jpg"])
    listing = tmp_path / "lists" / "train.txt"
    listing.parent.mkdir()
    listing.write_text("# path label\nx/1.jpg\t0\nx/2.jpg 0\ny/3.jpg,2\ny/4.jpg 2\n" + f"{files[4]} 1\nz/6.jpg 1\n")
    assert read_list(str(listing), str(tmp_path / "root"))[4] == (files[4], "1")  # absolute paths stay
    ds = FileListDataset(recipe=recipe(SIZE), train_list=str(listing), data_dir=str(tmp_path / "root"),
                         num_classes=4, val_split=0.5)
    assert ds.classes == ["0", "1", "2", "3"] and ds.num_classes == 4
    assert ds.num_examples("train") == 3 and ds.num_examples("validation") == 3
    assert _labels(ds, "validation") == [0, 1, 2]
    with pytest.raises(ValueError, match=r"--num_classes=2 but .*train.txt has label 2"):
        FileListDataset(recipe=recipe(SIZE), train_list=str(listing), data_dir=str(tmp_path / "root"), num_classes=2)


def test_file_list_errors_are_one_line(tmp_path):
    _images(tmp_path, ["a.jpg", "b.jpg"])
    bad = tmp_path / "bad.csv"
    bad.write_text("a.jpg,cat\nb.jpg,dog,extra\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: expected 2 fields \(path,label\), got 3"):
        FileListDataset(recipe=recipe(SIZE), train_list=str(bad))
    missing = tmp_path / "missing.txt"
    missing.write_text("a.jpg cat\nnope.jpg dog\n")
    with pytest.raises(FileNotFoundError, match=r"missing.txt: 1 listed image\(s\) do not exist: .*nope.jpg"):
        FileListDataset(recipe=recipe(SIZE), train_list=str(missing))
    good = tmp_path / "good.txt"
    good.write_text("a.jpg cat\nb.jpg dog\n")
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("a.jpg cow\n")
    ds = FileListDataset(recipe=recipe(SIZE), train_list=str(good), val_list=str(unknown))
    with pytest.raises(ValueError, match=r"label 'cow' of .*a.jpg is not a class of the training list \(2 classes"):
        ds.num_examples("validation")
    with pytest.raises(FileNotFoundError, match=r"no validation split; pass --val_list=FILE or --val_split"):
        FileListDataset(recipe=recipe(SIZE), train_list=str(good)).num_examples("validation")
    with pytest.raises(ValueError, match=r"--val_split=0.5 and --val_list=.*: pass one of them"):
        FileListDataset(recipe=recipe(SIZE), train_list=str(good), val_list=str(good), val_split=0.5)
    with pytest.raises(ValueError, match=r"needs --train_list=FILE"):
        FileListDataset(recipe=recipe(SIZE))


@pytest.mark.slow  # a multi-process or end-to-end run whose behaviour the default suite checks elsewhere
def test_file_list_trains_through_main(tmp_path):
    """--train_list alone picks the file_list dataset; --val_split carves its validation split."""
    names = [f"{c}/{i}.jpg" for c in ("ant", "bee") for i in range(4)]
    _images(tmp_path / "pics", names)
    (tmp_path / "train.csv").write_text("".join(f"pics/{n},{n.split('/')[0]}\n" for n in names))
    log_dir = tmp_path / "run"
    proc = run_main("--backend=cpu", f"--train_list={tmp_path / 'train.csv'}", "--val_split=0.25",
                    "--model=resnet18", f"--image_size={SIZE}", "--batch_size=2", "--max_train_steps=2",
                    f"--log_dir={log_dir}", "--mode=train_and_evaluate", "--save_summary_steps=1")
    assert "dataset=file_list" in proc.stdout and "classes=2" in proc.stdout, proc.stdout
    assert "Validation dataset size: 2" in proc.stdout, proc.stdout
    assert folders.read_label_map(str(log_dir / "label_map.txt")) == {0: "ant", 1: "bee"}


# -- TensorFlow Datasets -----------------------------------------------------------------------------------------

CLASSES = ["cat", "dog", "fox"]
TRAIN_LABELS = [0, 1, 2, 0, 1, 2, 0, 1, 2, 2]
TEST_LABELS = [0, 1, 2, 1]


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """A TFDS dataset ``tiny_photos`` prepared in a temporary data_dir by a builder defined here (no download)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    data_dir = str(tmp_path_factory.mktemp("tfds"))

    class TinyPhotos(tfds.core.GeneratorBasedBuilder):
        """Photo crops in three classes: 10 training and 4 test images, JPEG-encoded as TFDS stores them."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, supervised_keys=("image", "label"),
                features=tfds.features.FeaturesDict({
                    "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                    "label": tfds.features.ClassLabel(names=CLASSES),
                    "note": tfds.features.Text(),
                }))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(TRAIN_LABELS, 0),
                    "test": self._generate_examples(TEST_LABELS, 100)}

        def _generate_examples(self, labels, offset):
            for i, label in enumerate(labels):
                yield f"ex{offset + i}", {"image": photo(offset + i, (56, 48)), "label": label, "note": "x"}

    TinyPhotos(data_dir=data_dir).download_and_prepare()
    return data_dir


def _tfds(data_dir, **kwargs):
    from datasets.tfds_dataset import TfdsDataset

    return TfdsDataset(recipe=recipe(SIZE), data_dir=data_dir, tfds_name="tiny_photos", **kwargs)


def test_tfds_dataset_reads_a_prepared_dataset_by_name(tfds_dir, tmp_path):
    ds = _tfds(tfds_dir, label_map_path=str(tmp_path / "labels.txt"))
    assert (ds.image_key, ds.label_key) == ("image", "label") and ds.classes == CLASSES
    assert ds.splits == {"train": "train", "validation": "test"}  # no validation split: its test split
    assert ds.num_examples("train") == 10 and ds.num_examples("validation") == 4
    assert folders.read_label_map(str(tmp_path / "labels.txt")) == dict(enumerate(CLASSES))
    assert _labels(ds, "train") == sorted(TRAIN_LABELS) and _labels(ds, "validation") == sorted(TEST_LABELS)
    images, labels = next(iter(ds.input_fn("train", training=True, batch_size=4)))
    assert images.shape == (4, SIZE, SIZE, 3) and images.dtype.name == "float32" and np.isfinite(images.numpy()).all()
    sliced = _tfds(tfds_dir, train_split="train[:80%]", val_split_name="train[80%:]")
    assert sliced.num_examples("train") == 8 and sliced.num_examples("validation") == 2


def test_tfds_errors_are_one_line(tfds_dir, tmp_path):
    with pytest.raises(ValueError, match=r"--tfds_name=no_such_set: no such dataset in .*--tfds_download"):
        from datasets.tfds_dataset import TfdsDataset

        TfdsDataset(recipe=recipe(SIZE), data_dir=str(tmp_path), tfds_name="no_such_set")
    with pytest.raises(ValueError, match=r"--val_split=0.1 carves image folders and file lists.*train\[:90%\]"):
        _tfds(tfds_dir, val_split=0.1)
    with pytest.raises(ValueError, match=r"--num_classes=5 does not match the data: tiny_photos's label has 3"):
        _tfds(tfds_dir, num_classes=5)
    with pytest.raises(ValueError, match=r"split 'valid'"):
        _tfds(tfds_dir, val_split_name="valid").num_examples("validation")


def test_tfds_trains_and_evaluates_through_main_without_the_builder_code(tfds_dir, tmp_path):
    """main.py in another process, where TinyPhotos is not importable: TFDS reads the dataset from its files."""
    log_dir = tmp_path / "run"
    proc = run_main("--backend=cpu", "--dataset=tfds", "--tfds_name=tiny_photos", f"--data_dir={tfds_dir}",
                    "--model=resnet18", f"--image_size={SIZE}", "--batch_size=2", "--max_train_steps=2",
                    "--mode=train_and_evaluate", f"--log_dir={log_dir}", "--save_summary_steps=1")
    assert "dataset=tfds" in proc.stdout and "classes=3" in proc.stdout, proc.stdout
    assert "Validation dataset size: 4" in proc.stdout, proc.stdout
    assert re.search(r"^step:\s+2,", proc.stdout, re.M), proc.stdout
