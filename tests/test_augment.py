"""Per-image augmentations: each op against torchvision's on the same uint8 image, the policies' draws
(AutoAugment's per-step probabilities, RandAugment's and TrivialAugmentWide's uniform choices), random
erasing's single rectangle, and shape/dtype/range/determinism in the training pipeline."""

import math

import numpy as np
import pytest
import tensorflow as tf
from datasets_testutil import photo, recipe

from datasets import augment, image_ops, preprocessing
from datasets.preprocessing import PreprocessConfig

IMAGE = np.ascontiguousarray(photo(3, (45, 38)))  # a real photo crop, 38 x 45, uint8 RGB


@pytest.fixture(scope="module")
def tvf():
    """torchvision.transforms.functional (v1, the ops torchvision's AutoAugment classes call)."""
    pytest.importorskip("torch")
    from tools.torchvision_models import import_models

    try:
        import_models()
    except ImportError as e:  # pragma: no cover - depends on the environment
        pytest.skip(str(e))
    import torchvision.transforms.functional as F

    return F


def _torch_image():
    import torch

    return torch.from_numpy(IMAGE.copy()).permute(2, 0, 1).contiguous()


def _compare(ours: tf.Tensor, ref, max_diff: int, max_fraction: float, outliers: float = 0.0) -> None:
    """At most ``max_fraction`` of the values differ, and at most ``outliers`` by more than ``max_diff``."""
    ours = ours.numpy().astype(int)
    ref = ref.permute(1, 2, 0).numpy().astype(int)
    assert ours.shape == ref.shape
    diff = np.abs(ours - ref)
    # Off-by-one values come from float32 summation order; the fraction bounds how many.
    assert np.mean(diff > 0) <= max_fraction, f"{np.mean(diff > 0):.3f} of the values differ"
    assert np.mean(diff > max_diff) <= outliers, f"max difference {diff.max()}"


COLOR_CASES = [
    ("brightness", 0.3, "adjust_brightness"), ("brightness", 1.6, "adjust_brightness"),
    ("color", 0.2, "adjust_saturation"), ("color", 1.7, "adjust_saturation"),
    ("contrast", 0.4, "adjust_contrast"), ("contrast", 1.8, "adjust_contrast"),
    ("sharpness", 0.1, "adjust_sharpness"), ("sharpness", 1.9, "adjust_sharpness"),
    ("posterize", 0, "posterize"), ("posterize", 3, "posterize"), ("posterize", 8, "posterize"),
    ("solarize", 0.0, "solarize"), ("solarize", 110.5, "solarize"), ("solarize", 255.0, "solarize"),
]


@pytest.mark.parametrize("name,magnitude,torch_name", COLOR_CASES)
def test_colour_ops_match_torchvision(tvf, name, magnitude, torch_name):
    ours = getattr(image_ops, name)(tf.constant(IMAGE), magnitude)
    assert ours.dtype == tf.uint8 and ours.shape == IMAGE.shape
    _compare(ours, getattr(tvf, torch_name)(_torch_image(), magnitude), max_diff=1, max_fraction=0.05)


@pytest.mark.parametrize("name", ["autocontrast", "equalize", "invert"])
def test_parameterless_ops_match_torchvision(tvf, name):
    ours = getattr(image_ops, name)(tf.constant(IMAGE))
    _compare(ours, getattr(tvf, name)(_torch_image()), max_diff=0, max_fraction=0.0)
    assert not np.array_equal(ours.numpy(), IMAGE)  # each one changes a photo


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("op,magnitude", [("shear_x", 0.3), ("shear_y", -0.27), ("translate_x", 7.6),
                                          ("translate_y", -5.2), ("rotate", 30.0), ("rotate", -17.0)])
def test_geometric_ops_match_torchvision(tvf, op, magnitude, interpolation):
    from torchvision.transforms import InterpolationMode

    mode = InterpolationMode(interpolation)
    image = _torch_image()
    if op == "rotate":
        ref = tvf.rotate(image, magnitude, mode)
    elif op.startswith("shear"):
        degrees = math.degrees(math.atan(magnitude))
        shear = [degrees, 0.0] if op == "shear_x" else [0.0, degrees]
        ref = tvf.affine(image, 0.0, [0, 0], 1.0, shear, mode, None, center=[0, 0])
    else:
        shift = [int(magnitude), 0] if op == "translate_x" else [0, int(magnitude)]
        ref = tvf.affine(image, 0.0, shift, 1.0, [0.0, 0.0], mode, None)
    ours = getattr(image_ops, op)(tf.constant(IMAGE), magnitude, interpolation)
    # Nearest sampling may pick the other neighbour where a coordinate falls on a half pixel
    # (TensorFlow rounds halves away from zero, torch to even): a few whole pixels differ.
    _compare(ours, ref, max_diff=1, max_fraction=0.05, outliers=0.03 if interpolation == "nearest" else 0.0)


def test_rotate_with_fill_matches_torchvision(tvf):
    from torchvision.transforms import InterpolationMode

    fill = [10.0, 200.0, 30.0]
    ours = image_ops.rotate(tf.constant(IMAGE), 40.0, "bilinear", fill=fill)
    _compare(ours, tvf.rotate(_torch_image(), 40.0, InterpolationMode.BILINEAR, fill=fill), 1, 0.02)
    assert np.all(ours.numpy()[0, 0] == [10, 200, 30])  # a corner comes from outside the image


def test_magnitude_tables_are_torchvisions():
    standard = augment.magnitudes("standard", 10, (224, 224))
    assert standard["Rotate"][9] == pytest.approx(30.0)
    assert standard["TranslateX"][9] == pytest.approx(150.0 / 331.0 * 224, rel=1e-6)
    tall = augment.magnitudes("standard", 10, (300, 200))  # (height, width): X follows the width
    assert tall["TranslateX"][9] == pytest.approx(150.0 / 331.0 * 200, rel=1e-6)
    assert tall["TranslateY"][9] == pytest.approx(150.0 / 331.0 * 300, rel=1e-6)
    assert standard["Posterize"] == [8, 8, 7, 7, 6, 6, 5, 5, 4, 4]
    assert standard["Solarize"][0] == 255.0 and standard["Solarize"][9] == 0.0
    wide = augment.magnitudes("wide", 31, (224, 224))
    assert wide["Rotate"][30] == pytest.approx(135.0) and wide["ShearX"][30] == pytest.approx(0.99)
    assert wide["TranslateX"][30] == pytest.approx(32.0) and min(wide["Posterize"]) == 2


def test_magnitude_tables_equal_torchvisions_augmentation_spaces(tvf):
    import torchvision.transforms as T

    for space, transform, bins in [("standard", T.AutoAugment(), 10), ("standard", T.RandAugment(), 31),
                                   ("wide", T.TrivialAugmentWide(), 31)]:
        if space == "wide":
            reference = transform._augmentation_space(bins)
        else:
            reference = transform._augmentation_space(bins, (40, 56))
        ours = augment.magnitudes(space, bins, (40, 56))
        assert set(reference) <= set(ours)
        for op, (values, signed) in reference.items():
            expected = values.numpy().astype(np.float64) if values.ndim else np.zeros(bins)
            np.testing.assert_allclose(ours[op], expected, rtol=1e-6, atol=1e-6, err_msg=op)
            assert signed == (op in augment._SIGNED), op
    assert augment.RAND_OPS == tuple(T.RandAugment()._augmentation_space(31, (8, 8)))
    assert augment.RAND_OPS == tuple(T.TrivialAugmentWide()._augmentation_space(31))
    assert [tuple(sub) for sub in T.AutoAugment(T.AutoAugmentPolicy.IMAGENET).policies] == list(
        augment.IMAGENET_POLICY)


def _plans(make, n: int):
    """Stacks ``n`` plans drawn from consecutive seeds, as numpy arrays."""
    fn = tf.function(lambda s: tf.map_fn(lambda x: tuple(make(x)), s,
                                          fn_output_signature=(tf.int32, tf.float32, tf.bool)))
    seeds = tf.stack([tf.range(n, dtype=tf.int64), tf.fill([n], tf.constant(5, tf.int64))], axis=1)
    return [t.numpy() for t in fn(seeds)]


def test_auto_augment_runs_each_step_with_its_probability():
    n = 4000
    ops, mags, applied = _plans(lambda s: augment.auto_augment_plan(s, (32, 32)), n)
    # Recover each draw's sub-policy from its (op, magnitude) pairs; several sub-policies repeat.
    table = augment.magnitudes("standard", 10, (32, 32))
    index = {}
    for i, sub in enumerate(augment.IMAGENET_POLICY):
        key = tuple((augment.OPS.index(op), 0.0 if m is None else round(table[op][m], 4)) for op, _, m in sub)
        index.setdefault(key, []).append(i)
    counts = {key: 0 for key in index}
    hits = {key: np.zeros(2) for key in index}
    for o, m, a in zip(ops, mags, applied):
        key = tuple((int(o[j]), round(abs(float(m[j])), 4)) for j in range(2))
        assert key in index, f"a draw that is not a sub-policy: {key}"
        counts[key] += 1
        hits[key] += a
    for key, members in index.items():
        expected = len(members) / len(augment.IMAGENET_POLICY)
        assert abs(counts[key] / n - expected) < 4 * math.sqrt(expected / n) + 1e-9
        # Sub-policies with the same steps (e.g. Equalize twice, at 0.8/0.6 and at 0.0/0.8) pool their probabilities.
        p = np.mean([[augment.IMAGENET_POLICY[i][j][1] for j in range(2)] for i in members], axis=0)
        se = np.sqrt(np.maximum(p * (1 - p), 0.01) / max(counts[key], 1))
        assert np.all(np.abs(hits[key] / max(counts[key], 1) - p) < 4 * se + 1e-9), key
    signed_rotations = mags[ops == augment.OPS.index("Rotate")]
    assert 0.4 < np.mean(signed_rotations < 0) < 0.6  # random sign


def test_rand_augment_draws_ops_uniformly_at_the_fixed_magnitude():
    n = 2800
    ops, mags, applied = _plans(lambda s: augment.rand_augment_plan(s, (32, 32), num_ops=2, magnitude=9), n)
    assert ops.shape == (n, 2) and applied.all()
    counts = np.bincount(ops.reshape(-1), minlength=len(augment.RAND_OPS))
    expected = 2 * n / len(augment.RAND_OPS)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), counts
    table = augment.magnitudes("standard", 31, (32, 32))
    for op_index, op in enumerate(augment.RAND_OPS):
        np.testing.assert_allclose(np.abs(mags[ops == op_index]), table[op][9], rtol=1e-6)


def test_trivial_augment_draws_op_and_bin_uniformly():
    n = 3000
    ops, mags, _ = _plans(lambda s: augment.trivial_augment_plan(s), n)
    counts = np.bincount(ops[:, 0], minlength=14)
    assert np.all(np.abs(counts - n / 14) < 5 * np.sqrt(n / 14)), counts
    rotations = mags[ops == augment.OPS.index("Rotate")]
    bins = np.round(np.abs(rotations) / (135.0 / 30)).astype(int)
    assert set(bins) == set(range(31))  # every bin, 0 included
    assert 0.4 < np.mean(rotations < 0) < 0.6


def test_policies_follow_their_plan_on_a_real_image():
    image = tf.constant(IMAGE[:32, :32])
    for policy, plan_fn in [("imagenet", lambda s: augment.auto_augment_plan(s, (32, 32))),
                            ("ra", lambda s: augment.rand_augment_plan(s, (32, 32))),
                            ("ta_wide", lambda s: augment.trivial_augment_plan(s))]:
        changed = 0
        for i in range(6):
            seed = tf.constant([i, 11], tf.int64)
            out = augment.augment_image(image, seed, policy=policy, interpolation="bilinear")
            assert out.dtype == tf.uint8 and out.shape == (32, 32, 3)
            np.testing.assert_array_equal(out, augment.augment_image(image, seed, policy=policy))  # reproducible
            plan = plan_fn(seed)
            expected = image
            for step in range(int(plan.ops.shape[0])):
                if plan.applied[step]:
                    expected = augment.apply_op(expected, plan.ops[step], plan.magnitudes[step], "bilinear")
            np.testing.assert_array_equal(out, expected)
            changed += int(not np.array_equal(out, image))
        assert changed >= 2, policy


def test_random_erasing_changes_exactly_one_rectangle():
    image = tf.constant(IMAGE)
    fill = augment.erase_fill((0.485, 0.456, 0.406))
    assert fill == [124, 116, 104]  # the mean on the 0..255 scale: normalises to ~0
    erased = 0
    for i in range(20):
        out = augment.random_erase(image, tf.constant([i, 3], tf.int64), 1.0, mean=(0.485, 0.456, 0.406),
                                   std=(0.229, 0.224, 0.225)).numpy()
        box = np.any(out != IMAGE, axis=-1)
        if not box.any():
            continue  # no try fitted (torchvision leaves the image unchanged too)
        erased += 1
        rows, cols = np.where(box)
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        # Everything inside the bounding box of the changes holds the fill: one filled rectangle.
        assert np.all(out[top:bottom, left:right] == fill)
        area = (bottom - top) * (right - left) / (IMAGE.shape[0] * IMAGE.shape[1])
        assert 0.0 < area <= 0.34
        assert np.array_equal(out[~box], IMAGE[~box])
    assert erased >= 15
    off = augment.random_erase(image, tf.constant([0, 3], tf.int64), 0.0, mean=(0.5,) * 3, std=(0.5,) * 3)
    np.testing.assert_array_equal(off, IMAGE)


def test_random_erasing_probability_and_random_value():
    image = tf.constant(IMAGE)
    changed = [not np.array_equal(augment.random_erase(image, tf.constant([i, 9], tf.int64), 0.5,
                                                       mean=(0.5,) * 3, std=(0.5,) * 3, value="random"), IMAGE)
               for i in range(60)]
    assert 0.25 < np.mean(changed) < 0.75
    with pytest.raises(ValueError, match="random erasing value"):
        augment.random_erase(image, tf.constant([0, 1], tf.int64), 0.5, mean=(0.5,) * 3, std=(0.5,) * 3,
                             value="mean")


def test_erase_box_follows_torchvision_bounds():
    for i in range(50):
        top, left, h, w = (int(v) for v in augment.erase_box(tf.constant([i, 2], tf.int64), 40, 60))
        if h == 0:
            continue
        assert 0.02 * 2400 * 0.8 <= h * w <= 0.33 * 2400 * 1.25  # rounding of the sides
        assert 0.3 / 1.5 <= h / w <= 3.3 * 1.5 and h < 40 and w < 60
        assert 0 <= top <= 40 - h and 0 <= left <= 60 - w


@pytest.mark.parametrize("policy", ["imagenet", "ra", "ta_wide", "rand-m9-mstd0.5-inc1"])
def test_training_crops_with_augmentation_shape_dtype_and_determinism(policy):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(photo(4, (90, 70))).save(buf, "JPEG", quality=90)
    encoded = tf.constant(buf.getvalue())
    plain = PreprocessConfig.from_recipe(recipe(48))
    config = PreprocessConfig.from_recipe(recipe(48), auto_augment=policy, random_erase=0.5)
    differs = 0
    for i in range(6):
        seed = tf.constant([i, 1], tf.int64)
        image = preprocessing.train_image(encoded, seed, config)
        assert image.shape == (48, 48, 3) and image.dtype == tf.uint8
        np.testing.assert_array_equal(image, preprocessing.train_image(encoded, seed, config))
        # The crop and flip are those of the plain pipeline: augmentations use seeds of their own.
        base = preprocessing.train_image(encoded, seed, plain)
        expected = preprocessing.augment_crop(base, tf.cast(seed, tf.int64), config)
        np.testing.assert_array_equal(image, expected)
        differs += int(not np.array_equal(image, base))
    assert differs >= 2


def test_config_validates_augmentation_parameters():
    with pytest.raises(ValueError, match="auto_augment must be one of"):
        PreprocessConfig(auto_augment="autoaug")
    with pytest.raises(ValueError, match="ra_magnitude"):
        PreprocessConfig(ra_magnitude=31)
    with pytest.raises(ValueError, match="random_erase is a probability"):
        PreprocessConfig(random_erase=1.5)
    with pytest.raises(ValueError, match="mixup_alpha and cutmix_alpha"):
        PreprocessConfig(cutmix_alpha=-1.0)
    assert not PreprocessConfig().mixes_batches and PreprocessConfig(mixup_alpha=0.2).mixes_batches


# -- timm's RandAugment ('rand-m9-mstd0.5-inc1') ---------------------------------------------------------

def test_timm_strings_parse_as_timm_reads_them():
    spec = augment.parse_timm_rand_augment("rand-m9-mstd0.5-inc1")
    assert spec == augment.TimmRandAugment(magnitude=9, num_layers=2, prob=0.5, magnitude_std=0.5,
                                           magnitude_max=10, increasing=True)
    spec = augment.parse_timm_rand_augment("rand-n3-p0.8-mmax15-m12")
    assert (spec.num_layers, spec.prob, spec.magnitude_max, spec.magnitude, spec.increasing) == (3, 0.8, 15, 12, False)
    assert augment.parse_timm_rand_augment("rand-mstd101").magnitude_std == float("inf")  # > 100: uniform
    assert augment.parse_timm_rand_augment("rand-inc0").increasing  # timm tests bool("0"), which is True
    assert augment.parse_timm_rand_augment("rand") == augment.TimmRandAugment()
    for bad in ("rand-x9", "rand-tweights", "rand-m", "augmix-m5"):
        with pytest.raises(ValueError):
            augment.parse_timm_rand_augment(bad)
    assert PreprocessConfig(auto_augment="rand-m9-mstd0.5-inc1").auto_augment == "rand-m9-mstd0.5-inc1"
    with pytest.raises(ValueError, match="unknown section"):
        PreprocessConfig(auto_augment="rand-m9-q1")


# timm/data/auto_augment.py's level functions, written out (level on timm's 0..10 scale, Python floats).
def _timm_reference_arg(name: str, level: float, negate: bool, increasing: bool, size=(48, 48)) -> float:
    sign = -1.0 if negate else 1.0
    if name == "Rotate":
        return sign * (level / 10.0) * 30.0
    if name in ("ShearX", "ShearY"):
        return sign * (level / 10.0) * 0.3
    if name in ("TranslateXRel", "TranslateYRel"):
        return sign * (level / 10.0) * 0.45 * (size[1] if name == "TranslateXRel" else size[0])
    if name == "Posterize":
        return 4 - int((level / 10.0) * 4) if increasing else int((level / 10.0) * 4)
    if name == "Solarize":
        plain = min(256, int((level / 10.0) * 256))
        return 256 - plain if increasing else plain
    if name == "SolarizeAdd":
        return min(128, int((level / 10.0) * 110))
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        return max(0.1, 1.0 + sign * (level / 10.0) * 0.9) if increasing else (level / 10.0) * 1.8 + 0.1
    return 0.0


def _timm_plans(spec_string: str, n: int, seed: int = 0):
    spec = augment.parse_timm_rand_augment(spec_string)
    seeds = tf.random.experimental.stateless_split(tf.constant([seed, 31], tf.int64), n)
    signature = augment.TimmPlan(tf.int32, tf.bool, tf.float32, tf.float32)
    plans = tf.function(lambda s: tf.map_fn(lambda one: augment.timm_rand_augment_plan(one, spec, (48, 48)), s,
                                            fn_output_signature=signature, parallel_iterations=64))(seeds)
    return spec, [t.numpy() for t in plans]


def _timm_reference_draws(n: int, spec, seed: int = 0):
    """timm's RandAugment.__call__ / AugmentOp.__call__ draws with Python's and numpy's generators."""
    import random

    random.seed(seed)
    rng = np.random.RandomState(seed)
    ops, applied, levels = [], [], []
    for _ in range(n):
        for op in rng.choice(len(augment.TIMM_OPS), spec.num_layers, replace=True):
            ops.append(op)
            applied.append(not (spec.prob < 1.0 and random.random() > spec.prob))
            levels.append(max(0.0, min(random.gauss(spec.magnitude, spec.magnitude_std), spec.magnitude_max)))
    return np.array(ops), np.array(applied), np.array(levels)


def test_timm_rand_augment_draws_match_timms():
    stats = pytest.importorskip("scipy.stats")
    n = 6000
    spec, (ops, applied, levels, args) = _timm_plans("rand-m9-mstd0.5-inc1", n)
    ref_ops, ref_applied, ref_levels = _timm_reference_draws(n, spec)
    assert ops.shape == (n, 2)
    counts = np.bincount(ops.ravel(), minlength=15)
    ref_counts = np.bincount(ref_ops, minlength=15)
    assert stats.chisquare(counts).pvalue > 0.01  # 15 ops, uniform, with replacement
    assert stats.chi2_contingency(np.stack([counts, ref_counts])).pvalue > 0.01
    assert np.mean(ops[:, 0] == ops[:, 1]) > 0.03  # the same op twice happens (1/15)
    assert stats.binomtest(int(applied.sum()), applied.size, 0.5).pvalue > 0.01
    assert stats.ks_2samp(levels.ravel(), ref_levels).pvalue > 0.01
    assert levels.min() >= 0 and levels.max() <= 10 and abs(np.mean(levels == 10) - 0.0228) < 0.01  # P(N(9, .5) > 10)
    # Each argument is timm's level function of the drawn level (signs drawn with probability 1/2).
    names = [augment.TIMM_OPS[i] for i in ops.ravel()]
    negated = []
    for name, level, arg in zip(names, levels.ravel(), args.ravel()):
        expected_pos = _timm_reference_arg(name, float(level), False, True)
        expected_neg = _timm_reference_arg(name, float(level), True, True)
        assert min(abs(arg - expected_pos), abs(arg - expected_neg)) < 1e-4, (name, level, arg)
        if name in ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel") and level > 0:
            negated.append(arg < 0)
    assert stats.binomtest(int(np.sum(negated)), len(negated), 0.5).pvalue > 0.01


def test_timm_arguments_at_fixed_levels():
    # A few values by hand (level 9, 'increasing' set): rotate 27 degrees, posterize 4 - int(3.6) = 1 bit,
    # solarize 256 - int(230.4) = 26, solarize_add int(99.0) = 99, enhancements 1 +- 0.81.
    spec, (ops, applied, levels, args) = _timm_plans("rand-m9-inc1-n15", 40)  # mstd 0: level 9 exactly
    assert (levels == 9).all()
    table = {}
    for op, arg in zip(ops.ravel(), args.ravel()):
        table.setdefault(augment.TIMM_OPS[op], set()).add(round(float(arg), 4))
    assert table["Rotate"] == {27.0, -27.0} and table["Posterize"] == {1.0} and table["Solarize"] == {26.0}
    assert table["SolarizeAdd"] == {99.0} and table["Color"] == {1.81, 0.19}
    assert table["TranslateXRel"] == {round(0.405 * 48, 4), -round(0.405 * 48, 4)}
    _, (_, _, _, plain_args) = _timm_plans("rand-m9-n15", 40)  # not increasing: posterize int(3.6) = 3
    _, (plain_ops, _, _, _) = _timm_plans("rand-m9-n15", 40)
    posterize = plain_args[plain_ops == augment.TIMM_OPS.index("Posterize")]
    assert set(posterize.tolist()) == {3.0}


def test_solarize_add_equals_timms_lookup_table():
    from PIL import Image

    for add in (0, 30, 99, 128):
        lut = [min(255, i + add) if i < 128 else i for i in range(256)]
        expected = np.asarray(Image.fromarray(IMAGE).point(lut * 3))
        np.testing.assert_array_equal(image_ops.solarize_add(tf.constant(IMAGE), add).numpy(), expected)


def test_every_timm_op_runs_and_keeps_shape_and_dtype():
    image = tf.constant(IMAGE)
    fill = [124, 116, 104]
    for index, name in enumerate(augment.TIMM_OPS):
        arg = {"Posterize": 2.0, "Solarize": 100.0, "SolarizeAdd": 50.0, "Rotate": 20.0, "ShearX": 0.2,
               "ShearY": -0.2, "TranslateXRel": 7.5, "TranslateYRel": -6.0}.get(name, 1.5)
        plan = augment.TimmPlan(tf.constant([index]), tf.constant([True]), tf.constant([9.0]), tf.constant([arg]))
        out = augment.apply_timm_plan(image, plan, fill).numpy()
        assert out.shape == IMAGE.shape and out.dtype == np.uint8
        assert not np.array_equal(out, IMAGE), name
    # A fractional translation (timm's pixels = pct * width are not rounded) lands between whole shifts.
    half = image_ops.affine(image, translate=(3.5, 0.0), interpolation="bilinear").numpy().astype(int)
    three, four = (image_ops.affine(image, translate=(float(t), 0.0), interpolation="bilinear").numpy().astype(int)
                   for t in (3, 4))
    assert np.abs(half - (three + four) / 2.0)[:, 5:-5].mean() < 1.0
    skipped = augment.TimmPlan(tf.constant([0]), tf.constant([False]), tf.constant([9.0]), tf.constant([0.0]))
    np.testing.assert_array_equal(augment.apply_timm_plan(image, skipped).numpy(), IMAGE)
