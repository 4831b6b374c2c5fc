"""Preprocessing: shapes, dtypes, ranges, per-image flips, crop geometry, DCT-scaled decoding."""

import io

import numpy as np
import pytest
import tensorflow as tf
from datasets_testutil import photo, recipe
from PIL import Image

from datasets import pipeline, preprocessing
from datasets.preprocessing import PreprocessConfig


def encode(pixels: np.ndarray, fmt: str = "JPEG", quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


CONFIG = PreprocessConfig.from_recipe(recipe(64))


def test_config_follows_the_recipe_and_image_size():
    config = PreprocessConfig.from_recipe(recipe(112))
    assert config.image_size == 112
    assert config.eval_resize == 128  # 256 * 112 / 224
    assert config.mean == (0.485, 0.456, 0.406) and config.std == (0.229, 0.224, 0.225)
    assert config.area_range == (0.08, 1.0) and config.aspect_range == pytest.approx((0.75, 4 / 3))
    assert PreprocessConfig.from_recipe(recipe(112), random_flip=None).random_flip is True
    with pytest.raises(ValueError, match="eval_mode"):
        PreprocessConfig(eval_mode="bogus")
    with pytest.raises(ValueError, match="area_range"):
        PreprocessConfig(area_range=(0.0, 1.0))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_train_and_eval_shapes_dtypes_and_ranges(fmt):
    encoded = encode(photo(1, (90, 70)), fmt)
    for i in range(4):
        image = preprocessing.train_image(tf.constant(encoded), tf.constant([i, 7], tf.int64), CONFIG)
        assert image.shape == (64, 64, 3) and image.dtype == tf.uint8
        assert int(tf.reduce_max(image)) - int(tf.reduce_min(image)) > 30  # a real photo, not a blank
    image = preprocessing.eval_image(tf.constant(encoded), CONFIG)
    assert image.shape == (64, 64, 3) and image.dtype == tf.uint8
    normalized = preprocessing.normalize(image[None], CONFIG.mean, CONFIG.std)
    assert normalized.dtype == tf.float32 and normalized.shape == (1, 64, 64, 3)
    low = (0 - np.array(CONFIG.mean)) / np.array(CONFIG.std)
    high = (1 - np.array(CONFIG.mean)) / np.array(CONFIG.std)
    values = normalized.numpy().reshape(-1, 3)
    assert np.all(values >= low - 1e-5) and np.all(values <= high + 1e-5)


def test_grayscale_jpeg_becomes_three_channels():
    grey = photo(2)[..., 0]
    image = preprocessing.eval_image(tf.constant(encode(grey)), CONFIG)
    assert image.shape == (64, 64, 3)
    np.testing.assert_array_equal(image[..., 0], image[..., 1])


def test_normalize_matches_the_formula():
    images = np.random.default_rng(0).integers(0, 256, (2, 5, 5, 3), dtype=np.uint8)
    expected = (images / 255.0 - np.array(CONFIG.mean)) / np.array(CONFIG.std)
    got = preprocessing.normalize(tf.constant(images), CONFIG.mean, CONFIG.std).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert preprocessing.normalize(tf.constant(images), CONFIG.mean, CONFIG.std, tf.bfloat16).dtype == tf.bfloat16


def test_flip_is_decided_per_image_within_one_batch():
    # One asymmetric image, whole-image crops: each output is the image or its mirror.
    pixels = photo(3, (64, 64))
    config = PreprocessConfig.from_recipe(recipe(64), area_range=(1.0, 1.0), aspect_range=(1.0, 1.0))
    records = tf.data.Dataset.from_tensors({"encoded": tf.constant(encode(pixels, "PNG")), "label": 0}).repeat(32)
    images, _ = next(iter(pipeline.batches(records, training=True, batch_size=32, config=config, num_classes=1,
                                           options=pipeline.PipelineOptions(), seed=5, normalize=False)))
    images = images.numpy()
    same = [np.array_equal(img, pixels) for img in images]
    mirrored = [np.array_equal(img, pixels[:, ::-1]) for img in images]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 4 <= sum(mirrored) <= 28, f"{sum(mirrored)} of 32 flipped"


def test_no_flip_when_switched_off():
    pixels = photo(3, (64, 64))
    config = PreprocessConfig.from_recipe(recipe(64), area_range=(1.0, 1.0), aspect_range=(1.0, 1.0),
                                          random_flip=False)
    for i in range(8):
        image = preprocessing.train_image(tf.constant(encode(pixels, "PNG")), tf.constant([i, 1], tf.int64), config)
        np.testing.assert_array_equal(image.numpy(), pixels)


def test_augmentation_is_reproducible_from_the_image_seed():
    encoded = tf.constant(encode(photo(4, (120, 90))))
    a = preprocessing.train_image(encoded, tf.constant([3, 4], tf.int64), CONFIG)
    b = preprocessing.train_image(encoded, tf.constant([3, 4], tf.int64), CONFIG)
    c = preprocessing.train_image(encoded, tf.constant([5, 6], tf.int64), CONFIG)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("mode", ["shorter", "square"])
def test_eval_geometry_matches_resize_then_center_crop(mode):
    # torchvision: resize (shorter side, or square), then central crop; PIL's resize, pixel for pixel.
    pixels = photo(5, (320, 240))
    config = PreprocessConfig.from_recipe(recipe(112), eval_mode=mode)
    got = preprocessing.eval_image(tf.constant(encode(pixels, "PNG")), config).numpy()
    resize = config.eval_resize  # 128
    size = (resize * 320 // 240, resize) if mode == "shorter" else (resize, resize)
    resized = np.asarray(Image.fromarray(pixels).resize(size, Image.BILINEAR))
    top, left = (size[1] - 112) // 2, (size[0] - 112) // 2
    np.testing.assert_array_equal(got, resized[top:top + 112, left:left + 112])


def test_eval_geometry_is_torchvisions():
    config = PreprocessConfig(image_size=224, eval_resize=256)
    # The longer side is truncated (int(256 * 500 / 375) = 341), the offset rounds half to even (58.5 -> 58).
    assert [int(v) for v in preprocessing.eval_geometry(375, 500, config)] == [256, 341, 16, 58]
    assert [int(v) for v in preprocessing.eval_geometry(500, 375, config)] == [341, 256, 58, 16]
    assert [int(v) for v in preprocessing.eval_geometry(333, 333, config)] == [256, 256, 16, 16]
    square = PreprocessConfig(eval_mode="square")
    assert [int(v) for v in preprocessing.eval_geometry(375, 500, square)] == [256, 256, 16, 16]


def test_dct_scaled_decode_is_close_to_full_decode():
    pixels = photo(6, (512, 384))
    encoded = tf.constant(encode(pixels, quality=95))
    window = tf.constant([40, 60, 300, 400])
    for out_size in (64, 100):  # ratios 4 and 2
        scaled = preprocessing.decode_crop(encoded, window, out_size, dct_scaling=True)
        full = preprocessing.decode_crop(encoded, window, out_size, dct_scaling=False)
        assert full.shape == (300, 400, 3)
        assert scaled.shape[0] < 300 and min(scaled.shape[:2]) >= out_size
        a = tf.image.resize(scaled, [out_size, out_size], antialias=True)
        b = tf.image.resize(full, [out_size, out_size], antialias=True)
        assert float(tf.reduce_mean(tf.abs(a - b))) < 4.0
    small = preprocessing.decode_crop(encoded, tf.constant([0, 0, 100, 100]), 64, dct_scaling=True)
    assert small.shape == (100, 100, 3)  # not twice the output: full scale


def test_bounding_boxes_steer_the_crop():
    # A box in the top-left corner must be at least 10% covered by every crop.
    pixels = np.zeros((200, 200, 3), np.uint8)
    pixels[:20, :20] = 255
    encoded = tf.constant(encode(pixels, "PNG"))
    config = PreprocessConfig.from_recipe(recipe(64), area_range=(0.08, 0.1), random_flip=False,
                                          min_object_covered=0.5, crop_sampler="distorted_bbox")
    boxes = tf.constant([[0.0, 0.0, 0.1, 0.1]])
    hits = 0
    for i in range(10):
        image = preprocessing.train_image(encoded, tf.constant([i, 0], tf.int64), config, boxes)
        hits += int(tf.reduce_max(image)) > 200
    assert hits == 10


def test_cmyk_jpeg_becomes_rgb():
    rgb = Image.fromarray(photo(7, (120, 90)))
    cmyk = io.BytesIO()
    rgb.convert("CMYK").save(cmyk, "JPEG", quality=95)
    got = preprocessing.eval_image(tf.constant(cmyk.getvalue()), CONFIG).numpy().astype(float)
    expected = preprocessing.eval_image(tf.constant(encode(np.asarray(rgb), quality=95)), CONFIG).numpy()
    assert got.shape == (64, 64, 3)
    assert np.abs(got - expected).mean() < 8.0  # the same picture, not inverted or garbled


# -- augmentation, crop-size and interpolation flags (main.py's "augmentation" section) ----------------

def _resolved(*args):
    """The typed configuration main.py resolves from these arguments."""
    import main

    return main.resolve_command_line(list(args))[0].config


def test_augmentation_settings_reach_the_preprocessing_config():
    default = PreprocessConfig.from_recipe(recipe(64), **pipeline.preprocess_overrides(_resolved().augment))
    # Off by default: the recipe's behaviour is unchanged.
    assert (default.auto_augment, default.random_erase, default.mixup_alpha, default.cutmix_alpha) == (
        "none", 0.0, 0.0, 0.0)
    assert default.interpolation == recipe(64).interpolation and default.eval_resize == recipe(64).eval_resize
    augment = _resolved("--auto_augment=ra", "--ra_num_ops=3", "--ra_magnitude=12", "--random_erase=0.25",
                        "--random_erase_value=random", "--mixup_alpha=0.2", "--cutmix_alpha=1.0",
                        "--interpolation=bicubic", "--val_resize_size=80").augment
    config = PreprocessConfig.from_recipe(recipe(64), **pipeline.preprocess_overrides(augment))
    assert (config.auto_augment, config.ra_num_ops, config.ra_magnitude) == ("ra", 3, 12)
    assert (config.random_erase, config.random_erase_value) == (0.25, "random")
    assert (config.mixup_alpha, config.cutmix_alpha, config.mixes_batches) == (0.2, 1.0, True)
    assert (config.interpolation, config.eval_resize, config.image_size) == ("bicubic", 80, 64)


def test_crop_sizes_set_the_input_size_and_conflicts_are_one_line_errors():
    assert _resolved("--train_crop_size=96").model.image_size == 96  # over the recipe's 224: the crop gives it
    assert _resolved("--val_crop_size=80", "--image_size=80").model.image_size == 80
    from run_config import SettingError

    # FixRes: the evaluation crop may differ from the training crop (the evaluation model is built at it).
    fixres = _resolved("--train_crop_size=64", "--val_crop_size=96")
    assert (fixres.model.image_size, fixres.augment.val_crop_size) == (64, 96)
    with pytest.raises(SettingError, match="differs from --image_size=96") as error:
        _resolved("--train_crop_size=64", "--image_size=96")  # one layer, two training sizes
    assert "\n" not in str(error.value)
    # A crop size the model was not built for (e.g. from a recipe's defaults) is refused by the config.
    with pytest.raises(ValueError, match="--train_crop_size=96 differs from the model's input size 64"):
        PreprocessConfig.from_recipe(recipe(64), train_crop_size=96)
    assert PreprocessConfig.from_recipe(recipe(64), train_crop_size=64, val_crop_size=64).image_size == 64
    with pytest.raises(ValueError, match="--val_resize_size=60 is smaller than the crop 64"):
        PreprocessConfig.from_recipe(recipe(64), eval_resize=60)


def test_val_resize_and_bicubic_change_the_evaluation_crop():
    encoded = tf.constant(encode(photo(6, (120, 90))))
    plain = preprocessing.eval_image(encoded, CONFIG)
    wider = preprocessing.eval_image(encoded, PreprocessConfig.from_recipe(recipe(64), eval_resize=64))
    bicubic = preprocessing.eval_image(encoded, PreprocessConfig.from_recipe(recipe(64), interpolation="bicubic"))
    assert wider.shape == bicubic.shape == (64, 64, 3)
    assert not np.array_equal(plain, wider) and not np.array_equal(plain, bicubic)
    # eval_resize == crop: the central crop is the whole shorter side.
    geometry = preprocessing.eval_geometry(90, 120, PreprocessConfig.from_recipe(recipe(64), eval_resize=64))
    assert [int(v) for v in geometry] == [64, 85, 0, 10]


def test_new_transform_settings_are_validated_with_one_line_errors():
    assert PreprocessConfig().crop_sampler == "torchvision" and PreprocessConfig().train_resize == "fast"
    assert PreprocessConfig(color_jitter=[0.4, 0.4, 0.4, 0]).color_jitter == (0.4, 0.4, 0.4, 0.0)
    for bad, message in [(dict(crop_sampler="random"), "crop_sampler must be one of"),
                         (dict(train_resize="slow"), "train_resize must be one of"),
                         (dict(train_interpolation="nearest"), "train_interpolation must be None"),
                         (dict(color_jitter=(0.4, 0.4, 0.4)), "color_jitter takes 4 strengths"),
                         (dict(color_jitter=(0.4, 0.4, 0.4, 0.7)), "hue must lie in"),
                         (dict(distort_color="slim"), "distort_color must be one of"),
                         (dict(lighting_std=float("nan")), "lighting_std must be >= 0"),
                         (dict(aspect_range=(2.0, 1.0)), "aspect_range must satisfy"),
                         (dict(max_attempts=0), "max_attempts must be >= 1"),
                         (dict(auto_augment="rand-m9-z1"), "unknown section 'z1'")]:
        with pytest.raises(ValueError, match=message) as error:
            PreprocessConfig(**bad)
        assert "\n" not in str(error.value)
