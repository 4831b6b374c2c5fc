"""--mode=export in every format from a real (bfloat16-trained) run, each format's numbers against the
SavedModel's on real photos, the int8 agreement the log reports, the export directory's refusal and
--overwrite, and for every zoo model the .keras round trip and the TFLite/ONNX conversions."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_main
from PIL import Image

import zoo
from datasets import preprocessing
from evaluation.predictor import preprocess_config
from export import keras_file, onnx, tflite
from export.tflite import EdgePaddedMaxPool, TFLiteModel
from run_config import AugmentConfig
from zoo.layers import TorchPool2D

MODEL, SIZE = "resnet18", 32
ALL = "saved_model,tflite,tflite_dynamic,tflite_int8,onnx,keras"


def relative(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """ResNet-18 at 32 px trained 20 steps in mixed bfloat16 on the demo digits (image folders with a
    validation split and a label map)."""
    tmp = tmp_path_factory.mktemp("export")
    log_dir = tmp / "run"
    run_main(f"--model={MODEL}", "--backend=cpu", "--dataset=demo", f"--demo_cache_dir={tmp / 'demo'}",
             f"--image_size={SIZE}", "--batch_size=16", "--max_train_steps=20", "--optimizer=adam", "--lr=0.001",
             "--iterations_per_loop=10", "--save_summary_steps=10", "--seed=1", "--precision=bf16",
             f"--log_dir={log_dir}")
    saved = json.loads((log_dir / "config.json").read_text())
    assert saved["config"]["precision"]["precision"] == "bf16"
    return log_dir


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    export_dir = tmp_path_factory.mktemp("formats") / "model"
    proc = run_main("--mode=export", "--backend=cpu", f"--log_dir={run}", f"--export_dir={export_dir}",
                    f"--export_formats={ALL}", "--calibration_images=64", "--check_images=64")
    return export_dir, proc.stdout


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """JPEGs of scikit-learn's two sample photos at several sizes and aspect ratios."""
    from sklearn.datasets import load_sample_images

    tmp = tmp_path_factory.mktemp("photos")
    paths = []
    for i, image in enumerate(load_sample_images().images):
        for size in [(160, 120), (90, 140), (48, 48)]:
            path = tmp / f"photo{i}_{size[0]}x{size[1]}.jpg"
            Image.fromarray(image).resize(size, Image.BILINEAR).save(path, quality=90)
            paths.append(str(path))
    return paths


def test_every_format_agrees_with_the_saved_model(exported, photos):
    export_dir, stdout = exported
    assert sorted(n for n in os.listdir(export_dir) if not os.path.isdir(export_dir / n)) == sorted(
        ["saved_model.pb", "fingerprint.pb", "model.tflite", "model_dynamic.tflite", "model_int8.tflite",
         "model.onnx", "model.keras", "serving_config.json", "label_map.txt"])
    served = tf.saved_model.load(str(export_dir))
    assert sorted(served.signatures) == ["serving_default", "serving_images", "serving_uint8"]
    # Exported in float32 although the run trained in mixed bfloat16.
    reader = tf.train.load_checkpoint(str(export_dir / "variables" / "variables"))
    dtypes = {dtype for name, dtype in reader.get_variable_to_dtype_map().items() if "VARIABLE_VALUE" in name}
    assert dtypes == {tf.float32}

    encoded = [open(p, "rb").read() for p in photos]
    out = served.signatures["serving_default"](image_bytes=tf.constant(encoded))
    config = preprocess_config(AugmentConfig(), zoo.get_recipe(MODEL).scaled(SIZE))
    crops = tf.stack([preprocessing.eval_image(tf.constant(e), config) for e in encoded])
    normalised = preprocessing.normalize_for(crops, config).numpy()
    by_uint8 = served.signatures["serving_uint8"](images=crops)
    by_float = served.signatures["serving_images"](images=tf.constant(normalised))
    logits = out["logits"].numpy()
    assert relative(by_uint8["logits"], logits) < 1e-6 and relative(by_float["logits"], logits) < 1e-6
    names = [line.split("\t")[1] for line in (export_dir / "label_map.txt").read_text().splitlines()]
    assert [[n.decode() for n in row] for row in out["top_k_names"].numpy()] == [
        [names[c] for c in row] for row in out["top_k_classes"].numpy()]

    lite = TFLiteModel(str(export_dir / "model.tflite"))(normalised)
    assert relative(lite["logits"], logits) < 1e-4
    assert relative(lite["probabilities"], out["probabilities"]) < 1e-4
    ort = onnx.OnnxModel(str(export_dir / "model.onnx"))(normalised)
    assert relative(ort["logits"], logits) < 1e-4
    assert relative(ort["probabilities"], out["probabilities"]) < 1e-4
    reloaded = keras_file.load_keras_model(str(export_dir / "model.keras"))
    assert relative(reloaded(normalised, training=False), logits) < 1e-5
    for quantised in ("model_dynamic.tflite", "model_int8.tflite"):
        probs = TFLiteModel(str(export_dir / quantised))(normalised)["probabilities"]
        assert probs.shape == logits.shape and np.allclose(probs.sum(axis=1), 1.0, atol=0.02)
    assert TFLiteModel(str(export_dir / "model_int8.tflite")).input_dtype == np.int8

    # The log and serving_config.json report every format's check on the validation images.
    serving = json.loads((export_dir / "serving_config.json").read_text())
    assert serving["checked_on"] == "64 images of the validation split" and serving["precision"] == "float32"
    assert serving["checks"]["keras"]["max_relative_difference"] == 0.0
    for fmt in ("tflite", "onnx"):
        assert serving["checks"][fmt]["max_relative_difference"] < 1e-4
        assert serving["checks"][fmt]["top1_agreement"] == 64
    line = re.search(r"^tflite_int8: model_int8\.tflite; top-1 agrees with the float32 model on (\d+)/64 images "
                     r"\(([\d.]+)%\)", stdout, re.M)
    assert line, stdout[-3000:]
    agree = int(line.group(1))
    assert agree == serving["checks"]["tflite_int8"]["top1_agreement"]
    assert agree >= 48, f"int8 agrees with float32 on only {agree}/64 validation digits"
    assert "tflite_int8: calibrating on 64 images of the train split" in stdout


def test_export_dir_is_refused_unless_overwrite(run, tmp_path):
    target = tmp_path / "served"
    target.mkdir()
    (target / "old.txt").write_text("an earlier export")
    common = ["--mode=export", "--backend=cpu", f"--log_dir={run}", f"--export_dir={target}"]
    proc = run_main(*common, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: --export_dir={target} is not empty; pass --overwrite to replace its contents, or a new directory "
        "(nothing was written).")
    assert os.listdir(target) == ["old.txt"]
    run_main(*common, "--overwrite")
    assert "old.txt" not in os.listdir(target) and (target / "saved_model.pb").is_file()
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]
    # --overwrite never replaces the run's own directory.
    proc = run_main("--mode=export", "--backend=cpu", f"--log_dir={run}", f"--export_dir={run}", "--overwrite",
                    check=False)
    assert proc.returncode == 1 and "holds the checkpoint being exported" in proc.stderr.strip().splitlines()[-1]
    assert (run / "config.json").is_file()


@pytest.mark.parametrize("size,pool,stride,padding,ceil", [
    (9, 3, 2, 1, False), (8, 3, 2, 1, False), (8, 3, 2, 1, True), (7, 3, 2, 0, True), (10, 2, 2, 1, True),
    (6, 5, 2, 2, True), (1, 3, 2, 1, False)])
def test_edge_padded_max_pool_is_torch_max_pool(size, pool, stride, padding, ceil):
    """The int8-friendly padding gives the same maxima as TorchPool2D's lowest-float padding."""
    x = tf.random.stateless_normal((2, size, size + 1, 4), seed=(size, pool))
    torch_pool = TorchPool2D("max", pool, stride, padding, ceil)
    edge = EdgePaddedMaxPool("max", pool, stride, padding, ceil)
    assert np.array_equal(edge(x).numpy(), torch_pool(x).numpy())
    negative = -tf.abs(x) - 1.0  # all below zero: a zero padding would win, the edge copies do not
    assert np.array_equal(edge(negative).numpy(), torch_pool(negative).numpy())


SIZES = {"alexnet": 63, "alexnet_modelzoo": 63, "inception_v3": 75}
# In the default run (the rest are marked slow): every custom layer of the zoo once for .keras (AlexNet's
# adaptive pooling, ResNet's padded pooling, the depthwise initializer and hardswish, stochastic depth, layer
# scale, ViT's token, embedding and attention initializer); the grouped convolutions' fix of the ONNX converter
# (ResNeXt). The run above covers ResNet-18 in every format; the Erfc fix (exact GELU: ConvNeXt) and every other
# model in every format run under make test-slow.
KERAS_FAST = ("alexnet", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "vit_b_16")
TFLITE_FAST = ()  # the run above converts ResNet-18 to every TFLite variant
ONNX_FAST = ("mobilenet_v3_small", "resnext50_32x4d")  # ConvNeXt's Erfc fix: make test-slow


def _zoo_params(fast):
    return [pytest.param(m, marks=[] if m in fast else [pytest.mark.slow]) for m in zoo.list_models(builtin_only=True)]


def _model(name):
    tf.keras.utils.set_random_seed(7)
    size = SIZES.get(name, 32)
    model = zoo.inference_model(zoo.create_model(name, num_classes=7, image_size=size))
    rng = np.random.default_rng(1)
    for weight in model.trainable_weights:  # zero-initialised ones (ViT's head, class token): random, so
        value = weight.numpy()               # that the logits are not all zero
        if not value.any():
            weight.assign(rng.normal(0.0, 0.02, value.shape).astype(value.dtype))
    images = np.random.default_rng(0).standard_normal((3, size, size, 3)).astype(np.float32)
    return model, size, images


@pytest.mark.parametrize("name", _zoo_params(KERAS_FAST))
def test_keras_file_round_trip(name, tmp_path):
    model, _, images = _model(name)
    path = str(tmp_path / "model.keras")
    keras_file.save_keras_model(model, path)
    loaded = keras_file.load_keras_model(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert np.array_equal(loaded(images, training=False).numpy(), model(images, training=False).numpy())


@pytest.mark.parametrize("name", _zoo_params(TFLITE_FAST))
def test_tflite_reproduces_every_zoo_model(name):
    model, size, images = _model(name)
    reference = model(images, training=False).numpy()
    assert relative(TFLiteModel(tflite.convert(model, size))(images)["logits"], reference) < 1e-4
    calibration = np.random.default_rng(1).standard_normal((4, 1, size, size, 3)).astype(np.float32)
    int8 = TFLiteModel(tflite.convert(model, size, "tflite_int8", representative=lambda: iter(calibration)))
    assert int8.input_dtype == np.int8 and int8(images)["logits"].shape == reference.shape


@pytest.mark.parametrize("name", _zoo_params(ONNX_FAST))
def test_onnx_reproduces_every_zoo_model(name):
    model, size, images = _model(name)
    needed, available = onnx.memory_needed(model), onnx.available_memory()
    if available is not None and available < needed:  # VGG: over 30 GB (docs/evaluation.md, "TFLite and ONNX")
        pytest.skip(f"tf2onnx would need about {needed / 2**30:.0f} GB here, {available / 2**30:.0f} GB available")
    reference = model(images, training=False).numpy()
    assert relative(onnx.OnnxModel(onnx.convert(model, size))(images)["logits"], reference) < 1e-4
