"""--mode=predict over files, folders and list files into a CSV, against the model's own outputs and the
exported SavedModel's bytes signature on the same JPEGs."""

import csv
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_main
from PIL import Image

import zoo
from datasets import preprocessing
from evaluation.inference import IMAGE_EXTENSIONS, csv_header, find_images
from evaluation.predictor import preprocess_config
from run_config import AugmentConfig
from weights.checkpoint import load_weights

MODEL, SIZE, K = "resnet18", 32, 3
NAMES = ["cat", "dog", "fish", "bird", "horse"]
COMMON = [f"--model={MODEL}", "--backend=cpu", f"--image_size={SIZE}"]


def _photos():
    from sklearn.datasets import load_sample_images

    return [Image.fromarray(image) for image in load_sample_images().images]  # china.jpg, flower.jpg


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 5-class ResNet-18 checkpoint (random weights) with a label map, and a tree of real photos."""
    tmp = tmp_path_factory.mktemp("predict")
    tf.keras.utils.set_random_seed(5)
    model = zoo.create_model(MODEL, num_classes=len(NAMES), image_size=SIZE)
    ckpt_dir = tmp / "run"
    tf.train.Checkpoint(model=model).write(str(ckpt_dir / "model.ckpt-3"))
    (ckpt_dir / "label_map.txt").write_text("".join(f"{i}\t{n}\n" for i, n in enumerate(NAMES)))

    photos = _photos()
    tree = tmp / "photos"
    (tree / "a" / "deeper").mkdir(parents=True)
    (tree / "b").mkdir()
    sizes = [(120, 90), (64, 100), (200, 150), (45, 45), (300, 80)]
    files = {"a/china.jpg": (0, 0, "JPEG"), "a/deeper/flower.PNG": (1, 1, "PNG"), "b/wide.jpeg": (0, 4, "JPEG"),
             "b/small.bmp": (1, 3, "BMP"), "b/anim.gif": (0, 2, "GIF")}
    for rel, (photo, size, fmt) in files.items():
        image = photos[photo].resize(sizes[size], Image.BILINEAR)
        image.save(tree / rel, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    (tree / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated, not a JPEG")
    (tree / "b" / "notes.txt").write_text("not listed: not an image extension")
    outside = tmp / "extra"
    outside.mkdir()
    photos[1].resize((80, 60)).save(outside / "listed.jpg", quality=90)
    listing = outside / "list.txt"
    listing.write_text("# photos to predict\nlisted.jpg\n\nmissing.jpg\n" + str(tree / "a" / "china.jpg") + "\n")
    return ckpt_dir, tree, listing


def test_find_images(run):
    _, tree, listing = run
    found = find_images([str(tree), str(listing)])
    rel = [os.path.relpath(p, tree) for p in found]
    # Sorted per folder, recursively, any case of the extensions; the list's entries after, each path once.
    assert rel[:6] == ["a/china.jpg", "a/deeper/flower.PNG", "b/anim.gif", "b/broken.jpg", "b/small.bmp",
                       "b/wide.jpeg"]
    assert [os.path.basename(p) for p in found[6:]] == ["listed.jpg", "missing.jpg"]
    assert all(p.lower().endswith(IMAGE_EXTENSIONS) for p in found)
    with pytest.raises(FileNotFoundError, match="nowhere.jpg: no such file or folder"):
        find_images([str(tree / "nowhere.jpg")])
    empty = tree / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no .jpg, .jpeg, .png, .bmp, .gif files"):
        find_images([str(empty)])
    empty.rmdir()


def _expected(ckpt_dir, paths):
    """Top-k of each path from the model itself: eval_image, normalisation, the network, softmax."""
    model = zoo.create_model(MODEL, num_classes=len(NAMES), image_size=SIZE)
    load_weights(model, str(ckpt_dir / "model.ckpt-3"))
    config = preprocess_config(AugmentConfig(), zoo.get_recipe(MODEL).scaled(SIZE))
    images = tf.stack([preprocessing.eval_image(tf.io.read_file(p), config) for p in paths])
    probs = tf.nn.softmax(model(preprocessing.normalize_for(images, config), training=False)).numpy()
    return {p: probs[i] for i, p in enumerate(paths)}


def test_predict_csv_equals_the_models_outputs_and_the_saved_model(run, tmp_path):
    ckpt_dir, tree, listing = run
    proc = run_main(*COMMON, "--mode=predict", f"--checkpoint_dir={ckpt_dir}", f"--image={tree},{listing}",
                    f"--top_k={K}", "--eval_batch_size=2")
    csv_path = ckpt_dir / "predictions.csv"  # the default: beside the checkpoint
    assert f"Predicted 6 of 8 images (2 unreadable) -> {csv_path}" in proc.stdout
    assert f"{tree / 'b' / 'broken.jpg'}: unreadable: cannot decode it as an image" in proc.stdout
    assert f"{listing.parent / 'missing.jpg'}: unreadable: no such file" in proc.stdout

    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == csv_header(K) == ["path", "class_1", "name_1", "probability_1", "class_2", "name_2",
                                        "probability_2", "class_3", "name_3", "probability_3", "error"]
    by_path = {row[0]: row for row in rows[1:]}
    assert len(by_path) == len(rows) - 1 == 8
    errors = {p: row[-1] for p, row in by_path.items() if row[-1]}
    assert sorted(errors) == sorted([str(tree / "b" / "broken.jpg"), str(listing.parent / "missing.jpg")])
    assert all(cell == "" for p in errors for cell in by_path[p][1:-1])

    good = [p for p in by_path if p not in errors]
    expected = _expected(ckpt_dir, good)
    for path in good:
        row = by_path[path]
        classes = [int(row[1 + 3 * r]) for r in range(K)]
        names = [row[2 + 3 * r] for r in range(K)]
        probs = [float(row[3 + 3 * r]) for r in range(K)]
        assert classes == list(np.argsort(-expected[path], kind="stable")[:K]), path
        assert probs == pytest.approx(expected[path][classes], abs=1e-5)
        assert names == [NAMES[c] for c in classes]

    # The exported SavedModel's bytes signature on the same files gives the same top-k.
    export_dir = tmp_path / "export"
    run_main(*COMMON, "--mode=export", f"--checkpoint_dir={ckpt_dir}", f"--export_dir={export_dir}",
             f"--top_k={K}")
    served = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    jpegs = [p for p in good if p.endswith((".jpg", ".jpeg"))]
    assert len(jpegs) == 3
    out = served(image_bytes=tf.constant([open(p, "rb").read() for p in jpegs]))
    for i, path in enumerate(jpegs):
        row = by_path[path]
        assert out["top_k_classes"].numpy()[i].tolist() == [int(row[1 + 3 * r]) for r in range(K)]
        assert out["top_k_probabilities"].numpy()[i] == pytest.approx([float(row[3 + 3 * r]) for r in range(K)],
                                                                      abs=1e-5)
        assert [n.decode() for n in out["top_k_names"].numpy()[i]] == [row[2 + 3 * r] for r in range(K)]


def test_predict_csv_setting_and_errors(run, tmp_path):
    ckpt_dir, tree, _ = run
    target = tmp_path / "out" / "mine.csv"
    proc = run_main(*COMMON, "--mode=predict", f"--checkpoint_dir={ckpt_dir}", f"--image={tree / 'a'}",
                    f"--predictions_csv={target}")
    assert f"Predicted 2 of 2 images (0 unreadable) -> {target}" in proc.stdout
    assert len(target.read_text().splitlines()) == 3

    proc = run_main(*COMMON, "--mode=predict", f"--checkpoint_dir={ckpt_dir}", f"--image={tmp_path}/nowhere",
                    check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == f"error: --image: {tmp_path}/nowhere: no such file or folder."
    (tmp_path / "empty").mkdir()
    proc = run_main(*COMMON, "--mode=predict", f"--checkpoint_dir={ckpt_dir}", f"--image={tmp_path / 'empty'}",
                    check=False)
    assert proc.returncode == 1 and "no .jpg, .jpeg, .png, .bmp, .gif files" in proc.stderr.strip().splitlines()[-1]
