"""Mixup and cutmix: soft labels that sum to 1 and match the mixed pixels, the per-batch choice and
probability, determinism, the pipeline's soft labels, and the loss on soft labels with label smoothing
(against the formula and torch's cross_entropy)."""

import numpy as np
import pytest
import tensorflow as tf

from datasets import mixing

NUM_CLASSES = 10


def _batch(seed: int = 0, n: int = 8, size: int = 24):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = rng.permutation(NUM_CLASSES)[:n].astype(np.int32)  # distinct, so weights can be read back
    return images, labels


def _run(images, labels, seed, **kwargs):
    out, soft = mixing.mix_batch(tf.constant(images), tf.constant(labels), tf.constant([seed, 4], tf.int64),
                                 num_classes=NUM_CLASSES, **kwargs)
    return out.numpy(), soft.numpy()


def test_mixup_labels_sum_to_one_and_match_the_pixel_weights():
    images, labels = _batch()
    rolled_images, rolled_labels = np.roll(images, 1, axis=0), np.roll(labels, 1)
    lams = []
    for seed in range(6):
        out, soft = _run(images, labels, seed, mixup_alpha=0.2)
        assert out.dtype == np.uint8 and out.shape == images.shape and soft.dtype == np.float32
        np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
        lam = soft[0, labels[0]]
        lams.append(lam)
        for i in range(len(labels)):
            np.testing.assert_allclose(soft[i, labels[i]], lam, atol=1e-6)
            np.testing.assert_allclose(soft[i, rolled_labels[i]], 1.0 - lam, atol=1e-6)
        expected = lam * images.astype(np.float64) + (1.0 - lam) * rolled_images
        assert np.max(np.abs(out - expected)) <= 0.5 + 1e-3  # the weighted mix, rounded to uint8
    assert len(set(np.round(lams, 6))) == len(lams)  # a new weight per batch


def test_mixup_of_float_images_is_exact():
    images, labels = _batch()
    x = tf.constant(images, tf.float32)
    out, soft = mixing.mixup(x, tf.one_hot(labels, NUM_CLASSES), 0.3)
    np.testing.assert_allclose(out, 0.3 * images + 0.7 * np.roll(images, 1, axis=0), rtol=1e-6)
    np.testing.assert_allclose(soft.numpy().sum(axis=1), 1.0)


def test_cutmix_labels_match_the_pasted_box_area():
    images, labels = _batch(1)
    rolled = np.roll(images, 1, axis=0)
    area = images.shape[1] * images.shape[2]
    pasted_some = 0
    for seed in range(10):
        out, soft = _run(images, labels, seed, cutmix_alpha=1.0)
        np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
        changed = np.any(out != images, axis=-1)  # [n, h, w]
        box = changed.any(axis=0)  # one box for the whole batch
        if box.any():
            pasted_some += 1
            rows, cols = np.where(box)
            top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            np.testing.assert_array_equal(out[:, top:bottom, left:right], rolled[:, top:bottom, left:right])
            outside = np.ones(box.shape, bool)
            outside[top:bottom, left:right] = False
            np.testing.assert_array_equal(out[:, outside], images[:, outside])
            pasted = (bottom - top) * (right - left) / area
        else:
            pasted = 0.0
        for i in range(len(labels)):
            np.testing.assert_allclose(soft[i, labels[i]], 1.0 - pasted, atol=1e-6)
    assert pasted_some >= 5


def test_both_on_chooses_one_method_per_batch_and_p_applies():
    images, labels = _batch(2)
    kinds = []
    for seed in range(40):
        out, soft = _run(images, labels, seed, mixup_alpha=0.4, cutmix_alpha=1.0)
        changed = np.any(out != images, axis=-1)
        # Mixup changes (nearly) every pixel; cutmix only a box, the rest stays exact.
        kinds.append("mixup" if changed.mean() > 0.9 else "cutmix")
    assert 10 <= kinds.count("mixup") <= 30
    applied = []
    for seed in range(40):
        out, soft = _run(images, labels, seed, mixup_alpha=0.4, p=0.5)
        applied.append(not np.array_equal(soft, np.eye(NUM_CLASSES, dtype=np.float32)[labels]))
    assert 8 <= sum(applied) <= 32
    out, soft = _run(images, labels, 0, mixup_alpha=0.4, cutmix_alpha=1.0, p=0.0)
    np.testing.assert_array_equal(out, images)
    np.testing.assert_array_equal(soft, np.eye(NUM_CLASSES, dtype=np.float32)[labels])


def test_mixing_is_reproducible_from_the_seed():
    images, labels = _batch(3)
    a = _run(images, labels, 7, mixup_alpha=0.2, cutmix_alpha=1.0)
    b = _run(images, labels, 7, mixup_alpha=0.2, cutmix_alpha=1.0)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_beta_draws_have_the_beta_moments():
    alpha = 0.2
    draw = tf.function(lambda seeds: tf.map_fn(lambda s: mixing.beta(s, alpha), seeds,
                                                fn_output_signature=tf.float32))
    draws = draw(tf.stack([tf.range(4000, dtype=tf.int64), tf.zeros([4000], tf.int64)], 1)).numpy()
    assert np.all((draws >= 0) & (draws <= 1))
    assert abs(draws.mean() - 0.5) < 0.03
    assert abs(draws.var() - 1.0 / (4 * (2 * alpha + 1))) < 0.02


def test_pipeline_yields_soft_labels_when_mixing(tmp_path):
    from datasets_testutil import make_folder, recipe

    from datasets.image_folder import ImageFolderDataset
    from datasets.pipeline import PipelineOptions

    root = make_folder(str(tmp_path), {"a": 4, "b": 4, "c": 4})
    ds = ImageFolderDataset(recipe=recipe(32), data_dir=root, seed=3, options=PipelineOptions(deterministic=True),
                            preprocess={"mixup_alpha": 0.2, "cutmix_alpha": 1.0})
    images, labels = next(iter(ds.input_fn("train", training=True, batch_size=4, normalize=False)))
    assert images.dtype == tf.uint8 and images.shape == (4, 32, 32, 3)
    assert labels.dtype == tf.float32 and labels.shape == (4, 3)
    np.testing.assert_allclose(labels.numpy().sum(axis=1), 1.0, rtol=1e-6)
    again = next(iter(ds.input_fn("train", training=True, batch_size=4, normalize=False)))
    np.testing.assert_array_equal(labels, again[1])
    images, labels = next(iter(ds.input_fn("train", training=True, batch_size=4)))
    assert images.dtype == tf.float32 and labels.shape == (4, 3)
    _, labels = next(iter(ds.input_fn("validation", training=False, batch_size=4)))
    assert labels.dtype == tf.int32  # evaluation is never mixed


@pytest.mark.keras2
def test_soft_label_loss_with_smoothing_matches_the_formula_and_torch():
    from training.losses import classification_loss, cross_entropy

    images, labels = _batch(4)
    _, soft = _run(images, labels, 5, mixup_alpha=0.2, cutmix_alpha=1.0)
    logits = np.random.default_rng(0).normal(size=(len(labels), NUM_CLASSES)).astype(np.float32)
    s = 0.1
    target = soft * (1 - s) + s / NUM_CLASSES
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -(target * log_softmax).sum(axis=1)
    ours = classification_loss(tf.constant(soft), tf.constant(logits), NUM_CLASSES, s).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-5)
    torch = pytest.importorskip("torch")
    ref = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(soft), label_smoothing=s,
                                            reduction="none").numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    # Integer labels keep working, and equal their one-hot soft form.
    hard = cross_entropy(tf.constant(labels), tf.constant(logits), NUM_CLASSES, s).numpy()
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    np.testing.assert_allclose(hard, cross_entropy(tf.constant(onehot), tf.constant(logits), NUM_CLASSES, s),
                               rtol=1e-6)
    ref_hard = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels).long(),
                                                 label_smoothing=s, reduction="none").numpy()
    np.testing.assert_allclose(hard, ref_hard, rtol=1e-5)
    # Auxiliary heads take the same soft labels.
    both = classification_loss(tf.constant(soft), [tf.constant(logits), tf.constant(logits)], NUM_CLASSES, s,
                               aux_weights=(0.4,)).numpy()
    np.testing.assert_allclose(both, 1.4 * expected, rtol=1e-5)


@pytest.mark.slow
def test_main_trains_on_the_demo_with_every_augmentation(tmp_path):
    from conftest import run_main

    from training.log import parse_line

    out = run_main("--model=alexnet", "--backend=cpu", "--dataset=demo", f"--demo_cache_dir={tmp_path / 'demo'}",
                   "--train_crop_size=63", "--val_resize_size=72", "--interpolation=bicubic", "--batch_size=8",
                   "--max_train_steps=3", "--save_summary_steps=1", "--lr=0.001", "--warmup_epochs=0",
                   "--nodo_checkpoint", f"--log_dir={tmp_path / 'log'}", "--auto_augment=ta_wide",
                   "--random_erase=0.25", "--mixup_alpha=0.2", "--cutmix_alpha=1.0", "--seed=1", "--deterministic")
    assert "image_size=63" in out.stdout
    steps = [parse_line(line) for line in out.stdout.splitlines() if line.startswith("step:")]
    assert [s["step"] for s in steps] == [1, 2, 3] and all(np.isfinite(s["loss"]) for s in steps)
    bad = run_main("--synthetic", "--train_crop_size=64", "--image_size=96", f"--log_dir={tmp_path / 'bad'}",
                   check=False)
    assert bad.returncode == 2 and "error: --train_crop_size=64 differs from --image_size=96" in bad.stderr
