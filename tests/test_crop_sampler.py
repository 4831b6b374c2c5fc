"""The training crop sampler against torchvision's ``RandomResizedCrop.get_params``.

Two-sample Kolmogorov-Smirnov tests (20,000 draws each, fixed seeds) on the area fraction, the log
aspect ratio and the crop centre, for a square, a 4:3 and a 3:1 image (the last one often falls back
to torchvision's central crop); the fallback itself is compared exactly; and the exact training path
equals torchvision's ``resized_crop`` of the same window.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from datasets_testutil import photo
from PIL import Image

from datasets import crop, preprocessing
from datasets.preprocessing import PreprocessConfig

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

DRAWS = 20_000
SIZES = [(500, 500), (375, 500), (300, 900)]  # (height, width): square, 4:3, 3:1


@pytest.fixture(scope="module")
def tv():
    """torchvision.transforms (v1) and its functional module, through the import stub."""
    from tools.torchvision_models import import_models

    try:
        import_models()
    except ImportError as e:  # pragma: no cover - depends on the environment
        pytest.skip(str(e))
    import torchvision.transforms as T
    import torchvision.transforms.functional as F

    return T, F


def ours(height: int, width: int, n: int = DRAWS, seed: int = 0, **kwargs) -> np.ndarray:
    """n windows [top, left, h, w] from our sampler, one stateless seed per draw."""
    seeds = tf.random.experimental.stateless_split(tf.constant([seed, 17], tf.int64), n)
    fn = tf.function(lambda s: tf.map_fn(lambda one: crop.torchvision_window(height, width, one, **kwargs), s,
                                         fn_output_signature=tf.int32, parallel_iterations=64))
    return fn(seeds).numpy()


def theirs(tv, height: int, width: int, n: int = DRAWS, seed: int = 0, **kwargs) -> np.ndarray:
    T, _ = tv
    torch.manual_seed(seed)
    image = torch.zeros(1, height, width)
    scale, ratio = kwargs.get("scale", (0.08, 1.0)), kwargs.get("ratio", (3 / 4, 4 / 3))
    return np.array([T.RandomResizedCrop.get_params(image, scale, ratio) for _ in range(n)])


def features(windows: np.ndarray, height: int, width: int):
    top, left, h, w = (windows[:, i].astype(float) for i in range(4))
    return {"area fraction": h * w / (height * width), "log aspect ratio": np.log(w / h),
            "centre y": (top + h / 2) / height, "centre x": (left + w / 2) / width}


@pytest.mark.parametrize("height,width", SIZES)
def test_the_distribution_is_torchvisions(tv, height, width):
    a, b = ours(height, width), theirs(tv, height, width)
    for name, values in features(a, height, width).items():
        reference = features(b, height, width)[name]
        result = stats.ks_2samp(values, reference)
        assert result.pvalue > 0.01, (f"{height}x{width} {name}: KS statistic {result.statistic:.4f}, "
                                      f"p {result.pvalue:.2g}")
    # Every window lies inside the image and is non-empty.
    top, left, h, w = a.T
    assert (h > 0).all() and (w > 0).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + h <= height).all() and (left + w <= width).all()


def test_a_different_distribution_is_detected(tv):
    # The test has power: TensorFlow's box sampler (uniform aspect, other fallback) is told apart at 3:1.
    height, width = 300, 900
    seeds = tf.random.experimental.stateless_split(tf.constant([1, 2], tf.int64), 5000)
    bbox = tf.function(lambda s: tf.map_fn(lambda one: crop.distorted_bbox_window(height, width, one), s,
                                           fn_output_signature=tf.int32))(seeds).numpy()
    reference = features(theirs(tv, height, width, n=5000), height, width)
    p_values = {name: stats.ks_2samp(values, reference[name]).pvalue
                for name, values in features(bbox, height, width).items()}
    assert min(p_values.values()) < 1e-6, p_values


@pytest.mark.parametrize("height,width", [(300, 900), (900, 300), (400, 401)])
def test_the_fallback_is_torchvisions_central_crop(tv, height, width):
    # Areas of 90..100% never fit a 3:1 image within the ratio range: every draw falls back to the central
    # crop clamped to the ratio range; a square-ish image within the range falls back to the whole image.
    kwargs = dict(scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3)) if height != 400 else dict(scale=(1.0, 1.0), ratio=(2.0, 3.0))
    expected = theirs(tv, height, width, n=1, **kwargs)[0]
    for window in ours(height, width, n=5, **kwargs):
        np.testing.assert_array_equal(window, expected)
    if (height, width) == (300, 900):
        np.testing.assert_array_equal(expected, [0, 250, 300, 400])


def test_the_exact_training_path_is_torchvisions_resized_crop(tv):
    # train_resize="exact": the crop window of the image's seed, then PIL's resize, as F.resized_crop does.
    _, F = tv
    from torchvision.transforms import InterpolationMode

    buf = io.BytesIO()
    Image.fromarray(photo(11, (640, 427))).save(buf, "JPEG", quality=90)
    encoded = buf.getvalue()
    pil = Image.open(io.BytesIO(encoded)).convert("RGB")
    for method in ("bilinear", "bicubic"):
        config = PreprocessConfig(image_size=96, eval_resize=110, train_resize="exact", random_flip=False,
                                  interpolation=method)
        for i in range(3):
            seed = tf.constant([i, 5], tf.int64)
            got = preprocessing.train_image(tf.constant(encoded), seed, config).numpy()
            crop_seed = tf.random.experimental.stateless_split(seed, 2)[0]
            top, left, h, w = (int(v) for v in crop.torchvision_window(427, 640, crop_seed))
            expected = np.asarray(F.resized_crop(pil, top, left, h, w, [96, 96], InterpolationMode(method)))
            np.testing.assert_array_equal(got, expected)


def test_random_train_interpolation_uses_both_filters():
    buf = io.BytesIO()
    Image.fromarray(photo(12, (320, 240))).save(buf, "JPEG", quality=90)
    encoded = tf.constant(buf.getvalue())
    configs = {name: PreprocessConfig(image_size=64, eval_resize=73, random_flip=False, train_interpolation=name)
               for name in ("bilinear", "bicubic", "random")}
    picks = []
    for i in range(24):
        seed = tf.constant([i, 9], tf.int64)
        image = {name: preprocessing.train_image(encoded, seed, c).numpy() for name, c in configs.items()}
        assert not np.array_equal(image["bilinear"], image["bicubic"])
        if np.array_equal(image["random"], image["bicubic"]):
            picks.append("bicubic")
        else:
            np.testing.assert_array_equal(image["random"], image["bilinear"])
            picks.append("bilinear")
    assert 4 <= picks.count("bicubic") <= 20, picks
