"""Evaluation transforms against torchvision's on real JPEGs: every (resize, crop, interpolation) of the zoo.

The reference is torchvision's v1 transforms on the PIL image torchvision's ImageFolder loads
(``Image.open(path).convert("RGB")``): ``Resize(resize, interpolation)`` (or ``Resize((r, r))`` for the
square mode), ``CenterCrop(crop)``. The photos are scikit-learn's two real photographs, cropped and
resized with PIL to many sizes and aspect ratios and saved as JPEG (quality 90).
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo
from datasets import preprocessing, resize
from datasets.preprocessing import PreprocessConfig

torch = pytest.importorskip("torch")

# (width, height): square, small, odd, portrait and landscape, 2:1, 3:1, 1600 px.
SIZES = [(300, 300), (333, 517), (500, 375), (640, 427), (1601, 733), (800, 400), (1200, 400), (401, 1203),
         (1600, 1200), (997, 1499)]


@pytest.fixture(scope="module")
def tvt():
    """torchvision.transforms (v1), imported through the stub that lets it load beside CPU torch."""
    from tools.torchvision_models import import_models

    try:
        import_models()
    except ImportError as e:  # pragma: no cover - depends on the environment
        pytest.skip(str(e))
    import torchvision.transforms as T

    return T


def _photo(index: int, size) -> Image.Image:
    """A crop of one of scikit-learn's photographs (427 x 640), resized with PIL to ``size`` (w, h)."""
    from sklearn.datasets import load_sample_images

    source = load_sample_images().images[index % 2]
    rng = np.random.default_rng(index)
    h, w = source.shape[:2]
    ch, cw = int(rng.integers(h // 2, h + 1)), int(rng.integers(w // 2, w + 1))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return Image.fromarray(source[y:y + ch, x:x + cw]).resize(size, Image.BICUBIC)


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    """Paths of real JPEGs of every size in SIZES (quality 90)."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, size in enumerate(SIZES):
        path = os.path.join(folder, f"photo_{size[0]}x{size[1]}.jpg")
        _photo(i, size).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def zoo_eval_settings():
    """Each distinct (resize, crop, interpolation) of the registered models, plus the ConvNeXt flag file's 232
    (--val_resize_size) and the Ascend recipe's square mode."""
    settings = set()
    for name in zoo.list_models(builtin_only=True):
        recipe = zoo.get_recipe(name)
        settings.add((recipe.eval_resize, recipe.input_size, recipe.interpolation, "shorter"))
    settings.add((232, 224, "bilinear", "shorter"))
    settings.add((256, 224, "bilinear", "square"))
    return sorted(settings)


SETTINGS = zoo_eval_settings()


def _reference(tvt, path: str, resize_size: int, crop: int, interpolation: str, mode: str) -> np.ndarray:
    from torchvision.transforms import InterpolationMode

    size = resize_size if mode == "shorter" else (resize_size, resize_size)
    transform = tvt.Compose([tvt.Resize(size, interpolation=InterpolationMode(interpolation)), tvt.CenterCrop(crop)])
    with open(path, "rb") as f:
        image = Image.open(f).convert("RGB")
    return np.asarray(transform(image))


def test_the_zoo_settings_cover_the_known_ones():
    assert {(256, 224, "bilinear", "shorter"), (256, 224, "bicubic", "shorter"), (236, 224, "bilinear", "shorter"),
            (342, 299, "bilinear", "shorter")} <= set(SETTINGS)


@pytest.mark.parametrize("resize_size,crop,interpolation,mode", SETTINGS)
def test_eval_image_equals_torchvision(tvt, jpegs, resize_size, crop, interpolation, mode):
    config = PreprocessConfig(image_size=crop, eval_resize=resize_size, interpolation=interpolation, eval_mode=mode)
    transform = tf.function(lambda encoded: preprocessing.eval_image(encoded, config),
                            input_signature=[tf.TensorSpec([], tf.string)])
    for path in jpegs:
        ours = transform(tf.io.read_file(path)).numpy().astype(int)
        ref = _reference(tvt, path, resize_size, crop, interpolation, mode).astype(int)
        assert ours.shape == ref.shape == (crop, crop, 3)
        diff = np.abs(ours - ref)
        # The bound is a mean of 0.5/255; the implementation is exact (Pillow 13, libjpeg-turbo).
        assert diff.mean() <= 0.5, f"{os.path.basename(path)}: mean |ours - torchvision| {diff.mean():.3f}"
        assert diff.max() == 0, (f"{os.path.basename(path)}: {np.mean(diff > 0):.4f} of the values differ, "
                                 f"by up to {diff.max()}")


def test_other_formats_and_grey_jpegs_equal_torchvision(tvt, tmp_path):
    config = PreprocessConfig(image_size=224, eval_resize=256)
    photo = _photo(3, (517, 389))
    cases = {"grey.jpg": photo.convert("L"), "photo.png": photo, "grey.png": photo.convert("L"),
             "palette.png": photo.convert("P"), "rgba.png": photo.convert("RGBA")}
    for name, image in cases.items():
        path = str(tmp_path / name)
        image.save(path, "JPEG" if name.endswith(".jpg") else "PNG")
        ours = preprocessing.eval_image(tf.io.read_file(path), config).numpy()
        np.testing.assert_array_equal(ours, _reference(tvt, path, 256, 224, "bilinear", "shorter"), err_msg=name)


def test_a_decoded_region_equals_the_whole_decode(jpegs):
    # The evaluation decodes only the region its filter taps read (with a margin): same pixels as PIL's decode.
    rng = np.random.default_rng(0)
    for path in jpegs[:6]:
        encoded = tf.io.read_file(path)
        whole = np.asarray(Image.open(path).convert("RGB"))
        h, w = whole.shape[:2]
        for _ in range(5):
            ch, cw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            region = preprocessing.decode_region(encoded, tf.constant([y, x, ch, cw])).numpy()
            np.testing.assert_array_equal(region, whole[y:y + ch, x:x + cw])


@pytest.mark.parametrize("method,pil", [("bilinear", Image.BILINEAR), ("bicubic", Image.BICUBIC)])
def test_resize_exact_equals_pillow_up_and_down(method, pil):
    # Down- and upscaling, either axis, both pass orders (Pillow 13 starts vertically when the height shrinks
    # more than twice as much as the width), tiny sizes.
    source = np.asarray(_photo(5, (301, 211)))
    for out_w, out_h in [(300, 211), (97, 50), (450, 190), (40, 400), (7, 3), (1, 1), (301, 20), (120, 211)]:
        expected = np.asarray(Image.fromarray(source).resize((out_w, out_h), pil))
        got = resize.resize_exact(tf.constant(source), out_h, out_w, method).numpy()
        np.testing.assert_array_equal(got, expected, err_msg=f"{out_w}x{out_h}")


def test_tensorflows_own_resize_is_not_torchvisions(tvt, jpegs):
    # Why the evaluation does not use tf.image.resize: without antialiasing it is far off PIL's
    # (over a grey level on average here), and TensorFlow's default JPEG decoder (fast IDCT) is ~1 grey level off PIL's.
    path = jpegs[3]
    whole = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    out_h, out_w, top, left = (int(v) for v in preprocessing.eval_geometry(whole.shape[0], whole.shape[1],
                                                                            PreprocessConfig()))
    plain = tf.image.resize(whole, [out_h, out_w], antialias=False)[top:top + 224, left:left + 224]
    ref = _reference(tvt, path, 256, 224, "bilinear", "shorter").astype(float)
    assert np.abs(np.round(plain.numpy()) - ref).mean() > 1.0
    with open(path, "rb") as f:
        pil = np.asarray(Image.open(io.BytesIO(f.read())).convert("RGB")).astype(float)
    assert np.abs(whole.numpy() - pil).mean() > 0.3


# -- tools/show_input.py --------------------------------------------------------------------------------

PLUGIN = '''
from registry import MODELS
from zoo.recipe import ModelRecipe

@MODELS.register("show_input_plugin", recipe=ModelRecipe(input_size=40, min_input_size=8, eval_resize=52,
                                                         interpolation="bicubic", num_classes=3))
def show_input_plugin(num_classes=3, **kwargs):
    raise NotImplementedError("only the recipe is used")
'''


def test_show_input_writes_the_pixels_of_the_pipeline_functions(jpegs, tmp_path):
    from tools import show_input

    paths = [jpegs[1], jpegs[4]]
    out = tmp_path / "eval"
    assert show_input.main(["--model=efficientnet_b0", "--split=eval", *paths, f"--out={out}"]) == 0
    config = PreprocessConfig.from_recipe(zoo.get_recipe("efficientnet_b0"))
    assert config.interpolation == "bicubic"
    for path in paths:
        written = np.asarray(Image.open(out / (os.path.splitext(os.path.basename(path))[0] + "_eval.png")))
        np.testing.assert_array_equal(written, preprocessing.eval_image(tf.io.read_file(path), config).numpy())
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size[0] > 2 * 224 and sheet.size[1] > 224

    out = tmp_path / "train"
    assert show_input.main(["--model=resnet18", "--split=train", "--repeats=2", "--seed=5",
                            "--color_jitter=0.4,0.4,0.4,0.1", paths[0], f"--out={out}"]) == 0
    config = PreprocessConfig.from_recipe(zoo.get_recipe("resnet18"), color_jitter=(0.4, 0.4, 0.4, 0.1))
    stem = os.path.splitext(os.path.basename(paths[0]))[0]
    for k in range(2):
        written = np.asarray(Image.open(out / f"{stem}_train_{k}.png"))
        expected = preprocessing.train_image(tf.io.read_file(paths[0]), tf.constant([5, k], tf.int64), config)
        np.testing.assert_array_equal(written, expected.numpy())


def test_show_input_takes_a_plugins_recipe_and_refuses_unknown_models(jpegs, tmp_path, capsys):
    from registry import MODELS
    from tools import show_input

    plugin = tmp_path / "show_input_plugin.py"
    plugin.write_text(PLUGIN)
    out = tmp_path / "plugin"
    try:
        assert show_input.main(["--model=show_input_plugin", f"--extra_modules={plugin}", jpegs[0],
                                f"--out={out}"]) == 0
    finally:
        MODELS.unregister("show_input_plugin")
    written = np.asarray(Image.open(out / (os.path.splitext(os.path.basename(jpegs[0]))[0] + "_eval.png")))
    config = PreprocessConfig(image_size=40, eval_resize=52, interpolation="bicubic")
    np.testing.assert_array_equal(written, preprocessing.eval_image(tf.io.read_file(jpegs[0]), config).numpy())
    assert show_input.main(["--model=no_such_model", jpegs[0], f"--out={out}"]) == 2
    assert "Unknown model 'no_such_model'" in capsys.readouterr().err


def test_show_input_runs_as_a_script(jpegs, tmp_path):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, os.path.join(root, "tools", "show_input.py"), "--model=inception_v3",
                             jpegs[2], f"--out={tmp_path}"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    written = np.asarray(Image.open(tmp_path / (os.path.splitext(os.path.basename(jpegs[2]))[0] + "_eval.png")))
    assert written.shape == (299, 299, 3)
    assert result.stdout.strip().splitlines()[-1].endswith("contact_sheet.png")
