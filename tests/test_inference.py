"""--mode=predict on JPEG files, --mode=export, and the SavedModel reloaded in a fresh process."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import run_main
from PIL import Image

import zoo
from evaluation.predictor import class_names, preprocess_config, preprocess_files
from run_config import AugmentConfig

SIZE = 63
NAMES = ["cat", "dog", "fish", "bird", "horse"]
LINE = re.compile(r"^  (?P<rank>\d)\. (?P<prob>\d\.\d{6})  (?P<name>.*?) ?\(label (?P<label>\d+)\)$|"
                  r"^  (?P<rank2>\d)\. (?P<prob2>\d\.\d{6})  label (?P<label2>\d+)$")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 5-class AlexNet checkpoint (random weights) with a label map beside it, and two JPEGs."""
    tmp = tmp_path_factory.mktemp("inference")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(3)
    model = zoo.create_model("alexnet", num_classes=len(NAMES), image_size=SIZE)
    ckpt_dir = tmp / "ckpt"
    tf.train.Checkpoint(model=model).write(str(ckpt_dir / "model.ckpt-7"))
    (ckpt_dir / "label_map.txt").write_text("".join(f"{i}\t{n}\n" for i, n in enumerate(NAMES)))
    rng = np.random.default_rng(0)
    images = []
    for i, shape in enumerate([(90, 120, 3), (150, 100, 3)]):  # landscape and portrait
        path = tmp / f"photo{i}.jpg"
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path, quality=90)
        images.append(str(path))
    return tmp, ckpt_dir, images


def parse_predictions(stdout):
    """{image path: [(label, probability, name), ...]} from predict's output."""
    result, current = {}, None
    for line in stdout.splitlines():
        match = LINE.match(line)
        if match:
            label = int(match.group("label") or match.group("label2"))
            prob = float(match.group("prob") or match.group("prob2"))
            result[current].append((label, prob, match.group("name") or ""))
        elif line.endswith(".jpg"):
            current = line
            result[current] = []
    return result


def test_predict_export_reload_agree(run):
    tmp, ckpt_dir, images = run
    proc = run_main("--mode=predict", "--backend=cpu", f"--image_size={SIZE}", f"--checkpoint_dir={ckpt_dir}",
                    f"--image={','.join(images)}")
    assert f"names from {ckpt_dir}/label_map.txt" in proc.stdout
    predicted = parse_predictions(proc.stdout)
    assert sorted(predicted) == sorted(images)
    for top in predicted.values():
        assert len(top) == 5 and sorted(label for label, _, _ in top) == [0, 1, 2, 3, 4]
        probs = [p for _, p, _ in top]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert all(name == NAMES[label] for label, _, name in top)

    export_dir = tmp / "export"
    proc = run_main("--mode=export", "--backend=cpu", f"--image_size={SIZE}",
                    f"--checkpoint_path={ckpt_dir}/model.ckpt-7", f"--export_dir={export_dir}")
    assert f"to {export_dir}" in proc.stdout
    config = json.loads((export_dir / "serving_config.json").read_text())
    assert (config["image_size"], config["eval_resize"], config["num_classes"]) == (SIZE, 72, 5)
    assert not [n for n in os.listdir(tmp) if ".tmp-" in n]

    reload = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import tensorflow as tf
        loaded = tf.saved_model.load({str(export_dir)!r})
        paths = {images!r}
        out = loaded.signatures["serving_default"](image_bytes=tf.constant([open(p, "rb").read() for p in paths]))
        zeros = loaded.signatures["serving_images"](images=tf.zeros([1, {SIZE}, {SIZE}, 3]))
        grey = loaded.signatures["serving_uint8"](images=tf.fill([2, {SIZE}, {SIZE}, 3], tf.constant(128, tf.uint8)))
        print(json.dumps(dict(
            classes=out["top_k_classes"].numpy().tolist(), probs=out["top_k_probabilities"].numpy().tolist(),
            names=[[n.decode() for n in row] for row in out["top_k_names"].numpy()],
            images_shape=list(zeros["probabilities"].shape), uint8_shape=list(grey["top_k_classes"].shape))))
    """)
    fresh = subprocess.run([sys.executable, "-c", reload], cwd=str(tmp), capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    served = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert served["images_shape"] == [1, 5] and served["uint8_shape"] == [2, 5]
    for i, path in enumerate(images):
        assert served["classes"][i] == [label for label, _, _ in predicted[path]]
        assert served["probs"][i] == pytest.approx([p for _, p, _ in predicted[path]], abs=2e-6)
        assert served["names"][i] == [NAMES[label] for label in served["classes"][i]]

    # A second export to the same place is refused and leaves the first intact.
    before = sorted(os.listdir(export_dir))
    proc = run_main("--mode=export", "--backend=cpu", f"--image_size={SIZE}", f"--checkpoint_dir={ckpt_dir}",
                    f"--export_dir={export_dir}", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: --export_dir={export_dir} is not empty; pass "
                                                           "--overwrite")
    assert sorted(os.listdir(export_dir)) == before


def test_predict_errors(run, tmp_path):
    _, ckpt_dir, images = run
    proc = run_main("--mode=predict", "--backend=cpu", f"--image_size={SIZE}", f"--checkpoint_dir={ckpt_dir}",
                    f"--image={tmp_path}/missing.jpg", check=False)
    assert proc.returncode == 1 and "missing.jpg: no such file" in proc.stderr
    proc = run_main("--mode=predict", "--backend=cpu", f"--checkpoint_dir={tmp_path}", f"--image={images[0]}",
                    check=False)
    assert proc.returncode == 1 and "no checkpoint" in proc.stderr


def test_preprocessing_and_label_map_in_process(run, tmp_path):
    _, _, images = run
    config = preprocess_config(AugmentConfig(), zoo.get_recipe("alexnet").scaled(SIZE))
    batch = preprocess_files(images, config)
    assert tuple(batch.shape) == (2, SIZE, SIZE, 3)
    # Normalised with ImageNet mean/std: uniform random pixels land around 0 with unit-ish spread.
    assert -2.2 < float(np.min(batch)) < -1.5 and 2.0 < float(np.max(batch)) < 2.7

    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="notes.jpg: cannot decode it as an image"):
        preprocess_files([str(text)], config)

    partial = tmp_path / "label_map.txt"
    partial.write_text("0\tcat\n2\tfish\n")
    assert class_names(str(partial), 3) == ["cat", "", "fish"]
    assert class_names(None, 2) == ["", ""]
    with pytest.raises(ValueError, match="outside the model's 2 classes"):
        class_names(str(partial), 2)
