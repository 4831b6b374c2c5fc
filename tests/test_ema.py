"""The weight average (--model_ema) against torchvision's formula, in checkpoints, in evaluation and export."""

import json
import os

import eval_testutil as ev
import numpy as np
import pytest
import tensorflow as tf

from keras_compat import keras
from runs.checkpoints import Checkpointer
from training.ema import ModelEMA, adjusted_decay, checkpoint_has_ema, load_ema_weights

# The average is shared with the NPU path: run again under Keras 2.
pytestmark = pytest.mark.keras2


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    x = keras.layers.Dense(4, name="fc1")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)  # non-trainable statistics are averaged too
    return keras.Model(inputs, keras.layers.Dense(2, name="fc2")(x))


def _perturb(model, rng):
    """New values for every weight, as a training step (and batch norm's statistics) would give."""
    for w in model.weights:
        w.assign(w.numpy() + rng.normal(size=w.shape).astype(np.float32))


def test_adjusted_decay_is_torchvisions():
    # torchvision: alpha = min(1, (1 - decay) * world_size * batch_size * ema_steps / epochs); decay = 1 - alpha
    decay, world, batch, steps, epochs = 0.99998, 8, 32, 32, 600
    assert adjusted_decay(decay, world * batch, steps, epochs) == pytest.approx(
        1 - (1 - decay) * world * batch * steps / epochs, rel=1e-12)
    assert adjusted_decay(0.9, 1024, 32, 1) == 0.0  # alpha capped at 1: a copy
    with pytest.raises(ValueError, match="positive number of epochs"):
        adjusted_decay(0.99, 8, 32, 0)


def test_updates_follow_the_formula_interval_and_warmup():
    model = _model()
    decay, every, warmup = 0.7, 3, 3
    ema = ModelEMA(model, decay, every_steps=every, warmup_steps=warmup)
    update = tf.function(ema.update)
    rng = np.random.default_rng(0)
    reference = [w.numpy().astype(np.float64) for w in model.weights]
    n_averaged = 0
    for step in range(1, 13):
        _perturb(model, rng)
        updated = bool(update(tf.constant(step, tf.int64)))
        assert updated == (step % every == 0)
        if updated:
            current = [w.numpy() for w in model.weights]
            reference = [c if n_averaged == 0 else decay * r + (1 - decay) * c for r, c in zip(reference, current)]
            n_averaged = 0 if step <= warmup else n_averaged + 1  # torchvision's reset during warm-up
        assert not bool(update(tf.constant(step, tf.int64)))  # the same step (a dropped one) never twice
    assert int(ema.updates.numpy()) == 4
    with ema.swapped_in() as swapped:
        assert swapped
        for w, r in zip(model.weights, reference):
            np.testing.assert_allclose(w.numpy(), r, rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.weights[0].numpy(), reference[0])  # the raw weights are back


def test_num_updates_is_tensorflows_exponential_moving_average():
    """--model_ema_warmup=num_updates against TensorFlow's own ExponentialMovingAverage(decay, num_updates)."""
    model = _model()
    decay = 0.99  # the ramp (1 + n) / (10 + n) is below it for n < 890
    ema = ModelEMA(model, decay, every_steps=1, num_updates=True)
    steps_before = tf.Variable(0, dtype=tf.int64)
    reference = tf.train.ExponentialMovingAverage(decay, num_updates=steps_before)
    mirrors = [tf.Variable(w.numpy()) for w in model.weights]  # TensorFlow's class averages tf.Variables
    rng = np.random.default_rng(2)
    for step in range(1, 40):
        _perturb(model, rng)
        for mirror, w in zip(mirrors, model.weights):
            mirror.assign(w.numpy())
        steps_before.assign(step - 1)  # TensorFlow's global step when the average of this step is taken
        reference.apply(mirrors)
        ema.update(tf.constant(step, tf.int64))
        np.testing.assert_allclose(float(ema.decay_at(tf.constant(step, tf.int64))),
                                   min(decay, step / (9.0 + step)), rtol=1e-12)
        for mirror, shadow in zip(mirrors, ema._shadows):
            np.testing.assert_allclose(shadow.numpy(), reference.average(mirror).numpy(), rtol=1e-5, atol=1e-6)
    assert float(ema.decay_at(tf.constant(5000, tf.int64))) == decay


def test_settings_choose_torchvisions_timms_or_tensorflows_rule():
    from run_config import RegularizationConfig
    from training.ema import maybe_ema

    model = _model()
    run = dict(global_batch=768, max_epochs=450, warmup_steps=100)
    tv = maybe_ema(RegularizationConfig(model_ema=True, model_ema_decay=0.9999, model_ema_steps=32), model, **run)
    assert tv.decay == pytest.approx(adjusted_decay(0.9999, 768, 32, 450)) and tv.warmup_steps == 100
    assert not tv.num_updates
    timm = maybe_ema(RegularizationConfig(model_ema=True, model_ema_decay=0.9999, model_ema_steps=1,
                                          model_ema_adjust=False, model_ema_warmup="none"), model, **run)
    assert (timm.decay, timm.every_steps, timm.warmup_steps, timm.num_updates) == (0.9999, 1, 0, False)
    tf_ema = maybe_ema(RegularizationConfig(model_ema=True, model_ema_decay=0.9999, model_ema_steps=1,
                                            model_ema_adjust=False, model_ema_warmup="num_updates"), model, **run)
    assert (tf_ema.decay, tf_ema.warmup_steps, tf_ema.num_updates) == (0.9999, 0, True)
    assert "num_updates" in tf_ema.describe() and "lr warm-up (100 steps)" in tv.describe()
    assert maybe_ema(RegularizationConfig(), model, **run) is None


def test_without_warmup_resets_the_average_runs_on_from_the_first_copy():
    """timm's rule: the lr warm-up does not reset the average (torchvision's does)."""
    model = _model()
    ema = ModelEMA(model, 0.5, every_steps=1, warmup_steps=0)
    rng = np.random.default_rng(3)
    reference = None
    for step in range(1, 6):
        _perturb(model, rng)
        ema.update(tf.constant(step, tf.int64))
        current = [w.numpy() for w in model.weights]
        reference = current if reference is None else [0.5 * r + 0.5 * c for r, c in zip(reference, current)]
    for shadow, r in zip(ema._shadows, reference):
        np.testing.assert_allclose(shadow.numpy(), r, rtol=1e-5, atol=1e-6)


def test_saved_and_restored_with_a_checkpoint(tmp_path):
    model = _model()
    ema = ModelEMA(model, 0.5, every_steps=1)
    rng = np.random.default_rng(1)
    for step in (1, 2, 3):
        _perturb(model, rng)
        ema.update(tf.constant(step, tf.int64))
    averages = [s.numpy() for s in ema._shadows]
    path = Checkpointer(str(tmp_path / "ema"), model=model, ema=ema).save(3)
    assert checkpoint_has_ema(path)
    plain = Checkpointer(str(tmp_path / "plain"), model=model).save(3)
    assert not checkpoint_has_ema(plain)

    # Resume: a fresh average restored from the checkpoint continues where it stopped.
    fresh_model = _model(seed=5)
    fresh = ModelEMA(fresh_model, 0.5, every_steps=1)
    Checkpointer(str(tmp_path / "ema"), model=fresh_model, ema=fresh).restore_latest()
    assert int(fresh.n_averaged.numpy()) == 3 and fresh.has_average
    for a, b in zip(averages, fresh._shadows):
        np.testing.assert_array_equal(a, b.numpy())

    # Evaluation / export: the averages into a model's weights, by name.
    target = _model(seed=7)
    assert load_ema_weights(target, path) == len(target.weights)
    for a, w in zip(averages, target.weights):
        np.testing.assert_array_equal(a, w.numpy())
    with pytest.raises(ValueError, match="without --model_ema"):
        load_ema_weights(target, plain)

    # A checkpoint without averages leaves the average empty: evaluation keeps the raw weights.
    resumed = ModelEMA(_model(seed=8), 0.5, every_steps=1)
    Checkpointer(str(tmp_path / "plain"), model=_model(seed=9), ema=resumed).restore_latest()
    assert not resumed.has_average
    with resumed.swapped_in() as swapped:
        assert not swapped


COMMON = ("--extra_modules=tests/eval_testutil.py", "--model=scores_linear", "--dataset=handmade", "--backend=cpu",
          "--batch_size=3", "--model_ema")


def _train_and_evaluate(run, main_runner):
    main_runner(*COMMON, "--mode=train_and_evaluate", "--max_train_steps=4", "--iterations_per_loop=4",
                "--epochs_between_evals=0", "--model_ema_steps=2", "--model_ema_decay=0.9", "--max_epochs=1",
                "--warmup_epochs=0", "--lr=0.5", f"--log_dir={run}")
    records = [json.loads(line) for line in open(run / "metrics.jsonl")]
    return [r for r in records if r.get("type") == "eval"], [r for r in records if r.get("type") == "eval_raw"]


@pytest.mark.skipif(os.environ.get("TF_USE_LEGACY_KERAS") == "1", reason="one end-to-end run is enough")
def test_train_and_evaluate_reports_the_average(tmp_path, main_runner):
    """A real run: the table shows the average, the raw weights' result is logged beside it."""
    evals, raws = _train_and_evaluate(tmp_path / "run", main_runner)
    assert evals and raws and evals[-1]["step"] == raws[-1]["step"] == 4
    # The average of a few steps differs from the last weights: so do the losses of the two evaluations.
    assert evals[-1]["loss"] != raws[-1]["loss"]
    ckpt = tf.train.latest_checkpoint(str(tmp_path / "run"))
    assert ckpt and checkpoint_has_ema(ckpt)


@pytest.mark.slow
def test_evaluate_and_export_read_the_average(tmp_path, main_runner):
    """--mode=evaluate reproduces train_and_evaluate's row of the average; export serves the average."""
    evals, _ = _train_and_evaluate(tmp_path / "run", main_runner)
    ckpt = tf.train.latest_checkpoint(str(tmp_path / "run"))
    again = main_runner(*COMMON, "--mode=evaluate", f"--checkpoint_path={ckpt}", f"--log_dir={tmp_path / 'eval'}")
    assert "evaluating the weight averages" in again.stdout
    record = [json.loads(line) for line in open(tmp_path / "eval" / "metrics.jsonl")][-1]
    assert record["loss"] == pytest.approx(evals[-1]["loss"], rel=1e-6)
    export_dir = tmp_path / "export"
    main_runner(*COMMON, "--mode=export", f"--checkpoint_path={ckpt}", f"--export_dir={export_dir}")
    serve = tf.saved_model.load(str(export_dir)).signatures["serving_images"]
    images = np.random.default_rng(0).random((2, ev.IMAGE_SIZE, ev.IMAGE_SIZE, 3)).astype(np.float32)
    stored = tf.train.load_checkpoint(ckpt)
    kernel, bias = (stored.get_tensor(f"ema/averages/logits>{name}/.ATTRIBUTES/VARIABLE_VALUE")
                    for name in ("kernel", "bias"))
    np.testing.assert_allclose(serve(images=tf.constant(images))["logits"].numpy(),
                               images.reshape(2, -1) @ kernel + bias, rtol=1e-4, atol=1e-5)
