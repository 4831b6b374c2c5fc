"""Colour augmentations against their references: torchvision's ColorJitter (ops on uint8 tensors and its
random order and factors), AlexNet's PCA lighting as fb.resnet.torch writes it, and TF-slim Inception's
``distort_color`` orderings; then the settings in the training pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from datasets_testutil import photo, recipe

from datasets import color, image_ops, preprocessing
from datasets.preprocessing import PreprocessConfig

IMAGE = np.ascontiguousarray(photo(21, (53, 41)))  # a real photo crop, uint8 RGB


@pytest.fixture(scope="module")
def tv():
    """torch, torchvision.transforms and its functional module (v1), through the import stub."""
    torch = pytest.importorskip("torch")
    from tools.torchvision_models import import_models

    try:
        import_models()
    except ImportError as e:  # pragma: no cover - depends on the environment
        pytest.skip(str(e))
    import torchvision.transforms as T
    import torchvision.transforms.functional as F

    return torch, T, F


def _chw(torch, image: np.ndarray):
    return torch.from_numpy(image.copy()).permute(2, 0, 1).contiguous()


def _close(ours: np.ndarray, ref: np.ndarray, fraction: float = 0.01) -> None:
    """Equal up to float32 rounding: at most ``fraction`` of the values off, and by one grey level."""
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert diff.max() <= 1, f"max difference {diff.max()}"
    assert np.mean(diff > 0) <= fraction, f"{np.mean(diff > 0):.4f} of the values differ"


# -- ColorJitter ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,torch_name,factor", [
    ("brightness", "adjust_brightness", 0.6), ("brightness", "adjust_brightness", 1.4),
    ("contrast", "adjust_contrast", 0.6), ("contrast", "adjust_contrast", 1.4),
    ("color", "adjust_saturation", 0.6), ("color", "adjust_saturation", 1.4),
    ("hue", "adjust_hue", -0.5), ("hue", "adjust_hue", -0.27), ("hue", "adjust_hue", 0.1), ("hue", "adjust_hue", 0.5),
])
def test_jitter_ops_equal_torchvisions(tv, name, torch_name, factor):
    torch, _, F = tv
    ours = getattr(image_ops, name)(tf.constant(IMAGE), factor).numpy()
    ref = getattr(F, torch_name)(_chw(torch, IMAGE), factor).permute(1, 2, 0).numpy()
    assert ours.dtype == np.uint8 and ours.shape == IMAGE.shape
    _close(ours, ref, fraction=0.002)
    assert not np.array_equal(ours, IMAGE)


def test_hue_zero_keeps_the_image_up_to_the_uint8_conversion():
    out = image_ops.hue(tf.constant(IMAGE), 0.0).numpy()
    assert np.abs(out.astype(int) - IMAGE).max() <= 1


def test_jitter_with_fixed_order_and_factors_equals_torchvisions_sequence(tv):
    torch, _, F = tv
    fns = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
    # ColorJitter draws float32 factors and passes them on as Python floats: the same values here.
    factors = [float(np.float32(f)) for f in (1.3, 0.7, 1.5, -0.12)]
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        plan = color.JitterPlan(tf.constant(order, tf.int32), tf.constant(factors, tf.float32))
        ours = color.apply_jitter_plan(tf.constant(IMAGE), plan).numpy()
        ref = _chw(torch, IMAGE)
        for index in order:
            ref = fns[index](ref, factors[index])
        _close(ours, ref.permute(1, 2, 0).numpy(), fraction=0.01)


def test_jitter_draws_are_torchvisions(tv):
    # ColorJitter.get_params: a uniform permutation (24 orders) and uniform factors in the configured ranges.
    torch, T, _ = tv
    stats = pytest.importorskip("scipy.stats")
    strengths = (0.4, 0.3, 0.2, 0.1)
    n = 4000
    seeds = tf.random.experimental.stateless_split(tf.constant([3, 4], tf.int64), n)
    plans = tf.function(lambda s: tf.map_fn(lambda one: color.jitter_plan(one, *strengths), s,
                                            fn_output_signature=color.JitterPlan(tf.int32, tf.float32)))(seeds)
    orders, factors = plans.order.numpy(), plans.factors.numpy()
    torch.manual_seed(0)
    jitter = T.ColorJitter(*strengths)
    draws = [jitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) for _ in range(n)]
    ref_factors = np.array([d[1:] for d in draws])
    for i in range(4):
        assert stats.ks_2samp(factors[:, i], ref_factors[:, i]).pvalue > 0.01, i
    assert factors[:, 0].min() >= 0.6 and factors[:, 0].max() <= 1.4
    assert factors[:, 3].min() >= -0.1 and factors[:, 3].max() <= 0.1
    counts = np.unique([tuple(o) for o in orders], axis=0, return_counts=True)[1]
    assert len(counts) == 24 and stats.chisquare(counts).pvalue > 0.01
    ref_counts = np.unique([tuple(d[0].tolist()) for d in draws], axis=0, return_counts=True)[1]
    assert len(ref_counts) == 24
    assert stats.chi2_contingency(np.stack([counts, ref_counts])).pvalue > 0.01


def test_color_jitter_skips_the_ops_at_strength_zero():
    seed = tf.constant([7, 7], tf.int64)
    out = color.color_jitter(tf.constant(IMAGE), seed, brightness=0.4).numpy()
    factor = float(color.jitter_plan(seed, 0.4).factors[0])
    np.testing.assert_array_equal(out, image_ops.brightness(tf.constant(IMAGE), factor).numpy())
    np.testing.assert_array_equal(color.color_jitter(tf.constant(IMAGE), seed).numpy(), IMAGE)
    with pytest.raises(ValueError, match="hue"):
        color.check_jitter((0.4, 0.4, 0.4, 0.6))
    with pytest.raises(ValueError, match="brightness"):
        PreprocessConfig(color_jitter=(-0.1, 0.0, 0.0, 0.0))


# -- PCA lighting ---------------------------------------------------------------------------------------

def _fb_resnet_lighting(torch, image01, alpha):
    """fb.resnet.torch's Lighting, written in torch as the Lua is: eigvec:clone():cmul(alpha):cmul(eigval):sum(2)."""
    eigval = torch.tensor(color.IMAGENET_EIGVAL)
    eigvec = torch.tensor(color.IMAGENET_EIGVEC)
    rgb = eigvec.clone().mul(alpha.view(1, 3).expand(3, 3)).mul(eigval.view(1, 3).expand(3, 3)).sum(1)
    out = image01.clone()
    for i in range(3):
        out[i].add_(rgb[i])
    return out


def test_lighting_equals_fb_resnet_torch_for_fixed_alphas(tv):
    torch = tv[0]
    for alpha in ([0.1, -0.05, 0.2], [-0.3, 0.25, -0.01], [1.5, 0.0, 0.0]):
        offset = color.lighting_offset(tf.constant(alpha)).numpy()
        image01 = _chw(torch, IMAGE).float() / 255.0
        ref = _fb_resnet_lighting(torch, image01, torch.tensor(alpha)).permute(1, 2, 0).numpy()
        np.testing.assert_allclose(IMAGE / 255.0 + offset, ref, atol=1e-6)
        # On uint8: rounded to the nearest grey level where the reference stays within 0..1.
        out = tf.cast(tf.clip_by_value(tf.round(tf.cast(IMAGE, tf.float32) + offset * 255.0), 0, 255), tf.uint8)
        inside = (ref >= 0) & (ref <= 1)
        assert np.abs(out.numpy()[inside] / 255.0 - ref[inside]).max() <= 0.5 / 255 + 1e-6


def test_lighting_draws_alpha_from_a_normal_distribution():
    stats = pytest.importorskip("scipy.stats")
    grey = tf.fill([2, 2, 3], tf.constant(128, tf.uint8))
    seeds = tf.random.experimental.stateless_split(tf.constant([0, 9], tf.int64), 3000)
    alphas = tf.function(lambda: tf.map_fn(lambda s: color.lighting_alpha(s, 0.1), seeds,
                                           fn_output_signature=tf.float32))().numpy()
    assert stats.kstest(alphas.ravel(), "norm", args=(0.0, 0.1)).pvalue > 0.01  # the three weights pooled
    assert abs(np.corrcoef(alphas.T)[0, 1]) < 0.06  # drawn independently
    # lighting() adds exactly the offset of its alpha (x 255, rounded).
    seed = seeds[0]
    offset = color.lighting_offset(color.lighting_alpha(seed, 0.1)).numpy() * 255.0
    np.testing.assert_array_equal(color.lighting(grey, seed, 0.1).numpy()[0, 0], np.round(128 + offset))


# -- TF-slim Inception distort_color ---------------------------------------------------------------------

# research/slim/preprocessing/inception_preprocessing.py, distort_color, as written there.
SLIM_ORDERINGS = {
    0: ["brightness", "saturation", "hue", "contrast"],
    1: ["saturation", "brightness", "contrast", "hue"],
    2: ["contrast", "hue", "brightness", "saturation"],
    3: ["hue", "saturation", "contrast", "brightness"],
}


def _slim(image01, ordering, factors, fast_mode):
    ops = {"brightness": lambda x: tf.image.adjust_brightness(x, factors["brightness"]),
           "saturation": lambda x: tf.image.adjust_saturation(x, factors["saturation"]),
           "hue": lambda x: tf.image.adjust_hue(x, factors["hue"]),
           "contrast": lambda x: tf.image.adjust_contrast(x, factors["contrast"])}
    names = (["brightness", "saturation"] if ordering == 0 else ["saturation", "brightness"]) if fast_mode \
        else SLIM_ORDERINGS[ordering]
    for name in names:
        image01 = ops[name](image01)
    return tf.clip_by_value(image01, 0.0, 1.0)


@pytest.mark.parametrize("ordering,fast_mode", [(0, True), (0, False), (1, False), (2, False), (3, False)])
def test_distort_color_orderings_equal_slims(ordering, fast_mode):
    factors = dict(brightness=0.1, saturation=1.4, hue=-0.15, contrast=0.6)
    plan = color.DistortPlan(tf.constant(ordering), **{k: tf.constant(v) for k, v in factors.items()})
    image01 = tf.image.convert_image_dtype(tf.constant(IMAGE), tf.float32)
    ours = color.apply_distort_plan(image01, plan, fast_mode).numpy()
    np.testing.assert_array_equal(ours, _slim(image01, ordering, factors, fast_mode).numpy())
    # The orderings differ from each other (the ops do not commute), so the order is really tested.
    if not fast_mode:
        other = _slim(image01, (ordering + 1) % 4, factors, fast_mode).numpy()
        assert np.abs(ours - other).max() > 0.02


def test_distort_color_draws():
    stats = pytest.importorskip("scipy.stats")
    seeds = tf.random.experimental.stateless_split(tf.constant([5, 1], tf.int64), 4000)
    signature = color.DistortPlan(tf.int32, tf.float32, tf.float32, tf.float32, tf.float32)
    for fast_mode in (True, False):
        # Traced once (not 4000 eager calls): the same draws, in a fraction of the time.
        plans = tf.function(lambda fast=fast_mode: tf.map_fn(lambda s: color.distort_color_plan(s, fast), seeds,
                                                             fn_output_signature=signature))()
        orderings = plans.ordering.numpy()
        if fast_mode:
            assert (orderings == 0).all()  # num_distort_cases = 1 in fast mode
        else:
            counts = np.bincount(orderings, minlength=4)
            assert stats.chisquare(counts).pvalue > 0.01
    for name, low, high in [("brightness", -32 / 255, 32 / 255), ("saturation", 0.5, 1.5), ("hue", -0.2, 0.2),
                            ("contrast", 0.5, 1.5)]:
        values = getattr(plans, name).numpy()
        assert stats.kstest(values, "uniform", args=(low, high - low)).pvalue > 0.01, name
    # distort_color = the plan applied to the float image, rounded back to uint8.
    seed = seeds[1]
    out = color.distort_color(tf.constant(IMAGE), seed, fast_mode=False).numpy()
    image01 = tf.image.convert_image_dtype(tf.constant(IMAGE), tf.float32)
    expected = color.apply_distort_plan(image01, color.distort_color_plan(seed, False), False).numpy()
    np.testing.assert_array_equal(out, np.round(expected * 255).astype(np.uint8))


# -- in the training pipeline ---------------------------------------------------------------------------

def test_colour_settings_in_train_image_are_reproducible_and_leave_the_crop_alone():
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(photo(22, (160, 120))).save(buf, "JPEG", quality=90)
    encoded = tf.constant(buf.getvalue())
    plain = PreprocessConfig.from_recipe(recipe(48))
    for overrides in (dict(color_jitter=(0.4, 0.4, 0.4, 0.1)), dict(lighting_std=0.1), dict(distort_color="full"),
                      dict(distort_color="fast"), dict(color_jitter=(0.4, 0.4, 0.4, 0.0), lighting_std=0.1)):
        config = PreprocessConfig.from_recipe(recipe(48), **overrides)
        for i in range(3):
            seed = tf.constant([i, 2], tf.int64)
            image = preprocessing.train_image(encoded, seed, config).numpy()
            np.testing.assert_array_equal(image, preprocessing.train_image(encoded, seed, config).numpy())
            base = preprocessing.train_image(encoded, seed, plain).numpy().astype(float)
            assert image.shape == (48, 48, 3) and image.dtype == np.uint8
            # The same crop with other colours: strongly correlated, not identical (lighting may round to it).
            assert np.corrcoef(base.ravel(), image.ravel().astype(float))[0, 1] > 0.5, overrides
    with pytest.raises(ValueError, match="distort_color"):
        PreprocessConfig(distort_color="slim")
    with pytest.raises(ValueError, match="lighting_std"):
        PreprocessConfig(lighting_std=-0.1)
